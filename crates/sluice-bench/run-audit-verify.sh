#!/usr/bin/env bash
# BENCHMARKS.md "Audit verification of a 1,000,000-entry trail": time and peak RSS of
# verifying a long trail offline (`sluice audit verify FILE`'s code) and live (the server's
# `GET /v1/audit/verify` code over SQLite), streaming, and as before streaming (`--whole`:
# the whole chain read into memory first).
#
#   CARGO_TARGET_DIR=target-bench cargo build --release -p sluice-bench --bin bench-audit-verify
#   CARGO_TARGET_DIR=target-bench crates/sluice-bench/run-audit-verify.sh
#
# Each verification runs in its own process and prints one JSON line with its wall time and
# its peak RSS (VmHWM). Environment: ENTRIES (1000000), ROUNDS (3), WHOLE_ROUNDS (1).
set -euo pipefail

bin="${CARGO_TARGET_DIR:-target}/release/bench-audit-verify"
entries="${ENTRIES:-1000000}"
rounds="${ROUNDS:-3}"
whole_rounds="${WHOLE_ROUNDS:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" build "$work/trail" "$entries"
for mode in offline live; do
  for _ in $(seq 1 "$rounds"); do
    "$bin" "$mode" "$work/trail"
  done
  for _ in $(seq 1 "$whole_rounds"); do
    "$bin" "$mode" "$work/trail" --whole
  done
done

//! Memory of a compiled flag snapshot of N flags (a quarter each static, `ends_with`, 50/50
//! `fractional`, `sem_ver`): resident set size, read from `/proc/self/statm`, after compiling
//! one snapshot and after compiling `KEEP` more of the same definition, all kept alive. The
//! first may reuse memory freed while parsing; the marginal cost of the others is what one
//! snapshot occupies (allocator overhead included).
//!
//! Run: `snapshot-memory [N]` (default 10000); `snapshot-memory N --print` writes the document.

use serde_json::{json, Map, Value};
use sluice_eval::{FlagSetDef, Snapshot};

fn rss_kib() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no RSS in /proc/self/statm"))?
        .parse()?;
    Ok(pages * 4)
}

/// One flag of each kind in turn.
pub fn flag(i: usize) -> Value {
    let bool_variants = json!({"on": true, "off": false});
    match i % 4 {
        0 => json!({"state": "ENABLED", "variants": bool_variants, "defaultVariant": "on",
            "metadata": {"owner": format!("team-{}", i % 17)}}),
        1 => json!({"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, format!("@customer-{i}.example")]}, "on", "off"]}}),
        2 => {
            json!({"state": "ENABLED", "variants": {"a": "blue", "b": "green"}, "defaultVariant": "a",
            "targeting": {"fractional": [["a", 50], ["b", 50]]}})
        }
        _ => json!({"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">=", format!("{}.{}.0", i % 7, i % 11)]}, "on", "off"]}}),
    }
}

/// A flagd document of `n` flags.
pub fn document(n: usize) -> Value {
    let flags: Map<String, Value> = (0..n).map(|i| (format!("flag-{i:05}"), flag(i))).collect();
    json!({ "flags": flags })
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    if std::env::args().nth(2).as_deref() == Some("--print") {
        println!("{}", document(n));
        return Ok(());
    }
    const KEEP: u64 = 8;
    let doc = document(n);
    let text_len = doc.to_string().len();
    let def = FlagSetDef::from_value(doc)?;
    let start = rss_kib()?;
    let mut kept = vec![Snapshot::compile(&def, 1)?];
    let one = rss_kib()?;
    for i in 0..KEEP {
        kept.push(Snapshot::compile(&def, i + 2)?);
    }
    let all = rss_kib()?;
    std::hint::black_box(&kept);
    let per = all.saturating_sub(one) / KEEP;
    println!(
        "{n} flags ({} KiB of JSON): RSS {start} KiB with the definition parsed, {one} KiB with one snapshot, {all} KiB with {}: {per} KiB per snapshot ({} bytes per flag)",
        text_len / 1024,
        KEEP + 1,
        per * 1024 / n as u64
    );
    Ok(())
}

"""OpenFeature's Python SDK with its OFREP provider, against a running Sluice.

Run by crates/sluice/tests/it/sdk.rs after importing tests/sdk/flags.json.
Environment: SLUICE_OFREP_URL (e.g. http://127.0.0.1:7070), SLUICE_CLIENT_KEY.
Exits non-zero, naming the check, when an answer is not what an application expects.
"""

import os
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

FAILURES = []


def name(x):
    """An enum member's wire spelling (Reason.STATIC -> "STATIC"), or None."""
    return None if x is None else getattr(x, "value", x)


def check(what, got, want):
    if got != want:
        FAILURES.append(f"{what}: got {got!r}, want {want!r}")


def main():
    base_url = os.environ["SLUICE_OFREP_URL"]
    key = os.environ["SLUICE_CLIENT_KEY"]
    api.set_provider(OFREPProvider(base_url, headers_factory=lambda: {"X-API-Key": key}))
    client = api.get_client("sluice-sdk-test")

    d = client.get_boolean_details("bool-flag", False)
    check("bool value", (d.value, type(d.value)), (True, bool))
    check("bool reason", name(d.reason), "STATIC")
    check("bool variant", d.variant, "on")
    check("bool metadata", dict(d.flag_metadata), {"team": "checkout"})

    d = client.get_string_details("string-flag", "none")
    check("string value", d.value, "#0000ff")
    check("string variant", d.variant, "blue")
    check("string metadata", dict(d.flag_metadata), {"team": "checkout", "owner": "web", "version": 3})

    d = client.get_integer_details("int-flag", 0)
    check("int value", (d.value, type(d.value)), (42, int))

    # 0.0 must arrive as a float: the provider type-checks FLOAT resolutions with isinstance(float).
    d = client.get_float_details("float-zero", 1.5)
    check("float 0.0 value", (d.value, type(d.value)), (0.0, float))
    check("float 0.0 reason", name(d.reason), "STATIC")
    check("float 0.0 error", name(d.error_code), None)
    d = client.get_float_details("float-half", 1.5)
    check("float value", (d.value, type(d.value)), (0.5, float))

    d = client.get_object_details("object-flag", {})
    check("object value", d.value, {"limits": [1, 2, 3], "name": "A", "ratio": 0.0})
    check("object nested float", type(d.value.get("ratio")), float)

    ctx = EvaluationContext(targeting_key="user-1", attributes={"email": "ann@example.com"})
    d = client.get_boolean_details("targeted", False, ctx)
    check("targeting match value", d.value, True)
    check("targeting match reason", name(d.reason), "TARGETING_MATCH")
    ctx = EvaluationContext(targeting_key="user-2", attributes={"email": "bob@elsewhere.org"})
    d = client.get_boolean_details("targeted", True, ctx)
    check("no match value", d.value, False)
    check("no match reason", name(d.reason), "DEFAULT")

    # Disabled: Sluice answers without a value, so the application's code default is used.
    d = client.get_boolean_details("disabled", False)
    check("disabled falls back to the code default", d.value, False)
    print(f"disabled: reason={name(d.reason)} error={name(d.error_code)}")

    d = client.get_string_details("no-such-flag", "fallback")
    check("not found value", d.value, "fallback")
    check("not found error", name(d.error_code), "FLAG_NOT_FOUND")
    check("not found reason", name(d.reason), "ERROR")

    d = client.get_string_details("dynamic", "fallback", EvaluationContext(attributes={"pick": "zzz"}))
    check("parse error value", d.value, "fallback")
    check("parse error code", name(d.error_code), "PARSE_ERROR")
    d = client.get_string_details("dynamic", "fallback", EvaluationContext(attributes={"pick": "b"}))
    check("dynamic value", d.value, "B")

    d = client.get_string_details("bool-flag", "fallback")
    check("type mismatch value", d.value, "fallback")
    check("type mismatch code", name(d.error_code), "TYPE_MISMATCH")

    if FAILURES:
        for f in FAILURES:
            print("FAIL", f, file=sys.stderr)
        return 1
    print("python OFREP client: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! Parses a flag definition and a context from arbitrary bytes, compiles the
//! definition (strictly and leniently) and evaluates every flag. Input layout:
//! `<definition JSON> \0 <context JSON>`; without a `\0` the context is empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_eval::{Context, FlagSetDef, Snapshot};

fuzz_target!(|data: &[u8]| {
    let (def_bytes, ctx_bytes) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(def_text) = std::str::from_utf8(def_bytes) else {
        return;
    };
    let ctx = serde_json::from_slice(ctx_bytes)
        .ok()
        .and_then(|v| Context::from_value(v).ok())
        .unwrap_or_default();
    if let Ok(def) = FlagSetDef::from_json(def_text) {
        if let Ok(snapshot) = Snapshot::compile(&def, 1) {
            let _ = snapshot.evaluate_all(&ctx, 1_795_737_600);
        }
        // A validated definition round-trips.
        let again = FlagSetDef::from_value(def.to_value()).ok();
        assert_eq!(again.as_ref(), Some(&def));
    }
    if let Ok(value) = serde_json::from_str(def_text) {
        if let Ok(def) = FlagSetDef::from_value_lenient(value) {
            let snapshot = Snapshot::compile_lenient(&def, 1);
            for key in def.flag_keys() {
                let _ = snapshot.evaluate(key, &ctx, -1);
            }
        }
    }
});

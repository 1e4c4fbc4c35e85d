//! Compiled flag snapshots per environment, and the change feed SSE subscribers listen to.

use serde_json::Value;
use sluice_eval::{FlagSetDef, Snapshot};
use sluice_store::{Store, StoreError, StoredFlagSet};
use std::collections::HashMap;
use std::sync::Arc;

/// One environment's compiled flags.
#[derive(Debug)]
pub struct EnvFlags {
    pub environment: String,
    pub revision: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub snapshot: Snapshot,
}

/// Every environment's compiled flags, swapped whole on change.
#[derive(Debug, Default)]
pub struct FlagSnapshots {
    pub envs: HashMap<String, Arc<EnvFlags>>,
}

/// Sent to SSE subscribers when an environment's flags change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagEvent {
    pub environment: String,
    pub revision: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn compile(set: &StoredFlagSet) -> EnvFlags {
    let revision = u64::try_from(set.revision).unwrap_or(0);
    let snapshot = match FlagSetDef::from_value(set.to_document())
        .and_then(|d| Snapshot::compile(&d, revision))
    {
        Ok(s) => s,
        Err(e) => {
            // Stored sets were validated on the way in; if one no longer compiles, serve the
            // flags that do and say so loudly.
            tracing::error!(environment = %set.environment, error = %e, "stored flags of {} do not compile: {e}", set.environment);
            let def = FlagSetDef::from_value_lenient(set.to_document()).unwrap_or_default();
            Snapshot::compile_lenient(&def, revision)
        }
    };
    EnvFlags {
        environment: set.environment.clone(),
        revision: set.revision,
        updated_at: set.updated_at,
        snapshot,
    }
}

pub async fn load(store: &Store) -> Result<FlagSnapshots, StoreError> {
    let sets = store.flag_sets().await?;
    Ok(FlagSnapshots {
        envs: sets
            .iter()
            .map(|s| (s.environment.clone(), Arc::new(compile(s))))
            .collect(),
    })
}

/// Splits a validated document into its set-level parts and its flags, in order.
pub fn split(def: &FlagSetDef) -> (Value, Vec<(String, Value)>) {
    let mut doc = match def.to_value() {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let flags = match doc.remove("flags") {
        Some(Value::Object(m)) => m.into_iter().collect(),
        _ => Vec::new(),
    };
    (Value::Object(doc), flags)
}

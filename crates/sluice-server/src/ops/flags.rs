use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_audit::NewEntry;
use sluice_eval::{FlagSetDef, Snapshot};

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub environment: String,
    pub revision: i64,
    pub flags: usize,
}

impl App {
    /// Imports a flagd document into an environment, replacing its flags: validated and
    /// compiled completely first (a precise error names the JSON path), then stored and
    /// audited in one transaction, then swapped in and announced to SSE subscribers.
    pub async fn import_flags(
        &self,
        caller: &Caller,
        environment: &str,
        document: Value,
    ) -> Result<Imported, ApiError> {
        caller.require_admin()?;
        sluice_core::policy::check_name("environment", environment)
            .map_err(|e| ApiError::bad_request("invalid_environment", e.message))?;
        let def = FlagSetDef::from_value(document)
            .map_err(|e| ApiError::bad_request("invalid_flags", e.to_string()))?;
        Snapshot::compile(&def, 0)
            .map_err(|e| ApiError::bad_request("invalid_flags", e.to_string()))?;
        let (set_doc, flags) = crate::flags::split(&def);
        let digest = hex::encode(Sha256::digest(def.to_value().to_string().as_bytes()));
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let revision = tx
            .replace_flag_set(environment, &set_doc, &flags, &caller.name, now)
            .await?;
        let keys: Vec<&str> = flags.iter().map(|(k, _)| k.as_str()).collect();
        tx.audit(
            now,
            NewEntry::new(&caller.name, "flags.imported")
                .resource(format!("flag:{environment}/*"))
                .details(json!({"environment": environment, "revision": revision, "flags": keys, "sha256": digest})),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            environment,
            revision,
            flags = flags.len(),
            "imported {} flags into {environment}",
            flags.len()
        );
        self.refresh_flags().await?;
        Ok(Imported {
            environment: environment.to_owned(),
            revision,
            flags: flags.len(),
        })
    }
}

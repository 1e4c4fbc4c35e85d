use crate::app::App;
use crate::caller::Caller;
use crate::error::ApiError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_audit::NewEntry;
use sluice_eval::stored::{self, Fault, LENIENT_MARKER};
use sluice_eval::{FlagSetDef, Snapshot};
use sluice_store::StoredFlagSet;

pub use sluice_api::flags::{BrokenFlag, ImportMode};

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub environment: String,
    pub revision: i64,
    pub flags: usize,
    pub mode: ImportMode,
    /// Lenient imports only: flags failing strict validation, in document order.
    pub broken: Vec<BrokenFlag>,
}

fn broken_flag(f: Fault) -> BrokenFlag {
    BrokenFlag {
        key: f.key,
        path: f.path,
        reason: f.reason,
    }
}

/// The stored set as a flagd document (Sluice's marker stripped).
pub fn export_document(set: &StoredFlagSet) -> Value {
    stored::strip_marker(set.to_document()).0
}

impl App {
    /// Imports a flagd document into an environment, replacing its flags: validated and
    /// compiled completely first (strict: a precise error names the JSON path; lenient: the
    /// faulty flags are listed), then stored and audited in one transaction, then swapped in
    /// and announced to SSE subscribers.
    pub async fn import_flags(
        &self,
        caller: &Caller,
        environment: &str,
        document: Value,
        mode: ImportMode,
        create_env: bool,
    ) -> Result<Imported, ApiError> {
        self.check_environment(environment, create_env, caller.admin)
            .await?;
        // An import replaces every flag, so it is the widest change there is: in a protected
        // environment it needs a live grant for `import` on `flag:<env>/*`, administrators
        // included; elsewhere an administrator or a standing permission.
        self.authorize_flag(
            &caller.name,
            caller.admin,
            environment,
            "*",
            "import",
            self.now(),
        )?;
        if document.get(LENIENT_MARKER).is_some() {
            return Err(ApiError::bad_request(
                "invalid_flags",
                format!("$.{LENIENT_MARKER}: reserved; import with ?mode=lenient instead"),
            ));
        }
        let (def, broken) = match mode {
            ImportMode::Strict => {
                let def = FlagSetDef::from_value(document)
                    .map_err(|e| ApiError::bad_request("invalid_flags", e.to_string()))?;
                Snapshot::compile(&def, 0)
                    .map_err(|e| ApiError::bad_request("invalid_flags", e.to_string()))?;
                (def, Vec::new())
            }
            ImportMode::Lenient => {
                let def = FlagSetDef::from_value_lenient(document)
                    .map_err(|e| ApiError::bad_request("invalid_flags", e.to_string()))?;
                let broken = stored::strict_faults(&def)
                    .into_iter()
                    .map(broken_flag)
                    .collect();
                (def, broken)
            }
        };
        let (mut set_doc, flags) = stored::split(&def);
        if mode == ImportMode::Lenient {
            stored::mark_lenient(&mut set_doc);
        }
        let digest = hex::encode(Sha256::digest(def.to_value().to_string().as_bytes()));
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if create_env {
            self.record_environment_created(&mut tx, &caller.name, environment, now)
                .await?;
        }
        let revision = tx
            .replace_flag_set(environment, &set_doc, &flags, &caller.name, now)
            .await?;
        let keys: Vec<&str> = flags.iter().map(|(k, _)| k.as_str()).collect();
        let mut details = json!({"environment": environment, "revision": revision, "flags": keys, "sha256": digest});
        if mode == ImportMode::Lenient {
            details["mode"] = json!("lenient");
            details["broken"] = json!(broken);
        }
        tx.audit(
            now,
            NewEntry::new(&caller.name, "flags.imported")
                .resource(format!("flag:{environment}/*"))
                .details(details),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            environment,
            revision,
            flags = flags.len(),
            broken = broken.len(),
            "imported {} flags into {environment}",
            flags.len()
        );
        self.refresh_flags().await?;
        Ok(Imported {
            environment: environment.to_owned(),
            revision,
            flags: flags.len(),
            mode,
            broken,
        })
    }
}

use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Input, OpError};
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
pub fn export_document(set: StoredFlagSet) -> Value {
    stored::strip_marker(set.into_document()).0
}

/// A time as the store keeps it (milliseconds), so that this instance and one that reads
/// the row back announce the same `updated_at`.
fn stored_time(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    sluice_core::clock::from_ms(sluice_core::clock::to_ms(t))
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
    ) -> Result<Imported, OpError> {
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
            return Err(OpError::invalid(
                Input::Flags,
                format!("$.{LENIENT_MARKER}: reserved; import with ?mode=lenient instead"),
            ));
        }
        // Validated by compiling, once: that compile is what is served once stored.
        let def = FlagSetDef::from_value_lenient(document)
            .map_err(|e| OpError::invalid(Input::Flags, e.to_string()))?;
        let (snapshot, broken) = match mode {
            ImportMode::Strict => {
                let snapshot = Snapshot::compile(&def, 0)
                    .map_err(|e| OpError::invalid(Input::Flags, e.to_string()))?;
                (snapshot, Vec::new())
            }
            ImportMode::Lenient => {
                let broken = stored::strict_faults(&def)
                    .into_iter()
                    .map(broken_flag)
                    .collect();
                (Snapshot::compile_lenient(&def, 0), broken)
            }
        };
        let mut set_doc = def.set_parts();
        if mode == ImportMode::Lenient {
            stored::mark_lenient(&mut set_doc);
        }
        // The digest of the document as it is stored (canonical order), written straight
        // into the hash: no copy of the document is built for it.
        let mut hasher = Sha256::new();
        serde_json::to_writer(&mut hasher, &def)
            .map_err(|e| OpError::Internal(format!("hashing the document: {e}")))?;
        let digest = hex::encode(hasher.finalize());
        let flags = def.flags();
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if create_env {
            self.record_environment_created(&mut tx, &caller.name, environment, now)
                .await?;
        }
        let revision = tx
            .replace_flag_set(environment, &set_doc, flags, &caller.name, now)
            .await?;
        let keys: Vec<&str> = def.flag_keys().collect();
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
        // Read in the transaction: the layers that go with exactly these definitions.
        let layers = tx.flag_layers_in(environment).await?;
        let layered = crate::flags::Layered::compile(environment, &layers, |key| {
            def.flag(key).map(|f| f.variants.clone())
        });
        let count = flags.len();
        // Until this compile is installed, a reload (the sync loop's) leaves this revision to it
        // rather than compiling it again beside it.
        let installing = self.installing(environment, revision);
        tx.commit().await?;
        // Served as compiled above, not read back and compiled again.
        let fresh = layered.into_env(
            environment.to_owned(),
            revision,
            stored_time(now),
            snapshot.at_revision(u64::try_from(revision).unwrap_or(0)),
        );
        self.install_flags(&[std::sync::Arc::new(fresh)]);
        drop(installing);
        drop(def);
        tracing::info!(
            environment,
            revision,
            flags = count,
            broken = broken.len(),
            "imported {count} flags into {environment}",
        );
        Ok(Imported {
            environment: environment.to_owned(),
            revision,
            flags: count,
            mode,
            broken,
        })
    }
}

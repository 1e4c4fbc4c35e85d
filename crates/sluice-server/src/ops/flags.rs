use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_audit::NewEntry;
use sluice_eval::{FlagSetDef, Snapshot};
use sluice_store::StoredFlagSet;

/// Set-level member of a stored document that marks a set imported leniently. Never exported:
/// [`export_document`] strips it, so an export is a plain flagd file.
pub const LENIENT_MARKER: &str = "x-sluice-lenient";

/// How an import treats flags that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// All or nothing: the first invalid thing rejects the document, naming its JSON path.
    #[default]
    Strict,
    /// As flagd loads files: the document is stored whole, and each flag that fails strict
    /// validation is reported and answers `PARSE_ERROR` wherever its fault is reached.
    Lenient,
}

/// A flag that does not pass strict validation, in a lenient import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenFlag {
    /// The flag's key; `None` when the fault is in set-level parts (`$evaluators`).
    pub key: Option<String>,
    /// JSON path of the fault in the submitted document.
    pub path: String,
    pub reason: String,
}

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

/// Every strict-validation fault of a document, one flag at a time: validate, set the failing
/// flag aside, repeat (at most once per flag, plus one).
pub fn strict_faults(def: &FlagSetDef) -> Vec<BrokenFlag> {
    let mut rest = def.clone();
    let mut out = Vec::new();
    for _ in 0..=def.flag_keys().count() {
        let Err(e) = Snapshot::compile(&rest, 0) else {
            break;
        };
        let key = e
            .path
            .strip_prefix("$.flags")
            .and_then(flag_of_path)
            .filter(|k| rest.flag(k).is_some());
        let removed = key.as_deref().and_then(|k| rest.remove_flag(k)).is_some();
        out.push(BrokenFlag {
            key,
            path: e.path,
            reason: e.reason,
        });
        if !removed {
            break;
        }
    }
    let order: Vec<&str> = def.flag_keys().collect();
    out.sort_by_key(|b| {
        b.key
            .as_deref()
            .and_then(|k| order.iter().position(|o| *o == k))
            .unwrap_or(usize::MAX)
    });
    out
}

/// The flag key at the start of a path below `$.flags`: `.key…` or `["odd key"]…`.
fn flag_of_path(rest: &str) -> Option<String> {
    if let Some(quoted) = rest.strip_prefix('[') {
        let mut de = serde_json::Deserializer::from_str(quoted).into_iter::<String>();
        return de.next().and_then(Result::ok);
    }
    let rest = rest.strip_prefix('.')?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Whether a stored set was imported leniently, and its document without the marker.
fn stored_document(set: &StoredFlagSet) -> (Value, bool) {
    let mut doc = set.to_document();
    let lenient = doc
        .as_object_mut()
        .and_then(|m| m.remove(LENIENT_MARKER))
        .is_some_and(|v| v == Value::Bool(true));
    (doc, lenient)
}

/// The stored set as a flagd document (Sluice's marker stripped).
pub fn export_document(set: &StoredFlagSet) -> Value {
    stored_document(set).0
}

/// Compiles a stored set: leniently if it was imported so, else strictly — falling back to
/// lenient (and saying so loudly) if a strictly imported set no longer compiles.
pub fn compile_stored(set: &StoredFlagSet, revision: u64) -> Snapshot {
    let (doc, lenient) = stored_document(set);
    if lenient {
        let def = FlagSetDef::from_value_lenient(doc).unwrap_or_else(|e| {
            tracing::error!(environment = %set.environment, error = %e, "stored flags of {} do not parse: {e}", set.environment);
            FlagSetDef::default()
        });
        return Snapshot::compile_lenient(&def, revision);
    }
    // The document is not kept for the rare fallback: a copy of every definition, alive
    // while the set compiles, is what a large import's memory is made of.
    match FlagSetDef::from_value(doc).and_then(|d| Snapshot::compile(&d, revision)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(environment = %set.environment, error = %e, "stored flags of {} do not compile: {e}", set.environment);
            let def = FlagSetDef::from_value_lenient(stored_document(set).0).unwrap_or_default();
            Snapshot::compile_lenient(&def, revision)
        }
    }
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
                let broken = strict_faults(&def);
                (def, broken)
            }
        };
        let (mut set_doc, flags) = crate::flags::split(&def);
        if mode == ImportMode::Lenient {
            if let Some(m) = set_doc.as_object_mut() {
                m.insert(LENIENT_MARKER.into(), Value::Bool(true));
            }
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

#[cfg(test)]
mod tests {
    use super::flag_of_path;

    #[test]
    fn flag_keys_are_read_from_paths() {
        assert_eq!(flag_of_path(".a-b.targeting.if[1]").as_deref(), Some("a-b"));
        assert_eq!(flag_of_path(".a[2]").as_deref(), Some("a"));
        assert_eq!(flag_of_path(".plain").as_deref(), Some("plain"));
        assert_eq!(
            flag_of_path("[\"odd key.x\"].targeting").as_deref(),
            Some("odd key.x")
        );
        assert_eq!(flag_of_path(""), None);
    }
}

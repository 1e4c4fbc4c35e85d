use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::clock::{from_ms, to_ms};

/// One environment's flag set as stored: the set-level parts of the flagd document and each
/// flag's definition with its own revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlagSet {
    pub environment: String,
    pub revision: i64,
    /// `$schema`, `metadata`, `$evaluators` — everything but `flags`.
    pub document: Value,
    pub flags: Vec<StoredFlag>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlag {
    pub key: String,
    pub revision: i64,
    pub definition: Value,
}

impl StoredFlagSet {
    /// The whole flagd document, flags in their stored order.
    pub fn to_document(&self) -> Value {
        let mut doc = match &self.document {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let flags: serde_json::Map<String, Value> = self
            .flags
            .iter()
            .map(|f| (f.key.clone(), f.definition.clone()))
            .collect();
        doc.insert("flags".into(), Value::Object(flags));
        Value::Object(doc)
    }
}

impl Store {
    /// Every environment's flag set.
    pub async fn flag_sets(&self) -> Result<Vec<StoredFlagSet>, StoreError> {
        let envs = sqlx::query("SELECT name, revision, document, updated_at, updated_by FROM flag_environments ORDER BY name")
            .fetch_all(self.reader())
            .await?;
        let rows = sqlx::query("SELECT environment, key, revision, definition FROM flags ORDER BY environment, position")
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(envs.len());
        for e in &envs {
            let document: String = get(e, "document")?;
            out.push(StoredFlagSet {
                environment: get(e, "name")?,
                revision: get(e, "revision")?,
                document: serde_json::from_str(&document)?,
                flags: Vec::new(),
                updated_at: from_ms(get(e, "updated_at")?),
                updated_by: get(e, "updated_by")?,
            });
        }
        for r in &rows {
            let env: String = get(r, "environment")?;
            let definition: String = get(r, "definition")?;
            if let Some(set) = out.iter_mut().find(|s| s.environment == env) {
                set.flags.push(StoredFlag {
                    key: get(r, "key")?,
                    revision: get(r, "revision")?,
                    definition: serde_json::from_str(&definition)?,
                });
            }
        }
        Ok(out)
    }

    pub async fn flag_set(&self, environment: &str) -> Result<Option<StoredFlagSet>, StoreError> {
        Ok(self
            .flag_sets()
            .await?
            .into_iter()
            .find(|s| s.environment == environment))
    }
}

impl WriteTx {
    /// Replaces an environment's whole flag set (an import), all or nothing. A flag whose
    /// definition is unchanged keeps its revision; a changed one moves to the next; flags not
    /// in `flags` are removed. Returns the environment's new revision.
    pub async fn replace_flag_set(
        &mut self,
        environment: &str,
        document: &Value,
        flags: &[(String, Value)],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let current = sqlx::query("SELECT revision FROM flag_environments WHERE name = $1")
            .bind(environment)
            .fetch_optional(self.conn())
            .await?;
        let revision = match current {
            Some(row) => get::<i64>(&row, "revision")? + 1,
            None => 1,
        };
        sqlx::query(
            "INSERT INTO flag_environments (name, revision, document, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, document = excluded.document, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(environment)
        .bind(revision)
        .bind(serde_json::to_string(document)?)
        .bind(to_ms(now))
        .bind(by)
        .execute(self.conn())
        .await?;
        let old = sqlx::query("SELECT key, revision, definition FROM flags WHERE environment = $1")
            .bind(environment)
            .fetch_all(self.conn())
            .await?;
        let mut old_defs = std::collections::HashMap::new();
        for r in &old {
            let def: String = get(r, "definition")?;
            old_defs.insert(get::<String>(r, "key")?, (get::<i64>(r, "revision")?, def));
        }
        sqlx::query("DELETE FROM flags WHERE environment = $1")
            .bind(environment)
            .execute(self.conn())
            .await?;
        for (position, (key, def)) in flags.iter().enumerate() {
            let text = serde_json::to_string(def)?;
            let rev = match old_defs.get(key) {
                Some((r, d)) if *d == text => *r,
                Some((r, _)) => r + 1,
                None => 1,
            };
            sqlx::query(
                "INSERT INTO flags (environment, key, position, revision, definition, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(environment)
            .bind(key)
            .bind(position as i64)
            .bind(rev)
            .bind(text)
            .bind(to_ms(now))
            .bind(by)
            .execute(self.conn())
            .await?;
        }
        self.bump_flags().await?;
        Ok(revision)
    }
}

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
    /// The whole flagd document, flags in their stored order. Consumes the set: the
    /// definitions move into the document, none is copied.
    pub fn into_document(self) -> Value {
        let mut doc = match self.document {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let flags: serde_json::Map<String, Value> = self
            .flags
            .into_iter()
            .map(|f| (f.key, f.definition))
            .collect();
        doc.insert("flags".into(), Value::Object(flags));
        Value::Object(doc)
    }
}

impl Store {
    /// Every environment's flag set.
    pub async fn flag_sets(&self) -> Result<Vec<StoredFlagSet>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        load_flag_sets(&mut conn, None).await
    }

    /// One environment's flag set: reads that environment's rows only.
    pub async fn flag_set(&self, environment: &str) -> Result<Option<StoredFlagSet>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        Ok(load_flag_sets(&mut conn, Some(environment))
            .await?
            .into_iter()
            .next())
    }

    /// Each environment's name and revision, sorted by name: what a reader compares with
    /// what it holds, to reload only the environments that moved.
    pub async fn flag_revisions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, revision FROM flag_environments ORDER BY name")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "name")?, get(r, "revision")?)))
            .collect()
    }
}

/// The flag sets of every environment, or of `only` that one.
async fn load_flag_sets(
    conn: &mut sqlx::AnyConnection,
    only: Option<&str>,
) -> Result<Vec<StoredFlagSet>, StoreError> {
    const ENVS: &str =
        "SELECT name, revision, document, updated_at, updated_by FROM flag_environments";
    const FLAGS: &str = "SELECT environment, key, revision, definition FROM flags";
    let (envs, rows) = match only {
        Some(env) => (
            sqlx::query(&format!("{ENVS} WHERE name = $1"))
                .bind(env)
                .fetch_all(&mut *conn)
                .await?,
            sqlx::query(&format!("{FLAGS} WHERE environment = $1 ORDER BY position"))
                .bind(env)
                .fetch_all(&mut *conn)
                .await?,
        ),
        None => (
            sqlx::query(&format!("{ENVS} ORDER BY name"))
                .fetch_all(&mut *conn)
                .await?,
            sqlx::query(&format!("{FLAGS} ORDER BY environment, position"))
                .fetch_all(&mut *conn)
                .await?,
        ),
    };
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
    let index: std::collections::HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| (s.environment.clone(), i))
        .collect();
    for r in &rows {
        let env: String = get(r, "environment")?;
        let Some(set) = index.get(&env).and_then(|i| out.get_mut(*i)) else {
            continue;
        };
        let definition: String = get(r, "definition")?;
        set.flags.push(StoredFlag {
            key: get(r, "key")?,
            revision: get(r, "revision")?,
            definition: serde_json::from_str(&definition)?,
        });
    }
    Ok(out)
}

impl WriteTx {
    /// An environment's flag set as this transaction sees it: with the changes of writers
    /// committed before it and, on SQLite, of those earlier in the same batch. Reads that
    /// environment's rows only.
    pub async fn flag_set(
        &mut self,
        environment: &str,
    ) -> Result<Option<StoredFlagSet>, StoreError> {
        Ok(load_flag_sets(self.conn().await?, Some(environment))
            .await?
            .into_iter()
            .next())
    }
}

impl WriteTx {
    /// Replaces an environment's whole flag set (an import), all or nothing. A flag whose
    /// definition is unchanged keeps its revision; a changed one moves to the next; flags not
    /// in `flags` are removed. Returns the environment's new revision. Each definition is
    /// written as JSON from `flags` one at a time, so the caller need not build the document.
    pub async fn replace_flag_set<D: serde::Serialize>(
        &mut self,
        environment: &str,
        document: &Value,
        flags: &[(String, D)],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let current = sqlx::query("SELECT revision FROM flag_environments WHERE name = $1")
            .bind(environment)
            .fetch_optional(self.conn().await?)
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
        .execute(self.conn().await?)
        .await?;
        let old = sqlx::query("SELECT key, revision, definition FROM flags WHERE environment = $1")
            .bind(environment)
            .fetch_all(self.conn().await?)
            .await?;
        let mut old_defs = std::collections::HashMap::new();
        for r in &old {
            let def: String = get(r, "definition")?;
            old_defs.insert(get::<String>(r, "key")?, (get::<i64>(r, "revision")?, def));
        }
        sqlx::query("DELETE FROM flags WHERE environment = $1")
            .bind(environment)
            .execute(self.conn().await?)
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
            .execute(self.conn().await?)
            .await?;
        }
        self.bump_flags().await?;
        Ok(revision)
    }
}

/// What a single-flag write found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagWrite {
    /// The flag before the change, if it existed.
    pub before: Option<StoredFlag>,
    /// The flag's new revision (0 when deleted).
    pub revision: i64,
    /// The environment's new revision.
    pub env_revision: i64,
}

/// Why a single-flag write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagConflict {
    /// The flag's revision is not the one the change was based on.
    Stale { current: Option<i64> },
}

impl WriteTx {
    /// Creates, replaces (`Some`) or deletes (`None`) one flag, if its current revision is
    /// `base` (`None` = the flag must not exist yet). The environment is created if needed.
    pub async fn put_flag(
        &mut self,
        environment: &str,
        key: &str,
        base: Option<i64>,
        definition: Option<&Value>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<FlagWrite, FlagConflict>, StoreError> {
        let env = sqlx::query("UPDATE flag_environments SET revision = revision + 1, updated_at = $1, updated_by = $2 WHERE name = $3 RETURNING revision")
            .bind(to_ms(now))
            .bind(by)
            .bind(environment)
            .fetch_optional(self.conn().await?)
            .await?;
        let env_revision = match env {
            Some(row) => get::<i64>(&row, "revision")?,
            None => {
                sqlx::query("INSERT INTO flag_environments (name, revision, document, updated_at, updated_by) VALUES ($1, 1, '{}', $2, $3)")
                    .bind(environment)
                    .bind(to_ms(now))
                    .bind(by)
                    .execute(self.conn().await?)
                    .await?;
                1
            }
        };
        let row = sqlx::query(
            "SELECT revision, definition FROM flags WHERE environment = $1 AND key = $2",
        )
        .bind(environment)
        .bind(key)
        .fetch_optional(self.conn().await?)
        .await?;
        let before = match &row {
            Some(r) => {
                let def: String = get(r, "definition")?;
                Some(StoredFlag {
                    key: key.to_owned(),
                    revision: get(r, "revision")?,
                    definition: serde_json::from_str(&def)?,
                })
            }
            None => None,
        };
        if before.as_ref().map(|b| b.revision) != base {
            return Ok(Err(FlagConflict::Stale {
                current: before.map(|b| b.revision),
            }));
        }
        let revision = match (definition, &before) {
            (None, _) => {
                sqlx::query("DELETE FROM flags WHERE environment = $1 AND key = $2")
                    .bind(environment)
                    .bind(key)
                    .execute(self.conn().await?)
                    .await?;
                0
            }
            (Some(def), Some(b)) => {
                sqlx::query("UPDATE flags SET revision = $1, definition = $2, updated_at = $3, updated_by = $4 WHERE environment = $5 AND key = $6")
                    .bind(b.revision + 1)
                    .bind(serde_json::to_string(def)?)
                    .bind(to_ms(now))
                    .bind(by)
                    .bind(environment)
                    .bind(key)
                    .execute(self.conn().await?)
                    .await?;
                b.revision + 1
            }
            (Some(def), None) => {
                sqlx::query(
                    "INSERT INTO flags (environment, key, position, revision, definition, updated_at, updated_by) \
                     VALUES ($1, $2, (SELECT COALESCE(MAX(position), -1) + 1 FROM flags WHERE environment = $1), 1, $3, $4, $5)",
                )
                .bind(environment)
                .bind(key)
                .bind(serde_json::to_string(def)?)
                .bind(to_ms(now))
                .bind(by)
                .execute(self.conn().await?)
                .await?;
                1
            }
        };
        self.bump_flags().await?;
        Ok(Ok(FlagWrite {
            before,
            revision,
            env_revision,
        }))
    }
}

impl Store {
    /// The names of the environments that hold a flag set, sorted.
    pub async fn environment_names(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM flag_environments ORDER BY name")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| get(r, "name")).collect()
    }

    /// One flag's layers (targets, rollout), if it has any.
    pub async fn flag_layers_of(
        &self,
        environment: &str,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT body FROM flag_layers WHERE environment = $1 AND key = $2")
            .bind(environment)
            .bind(key)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| {
            let body: String = get(&r, "body")?;
            Ok(serde_json::from_str(&body)?)
        })
        .transpose()
    }

    /// The layers (targets, rollout) of one environment's flags, by key.
    pub async fn flag_layers_in(
        &self,
        environment: &str,
    ) -> Result<Vec<(String, String, Value)>, StoreError> {
        let rows = sqlx::query(LAYERS_IN)
            .bind(environment)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(layer_row).collect()
    }

    /// Every flag's layers (targets, rollout), by environment and key.
    pub async fn flag_layers(&self) -> Result<Vec<(String, String, Value)>, StoreError> {
        let rows =
            sqlx::query("SELECT environment, key, body FROM flag_layers ORDER BY environment, key")
                .fetch_all(self.reader())
                .await?;
        rows.iter().map(layer_row).collect()
    }
}

/// The `flag_layers` rows of one environment.
const LAYERS_IN: &str =
    "SELECT environment, key, body FROM flag_layers WHERE environment = $1 ORDER BY key";

/// One `flag_layers` row: environment, key and the layers' JSON.
fn layer_row(r: &sqlx::any::AnyRow) -> Result<(String, String, Value), StoreError> {
    let body: String = get(r, "body")?;
    Ok((
        get(r, "environment")?,
        get(r, "key")?,
        serde_json::from_str(&body)?,
    ))
}

impl WriteTx {
    /// One flag of an environment, with the environment's set-level parts (`$evaluators`,
    /// `metadata`, …), as this transaction sees them; `None` when the environment holds no
    /// flag set. Reads two rows, whatever the size of the environment.
    pub async fn flag_in(
        &mut self,
        environment: &str,
        key: &str,
    ) -> Result<Option<(Value, Option<StoredFlag>)>, StoreError> {
        let Some(env) = sqlx::query("SELECT document FROM flag_environments WHERE name = $1")
            .bind(environment)
            .fetch_optional(self.conn().await?)
            .await?
        else {
            return Ok(None);
        };
        let document: String = get(&env, "document")?;
        let row = sqlx::query(
            "SELECT key, revision, definition FROM flags WHERE environment = $1 AND key = $2",
        )
        .bind(environment)
        .bind(key)
        .fetch_optional(self.conn().await?)
        .await?;
        let flag = match row {
            Some(r) => {
                let definition: String = get(&r, "definition")?;
                Some(StoredFlag {
                    key: get(&r, "key")?,
                    revision: get(&r, "revision")?,
                    definition: serde_json::from_str(&definition)?,
                })
            }
            None => None,
        };
        Ok(Some((serde_json::from_str(&document)?, flag)))
    }

    /// The layers of one environment's flags, by key, as this transaction sees them.
    pub async fn flag_layers_in(
        &mut self,
        environment: &str,
    ) -> Result<Vec<(String, String, Value)>, StoreError> {
        let rows = sqlx::query(LAYERS_IN)
            .bind(environment)
            .fetch_all(self.conn().await?)
            .await?;
        rows.iter().map(layer_row).collect()
    }

    /// Whether the environment holds a flag set, as this transaction sees it.
    pub async fn environment_exists(&mut self, environment: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT name FROM flag_environments WHERE name = $1")
            .bind(environment)
            .fetch_optional(self.conn().await?)
            .await?;
        Ok(row.is_some())
    }

    /// Reads one flag's layers for update.
    pub async fn lock_flag_layers(
        &mut self,
        environment: &str,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query(
            "UPDATE flag_layers SET body = body WHERE environment = $1 AND key = $2 RETURNING body",
        )
        .bind(environment)
        .bind(key)
        .fetch_optional(self.conn().await?)
        .await?;
        row.map(|r| {
            let body: String = get(&r, "body")?;
            Ok(serde_json::from_str(&body)?)
        })
        .transpose()
    }

    /// Stores one flag's layers and moves the environment's revision (answers may change).
    pub async fn put_flag_layers(
        &mut self,
        environment: &str,
        key: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO flag_layers (environment, key, body, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (environment, key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(environment)
        .bind(key)
        .bind(serde_json::to_string(body)?)
        .bind(to_ms(now))
        .execute(self.conn().await?)
        .await?;
        sqlx::query("UPDATE flag_environments SET revision = revision + 1 WHERE name = $1")
            .bind(environment)
            .execute(self.conn().await?)
            .await?;
        self.bump_flags().await?;
        Ok(())
    }
}

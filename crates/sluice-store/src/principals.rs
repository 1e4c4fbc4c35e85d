use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    pub name: String,
    pub kind: String,
    pub admin: bool,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub principal: String,
    pub kind: String,
    pub environment: Option<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client keys: static evaluation context merged into every evaluation made with the key.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// Connection passwords (kind `db`): the one gateway database they open sessions on.
    pub database: Option<String>,
}

pub(crate) fn principal(row: &AnyRow) -> Result<PrincipalRow, StoreError> {
    Ok(PrincipalRow {
        name: get(row, "name")?,
        kind: get(row, "kind")?,
        admin: get::<i64>(row, "admin")? != 0,
        source: get(row, "source")?,
    })
}

/// A principal signed in through the identity provider and its groups there.
pub(crate) fn idp_member(row: &AnyRow) -> Result<(String, Vec<String>), StoreError> {
    let name: String = get(row, "name")?;
    let text: String = get(row, "idp_groups")?;
    let groups = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("identity provider groups of {name}: {e}")))?;
    Ok((name, groups))
}

fn token(row: &AnyRow) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: get(row, "id")?,
        principal: get(row, "principal")?,
        kind: get(row, "kind")?,
        environment: get(row, "environment")?,
        name: get(row, "name")?,
        created_at: from_ms(get(row, "created_at")?),
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_ms),
        revoked_at: get::<Option<i64>>(row, "revoked_at")?.map(from_ms),
        context: match get::<Option<String>>(row, "context")? {
            None => None,
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("context of a token is not a JSON object: {e}"))
            })?),
        },
        database: get(row, "database")?,
    })
}

const TOKEN_COLS: &str =
    "t.id, t.principal, t.kind, t.environment, t.name, t.created_at, t.expires_at, t.revoked_at, t.context, t.database";

impl Store {
    pub async fn principal(&self, name: &str) -> Result<Option<PrincipalRow>, StoreError> {
        let row = sqlx::query("SELECT name, kind, admin, source FROM principals WHERE name = $1")
            .bind(name)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(principal).transpose()
    }

    pub async fn principals(&self) -> Result<Vec<PrincipalRow>, StoreError> {
        let rows = sqlx::query("SELECT name, kind, admin, source FROM principals ORDER BY name")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(principal).collect()
    }

    pub async fn principal_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM principals")
            .fetch_one(self.reader())
            .await?;
        get(&row, "n")
    }

    /// The token with this hash and its principal, if it is usable at `now`.
    pub async fn token_by_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRow, PrincipalRow)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, p.name AS pname, p.kind AS pkind, p.admin, p.source FROM tokens t \
             JOIN principals p ON p.name = t.principal \
             WHERE t.hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .bind(to_ms(now))
            .fetch_optional(self.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let p = PrincipalRow {
            name: get(&row, "pname")?,
            kind: get(&row, "pkind")?,
            admin: get::<i64>(&row, "admin")? != 0,
            source: get(&row, "source")?,
        };
        Ok(Some((token(&row)?, p)))
    }

    /// Whether a token with this hash exists, is not revoked and expired at or before `now`:
    /// only someone holding the secret can learn it, so saying so reveals nothing.
    pub async fn token_expired(&self, hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM tokens t \
             WHERE t.hash = $1 AND t.revoked_at IS NULL AND t.expires_at IS NOT NULL AND t.expires_at <= $2",
        )
        .bind(hash)
        .bind(to_ms(now))
        .fetch_optional(self.reader())
        .await?;
        Ok(row.is_some())
    }

    pub async fn tokens(&self, principal: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE ($1 IS NULL OR t.principal = $1) ORDER BY t.created_at, t.id"
        );
        let rows = sqlx::query(&sql)
            .bind(principal.map(str::to_owned))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(token).collect()
    }

    /// The client keys of `environment` that are live at `now` (not revoked, not expired), each
    /// with its hash and its principal (what an edge needs to check them itself).
    pub async fn client_keys_in(
        &self,
        environment: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TokenRow, String, PrincipalRow)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, t.hash, p.name AS pname, p.kind AS pkind, p.admin, p.source FROM tokens t \
             JOIN principals p ON p.name = t.principal \
             WHERE t.kind = 'client' AND t.environment = $1 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2) ORDER BY t.id"
        );
        let rows = sqlx::query(&sql)
            .bind(environment)
            .bind(to_ms(now))
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|row| {
                let p = PrincipalRow {
                    name: get(row, "pname")?,
                    kind: get(row, "pkind")?,
                    admin: get::<i64>(row, "admin")? != 0,
                    source: get(row, "source")?,
                };
                Ok((token(row)?, get(row, "hash")?, p))
            })
            .collect()
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(token).transpose()
    }

    /// The identity provider session behind a session token: its principal and the
    /// identity provider's refresh token, sealed (`None` when the provider gave none).
    pub async fn idp_session(
        &self,
        token_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query(
            "SELECT principal, sealed_refresh_token FROM idp_sessions WHERE token_id = $1",
        )
        .bind(token_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| Ok((get(&r, "principal")?, get(&r, "sealed_refresh_token")?)))
            .transpose()
    }

    /// The current policy source and version, if one was applied.
    pub async fn current_policy(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT version, source FROM policies ORDER BY version DESC LIMIT 1")
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| Ok((get(&r, "version")?, get(&r, "source")?)))
            .transpose()
    }
}

impl WriteTx {
    /// How many principals exist, as seen inside this transaction.
    pub async fn principal_count(&mut self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM principals")
            .fetch_one(self.conn().await?)
            .await?;
        get(&row, "n")
    }

    /// Creates or updates a principal.
    pub async fn upsert_principal(
        &mut self,
        p: &PrincipalRow,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO principals (name, kind, admin, source, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, admin = excluded.admin, source = excluded.source",
        )
        .bind(&p.name)
        .bind(&p.kind)
        .bind(i64::from(p.admin))
        .bind(&p.source)
        .bind(to_ms(now))
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    pub async fn insert_token(&mut self, t: &TokenRow, hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, principal, kind, environment, name, hash, created_at, expires_at, context, database) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.id)
        .bind(&t.principal)
        .bind(&t.kind)
        .bind(t.environment.clone())
        .bind(&t.name)
        .bind(hash)
        .bind(to_ms(t.created_at))
        .bind(t.expires_at.map(to_ms))
        .bind(
            t.context
                .as_ref()
                .map(|c| serde_json::Value::Object(c.clone()).to_string()),
        )
        .bind(t.database.clone())
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    /// Records a principal signed in through the identity provider, with the groups its
    /// identity token carried. A new principal is a user of source `oidc`; one the policy
    /// declares keeps its kind and administrator flag. Returns the groups it carried before
    /// (`None` when it never signed in through the identity provider).
    pub async fn upsert_idp_principal(
        &mut self,
        name: &str,
        idp_groups: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let before = sqlx::query("SELECT name, idp_groups FROM principals WHERE name = $1")
            .bind(name)
            .fetch_optional(self.conn().await?)
            .await?;
        let before = match before {
            Some(row) if get::<Option<String>>(&row, "idp_groups")?.is_some() => {
                Some(idp_member(&row)?.1)
            }
            _ => None,
        };
        let groups = serde_json::Value::from(idp_groups.to_vec()).to_string();
        sqlx::query(
            "INSERT INTO principals (name, kind, admin, source, created_at, idp_groups) \
             VALUES ($1, 'user', 0, 'oidc', $2, $3) \
             ON CONFLICT (name) DO UPDATE SET idp_groups = excluded.idp_groups, source = 'oidc'",
        )
        .bind(name)
        .bind(to_ms(now))
        .bind(groups)
        .execute(self.conn().await?)
        .await?;
        Ok(before)
    }

    /// Records the identity provider's refresh token behind a CLI session token, sealed by
    /// the caller (the store never sees it in the clear).
    pub async fn insert_idp_session(
        &mut self,
        token_id: &str,
        principal: &str,
        sealed_refresh_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO idp_sessions (token_id, principal, sealed_refresh_token, created_at, refreshed_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(token_id)
        .bind(principal)
        .bind(sealed_refresh_token.map(str::to_owned))
        .bind(to_ms(now))
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    /// Takes the identity provider session behind `token_id` (deleting it): its principal and
    /// sealed refresh token. `None` when there is none (already refreshed or logged out).
    pub async fn take_idp_session(
        &mut self,
        token_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM idp_sessions WHERE token_id = $1 RETURNING principal, sealed_refresh_token",
        )
        .bind(token_id)
        .fetch_optional(self.conn().await?)
        .await?;
        row.map(|r| Ok((get(&r, "principal")?, get(&r, "sealed_refresh_token")?)))
            .transpose()
    }

    /// Ends every identity provider session of `principal` (its tokens are revoked apart).
    pub async fn end_idp_sessions_of(&mut self, principal: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idp_sessions WHERE principal = $1")
            .bind(principal)
            .execute(self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Marks a token revoked; `false` if it did not exist or was already revoked.
    pub async fn revoke_token(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_ms(now))
                .bind(id)
                .execute(self.conn().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every live token of `principal`; returns the ids revoked.
    pub async fn revoke_tokens_of(
        &mut self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE principal = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(to_ms(now))
        .bind(principal)
        .fetch_all(self.conn().await?)
        .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// Revokes every live token of `kind` of `principal`; returns the ids revoked.
    pub async fn revoke_tokens_of_kind(
        &mut self,
        principal: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 \
             WHERE principal = $2 AND kind = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(to_ms(now))
        .bind(principal)
        .bind(kind)
        .fetch_all(self.conn().await?)
        .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// Records a new policy version; returns its number.
    pub async fn insert_policy(
        &mut self,
        hash: &str,
        source: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM policies")
            .fetch_one(self.conn().await?)
            .await?;
        let version: i64 = get(&row, "v")?;
        sqlx::query("INSERT INTO policies (version, hash, source, applied_at, applied_by) VALUES ($1, $2, $3, $4, $5)")
            .bind(version)
            .bind(hash)
            .bind(source)
            .bind(to_ms(now))
            .bind(by)
            .execute(self.conn().await?)
            .await?;
        Ok(version)
    }
}

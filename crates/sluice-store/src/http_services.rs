//! HTTP gateway services declared through the API.

use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// An HTTP gateway service declared through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredService {
    pub name: String,
    /// The declaration as JSON (upstream, limits, audit mode, the credential's source).
    pub spec: String,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
}

fn declared(r: &AnyRow) -> Result<DeclaredService, StoreError> {
    Ok(DeclaredService {
        name: get(r, "name")?,
        spec: get(r, "spec")?,
        declared_at: from_ms(get(r, "declared_at")?),
        declared_by: get(r, "declared_by")?,
    })
}

impl WriteTx {
    /// Declares (or re-declares) an HTTP service; returns whether it existed before.
    pub async fn put_http_service(&mut self, d: &DeclaredService) -> Result<bool, StoreError> {
        let existed = sqlx::query("SELECT 1 AS one FROM http_services WHERE name = $1")
            .bind(&d.name)
            .fetch_optional(self.conn().await?)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO http_services (name, spec, declared_at, declared_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, declared_at = excluded.declared_at, \
             declared_by = excluded.declared_by",
        )
        .bind(&d.name)
        .bind(&d.spec)
        .bind(to_ms(d.declared_at))
        .bind(&d.declared_by)
        .execute(self.conn().await?)
        .await?;
        Ok(existed)
    }

    /// Removes a declared HTTP service; false if there was none of that name.
    pub async fn delete_http_service(&mut self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM http_services WHERE name = $1")
            .bind(name)
            .execute(self.conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Store {
    /// Every HTTP service declared through the API, by name.
    pub async fn http_services(&self) -> Result<Vec<DeclaredService>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, spec, declared_at, declared_by FROM http_services ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(declared).collect()
    }
}

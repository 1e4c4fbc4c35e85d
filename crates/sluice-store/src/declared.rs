//! Things administrators declare through the API by name — gateway databases and HTTP gateway
//! services — each a JSON spec with who declared it and when, in a table of its own with the
//! same columns (`name`, `spec`, `declared_at`, `declared_by`).

use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// A declaration made through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    /// The declaration as JSON (for a database: upstream, roles and the names of their
    /// credentials; for a service: upstream, limits, audit mode, the credential's source).
    pub spec: String,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
}

/// The tables declarations live in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    GatewayDatabases,
    HttpServices,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::GatewayDatabases => "gateway_databases",
            Kind::HttpServices => "http_services",
        }
    }
}

fn declared(r: &AnyRow) -> Result<Declared, StoreError> {
    Ok(Declared {
        name: get(r, "name")?,
        spec: get(r, "spec")?,
        declared_at: from_ms(get(r, "declared_at")?),
        declared_by: get(r, "declared_by")?,
    })
}

impl WriteTx {
    /// Declares (or re-declares) `d`; returns whether it existed before.
    pub(crate) async fn put_declared(
        &mut self,
        kind: Kind,
        d: &Declared,
    ) -> Result<bool, StoreError> {
        let table = kind.table();
        let existed = sqlx::query(&format!("SELECT 1 AS one FROM {table} WHERE name = $1"))
            .bind(&d.name)
            .fetch_optional(self.conn().await?)
            .await?
            .is_some();
        sqlx::query(&format!(
            "INSERT INTO {table} (name, spec, declared_at, declared_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, declared_at = excluded.declared_at, \
             declared_by = excluded.declared_by"
        ))
        .bind(&d.name)
        .bind(&d.spec)
        .bind(to_ms(d.declared_at))
        .bind(&d.declared_by)
        .execute(self.conn().await?)
        .await?;
        Ok(existed)
    }

    /// Removes the declaration of `name`; false if there was none.
    pub(crate) async fn delete_declared(
        &mut self,
        kind: Kind,
        name: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE name = $1", kind.table());
        let done = sqlx::query(&sql)
            .bind(name)
            .execute(self.conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Store {
    /// The declaration of `name`, if any.
    pub(crate) async fn declared_one(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<Declared>, StoreError> {
        let sql = format!(
            "SELECT name, spec, declared_at, declared_by FROM {} WHERE name = $1",
            kind.table()
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(declared).transpose()
    }

    /// Every declaration of this kind, by name.
    pub(crate) async fn declared_all(&self, kind: Kind) -> Result<Vec<Declared>, StoreError> {
        let sql = format!(
            "SELECT name, spec, declared_at, declared_by FROM {} ORDER BY name",
            kind.table()
        );
        let rows = sqlx::query(&sql).fetch_all(self.reader()).await?;
        rows.iter().map(declared).collect()
    }
}

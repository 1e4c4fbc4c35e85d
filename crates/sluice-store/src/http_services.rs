//! HTTP gateway services declared through the API (stored as [`crate::declared`] declarations).

use crate::declared::{Declared, Kind};
use crate::{Store, StoreError, WriteTx};

/// An HTTP gateway service declared through the API.
pub type DeclaredService = Declared;

impl WriteTx {
    /// Declares (or re-declares) an HTTP service; returns whether it existed before.
    pub async fn put_http_service(&mut self, d: &DeclaredService) -> Result<bool, StoreError> {
        self.put_declared(Kind::HttpServices, d).await
    }

    /// Removes a declared HTTP service; false if there was none of that name.
    pub async fn delete_http_service(&mut self, name: &str) -> Result<bool, StoreError> {
        self.delete_declared(Kind::HttpServices, name).await
    }
}

impl Store {
    /// Every HTTP service declared through the API, by name.
    pub async fn http_services(&self) -> Result<Vec<DeclaredService>, StoreError> {
        self.declared_all(Kind::HttpServices).await
    }
}

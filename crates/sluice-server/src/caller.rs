//! The authenticated principal behind a request, as [`crate::auth`] identifies it, and its
//! name on the request's span (opened by `routes::trace`, which declares the `principal`
//! field this fills in).

use crate::ops::OpError;
use sluice_core::access::Actor;
use sluice_core::token::TokenKind;

/// The authenticated principal behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub admin: bool,
    pub token_id: String,
    pub kind: TokenKind,
    /// For client keys: the one environment they may evaluate.
    pub environment: Option<String>,
    /// For client keys: static evaluation context merged into every evaluation.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// For connection passwords: the one gateway database they open sessions on.
    pub database: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            admin: self.admin,
        }
    }

    /// Names this principal on the current request's span.
    pub fn record_on_span(&self) {
        tracing::Span::current().record("principal", tracing::field::display(&self.name));
    }

    pub fn require_admin(&self) -> Result<(), OpError> {
        if self.admin {
            Ok(())
        } else {
            Err(OpError::Forbidden("this needs an administrator".into()))
        }
    }
}

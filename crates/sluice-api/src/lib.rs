//! The request and response types of Sluice's HTTP API, shared by the server (which documents
//! them in `/openapi.json`) and the command line (which reads them): a renamed field fails to
//! compile on both sides instead of printing blank.
//!
//! Plain data: serde and the OpenAPI schema, no behaviour. States are enums, spelled on the
//! wire as they always were.

pub mod access;
pub mod admin;
pub mod audit;
pub mod authzen;
pub mod edge;
pub mod error;
pub mod flags;
pub mod gateway;
pub mod http_gateway;
pub mod notifications;
pub mod policy;
pub mod sign_in;

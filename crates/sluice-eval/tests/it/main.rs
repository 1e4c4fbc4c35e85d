//! The integration tests of the flag engine: one binary, one module per concern.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on the first surprise"
)]

mod conformance;
mod definition_errors;
mod gherkin;
mod ofrep;
mod operators;
mod props;
mod testbed;
mod testbed_files;

//! Console sign-ins in progress: between the redirect to the identity provider and its
//! answer, what only this server may know — the PKCE verifier and the nonce — kept under the
//! `state` sent along, and bound to the browser that started it (a cookie whose hash is kept).
//!
//! They live in the store ([`sluice_store::PendingSignIn`]), so the answer may land on any
//! instance behind a load balancer: under SHA-256 of the `state`, with the verifier and nonce
//! sealed ([`super::seal`], a key of its own), for ten minutes at most, and taken once.

use super::seal::{Sealer, Unsealable};
use chrono::TimeDelta;
use openidconnect::{Nonce, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How long a sign-in may take at the identity provider.
pub const LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// The HKDF `info` the key sealing sign-ins in progress is derived under.
pub const PURPOSE: &[u8] = b"sluice pending sign-in seal";
/// What the seal of a sign-in in progress is bound to (with its state's hash).
const BOUND_TO: &str = "pending_sign_in";

/// A sign-in started: the `state` sent to the provider, and what its answer needs.
pub struct PendingLogin {
    pub state: String,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

#[derive(Serialize, Deserialize)]
struct Secrets {
    nonce: String,
    verifier: String,
}

/// SHA-256 (hex) of a `state`: the key a sign-in is kept under.
#[must_use]
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl PendingLogin {
    /// The verifier and nonce, sealed and bound to the state.
    pub fn seal(&self, sealer: &Sealer) -> Result<String, Unsealable> {
        let text = serde_json::to_string(&Secrets {
            nonce: self.nonce.secret().clone(),
            verifier: self.verifier.secret().clone(),
        })
        .map_err(|_| Unsealable)?;
        sealer.seal(BOUND_TO, &state_hash(&self.state), &text)
    }

    /// What [`PendingLogin::seal`] sealed for `state`.
    pub fn open(sealer: &Sealer, state: &str, sealed: &str) -> Result<PendingLogin, Unsealable> {
        let text = sealer.open(BOUND_TO, &state_hash(state), sealed)?;
        let s: Secrets = serde_json::from_str(&text).map_err(|_| Unsealable)?;
        Ok(PendingLogin {
            state: state.to_owned(),
            nonce: Nonce::new(s.nonce),
            verifier: PkceCodeVerifier::new(s.verifier),
        })
    }
}

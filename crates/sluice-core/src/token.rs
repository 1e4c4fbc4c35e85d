//! API tokens: opaque secrets with a recognisable prefix, stored only as a hash.

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Authenticates a principal on the whole API.
    Api,
    /// Bound to one environment; may only evaluate flags.
    Client,
    /// A short-lived connection password for one gateway database (`sluice db connect`):
    /// opens PostgreSQL sessions as its principal, nothing else.
    Db,
    /// A signed-in person's session (the console's or `sluice login`'s), issued after a
    /// sign-in through the identity provider; short-lived, and renewed only through it. Used
    /// as an API token of its principal.
    Session,
    /// Held by an edge (`sluice edge`): may only sync the flags of its environments
    /// (`/v1/edge/*`) and report their evaluation counts; nothing else. Bound to one or more
    /// environments.
    Edge,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Api => "slu_api_",
            TokenKind::Client => "slu_cli_",
            TokenKind::Db => "slu_pgw_",
            TokenKind::Session => "slu_ses_",
            TokenKind::Edge => "slu_edg_",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Client => "client",
            TokenKind::Db => "db",
            TokenKind::Session => "session",
            TokenKind::Edge => "edge",
        }
    }
    /// Does it act as its principal on the whole API (an API token or a session)?
    pub fn is_api(self) -> bool {
        matches!(self, TokenKind::Api | TokenKind::Session)
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "client" => Some(Self::Client),
            "db" => Some(Self::Db),
            "session" => Some(Self::Session),
            "edge" => Some(Self::Edge),
            _ => None,
        }
    }
}

/// A token in clear. Shown once, at creation; never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// 256 bits from a CSPRNG, hex-encoded behind the kind's prefix.
    pub fn generate(kind: TokenKind, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(format!("{}{}", kind.prefix(), hex::encode(bytes)))
    }

    /// Wraps a token supplied from outside (a header, `SLUICE_ADMIN_TOKEN`).
    pub fn from_presented(s: &str) -> Self {
        Self(s.trim().to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: hex sha256. A 256-bit random secret needs no slow hash.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn kind(&self) -> Option<TokenKind> {
        kind_of(&self.0)
    }

    /// A token must look like one of ours and be long enough to carry 128 bits.
    pub fn is_well_formed(&self) -> bool {
        Self::well_formed(&self.0)
    }

    /// [`Self::is_well_formed`] of a presented token not (yet) wrapped: the hot paths check
    /// a header's text against the token cache without copying it.
    pub fn well_formed(s: &str) -> bool {
        kind_of(s).is_some() && s.len() >= 8 + 32 && s.is_ascii()
    }
}

/// The kind a token's prefix names.
fn kind_of(s: &str) -> Option<TokenKind> {
    [
        TokenKind::Api,
        TokenKind::Client,
        TokenKind::Db,
        TokenKind::Session,
        TokenKind::Edge,
    ]
    .into_iter()
    .find(|k| s.starts_with(k.prefix()))
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(8).collect();
        write!(f, "SecretToken({shown}…redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_redacted() {
        let mut rng = rand::rngs::OsRng;
        let a = SecretToken::generate(TokenKind::Api, &mut rng);
        let b = SecretToken::generate(TokenKind::Api, &mut rng);
        assert_ne!(a, b);
        assert!(a.expose().starts_with("slu_api_"));
        assert_eq!(a.expose().len(), 8 + 64);
        assert!(a.is_well_formed());
        assert!(!format!("{a:?}").contains(&a.expose()[8..]));
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.expose());
    }
}

//! Standard Webhooks signatures: `webhook-signature: v1,<base64 of HMAC-SHA256 over
//! "{id}.{timestamp}.{body}">`, keyed with the bytes of the secret `whsec_<base64>`.
//! Written here because it is a dozen lines over `hmac` and `sha2`, which the field trusts;
//! the tests check it against the specification's reference library.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header's value for one delivery.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // INVARIANT: HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' own tests.
    #[test]
    fn signs_like_the_reference() {
        let key = crate::notify::config::webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_default();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}

//! Standard Webhooks signing: `webhook-signature` is `v1,<base64 of
//! HMAC-SHA256(key, "id.timestamp.body")>`, where the key is the base64
//! after `whsec_`. With several secrets (a rotation), one signature per
//! secret, space separated, so a receiver holding any of them verifies.
//! Merchants verify with the Standard Webhooks library of their language.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const PREFIX: &str = "whsec_";

/// A signing key, decoded from a `whsec_` secret. Debug never shows it.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

/// Why a secret is unusable. Never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret does not start with `whsec_`.
    #[error(
        "does not start with whsec_ (a Standard Webhooks secret is whsec_ followed by base64)"
    )]
    NoPrefix,
    /// What follows `whsec_` is not base64.
    #[error("the part after whsec_ is not base64")]
    NotBase64,
    /// The key is too short or too long.
    #[error("decodes to {0} bytes; use 24 to 64 random bytes (e.g. `openssl rand -base64 32`)")]
    Length(usize),
}

impl SigningKey {
    /// Decodes a `whsec_` secret.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret.strip_prefix(PREFIX).ok_or(SecretError::NoPrefix)?;
        let key = STANDARD
            .decode(b64.trim())
            .map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(SigningKey(key))
    }

    /// One `v1,<base64>` signature of `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length: new_from_slice cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether any `v1,` entry of a `webhook-signature` header is this
    /// key's signature (constant-time comparison), as a receiver checks.
    pub fn verify(&self, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
        let expected = self.mac(id, timestamp, body);
        header.split(' ').any(|entry| {
            let Some(b64) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(given) = STANDARD.decode(b64) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
                return false;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            !expected.is_empty() && mac.verify_slice(&given).is_ok()
        })
    }
}

/// The `webhook-signature` header: one signature per key, space separated.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| k.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification
    // (github.com/standard-webhooks/standard-webhooks, spec and the
    // reference libraries' tests).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specification_example_vector_is_reproduced_exactly() {
        let key = SigningKey::from_secret(SECRET).expect("test value");
        assert_eq!(key.sign(ID, TS, BODY), SIGNATURE);
        assert!(key.verify(SIGNATURE, ID, TS, BODY));
        assert!(!key.verify(SIGNATURE, ID, TS + 1, BODY));
    }

    #[test]
    fn a_rotation_signs_once_per_secret_and_either_key_verifies() {
        let old = SigningKey::from_secret(SECRET).expect("test value");
        let new = SigningKey::from_secret(&format!("{PREFIX}{}", STANDARD.encode([7u8; 32])))
            .expect("test value");
        let header = signature_header(&[old.clone(), new.clone()], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.starts_with(SIGNATURE));
        assert!(old.verify(&header, ID, TS, BODY) && new.verify(&header, ID, TS, BODY));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        assert_eq!(
            SigningKey::from_secret("MfKQ9r8G").expect_err("refused"),
            SecretError::NoPrefix
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!!").expect_err("refused"),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningKey::from_secret("whsec_AAAA").expect_err("refused"),
            SecretError::Length(3)
        );
        assert!(
            !format!("{:?}", SigningKey::from_secret(SECRET).expect("test value")).contains("MfKQ")
        );
    }
}

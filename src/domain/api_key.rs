//! API keys: random, shown once, stored only as a hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sha2::{Digest, Sha256};

use super::secret::Secret;

/// The prefix that makes a linkstate key recognizable in a leak scanner.
const PREFIX: &str = "lsk_";

/// A new API key: `lsk_` and 32 random bytes.
pub fn generate() -> Secret {
    let bytes: [u8; 32] = rand::rng().random();
    Secret::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a key. The key has 256 bits of entropy, so a plain SHA-256 is enough:
/// a slow password hash protects guessable secrets, which these are not.
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.expose().starts_with("lsk_"));
        assert_eq!(hash(a.expose()), hash(a.expose()));
        assert_ne!(hash(a.expose()), hash(b.expose()));
    }
}

//! Sealing provider credentials (and later account numbers) at rest.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value: nonces that large can be drawn at
//! random without fear of reuse. The associated data binds each sealed value to the row it
//! belongs to, so a sealed token copied onto another connection does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;

const NONCE_LEN: usize = 24;

/// Seals and opens values with `LINKSTATE_ENCRYPTION_KEY`.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

/// Why a key or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// The key is not 32 bytes of base64.
    #[error("must be 32 bytes encoded as base64 ({0})")]
    BadKey(String),
    /// The value was not sealed with this key for this row, or was altered.
    #[error("sealed value does not open with this key")]
    Unopenable,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// A cipher from the base64 form of a 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, CipherError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|e| CipherError::BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(CipherError::BadKey(format!("got {} bytes", bytes.len())));
        }
        let aead = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|e| CipherError::BadKey(e.to_string()))?;
        Ok(Self { aead })
    }

    /// A new random key in base64, for `dev` and tests.
    pub fn generate_key() -> String {
        let bytes: [u8; 32] = rand::rng().random();
        STANDARD.encode(bytes)
    }

    /// Seals `plaintext` for the row named by `context`: nonce then ciphertext.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let nonce = XNonce::from(nonce_bytes);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let ciphertext = self
            .aead
            .encrypt(&nonce, payload)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        [nonce_bytes.as_slice(), &ciphertext].concat()
    }

    /// Opens a value sealed for the row named by `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CipherError> {
        if sealed.len() < NONCE_LEN {
            return Err(CipherError::Unopenable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| CipherError::Unopenable)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        self.aead
            .decrypt(&nonce, payload)
            .map_err(|_| CipherError::Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_the_same_row_only() {
        let cipher = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        let sealed = cipher.seal(b"access-sandbox-1", b"row-1");
        assert!(!sealed.windows(6).any(|w| w == b"access"));
        assert_eq!(cipher.open(&sealed, b"row-1").unwrap(), b"access-sandbox-1");
        assert_eq!(cipher.open(&sealed, b"row-2"), Err(CipherError::Unopenable));
    }

    #[test]
    fn another_key_cannot_open() {
        let a = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        let b = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        assert_eq!(
            b.open(&a.seal(b"x", b"r"), b"r"),
            Err(CipherError::Unopenable)
        );
    }

    #[test]
    fn refuses_short_keys() {
        assert!(matches!(
            Cipher::from_base64("c2hvcnQ="),
            Err(CipherError::BadKey(_))
        ));
    }
}

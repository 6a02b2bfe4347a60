//! Sealing provider credentials (and later account numbers) at rest.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value: nonces that large can be drawn at
//! random without fear of reuse. The associated data binds each sealed value to the row it
//! belongs to, so a sealed token copied onto another connection does not open.
//!
//! Keys rotate without downtime: values are always sealed with the current key, and opened
//! with it or with any of the old keys (`LINKSTATE_ENCRYPTION_OLD_KEYS`) until `linkstate
//! reseal` has moved them all. A sealed value names no key: the AEAD tag tells which one opens
//! it, and trying a handful of keys costs microseconds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;

const NONCE_LEN: usize = 24;

/// Seals values with `LINKSTATE_ENCRYPTION_KEY`; opens them with it or an old key.
#[derive(Clone)]
pub struct Cipher {
    current: XChaCha20Poly1305,
    old: Vec<XChaCha20Poly1305>,
}

/// A value's state under the current key, for `linkstate reseal`.
#[derive(Debug, PartialEq, Eq)]
pub enum Resealed {
    /// It was sealed with the current key already.
    Current,
    /// It was sealed with an old key; this is it sealed with the current one.
    Moved(Vec<u8>),
}

/// Why a key or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// The key is not 32 bytes of base64.
    #[error("must be 32 bytes encoded as base64 ({0})")]
    BadKey(String),
    /// No configured key sealed the value for this row, or it was altered.
    #[error(
        "sealed value opens with no configured key (LINKSTATE_ENCRYPTION_KEY, LINKSTATE_ENCRYPTION_OLD_KEYS)"
    )]
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
        Ok(Self {
            current: aead(key)?,
            old: Vec::new(),
        })
    }

    /// The same cipher, also opening what `keys` (base64, as the current one) sealed.
    pub fn with_old_keys<'a>(
        mut self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, CipherError> {
        for key in keys {
            self.old.push(aead(key)?);
        }
        Ok(self)
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
            .current
            .encrypt(&nonce, payload)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        [nonce_bytes.as_slice(), &ciphertext].concat()
    }

    /// Opens a value sealed for the row named by `context`, with the current key or an old one.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CipherError> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find_map(|key| open_with(key, sealed, context))
            .ok_or(CipherError::Unopenable)
    }

    /// Whether a value is sealed with the current key and, if not, the value sealed with it.
    pub fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Resealed, CipherError> {
        if open_with(&self.current, sealed, context).is_some() {
            return Ok(Resealed::Current);
        }
        let plain = self.open(sealed, context)?;
        Ok(Resealed::Moved(self.seal(&plain, context)))
    }
}

fn aead(key: &str) -> Result<XChaCha20Poly1305, CipherError> {
    let bytes = STANDARD
        .decode(key.trim())
        .map_err(|e| CipherError::BadKey(e.to_string()))?;
    if bytes.len() != 32 {
        return Err(CipherError::BadKey(format!("got {} bytes", bytes.len())));
    }
    XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| CipherError::BadKey(e.to_string()))
}

fn open_with(key: &XChaCha20Poly1305, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let payload = Payload {
        msg: ciphertext,
        aad: context,
    };
    key.decrypt(&nonce, payload).ok()
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
    fn old_keys_open_what_they_sealed_and_new_seals_use_the_current_key() {
        let (old_key, new_key) = (Cipher::generate_key(), Cipher::generate_key());
        let old = Cipher::from_base64(&old_key).unwrap();
        let sealed = old.seal(b"secret", b"row");
        let rotated = Cipher::from_base64(&new_key)
            .unwrap()
            .with_old_keys([old_key.as_str()])
            .unwrap();
        assert_eq!(rotated.open(&sealed, b"row").unwrap(), b"secret");

        let Resealed::Moved(moved) = rotated.reseal(&sealed, b"row").unwrap() else {
            panic!("sealed with the old key");
        };
        let new_only = Cipher::from_base64(&new_key).unwrap();
        assert_eq!(new_only.open(&moved, b"row").unwrap(), b"secret");
        assert_eq!(rotated.reseal(&moved, b"row"), Ok(Resealed::Current));
        assert_eq!(
            new_only.open(&sealed, b"row"),
            Err(CipherError::Unopenable),
            "without the old key the old value does not open"
        );
        assert_eq!(
            new_only.reseal(&sealed, b"row"),
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

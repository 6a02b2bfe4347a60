//! Identifiers shaped like Plaid's: 37-character base62 ids, 15-character request ids,
//! `access-sandbox-<uuid>` and `public-sandbox-<uuid>` tokens; and Akoya's opaque tokens.

use rand::RngExt;
use sha2::{Digest, Sha256};

/// The digits of Plaid's ids.
pub const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The length of Plaid's item and account ids.
pub const ID_LEN: usize = 37;

/// A fresh random item id.
pub fn item_id() -> String {
    random_base62(ID_LEN)
}

/// A fresh request id.
pub fn request_id() -> String {
    random_base62(15)
}

/// A fresh sandbox access token.
pub fn access_token() -> String {
    format!("access-sandbox-{}", uuid::Uuid::new_v4())
}

/// A fresh sandbox public token.
pub fn public_token() -> String {
    format!("public-sandbox-{}", uuid::Uuid::new_v4())
}

/// A fresh Akoya refresh token, opaque as Dex's.
pub fn akoya_refresh_token() -> String {
    format!("akoya-refresh-{}", random_base62(43))
}

/// A fresh Dex access token; Akoya's data API wants the id token instead.
pub fn akoya_access_token() -> String {
    format!("akoya-access-{}", random_base62(43))
}

/// A stable id derived from `seed`, so an item's accounts keep their ids.
pub fn derived_id(seed: &str) -> String {
    let first = Sha256::digest(seed.as_bytes());
    let second = Sha256::digest(first.as_slice());
    first
        .iter()
        .chain(second.iter())
        .take(ID_LEN)
        .map(|byte| BASE62[usize::from(*byte) % BASE62.len()] as char)
        .collect()
}

/// A stable number derived from `seed`, the source of an item's generated data.
pub fn derived_u64(seed: &str) -> u64 {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_slice()[..8]);
    u64::from_be_bytes(bytes)
}

fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_plaids() {
        let id = item_id();
        assert_eq!(id.len(), ID_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, item_id());
        assert_eq!(request_id().len(), 15);
        assert!(access_token().starts_with("access-sandbox-"));
        assert!(public_token().starts_with("public-sandbox-"));
        assert!(akoya_refresh_token().starts_with("akoya-refresh-"));
        assert_ne!(akoya_refresh_token(), akoya_refresh_token());
    }

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(derived_id("a:0000"), derived_id("a:0000"));
        assert_ne!(derived_id("a:0000"), derived_id("a:1111"));
        assert_eq!(derived_id("a").len(), ID_LEN);
        assert_eq!(derived_u64("seed"), derived_u64("seed"));
    }
}

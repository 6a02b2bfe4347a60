//! Verifying Plaid's webhooks on the raw body: the `Plaid-Verification` JWT (ES256 only), its
//! key fetched by `kid` and cached, `iat` within five minutes, and the body's SHA-256 compared
//! in constant time.
//!
//! An [`UnverifiedWebhook`] can only become a [`VerifiedWebhook`] through [`Verifier::verify`],
//! so nothing unverified reaches the code that acts on webhooks by mistake.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{PlaidClient, PlaidErrorKind};

/// How old a signature may be.
const MAX_AGE: Duration = Duration::minutes(5);

/// The header that carries the JWT.
pub const HEADER: &str = "plaid-verification";

/// A delivery as it arrived: nothing in it is trusted yet.
#[derive(Debug)]
pub struct UnverifiedWebhook<'a> {
    /// The `Plaid-Verification` header, if present.
    pub jwt: Option<&'a str>,
    /// The raw body, byte for byte.
    pub body: &'a [u8],
}

/// A delivery whose signature, age and body hash checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// When Plaid signed it.
    pub signed_at: DateTime<Utc>,
    /// Hex SHA-256 of the body: the delivery's identity, since Plaid's webhooks carry no id.
    pub body_sha256: String,
}

/// Why a delivery was refused; the text is what the sender is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// No `Plaid-Verification` header.
    #[error("missing Plaid-Verification header")]
    Missing,
    /// Not a JWT, or its header does not parse.
    #[error("Plaid-Verification is not a well-formed JWT")]
    Malformed,
    /// Signed with another algorithm than ES256.
    #[error("Plaid-Verification must be signed with ES256")]
    WrongAlgorithm,
    /// Plaid does not know the key id.
    #[error("unknown verification key id")]
    UnknownKey,
    /// The key has expired.
    #[error("verification key has expired")]
    ExpiredKey,
    /// The signature does not verify with the key.
    #[error("signature does not verify")]
    BadSignature,
    /// Signed too long ago (or in the future).
    #[error("signature is older than five minutes")]
    TooOld,
    /// The body is not the one that was signed.
    #[error("body does not match the signed hash")]
    BodyMismatch,
    /// Plaid could not be asked for the key; the sender should retry.
    #[error("verification key unavailable: {0}")]
    KeyUnavailable(String),
}

/// The JWS header: which algorithm, and which of Plaid's keys.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims Plaid signs.
#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

/// One of Plaid's verification keys: the public point and when it stops being valid.
#[derive(Clone)]
pub struct VerificationKey {
    key: Arc<UnparsedPublicKey<Vec<u8>>>,
    expired_at: Option<DateTime<Utc>>,
}

impl VerificationKey {
    /// The P-256 key with JWK coordinates `x` and `y` (base64url); `None` when they are not one.
    pub fn from_coordinates(x: &str, y: &str, expired_at: Option<DateTime<Utc>>) -> Option<Self> {
        Some(Self {
            key: Arc::new(public_key(x, y)?),
            expired_at,
        })
    }
}

/// What linkstate knows of a key id: the key, or, for a while, that asking about it failed.
#[derive(Clone)]
enum KeyEntry {
    Known(VerificationKey),
    /// Plaid does not know it; asked again only after [`UNKNOWN_KEY_TTL`].
    Unknown(Instant),
    /// Plaid could not be asked; asked again only after [`FAILED_FETCH_TTL`].
    Failed(Instant),
}

/// How long "Plaid does not know this key id" is believed: anyone can send a JWT naming any
/// key id, and each fetch is a call to Plaid.
const UNKNOWN_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a failed fetch answers for its key id before Plaid is asked again.
const FAILED_FETCH_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Fetches of key ids not seen before, per minute, across all ids: a flood of made-up ids
/// costs Plaid at most this many calls (Plaid rotates its keys rarely).
const NEW_KEY_FETCHES_PER_MINUTE: u32 = 30;

/// Key ids remembered at most; past it, forgotten answers other than keys are dropped.
const MAX_ENTRIES: usize = 10_000;

/// Longest key id looked up; Plaid's are UUIDs.
const MAX_KID_LEN: usize = 64;

/// Verifies Plaid webhooks, caching keys by id.
pub struct Verifier {
    plaid: PlaidClient,
    keys: Mutex<HashMap<String, KeyEntry>>,
    /// One fetch at a time: requests naming the same new key id wait for one answer.
    fetching: tokio::sync::Mutex<()>,
    new_key_fetches: DefaultDirectRateLimiter,
}

impl Verifier {
    /// A verifier that fetches keys through `plaid`.
    pub fn new(plaid: PlaidClient) -> Self {
        let per_minute = NonZeroU32::new(NEW_KEY_FETCHES_PER_MINUTE).expect("non-zero");
        Self {
            plaid,
            keys: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            new_key_fetches: RateLimiter::direct(Quota::per_minute(per_minute)),
        }
    }

    /// Checks a delivery; `now` is the receiving time.
    pub async fn verify(
        &self,
        webhook: UnverifiedWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let kid = key_id(webhook.jwt.ok_or(VerifyError::Missing)?)?;
        let key = self.key(&kid).await?;
        check(webhook, &key, now)
    }

    /// The key for `kid`: from the cache, or from Plaid, one fetch at a time (single flight)
    /// and at most once per key id while its last answer stands.
    async fn key(&self, kid: &str) -> Result<VerificationKey, VerifyError> {
        if let Some(answer) = self.cached(kid) {
            return answer;
        }
        let _turn = self.fetching.lock().await;
        // Whoever held the turn before may have fetched this very key.
        if let Some(answer) = self.cached(kid) {
            return answer;
        }
        if self.new_key_fetches.check().is_err() {
            return Err(VerifyError::KeyUnavailable(
                "too many fetches of unknown key ids".into(),
            ));
        }
        let fetched = self.fetch(kid).await;
        let entry = match &fetched {
            Ok(key) => KeyEntry::Known(key.clone()),
            Err(VerifyError::KeyUnavailable(_)) => {
                KeyEntry::Failed(Instant::now() + FAILED_FETCH_TTL)
            }
            Err(_) => KeyEntry::Unknown(Instant::now() + UNKNOWN_KEY_TTL),
        };
        self.remember(kid, entry);
        fetched
    }

    /// The standing answer for `kid`, if there is one.
    fn cached(&self, kid: &str) -> Option<Result<VerificationKey, VerifyError>> {
        let keys = self.keys.lock().expect("key cache");
        match keys.get(kid)? {
            KeyEntry::Known(key) => Some(Ok(key.clone())),
            KeyEntry::Unknown(until) if Instant::now() < *until => {
                Some(Err(VerifyError::UnknownKey))
            }
            KeyEntry::Failed(until) if Instant::now() < *until => Some(Err(
                VerifyError::KeyUnavailable("the last fetch of this key failed".into()),
            )),
            KeyEntry::Unknown(_) | KeyEntry::Failed(_) => None,
        }
    }

    fn remember(&self, kid: &str, entry: KeyEntry) {
        let mut keys = self.keys.lock().expect("key cache");
        if keys.len() >= MAX_ENTRIES {
            keys.retain(|_, entry| matches!(entry, KeyEntry::Known(_)));
        }
        keys.insert(kid.to_string(), entry);
    }

    /// Asks Plaid for the key `kid`.
    async fn fetch(&self, kid: &str) -> Result<VerificationKey, VerifyError> {
        let jwk = match self.plaid.webhook_verification_key_get(kid).await {
            Ok(response) => response.key,
            Err(error) => {
                return Err(match error.kind() {
                    PlaidErrorKind::Refused | PlaidErrorKind::CredentialsRefused => {
                        VerifyError::UnknownKey
                    }
                    _ => VerifyError::KeyUnavailable(error.to_string()),
                });
            }
        };
        if jwk.alg != "ES256" || jwk.crv != "P-256" {
            return Err(VerifyError::WrongAlgorithm);
        }
        let expired_at = jwk
            .expired_at
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
        VerificationKey::from_coordinates(&jwk.x, &jwk.y, expired_at).ok_or(VerifyError::UnknownKey)
    }
}

/// The key id a delivery's JWT names, once its header is well formed and says ES256: all that
/// is read before a key is known.
pub fn key_id(jwt: &str) -> Result<String, VerifyError> {
    let header = header(jwt)?;
    if header.alg != "ES256" {
        return Err(VerifyError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(VerifyError::Malformed)?;
    if kid.len() > MAX_KID_LEN || kid.contains(|c: char| c.is_control()) {
        return Err(VerifyError::Malformed);
    }
    Ok(kid)
}

/// Checks a delivery against the key its header names: the key's expiry, the signature, the
/// age at `now`, and the body's hash.
pub fn check(
    webhook: UnverifiedWebhook<'_>,
    key: &VerificationKey,
    now: DateTime<Utc>,
) -> Result<VerifiedWebhook, VerifyError> {
    let jwt = webhook.jwt.ok_or(VerifyError::Missing)?;
    if key.expired_at.is_some_and(|expired| expired <= now) {
        return Err(VerifyError::ExpiredKey);
    }
    let claims = decode(jwt, &key.key)?;
    let signed_at = DateTime::from_timestamp(claims.iat, 0).ok_or(VerifyError::Malformed)?;
    if now - signed_at > MAX_AGE || signed_at - now > MAX_AGE {
        return Err(VerifyError::TooOld);
    }
    let body_sha256 = hex::encode(Sha256::digest(webhook.body));
    let matches: bool = body_sha256
        .as_bytes()
        .ct_eq(claims.request_body_sha256.as_bytes())
        .into();
    if !matches {
        return Err(VerifyError::BodyMismatch);
    }
    Ok(VerifiedWebhook {
        signed_at,
        body_sha256,
    })
}

/// The P-256 public key with coordinates `x` and `y` (base64url, as in a JWK).
fn public_key(x: &str, y: &str) -> Option<UnparsedPublicKey<Vec<u8>>> {
    let (x, y) = (
        URL_SAFE_NO_PAD.decode(x).ok()?,
        URL_SAFE_NO_PAD.decode(y).ok()?,
    );
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    // The uncompressed SEC1 encoding: 0x04, then x, then y.
    let point = [&[0x04][..], &x, &y].concat();
    Some(UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point))
}

/// Reads the header of a compact JWS (`header.payload.signature`), before any key is known.
fn header(jwt: &str) -> Result<Header, VerifyError> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)
}

/// Checks the signature and reads the claims; the age is checked by the caller against its own
/// clock. The signature is checked with ring, which verifies about five times faster than the
/// pure-Rust p256 that jsonwebtoken offers; on the ingest path that was a sixth of the machine.
fn decode(jwt: &str, key: &UnparsedPublicKey<Vec<u8>>) -> Result<Claims, VerifyError> {
    let (signing_input, signature) = jwt.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| VerifyError::Malformed)?;
    // JWS's ES256 signature is r and s, 32 bytes each: ring's "fixed" encoding.
    key.verify(signing_input.as_bytes(), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let (_, payload) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)
}

//! Verifying Plaid's webhooks on the raw body: the `Plaid-Verification` JWT (ES256 only), its
//! key fetched by `kid` and cached, `iat` within five minutes, and the body's SHA-256 compared
//! in constant time.
//!
//! An [`UnverifiedWebhook`] can only become a [`VerifiedWebhook`] through [`Verifier::verify`],
//! so nothing unverified reaches the code that acts on webhooks by mistake.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{PlaidClient, PlaidError};

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

#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

/// A key as cached: the decoding key and when it stops being valid.
#[derive(Clone)]
struct CachedKey {
    key: DecodingKey,
    expired_at: Option<DateTime<Utc>>,
}

/// Verifies Plaid webhooks, caching keys by id.
pub struct Verifier {
    plaid: PlaidClient,
    keys: Mutex<HashMap<String, CachedKey>>,
}

impl Verifier {
    /// A verifier that fetches keys through `plaid`.
    pub fn new(plaid: PlaidClient) -> Self {
        Self {
            plaid,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a delivery; `now` is the receiving time.
    pub async fn verify(
        &self,
        webhook: UnverifiedWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let jwt = webhook.jwt.ok_or(VerifyError::Missing)?;
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| VerifyError::Malformed)?;
        if header.alg != Algorithm::ES256 {
            return Err(VerifyError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(VerifyError::Malformed)?;
        let key = self.key(&kid).await?;
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

    /// The key for `kid`, from the cache or, for an id not seen before, from Plaid.
    async fn key(&self, kid: &str) -> Result<CachedKey, VerifyError> {
        if let Some(key) = self.keys.lock().expect("key cache").get(kid) {
            return Ok(key.clone());
        }
        let jwk = match self.plaid.webhook_verification_key_get(kid).await {
            Ok(response) => response.key,
            Err(PlaidError::Api { http_status, .. }) if http_status < 500 => {
                return Err(VerifyError::UnknownKey);
            }
            Err(error) => return Err(VerifyError::KeyUnavailable(error.to_string())),
        };
        if jwk.alg != "ES256" || jwk.crv != "P-256" {
            return Err(VerifyError::WrongAlgorithm);
        }
        let key = CachedKey {
            key: DecodingKey::from_ec_components(&jwk.x, &jwk.y)
                .map_err(|_| VerifyError::UnknownKey)?,
            expired_at: jwk
                .expired_at
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
        };
        self.keys
            .lock()
            .expect("key cache")
            .insert(kid.to_string(), key.clone());
        Ok(key)
    }
}

/// Checks the signature; the age is checked by the caller against its own clock.
fn decode(jwt: &str, key: &DecodingKey) -> Result<Claims, VerifyError> {
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(jwt, key, &validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed,
        })
}

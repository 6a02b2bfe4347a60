//! The simulator's webhook signing key: a P-256 key pair made at start-up, published as Plaid's
//! `JWKPublicKey` and used to sign webhooks the way Plaid does (an ES256 JWT over the body's
//! SHA-256 in the `Plaid-Verification` header).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use linkstate_wire::plaid::JwkPublicKey;

/// A webhook signing key and its id.
pub struct WebhookKey {
    /// The `kid` of the JWT header.
    pub kid: String,
    /// Unix time of creation.
    pub created_at: i64,
    /// Unix time it stopped being valid, once it is rotated out.
    pub expired_at: Option<i64>,
    signing_key: SigningKey,
    /// The same key, as jsonwebtoken wants it.
    encoding_key: EncodingKey,
}

/// The claims of Plaid's webhook JWT.
#[derive(Serialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

impl WebhookKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let signing_key = random_signing_key();
        let der = signing_key
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8");
        Self {
            kid: uuid::Uuid::new_v4().to_string(),
            created_at: chrono::Utc::now().timestamp(),
            expired_at: None,
            encoding_key: EncodingKey::from_ec_der(der.as_bytes()),
            signing_key,
        }
    }

    /// The `Plaid-Verification` header for a webhook with this exact body: a JWT with header
    /// `{alg: ES256, kid, typ: JWT}` and claims `iat` (now) and `request_body_sha256` (hex).
    pub fn sign(&self, body: &[u8]) -> String {
        self.sign_at(body, chrono::Utc::now().timestamp())
    }

    /// The same, signed as if at `iat` (Unix seconds): for tests of stale signatures.
    pub fn sign_at(&self, body: &[u8], iat: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            iat,
            request_body_sha256: hex::encode(Sha256::digest(body)),
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .expect("ES256 signing with a valid P-256 key")
    }

    /// The public half, as `/webhook_verification_key/get` answers it.
    pub fn jwk(&self) -> JwkPublicKey {
        let point = self.signing_key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&_>| URL_SAFE_NO_PAD.encode(c.expect("an uncompressed point"));
        JwkPublicKey {
            alg: "ES256".to_owned(),
            crv: "P-256".to_owned(),
            kid: self.kid.clone(),
            kty: "EC".to_owned(),
            r#use: "sig".to_owned(),
            x: coordinate(point.x()),
            y: coordinate(point.y()),
            created_at: self.created_at,
            expired_at: self.expired_at,
        }
    }
}

/// A key from the OS random generator; retried in the (astronomically rare) case the 32 bytes
/// are not a valid P-256 scalar.
fn random_signing_key() -> SigningKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn jwk_has_plaids_shape() {
        let key = WebhookKey::generate();
        let jwk = key.jwk();
        assert_eq!((jwk.alg.as_str(), jwk.crv.as_str()), ("ES256", "P-256"));
        assert_eq!((jwk.kty.as_str(), jwk.r#use.as_str()), ("EC", "sig"));
        assert_eq!(jwk.kid, key.kid);
        assert_eq!(jwk.x.len(), 43, "32 bytes base64url without padding");
        assert_eq!(jwk.y.len(), 43);
        assert_eq!(jwk.expired_at, None);
    }

    #[test]
    fn jwk_verifies_what_the_key_signs() {
        let key = WebhookKey::generate();
        let body = br#"{"webhook_type":"TRANSACTIONS"}"#;
        let token = key.sign(body);

        let jwk = key.jwk();
        let decoding = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        let digest = hex::encode(Sha256::digest(body));
        assert_eq!(data.claims["request_body_sha256"], digest.as_str());
        let age = chrono::Utc::now().timestamp() - data.claims["iat"].as_i64().unwrap();
        assert!((0..5).contains(&age), "{age}");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    }
}

//! The simulator's webhook signing key: a P-256 key pair made at start-up, published as Plaid's
//! `JWKPublicKey` and kept whole so webhooks can be signed with ES256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey;

use crate::providers::plaid::JwkPublicKey;

/// A webhook signing key and its id.
pub struct WebhookKey {
    /// The `kid` of the JWT header.
    pub kid: String,
    /// Unix time of creation.
    pub created_at: i64,
    signing_key: SigningKey,
}

impl WebhookKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self {
            kid: uuid::Uuid::new_v4().to_string(),
            created_at: chrono::Utc::now().timestamp(),
            signing_key: random_signing_key(),
        }
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
            expired_at: None,
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
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use p256::pkcs8::EncodePrivateKey;

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
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let claims =
            serde_json::json!({"iat": chrono::Utc::now().timestamp(), "request_body_sha256": "ab"});
        let der = key.signing_key.to_pkcs8_der().unwrap();
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();

        let jwk = key.jwk();
        let decoding = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["request_body_sha256"], "ab");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
    }
}

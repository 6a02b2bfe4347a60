//! Akoya's consents: the one refresh token of each that works now, the id tokens (JWTs) it was
//! issued, and the accounts it shares. They live in the simulator's state, under its one lock,
//! so of two refreshes with the same token exactly one wins.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::ids;
use linkstate_wire::akoya::TokenResponse;

/// How long id tokens live unless told otherwise: Dex answers `expires_in: 86399`.
pub const DEFAULT_ID_TOKEN_LIFETIME: Duration = Duration::from_secs(86_399);

/// The `iss` of the id tokens: Akoya's sandbox IDP.
const ISSUER: &str = "https://sandbox-idp.ddp.akoya.com";

/// Every consent, and the key that signs their id tokens.
pub struct Consents {
    by_id: HashMap<String, Consent>,
    /// The refresh token that works now → its consent; a used token leaves at once.
    refresh_tokens: HashMap<String, String>,
    /// Refreshes refused because the token was stale, unknown or revoked.
    pub refused: usize,
    /// How long the id tokens issued from now on live.
    pub id_token_lifetime: Duration,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    validation: Validation,
}

/// One consent: a customer's grant of some accounts at a provider.
pub struct Consent {
    /// Its id, the `grant_id` of its id tokens.
    pub consent_id: String,
    /// The institution, Akoya's provider id (e.g. `mikomo`).
    pub provider_id: String,
    /// The Item that holds its accounts and transactions.
    pub item_id: String,
    /// The customer's id, also the id tokens' `sub`.
    pub customer_id: String,
    /// The refresh token that works now, unless the consent is revoked.
    pub refresh_token: String,
    /// jti → expiry of the id tokens issued: each stays valid until its expiry, whatever was
    /// issued after it, as JWTs do.
    id_tokens: HashMap<String, DateTime<Utc>>,
    /// Whether the customer revoked it.
    pub revoked: bool,
    /// The accounts it shares now, in the order they were shared.
    pub shared: Vec<String>,
    /// Successful refreshes so far.
    pub refreshes: usize,
}

/// The claims of an id token (a subset of Akoya's, with Dex's names).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    grant_id: String,
    exp: i64,
    iat: i64,
    iss: String,
    sub: String,
    #[serde(rename = "connectorId")]
    connector_id: String,
    accounts: Vec<String>,
    jti: String,
}

impl Consents {
    /// No consents, and a fresh random signing key.
    pub fn new() -> Self {
        let secret: [u8; 32] = rand::random();
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the record, to the instant, not to the claim's second.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Self {
            by_id: HashMap::new(),
            refresh_tokens: HashMap::new(),
            refused: 0,
            id_token_lifetime: DEFAULT_ID_TOKEN_LIFETIME,
            encoding_key: EncodingKey::from_secret(&secret),
            decoding_key: DecodingKey::from_secret(&secret),
            validation,
        }
    }

    /// A new consent to `accounts` of the Item `item_id`, with its first refresh token.
    pub fn create(&mut self, provider_id: &str, item_id: &str, accounts: Vec<String>) -> &Consent {
        let consent_id = uuid::Uuid::new_v4().to_string();
        let refresh_token = ids::akoya_refresh_token();
        self.refresh_tokens
            .insert(refresh_token.clone(), consent_id.clone());
        let consent = Consent {
            consent_id: consent_id.clone(),
            provider_id: provider_id.to_owned(),
            item_id: item_id.to_owned(),
            customer_id: ids::derived_id(&format!("{item_id}:customer")),
            refresh_token,
            id_tokens: HashMap::new(),
            revoked: false,
            shared: accounts,
            refreshes: 0,
        };
        self.by_id.entry(consent_id).or_insert(consent)
    }

    /// The consent with this id.
    pub fn get(&self, consent_id: &str) -> Option<&Consent> {
        self.by_id.get(consent_id)
    }

    /// The consent with this id, to change.
    pub fn get_mut(&mut self, consent_id: &str) -> Option<&mut Consent> {
        self.by_id.get_mut(consent_id)
    }

    /// The refresh token that works now; `None` once revoked.
    pub fn refresh_token(&self, consent_id: &str) -> Option<&str> {
        let consent = self.get(consent_id).filter(|consent| !consent.revoked)?;
        Some(&consent.refresh_token)
    }

    /// Trades the refresh token that works now for a new one and a new id token, as Dex does;
    /// the old token stops working at once. `None` (and counted) for a token that is unknown,
    /// rotated away, or whose consent is revoked.
    pub fn refresh(&mut self, refresh_token: &str, now: DateTime<Utc>) -> Option<TokenResponse> {
        let Some(consent_id) = self.refresh_tokens.remove(refresh_token) else {
            self.refused += 1;
            return None;
        };
        let consent = self
            .by_id
            .get_mut(&consent_id)
            .expect("a working refresh token has its consent");
        let next = ids::akoya_refresh_token();
        consent.refresh_token = next.clone();
        self.refresh_tokens.insert(next.clone(), consent_id);
        consent.refreshes += 1;

        let lifetime = self.id_token_lifetime;
        let expires_at = TimeDelta::from_std(lifetime)
            .ok()
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Expired id tokens can go: they would be refused anyway.
        consent.id_tokens.retain(|_, expiry| *expiry > now);
        let jti = uuid::Uuid::new_v4().to_string();
        consent.id_tokens.insert(jti.clone(), expires_at);
        let claims = Claims {
            grant_id: consent.consent_id.clone(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            iss: ISSUER.to_owned(),
            sub: consent.customer_id.clone(),
            connector_id: consent.provider_id.clone(),
            accounts: consent.shared.clone(),
            jti,
        };
        let id_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
                .expect("HS256 signing with a 32-byte key");
        Some(TokenResponse {
            id_token,
            refresh_token: Some(next),
            token_type: Some("bearer".to_owned()),
            expires_in: Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
            access_token: Some(ids::akoya_access_token()),
        })
    }

    /// Revokes the consent: its refresh token and id tokens stop working. `false` if unknown.
    pub fn revoke(&mut self, consent_id: &str) -> bool {
        let Some(consent) = self.by_id.get_mut(consent_id) else {
            return false;
        };
        consent.revoked = true;
        self.refresh_tokens.remove(&consent.refresh_token);
        true
    }

    /// Revokes the consent whose current refresh token this is, as `{idp}/revoke` does; false
    /// for a token that works nowhere.
    pub fn revoke_by_token(&mut self, refresh_token: &str) -> bool {
        match self.refresh_tokens.get(refresh_token).cloned() {
            Some(consent_id) => self.revoke(&consent_id),
            None => false,
        }
    }

    /// The consent an id token opens at `provider_id`: one signed here, not expired, whose
    /// consent is not revoked and is at that provider.
    pub fn authorize(
        &self,
        id_token: &str,
        provider_id: &str,
        now: DateTime<Utc>,
    ) -> Option<&Consent> {
        let claims = jsonwebtoken::decode::<Claims>(id_token, &self.decoding_key, &self.validation)
            .ok()?
            .claims;
        let consent = self.get(&claims.grant_id)?;
        let expires_at = consent.id_tokens.get(&claims.jti)?;
        let valid = now < *expires_at && !consent.revoked && consent.provider_id == provider_id;
        valid.then_some(consent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consents() -> (Consents, String, String) {
        let mut consents = Consents::new();
        let consent = consents.create("mikomo", "item-a", vec!["a1".into(), "a2".into()]);
        let (id, token) = (consent.consent_id.clone(), consent.refresh_token.clone());
        (consents, id, token)
    }

    fn claims(id_token: &str, consents: &Consents) -> Claims {
        jsonwebtoken::decode::<Claims>(id_token, &consents.decoding_key, &consents.validation)
            .unwrap()
            .claims
    }

    #[test]
    fn a_refresh_rotates_the_token() {
        let (mut consents, id, first) = consents();
        let now = Utc::now();
        let answer = consents.refresh(&first, now).unwrap();
        let second = answer.refresh_token.clone().unwrap();
        assert!(second.starts_with("akoya-refresh-") && second != first);
        assert_eq!(consents.refresh_token(&id), Some(second.as_str()));
        assert_eq!(answer.expires_in, Some(86_399));
        assert_eq!(answer.token_type.as_deref(), Some("bearer"));

        assert!(
            consents.refresh(&first, now).is_none(),
            "the old token is spent"
        );
        assert!(consents.refresh("akoya-refresh-unknown", now).is_none());
        assert_eq!(consents.refused, 2);
        assert!(consents.refresh(&second, now).is_some());
        assert_eq!(consents.get(&id).unwrap().refreshes, 2);
    }

    #[test]
    fn id_tokens_carry_the_consent() {
        let (mut consents, id, token) = consents();
        let now = Utc::now();
        let answer = consents.refresh(&token, now).unwrap();
        let claims = claims(&answer.id_token, &consents);
        assert_eq!(claims.grant_id, id);
        assert_eq!(claims.connector_id, "mikomo");
        assert_eq!(claims.accounts, ["a1", "a2"]);
        assert_eq!(claims.exp - claims.iat, 86_399);
        assert_eq!(claims.sub, consents.get(&id).unwrap().customer_id);
    }

    #[test]
    fn id_tokens_open_their_provider_until_they_expire() {
        let (mut consents, id, token) = consents();
        let now = Utc::now();
        let first = consents.refresh(&token, now).unwrap();
        let next = first.refresh_token.clone().unwrap();
        let second = consents.refresh(&next, now).unwrap();
        for answer in [&first, &second] {
            let consent = consents.authorize(&answer.id_token, "mikomo", now).unwrap();
            assert_eq!(consent.consent_id, id, "an older id token still works");
        }
        assert!(consents.authorize(&first.id_token, "other", now).is_none());
        assert!(consents.authorize("not-a-jwt", "mikomo", now).is_none());
        let later = now + TimeDelta::seconds(86_399);
        assert!(
            consents
                .authorize(&first.id_token, "mikomo", later)
                .is_none()
        );

        let mut tampered = second.id_token.clone();
        tampered.pop();
        assert!(consents.authorize(&tampered, "mikomo", now).is_none());
    }

    #[test]
    fn a_revoked_consent_opens_nothing() {
        let (mut consents, id, token) = consents();
        let now = Utc::now();
        let answer = consents.refresh(&token, now).unwrap();
        assert!(consents.revoke(&id));
        assert!(!consents.revoke("unknown"));
        assert_eq!(consents.refresh_token(&id), None);
        assert!(
            consents
                .authorize(&answer.id_token, "mikomo", now)
                .is_none()
        );
        let next = answer.refresh_token.unwrap();
        assert!(consents.refresh(&next, now).is_none());
        assert_eq!(consents.refused, 1);
    }

    #[test]
    fn a_zero_lifetime_id_token_is_expired_at_once() {
        let (mut consents, _, token) = consents();
        consents.id_token_lifetime = Duration::ZERO;
        let now = Utc::now();
        let answer = consents.refresh(&token, now).unwrap();
        assert_eq!(answer.expires_in, Some(0));
        assert!(
            consents
                .authorize(&answer.id_token, "mikomo", now)
                .is_none()
        );
    }
}

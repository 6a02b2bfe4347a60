//! The HTTP client of Plaid's API: every call is a JSON `POST` carrying `client_id` and `secret`.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use linkstate_wire::plaid::*;

use super::error::PlaidError;
use crate::domain::secret::Secret;

/// Where Plaid is and which keys to use.
#[derive(Debug, Clone)]
pub struct PlaidConfig {
    /// `https://sandbox.plaid.com`, `https://production.plaid.com` or a simulator's address.
    pub base_url: String,
    /// `PLAID_CLIENT_ID`; unset (or empty) leaves the client unconfigured.
    pub client_id: Option<String>,
    /// `PLAID_SECRET`; unset (or empty) leaves the client unconfigured.
    pub secret: Option<Secret>,
    /// The limit for a whole call, answer body included.
    pub timeout: Duration,
}

/// A Plaid API client; cheap to clone, clones share connections.
#[derive(Debug, Clone)]
pub struct PlaidClient {
    http: reqwest::Client,
    base_url: String,
    keys: Option<ApiKeys>,
}

/// The client's API keys, present only when both are set.
#[derive(Debug, Clone)]
struct ApiKeys {
    client_id: String,
    secret: Secret,
}

/// A request body: the keys first, then the endpoint's own fields.
#[derive(Serialize)]
struct Envelope<'a, R> {
    client_id: &'a str,
    secret: &'a str,
    #[serde(flatten)]
    request: &'a R,
}

impl PlaidClient {
    /// Builds a client.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised, which only happens on a broken system.
    pub fn new(config: PlaidConfig) -> Self {
        // reqwest is built without a rustls crypto provider; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .expect("the HTTP client for Plaid could not be built");
        let keys = match (config.client_id, config.secret) {
            (Some(client_id), Some(secret))
                if !client_id.is_empty() && !secret.expose().is_empty() =>
            {
                Some(ApiKeys { client_id, secret })
            }
            _ => None,
        };
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Self {
            http,
            base_url,
            keys,
        }
    }

    /// Whether both API keys are set.
    pub fn is_configured(&self) -> bool {
        self.keys.is_some()
    }

    /// `/item/get`: the Item's institution, products, webhook and error.
    pub async fn item_get(&self, access_token: &Secret) -> Result<ItemGetResponse, PlaidError> {
        let request = ItemGetRequest {
            access_token: access_token.clone(),
        };
        self.call("/item/get", &request).await
    }

    /// `/accounts/get`: the Item's accounts with cached balances.
    pub async fn accounts_get(
        &self,
        access_token: &Secret,
    ) -> Result<AccountsGetResponse, PlaidError> {
        let request = AccountsGetRequest {
            access_token: access_token.clone(),
        };
        self.call("/accounts/get", &request).await
    }

    /// `/accounts/balance/get`: the Item's accounts with balances fetched from the institution now.
    pub async fn accounts_balance_get(
        &self,
        access_token: &Secret,
    ) -> Result<AccountsGetResponse, PlaidError> {
        let request = AccountsBalanceGetRequest {
            access_token: access_token.clone(),
        };
        self.call("/accounts/balance/get", &request).await
    }

    /// `/auth/get`: the accounts with their account and routing numbers.
    pub async fn auth_get(&self, access_token: &Secret) -> Result<AuthGetResponse, PlaidError> {
        let request = AuthGetRequest {
            access_token: access_token.clone(),
        };
        self.call("/auth/get", &request).await
    }

    /// `/identity/get`: the accounts with their owners.
    pub async fn identity_get(
        &self,
        access_token: &Secret,
    ) -> Result<IdentityGetResponse, PlaidError> {
        let request = IdentityGetRequest {
            access_token: access_token.clone(),
        };
        self.call("/identity/get", &request).await
    }

    /// `/transactions/sync`: up to `count` (1 to 500) changes since `cursor`; no cursor starts
    /// from the beginning of the Item's history.
    pub async fn transactions_sync(
        &self,
        access_token: &Secret,
        cursor: Option<&str>,
        count: u32,
    ) -> Result<TransactionsSyncResponse, PlaidError> {
        let request = TransactionsSyncRequest {
            access_token: access_token.clone(),
            cursor: cursor.map(str::to_owned),
            count: Some(count),
        };
        self.call("/transactions/sync", &request).await
    }

    /// `/transactions/refresh`: asks Plaid to look for new transactions now; the answer comes
    /// later as a `SYNC_UPDATES_AVAILABLE` webhook.
    pub async fn transactions_refresh(
        &self,
        access_token: &Secret,
    ) -> Result<TransactionsRefreshResponse, PlaidError> {
        let request = TransactionsRefreshRequest {
            access_token: access_token.clone(),
        };
        self.call("/transactions/refresh", &request).await
    }

    /// `/item/remove`: deletes the Item at Plaid; its access token stops working.
    pub async fn item_remove(
        &self,
        access_token: &Secret,
    ) -> Result<ItemRemoveResponse, PlaidError> {
        let request = ItemRemoveRequest {
            access_token: access_token.clone(),
        };
        self.call("/item/remove", &request).await
    }

    /// `/item/webhook/update`: points the Item's webhooks at `webhook`.
    pub async fn item_webhook_update(
        &self,
        access_token: &Secret,
        webhook: &str,
    ) -> Result<ItemWebhookUpdateResponse, PlaidError> {
        let request = ItemWebhookUpdateRequest {
            access_token: access_token.clone(),
            webhook: Some(webhook.to_owned()),
        };
        self.call("/item/webhook/update", &request).await
    }

    /// `/institutions/get_by_id`, in the US.
    pub async fn institutions_get_by_id(
        &self,
        institution_id: &str,
    ) -> Result<InstitutionsGetByIdResponse, PlaidError> {
        let request = InstitutionsGetByIdRequest {
            institution_id: institution_id.to_owned(),
            country_codes: vec!["US".to_owned()],
        };
        self.call("/institutions/get_by_id", &request).await
    }

    /// `/webhook_verification_key/get`: the JWK for a webhook JWT's `kid`.
    pub async fn webhook_verification_key_get(
        &self,
        key_id: &str,
    ) -> Result<WebhookVerificationKeyGetResponse, PlaidError> {
        let request = WebhookVerificationKeyGetRequest {
            key_id: key_id.to_owned(),
        };
        self.call("/webhook_verification_key/get", &request).await
    }

    /// `/sandbox/public_token/create`: a new sandbox Item, as a public token.
    pub async fn sandbox_public_token_create(
        &self,
        institution_id: &str,
        initial_products: &[&str],
    ) -> Result<SandboxPublicTokenCreateResponse, PlaidError> {
        let request = SandboxPublicTokenCreateRequest {
            institution_id: institution_id.to_owned(),
            initial_products: initial_products.iter().map(|p| p.to_string()).collect(),
            options: None,
        };
        self.call("/sandbox/public_token/create", &request).await
    }

    /// `/item/public_token/exchange`: the access token and id of a public token's Item.
    pub async fn item_public_token_exchange(
        &self,
        public_token: &str,
    ) -> Result<ItemPublicTokenExchangeResponse, PlaidError> {
        let request = ItemPublicTokenExchangeRequest {
            public_token: public_token.to_owned(),
        };
        self.call("/item/public_token/exchange", &request).await
    }

    /// `/sandbox/item/fire_webhook`: makes the sandbox send the Item a webhook with this code.
    pub async fn sandbox_item_fire_webhook(
        &self,
        access_token: &Secret,
        webhook_code: &str,
    ) -> Result<SandboxItemFireWebhookResponse, PlaidError> {
        let request = SandboxItemFireWebhookRequest {
            access_token: access_token.clone(),
            webhook_type: None,
            webhook_code: webhook_code.to_owned(),
        };
        self.call("/sandbox/item/fire_webhook", &request).await
    }

    /// `/sandbox/item/reset_login`: puts the sandbox Item in `ITEM_LOGIN_REQUIRED`.
    pub async fn sandbox_item_reset_login(
        &self,
        access_token: &Secret,
    ) -> Result<SandboxItemResetLoginResponse, PlaidError> {
        let request = SandboxItemResetLoginRequest {
            access_token: access_token.clone(),
        };
        self.call("/sandbox/item/reset_login", &request).await
    }

    /// Posts `request` with the keys to `endpoint` and reads the answer.
    async fn call<R: Serialize, T: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: &R,
    ) -> Result<T, PlaidError> {
        let keys = self.keys.as_ref().ok_or(PlaidError::NotConfigured)?;
        let body = Envelope {
            client_id: &keys.client_id,
            secret: keys.secret.expose(),
            request,
        };
        let url = format!("{}{endpoint}", self.base_url);
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport_error)?;
        tracing::debug!(endpoint, status, "Plaid answered");
        read_answer(status, &bytes)
    }
}

/// Turns an answer into the endpoint's response or a [`PlaidError`].
fn read_answer<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, PlaidError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| PlaidError::Decode(redact(&e)));
    }
    let error = serde_json::from_slice(body)
        .ok()
        .and_then(|raw| PlaidApiError::from_value(raw).ok());
    match error {
        Some(error) => Err(PlaidError::Api {
            http_status: status,
            error: Box::new(error),
        }),
        None => Err(PlaidError::UnexpectedResponse {
            http_status: status,
        }),
    }
}

/// A decode error without the quoted values serde puts in it: they could be tokens.
fn redact(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match (text.find('"'), text.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            format!("{}\"…\"{}", &text[..first], &text[last + 1..])
        }
        _ => text,
    }
}

/// Maps a reqwest failure.
fn transport_error(error: reqwest::Error) -> PlaidError {
    match crate::providers::transport_failure(&error) {
        None => PlaidError::Timeout,
        Some(text) => PlaidError::Transport(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_hide_values() {
        let error = serde_json::from_str::<u32>(r#""access-sandbox-123""#).unwrap_err();
        let text = redact(&error);
        assert!(!text.contains("access-sandbox-123"), "{text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn unconfigured_without_both_keys() {
        let config = |client_id: Option<&str>, secret: Option<&str>| PlaidConfig {
            base_url: "http://127.0.0.1:1".into(),
            client_id: client_id.map(str::to_owned),
            secret: secret.map(Secret::new),
            timeout: Duration::from_secs(1),
        };
        assert!(PlaidClient::new(config(Some("id"), Some("secret"))).is_configured());
        assert!(!PlaidClient::new(config(Some("id"), None)).is_configured());
        assert!(!PlaidClient::new(config(None, Some("secret"))).is_configured());
        assert!(!PlaidClient::new(config(Some(""), Some("secret"))).is_configured());
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = PlaidClient::new(PlaidConfig {
            base_url: "http://127.0.0.1:1".into(),
            client_id: Some("id".into()),
            secret: Some(Secret::new("very-secret")),
            timeout: Duration::from_secs(1),
        });
        assert!(!format!("{client:?}").contains("very-secret"));
    }
}

//! The HTTP client of Akoya's API: the token endpoint (form-encoded, the app's credentials in
//! the body) and the data API (`GET`, the id token as bearer).

use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;

use linkstate_wire::akoya::*;

use super::error::AkoyaError;
use crate::domain::secret::Secret;

/// The largest answer read from Akoya: a page of transactions is far smaller, and a broken or
/// hostile answer must not grow the process.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Transactions asked for per page; providers may answer fewer.
pub const TRANSACTIONS_PAGE: u32 = 100;

/// Where Akoya is and which app credentials to use.
#[derive(Debug, Clone)]
pub struct AkoyaConfig {
    /// The data API, `https://sandbox-products.ddp.akoya.com` or a simulator.
    pub products_url: String,
    /// The token endpoint's base, `https://sandbox-idp.ddp.akoya.com` or a simulator.
    pub idp_url: String,
    /// `AKOYA_CLIENT_ID`; unset (or empty) leaves the client unconfigured.
    pub client_id: Option<String>,
    /// `AKOYA_CLIENT_SECRET`; unset (or empty) leaves the client unconfigured.
    pub client_secret: Option<Secret>,
    /// The limit for a whole call, answer body included.
    pub timeout: Duration,
}

/// An Akoya API client; cheap to clone, clones share connections.
#[derive(Debug, Clone)]
pub struct AkoyaClient {
    http: reqwest::Client,
    products_url: String,
    idp_url: String,
    keys: Option<(String, Secret)>,
}

impl AkoyaClient {
    /// Builds a client.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised, which only happens on a broken system.
    pub fn new(config: AkoyaConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // A link is followed only as linkstate builds it, never where a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client for Akoya could not be built");
        let keys = match (config.client_id, config.client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.expose().is_empty() => {
                Some((id, secret))
            }
            _ => None,
        };
        Self {
            http,
            products_url: config.products_url.trim_end_matches('/').to_owned(),
            idp_url: config.idp_url.trim_end_matches('/').to_owned(),
            keys,
        }
    }

    /// Whether both app credentials are set.
    pub fn is_configured(&self) -> bool {
        self.keys.is_some()
    }

    /// `POST {idp}/token` with `grant_type=refresh_token`: a new id token and a new refresh
    /// token; the one sent stops working.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, AkoyaError> {
        let body = self
            .post_to_idp(
                "/token",
                [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ],
            )
            .await?;
        decode(&body)
    }

    /// `POST {idp}/revoke`: ends the consent; its tokens stop working.
    pub async fn revoke(&self, refresh_token: &Secret) -> Result<(), AkoyaError> {
        self.post_to_idp(
            "/revoke",
            [
                ("token_type_hint", "refresh_token"),
                ("token", refresh_token.expose()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Posts `fields` and the app's credentials, form-encoded (Dex reads nothing else), to the
    /// IDP's `path`; answers a 2xx body, or the OAuth error.
    async fn post_to_idp(
        &self,
        path: &str,
        fields: [(&str, &str); 2],
    ) -> Result<Vec<u8>, AkoyaError> {
        let (client_id, secret) = self.keys.as_ref().ok_or(AkoyaError::NotConfigured)?;
        let credentials = [
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose()),
        ];
        let form: Vec<(&str, &str)> = fields.into_iter().chain(credentials).collect();
        let response = self
            .http
            .post(format!("{}{path}", self.idp_url))
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let (status, body) = read_bounded(response).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        match serde_json::from_slice::<TokenError>(&body) {
            Ok(error) => Err(AkoyaError::Token {
                http_status: status,
                error,
            }),
            Err(_) => Err(AkoyaError::UnexpectedResponse {
                http_status: status,
            }),
        }
    }

    /// `/accounts-info/v2/{providerId}`: the consent's accounts.
    pub async fn accounts_info(
        &self,
        id_token: &Secret,
        provider_id: &str,
    ) -> Result<AccountsInfoResponse, AkoyaError> {
        self.get(
            id_token,
            &format!("/accounts-info/v2/{}", segment(provider_id)),
        )
        .await
    }

    /// `/balances/v2/{providerId}`: the accounts' balances.
    pub async fn balances(
        &self,
        id_token: &Secret,
        provider_id: &str,
    ) -> Result<BalancesResponse, AkoyaError> {
        self.get(id_token, &format!("/balances/v2/{}", segment(provider_id)))
            .await
    }

    /// `/customers/v2/{providerId}/current`: the consenting customer.
    pub async fn current_customer(
        &self,
        id_token: &Secret,
        provider_id: &str,
    ) -> Result<CurrentCustomerResponse, AkoyaError> {
        let path = format!("/customers/v2/{}/current", segment(provider_id));
        self.get(id_token, &path).await
    }

    /// The first page of an account's transactions from `from` to `to` (whole days, UTC).
    pub async fn transactions(
        &self,
        id_token: &Secret,
        provider_id: &str,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<TransactionsResponse, AkoyaError> {
        let path = format!(
            "/transactions/v2/{}/{}?startTime={}T00%3A00%3A00Z&endTime={}T23%3A59%3A59Z&limit={TRANSACTIONS_PAGE}",
            segment(provider_id),
            segment(account_id),
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d"),
        );
        self.get(id_token, &path).await
    }

    /// The page a `links.next.href` names, followed exactly as given but only on Akoya's own
    /// host: a link elsewhere is refused, so an answer cannot make linkstate call any address.
    pub async fn follow(
        &self,
        id_token: &Secret,
        href: &str,
    ) -> Result<TransactionsResponse, AkoyaError> {
        let path = match href.strip_prefix(&self.products_url) {
            Some(path) if path.starts_with('/') => path,
            _ if href.starts_with('/') && !href.starts_with("//") => href,
            _ => {
                return Err(AkoyaError::Decode(
                    "links.next.href leaves Akoya's host".into(),
                ));
            }
        };
        self.get(id_token, path).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        id_token: &Secret,
        path: &str,
    ) -> Result<T, AkoyaError> {
        let response = self
            .http
            .get(format!("{}{path}", self.products_url))
            .bearer_auth(id_token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let (status, body) = read_bounded(response).await?;
        tracing::debug!(status, "Akoya answered");
        // The 206 of accounts-info and balances is a partial answer: what it lists counts.
        if (200..300).contains(&status) {
            return decode(&body);
        }
        match serde_json::from_slice::<FdxError>(&body) {
            Ok(error) => Err(AkoyaError::Api {
                http_status: status,
                error,
            }),
            Err(_) => Err(AkoyaError::UnexpectedResponse {
                http_status: status,
            }),
        }
    }
}

/// A path segment as sent: ids are percent-encoded, so an id cannot change the path.
fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Reads an answer up to [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<(u16, Vec<u8>), AkoyaError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(AkoyaError::Decode(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// Decodes a 2xx answer; serde's message may quote values (tokens), so only its kind is kept.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AkoyaError> {
    serde_json::from_slice(body).map_err(|error| {
        AkoyaError::Decode(format!(
            "{:?} at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ))
    })
}

/// Maps a reqwest failure.
fn transport_error(error: reqwest::Error) -> AkoyaError {
    match crate::providers::transport_failure(&error) {
        None => AkoyaError::Timeout,
        Some(text) => AkoyaError::Transport(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_change_the_path() {
        assert_eq!(segment("mikomo"), "mikomo");
        assert_eq!(segment("../x?y=1"), "..%2Fx%3Fy%3D1");
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = AkoyaClient::new(AkoyaConfig {
            products_url: "http://127.0.0.1:1".into(),
            idp_url: "http://127.0.0.1:1".into(),
            client_id: Some("id".into()),
            client_secret: Some(Secret::new("very-secret")),
            timeout: Duration::from_secs(1),
        });
        assert!(!format!("{client:?}").contains("very-secret"));
        assert!(client.is_configured());
    }

    #[tokio::test]
    async fn links_off_akoyas_host_are_refused() {
        let client = AkoyaClient::new(AkoyaConfig {
            products_url: "http://127.0.0.1:1".into(),
            idp_url: "http://127.0.0.1:1".into(),
            client_id: None,
            client_secret: None,
            timeout: Duration::from_secs(1),
        });
        for href in ["http://169.254.169.254/latest", "//evil.example/x", "evil"] {
            let error = client.follow(&Secret::new("t"), href).await.unwrap_err();
            assert!(matches!(error, AkoyaError::Decode(_)), "{href}");
        }
    }
}

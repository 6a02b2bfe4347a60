//! Test helpers: a simulator on a free local port and a client pointed at it.

use std::net::SocketAddr;
use std::time::Duration;

use super::{SimConfig, Simulator};
use crate::domain::secret::Secret;
use crate::providers::plaid::{PlaidClient, PlaidConfig};

/// The `client_id` the test simulator accepts.
pub const CLIENT_ID: &str = "sim-client-id";
/// The `secret` the test simulator accepts.
pub const SECRET: &str = "sim-secret";

/// A simulator served on `127.0.0.1:0`, and its base URL.
pub async fn start() -> (Simulator, String) {
    let sim = Simulator::new(SimConfig {
        client_id: CLIENT_ID.to_owned(),
        secret: SECRET.to_owned(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = sim.spawn(listener).await;
    (sim, format!("http://{address}"))
}

/// A client with the accepted keys and a 5 s timeout.
pub fn client(base_url: &str) -> PlaidClient {
    client_with(base_url, CLIENT_ID, SECRET, Duration::from_secs(5))
}

/// A client with chosen keys and timeout.
pub fn client_with(
    base_url: &str,
    client_id: &str,
    secret: &str,
    timeout: Duration,
) -> PlaidClient {
    PlaidClient::new(PlaidConfig {
        base_url: base_url.to_owned(),
        client_id: Some(client_id.to_owned()),
        secret: Some(Secret::new(secret)),
        timeout,
    })
}

/// The `kid` of the simulator's webhook signing key.
pub fn webhook_key_id(sim: &Simulator) -> String {
    sim.lock().webhook_key.kid.clone()
}

/// An error rule for `endpoint`, for any access token, until cleared.
pub fn rule(
    endpoint: &str,
    http_status: u16,
    error_type: &str,
    error_code: &str,
) -> super::ErrorRule {
    super::ErrorRule {
        endpoint: endpoint.to_owned(),
        access_token: None,
        http_status,
        error_type: error_type.to_owned(),
        error_code: error_code.to_owned(),
        error_message: format!("injected {error_code}"),
        times: None,
    }
}

/// A bare HTTP client, for looking at raw answers.
pub fn http() -> reqwest::Client {
    // reqwest has no rustls provider of its own (see `PlaidClient::new`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

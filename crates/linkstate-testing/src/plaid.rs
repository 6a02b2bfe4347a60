//! Plaid alone: a simulator on a free local port, a client pointed at it, and a webhook receiver.

use std::net::SocketAddr;
use std::time::Duration;

use linkstate::domain::secret::Secret;
use linkstate::providers::plaid::{PlaidClient, PlaidConfig};
use linkstate_sim::{ErrorRule, SimConfig, Simulator};

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
    sim.webhook_key_id()
}

/// An error rule for `endpoint`, for any access token, until cleared.
pub fn rule(endpoint: &str, http_status: u16, error_type: &str, error_code: &str) -> ErrorRule {
    ErrorRule {
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

/// A webhook as a test receiver got it.
#[derive(Debug)]
pub struct Received {
    /// The `Plaid-Verification` header.
    pub verification: Option<String>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }
}

/// A webhook receiver on `127.0.0.1:0`: its URL, and the webhooks it gets, in arrival order.
pub async fn webhook_sink() -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    use axum::body::Bytes;
    use axum::http::HeaderMap;

    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let receive = move |headers: HeaderMap, body: Bytes| {
        let verification = headers
            .get("plaid-verification")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let _ = sender.send(Received {
            verification,
            body: body.to_vec(),
        });
        async { "ok" }
    };
    let router = axum::Router::new().route("/webhook", axum::routing::post(receive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}/webhook"), receiver)
}

/// The next webhook with this `webhook_code`, skipping others; panics after 5 s.
pub async fn next_webhook(
    receiver: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    webhook_code: &str,
) -> Received {
    let wait = async {
        loop {
            let received = receiver.recv().await.expect("the receiver is running");
            if received.json()["webhook_code"] == webhook_code {
                return received;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("no {webhook_code} webhook within 5 s"))
}

/// Pages through `/transactions/sync` from `cursor` until `has_more` is false.
pub async fn sync_to_end(
    plaid: &PlaidClient,
    access_token: &Secret,
    cursor: Option<String>,
    count: u32,
) -> Vec<linkstate::providers::plaid::TransactionsSyncResponse> {
    let mut cursor = cursor;
    let mut pages = Vec::new();
    loop {
        let page = plaid
            .transactions_sync(access_token, cursor.as_deref(), count)
            .await
            .unwrap();
        assert!(!page.next_cursor.is_empty(), "next_cursor is always set");
        cursor = Some(page.next_cursor.clone());
        let has_more = page.has_more;
        pages.push(page);
        if !has_more {
            return pages;
        }
    }
}

//! Sending webhooks: endpoints queue bodies while they hold the state, the simulator signs and
//! posts them afterwards from spawned tasks, so an answer never waits for a webhook. Akoya's
//! notifications go out the same way, unsigned.

use std::time::Duration;

use serde_json::Value;

/// How long a delivery may take; the receiver may well not exist.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A webhook waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where to.
    pub url: String,
    /// The exact bytes to post, the ones the signature covers.
    pub body: Vec<u8>,
}

/// The webhooks queued and not yet sent.
#[derive(Debug, Default)]
pub struct Outbox(Vec<Outgoing>);

impl Outbox {
    /// Queues `body` for `url`; without a URL there is nobody to tell.
    pub fn push(&mut self, url: Option<&str>, body: &Value) {
        let Some(url) = url else {
            tracing::debug!(webhook_code = %body["webhook_code"], "no webhook URL: not sent");
            return;
        };
        let body = serde_json::to_vec(body).expect("JSON values serialize");
        self.0.push(Outgoing {
            url: url.to_owned(),
            body,
        });
    }

    /// Everything queued, emptying the queue.
    pub fn take(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.0)
    }
}

/// The client that posts webhooks.
///
/// # Panics
/// If the TLS backend cannot be initialised, which only happens on a broken system.
pub fn client() -> reqwest::Client {
    // reqwest has no rustls provider of its own (see `PlaidClient::new`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("the HTTP client for webhooks could not be built")
}

/// Posts `outgoing` with its `Plaid-Verification` header from a spawned task; failures are
/// logged and dropped (Plaid would retry; the simulator does not).
pub fn send(http: &reqwest::Client, outgoing: Outgoing, verification: String) {
    let request = http
        .post(&outgoing.url)
        .header("Content-Type", "application/json")
        .header("Plaid-Verification", verification)
        .body(outgoing.body);
    spawn(request, outgoing.url);
}

/// Posts a JSON `body` to `url` from a spawned task, with nothing to authenticate it, as Akoya
/// sends its notifications; failures are logged and dropped.
pub fn send_unsigned(http: &reqwest::Client, url: &str, body: Vec<u8>) {
    let request = http
        .post(url)
        .header("Content-Type", "application/json")
        .body(body);
    spawn(request, url.to_owned());
}

/// Sends `request` from a task of the current runtime, logging how it went.
fn spawn(request: reqwest::RequestBuilder, url: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%url, "no async runtime: webhook not sent");
        return;
    };
    runtime.spawn(async move {
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(%url, "webhook delivered");
            }
            Ok(response) => {
                tracing::info!(%url, status = response.status().as_u16(), "webhook refused");
            }
            Err(error) => tracing::info!(%url, %error, "webhook not delivered"),
        }
    });
}

//! What every request handler and worker shares: the pool, the cipher, the provider clients.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cipher::Cipher;
use crate::events::hub::EventHub;
use crate::providers::plaid::PlaidClient;
use crate::providers::plaid::verify::Verifier;
use crate::store::DbPool;

/// The shared, cheaply cloned state of one linkstate process.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    cipher: Cipher,
    plaid: PlaidClient,
    plaid_webhook_url: String,
    hub: EventHub,
    jobs_wake: Notify,
    refresh_interval: chrono::Duration,
    plaid_verifier: Verifier,
    webhook_max_bytes: usize,
}

impl Context {
    /// Bundles the shared parts; `public_url` is where providers reach our HTTP listener.
    pub fn new(
        pool: DbPool,
        cipher: Cipher,
        plaid: PlaidClient,
        public_url: &str,
        hub: EventHub,
        refresh_interval: Duration,
        webhook_max_bytes: usize,
    ) -> Self {
        let plaid_webhook_url = format!("{}/webhooks/plaid", public_url.trim_end_matches('/'));
        Self {
            inner: Arc::new(Inner {
                pool,
                cipher,
                plaid_verifier: Verifier::new(plaid.clone()),
                plaid,
                plaid_webhook_url,
                webhook_max_bytes,
                hub,
                jobs_wake: Notify::new(),
                refresh_interval: chrono::Duration::from_std(refresh_interval)
                    .unwrap_or(chrono::Duration::days(1)),
            }),
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &DbPool {
        &self.inner.pool
    }

    /// The cipher for credentials at rest.
    pub fn cipher(&self) -> &Cipher {
        &self.inner.cipher
    }

    /// The Plaid client.
    pub fn plaid(&self) -> &PlaidClient {
        &self.inner.plaid
    }

    /// Where Plaid items are told to send their webhooks.
    pub fn plaid_webhook_url(&self) -> &str {
        &self.inner.plaid_webhook_url
    }

    /// Says that jobs were committed, so an idle worker looks now rather than at its next poll.
    pub fn wake_workers(&self) {
        self.inner.jobs_wake.notify_one();
    }

    /// Resolves at the next [`Context::wake_workers`].
    pub async fn workers_woken(&self) {
        self.inner.jobs_wake.notified().await;
    }

    /// Verifies Plaid's webhook signatures, with its cache of keys.
    pub fn plaid_verifier(&self) -> &Verifier {
        &self.inner.plaid_verifier
    }

    /// The largest webhook body accepted.
    pub fn webhook_max_bytes(&self) -> usize {
        self.inner.webhook_max_bytes
    }

    /// How often each connection is aggregated again in the background.
    pub fn refresh_interval(&self) -> chrono::Duration {
        self.inner.refresh_interval
    }

    /// The fan-out of new events to live streams in this process.
    pub fn hub(&self) -> &EventHub {
        &self.inner.hub
    }
}

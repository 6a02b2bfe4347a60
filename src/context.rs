//! What every request handler and worker shares: the pool, the cipher, the provider clients.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::api::http::HttpLimits;
use crate::cipher::Cipher;
use crate::config::{DeliverySettings, EventSettings, TenantSettings, WorkerSettings};
use crate::domain::service_provider::ServiceProvider;
use crate::events::hub::EventHub;
use crate::providers::akoya::{AkoyaClient, AkoyaError};
use crate::providers::circuits::Circuits;
use crate::providers::plaid::verify::Verifier;
use crate::providers::plaid::{PlaidClient, PlaidError};
use crate::store::DbPool;
use crate::tenant_limits::TenantLimits;
use crate::webhooks::group_commit::GroupCommit;

/// The shared, cheaply cloned state of one linkstate process.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    cipher: Cipher,
    plaid: PlaidClient,
    akoya: AkoyaClient,
    circuits: Circuits,
    plaid_webhook_url: String,
    hub: EventHub,
    jobs_wake: Notify,
    senders_wake: Notify,
    refresh_interval: chrono::Duration,
    plaid_verifier: Verifier,
    webhook_max_bytes: usize,
    event_retention: chrono::Duration,
    streams: Arc<Semaphore>,
    max_streams: usize,
    delivery: DeliverySettings,
    delivery_client: reqwest::Client,
    tenants: TenantLimits,
    webhook_writer: GroupCommit,
}

/// The settings a [`Context`] serves to handlers and workers.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    /// Where providers reach our HTTP listener.
    pub public_url: &'a str,
    /// The workers' settings (the background refresh interval).
    pub worker: &'a WorkerSettings,
    /// The event log's settings (retention, streams).
    pub events: &'a EventSettings,
    /// Outbound webhooks.
    pub delivery: &'a DeliverySettings,
    /// The HTTP listener's limits (the largest webhook body).
    pub http: &'a HttpLimits,
    /// Each tenant's share of the process.
    pub tenants: &'a TenantSettings,
}

/// A std duration as chrono's, saturating (settings are validated durations, never absurd).
fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Context {
    /// Bundles the shared parts.
    pub fn new(
        pool: DbPool,
        cipher: Cipher,
        (plaid, akoya): (PlaidClient, AkoyaClient),
        hub: EventHub,
        limits: Limits<'_>,
    ) -> Self {
        let plaid_webhook_url =
            format!("{}/webhooks/plaid", limits.public_url.trim_end_matches('/'));
        let webhook_writer = GroupCommit::start(pool.clone());
        Self {
            inner: Arc::new(Inner {
                pool,
                cipher,
                plaid_verifier: Verifier::new(plaid.clone()),
                plaid,
                akoya,
                circuits: Circuits::new(limits.worker.circuit_policy()),
                plaid_webhook_url,
                webhook_max_bytes: limits.http.max_body_bytes,
                event_retention: chrono_duration(limits.events.retention),
                streams: Arc::new(Semaphore::new(limits.events.max_streams as usize)),
                max_streams: limits.events.max_streams as usize,
                hub,
                jobs_wake: Notify::new(),
                senders_wake: Notify::new(),
                refresh_interval: chrono_duration(limits.worker.refresh_interval),
                delivery_client: crate::outbound::sender::client(limits.delivery),
                delivery: limits.delivery.clone(),
                tenants: TenantLimits::new(limits.tenants),
                webhook_writer,
            }),
        }
    }

    /// Outbound webhook settings.
    pub fn delivery(&self) -> &DeliverySettings {
        &self.inner.delivery
    }

    /// The HTTP client of outbound webhooks.
    pub fn delivery_client(&self) -> &reqwest::Client {
        &self.inner.delivery_client
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

    /// The Akoya client.
    pub fn akoya(&self) -> &AkoyaClient {
        &self.inner.akoya
    }

    /// The refusal of a call that needs `provider` while it has no API keys, in its client's
    /// own words; `None` when it has them.
    pub fn unconfigured(&self, provider: ServiceProvider) -> Option<String> {
        match provider {
            ServiceProvider::Plaid if !self.plaid().is_configured() => {
                Some(PlaidError::NotConfigured.to_string())
            }
            ServiceProvider::Akoya if !self.akoya().is_configured() => {
                Some(AkoyaError::NotConfigured.to_string())
            }
            _ => None,
        }
    }

    /// The providers' circuit breakers.
    pub fn circuits(&self) -> &Circuits {
        &self.inner.circuits
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

    /// Says that deliveries were queued outside the event log (a redelivery), so the sender
    /// looks now.
    pub fn wake_senders(&self) {
        self.inner.senders_wake.notify_one();
    }

    /// Resolves at the next [`Context::wake_senders`].
    pub async fn senders_woken(&self) {
        self.inner.senders_wake.notified().await;
    }

    /// Verifies Plaid's webhook signatures, with its cache of keys.
    pub fn plaid_verifier(&self) -> &Verifier {
        &self.inner.plaid_verifier
    }

    /// How long events are kept.
    pub fn event_retention(&self) -> chrono::Duration {
        self.inner.event_retention
    }

    /// A place for one more event stream, if the limit allows; held until the stream ends.
    pub fn stream_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.streams.clone().try_acquire_owned().ok()
    }

    /// Event streams this process is serving now.
    pub fn open_streams(&self) -> usize {
        self.inner.max_streams - self.inner.streams.available_permits()
    }

    /// The largest webhook body accepted.
    pub fn webhook_max_bytes(&self) -> usize {
        self.inner.webhook_max_bytes
    }

    /// How often each connection is aggregated again in the background.
    pub fn refresh_interval(&self) -> chrono::Duration {
        self.inner.refresh_interval
    }

    /// Each tenant's share: request rate, open streams, running imports.
    pub fn tenants(&self) -> &TenantLimits {
        &self.inner.tenants
    }

    /// The writer that records provider webhooks in batches.
    pub fn webhook_writer(&self) -> &GroupCommit {
        &self.inner.webhook_writer
    }

    /// The fan-out of new events to live streams in this process.
    pub fn hub(&self) -> &EventHub {
        &self.inner.hub
    }
}

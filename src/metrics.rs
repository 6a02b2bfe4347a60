//! Prometheus metrics, served on `/metrics`.
//!
//! A scrape reads only memory: the queue depth is counted by a background task every few
//! seconds, so scraping the provider-facing listener never costs a database query.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::domain::service_provider::ServiceProvider;
use crate::store::{self, jobs};

/// How often the queue depth gauge is counted again.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Labels of an outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok` or a failure code.
    pub outcome: String,
}

/// Labels of a finished gRPC call, as the usual gRPC server metrics name them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcCall {
    /// `linkstate.v1.ConnectionService`.
    pub grpc_service: String,
    /// `ImportConnections`.
    pub grpc_method: String,
    /// `OK`, `NOT_FOUND`, ...
    pub grpc_code: String,
}

/// Labels of a gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcMethod {
    /// `linkstate.v1.ConnectionService`.
    pub grpc_service: String,
    /// `ImportConnections`.
    pub grpc_method: String,
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// Imported items by outcome.
    pub imports: Family<Outcome, Counter>,
    /// Finished jobs by outcome.
    pub jobs: Family<Outcome, Counter>,
    /// Deliveries per group commit of provider webhooks.
    pub webhook_batch_size: Histogram,
    /// Webhooks for connections linkstate does not know, by provider.
    pub unknown_webhooks: Family<Outcome, Counter>,
    /// Finished gRPC calls.
    grpc_handled: Family<GrpcCall, Counter>,
    /// How long gRPC calls took, in seconds.
    grpc_handling: Family<GrpcMethod, Histogram>,
    /// Jobs queued or running, as last counted.
    live_jobs: Gauge,
    /// Outbound webhook attempts by outcome.
    delivery_attempts: Family<Outcome, Counter>,
    /// How long outbound webhook attempts took, in seconds.
    delivery_seconds: Histogram,
    /// The age of each profile's oldest delivery not yet sent, as last counted.
    oldest_pending: Family<Profile, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

/// Labels of a per-profile metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Profile {
    /// The profile's id.
    pub profile_id: String,
}

/// The one set of metrics of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let imports = Family::<Outcome, Counter>::default();
    let jobs = Family::<Outcome, Counter>::default();
    registry.register(
        "linkstate_import_items",
        "Imported items by outcome",
        imports.clone(),
    );
    registry.register("linkstate_jobs", "Finished jobs by outcome", jobs.clone());
    let unknown_webhooks = Family::<Outcome, Counter>::default();
    registry.register(
        "linkstate_unknown_webhooks",
        "Webhooks about connections linkstate does not know",
        unknown_webhooks.clone(),
    );
    let webhook_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
    registry.register(
        "linkstate_webhook_batch_size",
        "Provider webhooks recorded per transaction (group commit)",
        webhook_batch_size.clone(),
    );
    let grpc_handled = Family::<GrpcCall, Counter>::default();
    registry.register(
        "grpc_server_handled",
        "gRPC calls finished on the server, by method and code",
        grpc_handled.clone(),
    );
    let grpc_handling = Family::<GrpcMethod, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.0005, 2.0, 16))
    });
    registry.register(
        "grpc_server_handling_seconds",
        "How long gRPC calls took on the server, until their last message",
        grpc_handling.clone(),
    );
    let live_jobs = Gauge::default();
    registry.register(
        "linkstate_jobs_live",
        "Jobs queued or running (counted every few seconds)",
        live_jobs.clone(),
    );
    let delivery_attempts = Family::<Outcome, Counter>::default();
    registry.register(
        "linkstate_delivery_attempts",
        "Outbound webhook attempts by outcome (success, http_4xx, http_5xx, timeout, connect, refused)",
        delivery_attempts.clone(),
    );
    let delivery_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
    registry.register(
        "linkstate_delivery_attempt_seconds",
        "How long outbound webhook attempts took",
        delivery_seconds.clone(),
    );
    let oldest_pending = Family::<Profile, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    registry.register(
        "linkstate_delivery_oldest_pending_seconds",
        "Age of each profile's oldest delivery not yet sent (counted every few seconds)",
        oldest_pending.clone(),
    );
    Metrics {
        registry,
        oldest_pending,
        delivery_attempts,
        delivery_seconds,
        imports,
        jobs,
        unknown_webhooks,
        webhook_batch_size,
        grpc_handled,
        grpc_handling,
        live_jobs,
    }
});

/// Counts one outcome.
pub fn count(family: &Family<Outcome, Counter>, outcome: &str) {
    family
        .get_or_create(&Outcome {
            outcome: outcome.to_string(),
        })
        .inc();
}

/// Records a finished gRPC call of `path` (`/linkstate.v1.ConnectionService/ImportConnections`).
pub fn grpc_handled(path: &str, code: &str, elapsed: Duration) {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("unknown", path));
    METRICS
        .grpc_handled
        .get_or_create(&GrpcCall {
            grpc_service: service.to_string(),
            grpc_method: method.to_string(),
            grpc_code: code.to_string(),
        })
        .inc();
    METRICS
        .grpc_handling
        .get_or_create(&GrpcMethod {
            grpc_service: service.to_string(),
            grpc_method: method.to_string(),
        })
        .observe(elapsed.as_secs_f64());
}

/// Records one outbound webhook attempt.
pub fn delivery_attempted(outcome: &crate::domain::delivery::Outcome, duration_ms: u64) {
    use crate::domain::delivery::Outcome as O;
    let label = match outcome {
        _ if outcome.succeeded() => "success",
        O::Answered { status, .. } if *status < 500 => "http_4xx",
        O::Answered { .. } => "http_5xx",
        O::Timeout => "timeout",
        O::CouldNotConnect => "connect",
        O::RefusedAddress => "refused",
    };
    count(&METRICS.delivery_attempts, label);
    METRICS
        .delivery_seconds
        .observe(duration_ms as f64 / 1000.0);
}

/// Counts the queue depth every few seconds until `shutdown`.
pub async fn refresh_gauges(ctx: Context, shutdown: CancellationToken) {
    loop {
        let counted = async {
            let mut conn = store::connect(ctx.pool()).await?;
            jobs::live_count(&mut conn).await
        };
        match counted.await {
            Ok(n) => {
                METRICS.live_jobs.set(n);
            }
            Err(error) => tracing::debug!(%error, "could not count live jobs"),
        }
        let pending = async {
            let mut conn = store::connect(ctx.pool()).await?;
            store::outbound_deliveries::oldest_pending(&mut conn).await
        };
        match pending.await {
            Ok(ages) => {
                // Profiles with nothing pending drop out rather than linger at their last age.
                METRICS.oldest_pending.clear();
                for (profile_id, seconds) in ages {
                    METRICS
                        .oldest_pending
                        .get_or_create(&Profile {
                            profile_id: profile_id.to_string(),
                        })
                        .set(seconds);
                }
            }
            Err(error) => tracing::debug!(%error, "could not count pending deliveries"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(GAUGE_REFRESH) => {}
        }
    }
}

/// The text exposition, from memory only.
pub fn render(ctx: &Context) -> String {
    let mut text = String::new();
    encode(&mut text, &METRICS.registry).expect("writing to a String cannot fail");
    // `encode` ends with `# EOF`; the per-process gauge below goes before it.
    let body = text.trim_end().trim_end_matches("# EOF").to_string();
    let streams_gauge = format!(
        "# HELP linkstate_event_streams Event streams this process is serving.\n# TYPE linkstate_event_streams gauge\nlinkstate_event_streams {}\n",
        ctx.open_streams()
    );
    let mut circuits = String::from(
        "# HELP linkstate_provider_circuit_open Whether this process holds calls to the provider back (1) after repeated failures.\n# TYPE linkstate_provider_circuit_open gauge\n",
    );
    for provider in [ServiceProvider::Plaid, ServiceProvider::Akoya] {
        let open = u8::from(ctx.circuits().is_open(provider));
        circuits.push_str(&format!(
            "linkstate_provider_circuit_open{{provider=\"{provider}\"}} {open}\n"
        ));
    }
    format!("{body}{streams_gauge}{circuits}# EOF\n")
}

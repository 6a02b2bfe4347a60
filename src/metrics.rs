//! Prometheus metrics, served on `/metrics`.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::context::Context;
use crate::store::{self, jobs};

/// Labels of an outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok` or a failure code.
    pub outcome: String,
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// Imported items by outcome.
    pub imports: Family<Outcome, Counter>,
    /// Finished jobs by outcome.
    pub jobs: Family<Outcome, Counter>,
    /// Webhooks for connections linkstate does not know, by provider.
    pub unknown_webhooks: Family<Outcome, Counter>,
}

/// The one set of metrics of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("linkstate");
    let imports = Family::<Outcome, Counter>::default();
    let jobs = Family::<Outcome, Counter>::default();
    registry.register("import_items", "Imported items by outcome", imports.clone());
    registry.register("jobs", "Finished jobs by outcome", jobs.clone());
    let unknown_webhooks = Family::<Outcome, Counter>::default();
    registry.register(
        "unknown_webhooks",
        "Webhooks about connections linkstate does not know",
        unknown_webhooks.clone(),
    );
    Metrics {
        registry,
        imports,
        jobs,
        unknown_webhooks,
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

/// The text exposition, with the queue depth read fresh from the database.
pub async fn render(ctx: &Context) -> String {
    let mut text = String::new();
    encode(&mut text, &METRICS.registry).expect("writing to a String cannot fail");
    // `encode` ends with `# EOF`; the gauge below goes before it.
    let body = text.trim_end().trim_end_matches("# EOF").to_string();
    let live_jobs = match store::connect(ctx.pool()).await {
        Ok(mut conn) => jobs::live_count(&mut conn).await.ok(),
        Err(_) => None,
    };
    let jobs_gauge = live_jobs.map_or(String::new(), |n| {
        format!("# HELP linkstate_jobs_live Jobs queued or running.\n# TYPE linkstate_jobs_live gauge\nlinkstate_jobs_live {n}\n")
    });
    let streams_gauge = format!(
        "# HELP linkstate_event_streams Event streams this process is serving.\n# TYPE linkstate_event_streams gauge\nlinkstate_event_streams {}\n",
        ctx.open_streams()
    );
    format!("{body}{jobs_gauge}{streams_gauge}# EOF\n")
}

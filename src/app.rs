//! Wiring: one linkstate process with its listeners, event hub and workers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::grpc::GrpcLimits;
use crate::api::http::HttpLimits;
use crate::cipher::Cipher;
use crate::context::{Context, Limits};
use crate::events::hub::EventHub;
use crate::providers::plaid::{PlaidClient, PlaidConfig};
use crate::{api, events, store, worker};

/// Of the shutdown grace period, what is kept for giving back the leases of unfinished jobs.
const RELEASE_MARGIN: Duration = Duration::from_secs(2);

/// What one process needs to run.
pub struct AppConfig {
    /// The database.
    pub database_url: String,
    /// The bound gRPC listener.
    pub grpc_listener: TcpListener,
    /// The bound HTTP listener.
    pub http_listener: TcpListener,
    /// Where providers reach the HTTP listener.
    pub public_url: String,
    /// Seals credentials at rest.
    pub cipher: Cipher,
    /// The Plaid client's configuration.
    pub plaid: PlaidConfig,
    /// Jobs run at once.
    pub worker_concurrency: usize,
    /// How long a claimed job is held before another replica may take it over.
    pub job_lease: Duration,
    /// How often each connection is aggregated again in the background.
    pub refresh_interval: Duration,
    /// Background refreshes queued or running at once, across all replicas.
    pub refresh_max_concurrent: i64,
    /// The largest provider webhook body accepted.
    pub webhook_max_bytes: usize,
    /// How long events are kept.
    pub event_retention: Duration,
    /// Event streams served at once.
    pub max_streams: usize,
    /// How often the event hub reads the log when no wake-up came (the fallback for lost
    /// notifications from other replicas).
    pub event_poll_interval: Duration,
    /// How long a stopping process may take: running jobs finish or are given back within it.
    pub shutdown_grace: Duration,
    /// Timeouts and the connection cap of the HTTP listener.
    pub http_limits: HttpLimits,
    /// Keep-alive and stream limits of the gRPC listener.
    pub grpc_limits: GrpcLimits,
}

/// A running process; dropping it does not stop it, [`RunningApp::stop`] does.
pub struct RunningApp {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The shared context, for tests and `dev`.
    pub ctx: Context,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
    tasks: JoinSet<()>,
}

/// Starts the listeners, the event hub and the workers.
pub async fn start(config: AppConfig) -> anyhow::Result<RunningApp> {
    let pool = store::pool(&config.database_url, 32)?;
    let shutdown = CancellationToken::new();
    let hub = EventHub::new(config.event_poll_interval, shutdown.clone());
    let ctx = Context::new(
        pool.clone(),
        config.cipher,
        PlaidClient::new(config.plaid),
        hub.clone(),
        Limits {
            public_url: config.public_url,
            refresh_interval: config.refresh_interval,
            webhook_max_bytes: config.webhook_max_bytes,
            event_retention: config.event_retention,
            max_streams: config.max_streams,
        },
    );
    let grpc_addr = config.grpc_listener.local_addr()?;
    let http_addr = config.http_listener.local_addr()?;
    let mut tasks = JoinSet::new();
    tasks.spawn(hub.clone().run(pool));
    tasks.spawn(events::listener::run(hub, config.database_url));
    let worker_id = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
    let settings = worker::WorkerSettings {
        worker_id,
        concurrency: config.worker_concurrency,
        lease: config.job_lease,
        drain: config.shutdown_grace.saturating_sub(RELEASE_MARGIN),
    };
    tasks.spawn(worker::run(ctx.clone(), settings, shutdown.clone()));
    tasks.spawn(crate::metrics::refresh_gauges(
        ctx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(worker::schedule::run(
        ctx.clone(),
        config.refresh_max_concurrent,
        shutdown.clone(),
    ));
    let (grpc_ctx, grpc_shutdown) = (ctx.clone(), shutdown.clone());
    tasks.spawn(async move {
        let stop = async move { grpc_shutdown.cancelled().await };
        let limits = config.grpc_limits;
        if let Err(error) = api::grpc::serve(grpc_ctx, config.grpc_listener, limits, stop).await {
            tracing::error!(%error, "gRPC server stopped");
        }
    });
    let (http_ctx, http_shutdown) = (ctx.clone(), shutdown.clone());
    tasks.spawn(async move {
        let stop = async move { http_shutdown.cancelled().await };
        let limits = config.http_limits;
        if let Err(error) = api::http::serve(http_ctx, config.http_listener, limits, stop).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    tracing::info!(%grpc_addr, %http_addr, "linkstate is serving");
    Ok(RunningApp {
        grpc_addr,
        http_addr,
        ctx,
        shutdown,
        shutdown_grace: config.shutdown_grace,
        tasks,
    })
}

impl RunningApp {
    /// Stops accepting, ends streams with UNAVAILABLE, lets running jobs finish or gives them
    /// back, and waits for all of it, but no longer than the grace period.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let all_stopped = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.shutdown_grace, all_stopped)
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.shutdown_grace, "stopping what is left after the grace period");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "linkstate".to_string())
}

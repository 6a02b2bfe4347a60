//! Wiring: one linkstate process with its listeners, event hub and workers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::grpc::GrpcLimits;
use crate::api::http::HttpLimits;
use crate::cipher::Cipher;
use crate::config::{DeliverySettings, EventSettings, TenantSettings, WorkerSettings};
use crate::context::{Context, Limits};
use crate::events::hub::EventHub;
use crate::providers::akoya::{AkoyaClient, AkoyaConfig};
use crate::providers::plaid::{PlaidClient, PlaidConfig};
use crate::{api, events, store, worker};

/// What one process needs to run: its database, bound listeners, keys and settings groups.
pub struct AppConfig {
    /// The database.
    pub database_url: String,
    /// Database connections kept at most.
    pub pool_size: usize,
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
    /// The Akoya client's configuration.
    pub akoya: AkoyaConfig,
    /// The job workers and background refresh.
    pub worker: WorkerSettings,
    /// The event log and its streams.
    pub events: EventSettings,
    /// Outbound webhooks.
    pub delivery: DeliverySettings,
    /// Each tenant's share: request rate, open streams, running imports.
    pub tenants: TenantSettings,
    /// Timeouts, caps and the body limit of the HTTP listener.
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
    let pool = store::pool(&config.database_url, config.pool_size)?;
    let shutdown = CancellationToken::new();
    let hub = EventHub::new(config.events.poll_interval, shutdown.clone());
    let ctx = Context::new(
        pool.clone(),
        config.cipher,
        (
            PlaidClient::new(config.plaid),
            AkoyaClient::new(config.akoya),
        ),
        hub.clone(),
        Limits {
            public_url: &config.public_url,
            worker: &config.worker,
            events: &config.events,
            delivery: &config.delivery,
            http: &config.http_limits,
            tenants: &config.tenants,
        },
    );
    let grpc_addr = config.grpc_listener.local_addr()?;
    let http_addr = config.http_listener.local_addr()?;
    let mut tasks = JoinSet::new();
    tasks.spawn(hub.clone().run(pool));
    tasks.spawn(events::listener::run(hub, config.database_url));
    let runner = worker::Runner {
        id: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
        settings: config.worker.clone(),
    };
    let sender_id = format!("{}-sender", runner.id);
    tasks.spawn(worker::run(ctx.clone(), runner, shutdown.clone()));
    tasks.spawn(crate::outbound::sender::run(
        ctx.clone(),
        sender_id,
        shutdown.clone(),
    ));
    tasks.spawn(crate::metrics::refresh_gauges(
        ctx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(worker::schedule::run(
        ctx.clone(),
        config.worker.refresh_max_concurrent,
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
        shutdown_grace: config.worker.shutdown_grace,
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

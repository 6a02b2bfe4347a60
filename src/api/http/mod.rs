//! The HTTP listener: provider webhooks (later), health, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::context::Context;
use crate::metrics;
use crate::store;

/// The router of the HTTP listener.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ctx)
}

/// Serves HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    ctx: Context,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctx))
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 only while the database answers, so a load balancer sends traffic elsewhere meanwhile.
async fn readyz(State(ctx): State<Context>) -> impl IntoResponse {
    if store::ping(ctx.pool()).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

async fn metrics_text(State(ctx): State<Context>) -> impl IntoResponse {
    let body = metrics::render(&ctx).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

//! The HTTP listener: provider webhooks, health, readiness and metrics.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::context::Context;
use crate::metrics;
use crate::providers::plaid::verify::HEADER;
use crate::store;
use crate::webhooks::{self, RecordError};

/// The router of the HTTP listener.
pub fn router(ctx: Context) -> Router {
    // axum answers 413 itself past the limit, before the body is read into memory.
    let limit = DefaultBodyLimit::max(ctx.webhook_max_bytes());
    Router::new()
        .route("/webhooks/plaid", post(plaid_webhook).layer(limit))
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
    // Answers go out at once rather than waiting on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
    });
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

/// Plaid's webhooks: 200 only once the delivery and its job are committed.
async fn plaid_webhook(State(ctx): State<Context>, headers: HeaderMap, body: Bytes) -> Response {
    let verification = headers.get(HEADER).and_then(|value| value.to_str().ok());
    match webhooks::record_plaid(&ctx, verification, &body).await {
        Ok(recorded) => Json(serde_json::json!({
            "webhookId": recorded.webhook_id.to_string(),
            "duplicate": recorded.duplicate,
        }))
        .into_response(),
        Err(error) => {
            let code = match &error {
                RecordError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                RecordError::Unverified(_) => StatusCode::UNAUTHORIZED,
                RecordError::Malformed(_) => StatusCode::BAD_REQUEST,
                RecordError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                RecordError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            match &error {
                RecordError::Unavailable(detail) => {
                    tracing::warn!(%detail, "webhook not recorded; the provider will retry");
                }
                RecordError::Internal(detail) => {
                    tracing::error!(%detail, "webhook not recorded: internal error");
                }
                _ => {}
            }
            (
                code,
                Json(serde_json::json!({ "error": error.to_string() })),
            )
                .into_response()
        }
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

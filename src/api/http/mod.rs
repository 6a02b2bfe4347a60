//! The HTTP listener: provider webhooks, health, readiness and metrics.

pub mod listener;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::context::Context;
use crate::metrics;
use crate::providers::plaid::verify::HEADER;
use crate::store;
use crate::webhooks::{self, RecordError};
pub use listener::HttpLimits;

/// The router of the HTTP listener.
pub fn router(ctx: Context) -> Router {
    // axum answers 413 itself past the limit, before the body is read into memory.
    let limit = DefaultBodyLimit::max(ctx.webhook_max_bytes());
    Router::new()
        .route("/webhooks/plaid", post(plaid_webhook).layer(limit))
        .route("/webhooks/akoya", post(akoya_webhook).layer(limit))
        .layer(axum::middleware::from_fn(observe))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ctx)
}

/// Every webhook request in a span with its method, path, status and duration; failures are
/// logged, accepted deliveries only at debug level (they come by the thousand).
async fn observe(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty
    );
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("status", status.as_u16());
    span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
    let _entered = span.enter();
    if status.is_success() {
        tracing::debug!("webhook request answered");
    } else {
        tracing::info!("webhook request refused");
    }
    response
}

/// Serves HTTP on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    ctx: Context,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve(listener, router(ctx), limits, shutdown).await
}

/// 200 only while the database answers, so a load balancer sends traffic elsewhere meanwhile.
async fn readyz(State(ctx): State<Context>) -> impl IntoResponse {
    if store::ping(ctx.pool()).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// The refusal of a webhook body that could not be read, in the path's own `{"error": ...}`
/// shape: axum stops reading at the limit, and the 413 says the limit as every other refusal of
/// the path would.
fn body_refusal(ctx: &Context, rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = ctx.webhook_max_bytes();
        return RecordError::TooLarge { limit }.into_response();
    }
    let error = serde_json::json!({ "error": rejection.body_text() });
    (rejection.status(), Json(error)).into_response()
}

/// Plaid's webhooks: 200 only once the delivery and its job are committed.
async fn plaid_webhook(
    State(ctx): State<Context>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_refusal(&ctx, rejection),
    };
    let verification = headers.get(HEADER).and_then(|value| value.to_str().ok());
    match webhooks::record_plaid(&ctx, verification, &body).await {
        Ok(recorded) => Json(serde_json::json!({
            "webhookId": recorded.webhook_id.to_string(),
            "duplicate": recorded.duplicate,
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// Akoya's notifications: 200 only once recorded; acted on only once confirmed at Akoya.
async fn akoya_webhook(
    State(ctx): State<Context>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_refusal(&ctx, rejection),
    };
    match webhooks::record_akoya(&ctx, &body).await {
        Ok(recorded) => Json(serde_json::json!({
            "webhookId": recorded.webhook_id.to_string(),
            "duplicate": recorded.duplicate,
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// The webhook path's errors as HTTP answers, in one place: 503 only while the database (or
/// Plaid's key endpoint) is unreachable, so that the provider retries; the detail of a 500 or a
/// 503 goes to the log, never into the answer.
impl IntoResponse for RecordError {
    fn into_response(self) -> Response {
        let code = match &self {
            RecordError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RecordError::Unverified(_) => StatusCode::UNAUTHORIZED,
            RecordError::Malformed(_) | RecordError::NotANotification(_) => StatusCode::BAD_REQUEST,
            RecordError::Unavailable(detail) => {
                tracing::warn!(%detail, "webhook not recorded; the provider will retry");
                StatusCode::SERVICE_UNAVAILABLE
            }
            RecordError::Internal(detail) => {
                tracing::error!(%detail, "webhook not recorded: internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (code, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

async fn metrics_text(State(ctx): State<Context>) -> impl IntoResponse {
    let body = metrics::render(&ctx);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

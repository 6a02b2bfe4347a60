//! Plaid's HTTP API: every endpoint waits the injected latency, checks the API keys, parses the
//! request, applies injected errors, then runs its handler and sends the webhooks it queued;
//! every answer carries a `request_id`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::endpoints::{self, Handler};
use super::errors::SimError;
use super::state::SimState;
use super::{Simulator, ids};
use super::{products, sandbox, sync};

/// The Plaid endpoints.
pub fn routes() -> Router<Simulator> {
    use endpoints::*;
    use products::*;
    use sandbox::*;
    use sync::*;
    Router::new()
        .route(
            "/sandbox/public_token/create",
            plaid(sandbox_public_token_create),
        )
        .route(
            "/item/public_token/exchange",
            plaid(item_public_token_exchange),
        )
        .route("/item/get", plaid(item_get))
        .route("/item/remove", plaid(item_remove))
        .route("/accounts/get", plaid(accounts_get))
        .route("/accounts/balance/get", plaid(accounts_balance_get))
        .route("/auth/get", plaid(auth_get))
        .route("/identity/get", plaid(identity_get))
        .route("/transactions/sync", plaid(transactions_sync))
        .route("/transactions/refresh", plaid(transactions_refresh))
        .route("/item/webhook/update", plaid(item_webhook_update))
        .route("/institutions/get_by_id", plaid(institutions_get_by_id))
        .route(
            "/webhook_verification_key/get",
            plaid(webhook_verification_key_get),
        )
        .route(
            "/sandbox/item/fire_webhook",
            plaid(sandbox_item_fire_webhook),
        )
        .route("/sandbox/item/reset_login", plaid(sandbox_item_reset_login))
}

/// A `POST` endpoint answered by `handler`.
fn plaid<Req, Resp>(handler: Handler<Req, Resp>) -> MethodRouter<Simulator>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    post(move |State(sim): State<Simulator>, uri: Uri, body: Bytes| {
        answer(sim, uri.path().to_owned(), body, handler)
    })
}

/// Answers one request after the injected latency.
async fn answer<Req, Resp>(
    sim: Simulator,
    endpoint: String,
    body: Bytes,
    handler: Handler<Req, Resp>,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    let request_id = ids::request_id();
    *sim.lock().calls.entry(endpoint.clone()).or_default() += 1;
    if let Some(broken) = sim.misbehave().await {
        return broken;
    }
    let outcome = run(&sim, &endpoint, &body, &request_id, handler);
    sim.deliver_webhooks();
    match outcome {
        Ok(response) => Json(response).into_response(),
        Err(error) => error.into_response(&request_id),
    }
}

/// Checks the body and the keys, applies injected errors, then runs the handler.
fn run<Req: DeserializeOwned, Resp>(
    sim: &Simulator,
    endpoint: &str,
    body: &[u8],
    request_id: &str,
    handler: Handler<Req, Resp>,
) -> Result<Resp, SimError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| SimError::invalid_body())?;
    if !sim.accepts(field(&value, "client_id"), field(&value, "secret")) {
        return Err(SimError::invalid_api_keys());
    }
    let request = Req::deserialize(&value).map_err(|error| request_error(&error))?;
    let mut state = sim.lock();
    inject(&mut state, endpoint, &value)?;
    handler(&mut state, request, request_id)
}

/// Answers an injected error if a rule matches this request.
fn inject(state: &mut SimState, endpoint: &str, value: &Value) -> Result<(), SimError> {
    match state.faults.take(endpoint, field(value, "access_token")) {
        Some(rule) => Err(SimError::injected(&rule)),
        None => Ok(()),
    }
}

/// Plaid's error for a request that does not have the endpoint's shape.
fn request_error(error: &serde_json::Error) -> SimError {
    let message = error.to_string();
    match message.strip_prefix("missing field ") {
        Some(field) => SimError::missing_fields(field.trim_matches('`')),
        None => SimError::invalid_field(&message),
    }
}

/// A string field of the raw request.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

//! Plaid's HTTP API: every endpoint waits the injected latency, checks the API keys, parses the
//! request, applies injected errors, then runs its handler; every answer carries a `request_id`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::endpoints::{self, Handler};
use super::errors::SimError;
use super::state::SimState;
use super::{Simulator, ids};

/// The Plaid endpoints.
pub fn routes() -> Router<Simulator> {
    let router = Router::new();
    let router = route(router, "/sandbox/public_token/create", endpoints::sandbox_public_token_create);
    let router = route(router, "/item/public_token/exchange", endpoints::item_public_token_exchange);
    let router = route(router, "/item/get", endpoints::item_get);
    let router = route(router, "/accounts/get", endpoints::accounts_get);
    let router = route(router, "/item/webhook/update", endpoints::item_webhook_update);
    let router = route(router, "/institutions/get_by_id", endpoints::institutions_get_by_id);
    route(router, "/webhook_verification_key/get", endpoints::webhook_verification_key_get)
}

/// Adds `POST path` answered by `handler`.
fn route<Req, Resp>(
    router: Router<Simulator>,
    path: &'static str,
    handler: Handler<Req, Resp>,
) -> Router<Simulator>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let endpoint = post(move |State(sim): State<Simulator>, body: Bytes| {
        answer(sim, path, body, handler)
    });
    router.route(path, endpoint)
}

/// Answers one request after the injected latency.
async fn answer<Req, Resp>(
    sim: Simulator,
    endpoint: &'static str,
    body: Bytes,
    handler: Handler<Req, Resp>,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    let request_id = ids::request_id();
    tokio::time::sleep(sim.latency()).await;
    let api_keys_ok = |value: &Value| sim.accepts(field(value, "client_id"), field(value, "secret"));
    let outcome = accept(&body, api_keys_ok).and_then(|(value, request)| {
        let mut state = sim.lock();
        inject(&mut state, endpoint, &value)?;
        handler(&mut state, request, &request_id)
    });
    match outcome {
        Ok(response) => Json(response).into_response(),
        Err(error) => error.into_response(&request_id),
    }
}

/// Checks the body is JSON with the right keys and parses the endpoint's request.
fn accept<Req: DeserializeOwned>(
    body: &[u8],
    api_keys_ok: impl Fn(&Value) -> bool,
) -> Result<(Value, Req), SimError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| SimError::invalid_body())?;
    if !api_keys_ok(&value) {
        return Err(SimError::invalid_api_keys());
    }
    let request = Req::deserialize(&value).map_err(|error| request_error(&error))?;
    Ok((value, request))
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

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

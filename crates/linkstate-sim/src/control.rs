//! The simulator's own controls, for people driving `linkstate simulate` by hand:
//! `POST /sim/latency {"milliseconds": 50}`, `POST /sim/resets {"enabled": true}` (every answer
//! broken off), `POST /sim/errors` with an [`ErrorRule`] (`"endpoint": "*"` for all),
//! `DELETE /sim/errors` (Akoya's rules too); and for Akoya, `POST /sim/akoya/consents
//! {"providerId": "mikomo"}`, `POST /sim/akoya/errors` with an [`AkoyaErrorRule`],
//! `POST /sim/akoya/consents/{consentId}/revoke`; and for Plaid Items,
//! `POST /sim/items/{itemId}/twin` (a second Item of the same login: a duplicate),
//! `POST /sim/items/{itemId}/accounts` (one more shared account) and
//! `POST /sim/items/{itemId}/fix_login` (Link's update mode finished); and
//! `POST /sim/items {"count": 1000}`: that many new Items, answered as the JSON lines of a
//! migration file (`linkstate import --file`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Simulator;
use super::faults::{AkoyaErrorRule, ErrorRule};

/// The body of `POST /sim/latency`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Latency {
    milliseconds: u64,
}

/// The body of `POST /sim/akoya/consents`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewConsent {
    provider_id: String,
}

/// The answer of `POST /sim/akoya/consents`: what a connect flow would have handed over.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedConsent {
    refresh_token: String,
    consent_id: String,
    provider_id: String,
    item_id: String,
}

/// The answer of `POST /sim/items/{itemId}/twin`: what Link and the token exchange hand over.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedItem {
    access_token: String,
    item_id: String,
}

/// The body of `POST /sim/items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewItems {
    count: usize,
    #[serde(default = "default_institution")]
    institution_id: String,
}

fn default_institution() -> String {
    "ins_109508".to_owned()
}

/// Most Items one `POST /sim/items` makes.
const MAX_NEW_ITEMS: usize = 100_000;

/// The answer of `POST /sim/items/{itemId}/accounts`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct AddedAccount {
    account_id: String,
}

/// The control endpoints.
pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sim/latency", post(set_latency))
        .route("/sim/resets", post(set_resets))
        .route("/sim/errors", post(add_error).delete(clear_errors))
        .route("/sim/akoya/consents", post(create_consent))
        .route(
            "/sim/akoya/consents/{consent_id}/revoke",
            post(revoke_consent),
        )
        .route("/sim/akoya/errors", post(add_akoya_error))
        .route("/sim/items", post(create_items))
        .route("/sim/items/{item_id}/twin", post(create_twin))
        .route("/sim/items/{item_id}/accounts", post(add_account))
        .route("/sim/items/{item_id}/fix_login", post(fix_login))
}

/// Whether the simulator has the Item.
fn known(sim: &Simulator, item_id: &str) -> bool {
    sim.lock().item(item_id).is_some()
}

/// The answer for an Item the simulator does not have.
fn no_such_item() -> Response {
    (StatusCode::NOT_FOUND, "no such item").into_response()
}

/// New Items, one import line each: `{"serviceProvider":"PLAID","externalCustomerId":…,
/// "accessToken":…}`, as a team would export them from its own database.
async fn create_items(State(sim): State<Simulator>, Json(new): Json<NewItems>) -> Response {
    if !(1..=MAX_NEW_ITEMS).contains(&new.count) {
        let message = format!("count must be 1 to {MAX_NEW_ITEMS}");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    if !sim
        .institutions()
        .iter()
        .any(|(id, _)| *id == new.institution_id)
    {
        return (StatusCode::BAD_REQUEST, "unknown institutionId").into_response();
    }
    let mut lines = String::with_capacity(new.count * 120);
    for n in 1..=new.count {
        let item = sim.create_item(&new.institution_id);
        let line = serde_json::json!({
            "serviceProvider": "PLAID",
            "externalCustomerId": format!("customer-{n}"),
            "accessToken": item.access_token.expose(),
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let ndjson = [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")];
    (StatusCode::CREATED, ndjson, lines).into_response()
}

async fn create_twin(State(sim): State<Simulator>, Path(item_id): Path<String>) -> Response {
    if !known(&sim, &item_id) {
        return no_such_item();
    }
    let twin = sim.create_twin_item(&item_id);
    let created = CreatedItem {
        access_token: twin.access_token.expose().to_owned(),
        item_id: twin.item_id,
    };
    (StatusCode::CREATED, Json(created)).into_response()
}

async fn add_account(State(sim): State<Simulator>, Path(item_id): Path<String>) -> Response {
    if !known(&sim, &item_id) {
        return no_such_item();
    }
    let account_id = sim.add_account(&item_id);
    (StatusCode::CREATED, Json(AddedAccount { account_id })).into_response()
}

async fn fix_login(State(sim): State<Simulator>, Path(item_id): Path<String>) -> Response {
    if !known(&sim, &item_id) {
        return no_such_item();
    }
    sim.fix_login(&item_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_latency(State(sim): State<Simulator>, Json(body): Json<Latency>) -> Json<Latency> {
    sim.set_latency(Duration::from_millis(body.milliseconds));
    Json(body)
}

/// The body of `POST /sim/resets`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Resets {
    /// Whether every provider answer is broken off.
    pub enabled: bool,
}

async fn set_resets(State(sim): State<Simulator>, Json(body): Json<Resets>) -> Json<Resets> {
    sim.set_resets(body.enabled);
    Json(body)
}

async fn add_error(
    State(sim): State<Simulator>,
    Json(rule): Json<ErrorRule>,
) -> (StatusCode, Json<ErrorRule>) {
    sim.inject_error(rule.clone());
    (StatusCode::CREATED, Json(rule))
}

async fn clear_errors(State(sim): State<Simulator>) -> StatusCode {
    sim.clear_errors();
    StatusCode::NO_CONTENT
}

async fn create_consent(State(sim): State<Simulator>, Json(body): Json<NewConsent>) -> Response {
    if body.provider_id.is_empty() {
        return (StatusCode::BAD_REQUEST, "providerId must not be empty").into_response();
    }
    let consent = sim.create_akoya_consent(&body.provider_id);
    let created = CreatedConsent {
        refresh_token: consent.refresh_token.expose().to_owned(),
        consent_id: consent.consent_id,
        provider_id: consent.provider_id,
        item_id: consent.item_id,
    };
    (StatusCode::CREATED, Json(created)).into_response()
}

async fn revoke_consent(
    State(sim): State<Simulator>,
    Path(consent_id): Path<String>,
) -> StatusCode {
    if sim.lock().consents.revoke(&consent_id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn add_akoya_error(
    State(sim): State<Simulator>,
    Json(rule): Json<AkoyaErrorRule>,
) -> (StatusCode, Json<AkoyaErrorRule>) {
    sim.inject_akoya_error(rule.clone());
    (StatusCode::CREATED, Json(rule))
}

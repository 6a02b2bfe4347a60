//! The simulator's own controls, for people driving `linkstate simulate` by hand:
//! `POST /sim/latency {"milliseconds": 50}`, `POST /sim/errors` with an [`ErrorRule`],
//! `DELETE /sim/errors` (Akoya's rules too); and for Akoya, `POST /sim/akoya/consents
//! {"providerId": "mikomo"}`, `POST /sim/akoya/errors` with an [`AkoyaErrorRule`],
//! `POST /sim/akoya/consents/{consentId}/revoke`.

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

/// The control endpoints.
pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sim/latency", post(set_latency))
        .route("/sim/errors", post(add_error).delete(clear_errors))
        .route("/sim/akoya/consents", post(create_consent))
        .route(
            "/sim/akoya/consents/{consent_id}/revoke",
            post(revoke_consent),
        )
        .route("/sim/akoya/errors", post(add_akoya_error))
}

async fn set_latency(State(sim): State<Simulator>, Json(body): Json<Latency>) -> Json<Latency> {
    sim.set_latency(Duration::from_millis(body.milliseconds));
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

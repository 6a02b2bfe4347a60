//! The simulator's own controls, for people driving `linkstate simulate` by hand:
//! `POST /sim/latency {"milliseconds": 50}`, `POST /sim/errors` with an [`ErrorRule`],
//! `DELETE /sim/errors`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Simulator;
use super::faults::ErrorRule;

/// The body of `POST /sim/latency`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Latency {
    milliseconds: u64,
}

/// The control endpoints.
pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sim/latency", post(set_latency))
        .route("/sim/errors", post(add_error).delete(clear_errors))
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

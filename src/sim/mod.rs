//! The provider simulator: a Plaid-sandbox compatible HTTP API for `dev`, `simulate` and tests.
//!
//! It keeps Items in memory, answers Plaid's shapes (reusing the client's types) and can be told
//! to be slow or to fail, in process ([`Simulator::set_latency`], [`Simulator::inject_error`]) or
//! over HTTP (`/sim/latency`, `/sim/errors`).

mod accounts;
mod control;
mod endpoints;
mod errors;
mod faults;
mod ids;
mod institutions;
mod keys;
mod plaid;
mod state;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;

use crate::domain::secret::Secret;
use crate::providers::plaid::{ItemPublicTokenExchangeRequest, SandboxPublicTokenCreateRequest};
pub use faults::ErrorRule;
use state::SimState;

/// The API keys the simulator accepts; others get Plaid's `INVALID_API_KEYS`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The accepted `client_id`.
    pub client_id: String,
    /// The accepted `secret`.
    pub secret: String,
}

/// A running simulator's handle; clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    config: Arc<SimConfig>,
    state: Arc<Mutex<SimState>>,
}

/// An Item made by [`Simulator::create_item`].
#[derive(Debug, Clone)]
pub struct SandboxItem {
    /// Its access token.
    pub access_token: Secret,
    /// Its id.
    pub item_id: String,
}

impl Simulator {
    /// A simulator with no Items and a fresh webhook signing key.
    pub fn new(config: SimConfig) -> Self {
        Self {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(SimState::new())),
        }
    }

    /// The HTTP API: Plaid's endpoints and the `/sim` controls.
    pub fn router(&self) -> Router {
        plaid::routes()
            .merge(control::routes())
            .with_state(self.clone())
    }

    /// Serves the API on `listener` in a background task; answers the address it listens on.
    ///
    /// # Panics
    /// If the listener has no local address.
    pub async fn spawn(&self, listener: tokio::net::TcpListener) -> SocketAddr {
        let address = listener.local_addr().expect("a bound listener");
        let router = self.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the simulator stopped serving");
            }
        });
        address
    }

    /// Creates an Item with transactions, as `/sandbox/public_token/create` and
    /// `/item/public_token/exchange` would.
    ///
    /// # Panics
    /// If the simulator does not know `institution_id` (see [`Simulator::institutions`]).
    pub fn create_item(&self, institution_id: &str) -> SandboxItem {
        let request = SandboxPublicTokenCreateRequest {
            institution_id: institution_id.to_owned(),
            initial_products: vec!["transactions".to_owned()],
            options: None,
        };
        let mut state = self.lock();
        let created = endpoints::sandbox_public_token_create(&mut state, request, "")
            .unwrap_or_else(|_| panic!("the simulator does not know {institution_id}"));
        let request = ItemPublicTokenExchangeRequest {
            public_token: created.public_token,
        };
        let exchanged = endpoints::item_public_token_exchange(&mut state, request, "")
            .expect("a fresh public token exchanges");
        SandboxItem {
            access_token: exchanged.access_token,
            item_id: exchanged.item_id,
        }
    }

    /// Delays every Plaid answer by `latency` (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().faults.latency = latency;
    }

    /// Answers an error on matching requests from now on.
    pub fn inject_error(&self, rule: ErrorRule) {
        self.lock().faults.add(rule);
    }

    /// Removes every injected error.
    pub fn clear_errors(&self) {
        self.lock().faults.clear();
    }

    /// The webhook URL of an Item, as set at creation or by `/item/webhook/update`.
    pub fn item_webhook(&self, item_id: &str) -> Option<String> {
        self.lock().item(item_id)?.webhook.clone()
    }

    /// The known institutions: `(institution_id, name)`.
    pub fn institutions(&self) -> Vec<(String, String)> {
        institutions::all()
            .iter()
            .map(|seed| (seed.id.to_owned(), seed.name.to_owned()))
            .collect()
    }

    /// The injected latency.
    fn latency(&self) -> Duration {
        self.lock().faults.latency
    }

    /// Whether these are the accepted API keys.
    fn accepts(&self, client_id: Option<&str>, secret: Option<&str>) -> bool {
        client_id == Some(self.config.client_id.as_str())
            && secret == Some(self.config.secret.as_str())
    }

    /// The state; a panic in another request does not make it unusable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

//! Clients for the data providers, and the mapping of their answers to domain signals.

pub mod akoya;
pub mod plaid;

use serde_json::{Map, Value};

use crate::domain::connection_state::AggregationFailure;

/// A provider call that failed for good (after retries), in provider-neutral terms: what it
/// means for the connection, and the provider's own error for the events.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderFailure {
    /// How the connection's status moves.
    pub failure: AggregationFailure,
    /// What happened, for the log.
    pub message: String,
    /// The provider's error as `serviceProviderDetails`.
    pub details: Map<String, Value>,
}

impl From<plaid::PlaidError> for ProviderFailure {
    fn from(error: plaid::PlaidError) -> Self {
        Self {
            failure: plaid::mapping::failure(&error),
            details: plaid::mapping::error_details(&error),
            message: error.to_string(),
        }
    }
}

impl From<akoya::AkoyaError> for ProviderFailure {
    fn from(error: akoya::AkoyaError) -> Self {
        Self {
            failure: akoya::mapping::failure(&error),
            details: error.details(),
            message: error.to_string(),
        }
    }
}

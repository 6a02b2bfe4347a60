//! Clients for the data providers, and the mapping of their answers to domain signals.

pub mod akoya;
pub mod circuits;
pub mod plaid;

use std::error::Error as _;
use std::time::Duration;

use backon::ExponentialBuilder;
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

/// The quick retries of one provider call: three more tries, from 100 ms doubling to at most
/// 2 s, with jitter so that calls failing together do not retry together.
pub fn quick_retries() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(3)
        .with_jitter()
}

/// What a failed HTTP call to a provider was: None for a timeout, else its cause chain (URLs
/// and causes carry no secrets; bodies, never read here, do).
pub fn transport_failure(error: &reqwest::Error) -> Option<String> {
    if error.is_timeout() {
        return None;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Some(text)
}

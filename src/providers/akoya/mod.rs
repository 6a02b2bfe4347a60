//! Akoya: the HTTP client, its rotating tokens, and the mapping of Akoya's answers to
//! linkstate's terms; the API's own shapes are in `linkstate_wire::akoya`, shared with the
//! simulator.

mod client;
mod error;
pub mod mapping;
pub mod tokens;

use backon::Retryable;

pub use client::{AkoyaClient, AkoyaConfig, TRANSACTIONS_PAGE};
pub use error::{AkoyaError, AkoyaErrorKind, CUSTOMER_NOT_AUTHORIZED, TOO_MANY_REQUESTS};
pub use linkstate_wire::akoya::*;

/// Calls Akoya through `call`, retrying outages and throttling three times with exponential
/// backoff and jitter, as Akoya recommends for 5xx.
pub async fn retrying<T, F, Fut>(call: F) -> Result<T, AkoyaError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AkoyaError>>,
{
    call.retry(super::quick_retries())
        .when(AkoyaError::is_retryable)
        .await
}

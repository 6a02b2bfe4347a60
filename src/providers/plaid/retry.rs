//! Quick retries of one Plaid call: transient failures (timeouts, 5xx, 429) are tried again a
//! few times with exponential backoff and jitter; what still fails is the caller's to record.

use backon::Retryable;

use super::PlaidError;

/// Calls Plaid through `call`, retrying transient failures up to three times.
pub async fn retrying<T, F, Fut>(call: F) -> Result<T, PlaidError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlaidError>>,
{
    call.retry(crate::providers::quick_retries())
        .when(PlaidError::is_retryable)
        .await
}

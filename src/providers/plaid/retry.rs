//! Quick retries of one Plaid call: transient failures (timeouts, 5xx, 429) are tried again a
//! few times with exponential backoff and jitter; what still fails is the caller's to record.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::PlaidError;

/// Calls Plaid through `call`, retrying transient failures up to three times.
pub async fn retrying<T, F, Fut>(call: F) -> Result<T, PlaidError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlaidError>>,
{
    call.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(3)
            .with_jitter(),
    )
    .when(PlaidError::is_retryable)
    .await
}

//! RefreshConnection: Meld's rules for when a refresh may run, then one queued aggregation.

use crate::context::Context;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId, RequestId};
use crate::domain::import::ProviderCredentials;
use crate::domain::input::excerpt;
use crate::domain::product::Product;
use crate::jobs::{self, Job};
use crate::providers::plaid::PlaidErrorKind;
use crate::store::jobs::OnDuplicate;
use crate::store::{self, StoreError, connections, credentials};

/// How many times a refresh tries to queue its job or find the one that covers it.
const ENQUEUE_TURNS: usize = 3;

/// Why a refresh was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such connection for this tenant.
    #[error("connection {} not found", excerpt(&.0.to_string()))]
    NotFound(ConnectionId),
    /// The status does not allow a refresh (Meld answers 409).
    #[error(
        "connection is {0}: a refresh is allowed only from ACTIVE, PARTIALLY_ACTIVE, DEGRADED or UNDETERMINED"
    )]
    NotRefreshable(ConnectionStatus),
    /// An inactive duplicate is not aggregated: the active one is.
    #[error("connection is an INACTIVE_DUPLICATE of {0}: refresh that connection instead")]
    InactiveDuplicate(ConnectionId),
    /// The connection's provider has no API keys configured; the message says which.
    #[error("{0}")]
    ProviderNotConfigured(String),
    /// The provider is throttling this item.
    #[error("the provider is rate limiting this connection; retry later")]
    RateLimited,
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RefreshError {
    fn from(error: StoreError) -> Self {
        RefreshError::Store(error)
    }
}

/// Queues an aggregation of the connection, or answers the request id of the one already queued
/// or running.
pub async fn refresh(
    ctx: &Context,
    account_id: AccountId,
    connection_id: ConnectionId,
    products: Vec<Product>,
) -> Result<RequestId, RefreshError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let connection = connections::get(&mut conn, account_id, connection_id)
        .await
        .map_err(|error| match error {
            StoreError::NotFound => RefreshError::NotFound(connection_id),
            other => RefreshError::Store(other),
        })?;
    if let Some(active) = connection.active_duplicate_connection_id {
        return Err(RefreshError::InactiveDuplicate(active));
    }
    if !connection.is_refreshable() {
        return Err(RefreshError::NotRefreshable(connection.status));
    }
    // Accepted, it could only fail in the background.
    if let Some(refusal) = ctx.unconfigured(connection.service_provider) {
        return Err(RefreshError::ProviderNotConfigured(refusal));
    }
    let Job::Aggregate(requested) = Job::refresh(account_id, connection_id, products.clone())
    else {
        unreachable!("a refresh is an aggregation")
    };
    if let Some(request_id) = jobs::join_live(&mut conn, &requested).await? {
        return Ok(request_id);
    }
    let wants_transactions = connection.products.contains(&Product::Transactions)
        && (products.is_empty() || products.contains(&Product::Transactions));
    if wants_transactions {
        let credentials = credentials::get(&mut conn, ctx.cipher(), connection_id).await?;
        drop(conn);
        if let ProviderCredentials::Plaid { access_token } = credentials {
            extract_now(ctx, &access_token).await?;
        }
        conn = store::connect(ctx.pool()).await?;
    }
    // A live job answers for this request; when it finishes between our look and our insert,
    // the insert finds the way free on the next turn.
    let job = Job::Aggregate(requested.clone());
    for _ in 0..ENQUEUE_TURNS {
        if jobs::enqueue(&mut conn, &job, OnDuplicate::Skip).await? {
            ctx.wake_workers();
            return Ok(requested.request_id);
        }
        if let Some(running) = jobs::join_live(&mut conn, &requested).await? {
            return Ok(running);
        }
    }
    Err(RefreshError::Store(StoreError::Unavailable(
        "the connection's job queue kept changing; retry".into(),
    )))
}

/// Asks Plaid to extract transactions now; only throttling stops the refresh, since the
/// aggregation that follows records any other failure in the connection's status.
async fn extract_now(
    ctx: &Context,
    access_token: &crate::domain::secret::Secret,
) -> Result<(), RefreshError> {
    match ctx.plaid().transactions_refresh(access_token).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == PlaidErrorKind::RateLimited => Err(RefreshError::RateLimited),
        Err(error) => {
            tracing::warn!(%error, "transactions/refresh failed; aggregating anyway");
            Ok(())
        }
    }
}

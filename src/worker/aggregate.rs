//! Aggregation: fetch a connection's data from its provider, then write it with its events.
//!
//! Provider calls run outside any database transaction; each result is written in one short
//! transaction together with the events that describe it. Work on one connection is serialized
//! by the connection's lease.

use chrono::{Duration as ChronoDuration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::{Deserialize, Serialize};

use super::JobError;
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_events::{self, AccountSummary};
use crate::domain::financial_account::ProviderAccount;
use crate::domain::ids::{AccountId, ConnectionId, RequestId};
use crate::domain::import::ProviderCredentials;
use crate::domain::product::Product;
use crate::domain::secret::Secret;
use crate::providers::plaid::{PlaidError, mapping};
use crate::store::{self, StoreError, connections, events, financial_accounts};

/// How long one aggregation may hold its connection.
const CONNECTION_LEASE_MINUTES: i64 = 10;

/// Aggregate one connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateJob {
    /// The tenant.
    pub account_id: AccountId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The request that asked for it, carried into the events.
    pub request_id: RequestId,
    /// Whether this run must send ACCOUNTS_UPDATING itself (an import already did, otherwise).
    pub announce: bool,
}

/// Runs the job under the connection's lease.
pub async fn run(ctx: &Context, worker_id: &str, job: &AggregateJob) -> Result<(), JobError> {
    let until = Utc::now() + ChronoDuration::minutes(CONNECTION_LEASE_MINUTES);
    {
        let mut conn = store::connect(ctx.pool()).await?;
        if !connections::try_lease(&mut conn, job.connection_id, worker_id, until).await? {
            return Err(JobError::Busy);
        }
    }
    let outcome = aggregate(ctx, job).await;
    let mut conn = store::connect(ctx.pool()).await?;
    connections::release_lease(&mut conn, job.connection_id, worker_id).await?;
    outcome
}

async fn aggregate(ctx: &Context, job: &AggregateJob) -> Result<(), JobError> {
    let (connection, credentials, webhook_url) = {
        let mut conn = store::connect(ctx.pool()).await?;
        let connection = connections::get(&mut conn, job.account_id, job.connection_id).await?;
        let credentials =
            connections::credentials(&mut conn, ctx.cipher(), job.connection_id).await?;
        let webhook_url = connections::webhook_url(&mut conn, job.connection_id).await?;
        (connection, credentials, webhook_url)
    };
    if !connection.status.allows_refresh() {
        tracing::info!(connection = %connection.id, status = %connection.status, "not aggregating");
        return Ok(());
    }
    match credentials {
        ProviderCredentials::Plaid { access_token } => {
            aggregate_plaid(ctx, job, &connection, &access_token, webhook_url).await
        }
        ProviderCredentials::Akoya { .. } => Err(JobError::Permanent(
            "Akoya aggregation is not implemented yet".into(),
        )),
    }
}

async fn aggregate_plaid(
    ctx: &Context,
    job: &AggregateJob,
    connection: &Connection,
    access_token: &Secret,
    webhook_url: Option<String>,
) -> Result<(), JobError> {
    let plaid = ctx.plaid();
    // Seed step 3: the provider sends this connection's webhooks to us from now on.
    if webhook_url.as_deref() != Some(ctx.plaid_webhook_url()) {
        plaid
            .item_webhook_update(access_token, ctx.plaid_webhook_url())
            .await
            .map_err(provider_failure)?;
        let mut conn = store::connect(ctx.pool()).await?;
        connections::set_webhook_url(&mut conn, connection.id, ctx.plaid_webhook_url()).await?;
    }
    let fetched_at = Utc::now();
    let response = plaid
        .accounts_get(access_token)
        .await
        .map_err(provider_failure)?;
    let accounts: Vec<ProviderAccount> = response.accounts.iter().map(mapping::account).collect();
    let mut conn = store::connect(ctx.pool()).await?;
    if job.announce {
        conn.transaction::<_, StoreError, _>(async |conn| {
            let upserted = upsert_accounts(conn, connection, &accounts, fetched_at).await?;
            let summaries = summaries(&accounts, &upserted);
            let updating = connection_events::accounts_updating(
                &connection.facts(),
                &job.request_id,
                &summaries,
            );
            events::append(conn, connection.account_id, &[updating]).await?;
            Ok(())
        })
        .await?;
        ctx.hub().wake();
    }
    conn.transaction::<_, StoreError, _>(async |conn| {
        let upserted = upsert_accounts(conn, connection, &accounts, fetched_at).await?;
        let updated: Vec<_> = upserted
            .iter()
            .map(|account| (account.id, vec![Product::Balances]))
            .collect();
        let event = connection_events::accounts_updated(
            &connection.facts(),
            &job.request_id,
            fetched_at,
            &updated,
        );
        events::append(conn, connection.account_id, &[event]).await?;
        connections::mark_aggregated(conn, connection.id, fetched_at).await?;
        Ok(())
    })
    .await?;
    ctx.hub().wake();
    Ok(())
}

async fn upsert_accounts(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    accounts: &[ProviderAccount],
    fetched_at: chrono::DateTime<Utc>,
) -> Result<Vec<financial_accounts::UpsertedAccount>, StoreError> {
    financial_accounts::upsert(
        conn,
        connection.account_id,
        connection.id,
        connection.customer_id,
        accounts,
        fetched_at,
    )
    .await
}

/// The accounts as ACCOUNTS_UPDATING lists them.
pub fn summaries(
    accounts: &[ProviderAccount],
    upserted: &[financial_accounts::UpsertedAccount],
) -> Vec<AccountSummary> {
    accounts
        .iter()
        .zip(upserted)
        .map(|(account, stored)| AccountSummary {
            id: stored.id,
            name: account.name.clone(),
            mask: account.mask.clone(),
            is_new: stored.is_new,
        })
        .collect()
}

fn provider_failure(error: PlaidError) -> JobError {
    if error.is_retryable() {
        JobError::Transient(error.to_string())
    } else {
        JobError::Permanent(error.to_string())
    }
}

//! Aggregation: fetch a connection's products from its provider, then write the results with
//! the events that describe them.
//!
//! Provider calls run outside any database transaction (with a few quick retries for transient
//! failures); the results are written in one short transaction together with their events and
//! the sync cursor that produced them. Work on one connection is serialized by its lease.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::JobError;
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_events::{self, TransactionCounts};
use crate::domain::connection_state::{self, Signal};
use crate::domain::financial_account::{AccountIdentifiers, AccountOwner, ProviderAccount};
use crate::domain::ids::FinancialAccountId;
use crate::domain::import::ProviderCredentials;
use crate::domain::product::Product;
use crate::domain::secret::Secret;
use crate::domain::transactions::{self as tx_rules, NetEffect, SyncChange};
use crate::jobs::AggregateJob;
use crate::providers::plaid::{PlaidError, mapping, retrying};
use crate::store::transactions::Owner;
use crate::store::{
    self, StoreError, connections, credentials, events, financial_accounts, leases,
    refresh_schedule, transactions as tx_store,
};

/// Transactions per `/transactions/sync` page (Plaid's maximum).
const SYNC_PAGE: u32 = 500;

/// Times a sync restarts from its old cursor when Plaid's data moved under the pagination.
const SYNC_RESTARTS: usize = 3;

/// Transactions older than this count as historical.
const HISTORICAL_AFTER_DAYS: i64 = 30;

/// How soon to look again while Plaid's historical load is still running, in case its webhook
/// never arrives.
const HISTORICAL_POLL: ChronoDuration = ChronoDuration::minutes(15);

/// Runs the job under the connection's lease, taken for `lease` (and renewed, like the job's,
/// by the worker's heartbeat while it runs).
pub async fn run(
    ctx: &Context,
    worker_id: &str,
    lease: Duration,
    job: &AggregateJob,
) -> Result<(), JobError> {
    let until = Utc::now() + ChronoDuration::from_std(lease).unwrap_or(ChronoDuration::MAX);
    {
        let mut conn = store::connect(ctx.pool()).await?;
        if !leases::try_lease(&mut conn, job.connection_id, worker_id, until).await? {
            return Err(JobError::Busy);
        }
    }
    let outcome = aggregate(ctx, job).await;
    let mut conn = store::connect(ctx.pool()).await?;
    leases::release_lease(&mut conn, job.connection_id, worker_id).await?;
    outcome
}

async fn aggregate(ctx: &Context, job: &AggregateJob) -> Result<(), JobError> {
    let (connection, credentials, webhook_url) = {
        let mut conn = store::connect(ctx.pool()).await?;
        let connection = connections::get(&mut conn, job.account_id, job.connection_id).await?;
        let credentials = credentials::get(&mut conn, ctx.cipher(), job.connection_id).await?;
        let webhook_url = connections::webhook_url(&mut conn, job.connection_id).await?;
        (connection, credentials, webhook_url)
    };
    if !connection.status.allows_refresh() {
        tracing::info!(connection = %connection.id, status = %connection.status, "not aggregating");
        return Ok(());
    }
    let ProviderCredentials::Plaid { access_token } = credentials else {
        return Err(JobError::Permanent(
            "Akoya aggregation is not implemented yet".into(),
        ));
    };
    let products: Vec<Product> = connection
        .products
        .iter()
        .copied()
        .filter(|p| job.products.is_empty() || job.products.contains(p))
        .collect();
    let plaid = PlaidAggregation {
        ctx,
        job,
        connection: &connection,
        access_token: &access_token,
    };
    match plaid.fetch_and_write(&products, webhook_url).await {
        Ok(()) => Ok(()),
        Err(Failed::Store(error)) => Err(error.into()),
        Err(Failed::Provider(error)) => record_failure(ctx, &connection, &error).await,
    }
}

/// Why an aggregation stopped.
enum Failed {
    /// The provider failed (after retries): the connection's status says so.
    Provider(PlaidError),
    /// The database failed: the job is retried.
    Store(StoreError),
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Store(error)
    }
}

impl From<PlaidError> for Failed {
    fn from(error: PlaidError) -> Self {
        Failed::Provider(error)
    }
}

/// What Plaid answered for one aggregation.
#[derive(Default)]
struct Fetched {
    /// Whether account products (balances first) were fetched: ACCOUNTS_UPDATED follows.
    account_products: bool,
    accounts: Vec<ProviderAccount>,
    identifiers: Option<Vec<AccountIdentifiers>>,
    owners: Option<Vec<(String, Vec<AccountOwner>)>>,
    sync: Option<SyncResult>,
}

/// One complete `/transactions/sync` run.
struct SyncResult {
    changes: Vec<SyncChange>,
    next_cursor: String,
    historical_complete: bool,
}

struct PlaidAggregation<'a> {
    ctx: &'a Context,
    job: &'a AggregateJob,
    connection: &'a Connection,
    access_token: &'a Secret,
}

impl PlaidAggregation<'_> {
    /// Has Plaid send the item's webhooks to linkstate, and remembers that it does.
    async fn point_webhook(&self) -> Result<(), Failed> {
        let ours = self.ctx.plaid_webhook_url();
        retrying(|| {
            self.ctx
                .plaid()
                .item_webhook_update(self.access_token, ours)
        })
        .await?;
        let mut conn = store::connect(self.ctx.pool()).await?;
        connections::set_webhook_url(&mut conn, self.connection.id, ours).await?;
        Ok(())
    }

    async fn fetch_and_write(
        &self,
        products: &[Product],
        webhook_url: Option<String>,
    ) -> Result<(), Failed> {
        let plaid = self.ctx.plaid();
        // Seed step 3 (the import did it; this repairs a changed public URL).
        let ours = self.ctx.plaid_webhook_url();
        if webhook_url.as_deref() != Some(ours) {
            self.point_webhook().await?;
        }
        let fetched_at = Utc::now();
        let mut fetched = Fetched::default();
        // A transactions-only sync (a provider's "new data" webhook) leaves the accounts be.
        if products.contains(&Product::Balances) {
            let balances = retrying(|| plaid.accounts_balance_get(self.access_token)).await?;
            // The Item as Plaid has it: a webhook changed elsewhere since (an old integration,
            // the dashboard) is pointed back, or its notices would stop reaching us.
            if balances.item.webhook.as_deref() != Some(ours) {
                tracing::info!(connection = %self.connection.id, "the item's webhook was changed elsewhere; pointing it back");
                self.point_webhook().await?;
            }
            fetched.accounts = balances.accounts.iter().map(mapping::account).collect();
            fetched.account_products = true;
        }
        if self.job.announce && fetched.account_products {
            self.announce(&fetched.accounts, fetched_at).await?;
        }
        if products.contains(&Product::Identifiers) {
            fetched.identifiers =
                optional_product(retrying(|| plaid.auth_get(self.access_token)).await)?
                    .map(|response| mapping::identifiers(&response));
        }
        if products.contains(&Product::Owners) {
            fetched.owners =
                optional_product(retrying(|| plaid.identity_get(self.access_token)).await)?
                    .map(|response| mapping::owners(&response));
        }
        if products.contains(&Product::Transactions) {
            let cursor = {
                let mut conn = store::connect(self.ctx.pool()).await?;
                conn.transaction::<_, StoreError, _>(async |conn| {
                    connections::lock_aggregation(conn, self.connection.id).await
                })
                .await?
                .transactions_cursor
            };
            fetched.sync = Some(self.sync(cursor).await?);
        }
        self.write(fetched, fetched_at).await?;
        self.ctx.hub().wake();
        Ok(())
    }

    /// ACCOUNTS_UPDATING, with the accounts as the provider lists them now.
    async fn announce(
        &self,
        accounts: &[ProviderAccount],
        at: DateTime<Utc>,
    ) -> Result<(), Failed> {
        let mut conn = store::connect(self.ctx.pool()).await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let upserted = upsert_accounts(conn, self.connection, accounts, at).await?;
            let summaries =
                connection_events::summaries(accounts, financial_accounts::newness(&upserted));
            let updating = connection_events::accounts_updating(
                &self.connection.facts(),
                &self.job.request_id,
                &summaries,
            );
            events::append(conn, self.connection.account_id, &[updating]).await?;
            Ok(())
        })
        .await?;
        self.ctx.hub().wake();
        Ok(())
    }

    /// Pages `/transactions/sync` to the end, restarting from `cursor` if the data moved.
    async fn sync(&self, cursor: Option<String>) -> Result<SyncResult, Failed> {
        let plaid = self.ctx.plaid();
        let mut restarts = 0;
        'restart: loop {
            let mut changes = Vec::new();
            let mut position = cursor.clone();
            loop {
                let page = retrying(|| {
                    plaid.transactions_sync(self.access_token, position.as_deref(), SYNC_PAGE)
                })
                .await;
                let page = match page {
                    Err(error)
                        if error.error_code()
                            == Some("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
                            && restarts < SYNC_RESTARTS =>
                    {
                        restarts += 1;
                        continue 'restart;
                    }
                    other => other?,
                };
                changes.extend(
                    page.added
                        .iter()
                        .map(|t| SyncChange::Added(mapping::transaction(t))),
                );
                changes.extend(
                    page.modified
                        .iter()
                        .map(|t| SyncChange::Modified(mapping::transaction(t))),
                );
                changes.extend(
                    page.removed.iter().map(|r| {
                        SyncChange::Removed(r.transaction_id.clone(), r.account_id.clone())
                    }),
                );
                position = Some(page.next_cursor.clone());
                if !page.has_more {
                    return Ok(SyncResult {
                        changes,
                        next_cursor: page.next_cursor,
                        historical_complete: page.transactions_update_status
                            == "HISTORICAL_UPDATE_COMPLETE",
                    });
                }
            }
        }
    }

    /// Writes everything fetched, and its events, in one transaction.
    async fn write(&self, fetched: Fetched, at: DateTime<Utc>) -> Result<(), Failed> {
        let connection = self.connection;
        let facts = connection.facts();
        let request_id = &self.job.request_id;
        let cipher = self.ctx.cipher();
        let mut conn = store::connect(self.ctx.pool()).await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let row = connections::lock_aggregation(conn, connection.id).await?;
            // Deleted or broken while we fetched: what we fetched no longer belongs in the log.
            if !row.state.status.allows_refresh() {
                return Ok(());
            }
            let upserted = upsert_accounts(conn, connection, &fetched.accounts, at).await?;
            let ids = financial_accounts::ids_by_provider_id(conn, connection.id).await?;
            let mut updated: BTreeMap<FinancialAccountId, Vec<Product>> = upserted
                .iter()
                .map(|a| (a.id, vec![Product::Balances]))
                .collect();
            for identifiers in fetched.identifiers.iter().flatten() {
                if let Some(id) = ids.get(&identifiers.provider_account_id) {
                    financial_accounts::set_identifiers(conn, cipher, *id, identifiers).await?;
                    updated.entry(*id).or_default().push(Product::Identifiers);
                }
            }
            for (provider_id, owners) in fetched.owners.iter().flatten() {
                if let Some(id) = ids.get(provider_id) {
                    financial_accounts::set_owners(conn, *id, owners).await?;
                    updated.entry(*id).or_default().push(Product::Owners);
                }
            }
            let updated: Vec<_> = updated.into_iter().collect();
            let mut new_events = Vec::new();
            if fetched.account_products {
                new_events.push(connection_events::accounts_updated(
                    &facts, request_id, at, &updated,
                ));
            }
            let mut historical_pending = false;
            if let Some(sync) = fetched.sync {
                let send_historical =
                    sync.historical_complete && row.historical_aggregated_at.is_none();
                historical_pending = !sync.historical_complete;
                let (recent, historical) =
                    write_transactions(conn, connection, &ids, sync.changes, send_historical, at)
                        .await?;
                connections::set_transactions_cursor(conn, connection.id, &sync.next_cursor)
                    .await?;
                if !recent.is_empty() {
                    new_events.push(connection_events::transactions_aggregated(
                        &facts,
                        request_id,
                        at,
                        &counts(&recent, &ids),
                        false,
                    ));
                }
                if send_historical {
                    new_events.push(connection_events::transactions_aggregated(
                        &facts,
                        request_id,
                        at,
                        &counts(&historical, &ids),
                        true,
                    ));
                    connections::mark_historical_aggregated(conn, connection.id, at).await?;
                    financial_accounts::mark_historical(conn, connection.id).await?;
                }
            }
            let (state, effects) = connection_state::apply(row.state, Signal::AggregationSucceeded);
            connections::set_state(conn, connection.id, state, observed_as_of(Utc::now())).await?;
            new_events.extend(connection_events::transition_events(
                &facts,
                &effects,
                &facts.provider_details(),
                &[],
            ));
            events::append(conn, connection.account_id, &new_events).await?;
            connections::mark_aggregated(conn, connection.id, at).await?;
            if historical_pending {
                refresh_schedule::pull_next_refresh(conn, connection.id, at + HISTORICAL_POLL)
                    .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// Writes a sync's net effect; answers the effects (recent, historical) to announce. The
/// historical part is split off only when its one-time event is due.
async fn write_transactions(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    ids: &HashMap<String, FinancialAccountId>,
    changes: Vec<SyncChange>,
    split_historical: bool,
    at: DateTime<Utc>,
) -> Result<(NetEffect, NetEffect), StoreError> {
    let touched: Vec<String> = changes
        .iter()
        .map(|change| match change {
            SyncChange::Added(tx) | SyncChange::Modified(tx) => tx.provider_transaction_id.clone(),
            SyncChange::Removed(id, _) => id.clone(),
        })
        .collect();
    let stored = tx_store::stored_ids(conn, connection.id, &touched).await?;
    // The domain works on provider ids; events name removed transactions by our ids.
    let accounts_of: HashMap<String, String> = stored
        .iter()
        .map(|(provider_id, tx)| (provider_id.clone(), tx.provider_account_id.clone()))
        .collect();
    let cutoff = (at - ChronoDuration::days(HISTORICAL_AFTER_DAYS)).date_naive();
    let (historical, recent): (Vec<SyncChange>, Vec<SyncChange>) =
        changes.into_iter().partition(|change| match change {
            SyncChange::Added(tx) | SyncChange::Modified(tx) => {
                split_historical && tx.transaction_date < cutoff
            }
            SyncChange::Removed(..) => false,
        });
    let mut recent = tx_rules::net_effect(&accounts_of, recent);
    let mut historical = tx_rules::net_effect(&accounts_of, historical);
    let owner = Owner {
        account_id: connection.account_id,
        connection_id: connection.id,
        customer_id: connection.customer_id,
    };
    for effect in [&recent, &historical] {
        let rows: Vec<_> = effect.upserts.values().collect();
        tx_store::upsert(conn, owner, ids, &rows).await?;
        let removed: Vec<String> = effect.removals.iter().map(|(id, _)| id.clone()).collect();
        tx_store::delete(conn, connection.id, &removed).await?;
    }
    for effect in [&mut recent, &mut historical] {
        for account in effect.per_account.values_mut() {
            for id in &mut account.removed {
                if let Some(stored) = stored.get(id) {
                    *id = stored.id.to_string();
                }
            }
        }
    }
    Ok((recent, historical))
}

/// An effect's per-account lines, for the accounts we know.
fn counts(effect: &NetEffect, ids: &HashMap<String, FinancialAccountId>) -> Vec<TransactionCounts> {
    effect
        .per_account
        .iter()
        .filter_map(|(provider_id, account)| {
            Some(TransactionCounts {
                id: *ids.get(provider_id)?,
                added: account.added as i64,
                updated: account.updated as i64,
                removed: account.removed.clone(),
            })
        })
        .collect()
}

/// Records a failed aggregation: the status moves as Meld's table says, with its events.
async fn record_failure(
    ctx: &Context,
    connection: &Connection,
    error: &PlaidError,
) -> Result<(), JobError> {
    let failure = mapping::failure(error);
    tracing::warn!(connection = %connection.id, %error, ?failure, "aggregation failed");
    let facts = connection.facts();
    let mut details = mapping::error_details(error);
    details.extend(facts.provider_details());
    let mut conn = store::connect(ctx.pool()).await?;
    conn.transaction::<_, StoreError, _>(async |conn| {
        let row = connections::lock_aggregation(conn, connection.id).await?;
        let (state, effects) =
            connection_state::apply(row.state, Signal::AggregationFailed(failure));
        connections::set_state(conn, connection.id, state, observed_as_of(Utc::now())).await?;
        let new_events = connection_events::transition_events(&facts, &effects, &details, &[]);
        events::append(conn, connection.account_id, &new_events).await?;
        Ok(())
    })
    .await?;
    ctx.hub().wake();
    Ok(())
}

/// What an aggregation observed counts as of a little before it ran: Plaid signs webhooks with
/// its own clock, to the second, and a webhook signed just before our fetch must still apply.
fn observed_as_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at - ChronoDuration::seconds(10)
}

/// A product the item does not have is skipped, not a failure.
fn optional_product<T>(result: Result<T, PlaidError>) -> Result<Option<T>, PlaidError> {
    match result {
        Ok(response) => Ok(Some(response)),
        Err(error) if mapping::product_unavailable(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

async fn upsert_accounts(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    accounts: &[ProviderAccount],
    fetched_at: DateTime<Utc>,
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

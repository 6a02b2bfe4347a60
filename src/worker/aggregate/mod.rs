//! Aggregation: fetch a connection's products from its provider (through [`Source`], the one
//! seam the providers sit behind), then write the results with the events that describe them.
//!
//! Provider calls run outside any database transaction (with a few quick retries for transient
//! failures); the results are written in one short transaction together with their events and
//! the sync cursor that produced them. Work on one connection is serialized by its lease.

mod akoya;
mod plaid;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::JobError;
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_events::{self, TransactionCounts};
use crate::domain::connection_state::{self, AggregationFailure, Signal};
use crate::domain::financial_account::{AccountIdentifiers, AccountOwner, ProviderAccount};
use crate::domain::ids::{ConnectionId, FinancialAccountId};
use crate::domain::product::Product;
use crate::domain::service_provider::ServiceProvider;
use crate::domain::transaction_window::{self, Window};
use crate::domain::transactions::{self as tx_rules, NetEffect, ProviderTransaction, SyncChange};
use crate::jobs::AggregateJob;
use crate::providers::ProviderFailure;
use crate::store::transactions::Owner;
use crate::store::{
    self, StoreError, connections, duplicates, events, financial_accounts, leases,
    refresh_schedule, transactions as tx_store,
};

/// Transactions older than this count as historical.
const HISTORICAL_AFTER_DAYS: i64 = 30;

/// How soon to look again while Plaid's historical load is still running, in case its webhook
/// never arrives.
const HISTORICAL_POLL: ChronoDuration = ChronoDuration::minutes(15);

/// Runs the job under the connection's lease, taken by `holder` (this job of this worker) for
/// `lease`, and renewed, like the job's, by the worker's heartbeat while it runs.
pub async fn run(
    ctx: &Context,
    holder: &str,
    lease: Duration,
    job: &AggregateJob,
) -> Result<(), JobError> {
    let until = Utc::now() + chrono_duration(lease);
    {
        let mut conn = store::connect(ctx.pool()).await?;
        if !leases::try_lease(&mut conn, job.connection_id, holder, until).await? {
            return Err(JobError::Busy);
        }
    }
    let outcome = aggregate(ctx, job).await;
    let mut conn = store::connect(ctx.pool()).await?;
    leases::release_lease(&mut conn, job.connection_id, holder).await?;
    outcome
}

async fn aggregate(ctx: &Context, job: &AggregateJob) -> Result<(), JobError> {
    let connection = {
        let mut conn = store::connect(ctx.pool()).await?;
        connections::get(&mut conn, job.account_id, job.connection_id).await?
    };
    if !connection.is_refreshable() {
        tracing::info!(connection = %connection.id, status = %connection.status, "not aggregating");
        return Ok(());
    }
    let products: Vec<Product> = connection
        .products
        .iter()
        .copied()
        .filter(|p| job.products.is_empty() || job.products.contains(p))
        .collect();
    let mut source = match connection.service_provider {
        ServiceProvider::Plaid => Source::Plaid(plaid::PlaidSource::open(ctx, &connection).await?),
        ServiceProvider::Akoya => Source::Akoya(akoya::AkoyaSource::open(ctx, &connection).await?),
        other => {
            return Err(JobError::Permanent(format!(
                "{other} connections cannot be aggregated yet"
            )));
        }
    };
    let run = Aggregation {
        ctx,
        job,
        connection: &connection,
    };
    let call = ctx
        .circuits()
        .admit(connection.service_provider)
        .map_err(JobError::CircuitOpen)?;
    match run.fetch_and_write(&mut source, &products).await {
        Ok(()) => {
            call.answered();
            Ok(())
        }
        // Dropping the call says nothing of the provider: a trial is given back.
        Err(Failed::Store(error)) => Err(error.into()),
        Err(Failed::Provider(failure))
            if failure.failure == AggregationFailure::ProviderUnavailable =>
        {
            // The provider is down: the connection says so, and the job tries again later,
            // with backoff and jitter, while the circuit counts the provider's failures.
            call.failed();
            record_failure(ctx, &connection, &failure).await?;
            Err(JobError::Transient(failure.message))
        }
        Err(Failed::Provider(failure)) => {
            // The provider answered; the answer is the connection's problem.
            call.answered();
            record_failure(ctx, &connection, &failure).await
        }
    }
}

/// Why an aggregation stopped.
pub(crate) enum Failed {
    /// The provider failed (after retries): the connection's status says so.
    Provider(ProviderFailure),
    /// The database failed: the job is retried.
    Store(StoreError),
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Store(error)
    }
}

impl<E: Into<ProviderFailure>> From<E> for Failed {
    fn from(error: E) -> Self {
        Failed::Provider(error.into())
    }
}

/// The one seam between the providers and aggregation: what is asked of a provider. The
/// events, statuses, net effects and writes below are the same for all of them.
pub(crate) enum Source<'a> {
    /// A Plaid item.
    Plaid(plaid::PlaidSource<'a>),
    /// An Akoya consent.
    Akoya(akoya::AkoyaSource<'a>),
}

impl Source<'_> {
    /// The accounts with their balances, fetched now.
    async fn accounts(&mut self) -> Result<Accounts, Failed> {
        match self {
            Source::Plaid(source) => source.accounts().await,
            Source::Akoya(source) => source.accounts().await,
        }
    }

    /// Account and routing numbers, None when the connection has no such product.
    async fn identifiers(&mut self) -> Result<Option<Vec<AccountIdentifiers>>, Failed> {
        match self {
            Source::Plaid(source) => source.identifiers().await,
            // Akoya's payment-networks product is not part of a data consent linkstate asks for.
            Source::Akoya(_) => Ok(None),
        }
    }

    /// The owners of each account, None when the connection has no such product.
    async fn owners(
        &mut self,
        accounts: &[ProviderAccount],
    ) -> Result<Option<Vec<(String, Vec<AccountOwner>)>>, Failed> {
        match self {
            Source::Plaid(source) => source.owners().await,
            Source::Akoya(source) => source.owners(accounts).await,
        }
    }

    /// The transactions since the last pull (or from the start).
    async fn transactions(&mut self, since: &Since) -> Result<Pulled, Failed> {
        match self {
            Source::Plaid(source) => source.transactions(since).await,
            Source::Akoya(source) => source.transactions(since).await,
        }
    }

    /// The historical load, for a provider that loads it on request; None where the provider
    /// brings it by itself (Plaid, in its sync).
    async fn historical(&mut self) -> Result<Option<Pulled>, Failed> {
        match self {
            Source::Plaid(_) => Ok(None),
            Source::Akoya(source) => source.historical().await.map(Some),
        }
    }
}

/// The accounts a provider lists.
pub(crate) struct Accounts {
    /// The accounts with their balances.
    pub accounts: Vec<ProviderAccount>,
    /// Whether the list is the consent's whole list, so that a stored account missing from it
    /// was dropped (Akoya); Plaid's balance answer is not taken as one.
    pub complete: bool,
    /// Listed accounts that are closed at the institution (Meld: INACTIVE).
    pub closed: Vec<String>,
}

/// Where a connection's transactions stand before a pull.
pub(crate) struct Since {
    /// The provider's cursor, or the day of the last pull (Akoya).
    pub cursor: Option<String>,
    /// Whether the historical load was announced already.
    pub historical_done: bool,
}

/// What a provider answered for transactions.
pub(crate) enum Pulled {
    /// The changes since a cursor, as the provider reports them (Plaid).
    Changes {
        /// The changes in order.
        changes: Vec<SyncChange>,
        /// The cursor after them.
        next_cursor: String,
        /// Whether the provider's historical load is complete.
        historical_complete: bool,
    },
    /// What the provider lists for a window, to be compared with what is stored (Akoya).
    Window {
        /// The accounts and days read in full.
        window: Window,
        /// What was listed.
        transactions: Vec<ProviderTransaction>,
        /// The cursor to keep after a recent pull (the day it read to); None for the
        /// historical load.
        next_cursor: Option<String>,
    },
}

/// What one aggregation fetched, to write in one transaction.
#[derive(Default)]
struct Fetched {
    /// Whether account products (balances first) were fetched: ACCOUNTS_UPDATED follows.
    account_products: bool,
    accounts: Vec<ProviderAccount>,
    /// Accounts to mark INACTIVE: closed, or (with a complete list) no longer listed.
    dropped: Vec<String>,
    identifiers: Option<Vec<AccountIdentifiers>>,
    owners: Option<Vec<(String, Vec<AccountOwner>)>>,
    transactions: Option<Pulled>,
}

/// One aggregation of one connection.
struct Aggregation<'a> {
    ctx: &'a Context,
    job: &'a AggregateJob,
    connection: &'a Connection,
}

impl Aggregation<'_> {
    async fn fetch_and_write(
        &self,
        source: &mut Source<'_>,
        products: &[Product],
    ) -> Result<(), Failed> {
        let fetched_at = Utc::now();
        let mut fetched = Fetched::default();
        // A transactions-only sync (a provider's "new data" webhook) leaves the accounts be.
        if products.contains(&Product::Balances) {
            self.accounts(source, &mut fetched, fetched_at).await?;
        }
        if products.contains(&Product::Identifiers) {
            fetched.identifiers = source.identifiers().await?;
        }
        if products.contains(&Product::Owners) {
            fetched.owners = source.owners(&fetched.accounts).await?;
        }
        let mut historical = false;
        if products.contains(&Product::Transactions) {
            let since = self.since().await?;
            fetched.transactions = Some(source.transactions(&since).await?);
            historical = !since.historical_done;
        }
        self.write(fetched, fetched_at).await?;
        self.ctx.hub().wake();
        // The historical load of a provider that loads it on request follows the first pull,
        // and is announced once, as Plaid's is.
        if historical && let Some(pulled) = source.historical().await? {
            let load = Fetched {
                transactions: Some(pulled),
                ..Fetched::default()
            };
            self.write(load, Utc::now()).await?;
            self.ctx.hub().wake();
        }
        Ok(())
    }

    /// The accounts as the provider lists them now, and those to mark INACTIVE: closed ones
    /// and, when the list is the consent's whole list, the ones it no longer has. Accounts new
    /// to a known connection are announced (`newAccount`) whatever asked for this run.
    async fn accounts(
        &self,
        source: &mut Source<'_>,
        fetched: &mut Fetched,
        at: DateTime<Utc>,
    ) -> Result<(), Failed> {
        let listed = source.accounts().await?;
        let known = {
            let mut conn = store::connect(self.ctx.pool()).await?;
            financial_accounts::ids_by_provider_id(&mut conn, self.connection.id).await?
        };
        let ids: BTreeSet<&str> = listed
            .accounts
            .iter()
            .map(|a| a.provider_account_id.as_str())
            .collect();
        let has_new = ids.iter().any(|id| !known.contains_key(*id));
        if listed.complete {
            fetched.dropped = known
                .keys()
                .filter(|id| !ids.contains(id.as_str()))
                .cloned()
                .collect();
        }
        fetched.dropped.extend(listed.closed);
        fetched.accounts = listed.accounts;
        fetched.account_products = true;
        if self.job.announce || (listed.complete && has_new && !known.is_empty()) {
            self.announce(&fetched.accounts, at).await?;
        }
        Ok(())
    }

    /// The connection's cursor and whether its historical load was announced.
    async fn since(&self) -> Result<Since, StoreError> {
        let mut conn = store::connect(self.ctx.pool()).await?;
        let row = conn
            .transaction::<_, StoreError, _>(async |conn| {
                connections::lock_aggregation(conn, self.connection.id).await
            })
            .await?;
        Ok(Since {
            cursor: row.transactions_cursor,
            historical_done: row.historical_aggregated_at.is_some(),
        })
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

    /// Writes everything fetched, and its events, in one transaction.
    async fn write(&self, fetched: Fetched, at: DateTime<Utc>) -> Result<(), Failed> {
        let connection = self.connection;
        let facts = connection.facts();
        let request_id = &self.job.request_id;
        let cipher = self.ctx.cipher();
        let mut conn = store::connect(self.ctx.pool()).await?;
        let settle = self.job.settle_duplicates && fetched.account_products;
        conn.transaction::<_, StoreError, _>(async |conn| {
            if settle {
                duplicates::lock_customer(conn, connection.customer_id).await?;
            }
            let row = connections::lock_aggregation(conn, connection.id).await?;
            // Deleted, broken or replaced while we fetched: what we fetched no longer belongs
            // in the log.
            if !row.state.is_refreshable() {
                return Ok(());
            }
            let upserted = upsert_accounts(conn, connection, &fetched.accounts, at).await?;
            let mut removed = Vec::new();
            for provider_id in &fetched.dropped {
                removed.extend(
                    financial_accounts::deactivate_one(conn, connection.id, provider_id).await?,
                );
            }
            let ids = financial_accounts::ids_by_provider_id(conn, connection.id).await?;
            let mut updated: BTreeMap<FinancialAccountId, Vec<Product>> = upserted
                .iter()
                .filter(|a| !removed.contains(&a.id))
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
            if !removed.is_empty() {
                new_events.push(connection_events::accounts_removed(
                    &facts,
                    &removed,
                    &facts.provider_details(),
                ));
            }
            if fetched.account_products {
                new_events.push(connection_events::accounts_updated(
                    &facts, request_id, at, &updated,
                ));
            }
            let mut historical_pending = false;
            if let Some(pulled) = fetched.transactions {
                let pull = Pull::of(
                    conn,
                    connection.id,
                    pulled,
                    row.historical_aggregated_at.is_none(),
                )
                .await?;
                historical_pending = pull.historical_pending;
                let historical_before = pull.historical_before(at);
                let (recent, historical) =
                    write_transactions(conn, connection, &ids, pull.changes, historical_before)
                        .await?;
                if let Some(cursor) = &pull.next_cursor {
                    connections::set_transactions_cursor(conn, connection.id, cursor).await?;
                }
                if !recent.is_empty() {
                    new_events.push(connection_events::transactions_aggregated(
                        &facts,
                        request_id,
                        at,
                        &counts(&recent, &ids),
                        false,
                    ));
                }
                if pull.send_historical {
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
            if settle {
                new_events.extend(crate::duplicates::settle(conn, connection).await?);
            }
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

/// A pull made into ordinary changes, with what follows from it.
struct Pull {
    changes: Vec<SyncChange>,
    next_cursor: Option<String>,
    /// Whether the one HISTORICAL_TRANSACTIONS_AGGREGATED goes out with this pull.
    send_historical: bool,
    /// Whether this pull is the historical load itself (all of it is historical).
    is_historical_load: bool,
    /// Whether the provider's historical load is still running (look again soon).
    historical_pending: bool,
}

impl Pull {
    /// Turns what a provider answered into changes: a window is compared with what is stored.
    async fn of(
        conn: &mut AsyncPgConnection,
        connection_id: ConnectionId,
        pulled: Pulled,
        historical_due: bool,
    ) -> Result<Self, StoreError> {
        Ok(match pulled {
            Pulled::Changes {
                changes,
                next_cursor,
                historical_complete,
            } => Pull {
                changes,
                next_cursor: Some(next_cursor),
                send_historical: historical_complete && historical_due,
                is_historical_load: false,
                historical_pending: !historical_complete,
            },
            Pulled::Window {
                window,
                transactions,
                next_cursor,
            } => {
                let accounts: Vec<String> = window.accounts.iter().cloned().collect();
                let ids: Vec<String> = transactions
                    .iter()
                    .map(|t| t.provider_transaction_id.clone())
                    .collect();
                let stored = tx_store::in_window(
                    conn,
                    connection_id,
                    &accounts,
                    (window.from, window.to),
                    &ids,
                )
                .await?;
                let is_historical_load = next_cursor.is_none();
                Pull {
                    changes: transaction_window::changes(&window, &stored, transactions),
                    next_cursor,
                    send_historical: is_historical_load && historical_due,
                    is_historical_load,
                    historical_pending: false,
                }
            }
        })
    }

    /// The day before which written transactions count as historical, when the historical
    /// part is split off (only when its one-time event is due).
    fn historical_before(&self, at: DateTime<Utc>) -> Option<NaiveDate> {
        if self.is_historical_load {
            Some(NaiveDate::MAX)
        } else if self.send_historical {
            Some((at - ChronoDuration::days(HISTORICAL_AFTER_DAYS)).date_naive())
        } else {
            None
        }
    }
}

/// Writes a pull's net effect; answers the effects (recent, historical) to announce. The
/// historical part (dated before `historical_before`) is split off only when its one-time
/// event is due.
async fn write_transactions(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    ids: &HashMap<String, FinancialAccountId>,
    changes: Vec<SyncChange>,
    historical_before: Option<NaiveDate>,
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
    // The historical load itself is historical through and through, removals too.
    let all_historical = historical_before == Some(NaiveDate::MAX);
    let (historical, recent): (Vec<SyncChange>, Vec<SyncChange>) =
        changes.into_iter().partition(|change| match change {
            SyncChange::Added(tx) | SyncChange::Modified(tx) => {
                historical_before.is_some_and(|cutoff| tx.transaction_date < cutoff)
            }
            SyncChange::Removed(..) => all_historical,
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
    failed: &ProviderFailure,
) -> Result<(), JobError> {
    let failure = failed.failure;
    tracing::warn!(connection = %connection.id, error = %failed.message, ?failure, "aggregation failed");
    let facts = connection.facts();
    let mut details = failed.details.clone();
    details.extend(facts.provider_details());
    let mut conn = store::connect(ctx.pool()).await?;
    conn.transaction::<_, StoreError, _>(async |conn| {
        let row = connections::lock_aggregation(conn, connection.id).await?;
        let (state, effects) =
            connection_state::apply(row.state, Signal::AggregationFailed(failure));
        connections::set_state(conn, connection.id, state, observed_as_of(Utc::now())).await?;
        let new_events = connection_events::transition_events(&facts, &effects, &details, &[]);
        events::append(conn, connection.account_id, &new_events).await?;
        if failure == AggregationFailure::ProviderUnavailable {
            // However long the outage and whatever becomes of this job, the background
            // refresh takes the connection up again soon: that is how it catches up.
            let soon = Utc::now() + chrono_duration(ctx.circuits().policy().max_cool_down);
            refresh_schedule::pull_next_refresh(conn, connection.id, soon).await?;
        }
        Ok(())
    })
    .await?;
    ctx.hub().wake();
    Ok(())
}

fn chrono_duration(duration: Duration) -> ChronoDuration {
    ChronoDuration::from_std(duration).unwrap_or(ChronoDuration::MAX)
}

/// What an aggregation observed counts as of a little before it ran: Plaid signs webhooks with
/// its own clock, to the second, and a webhook signed just before our fetch must still apply.
fn observed_as_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at - ChronoDuration::seconds(10)
}

/// Stores the accounts as listed, with their balances.
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

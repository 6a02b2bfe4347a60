//! Importing provider connections: Meld's import guide, steps 1 to 5.
//!
//! For each item, concurrently and with a bound: call the provider (outside any transaction) to
//! check the credentials, learn the item and its accounts, and point the item's webhooks at us
//! (seed step 3); then, in one transaction, write the customer, the connection, its accounts,
//! ACCOUNTS_UPDATING and the aggregation job that sends ACCOUNTS_UPDATED. An item is complete
//! when the answer says so; a failed item writes nothing, whatever happened to the others.

mod akoya;
mod validate;

pub use validate::{CheckedItem, ValidationOutcome, validate};

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::StreamExt;

use crate::context::Context;
use crate::domain::background_refresh;
use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::event::EventType;
use crate::domain::financial_account::ProviderAccount;
use crate::domain::ids::{AccountId, RequestId};
use crate::domain::import::{ImportItem, ProviderCredentials};
use crate::domain::product::Product;
use crate::domain::secret::Secret;
use crate::domain::service_provider::ServiceProvider;
use crate::jobs::{self, Job};
use crate::metrics;
use crate::outbound::profiles;
use crate::providers::plaid::{PlaidError, PlaidErrorKind, describe_item, mapping, retrying};
use crate::store::connections::ImportedConnection;
use crate::store::institutions::{self, InstitutionOwner};
use crate::store::jobs::OnDuplicate;
use crate::store::{
    self, StoreError, connections, customers, duplicates, events, financial_accounts,
    refresh_schedule,
};

/// Items of one request in flight at once: enough to hide provider latency, few enough to stay
/// polite to the provider and the pool.
const CONCURRENCY: usize = 16;

/// Why one item failed; the gRPC layer passes these through as they are.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemFailure {
    /// A gRPC status code name.
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
    /// The provider's own error.
    pub provider_details: serde_json::Map<String, serde_json::Value>,
}

/// One imported item: its connection, and whether it was there before this request.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The connection, as written.
    pub connection: Connection,
    /// The item had been imported before: this is the connection that already held it.
    pub already_imported: bool,
}

/// The outcome of a whole import.
#[derive(Debug)]
pub struct ImportOutcome {
    /// The id carried into the events of this import.
    pub request_id: RequestId,
    /// One result per item, in request order.
    pub results: Vec<Result<Imported, ItemFailure>>,
    /// What the caller should know, such as that no webhook profile receives the events.
    pub warnings: Vec<String>,
}

/// The seed's warning for an account whose events reach no webhook endpoint.
pub const NO_PROFILE_WARNING: &str = "no ACTIVE webhook profile of this account receives \
     BANK_LINKING_ACCOUNTS_UPDATED: the events of this import reach StreamEvents only";

/// Why a whole import could not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A provider named in the request has no API keys configured; the message says which.
    #[error("{0}")]
    ProviderNotConfigured(String),
}

/// Imports validated items for a tenant.
pub async fn import(
    ctx: &Context,
    account_id: AccountId,
    items: Vec<ImportItem>,
) -> Result<ImportOutcome, ImportError> {
    require_configured(ctx, &items)?;
    let request_id = RequestId::generate();
    let results: Vec<Result<Imported, ItemFailure>> = futures::stream::iter(items)
        .map(|item| import_one(ctx, account_id, &request_id, item))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for result in &results {
        let outcome = result
            .as_ref()
            .map_or_else(|failure| failure.code, |_| "ok");
        metrics::count(&metrics::METRICS.imports, outcome);
    }
    ctx.hub().wake();
    ctx.wake_workers();
    Ok(ImportOutcome {
        request_id,
        results,
        warnings: warnings(ctx, account_id).await,
    })
}

/// Refuses the whole request when a provider it names has no API keys configured.
fn require_configured(ctx: &Context, items: &[ImportItem]) -> Result<(), ImportError> {
    for item in items {
        if let Some(refusal) = ctx.unconfigured(item.credentials.service_provider()) {
            return Err(ImportError::ProviderNotConfigured(refusal));
        }
    }
    Ok(())
}

/// The warnings of an import. The items are written by now: a failed look-up leaves the
/// warning out rather than failing them.
async fn warnings(ctx: &Context, account_id: AccountId) -> Vec<String> {
    match profiles::any_receives(ctx, account_id, EventType::BankLinkingAccountsUpdated).await {
        Ok(true) => Vec::new(),
        Ok(false) => vec![NO_PROFILE_WARNING.to_string()],
        Err(error) => {
            tracing::warn!(%error, "could not look up the account's webhook profiles");
            Vec::new()
        }
    }
}

/// Imports one item; its result says whether it was committed, so that a batch whose later
/// item failed never reads as failed as a whole while its earlier items stand.
async fn import_one(
    ctx: &Context,
    account_id: AccountId,
    request_id: &RequestId,
    item: ImportItem,
) -> Result<Imported, ItemFailure> {
    let access_token = match &item.credentials {
        ProviderCredentials::Plaid { access_token } => access_token,
        ProviderCredentials::Akoya { .. } => {
            return akoya::import_one(ctx, account_id, request_id, &item).await;
        }
    };
    let fetched = fetch_plaid_item(ctx, access_token)
        .await
        .map_err(|error| plaid_failure(&error))?;
    // Seed step 3, before anything is written: an item answered as imported sends its webhooks
    // to us, and one Plaid would not switch is not imported at all.
    let ours = ctx.plaid_webhook_url();
    retrying(|| ctx.plaid().item_webhook_update(access_token, ours))
        .await
        .map_err(|error| webhook_failure(&error))?;
    let write = ItemWrite {
        account_id,
        request_id,
        item: &item,
        fetched: &fetched,
    };
    write_item(ctx, write).await.map_err(store_failure)
}

/// One item to write, with what Plaid said of it.
#[derive(Clone, Copy)]
struct ItemWrite<'a> {
    account_id: AccountId,
    request_id: &'a RequestId,
    item: &'a ImportItem,
    fetched: &'a PlaidItem,
}

/// Writes one item. Two items of one request may name the same Plaid item: the second write
/// then finds the first one's row, so one retry settles the race on the unique key.
async fn write_item(ctx: &Context, item: ItemWrite<'_>) -> Result<Imported, StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    match write(&mut conn, ctx, item).await {
        Err(StoreError::Conflict(_)) => write(&mut conn, ctx, item).await,
        other => other,
    }
}

/// What Plaid says about an item.
struct PlaidItem {
    item_id: String,
    institution_id: String,
    institution_name: String,
    products: Vec<Product>,
    accounts: Vec<ProviderAccount>,
}

async fn fetch_plaid_item(ctx: &Context, access_token: &Secret) -> Result<PlaidItem, PlaidError> {
    let plaid = ctx.plaid();
    let (item, accounts) = tokio::try_join!(
        describe_item(plaid, access_token),
        plaid.accounts_get(access_token)
    )?;
    let institution_id = item.institution_id.unwrap_or_else(|| "unknown".to_string());
    Ok(PlaidItem {
        item_id: item.item_id,
        institution_name: item
            .institution_name
            .unwrap_or_else(|| institution_id.clone()),
        institution_id,
        products: item.products,
        accounts: accounts.accounts.iter().map(mapping::account).collect(),
    })
}

/// Writes one fetched item and its consequences in one transaction.
async fn write(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    write: ItemWrite<'_>,
) -> Result<Imported, StoreError> {
    let ItemWrite {
        account_id,
        request_id,
        item,
        fetched,
    } = write;
    conn.transaction::<_, StoreError, _>(async |conn| {
        let customer_id = customers::find_or_create_customer(
            conn,
            account_id,
            item.external_customer_id.as_deref(),
        )
        .await?;
        duplicates::lock_customer(conn, customer_id).await?;
        let institution_id = institutions::upsert_institution(
            conn,
            ServiceProvider::Plaid,
            InstitutionOwner::Shared,
            &fetched.institution_id,
            &fetched.institution_name,
        )
        .await?;
        let products = fetched
            .products
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        let (connection_id, is_new) = connections::insert_imported(
            conn,
            ctx.cipher(),
            ImportedConnection {
                account_id,
                customer_id,
                institution_id,
                provider_connection_id: &fetched.item_id,
                credentials: &item.credentials,
                products,
                webhook_url: Some(ctx.plaid_webhook_url()),
            },
        )
        .await?;
        let connection = connections::get(conn, account_id, connection_id).await?;
        if is_new {
            let upserted = financial_accounts::upsert(
                conn,
                account_id,
                connection_id,
                connection.customer_id,
                &fetched.accounts,
                Utc::now(),
            )
            .await?;
            let summaries = connection_events::summaries(
                &fetched.accounts,
                financial_accounts::newness(&upserted),
            );
            let updating =
                connection_events::accounts_updating(&connection.facts(), request_id, &summaries);
            events::append(conn, account_id, &[updating]).await?;
            let first = background_refresh::first_refresh(
                Utc::now(),
                ctx.refresh_interval(),
                &mut rand::rng(),
            );
            refresh_schedule::set_next_refresh(conn, connection_id, first).await?;
            let settled = crate::duplicates::settle(conn, &connection).await?;
            events::append(conn, account_id, &settled).await?;
        }
        // A known connection imported again is refreshed, and that run announces itself.
        let job = Job::after_import(account_id, connection_id, request_id, !is_new);
        jobs::enqueue(conn, &job, OnDuplicate::Skip).await?;
        // Read again: settling may have made it an inactive duplicate.
        Ok(Imported {
            connection: connections::get(conn, account_id, connection_id).await?,
            already_imported: !is_new,
        })
    })
    .await
}

/// Plaid would not point the item's webhooks at us, even after retries.
fn webhook_failure(error: &PlaidError) -> ItemFailure {
    let mut failure = plaid_failure(error);
    failure.code = "UNAVAILABLE";
    failure.message = format!(
        "Plaid could not be told to send this item's webhooks to linkstate, so nothing of it was imported: {error}"
    );
    failure
}

/// A database failure as one item's error: nothing of the item was written. The detail is
/// for the log only.
fn store_failure(error: StoreError) -> ItemFailure {
    let (code, message) = match &error {
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "import item not written: database unavailable");
            ("UNAVAILABLE", "the database is unavailable; retry later")
        }
        other => {
            tracing::error!(error = %other, "import item not written: internal error");
            ("INTERNAL", "internal error")
        }
    };
    ItemFailure {
        code,
        message: format!("{message}; nothing of this item was written"),
        provider_details: serde_json::Map::new(),
    }
}

/// A Plaid failure as one item's error.
fn plaid_failure(error: &PlaidError) -> ItemFailure {
    let code = match error.kind() {
        PlaidErrorKind::NotConfigured => "FAILED_PRECONDITION",
        PlaidErrorKind::CredentialsRefused if error.http_status() == Some(403) => {
            "PERMISSION_DENIED"
        }
        PlaidErrorKind::CredentialsRefused => "UNAUTHENTICATED",
        PlaidErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        PlaidErrorKind::Refused => "INVALID_ARGUMENT",
        PlaidErrorKind::Unavailable => "UNAVAILABLE",
        PlaidErrorKind::Unexpected => "INTERNAL",
    };
    ItemFailure {
        code,
        message: error.to_string(),
        provider_details: mapping::error_details(error),
    }
}

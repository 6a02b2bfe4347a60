//! Connections: their rows as the API shows them, their state, and their provider links.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Array;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::{connections, customers, institutions};
use crate::cipher::Cipher;
use crate::domain::connection::Connection;
use crate::domain::connection_state::ConnectionState;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId, CustomerId, InstitutionId};
use crate::domain::import::ProviderCredentials;
use crate::domain::service_provider::ServiceProvider;

/// A connection row as stored, with its customer's external id and its institution's name,
/// before its strings are parsed.
#[derive(Queryable, Selectable)]
#[diesel(table_name = connections)]
struct ConnectionRow {
    id: Uuid,
    account_id: Uuid,
    customer_id: Uuid,
    #[diesel(select_expression = customers::external_customer_id)]
    external_customer_id: Option<String>,
    institution_id: Uuid,
    #[diesel(select_expression = institutions::name)]
    institution_name: String,
    service_provider: String,
    provider_connection_id: Option<String>,
    status: String,
    status_reason: Option<String>,
    products: Vec<String>,
    successfully_aggregated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    active_duplicate_connection_id: Option<Uuid>,
    #[diesel(select_expression = DuplicateIds)]
    #[diesel(select_expression_type = DuplicateIds)]
    duplicate_connection_ids: Vec<Uuid>,
}

/// The connection's inactive duplicates that are not deleted, oldest first: a subquery on the
/// partial index of the pointers, which is empty for almost every connection. A type of its own
/// rather than `diesel::dsl::sql`, whose text diesel cannot know to be the same each time: a
/// query holding it would be prepared again on every call, one more round trip per read.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId, diesel::expression::ValidGrouping)]
struct DuplicateIds;

impl diesel::expression::Expression for DuplicateIds {
    type SqlType = Array<diesel::sql_types::Uuid>;
}

impl<QS> diesel::expression::AppearsOnTable<QS> for DuplicateIds {}

impl<QS> diesel::expression::SelectableExpression<QS> for DuplicateIds {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for DuplicateIds {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.push_sql(
            "ARRAY(SELECT d.id FROM connections d \
             WHERE d.active_duplicate_connection_id = connections.id AND d.status <> 'DELETED' \
             ORDER BY d.created_at, d.id)",
        );
        Ok(())
    }
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;

    fn try_from(row: ConnectionRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
        Ok(Connection {
            id: ConnectionId(row.id),
            account_id: AccountId(row.account_id),
            customer_id: CustomerId(row.customer_id),
            external_customer_id: row.external_customer_id,
            institution_id: InstitutionId(row.institution_id),
            institution_name: row.institution_name,
            service_provider: row
                .service_provider
                .parse()
                .map_err(|_| corrupt("service provider", &row.service_provider))?,
            provider_connection_id: row.provider_connection_id,
            status: row
                .status
                .parse()
                .map_err(|_| corrupt("status", &row.status))?,
            status_reason: row
                .status_reason
                .map(|reason| {
                    reason
                        .parse()
                        .map_err(|_| corrupt("status reason", &reason))
                })
                .transpose()?,
            products: row
                .products
                .iter()
                .map(|p| p.parse().map_err(|_| corrupt("product", p)))
                .collect::<Result<_, _>>()?,
            successfully_aggregated_at: row.successfully_aggregated_at,
            created_at: row.created_at,
            active_duplicate_connection_id: row.active_duplicate_connection_id.map(ConnectionId),
            duplicate_connection_ids: row
                .duplicate_connection_ids
                .into_iter()
                .map(ConnectionId)
                .collect(),
        })
    }
}

/// The joined tables a connection is read from.
macro_rules! connection_source {
    () => {
        connections::table
            .inner_join(customers::table)
            .inner_join(institutions::table)
    };
}

/// One connection of the tenant; `NotFound` for another tenant's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: ConnectionId,
) -> Result<Connection, StoreError> {
    connection_source!()
        .filter(connections::account_id.eq(account_id.0))
        .filter(connections::id.eq(id.0))
        .select(ConnectionRow::as_select())
        .first::<ConnectionRow>(conn)
        .await?
        .try_into()
}

/// Filters of [`list`].
#[derive(Clone, Debug, Default)]
pub struct ConnectionQuery {
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
    /// Only the customer with this external id.
    pub external_customer_id: Option<String>,
    /// Only these statuses (any when empty).
    pub statuses: Vec<ConnectionStatus>,
    /// Only these providers (any when empty).
    pub service_providers: Vec<ServiceProvider>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(DateTime<Utc>, ConnectionId)>,
}

/// The tenant's connections, newest first, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    query: &ConnectionQuery,
    limit: i64,
) -> Result<Vec<Connection>, StoreError> {
    let mut select = connection_source!()
        .filter(connections::account_id.eq(account_id.0))
        .select(ConnectionRow::as_select())
        .into_boxed();
    if let Some(customer_id) = query.customer_id {
        select = select.filter(connections::customer_id.eq(customer_id.0));
    }
    if let Some(external) = &query.external_customer_id {
        select = select.filter(customers::external_customer_id.eq(external.clone()));
    }
    if !query.statuses.is_empty() {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        select = select.filter(connections::status.eq_any(statuses));
    }
    if !query.service_providers.is_empty() {
        let providers: Vec<&str> = query.service_providers.iter().map(|p| p.as_str()).collect();
        select = select.filter(connections::service_provider.eq_any(providers));
    }
    if let Some((created_at, id)) = query.after {
        select = select.filter(
            connections::created_at
                .lt(created_at)
                .or(connections::created_at
                    .eq(created_at)
                    .and(connections::id.lt(id.0))),
        );
    }
    select
        .order((connections::created_at.desc(), connections::id.desc()))
        .limit(limit)
        .load::<ConnectionRow>(conn)
        .await?
        .into_iter()
        .map(Connection::try_from)
        .collect()
}

/// What [`insert_imported`] writes.
#[derive(Debug)]
pub struct ImportedConnection<'a> {
    /// The tenant.
    pub account_id: AccountId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The institution.
    pub institution_id: InstitutionId,
    /// The provider's id for the connection.
    pub provider_connection_id: &'a str,
    /// The credentials, sealed before they are written.
    pub credentials: &'a ProviderCredentials,
    /// The products the provider has for it.
    pub products: Vec<String>,
    /// Where the provider was told to send the connection's webhooks.
    pub webhook_url: Option<&'a str>,
}

/// Inserts an imported connection as ACTIVE, or, when the tenant imported the same provider
/// connection before, stores the new credentials on it. Returns its id and whether it is new.
pub async fn insert_imported(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    new: ImportedConnection<'_>,
) -> Result<(ConnectionId, bool), StoreError> {
    let provider = new.credentials.service_provider();
    let existing = connections::table
        .filter(connections::account_id.eq(new.account_id.0))
        .filter(connections::service_provider.eq(provider.as_str()))
        .filter(connections::provider_connection_id.eq(new.provider_connection_id))
        .select(connections::id)
        .for_update()
        .first::<Uuid>(conn)
        .await
        .optional()?;
    let id = existing.map_or_else(ConnectionId::generate, ConnectionId);
    let sealed = super::credentials::seal(cipher, id, new.credentials);
    if existing.is_some() {
        diesel::update(connections::table.find(id.0))
            .set((
                connections::credentials.eq(sealed),
                connections::webhook_url.eq(new.webhook_url),
                connections::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        return Ok((id, false));
    }
    diesel::insert_into(connections::table)
        .values((
            connections::id.eq(id.0),
            connections::account_id.eq(new.account_id.0),
            connections::customer_id.eq(new.customer_id.0),
            connections::institution_id.eq(new.institution_id.0),
            connections::service_provider.eq(provider.as_str()),
            connections::provider_connection_id.eq(new.provider_connection_id),
            connections::status.eq(ConnectionStatus::Active.as_str()),
            connections::products.eq(new.products),
            connections::credentials.eq(sealed),
            connections::webhook_url.eq(new.webhook_url),
        ))
        .execute(conn)
        .await?;
    Ok((id, true))
}

/// The webhook URL the provider was last told, if any.
pub async fn webhook_url(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
) -> Result<Option<String>, StoreError> {
    Ok(connections::table
        .find(id.0)
        .select(connections::webhook_url)
        .first::<Option<String>>(conn)
        .await?)
}

/// Records that the provider now sends this connection's webhooks to `url`.
pub async fn set_webhook_url(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    url: &str,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set(connections::webhook_url.eq(url))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a successful aggregation.
pub async fn mark_aggregated(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::successfully_aggregated_at.eq(at),
            connections::consecutive_failures.eq(0),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Where a connection's aggregation stands.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregationRow {
    /// Status, reason and failure count.
    pub state: ConnectionState,
    /// Plaid's sync cursor, once a sync finished.
    pub transactions_cursor: Option<String>,
    /// When the historical event was sent, if it was.
    pub historical_aggregated_at: Option<DateTime<Utc>>,
    /// The time of the newest fact the status reflects.
    pub status_as_of: Option<DateTime<Utc>>,
}

/// Reads a connection's aggregation state and locks the row until the transaction ends, so a
/// concurrent status change (a webhook) cannot interleave.
pub async fn lock_aggregation(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
) -> Result<AggregationRow, StoreError> {
    type Row = (
        String,
        Option<String>,
        i32,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let (status, reason, failures, cursor, historical, as_of) = connections::table
        .find(id.0)
        .select((
            connections::status,
            connections::status_reason,
            connections::consecutive_failures,
            connections::transactions_cursor,
            connections::historical_aggregated_at,
            connections::status_as_of,
        ))
        .for_update()
        .first::<Row>(conn)
        .await?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of connection {id}"));
    Ok(AggregationRow {
        state: ConnectionState {
            status: status.parse().map_err(|_| corrupt("status"))?,
            reason: reason
                .map(|r| r.parse().map_err(|_| corrupt("status reason")))
                .transpose()?,
            consecutive_failures: failures,
        },
        transactions_cursor: cursor,
        historical_aggregated_at: historical,
        status_as_of: as_of,
    })
}

/// Writes a connection's status, reason and failure count, as of the time of the fact that
/// set them.
pub async fn set_state(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    state: ConnectionState,
    as_of: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(state.status.as_str()),
            connections::status_reason.eq(state.reason.map(|r| r.as_str())),
            connections::consecutive_failures.eq(state.consecutive_failures),
            // Never backwards: the newest fact wins.
            connections::status_as_of.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("GREATEST(COALESCE(status_as_of, ")
            .bind::<diesel::sql_types::Timestamptz, _>(as_of)
            .sql("), ")
            .bind::<diesel::sql_types::Timestamptz, _>(as_of)
            .sql(")")),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenants' connections a provider names `provider_connection_id` (normally one).
pub async fn all_by_provider_id(
    conn: &mut AsyncPgConnection,
    provider: ServiceProvider,
    provider_connection_id: &str,
) -> Result<Vec<Connection>, StoreError> {
    connection_source!()
        .filter(connections::service_provider.eq(provider.as_str()))
        .filter(connections::provider_connection_id.eq(provider_connection_id))
        .select(ConnectionRow::as_select())
        .load::<ConnectionRow>(conn)
        .await?
        .into_iter()
        .map(Connection::try_from)
        .collect()
}

/// Commits Plaid's sync cursor (with the data it produced, in the caller's transaction).
pub async fn set_transactions_cursor(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    cursor: &str,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set(connections::transactions_cursor.eq(cursor))
        .execute(conn)
        .await?;
    Ok(())
}

/// Names the connection by a new provider id (an Akoya connection repaired by a new consent).
pub async fn set_provider_connection_id(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    provider_connection_id: &str,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set(connections::provider_connection_id.eq(provider_connection_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the historical event was sent.
pub async fn mark_historical_aggregated(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set(connections::historical_aggregated_at.eq(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a connection DELETED and erases its credentials, so that nothing can reach the
/// provider through it any more; its accounts and transactions stay readable.
pub async fn mark_deleted(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(ConnectionStatus::Deleted.as_str()),
            connections::status_reason.eq(None::<String>),
            connections::credentials.eq(None::<Vec<u8>>),
            connections::flow_expires_at.eq(None::<DateTime<Utc>>),
            connections::next_refresh_at.eq(None::<DateTime<Utc>>),
            connections::active_duplicate_connection_id.eq(None::<Uuid>),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

//! Customers, institutions and connections.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
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
use crate::domain::secret::Secret;
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

/// The tenant's connection for a provider's connection id, if imported before.
pub async fn find_by_provider_id(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    provider: ServiceProvider,
    provider_connection_id: &str,
) -> Result<Option<Connection>, StoreError> {
    connection_source!()
        .filter(connections::account_id.eq(account_id.0))
        .filter(connections::service_provider.eq(provider.as_str()))
        .filter(connections::provider_connection_id.eq(provider_connection_id))
        .select(ConnectionRow::as_select())
        .first::<ConnectionRow>(conn)
        .await
        .optional()?
        .map(Connection::try_from)
        .transpose()
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

/// The customer with this external id, made on first use; a customer without one is always new.
///
/// DO NOTHING and then a read, rather than a no-op DO UPDATE: an update would lock the row, and
/// concurrent aggregations of the customer's connections hold key-share locks on it.
pub async fn find_or_create_customer(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    external_customer_id: Option<&str>,
) -> Result<CustomerId, StoreError> {
    let inserted = diesel::insert_into(customers::table)
        .values((
            customers::id.eq(CustomerId::generate().0),
            customers::account_id.eq(account_id.0),
            customers::external_customer_id.eq(external_customer_id),
        ))
        .on_conflict_do_nothing()
        .returning(customers::id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
    let id = match inserted {
        Some(id) => id,
        None => {
            customers::table
                .filter(customers::account_id.eq(account_id.0))
                .filter(customers::external_customer_id.eq(external_customer_id))
                .select(customers::id)
                .first::<Uuid>(conn)
                .await?
        }
    };
    Ok(CustomerId(id))
}

/// Who sees an institution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstitutionOwner {
    /// Every tenant: a provider linkstate can ask named it.
    Shared,
    /// Only this tenant, which named it for a provider linkstate cannot ask.
    Tenant(AccountId),
}

impl InstitutionOwner {
    fn account(self) -> Option<Uuid> {
        match self {
            Self::Shared => None,
            Self::Tenant(account) => Some(account.0),
        }
    }
}

/// The institution a provider names `provider_institution_id`, made on first use (without
/// locking an existing row, for the same reason as customers).
pub async fn upsert_institution(
    conn: &mut AsyncPgConnection,
    provider: ServiceProvider,
    owner: InstitutionOwner,
    provider_institution_id: &str,
    name: &str,
) -> Result<InstitutionId, StoreError> {
    let inserted = diesel::insert_into(institutions::table)
        .values((
            institutions::id.eq(InstitutionId::generate().0),
            institutions::service_provider.eq(provider.as_str()),
            institutions::provider_institution_id.eq(provider_institution_id),
            institutions::name.eq(name),
            institutions::owner_account_id.eq(owner.account()),
        ))
        .on_conflict_do_nothing()
        .returning(institutions::id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
    match inserted {
        Some(id) => Ok(InstitutionId(id)),
        None => find_institution(conn, provider, owner, provider_institution_id)
            .await?
            .ok_or(StoreError::NotFound),
    }
}

/// The institution a provider names `provider_institution_id`, if linkstate has it.
pub async fn find_institution(
    conn: &mut AsyncPgConnection,
    provider: ServiceProvider,
    owner: InstitutionOwner,
    provider_institution_id: &str,
) -> Result<Option<InstitutionId>, StoreError> {
    Ok(institutions::table
        .filter(institutions::service_provider.eq(provider.as_str()))
        .filter(institutions::provider_institution_id.eq(provider_institution_id))
        .filter(institutions::owner_account_id.is_not_distinct_from(owner.account()))
        .select(institutions::id)
        .first::<Uuid>(conn)
        .await
        .optional()?
        .map(InstitutionId))
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
    let sealed = seal_credentials(cipher, id, new.credentials);
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

/// The sealed form of credentials, bound to the connection's id.
fn seal_credentials(
    cipher: &Cipher,
    id: ConnectionId,
    credentials: &ProviderCredentials,
) -> Vec<u8> {
    let plain = match credentials {
        ProviderCredentials::Plaid { access_token } => {
            serde_json::json!({"plaid": {"accessToken": access_token.expose()}})
        }
        ProviderCredentials::Akoya {
            refresh_token,
            provider_id,
        } => serde_json::json!({
            "akoya": {"refreshToken": refresh_token.expose(), "providerId": provider_id}
        }),
    };
    cipher.seal(plain.to_string().as_bytes(), id.0.as_bytes())
}

/// The credentials of a connection, opened.
pub async fn credentials(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
) -> Result<ProviderCredentials, StoreError> {
    let sealed = connections::table
        .find(id.0)
        .select(connections::credentials)
        .first::<Option<Vec<u8>>>(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let plain = cipher
        .open(&sealed, id.0.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("credentials of {id}: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Corrupt(format!("credentials of {id}: {e}")))?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    if let Some(plaid) = value.get("plaid") {
        return Ok(ProviderCredentials::Plaid {
            access_token: Secret::new(text(&plaid["accessToken"])),
        });
    }
    let akoya = &value["akoya"];
    Ok(ProviderCredentials::Akoya {
        refresh_token: Secret::new(text(&akoya["refreshToken"])),
        provider_id: text(&akoya["providerId"]),
    })
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

/// Takes the connection's work lease for `owner` until `until`; false while another holds it.
///
/// Work on one connection is serialized by this lease instead of a row lock, because the work
/// calls the provider, and no lock may be held across a provider call.
pub async fn try_lease(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let taken = diesel::update(connections::table.find(id.0))
        .filter(
            connections::lease_until
                .is_null()
                .or(connections::lease_until.lt(diesel::dsl::now))
                .or(connections::lease_owner.eq(owner)),
        )
        .set((
            connections::lease_owner.eq(owner),
            connections::lease_until.eq(until),
        ))
        .execute(conn)
        .await?;
    Ok(taken == 1)
}

/// Gives the lease back.
pub async fn release_lease(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    owner: &str,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .filter(connections::lease_owner.eq(owner))
        .set((
            connections::lease_owner.eq(None::<String>),
            connections::lease_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Renews every connection lease `owner` holds, for `lease` from now.
pub async fn renew_leases_of(
    conn: &mut AsyncPgConnection,
    owner: &str,
    lease: std::time::Duration,
) -> Result<(), StoreError> {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    diesel::update(connections::table.filter(connections::lease_owner.eq(owner)))
        .set(connections::lease_until.eq(until))
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives back every connection lease `owner` holds.
pub async fn release_leases_of(
    conn: &mut AsyncPgConnection,
    owner: &str,
) -> Result<usize, StoreError> {
    Ok(
        diesel::update(connections::table.filter(connections::lease_owner.eq(owner)))
            .set((
                connections::lease_owner.eq(None::<String>),
                connections::lease_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?,
    )
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

/// Sets when the background refresh takes the connection next.
pub async fn set_next_refresh(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set(connections::next_refresh_at.eq(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Brings the next background refresh forward to `at` if it was later (or unset).
pub async fn pull_next_refresh(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Nullable, Timestamptz};
    diesel::update(connections::table.find(id.0))
        .set(
            connections::next_refresh_at.eq(sql::<Nullable<Timestamptz>>(
                "LEAST(COALESCE(next_refresh_at, ",
            )
            .bind::<Timestamptz, _>(at)
            .sql("), ")
            .bind::<Timestamptz, _>(at)
            .sql(")")),
        )
        .execute(conn)
        .await?;
    Ok(())
}

/// Connections due for a background refresh, locked for this transaction (other replicas skip
/// them), at most `limit`, oldest due first.
pub async fn due_for_refresh(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<(ConnectionId, AccountId)>, StoreError> {
    let refreshable: Vec<&str> = [
        ConnectionStatus::Active,
        ConnectionStatus::PartiallyActive,
        ConnectionStatus::Degraded,
        ConnectionStatus::Undetermined,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    let due = connections::table
        .filter(connections::next_refresh_at.le(diesel::dsl::now))
        .filter(connections::status.eq_any(refreshable))
        .order(connections::next_refresh_at)
        .limit(limit)
        .select((connections::id, connections::account_id))
        .for_update()
        .skip_locked()
        .load::<(Uuid, Uuid)>(conn)
        .await?;
    Ok(due
        .into_iter()
        .map(|(id, account)| (ConnectionId(id), AccountId(account)))
        .collect())
}

/// The provider of our institution `id`, if there is one that `account_id` may see (a shared
/// one, or its own).
pub async fn institution_provider(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: InstitutionId,
) -> Result<Option<ServiceProvider>, StoreError> {
    let provider = institutions::table
        .find(id.0)
        .filter(
            institutions::owner_account_id
                .is_null()
                .or(institutions::owner_account_id.eq(account_id.0)),
        )
        .select(institutions::service_provider)
        .first::<String>(conn)
        .await
        .optional()?;
    provider
        .map(|p| {
            p.parse()
                .map_err(|_| StoreError::Corrupt(format!("service provider {p:?}")))
        })
        .transpose()
}

/// Gives an institution the provider's name for it, where it still carries its provider id as
/// a placeholder (a connect flow named it before the provider did).
pub async fn name_institution(
    conn: &mut AsyncPgConnection,
    id: InstitutionId,
    name: &str,
) -> Result<(), StoreError> {
    diesel::update(institutions::table.find(id.0))
        .filter(institutions::name.eq(institutions::provider_institution_id))
        .set(institutions::name.eq(name))
        .execute(conn)
        .await?;
    Ok(())
}

/// What [`insert_flow`] writes.
#[derive(Clone, Debug)]
pub struct FlowConnection {
    /// The tenant.
    pub account_id: AccountId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The institution.
    pub institution_id: InstitutionId,
    /// The provider the customer connects through.
    pub service_provider: ServiceProvider,
    /// When the flow expires if nobody completes it.
    pub expires_at: DateTime<Utc>,
}

/// Inserts the connection of a connect flow that began: IN_PROGRESS, with no provider id and no
/// credentials yet.
pub async fn insert_flow(
    conn: &mut AsyncPgConnection,
    new: &FlowConnection,
) -> Result<ConnectionId, StoreError> {
    let id = ConnectionId::generate();
    diesel::insert_into(connections::table)
        .values((
            connections::id.eq(id.0),
            connections::account_id.eq(new.account_id.0),
            connections::customer_id.eq(new.customer_id.0),
            connections::institution_id.eq(new.institution_id.0),
            connections::service_provider.eq(new.service_provider.as_str()),
            connections::status.eq(ConnectionStatus::InProgress.as_str()),
            connections::flow_expires_at.eq(new.expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// What [`link_provider`] writes.
#[derive(Debug)]
pub struct ProviderLink<'a> {
    /// The provider's id for the connection.
    pub provider_connection_id: &'a str,
    /// The credentials, sealed before they are written; `None` stores none.
    pub credentials: Option<&'a ProviderCredentials>,
    /// The products the provider has for it.
    pub products: Vec<String>,
    /// The institution, as the provider reports it.
    pub institution_id: InstitutionId,
}

/// Stores on an existing connection the provider's id for it, its credentials, products and
/// institution. A provider id the tenant already has on another connection is a unique
/// violation.
pub async fn link_provider(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
    link: ProviderLink<'_>,
) -> Result<(), StoreError> {
    let sealed = link
        .credentials
        .map(|credentials| seal_credentials(cipher, id, credentials));
    diesel::update(connections::table.find(id.0))
        .set((
            connections::provider_connection_id.eq(link.provider_connection_id),
            connections::credentials.eq(sealed),
            connections::products.eq(link.products),
            connections::institution_id.eq(link.institution_id.0),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a connection's connect flow in `status` (ACTIVE or EXPIRED, neither with a reason).
pub async fn end_flow(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    status: ConnectionStatus,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(status.as_str()),
            connections::status_reason.eq(None::<String>),
            connections::flow_expires_at.eq(None::<DateTime<Utc>>),
            connections::updated_at.eq(diesel::dsl::now),
        ))
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
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// IN_PROGRESS connections whose connect flow ran out, locked for this transaction (other
/// replicas skip them), at most `limit`, oldest first.
pub async fn due_to_expire(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<(ConnectionId, AccountId)>, StoreError> {
    let due = connections::table
        .filter(connections::flow_expires_at.le(diesel::dsl::now))
        .filter(connections::status.eq(ConnectionStatus::InProgress.as_str()))
        .order(connections::flow_expires_at)
        .limit(limit)
        .select((connections::id, connections::account_id))
        .for_update()
        .skip_locked()
        .load::<(Uuid, Uuid)>(conn)
        .await?;
    Ok(due
        .into_iter()
        .map(|(id, account)| (ConnectionId(id), AccountId(account)))
        .collect())
}

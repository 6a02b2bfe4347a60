//! Customers: the tenant's people, found or made by their external id.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::{connections, customers, financial_accounts, transactions};
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::customer::{Customer, CustomerStatus};
use crate::domain::ids::{AccountId, CustomerId};

/// The ACTIVE customer with this external id, made on first use; a customer without one is
/// always new. The row is share-locked until the transaction ends, so DeleteCustomer (which
/// locks it for update) cannot delete it under a connection being written to it.
///
/// DO NOTHING and then a read, rather than a no-op DO UPDATE: an update would lock the row, and
/// concurrent aggregations of the customer's connections hold key-share locks on it. A customer
/// deleted between the two is looked for again, and the next insert makes a new one.
pub async fn find_or_create_customer(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    external_customer_id: Option<&str>,
) -> Result<CustomerId, StoreError> {
    for _ in 0..3 {
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
        if let Some(id) = inserted {
            return Ok(CustomerId(id));
        }
        let found = customers::table
            .filter(customers::account_id.eq(account_id.0))
            .filter(customers::external_customer_id.eq(external_customer_id))
            .filter(customers::status.eq(CustomerStatus::Active.as_str()))
            .select(customers::id)
            .for_key_share()
            .first::<Uuid>(conn)
            .await
            .optional()?;
        if let Some(id) = found {
            return Ok(CustomerId(id));
        }
    }
    Err(StoreError::Conflict(
        "the customer was deleted and made again while this was written".into(),
    ))
}

/// A customer row with its count of connections that are not deleted.
#[derive(Queryable, Selectable)]
#[diesel(table_name = customers)]
struct CustomerRow {
    id: Uuid,
    account_id: Uuid,
    external_customer_id: Option<String>,
    status: String,
    #[diesel(select_expression = connection_count())]
    #[diesel(select_expression_type = diesel::expression::SqlLiteral<diesel::sql_types::BigInt>)]
    connection_count: i64,
    created_at: DateTime<Utc>,
}

/// The customer's connections that are not DELETED, counted in a subquery.
fn connection_count() -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    diesel::dsl::sql(
        "(SELECT count(*) FROM connections c \
         WHERE c.customer_id = customers.id AND c.status <> 'DELETED')",
    )
}

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;

    fn try_from(row: CustomerRow) -> Result<Self, StoreError> {
        Ok(Customer {
            id: CustomerId(row.id),
            account_id: AccountId(row.account_id),
            external_customer_id: row.external_customer_id,
            status: row
                .status
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("customer status {:?}", row.status)))?,
            connection_count: row.connection_count,
            created_at: row.created_at,
        })
    }
}

/// One customer of the tenant; `NotFound` for another tenant's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: CustomerId,
) -> Result<Customer, StoreError> {
    customers::table
        .filter(customers::account_id.eq(account_id.0))
        .filter(customers::id.eq(id.0))
        .select(CustomerRow::as_select())
        .first::<CustomerRow>(conn)
        .await?
        .try_into()
}

/// The tenant's customers, newest first, at most `limit`: only those with this external id
/// when one is given, and after `after` (created_at, id) when continuing.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    external_customer_id: Option<&str>,
    after: Option<(DateTime<Utc>, CustomerId)>,
    limit: i64,
) -> Result<Vec<Customer>, StoreError> {
    let mut select = customers::table
        .filter(customers::account_id.eq(account_id.0))
        .select(CustomerRow::as_select())
        .into_boxed();
    if let Some(external) = external_customer_id {
        select = select.filter(customers::external_customer_id.eq(external.to_string()));
    }
    if let Some((created_at, id)) = after {
        select = select.filter(
            customers::created_at
                .lt(created_at)
                .or(customers::created_at
                    .eq(created_at)
                    .and(customers::id.lt(id.0))),
        );
    }
    select
        .order((customers::created_at.desc(), customers::id.desc()))
        .limit(limit)
        .load::<CustomerRow>(conn)
        .await?
        .into_iter()
        .map(Customer::try_from)
        .collect()
}

/// Locks the customer for its deletion and answers its status: an import or connect flow
/// writing a connection to it (which share-locks it) finishes first, or waits and then finds
/// it deleted.
pub async fn lock_for_delete(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: CustomerId,
) -> Result<CustomerStatus, StoreError> {
    let status = customers::table
        .filter(customers::account_id.eq(account_id.0))
        .filter(customers::id.eq(id.0))
        .select(customers::status)
        .for_update()
        .first::<String>(conn)
        .await?;
    status
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("customer status {status:?}")))
}

/// Whether any connection of the customer is not DELETED yet.
pub async fn has_live_connections(
    conn: &mut AsyncPgConnection,
    id: CustomerId,
) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        connections::table
            .filter(connections::customer_id.eq(id.0))
            .filter(connections::status.ne(ConnectionStatus::Deleted.as_str())),
    ))
    .get_result(conn)
    .await?)
}

/// Marks the customer DELETED.
pub async fn mark_deleted(conn: &mut AsyncPgConnection, id: CustomerId) -> Result<(), StoreError> {
    diesel::update(customers::table.find(id.0))
        .set((
            customers::status.eq(CustomerStatus::Deleted.as_str()),
            customers::deleted_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Erases the customer's financial data (a right-to-erasure request): its transactions, and
/// the balances, identifiers and owners of its accounts. The account rows stay, named, so that
/// the events that name them still resolve; the events stay as they are.
pub async fn erase_data(conn: &mut AsyncPgConnection, id: CustomerId) -> Result<(), StoreError> {
    diesel::delete(transactions::table.filter(transactions::customer_id.eq(id.0)))
        .execute(conn)
        .await?;
    diesel::update(financial_accounts::table.filter(financial_accounts::customer_id.eq(id.0)))
        .set((
            financial_accounts::current_balance.eq(None::<bigdecimal::BigDecimal>),
            financial_accounts::available_balance.eq(None::<bigdecimal::BigDecimal>),
            financial_accounts::balances_updated_at.eq(None::<DateTime<Utc>>),
            financial_accounts::identifiers.eq(None::<Vec<u8>>),
            financial_accounts::owners.eq(None::<serde_json::Value>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

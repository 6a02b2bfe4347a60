//! Financial accounts and their balances.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::{customers, financial_accounts};
use crate::cipher::Cipher;
use crate::domain::financial_account::{
    AccountIdentifiers, AccountOwner, FinancialAccountStatus, ProviderAccount,
};
use crate::domain::ids::{AccountId, ConnectionId, CustomerId, FinancialAccountId};
use crate::domain::secret::Secret;

/// A financial account as stored.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = financial_accounts)]
pub struct FinancialAccountRow {
    /// Its id.
    pub id: Uuid,
    /// Its connection.
    pub connection_id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// The provider's id.
    pub provider_account_id: String,
    /// The institution's name for it.
    pub name: String,
    /// The last digits of its number.
    pub mask: Option<String>,
    /// Provider type.
    #[diesel(column_name = type_)]
    pub account_type: Option<String>,
    /// Provider subtype.
    pub subtype: Option<String>,
    /// ACTIVE or INACTIVE.
    pub status: String,
    /// Current balance.
    pub current_balance: Option<BigDecimal>,
    /// Available balance.
    pub available_balance: Option<BigDecimal>,
    /// ISO currency.
    pub currency: Option<String>,
    /// When balances were fetched.
    pub balances_updated_at: Option<DateTime<Utc>>,
    /// Whether the historical transaction load finished.
    pub historical_aggregation_succeeded: bool,
    /// Sealed account and routing numbers.
    pub identifiers: Option<Vec<u8>>,
    /// Owners as JSON.
    pub owners: Option<serde_json::Value>,
}

/// One account of [`upsert`]'s result.
#[derive(Clone, Debug, PartialEq)]
pub struct UpsertedAccount {
    /// Its id.
    pub id: FinancialAccountId,
    /// Whether this call created it.
    pub is_new: bool,
}

/// Writes the accounts a provider reported for a connection, in order: new ones are made,
/// known ones get the latest names and balances.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    connection_id: ConnectionId,
    customer_id: CustomerId,
    accounts: &[ProviderAccount],
    fetched_at: DateTime<Utc>,
) -> Result<Vec<UpsertedAccount>, StoreError> {
    let mut upserted = Vec::with_capacity(accounts.len());
    for account in accounts {
        let values = (
            financial_accounts::name.eq(&account.name),
            financial_accounts::official_name.eq(&account.official_name),
            financial_accounts::mask.eq(&account.mask),
            financial_accounts::type_.eq(&account.account_type),
            financial_accounts::subtype.eq(&account.subtype),
            financial_accounts::current_balance.eq(&account.current_balance),
            financial_accounts::available_balance.eq(&account.available_balance),
            financial_accounts::currency.eq(&account.currency),
            financial_accounts::balances_updated_at.eq(fetched_at),
        );
        // `xmax = 0` holds only for a row this statement inserted: it tells new from known.
        let (id, is_new) = diesel::insert_into(financial_accounts::table)
            .values((
                financial_accounts::id.eq(FinancialAccountId::generate().0),
                financial_accounts::account_id.eq(account_id.0),
                financial_accounts::connection_id.eq(connection_id.0),
                financial_accounts::customer_id.eq(customer_id.0),
                financial_accounts::provider_account_id.eq(&account.provider_account_id),
                values,
            ))
            .on_conflict((
                financial_accounts::connection_id,
                financial_accounts::provider_account_id,
            ))
            .do_update()
            .set(values)
            .returning((financial_accounts::id, sql::<Bool>("xmax = 0")))
            .get_result::<(Uuid, bool)>(conn)
            .await?;
        upserted.push(UpsertedAccount {
            id: FinancialAccountId(id),
            is_new,
        });
    }
    Ok(upserted)
}

/// Which accounts to list.
#[derive(Clone, Debug)]
pub enum AccountScope {
    /// One connection's.
    Connection(ConnectionId),
    /// One customer's.
    Customer(CustomerId),
    /// The customer's with this external id.
    ExternalCustomer(String),
}

/// The tenant's accounts in `scope`, ordered by id, after `after`, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    scope: &AccountScope,
    after: Option<FinancialAccountId>,
    limit: i64,
) -> Result<Vec<FinancialAccountRow>, StoreError> {
    let mut select = financial_accounts::table
        .filter(financial_accounts::account_id.eq(account_id.0))
        .select(FinancialAccountRow::as_select())
        .into_boxed();
    select = match scope {
        AccountScope::Connection(id) => select.filter(financial_accounts::connection_id.eq(id.0)),
        AccountScope::Customer(id) => select.filter(financial_accounts::customer_id.eq(id.0)),
        AccountScope::ExternalCustomer(external) => select.filter(
            financial_accounts::customer_id.eq_any(
                customers::table
                    .filter(customers::account_id.eq(account_id.0))
                    .filter(customers::external_customer_id.eq(external.clone()))
                    .select(customers::id),
            ),
        ),
    };
    if let Some(after) = after {
        select = select.filter(financial_accounts::id.gt(after.0));
    }
    Ok(select
        .order(financial_accounts::id)
        .limit(limit)
        .load(conn)
        .await?)
}

/// The sealed form of identifiers, bound to the financial account's id.
fn seal_identifiers(
    cipher: &Cipher,
    id: FinancialAccountId,
    identifiers: &AccountIdentifiers,
) -> Vec<u8> {
    let plain = serde_json::json!({
        "accountNumber": identifiers.account_number.expose(),
        "routingNumber": identifiers.routing_number,
        "wireRoutingNumber": identifiers.wire_routing_number,
    });
    cipher.seal(plain.to_string().as_bytes(), id.0.as_bytes())
}

/// Opens sealed identifiers: (account number, routing number, wire routing number).
pub fn open_identifiers(
    cipher: &Cipher,
    id: FinancialAccountId,
    sealed: &[u8],
) -> Result<(Secret, String, Option<String>), StoreError> {
    let plain = cipher.open(sealed, id.0.as_bytes()).map_err(|_| {
        StoreError::Unopenable(format!("the account numbers of financial account {id}"))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Corrupt(format!("identifiers of {id}: {e}")))?;
    let text = |key: &str| value[key].as_str().map(String::from);
    Ok((
        Secret::new(text("accountNumber").unwrap_or_default()),
        text("routingNumber").unwrap_or_default(),
        text("wireRoutingNumber"),
    ))
}

/// Stores an account's identifiers, sealed.
pub async fn set_identifiers(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: FinancialAccountId,
    identifiers: &AccountIdentifiers,
) -> Result<(), StoreError> {
    diesel::update(financial_accounts::table.find(id.0))
        .set(financial_accounts::identifiers.eq(seal_identifiers(cipher, id, identifiers)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores an account's owners.
pub async fn set_owners(
    conn: &mut AsyncPgConnection,
    id: FinancialAccountId,
    owners: &[AccountOwner],
) -> Result<(), StoreError> {
    let owners = serde_json::to_value(owners).expect("owners serialize");
    diesel::update(financial_accounts::table.find(id.0))
        .set(financial_accounts::owners.eq(owners))
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks every account of a connection as having its historical transactions.
pub async fn mark_historical(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
) -> Result<(), StoreError> {
    diesel::update(
        financial_accounts::table.filter(financial_accounts::connection_id.eq(connection_id.0)),
    )
    .set(financial_accounts::historical_aggregation_succeeded.eq(true))
    .execute(conn)
    .await?;
    Ok(())
}

/// A connection's accounts: provider account id to our id.
pub async fn ids_by_provider_id(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
) -> Result<std::collections::HashMap<String, FinancialAccountId>, StoreError> {
    let rows = financial_accounts::table
        .filter(financial_accounts::connection_id.eq(connection_id.0))
        .select((
            financial_accounts::provider_account_id,
            financial_accounts::id,
        ))
        .load::<(String, Uuid)>(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(provider, id)| (provider, FinancialAccountId(id)))
        .collect())
}

/// The provider ids of a connection's ACTIVE accounts.
pub async fn active_provider_ids(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let rows = financial_accounts::table
        .filter(financial_accounts::connection_id.eq(connection_id.0))
        .filter(financial_accounts::status.eq(<&str>::from(FinancialAccountStatus::Active)))
        .select(financial_accounts::provider_account_id)
        .load::<String>(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Marks every account of a connection INACTIVE (its data stays readable); answers their ids
/// in id order.
pub async fn deactivate_all(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
) -> Result<Vec<FinancialAccountId>, StoreError> {
    let mut ids = diesel::update(
        financial_accounts::table.filter(financial_accounts::connection_id.eq(connection_id.0)),
    )
    .set(financial_accounts::status.eq(<&str>::from(FinancialAccountStatus::Inactive)))
    .returning(financial_accounts::id)
    .get_results::<Uuid>(conn)
    .await?;
    // RETURNING follows no order; ids are time-ordered, so this is the order they were found in.
    ids.sort();
    Ok(ids.into_iter().map(FinancialAccountId).collect())
}

/// Marks one ACTIVE account of a connection INACTIVE; answers it if it changed, for
/// ACCOUNTS_REMOVED (an account already inactive is not removed twice).
pub async fn deactivate_one(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    provider_account_id: &str,
) -> Result<Vec<FinancialAccountId>, StoreError> {
    let ids = diesel::update(financial_accounts::table)
        .filter(financial_accounts::connection_id.eq(connection_id.0))
        .filter(financial_accounts::provider_account_id.eq(provider_account_id))
        .filter(financial_accounts::status.eq(<&str>::from(FinancialAccountStatus::Active)))
        .set(financial_accounts::status.eq(<&str>::from(FinancialAccountStatus::Inactive)))
        .returning(financial_accounts::id)
        .get_results::<Uuid>(conn)
        .await?;
    Ok(ids.into_iter().map(FinancialAccountId).collect())
}

/// The id of each stored account and whether it was new, in order.
pub fn newness(
    upserted: &[UpsertedAccount],
) -> impl Iterator<Item = (FinancialAccountId, bool)> + '_ {
    upserted.iter().map(|account| (account.id, account.is_new))
}

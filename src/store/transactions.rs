//! Transactions: written in batches, read newest first with stable pagination.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::{financial_accounts, transactions};
use crate::domain::ids::{AccountId, ConnectionId, CustomerId, FinancialAccountId};
use crate::domain::transactions::{ProviderTransaction, TransactionStatus};

/// Rows per INSERT statement: well under Postgres' 65,535 bind parameters (12 per row).
const BATCH_ROWS: usize = 2000;

/// A stored transaction's provider account and our id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransaction {
    /// The provider's id of its account.
    pub provider_account_id: String,
    /// Our id, the one clients know.
    pub id: Uuid,
}

/// The stored transactions among `provider_ids`, by provider id.
pub async fn stored_ids(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    provider_ids: &[String],
) -> Result<HashMap<String, StoredTransaction>, StoreError> {
    let mut stored = HashMap::new();
    for chunk in provider_ids.chunks(10_000) {
        let rows = transactions::table
            .inner_join(financial_accounts::table)
            .filter(transactions::connection_id.eq(connection_id.0))
            .filter(transactions::provider_transaction_id.eq_any(chunk))
            .select((
                transactions::provider_transaction_id,
                financial_accounts::provider_account_id,
                transactions::id,
            ))
            .load::<(String, String, Uuid)>(conn)
            .await?;
        stored.extend(rows.into_iter().map(|(provider_id, account, id)| {
            (
                provider_id,
                StoredTransaction {
                    provider_account_id: account,
                    id,
                },
            )
        }));
    }
    Ok(stored)
}

/// Whose transactions a write belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// The tenant.
    pub account_id: AccountId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The customer.
    pub customer_id: CustomerId,
}

/// Inserts or updates transactions in multi-row statements; `accounts` maps provider account
/// ids to ours. Returns how many were written (those of unknown accounts are skipped).
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    owner: Owner,
    accounts: &HashMap<String, FinancialAccountId>,
    rows: &[&ProviderTransaction],
) -> Result<usize, StoreError> {
    let values: Vec<_> = rows
        .iter()
        .filter_map(|tx| {
            let account = accounts.get(&tx.provider_account_id)?;
            Some((
                transactions::id.eq(Uuid::now_v7()),
                transactions::account_id.eq(owner.account_id.0),
                transactions::connection_id.eq(owner.connection_id.0),
                transactions::financial_account_id.eq(account.0),
                transactions::customer_id.eq(owner.customer_id.0),
                transactions::provider_transaction_id.eq(&tx.provider_transaction_id),
                transactions::amount.eq(&tx.amount),
                transactions::currency.eq(&tx.currency),
                transactions::description.eq(&tx.description),
                transactions::status.eq(<&str>::from(tx.status)),
                transactions::transaction_date.eq(tx.transaction_date),
                transactions::posted_date.eq(tx.posted_date),
            ))
        })
        .collect();
    for batch in values.chunks(BATCH_ROWS) {
        diesel::insert_into(transactions::table)
            .values(batch)
            .on_conflict((
                transactions::connection_id,
                transactions::provider_transaction_id,
            ))
            .do_update()
            .set((
                transactions::financial_account_id.eq(excluded(transactions::financial_account_id)),
                transactions::amount.eq(excluded(transactions::amount)),
                transactions::currency.eq(excluded(transactions::currency)),
                transactions::description.eq(excluded(transactions::description)),
                transactions::status.eq(excluded(transactions::status)),
                transactions::transaction_date.eq(excluded(transactions::transaction_date)),
                transactions::posted_date.eq(excluded(transactions::posted_date)),
                transactions::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(values.len())
}

/// Deletes transactions the provider removed.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    provider_ids: &[String],
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for chunk in provider_ids.chunks(10_000) {
        deleted += diesel::delete(
            transactions::table
                .filter(transactions::connection_id.eq(connection_id.0))
                .filter(transactions::provider_transaction_id.eq_any(chunk)),
        )
        .execute(conn)
        .await?;
    }
    Ok(deleted)
}

/// The stored transactions a pull of a date window compares with: those of `accounts` whose
/// posting day (the transaction day while pending) is `from` to `to`, as the provider filters,
/// and any with one of `also` as provider id (one that moved in from outside the window).
pub async fn in_window(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    accounts: &[String],
    (from, to): (NaiveDate, NaiveDate),
    also: &[String],
) -> Result<Vec<ProviderTransaction>, StoreError> {
    let rows = transactions::table
        .inner_join(financial_accounts::table)
        .filter(transactions::connection_id.eq(connection_id.0))
        .filter(
            financial_accounts::provider_account_id
                .eq_any(accounts)
                .and(
                    diesel::dsl::sql::<diesel::sql_types::Date>(
                        "coalesce(transactions.posted_date, transactions.transaction_date)",
                    )
                    .between(from, to),
                )
                .or(transactions::provider_transaction_id.eq_any(also)),
        )
        .select((
            financial_accounts::provider_account_id,
            TransactionRow::as_select(),
        ))
        .load::<(String, TransactionRow)>(conn)
        .await?;
    rows.into_iter()
        .map(|(account, row)| {
            let status = row.status.parse().map_err(|_| {
                StoreError::Corrupt(format!(
                    "transaction {} has status {:?}",
                    row.id, row.status
                ))
            })?;
            Ok(ProviderTransaction {
                provider_transaction_id: row.provider_transaction_id,
                provider_account_id: account,
                amount: row.amount,
                currency: row.currency,
                description: row.description,
                status,
                transaction_date: row.transaction_date,
                posted_date: row.posted_date,
            })
        })
        .collect()
}

/// A transaction as stored.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = transactions)]
pub struct TransactionRow {
    /// Its id.
    pub id: Uuid,
    /// Its account.
    pub financial_account_id: Uuid,
    /// The provider's id.
    pub provider_transaction_id: String,
    /// Exact amount.
    pub amount: bigdecimal::BigDecimal,
    /// ISO currency.
    pub currency: Option<String>,
    /// What it was.
    pub description: String,
    /// PENDING or POSTED.
    pub status: String,
    /// When it happened.
    pub transaction_date: NaiveDate,
    /// When it settled.
    pub posted_date: Option<NaiveDate>,
}

/// Whose transactions to list.
#[derive(Clone, Copy, Debug)]
pub enum TransactionScope {
    /// One financial account's.
    FinancialAccount(FinancialAccountId),
    /// One connection's.
    Connection(ConnectionId),
    /// One customer's.
    Customer(CustomerId),
}

/// Filters and position of [`list`].
#[derive(Clone, Debug, Default)]
pub struct TransactionQuery {
    /// On or after this date.
    pub start_date: Option<NaiveDate>,
    /// On or before this date.
    pub end_date: Option<NaiveDate>,
    /// Only this status.
    pub status: Option<TransactionStatus>,
    /// Continue after this (date, id), newest first.
    pub after: Option<(NaiveDate, Uuid)>,
}

/// The tenant's transactions in `scope`, newest first (date, then id), at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    scope: TransactionScope,
    query: &TransactionQuery,
    limit: i64,
) -> Result<Vec<TransactionRow>, StoreError> {
    let mut select = transactions::table
        .filter(transactions::account_id.eq(account_id.0))
        .select(TransactionRow::as_select())
        .into_boxed();
    select = match scope {
        TransactionScope::FinancialAccount(id) => {
            select.filter(transactions::financial_account_id.eq(id.0))
        }
        TransactionScope::Connection(id) => select.filter(transactions::connection_id.eq(id.0)),
        TransactionScope::Customer(id) => select.filter(transactions::customer_id.eq(id.0)),
    };
    if let Some(start) = query.start_date {
        select = select.filter(transactions::transaction_date.ge(start));
    }
    if let Some(end) = query.end_date {
        select = select.filter(transactions::transaction_date.le(end));
    }
    if let Some(status) = query.status {
        select = select.filter(transactions::status.eq(<&str>::from(status)));
    }
    if let Some((date, id)) = query.after {
        select = select.filter(
            transactions::transaction_date
                .lt(date)
                .or(transactions::transaction_date
                    .eq(date)
                    .and(transactions::id.lt(id))),
        );
    }
    Ok(select
        .order((
            transactions::transaction_date.desc(),
            transactions::id.desc(),
        ))
        .limit(limit)
        .load(conn)
        .await?)
}

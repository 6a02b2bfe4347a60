//! Duplicate connections in the store: who may be one, and the pointers that say who is one.
//!
//! Settling duplicates reads and changes several connections of one customer, so it is
//! serialized per customer: the customer row is locked (FOR NO KEY UPDATE, which the foreign
//! key checks of concurrent writes do not wait for) before any connection row is.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::{connections, customers, financial_accounts};
use crate::domain::connection::Connection;
use crate::domain::connection_status::{ConnectionStatus, StatusReason};
use crate::domain::duplicates::{AccountShape, Linked};
use crate::domain::financial_account::FinancialAccountStatus;
use crate::domain::ids::{ConnectionId, CustomerId};

/// Statuses of connections that are no longer (or not yet) linked: never duplicates.
const UNLINKED: [ConnectionStatus; 3] = [
    ConnectionStatus::Deleted,
    ConnectionStatus::Expired,
    ConnectionStatus::InProgress,
];

/// Takes the customer's duplicate lock until the transaction ends.
pub async fn lock_customer(
    conn: &mut AsyncPgConnection,
    customer_id: CustomerId,
) -> Result<(), StoreError> {
    customers::table
        .find(customer_id.0)
        .select(customers::id)
        .for_no_key_update()
        .first::<Uuid>(conn)
        .await?;
    Ok(())
}

/// The linked connections of the connection's customer, institution and provider (itself
/// included), each with its active accounts; their rows are locked in id order.
pub async fn linked(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
) -> Result<Vec<Linked>, StoreError> {
    let unlinked: Vec<&str> = UNLINKED.iter().map(|s| s.as_str()).collect();
    let rows: Vec<(Uuid, DateTime<Utc>, Option<Uuid>)> = connections::table
        .filter(connections::customer_id.eq(connection.customer_id.0))
        .filter(connections::institution_id.eq(connection.institution_id.0))
        .filter(connections::service_provider.eq(connection.service_provider.as_str()))
        .filter(connections::status.ne_all(unlinked))
        .select((
            connections::id,
            connections::created_at,
            connections::active_duplicate_connection_id,
        ))
        .order(connections::id)
        .for_update()
        .load(conn)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|(id, ..)| *id).collect();
    let accounts: Vec<(Uuid, Option<String>, String, Option<String>)> = financial_accounts::table
        .filter(financial_accounts::connection_id.eq_any(&ids))
        .filter(financial_accounts::status.eq(FinancialAccountStatus::Active.as_str()))
        .select((
            financial_accounts::connection_id,
            financial_accounts::mask,
            financial_accounts::name,
            financial_accounts::subtype,
        ))
        .load(conn)
        .await?;
    let mut shapes: BTreeMap<Uuid, BTreeSet<AccountShape>> = BTreeMap::new();
    for (connection_id, mask, name, subtype) in accounts {
        shapes
            .entry(connection_id)
            .or_default()
            .insert(AccountShape {
                mask,
                name,
                subtype,
            });
    }
    Ok(rows
        .into_iter()
        .map(|(id, created_at, active)| Linked {
            id: ConnectionId(id),
            created_at,
            accounts: shapes.remove(&id).unwrap_or_default(),
            active_duplicate: active.map(ConnectionId),
        })
        .collect())
}

/// Makes the connection an inactive duplicate of `active`: PARTIALLY_ACTIVE /
/// INACTIVE_DUPLICATE, pointing at it, no longer scheduled for refresh.
pub async fn demote(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    active: ConnectionId,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(ConnectionStatus::PartiallyActive.as_str()),
            connections::status_reason.eq(StatusReason::InactiveDuplicate.as_str()),
            connections::consecutive_failures.eq(0),
            connections::active_duplicate_connection_id.eq(active.0),
            connections::next_refresh_at.eq(None::<DateTime<Utc>>),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes an inactive duplicate the active connection again: ACTIVE, no pointer, and due for
/// a refresh now.
pub async fn promote(conn: &mut AsyncPgConnection, id: ConnectionId) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(ConnectionStatus::Active.as_str()),
            connections::status_reason.eq(None::<String>),
            connections::active_duplicate_connection_id.eq(None::<Uuid>),
            connections::next_refresh_at.eq(diesel::dsl::now),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The connection's inactive duplicates that are not deleted (Meld refuses to delete it
/// while there are any).
pub async fn inactive_duplicates(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
) -> Result<Vec<ConnectionId>, StoreError> {
    Ok(connections::table
        .filter(connections::active_duplicate_connection_id.eq(id.0))
        .filter(connections::status.ne(ConnectionStatus::Deleted.as_str()))
        .select(connections::id)
        .order(connections::id)
        .load::<Uuid>(conn)
        .await?
        .into_iter()
        .map(ConnectionId)
        .collect())
}

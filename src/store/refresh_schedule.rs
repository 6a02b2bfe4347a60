//! When connections are refreshed in the background, and when connect flows expire.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::connections;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId};

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

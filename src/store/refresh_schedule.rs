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
    let refreshable = [
        ConnectionStatus::Active,
        ConnectionStatus::PartiallyActive,
        ConnectionStatus::Degraded,
        ConnectionStatus::Undetermined,
    ];
    lock_due(conn, "next_refresh_at", &refreshable, limit).await
}

/// IN_PROGRESS connections whose connect flow ran out, locked for this transaction (other
/// replicas skip them), at most `limit`, oldest first.
pub async fn due_to_expire(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<(ConnectionId, AccountId)>, StoreError> {
    lock_due(
        conn,
        "flow_expires_at",
        &[ConnectionStatus::InProgress],
        limit,
    )
    .await
}

/// A due connection, as `lock_due` reads it.
#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
}

/// The first `limit` connections in `statuses` whose `due_at` column has passed, oldest first,
/// locked for this transaction; rows another replica holds are skipped, so replicas share the
/// work. `due_at` is one of this module's column names, never input.
async fn lock_due(
    conn: &mut AsyncPgConnection,
    due_at: &'static str,
    statuses: &[ConnectionStatus],
    limit: i64,
) -> Result<Vec<(ConnectionId, AccountId)>, StoreError> {
    use diesel::sql_types::{Array, BigInt, Text};
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let due: Vec<Due> = diesel::sql_query(format!(
        "SELECT id, account_id FROM connections WHERE {due_at} <= now() AND status = ANY($1) \
         ORDER BY {due_at} LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind::<Array<Text>, _>(statuses)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(due
        .into_iter()
        .map(|row| (ConnectionId(row.id), AccountId(row.account_id)))
        .collect())
}

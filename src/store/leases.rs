//! Work leases on connections: one job works on a connection at a time, across replicas.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;
use super::schema::connections;
use crate::domain::ids::ConnectionId;

/// The holder of a lease: one job of one worker. Two jobs of one worker (an aggregation and an
/// Akoya notice, say) are two holders, so they never work on one connection at once.
pub fn holder(worker: &str, job: uuid::Uuid) -> String {
    format!("{worker}/{job}")
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

/// Extends the connection leases held by these holders (the running jobs'): a lease taken in
/// a transaction whose answer was lost is not among them, and runs out.
pub async fn renew_leases_of(
    conn: &mut AsyncPgConnection,
    holders: &[String],
    lease: std::time::Duration,
) -> Result<(), StoreError> {
    if holders.is_empty() {
        return Ok(());
    }
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    diesel::update(connections::table)
        .filter(connections::lease_owner.eq_any(holders))
        .set(connections::lease_until.eq(until))
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives back every connection lease the jobs of `worker` hold.
pub async fn release_leases_of(
    conn: &mut AsyncPgConnection,
    worker: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(connections::table)
        .filter(
            sql::<Bool>("starts_with(lease_owner, ")
                .bind::<Text, _>(format!("{worker}/"))
                .sql(")"),
        )
        .set((
            connections::lease_owner.eq(None::<String>),
            connections::lease_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?)
}

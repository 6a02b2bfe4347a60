//! The inbox of provider webhooks: each delivery recorded once, then processed by a job.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::jobs::NewJob;
use super::prepared::prepared;
use super::schema::{webhook_deliveries, webhook_sources};

/// A delivery to record.
#[derive(Clone, Debug)]
pub struct NewDelivery<'a> {
    /// The id it gets if it is new.
    pub id: Uuid,
    /// PLAID or AKOYA.
    pub service_provider: &'a str,
    /// Hex SHA-256 of the body: the delivery's identity.
    pub body_sha256: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// When the provider signed it.
    pub signed_at: DateTime<Utc>,
    /// The provider's webhook type.
    pub webhook_type: &'a str,
    /// The provider's webhook code.
    pub webhook_code: &'a str,
    /// The provider's id of the connection it is about, if any.
    pub provider_connection_id: Option<&'a str>,
}

/// A recorded delivery.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    /// Its id.
    pub id: Uuid,
    /// PLAID or AKOYA.
    pub service_provider: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// When the provider signed it.
    pub signed_at: DateTime<Utc>,
    /// The provider's id of the connection it is about.
    pub provider_connection_id: Option<String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// When it was processed, if it was.
    pub processed_at: Option<DateTime<Utc>>,
}

/// Records a delivery and, when it is new, the job that will process it, in one statement;
/// answers the delivery's id and whether it is new.
///
/// A body already recorded is the provider retrying while it is still the latest one heard from
/// its item (Plaid retries for up to 24 hours; the window is 48). Once the item said something
/// else, the same body is a new report (the login broke again) and is processed again.
pub async fn record(
    conn: &mut AsyncPgConnection,
    delivery: NewDelivery<'_>,
    job: NewJob,
) -> Result<(Uuid, bool), StoreError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let source = delivery
        .provider_connection_id
        .unwrap_or(delivery.body_sha256);
    // The source row's lock serializes deliveries from one item, so of two copies arriving at
    // once exactly one is new.
    let recorded = prepared(
        diesel::sql_query(
            "WITH latest AS ( \
             INSERT INTO webhook_sources AS s \
                 (service_provider, source, body_sha256, delivery_id, received_at) \
             VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (service_provider, source) DO UPDATE \
                 SET body_sha256 = excluded.body_sha256, delivery_id = excluded.delivery_id, \
                     received_at = excluded.received_at \
                 WHERE s.body_sha256 <> excluded.body_sha256 \
                    OR s.received_at < now() - interval '48 hours' \
             RETURNING delivery_id), \
         delivery AS ( \
             INSERT INTO webhook_deliveries (id, service_provider, body_sha256, body, signed_at, \
                 webhook_type, webhook_code, provider_connection_id) \
             SELECT delivery_id, $1, $3, $5, $6, $7, $8, $9 FROM latest \
             RETURNING id), \
         job AS ( \
             INSERT INTO jobs (id, kind, account_id, connection_id, payload, dedupe_key) \
             SELECT $10, $11, $12, $13, $14, $15 FROM delivery) \
         SELECT id FROM delivery",
        )
        .bind::<Text, _>(delivery.service_provider)
        .bind::<Text, _>(source)
        .bind::<Text, _>(delivery.body_sha256)
        .bind::<SqlUuid, _>(delivery.id)
        .bind::<Bytea, _>(delivery.body)
        .bind::<Timestamptz, _>(delivery.signed_at)
        .bind::<Text, _>(delivery.webhook_type)
        .bind::<Text, _>(delivery.webhook_code)
        .bind::<Nullable<Text>, _>(delivery.provider_connection_id)
        .bind::<SqlUuid, _>(Uuid::now_v7())
        .bind::<Text, _>(job.kind)
        .bind::<Nullable<SqlUuid>, _>(job.account_id)
        .bind::<Nullable<SqlUuid>, _>(job.connection_id)
        .bind::<Jsonb, _>(job.payload)
        .bind::<Nullable<Text>, _>(job.dedupe_key),
    )
    .get_result::<Id>(conn)
    .await
    .optional()?;
    if let Some(new) = recorded {
        return Ok((new.id, true));
    }
    let latest = webhook_sources::table
        .find((delivery.service_provider, source))
        .select(webhook_sources::delivery_id)
        .first::<Uuid>(conn)
        .await?;
    Ok((latest, false))
}

/// One delivery.
pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Delivery, StoreError> {
    Ok(webhook_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .await?)
}

/// Deletes up to `limit` processed deliveries received before `cutoff`; answers how many.
/// Unprocessed ones stay, however old: their job has yet to act on them.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE id IN ( \
             SELECT id FROM webhook_deliveries \
             WHERE processed_at IS NOT NULL AND received_at < $1 \
             ORDER BY received_at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await?)
}

/// Deletes up to `limit` sources (the latest body heard from an item) last heard from before
/// `cutoff`; answers how many. Without them a retry of a body older than the retention would
/// count as new, which its processing tolerates (a stale status report changes nothing).
pub async fn prune_sources(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM webhook_sources WHERE (service_provider, source) IN ( \
             SELECT service_provider, source FROM webhook_sources \
             WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await?)
}

/// Records what processing did.
pub async fn mark_processed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    outcome: &str,
) -> Result<(), StoreError> {
    diesel::update(webhook_deliveries::table.find(id))
        .set((
            webhook_deliveries::processed_at.eq(diesel::dsl::now),
            webhook_deliveries::outcome.eq(outcome),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

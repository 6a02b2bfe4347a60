//! The inbox of provider webhooks: each delivery recorded once, then processed by a job.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::jobs::NewJob;
use super::prepared::prepared;
use super::schema::webhook_deliveries;

/// A verified delivery waiting to be recorded, with the job that will process it.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    /// The id it gets if it is new.
    pub id: Uuid,
    /// PLAID or AKOYA.
    pub service_provider: &'static str,
    /// Hex SHA-256 of the body: the delivery's identity.
    pub body_sha256: String,
    /// The raw body.
    pub body: bytes::Bytes,
    /// When the provider signed it.
    pub signed_at: DateTime<Utc>,
    /// The provider's webhook type.
    pub webhook_type: String,
    /// The provider's webhook code.
    pub webhook_code: String,
    /// The provider's id of the connection it is about, if any.
    pub provider_connection_id: Option<String>,
    /// The job that processes it, queued only if the delivery is new.
    pub job: NewJob,
}

impl NewDelivery {
    /// Where it comes from: deliveries of one source are deduplicated against its latest body.
    pub fn source(&self) -> (&'static str, &str) {
        let source = self
            .provider_connection_id
            .as_deref()
            .unwrap_or(&self.body_sha256);
        (self.service_provider, source)
    }
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

/// Records deliveries of distinct sources and, for each that is new, the job that will process
/// it, in one statement (one transaction, one WAL flush); answers each delivery's id and whether
/// it is new, in order.
///
/// A body already recorded is the provider retrying while it is still the latest one heard from
/// its source (Plaid retries for up to 24 hours; the window is 48). Once the source said something
/// else, the same body is a new report (the login broke again) and is processed again.
///
/// The caller passes each source at most once: one statement cannot upsert a row twice.
pub async fn record_batch(
    conn: &mut AsyncPgConnection,
    deliveries: &[NewDelivery],
) -> Result<Vec<(Uuid, bool)>, StoreError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    #[derive(QueryableByName)]
    struct Latest {
        #[diesel(sql_type = Text)]
        service_provider: String,
        #[diesel(sql_type = Text)]
        source: String,
        #[diesel(sql_type = SqlUuid)]
        delivery_id: Uuid,
    }
    let column = |f: fn(&NewDelivery) -> String| deliveries.iter().map(f).collect::<Vec<_>>();
    let providers = column(|d| d.service_provider.to_string());
    let sources = column(|d| d.source().1.to_string());
    // The source row's lock serializes deliveries from one source across replicas, so of two
    // copies arriving at once exactly one is new.
    let new: Vec<Id> = prepared(
        diesel::sql_query(
            "WITH input AS ( \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], \
                     $5::bytea[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], \
                     $10::uuid[], $11::text[], $12::uuid[], $13::uuid[], $14::jsonb[], \
                     $15::text[]) \
                 AS i(service_provider, source, body_sha256, delivery_id, body, signed_at, \
                     webhook_type, webhook_code, provider_connection_id, job_id, kind, \
                     account_id, connection_id, payload, dedupe_key)), \
             latest AS ( \
                 INSERT INTO webhook_sources AS s \
                     (service_provider, source, body_sha256, delivery_id, received_at) \
                 SELECT service_provider, source, body_sha256, delivery_id, now() FROM input \
                 ON CONFLICT (service_provider, source) DO UPDATE \
                     SET body_sha256 = excluded.body_sha256, delivery_id = excluded.delivery_id, \
                         received_at = excluded.received_at \
                     WHERE s.body_sha256 <> excluded.body_sha256 \
                        OR s.received_at < now() - interval '48 hours' \
                 RETURNING delivery_id), \
             delivery AS ( \
                 INSERT INTO webhook_deliveries (id, service_provider, body_sha256, body, \
                     signed_at, webhook_type, webhook_code, provider_connection_id) \
                 SELECT i.delivery_id, i.service_provider, i.body_sha256, i.body, i.signed_at, \
                     i.webhook_type, i.webhook_code, i.provider_connection_id \
                 FROM input i JOIN latest USING (delivery_id) \
                 RETURNING id), \
             job AS ( \
                 INSERT INTO jobs (id, kind, account_id, connection_id, payload, dedupe_key) \
                 SELECT i.job_id, i.kind, i.account_id, i.connection_id, i.payload, i.dedupe_key \
                 FROM input i JOIN delivery d ON d.id = i.delivery_id) \
             SELECT id FROM delivery",
        )
        .bind::<Array<Text>, _>(&providers)
        .bind::<Array<Text>, _>(&sources)
        .bind::<Array<Text>, _>(column(|d| d.body_sha256.clone()))
        .bind::<Array<SqlUuid>, _>(deliveries.iter().map(|d| d.id).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(
            deliveries
                .iter()
                .map(|d| d.body.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamptz>, _>(deliveries.iter().map(|d| d.signed_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(column(|d| d.webhook_type.clone()))
        .bind::<Array<Text>, _>(column(|d| d.webhook_code.clone()))
        .bind::<Array<Nullable<Text>>, _>(
            deliveries
                .iter()
                .map(|d| d.provider_connection_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<SqlUuid>, _>(
            deliveries
                .iter()
                .map(|_| Uuid::now_v7())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(column(|d| d.job.kind.clone()))
        .bind::<Array<Nullable<SqlUuid>>, _>(
            deliveries
                .iter()
                .map(|d| d.job.account_id)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<SqlUuid>>, _>(
            deliveries
                .iter()
                .map(|d| d.job.connection_id)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Jsonb>, _>(
            deliveries
                .iter()
                .map(|d| d.job.payload.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            deliveries
                .iter()
                .map(|d| d.job.dedupe_key.clone())
                .collect::<Vec<_>>(),
        ),
    )
    .load(conn)
    .await?;
    let new: std::collections::HashSet<Uuid> = new.into_iter().map(|row| row.id).collect();
    if new.len() == deliveries.len() {
        return Ok(deliveries.iter().map(|d| (d.id, true)).collect());
    }
    // The rest are retries of their source's latest delivery: answer its id.
    let latest: Vec<Latest> = prepared(
        diesel::sql_query(
            "SELECT s.service_provider, s.source, s.delivery_id FROM webhook_sources s \
             JOIN unnest($1::text[], $2::text[]) AS i(service_provider, source) \
             USING (service_provider, source)",
        )
        .bind::<Array<Text>, _>(&providers)
        .bind::<Array<Text>, _>(&sources),
    )
    .load(conn)
    .await?;
    let latest: std::collections::HashMap<(String, String), Uuid> = latest
        .into_iter()
        .map(|row| ((row.service_provider, row.source), row.delivery_id))
        .collect();
    deliveries
        .iter()
        .map(|d| {
            if new.contains(&d.id) {
                return Ok((d.id, true));
            }
            let (provider, source) = d.source();
            latest
                .get(&(provider.to_string(), source.to_string()))
                .map(|id| (*id, false))
                // Pruned between the two statements: it was recorded, as this very body.
                .ok_or(StoreError::NotFound)
        })
        .collect()
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

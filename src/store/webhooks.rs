//! The inbox of provider webhooks: each delivery recorded once, then processed by a job.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::webhook_deliveries;

/// How long a provider retries one delivery; the same body later is a new delivery.
const RETRY_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// A delivery to record.
#[derive(Clone, Debug)]
pub struct NewDelivery<'a> {
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
    /// The raw body.
    pub body: Vec<u8>,
    /// When the provider signed it.
    pub signed_at: DateTime<Utc>,
    /// The provider's id of the connection it is about.
    pub provider_connection_id: Option<String>,
    /// When it was processed, if it was.
    pub processed_at: Option<DateTime<Utc>>,
}

/// Records a delivery; answers its id and whether it is new. The same body within 48 hours is
/// the provider retrying (Plaid retries for up to 24 hours); after that it is a new delivery
/// that happens to say the same thing, and is processed again.
pub async fn record(
    conn: &mut AsyncPgConnection,
    delivery: NewDelivery<'_>,
) -> Result<(Uuid, bool), StoreError> {
    use diesel::upsert::excluded;
    let upsert = diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(Uuid::now_v7()),
            webhook_deliveries::service_provider.eq(delivery.service_provider),
            webhook_deliveries::body_sha256.eq(delivery.body_sha256),
            webhook_deliveries::body.eq(delivery.body),
            webhook_deliveries::signed_at.eq(delivery.signed_at),
            webhook_deliveries::webhook_type.eq(delivery.webhook_type),
            webhook_deliveries::webhook_code.eq(delivery.webhook_code),
            webhook_deliveries::provider_connection_id.eq(delivery.provider_connection_id),
        ))
        .on_conflict((
            webhook_deliveries::service_provider,
            webhook_deliveries::body_sha256,
        ))
        .do_update()
        .set((
            webhook_deliveries::id.eq(excluded(webhook_deliveries::id)),
            webhook_deliveries::signed_at.eq(excluded(webhook_deliveries::signed_at)),
            webhook_deliveries::received_at.eq(diesel::dsl::now),
            webhook_deliveries::processed_at.eq(None::<DateTime<Utc>>),
            webhook_deliveries::outcome.eq(None::<String>),
        ));
    // The conflict only renews a row recorded before the retry window: inside it, a duplicate.
    let renewed = diesel::query_dsl::methods::FilterDsl::filter(
        upsert,
        webhook_deliveries::received_at.lt(Utc::now() - RETRY_WINDOW),
    )
    .returning(webhook_deliveries::id)
    .get_result::<Uuid>(conn)
    .await
    .optional()?;
    if let Some(id) = renewed {
        return Ok((id, true));
    }
    let existing = webhook_deliveries::table
        .filter(webhook_deliveries::service_provider.eq(delivery.service_provider))
        .filter(webhook_deliveries::body_sha256.eq(delivery.body_sha256))
        .select(webhook_deliveries::id)
        .first::<Uuid>(conn)
        .await?;
    Ok((existing, false))
}

/// One delivery.
pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Delivery, StoreError> {
    Ok(webhook_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
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

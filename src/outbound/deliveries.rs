//! Reading a profile's deliveries, sending a test webhook, and sending events again.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::profiles::{self, ProfileError};
use super::sender;
use crate::context::Context;
use crate::domain::delivery::{Delivery, DeliveryStatus, Redelivery};
use crate::domain::event::EVENT_VERSION;
use crate::domain::ids::{AccountId, EventId, ProfileId, RequestId};
use crate::store;
use crate::store::outbound_deliveries::{self, DeliveryFilter};

/// Where a page of deliveries ends: the next page starts before it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct PageEnd {
    created_at: DateTime<Utc>,
    id: Uuid,
}

/// What ListDeliveries asks for.
#[derive(Clone, Debug)]
pub struct ListQuery {
    /// Only this event's deliveries.
    pub event_id: Option<EventId>,
    /// Only these statuses; empty: all.
    pub statuses: Vec<DeliveryStatus>,
    /// Page size.
    pub size: i64,
    /// Where the last page ended.
    pub after: Option<PageEnd>,
}

/// A page of deliveries, newest first.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
    /// Where this page ended, when there is more.
    pub next: Option<PageEnd>,
}

/// A page of a profile's deliveries.
pub async fn list(
    ctx: &Context,
    account_id: AccountId,
    profile_id: ProfileId,
    query: &ListQuery,
) -> Result<DeliveryPage, ProfileError> {
    profiles::get(ctx, account_id, profile_id).await?;
    let filter = DeliveryFilter {
        event_id: query.event_id,
        statuses: query.statuses.clone(),
    };
    let before = query.after.map(|end| (end.created_at, end.id));
    let mut conn = store::connect(ctx.pool()).await?;
    let mut deliveries =
        outbound_deliveries::list(&mut conn, profile_id, &filter, before, query.size + 1).await?;
    let more = deliveries.len() as i64 > query.size;
    deliveries.truncate(query.size as usize);
    let next = deliveries.last().filter(|_| more).map(|last| PageEnd {
        created_at: last.created_at,
        id: last.id.0,
    });
    Ok(DeliveryPage { deliveries, next })
}

/// Sends a WEBHOOK_TEST event to the profile now and answers its delivery with that first
/// attempt; if the attempt failed, it is retried like any delivery.
pub async fn send_test(
    ctx: &Context,
    account_id: AccountId,
    profile_id: ProfileId,
) -> Result<Delivery, ProfileError> {
    profiles::get(ctx, account_id, profile_id).await?;
    let event_id = EventId::generate();
    // Meld's example: the envelope, its payload only a request id.
    let body = serde_json::json!({
        "eventType": crate::domain::delivery::WEBHOOK_TEST,
        "eventId": event_id,
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "accountId": account_id,
        "profileId": profile_id,
        "version": EVENT_VERSION,
        "payload": {"requestId": RequestId::generate()},
    });
    // Held from the start by this call, so the background sender cannot take it first.
    let worker = format!("inline-{}", uuid::Uuid::new_v4().simple());
    let held = (worker.as_str(), sender::lease(ctx.delivery()));
    let mut conn = store::connect(ctx.pool()).await?;
    let id =
        outbound_deliveries::insert_test(&mut conn, account_id, profile_id, event_id, &body, held)
            .await?;
    drop(conn);
    sender::attempt_now(ctx, id, &worker).await?;
    let mut conn = store::connect(ctx.pool()).await?;
    Ok(outbound_deliveries::get(&mut conn, account_id, id).await?)
}

/// Queues events to a profile again; answers how many.
pub async fn redeliver(
    ctx: &Context,
    account_id: AccountId,
    profile_id: ProfileId,
    which: &Redelivery,
    only_failed: bool,
) -> Result<i64, ProfileError> {
    profiles::get(ctx, account_id, profile_id).await?;
    let mut conn = store::connect(ctx.pool()).await?;
    let queued =
        outbound_deliveries::redeliver(&mut conn, account_id, profile_id, which, only_failed)
            .await?;
    ctx.wake_senders();
    Ok(queued)
}

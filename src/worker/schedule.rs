//! The background refresh: every connection that may be refreshed is aggregated again once per
//! interval, spread over it, never more than a set number at a time.
//!
//! Each connection keeps its own phase (`next_refresh_at`, drawn at random within the first
//! interval when it is imported), so a thousand connections imported together are not all
//! refreshed in the same minute a day later.
//!
//! The same loop expires connect flows that were not completed in time.

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::lifecycle_events;
use crate::jobs::{self, Job};
use crate::store::jobs::OnDuplicate;
use crate::store::{self, StoreError, connections, events, flows, refresh_schedule};

/// How often the scheduler looks for due connections.
const TICK: Duration = Duration::from_secs(5);

/// Connect flows expired per tick at most, so that one transaction stays short (a long one
/// holds back every event reader); the rest wait for the next tick.
const EXPIRE_BATCH: i64 = 100;

/// Queues due refreshes until `shutdown`, keeping at most `max_concurrent` queued or running.
pub async fn run(ctx: Context, max_concurrent: u32, shutdown: CancellationToken) {
    loop {
        if let Err(error) = tick(&ctx, i64::from(max_concurrent)).await {
            tracing::warn!(%error, "background refresh could not queue work");
        }
        if let Err(error) = expire_flows(&ctx).await {
            tracing::warn!(%error, "could not expire connect flows");
        }
        if let Err(error) = prune_events(&ctx).await {
            tracing::warn!(%error, "could not prune old events");
        }
        if let Err(error) = prune_deliveries(&ctx).await {
            tracing::warn!(%error, "could not prune old webhook deliveries");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Events pruned per statement, so pruning a long backlog never holds a long transaction (which
/// would hold every reader of the log back).
const PRUNE_BATCH: i64 = 10_000;

/// Deletes events older than the retention, a batch at a time; answers how many went.
pub async fn prune_events(ctx: &Context) -> Result<usize, StoreError> {
    let cutoff = Utc::now() - ctx.event_retention();
    let mut conn = store::connect(ctx.pool()).await?;
    let mut total = 0;
    loop {
        match crate::store::events::prune(&mut conn, cutoff, PRUNE_BATCH).await? {
            0 => return Ok(total),
            deleted => total += deleted,
        }
    }
}

/// Deletes processed webhook deliveries older than the event retention (the events they caused
/// go then too), and the sources last heard from as long ago, a batch at a time; answers how
/// many deliveries went.
pub async fn prune_deliveries(ctx: &Context) -> Result<usize, StoreError> {
    let cutoff = Utc::now() - ctx.event_retention();
    let mut conn = store::connect(ctx.pool()).await?;
    let mut total = 0;
    loop {
        match crate::store::webhooks::prune(&mut conn, cutoff, PRUNE_BATCH).await? {
            0 => break,
            deleted => total += deleted,
        }
    }
    while crate::store::webhooks::prune_sources(&mut conn, cutoff, PRUNE_BATCH).await? > 0 {}
    Ok(total)
}

/// Queues as many due connections as the limit allows; answers how many.
pub async fn tick(ctx: &Context, max_concurrent: i64) -> Result<usize, StoreError> {
    let interval = ctx.refresh_interval();
    let mut conn = store::connect(ctx.pool()).await?;
    let queued = conn
        .transaction::<_, StoreError, _>(async |conn| {
            let busy = jobs::scheduled_count(conn).await?;
            let free = max_concurrent - busy;
            if free <= 0 {
                return Ok(0);
            }
            // Locked with SKIP LOCKED: replicas ticking together take different connections.
            let due = refresh_schedule::due_for_refresh(conn, free).await?;
            for (connection_id, account_id) in &due {
                let job = Job::scheduled(*account_id, *connection_id);
                jobs::enqueue(conn, &job, OnDuplicate::Skip).await?;
                refresh_schedule::set_next_refresh(conn, *connection_id, Utc::now() + interval)
                    .await?;
            }
            Ok(due.len())
        })
        .await?;
    if queued > 0 {
        ctx.wake_workers();
    }
    Ok(queued)
}

/// Marks IN_PROGRESS connections whose connect flow ran out (Meld: abandoned for 4 hours)
/// EXPIRED, each with its STATUS_CHANGE; answers how many.
pub async fn expire_flows(ctx: &Context) -> Result<usize, StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let expired = conn
        .transaction::<_, StoreError, _>(async |conn| {
            // Locked with SKIP LOCKED: replicas ticking together take different connections,
            // and a flow being completed right now is left to its completion.
            let due = refresh_schedule::due_to_expire(conn, EXPIRE_BATCH).await?;
            for (connection_id, account_id) in &due {
                flows::end_flow(conn, *connection_id, ConnectionStatus::Expired).await?;
                let connection = connections::get(conn, *account_id, *connection_id).await?;
                let new_events = lifecycle_events::flow_expired(&connection.facts());
                events::append(conn, *account_id, &new_events).await?;
            }
            Ok(due.len())
        })
        .await?;
    if expired > 0 {
        ctx.hub().wake();
    }
    Ok(expired)
}

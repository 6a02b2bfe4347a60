//! Acting on a recorded provider webhook, once: move the connection's status (unless the
//! webhook is older than what the status already reflects), mark revoked accounts, or queue a
//! sync. Every change is written with its events in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde_json::{Map, Value};

use super::JobError;
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::connection_state::{self, Signal};
use crate::domain::input;
use crate::domain::service_provider::ServiceProvider;
use crate::jobs::{self, Job, WebhookJob};
use crate::metrics;
use crate::providers::plaid::ESSENTIAL_WEBHOOK_FIELDS;
use crate::providers::plaid::PlaidWebhook;
use crate::providers::plaid::mapping::{self, WebhookAction};
use crate::store::jobs::OnDuplicate;
use crate::store::{self, StoreError, connections, events, financial_accounts, webhooks};

/// How long a webhook about an item linkstate does not know is looked at again before it
/// counts as about an unknown item: an import points the item's webhooks here before it
/// commits the connection, so the item's first webhooks can come first.
const IMPORT_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Processes the delivery; a delivery already processed is left alone.
pub async fn run(
    ctx: &Context,
    holder: &str,
    lease: std::time::Duration,
    job: &WebhookJob,
) -> Result<(), JobError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let delivery = webhooks::get(&mut conn, job.delivery_id).await?;
    if delivery.processed_at.is_some() {
        return Ok(());
    }
    if delivery.service_provider == ServiceProvider::Akoya.as_str() {
        drop(conn);
        let outcome = super::notice::run(ctx, holder, lease, &delivery).await?;
        let mut conn = store::connect(ctx.pool()).await?;
        webhooks::mark_processed(&mut conn, job.delivery_id, outcome).await?;
        ctx.hub().wake();
        return Ok(());
    }
    let webhook: PlaidWebhook = serde_json::from_slice(&delivery.body)
        .map_err(|e| JobError::Permanent(format!("recorded body does not parse: {e}")))?;
    let raw: Map<String, Value> = serde_json::from_slice(&delivery.body).unwrap_or_default();
    let raw = input::bounded_details(raw, delivery.body.len(), &ESSENTIAL_WEBHOOK_FIELDS);
    let targets = match &delivery.provider_connection_id {
        Some(item_id) => {
            connections::all_by_provider_id(&mut conn, ServiceProvider::Plaid, item_id).await?
        }
        None => Vec::new(),
    };
    drop(conn);
    // An item Plaid was just told to send here may speak before its import has committed. It
    // is looked at again after as long as it has waited (1 s, 2 s, 4 s ...), so that webhooks
    // of items that are not ours cost a few looks each, not one a second for the whole grace.
    let waited = Utc::now() - delivery.received_at;
    if targets.is_empty() && waited < IMPORT_GRACE {
        let wait = waited
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        return Err(JobError::NotYet(wait));
    }
    let outcome = if targets.is_empty() {
        metrics::count(&metrics::METRICS.unknown_webhooks, "PLAID");
        "unknown_connection"
    } else {
        let action = mapping::webhook_action(&webhook);
        let mut outcome = "applied";
        for connection in &targets {
            let applied = act(ctx, connection, &action, &raw, delivery.signed_at).await?;
            if !applied {
                outcome = "stale";
            }
        }
        if matches!(action, WebhookAction::Nothing) {
            outcome = "recorded";
        }
        // The events are committed: streams need not wait for the delivery's bookkeeping.
        ctx.hub().wake();
        outcome
    };
    let mut conn = store::connect(ctx.pool()).await?;
    webhooks::mark_processed(&mut conn, job.delivery_id, outcome).await?;
    Ok(())
}

/// Does what the webhook asks for one connection; false when it was stale.
async fn act(
    ctx: &Context,
    connection: &Connection,
    action: &WebhookAction,
    raw: &Map<String, Value>,
    signed_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let facts = connection.facts();
    // The seed's events carry the raw webhook plus our names for the provider and connection.
    let mut details = raw.clone();
    details.extend(facts.provider_details());
    let mut conn = store::connect(ctx.pool()).await?;
    match action {
        WebhookAction::Status(signal) => {
            conn.transaction::<_, StoreError, _>(async |conn| {
                let row = connections::lock_aggregation(conn, connection.id).await?;
                if connection_state::is_stale(row.status_as_of, signed_at) {
                    return Ok(false);
                }
                let (state, effects) = connection_state::apply(row.state, *signal);
                connections::set_state(conn, connection.id, state, signed_at).await?;
                let removed = if *signal == Signal::Revoked && !effects.is_empty() {
                    // Revoked at the provider: deleted here, as DeleteConnection would.
                    connections::mark_deleted(conn, connection.id).await?;
                    financial_accounts::deactivate_all(conn, connection.id).await?
                } else {
                    Vec::new()
                };
                let new_events =
                    connection_events::transition_events(&facts, &effects, &details, &removed);
                events::append(conn, connection.account_id, &new_events).await?;
                Ok(true)
            })
            .await
        }
        WebhookAction::AccountRevoked(account) => {
            conn.transaction::<_, StoreError, _>(async |conn| {
                let removed =
                    financial_accounts::deactivate_one(conn, connection.id, account).await?;
                if !removed.is_empty() {
                    let event = connection_events::accounts_removed(&facts, &removed, &details);
                    events::append(conn, connection.account_id, &[event]).await?;
                }
                Ok(true)
            })
            .await
        }
        WebhookAction::Sync => {
            // A burst of these while a sync is queued joins it; one arriving while a sync runs
            // makes it run once more, since that sync may have started before the new data.
            let job = Job::webhook_sync(connection.account_id, connection.id);
            jobs::enqueue(&mut conn, &job, OnDuplicate::Rerun).await?;
            ctx.wake_workers();
            Ok(true)
        }
        WebhookAction::Nothing => Ok(true),
    }
}

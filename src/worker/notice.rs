//! Acting on a recorded Akoya notification. Akoya signs nothing, so a notification is only a
//! hint, confirmed at Akoya itself (the configured hosts, never the notification's own
//! `url.href`) before anything changes:
//!
//! - a consent event refreshes the named consent's token and re-reads its accounts, under the
//!   connection's lease: a refused token or a 401/602 confirms CONSENT_REVOKED (the connection
//!   is DELETED, with CONNECTION_DELETED and ACCOUNTS_REMOVED); a changed account list queues
//!   an aggregation, which announces new accounts and removes dropped ones; anything else
//!   changes nothing, so a forged notice changes nothing;
//! - a maintenance event changes nothing by itself: the next pull that fails says DEGRADED,
//!   and the next that succeeds says ACTIVE again.

use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::{Map, Value};

use super::JobError;
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::connection_state::{self, Signal};
use crate::domain::input;
use crate::domain::service_provider::ServiceProvider;
use crate::jobs::{self, Job};
use crate::metrics;
use crate::providers::akoya::tokens::{self, TokenFailure};
use crate::providers::akoya::{AkoyaError, AkoyaErrorKind, Notification, retrying};
use crate::store::jobs::OnDuplicate;
use crate::store::webhooks::Delivery;
use crate::store::{
    self, StoreError, connections, credentials, events, financial_accounts, leases,
};

/// What Akoya says of a consent when asked.
enum Confirmed {
    /// The consent is gone.
    Revoked,
    /// The consent shares other accounts than linkstate holds.
    AccountsChanged,
    /// Nothing changed.
    Unchanged,
}

/// Confirms and acts on one notification; answers the outcome recorded with it.
pub async fn run(
    ctx: &Context,
    holder: &str,
    lease: std::time::Duration,
    delivery: &Delivery,
) -> Result<&'static str, JobError> {
    let Ok(notification) = serde_json::from_slice::<Notification>(&delivery.body) else {
        return Err(JobError::Permanent(
            "recorded notification does not parse".into(),
        ));
    };
    if !notification.category.eq_ignore_ascii_case("CONSENT") {
        return Ok("recorded");
    }
    let Some(consent) = notification.subject_id() else {
        return Ok("recorded");
    };
    let targets = {
        let mut conn = store::connect(ctx.pool()).await?;
        connections::all_by_provider_id(&mut conn, ServiceProvider::Akoya, consent).await?
    };
    if targets.is_empty() {
        metrics::count(&metrics::METRICS.unknown_webhooks, "AKOYA");
        return Ok("unknown_connection");
    }
    let raw: Map<String, Value> = serde_json::from_slice(&delivery.body).unwrap_or_default();
    let raw = input::bounded_details(raw, delivery.body.len(), &["category", "type"]);
    let mut outcome = "confirmed_unchanged";
    for connection in targets.iter().filter(|c| c.is_refreshable()) {
        match confirm(ctx, holder, lease, connection).await? {
            Confirmed::Revoked => {
                revoke(ctx, connection, &raw).await?;
                outcome = "confirmed_revoked";
            }
            Confirmed::AccountsChanged => {
                let mut conn = store::connect(ctx.pool()).await?;
                let job = Job::refresh(connection.account_id, connection.id, Vec::new());
                jobs::enqueue(&mut conn, &job, OnDuplicate::Rerun).await?;
                ctx.wake_workers();
                outcome = "confirmed_accounts_changed";
            }
            Confirmed::Unchanged => {}
        }
    }
    Ok(outcome)
}

/// Asks Akoya about the consent under the connection's lease: a fresh token, then its accounts.
async fn confirm(
    ctx: &Context,
    holder: &str,
    lease: std::time::Duration,
    connection: &Connection,
) -> Result<Confirmed, JobError> {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    {
        let mut conn = store::connect(ctx.pool()).await?;
        if !leases::try_lease(&mut conn, connection.id, holder, until).await? {
            return Err(JobError::Busy);
        }
    }
    let asked = ask(ctx, connection).await;
    let mut conn = store::connect(ctx.pool()).await?;
    leases::release_lease(&mut conn, connection.id, holder).await?;
    asked
}

async fn ask(ctx: &Context, connection: &Connection) -> Result<Confirmed, JobError> {
    let refused = |error: &AkoyaError| error.kind() == AkoyaErrorKind::ConsentRefused;
    let token =
        match tokens::refresh_now(ctx.akoya(), ctx.pool(), ctx.cipher(), connection.id).await {
            Ok(token) => token,
            Err(TokenFailure::Akoya(error)) if refused(&error) => return Ok(Confirmed::Revoked),
            Err(TokenFailure::Akoya(error)) => return Err(JobError::Transient(error.to_string())),
            Err(TokenFailure::Store(error)) => return Err(error.into()),
        };
    let (provider_id, held) = {
        let mut conn = store::connect(ctx.pool()).await?;
        let tokens = credentials::akoya_tokens(&mut conn, ctx.cipher(), connection.id).await?;
        let held = financial_accounts::active_provider_ids(&mut conn, connection.id).await?;
        (tokens.provider_id, held)
    };
    let akoya = ctx.akoya();
    match retrying(|| akoya.accounts_info(&token, &provider_id)).await {
        Ok(answer) => {
            let listed: std::collections::BTreeSet<String> = answer
                .accounts
                .into_iter()
                .map(|a| a.value.account_id)
                .collect();
            Ok(if listed == held {
                Confirmed::Unchanged
            } else {
                Confirmed::AccountsChanged
            })
        }
        Err(error) if refused(&error) => Ok(Confirmed::Revoked),
        Err(error) => Err(JobError::Transient(error.to_string())),
    }
}

/// Revoked at Akoya, confirmed: deleted here, as DeleteConnection would.
async fn revoke(
    ctx: &Context,
    connection: &Connection,
    raw: &Map<String, Value>,
) -> Result<(), StoreError> {
    let facts = connection.facts();
    let mut details = raw.clone();
    details.extend(facts.provider_details());
    let mut conn = store::connect(ctx.pool()).await?;
    conn.transaction::<_, StoreError, _>(async |conn| {
        let row = connections::lock_aggregation(conn, connection.id).await?;
        let (state, effects) = connection_state::apply(row.state, Signal::Revoked);
        if effects.is_empty() {
            return Ok(());
        }
        connections::set_state(conn, connection.id, state, Utc::now()).await?;
        connections::mark_deleted(conn, connection.id).await?;
        let removed = financial_accounts::deactivate_all(conn, connection.id).await?;
        let new_events = connection_events::transition_events(&facts, &effects, &details, &removed);
        events::append(conn, connection.account_id, &new_events).await?;
        Ok(())
    })
    .await?;
    ctx.hub().wake();
    Ok(())
}

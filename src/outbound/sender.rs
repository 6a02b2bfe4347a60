//! Sends deliveries: turns new events into deliveries, claims the due ones, POSTs each signed,
//! and records the attempt and what follows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use super::address::{AddressError, PublicOnly};
use crate::config::DeliverySettings;
use crate::context::Context;
use crate::domain::delivery::{self, Attempt, DeliveryStatus, Next, Outcome};
use crate::domain::ids::{AccountId, DeliveryId, EventId, ProfileId};
use crate::domain::input;
use crate::domain::public_address::is_public;
use crate::domain::webhook_profile::DisabledReason;
use crate::domain::webhook_signature::signature_headers;
use crate::store::outbound_deliveries::{self, AfterAttempt, Claimed};
use crate::store::{self, StoreError, events, webhook_profiles};

/// The most of an answer's body that is read; the rest is not waited for.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Events turned into deliveries per statement.
const DISPATCH_PAGE: i64 = 1000;
/// How often due retries are looked for when nothing wakes the sender.
const POLL: Duration = Duration::from_millis(250);
/// What a claim's lease adds to the attempt's timeout, so a live attempt never loses it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The client outbound webhooks are sent with: no redirects, the attempt timeout, and a
/// resolver that refuses non-public addresses unless they are allowed.
pub fn client(settings: &DeliverySettings) -> reqwest::Client {
    // reqwest has no rustls provider of its own (see `PlaidClient::new`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .user_agent(concat!("linkstate/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PublicOnly {
            allow_private: settings.allow_private,
        }))
        .build()
        .expect("the delivery client builds")
}

/// Runs the sender of one process until `shutdown`: new events are dispatched when the hub
/// sees them, due deliveries claimed while slots are free.
pub async fn run(ctx: Context, worker: String, shutdown: CancellationToken) {
    let settings = ctx.delivery().clone();
    let slots = Arc::new(Semaphore::new(settings.concurrency as usize));
    let mut batches = ctx.hub().subscribe();
    let mut in_flight = JoinSet::new();
    // Claims are made for a batch of free slots, not one at a time as attempts end.
    let batch = (settings.concurrency as usize / 4).max(1);
    let mut new_events = true;
    loop {
        if new_events && let Err(error) = dispatch_all(&ctx).await {
            tracing::warn!(%error, "could not dispatch events to webhook profiles");
        }
        if (new_events || slots.available_permits() >= batch)
            && let Err(error) = claim_and_send(&ctx, &worker, &slots, &mut in_flight).await
        {
            tracing::warn!(%error, "could not claim webhook deliveries");
        }
        new_events = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = batches.recv() => true,
            _ = ctx.senders_woken() => true,
            Some(_) = in_flight.join_next() => false,
            _ = tokio::time::sleep(POLL) => true,
        };
    }
    // Attempts under way finish (each is bounded by its timeout); what was claimed and not
    // started is given back.
    while in_flight.join_next().await.is_some() {}
    if let Ok(mut conn) = store::connect(ctx.pool()).await {
        let _ = outbound_deliveries::release(&mut conn, &worker).await;
    }
}

/// Dispatches until the dispatcher is caught up, or another replica holds it.
async fn dispatch_all(ctx: &Context) -> Result<(), StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    loop {
        match outbound_deliveries::dispatch(&mut conn, DISPATCH_PAGE).await? {
            Some((_, true)) => continue,
            _ => return Ok(()),
        }
    }
}

/// Claims as many due deliveries as there are free slots and starts their attempts.
async fn claim_and_send(
    ctx: &Context,
    worker: &str,
    slots: &Arc<Semaphore>,
    in_flight: &mut JoinSet<()>,
) -> Result<(), StoreError> {
    let free = slots.available_permits();
    if free == 0 {
        return Ok(());
    }
    let settings = ctx.delivery();
    let mut conn = store::connect(ctx.pool()).await?;
    let claimed = outbound_deliveries::claim(
        &mut conn,
        worker,
        settings.timeout + LEASE_MARGIN,
        free as i64,
        settings.profile_concurrency as i64,
    )
    .await?;
    for delivery in claimed {
        let permit = slots
            .clone()
            .try_acquire_owned()
            .expect("claimed within the free slots");
        let (ctx, worker) = (ctx.clone(), worker.to_string());
        in_flight.spawn(async move {
            let id = delivery.id;
            if let Err(error) = attempt(&ctx, &worker, delivery).await {
                tracing::warn!(%error, delivery = %id, "could not record a webhook attempt");
            }
            drop(permit);
        });
    }
    Ok(())
}

/// Attempts one delivery now, outside the sender's loop (a test webhook); nothing happens if
/// another replica holds it.
pub async fn attempt_now(ctx: &Context, id: DeliveryId) -> Result<(), StoreError> {
    let worker = format!("inline-{}", uuid::Uuid::new_v4().simple());
    let mut conn = store::connect(ctx.pool()).await?;
    let lease = ctx.delivery().timeout + LEASE_MARGIN;
    let Some(claimed) = outbound_deliveries::claim_one(&mut conn, id, &worker, lease).await? else {
        return Ok(());
    };
    drop(conn);
    attempt(ctx, &worker, claimed).await
}

/// The body a delivery sends: a test webhook's own, or its event in Meld's envelope. None when
/// the event is no longer retained.
async fn body(
    conn: &mut diesel_async::AsyncPgConnection,
    claimed: &Claimed,
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(body) = &claimed.body {
        return Ok(Some(serde_json::to_vec(body).expect("JSON serializes")));
    }
    match events::get(
        conn,
        AccountId(claimed.account_id),
        EventId(claimed.event_id),
    )
    .await
    {
        Ok(logged) => {
            let envelope = logged.event.envelope(Some(claimed.profile_id.to_string()));
            Ok(Some(
                serde_json::to_vec(&envelope).expect("envelopes serialize"),
            ))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

/// One attempt of a claimed delivery, recorded with what follows from it.
async fn attempt(ctx: &Context, worker: &str, claimed: Claimed) -> Result<(), StoreError> {
    let profile_id = ProfileId(claimed.profile_id);
    let started_at = Utc::now();
    let first_attempted_at = claimed.first_attempted_at.unwrap_or(started_at);
    let mut conn = store::connect(ctx.pool()).await?;
    let unsendable = match body(&mut conn, &claimed).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err("the event is no longer retained"),
        Err(StoreError::Corrupt(detail)) => {
            tracing::error!(%detail, delivery = %claimed.id, "an event that does not read");
            Err("the event could not be read")
        }
        Err(other) => return Err(other),
    };
    let body = match unsendable {
        Ok(body) => body,
        Err(reason) => {
            drop(conn);
            return give_up(ctx, worker, &claimed, reason, first_attempted_at).await;
        }
    };
    let signers =
        webhook_profiles::signers(&mut conn, ctx.cipher(), profile_id, started_at).await?;
    // Not held across the request: attempts in flight may outnumber the pool.
    drop(conn);
    let clock = Instant::now();
    let (outcome, response_body) = post(ctx, &claimed, &signers, &body, started_at).await;
    let attempt = Attempt {
        attempted_at: started_at,
        response_status: outcome.status(),
        duration_ms: clock.elapsed().as_millis() as u64,
        error: outcome.error(),
        response_body,
    };
    let next = delivery::next(
        &ctx.delivery().policy(),
        &outcome,
        claimed.round_attempts as u32 + 1,
        first_attempted_at,
        Utc::now(),
        rand::random::<f64>(),
    );
    let (status, next_attempt_at) = match next {
        Next::Succeeded => (DeliveryStatus::Succeeded, None),
        Next::RetryAt(at) => (DeliveryStatus::Retrying, Some(at)),
        Next::Failed | Next::EndpointGone => (DeliveryStatus::Failed, None),
    };
    crate::metrics::delivery_attempted(&outcome, attempt.duration_ms);
    let mut conn = store::connect(ctx.pool()).await?;
    let after = AfterAttempt {
        status,
        next_attempt_at,
        first_attempted_at,
    };
    outbound_deliveries::record_attempt(&mut conn, claimed.id, worker, &attempt, after).await?;
    if next == Next::EndpointGone {
        tracing::info!(profile = %profile_id, "the endpoint answered 410: profile disabled");
        webhook_profiles::disable(&mut conn, profile_id, DisabledReason::EndpointGone).await?;
        outbound_deliveries::stop_profile(&mut conn, profile_id).await?;
    }
    Ok(())
}

/// Fails a delivery that cannot be sent at all, recording why as its attempt.
async fn give_up(
    ctx: &Context,
    worker: &str,
    claimed: &Claimed,
    reason: &str,
    first_attempted_at: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    let attempt = Attempt {
        attempted_at: Utc::now(),
        response_status: None,
        duration_ms: 0,
        error: Some(reason.to_string()),
        response_body: String::new(),
    };
    let after = AfterAttempt {
        status: DeliveryStatus::Failed,
        next_attempt_at: None,
        first_attempted_at,
    };
    let mut conn = store::connect(ctx.pool()).await?;
    outbound_deliveries::record_attempt(&mut conn, claimed.id, worker, &attempt, after).await?;
    Ok(())
}

/// POSTs the body to the profile's URL, signed; answers how it went and the start of the
/// answer's body.
async fn post(
    ctx: &Context,
    claimed: &Claimed,
    signers: &crate::domain::webhook_signature::Signers,
    body: &[u8],
    at: chrono::DateTime<Utc>,
) -> (Outcome, String) {
    let allow_private = ctx.delivery().allow_private;
    let Ok(url) = Url::parse(&claimed.url) else {
        return (Outcome::CouldNotConnect, String::new());
    };
    // An address written in the URL never reaches the resolver: it is checked here.
    let literal_refused = match url.host() {
        Some(Host::Ipv4(ip)) => !is_public(ip.into()),
        Some(Host::Ipv6(ip)) => !is_public(ip.into()),
        _ => false,
    };
    if literal_refused && !allow_private {
        return (Outcome::RefusedAddress, String::new());
    }
    let event_id = claimed.event_id.to_string();
    let mut request = ctx
        .delivery_client()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in signature_headers(signers, &event_id, &claimed.url, body, at) {
        request = request.header(name, value);
    }
    if claimed.round_attempts > 0 {
        request = request.header("Meld-Retry-Count", claimed.round_attempts.to_string());
        if let Some(reason) = &claimed.last_error {
            request = request.header("Meld-Retry-Reason", reason);
        }
    }
    let response = match request.body(body.to_vec()).send().await {
        Ok(response) => response,
        Err(error) => return (failure(&error), String::new()),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| delivery::retry_after(v, Utc::now()));
    let excerpt = read_excerpt(response).await;
    (
        Outcome::Answered {
            status,
            retry_after,
        },
        excerpt,
    )
}

/// Why a request got no answer.
fn failure(error: &reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<AddressError>() == Some(&AddressError::NotPublic) {
            return Outcome::RefusedAddress;
        }
        source = cause.source();
    }
    if error.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::CouldNotConnect
    }
}

/// The start of an answer's body, reading at most [`MAX_RESPONSE_BYTES`] of it.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut read = Vec::new();
    while read.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            _ => break,
        }
    }
    read.truncate(MAX_RESPONSE_BYTES);
    let text = String::from_utf8_lossy(&read);
    input::clip(&text)
}

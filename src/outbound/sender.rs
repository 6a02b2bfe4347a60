//! Sends deliveries: turns new events into deliveries, claims the due ones, POSTs each signed,
//! and records the attempt and what follows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use super::address::{AddressError, PublicOnly};
use crate::config::DeliverySettings;
use crate::context::Context;
use crate::domain::delivery::{self, Attempt, DeliveryStatus, Next, Outcome};
use crate::domain::ids::{DeliveryId, ProfileId};
use crate::domain::input;
use crate::domain::public_address::is_public;
use crate::domain::webhook_profile::DisabledReason;
use crate::domain::webhook_signature::signature_headers;
use crate::store::outbound_deliveries::{self, AfterAttempt, Claimed, Content, Recorded};
use crate::store::{self, StoreError, webhook_profiles};

/// The most of an answer's body that is read; the rest is not waited for.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Attempts recorded per statement, at most.
const RECORD_BATCH: usize = 256;
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
        // A proxy from the environment would be the address the resolver checks, not the
        // profile's: deliveries go direct.
        .no_proxy()
        .timeout(settings.timeout)
        .user_agent(concat!("linkstate/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PublicOnly {
            allow_private: settings.allow_private,
        }))
        .build()
        .expect("the delivery client builds")
}

/// Runs the sender of one process until `shutdown`: new events are dispatched when the hub
/// sees them, due deliveries claimed while slots are free, and attempts recorded in batches.
pub async fn run(ctx: Context, worker: String, shutdown: CancellationToken) {
    let settings = ctx.delivery().clone();
    let slots = Arc::new(Semaphore::new(settings.concurrency as usize));
    let mut batches = ctx.hub().subscribe();
    let mut in_flight = JoinSet::new();
    // Bounded: an attempt waits (holding its slot) while the recorder is behind.
    let (finished, to_record) = mpsc::channel(settings.concurrency as usize * 2);
    let recorder = tokio::spawn(record_all(ctx.clone(), worker.clone(), to_record));
    // Claims are made for a batch of free slots, not one at a time as attempts end.
    let batch = (settings.concurrency as usize / 4).max(1);
    let mut new_events = true;
    loop {
        if new_events && let Err(error) = dispatch_all(&ctx).await {
            tracing::warn!(%error, "could not dispatch events to webhook profiles");
        }
        if (new_events || slots.available_permits() >= batch)
            && let Err(error) =
                claim_and_send(&ctx, &worker, &slots, &finished, &mut in_flight).await
        {
            tracing::warn!(%error, "could not claim webhook deliveries");
        }
        new_events = tokio::select! {
            _ = shutdown.cancelled() => break,
            // A batch without events moved only the horizon: nothing to dispatch, and a
            // dispatch is a write whose transaction would itself hold the horizon back.
            batch = batches.recv() => match batch {
                Ok(batch) => !batch.events.is_empty(),
                // Batches were missed: whatever they held is looked for.
                Err(_) => true,
            },
            _ = ctx.senders_woken() => true,
            Some(_) = in_flight.join_next() => false,
            _ = tokio::time::sleep(POLL) => true,
        };
    }
    // Attempts under way finish (each is bounded by its timeout) and are recorded; what was
    // claimed and not started is given back.
    while in_flight.join_next().await.is_some() {}
    drop(finished);
    let _ = recorder.await;
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
    finished: &mpsc::Sender<Finished>,
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
        lease(settings),
        free as i64,
        settings.profile_concurrency as i64,
    )
    .await?;
    for delivery in claimed {
        let permit = slots
            .clone()
            .try_acquire_owned()
            .expect("claimed within the free slots");
        let (ctx, finished) = (ctx.clone(), finished.clone());
        in_flight.spawn(async move {
            let done = attempt(&ctx, delivery).await;
            // The recorder is gone only at shutdown, after every attempt ended.
            let _ = finished.send(done).await;
            drop(permit);
        });
    }
    Ok(())
}

/// How long a claim holds a delivery: the attempt's timeout and a margin, so a live attempt
/// never loses it.
pub fn lease(settings: &DeliverySettings) -> Duration {
    settings.timeout + LEASE_MARGIN
}

/// Attempts one delivery `worker` made already held (a test webhook) now, outside the sender's
/// loop, and records it.
pub async fn attempt_now(ctx: &Context, id: DeliveryId, worker: &str) -> Result<(), StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let lease = lease(ctx.delivery());
    let Some(claimed) = outbound_deliveries::claim_one(&mut conn, id, worker, lease).await? else {
        return Ok(());
    };
    drop(conn);
    let done = attempt(ctx, claimed).await;
    record(ctx, worker, &[done]).await
}

/// An attempt that ended, to be recorded.
struct Finished {
    recorded: Recorded,
    profile_id: ProfileId,
    /// The endpoint answered 410: its profile is disabled once this is recorded.
    gone: bool,
}

/// Records finished attempts as they come: every one waiting goes in one statement (up to
/// [`RECORD_BATCH`]), so a busy sender writes far fewer statements than it makes attempts.
async fn record_all(ctx: Context, worker: String, mut to_record: mpsc::Receiver<Finished>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while to_record.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if let Err(error) = record(&ctx, &worker, &batch).await {
            // The deliveries stay claimed until their lease ends, then are sent again.
            tracing::warn!(%error, attempts = batch.len(), "could not record webhook attempts");
        }
        batch.clear();
    }
}

/// Records a batch of finished attempts, and disables the profiles whose endpoint is gone.
async fn record(ctx: &Context, worker: &str, batch: &[Finished]) -> Result<(), StoreError> {
    let recorded: Vec<&Recorded> = batch.iter().map(|done| &done.recorded).collect();
    let mut conn = store::connect(ctx.pool()).await?;
    outbound_deliveries::record_attempts(&mut conn, worker, &recorded).await?;
    for done in batch.iter().filter(|done| done.gone) {
        tracing::info!(profile = %done.profile_id, "the endpoint answered 410: profile disabled");
        webhook_profiles::disable(&mut conn, done.profile_id, DisabledReason::EndpointGone).await?;
        outbound_deliveries::stop_profile(&mut conn, done.profile_id).await?;
    }
    Ok(())
}

/// What a delivery sends, or why it cannot be sent at all.
fn body(claimed: &Claimed) -> Result<Vec<u8>, &'static str> {
    match &claimed.content {
        Content::Body(body) => Ok(serde_json::to_vec(body).expect("JSON serializes")),
        Content::Event(event) => {
            let envelope = event.envelope(Some(claimed.profile_id.to_string()));
            Ok(serde_json::to_vec(&envelope).expect("envelopes serialize"))
        }
        Content::Missing => Err("the event is no longer retained"),
        Content::Unreadable(detail) => {
            tracing::error!(%detail, delivery = %claimed.id, "an event that does not read");
            Err("the event could not be read")
        }
    }
}

/// One attempt of a claimed delivery, and what follows from it. It reads nothing from the
/// database: the claim brought the event and the profile's secrets.
async fn attempt(ctx: &Context, claimed: Claimed) -> Finished {
    let started_at = Utc::now();
    let first_attempted_at = claimed.first_attempted_at.unwrap_or(started_at);
    let sendable = body(&claimed).and_then(|body| {
        let signers = claimed
            .secrets
            .open(ctx.cipher(), claimed.profile_id, started_at)
            .map_err(|error| {
                tracing::error!(%error, profile = %claimed.profile_id, "a profile secret that does not open");
                "the profile's secret could not be opened"
            })?;
        Ok((body, signers))
    });
    let (body, signers) = match sendable {
        Ok(sendable) => sendable,
        Err(reason) => return unsendable(&claimed, reason, first_attempted_at),
    };
    let clock = Instant::now();
    let (outcome, response_body) = post(ctx, &claimed, &signers, &body, started_at).await;
    if outcome == Outcome::RefusedAddress {
        // Recorded as "Could not connect", the contract's word for it; the reason is here.
        tracing::warn!(profile = %claimed.profile_id, "delivery refused: the profile's address is not globally routable");
    }
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
    Finished {
        recorded: Recorded {
            id: claimed.id,
            attempt,
            after: AfterAttempt {
                status,
                next_attempt_at,
                first_attempted_at,
            },
        },
        profile_id: claimed.profile_id,
        gone: next == Next::EndpointGone,
    }
}

/// A delivery that cannot be sent at all fails, with why as its attempt.
fn unsendable(
    claimed: &Claimed,
    reason: &str,
    first_attempted_at: chrono::DateTime<Utc>,
) -> Finished {
    Finished {
        recorded: Recorded {
            id: claimed.id,
            attempt: Attempt {
                attempted_at: Utc::now(),
                response_status: None,
                duration_ms: 0,
                error: Some(reason.to_string()),
                response_body: String::new(),
            },
            after: AfterAttempt {
                status: DeliveryStatus::Failed,
                next_attempt_at: None,
                first_attempted_at,
            },
        },
        profile_id: claimed.profile_id,
        gone: false,
    }
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

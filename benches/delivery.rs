//! Outbound webhooks (issue 11), three measurements in one run, against receivers on
//! 127.0.0.1 that answer 200 at once (HTTP/1.1, kept alive):
//!
//! 1. Drain: 10,000 events already in the log, delivered to one profile, signed and with every
//!    attempt recorded; against a plain reqwest loop posting the same 10,000 bodies at the same
//!    concurrency to the same receiver.
//! 2. Latency: events written at 200 per second (by linkstate's own append path), timed from the
//!    commit until the request reaches the receiver.
//! 3. Isolation: the same at 200 per second, to 10 profiles of which one never answers; the
//!    latency of the other nine.
//!
//! Run: `cargo bench --bench delivery` (uses DATABASE_URL if set, else the embedded test
//! cluster).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use diesel_async::RunQueryDsl;
use tokio::sync::Semaphore;

use linkstate::domain::event::{EventPayload, EventType, NewEvent};
use linkstate::domain::ids::AccountId;
use linkstate::proto;
use linkstate::store::{self, events};
use linkstate_testing::{TestApp, authed};

/// Events in the drain run.
const DRAIN: usize = 10_000;
/// Requests in flight, for linkstate and for the baseline alike.
const CONCURRENCY: u32 = 32;
/// Events per second in the latency runs.
const RATE: u32 = 200;
/// Events in each latency run (10 s at `RATE`).
const PACED: usize = 2_000;

/// A receiver: when each event id first arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

impl Arrivals {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn get(&self, id: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(id).copied()
    }
}

/// Serves 200 at once on 127.0.0.1:0, recording arrivals (by `webhook-id`, else a counter).
async fn receiver(arrivals: Arrivals) -> String {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receive = move |headers: HeaderMap, _body: Bytes| {
        let (arrivals, counter) = (arrivals.clone(), counter.clone());
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    counter
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        .to_string()
                });
            arrivals
                .0
                .lock()
                .unwrap()
                .entry(id)
                .or_insert_with(Instant::now);
            "ok"
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(receive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// A receiver that takes requests and never answers.
async fn hanging() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

async fn profile(app: &TestApp, key: &str, url: &str) {
    app.profiles()
        .await
        .create_webhook_profile(authed(
            key,
            proto::CreateWebhookProfileRequest {
                name: "bench".into(),
                url: url.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// A process whose sender has `CONCURRENCY` slots, at most `per_profile` of them for one
/// profile.
async fn start(per_profile: u32) -> TestApp {
    TestApp::start_with(|config| {
        config.tenants.rate_limit = 0;
        config.delivery.concurrency = CONCURRENCY;
        config.delivery.profile_concurrency = per_profile;
        config.delivery.timeout = Duration::from_secs(10);
    })
    .await
}

async fn run() {
    let (linkstate, baseline) = drain().await;
    eprintln!("drain: linkstate {linkstate:?}, baseline {baseline:?}");
    let latency = paced(1).await;
    let isolated = paced(10).await;
    println!("\n## Outbound webhooks (`cargo bench --bench delivery`)\n");
    println!("| run | requests | wall time | per second |");
    println!("|---|---:|---:|---:|");
    for (name, wall) in [
        (
            "linkstate: drain 10,000 queued events to one profile (signed, every attempt recorded)",
            linkstate,
        ),
        (
            "baseline: plain reqwest loop, same bodies, same concurrency",
            baseline,
        ),
    ] {
        println!(
            "| {name} | {DRAIN} | {:.2} s | {:.0} |",
            wall.as_secs_f64(),
            DRAIN as f64 / wall.as_secs_f64()
        );
    }
    println!(
        "\nlinkstate / baseline: {:.2}x (goal ≥ 0.5x)\n",
        baseline.as_secs_f64() / linkstate.as_secs_f64()
    );
    println!(
        "| run ({RATE} events/s, {PACED} events) | p50 | p99 | max | not arrived after 30 s |"
    );
    println!("|---|---:|---:|---:|---:|");
    print_latency("commit → receiver, one profile", &latency);
    print_latency(
        "commit → receiver, 9 profiles beside one that never answers",
        &isolated,
    );
}

fn print_latency(name: &str, run: &Paced) {
    let mut sorted = run.samples.clone();
    sorted.sort();
    if sorted.is_empty() {
        println!("| {name} | - | - | - | {} |", run.missing);
        return;
    }
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    // A delivery that never arrived counts as slower than every one that did.
    let p99 = if run.missing * 100 > sorted.len() + run.missing {
        "> 30 s".to_string()
    } else {
        format!("{:.1} ms", at(0.99).as_secs_f64() * 1e3)
    };
    println!(
        "| {name} | {:.1} ms | {p99} | {:.1} ms | {} |",
        at(0.5).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3,
        run.missing
    );
}

/// One event of the bench's kind.
fn event() -> NewEvent {
    NewEvent {
        event_type: EventType::BankLinkingConnectionStatusChange,
        payload: EventPayload::default(),
    }
}

async fn drain() -> (Duration, Duration) {
    // One profile may use every slot, as the baseline does.
    let app = start(CONCURRENCY).await;
    let (account, key) = app.account("bench").await;
    let arrivals = Arrivals::default();
    let url = receiver(arrivals.clone()).await;
    profile(&app, &key, &url).await;
    // Queued: written while the sender is held up by a lock on the dispatcher's position.
    let mut holder = store::connect(&app.pool).await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query("SELECT * FROM outbound_dispatch FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut conn = store::connect(&app.pool).await.unwrap();
    let batch: Vec<NewEvent> = (0..1000).map(|_| event()).collect();
    for _ in 0..DRAIN / 1000 {
        events::append(&mut conn, account, &batch).await.unwrap();
    }
    let started = Instant::now();
    diesel::sql_query("COMMIT")
        .execute(&mut holder)
        .await
        .unwrap();
    while arrivals.len() < DRAIN {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let linkstate = started.elapsed();
    // Every attempt recorded, too.
    while app
        .count("outbound_deliveries WHERE status = 'SUCCEEDED'")
        .await
        < DRAIN as i64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = bodies(&app, account).await;
    app.stop().await;

    let arrivals = Arrivals::default();
    let url = receiver(arrivals.clone()).await;
    let client = reqwest::Client::new();
    let slots = Arc::new(Semaphore::new(CONCURRENCY as usize));
    let started = Instant::now();
    let mut sent = Vec::new();
    for body in bodies {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.clone());
        sent.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for task in sent {
        task.await.unwrap();
    }
    let baseline = started.elapsed();
    assert_eq!(arrivals.len(), DRAIN);
    (linkstate, baseline)
}

/// The envelopes of the account's events, for the baseline to post.
async fn bodies(app: &TestApp, account: AccountId) -> Vec<Vec<u8>> {
    let mut conn = store::connect(&app.pool).await.unwrap();
    let mut after = linkstate::domain::cursor::Cursor::START;
    let mut bodies = Vec::new();
    loop {
        let page = events::read_after(
            &mut conn,
            Some(account),
            after,
            &Default::default(),
            events::PageLimit {
                events: 1000,
                bytes: 1 << 24,
            },
        )
        .await
        .unwrap();
        if page.events.is_empty() {
            return bodies;
        }
        for logged in &page.events {
            bodies.push(serde_json::to_vec(&logged.event.envelope(Some("bench".into()))).unwrap());
        }
        after = page.scanned_to;
    }
}

/// Events at `RATE` per second, one per transaction through linkstate's append path, to
/// `profiles` profiles (the first of several never answers); the commit-to-arrival latency of
/// the answering ones.
async fn paced(profiles: usize) -> Paced {
    // The default share: a profile holds at most 8 of the slots, so one that never answers
    // leaves the rest to the others.
    let app = start(8).await;
    let (account, key) = app.account("bench").await;
    let mut receivers = Vec::new();
    if profiles > 1 {
        profile(&app, &key, &hanging().await).await;
    }
    for _ in 0..profiles.saturating_sub(1).max(1) {
        let arrivals = Arrivals::default();
        profile(&app, &key, &receiver(arrivals.clone()).await).await;
        receivers.push(arrivals);
    }
    let mut conn = store::connect(&app.pool).await.unwrap();
    let mut committed = Vec::with_capacity(PACED);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    for _ in 0..PACED {
        tick.tick().await;
        let ids = events::append(&mut conn, account, &[event()])
            .await
            .unwrap();
        app.app.ctx.hub().wake();
        committed.push((ids[0].to_string(), Instant::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while receivers.iter().any(|r| r.len() < PACED) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut paced = Paced::default();
    for receiver in &receivers {
        for (id, at) in &committed {
            match receiver.get(id) {
                Some(arrived) => paced.samples.push(arrived.saturating_duration_since(*at)),
                None => paced.missing += 1,
            }
        }
    }
    app.stop().await;
    paced
}

/// The latencies of a paced run, and how many deliveries had not arrived 30 s after the last
/// event was written.
#[derive(Default)]
struct Paced {
    samples: Vec<Duration>,
    missing: usize,
}

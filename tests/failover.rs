//! Database failover: a primary and a synchronous hot standby started here, a real
//! `linkstate serve` pointed at both through one multi-host `DATABASE_URL`. Under a bounded load
//! of imports, signed webhooks and event streams the primary is SIGKILLed and the standby
//! promoted. Every request acknowledged before, during or after is in the promoted database;
//! every stream resumes from its cursor with no gap and no repeat; linkstate reconnects by
//! itself. The test prints how long requests failed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{Replicas, Service, free_port};
use linkstate::proto;
use linkstate::store;
use linkstate_sim::Simulator;
use linkstate_testing::authed;
use linkstate_testing::ha::Pair;
use tokio::task::JoinSet;

/// How long the load runs; the primary dies a third of the way in.
const LOAD: Duration = Duration::from_secs(9);
/// How long the service is without a primary before the standby is promoted.
const OUTAGE: Duration = Duration::from_secs(1);

/// When requests failed, across all of them.
#[derive(Default)]
struct Failures {
    first: Option<Instant>,
    last: Option<Instant>,
    count: usize,
}

impl Failures {
    fn note(&mut self) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.count += 1;
    }
}

/// What the load saw acknowledged.
#[derive(Default)]
struct Acknowledged {
    connections: Vec<String>,
    webhooks: Vec<String>,
}

struct Load {
    service: Service,
    sim: Simulator,
    key: String,
    stop: AtomicBool,
    /// Set once nothing more will be written: streams then end after reading what is there.
    settled: AtomicBool,
    acknowledged: Mutex<Acknowledged>,
    failures: Mutex<Failures>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_loses_nothing_acknowledged_and_streams_neither_skip_nor_repeat() {
    let pair = tokio::task::spawn_blocking(Pair::start).await.unwrap();
    pair.primary.psql("postgres", "CREATE DATABASE linkstate");
    let url = pair.url("linkstate");
    store::migrations::run(&url).await.unwrap();
    let (sim, replicas) = Replicas::with_simulator(&url).await;
    let service = replicas.start(
        free_port(),
        free_port(),
        // A claim whose answer the failover lost runs out after one lease: keep it short.
        &[("LINKSTATE_RATE_LIMIT", "0"), ("LINKSTATE_JOB_LEASE", "5s")],
    );
    service.wait_ready().await;
    let key = {
        let pool = store::pool(&url, 1).unwrap();
        let mut conn = store::connect(&pool).await.unwrap();
        let (_, key) = store::accounts::create(&mut conn, "failover")
            .await
            .unwrap();
        key.expose().to_string()
    };
    let load = Arc::new(Load {
        service,
        sim,
        key,
        stop: AtomicBool::new(false),
        settled: AtomicBool::new(false),
        acknowledged: Mutex::default(),
        failures: Mutex::default(),
    });

    let mut tasks = JoinSet::new();
    for worker in 0..2 {
        tasks.spawn(import_loop(load.clone(), worker));
        tasks.spawn(webhook_loop(load.clone(), worker));
    }
    let streams: Vec<_> = (0..2)
        .map(|_| tokio::spawn(stream_loop(load.clone())))
        .collect();

    tokio::time::sleep(LOAD / 3).await;
    let killed = Instant::now();
    pair.primary.kill();
    tokio::time::sleep(OUTAGE).await;
    tokio::task::block_in_place(|| pair.standby.promote());
    let promoted = Instant::now();
    tokio::time::sleep(LOAD - LOAD / 3 - OUTAGE).await;
    load.stop.store(true, Ordering::Relaxed);
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }

    // The promoted server alone now: everything acknowledged is there.
    let promoted_pool = store::pool(&pair.standby.url("linkstate"), 2).unwrap();
    let acknowledged = std::mem::take(&mut *load.acknowledged.lock().unwrap());
    assert!(acknowledged.connections.len() >= 10, "the load imported");
    assert!(acknowledged.webhooks.len() >= 10, "the load sent webhooks");
    for id in &acknowledged.connections {
        let found =
            linkstate_testing::count(&promoted_pool, &format!("connections WHERE id = '{id}'"))
                .await;
        assert_eq!(found, 1, "acknowledged connection {id} is missing");
    }
    for sha in &acknowledged.webhooks {
        let found = linkstate_testing::count(
            &promoted_pool,
            &format!("webhook_deliveries WHERE body_sha256 = '{sha}'"),
        )
        .await;
        assert_eq!(found, 1, "acknowledged webhook {sha} is missing");
    }

    // Each stream saw exactly the log, in its order, once the aggregations the imports started
    // (some retried after the outage) have written their events.
    // (The webhooks name no imported item: their jobs write no event, and wait a while for an
    // import that never comes.)
    let pending = "jobs WHERE dead_at IS NULL AND kind = 'aggregate'";
    let waiting = Instant::now();
    while linkstate_testing::count(&promoted_pool, pending).await > 0 {
        // A claim lost to the failover is taken again one lease (5 s) later, no more.
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "aggregations stuck after failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.settled.store(true, Ordering::Relaxed);
    let mut seen_by_streams = Vec::new();
    for stream in streams {
        seen_by_streams.push(stream.await.unwrap());
    }
    let log = list_all(&load).await;
    for seen in seen_by_streams {
        assert_eq!(seen.len(), log.len(), "a stream skipped or repeated events");
        assert_eq!(seen, log, "a stream's events differ from the log");
    }

    let failures = load.failures.lock().unwrap();
    let failing = match (failures.first, failures.last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    println!(
        "failover: primary killed, standby promoted {:?} later; {} requests failed, over {:?} \
         (first failure {:?} after the kill); {} connections and {} webhooks acknowledged, {} \
         events streamed twice over",
        promoted - killed,
        failures.count,
        failing,
        failures
            .first
            .map(|first| first.saturating_duration_since(killed)),
        acknowledged.connections.len(),
        acknowledged.webhooks.len(),
        log.len(),
    );
    drop(failures);
    drop(pair);
}

/// Imports one fresh item after another; an item whose answer failed is sent again until one
/// comes back (the same item answers the same connection).
async fn import_loop(load: Arc<Load>, worker: usize) {
    let mut client = proto::connection_service_client::ConnectionServiceClient::new(
        load.service.channel().await,
    );
    let mut n = 0;
    while !load.stop.load(Ordering::Relaxed) {
        let item = load.sim.create_item("ins_109508");
        n += 1;
        let request = proto::ImportConnectionsRequest {
            connections: vec![common::plaid_item(
                &format!("customer-{worker}-{n}"),
                item.access_token.expose(),
            )],
            ..Default::default()
        };
        loop {
            let answer = client
                .import_connections(authed(&load.key, request.clone()))
                .await;
            let connection =
                answer.ok().and_then(
                    |answer| match answer.into_inner().results.remove(0).result {
                        Some(proto::import_result::Result::Connection(c)) => Some(c.id),
                        _ => None,
                    },
                );
            match connection {
                Some(id) => {
                    load.acknowledged.lock().unwrap().connections.push(id);
                    break;
                }
                None => {
                    load.failures.lock().unwrap().note();
                    if load.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Posts signed webhooks, each a different body, as Plaid would; retries until a 200.
async fn webhook_loop(load: Arc<Load>, worker: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/webhooks/plaid", load.service.http);
    let mut n = 0;
    while !load.stop.load(Ordering::Relaxed) {
        n += 1;
        let body = serde_json::to_vec(&serde_json::json!({
            "webhook_type": "ITEM",
            "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
            "item_id": format!("unknown-item-{worker}-{n}"),
            "environment": "sandbox",
        }))
        .unwrap();
        loop {
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header("Plaid-Verification", load.sim.sign_webhook(&body))
                .body(body.clone())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if sent.is_ok_and(|response| response.status().is_success()) {
                use sha2::Digest;
                let sha = hex::encode(sha2::Sha256::digest(&body));
                load.acknowledged.lock().unwrap().webhooks.push(sha);
                break;
            }
            load.failures.lock().unwrap().note();
            if load.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Follows the log from the earliest event, resuming after its last cursor whenever the stream
/// breaks, until the load stops and the stream has read the whole log; answers the event ids
/// in the order read.
async fn stream_loop(load: Arc<Load>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut settled = None::<Instant>;
    loop {
        let request = proto::StreamEventsRequest {
            from_earliest: cursor.is_empty(),
            after_cursor: cursor.clone(),
            heartbeat_seconds: 1,
            ..Default::default()
        };
        let opened = match tonic::transport::Channel::from_shared(format!(
            "http://127.0.0.1:{}",
            load.service.grpc
        ))
        .unwrap()
        .connect()
        .await
        {
            Ok(channel) => proto::event_service_client::EventServiceClient::new(channel)
                .stream_events(authed(&load.key, request))
                .await
                .ok(),
            Err(_) => None,
        };
        if let Some(stream) = opened {
            let mut stream = stream.into_inner();
            while let Ok(Some(message)) = stream.message().await {
                match message.message {
                    Some(proto::stream_events_response::Message::Event(event)) => {
                        cursor = event.cursor.clone();
                        seen.push(event.event_id);
                        settled = None;
                    }
                    // Two quiet seconds once nothing more is written: caught up.
                    Some(proto::stream_events_response::Message::Heartbeat(_))
                        if load.settled.load(Ordering::Relaxed) =>
                    {
                        let since = *settled.get_or_insert_with(Instant::now);
                        if since.elapsed() >= Duration::from_secs(2) {
                            return seen;
                        }
                    }
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole log, as ListEvents pages it.
async fn list_all(load: &Load) -> Vec<String> {
    let mut client =
        proto::event_service_client::EventServiceClient::new(load.service.channel().await);
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_events(authed(
                &load.key,
                proto::ListEventsRequest {
                    after_cursor: cursor.clone(),
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            return ids;
        }
        ids.extend(page.events.into_iter().map(|event| event.event_id));
        cursor = page.next_cursor;
    }
}

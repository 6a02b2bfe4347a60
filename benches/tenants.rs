//! Noisy tenants: a quiet tenant's latency alone, and while another tenant floods or migrates.
//!
//! A `linkstate serve` child process with the contract's default limits (100 requests per
//! second per API key, burst 200) and the simulator at 50 ms per Plaid call. The quiet tenant
//! calls GetConnection at a steady 50 per second; its p50 and p99 alone are the baseline, taken
//! in the same run before each crowded phase. Meanwhile the noisy tenant either
//! (a) floods: offers 2,000 GetConnection calls per second, twenty times its rate, without
//! honouring RetryInfo; or
//! (b) migrates: 8 ImportConnections requests of 25 Plaid items (each its own customer) in
//! flight at once, retrying each refused one after the wait the server names; once with the
//! default 4 imports per account, once with 1.
//! The aggregation jobs a migration enqueues are drained before the next phase. The goal: the
//! quiet p99 within 2x of its baseline while the other tenant floods.
//!
//! Run: `cargo bench --bench tenants` (uses DATABASE_URL if set, else the embedded cluster).

#[path = "../tests/common/process.rs"]
#[allow(dead_code)]
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use linkstate::proto;
use linkstate_testing::authed;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const QUIET_RATE: u32 = 50;
const PHASE: Duration = Duration::from_secs(10);
const FLOOD_RATE: u32 = 2_000;
const MIGRATION_REQUESTS: usize = 8;
const MIGRATION_BATCH: usize = 25;
const MIGRATION_ITEMS: usize = 3_000;
/// Plaid's latency per call: the bulk import bench's, far below the real one.
const PROVIDER_LATENCY: Duration = Duration::from_millis(50);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let setup = process::Setup::new().await;
    let (_, quiet_key) = setup.api_key().await;
    let (_, noisy_key) = setup.api_key().await;
    let mut rows = Vec::new();
    for imports in ["4", "1"] {
        let service = setup
            .start(&[("LINKSTATE_MAX_IMPORTS_PER_ACCOUNT", imports)])
            .await;
        let channel = service.channel().await;
        setup.sim.set_latency(Duration::ZERO);
        let quiet = import_one(&channel, &quiet_key, &setup).await;
        let noisy = import_one(&channel, &noisy_key, &setup).await;
        setup.sim.set_latency(PROVIDER_LATENCY);
        let tenants = Tenants {
            channel,
            quiet_key: quiet_key.clone(),
            quiet,
            noisy_key: noisy_key.clone(),
            noisy,
        };
        let settings = format!("{imports} import(s) per account");
        let alone = tenants.measure(&setup, Noise::None).await;
        rows.push((
            format!("quiet tenant alone, {settings} (baseline)"),
            alone,
            None,
        ));
        if imports == "4" {
            let flood = tenants.measure(&setup, Noise::Flood).await;
            rows.push((
                format!("noisy floods {FLOOD_RATE}/s"),
                flood,
                Some(alone.p99),
            ));
        }
        let migration = tenants.measure(&setup, Noise::Migration).await;
        rows.push((
            format!("noisy migrates, {settings}"),
            migration,
            Some(alone.p99),
        ));
    }
    println!(
        "\n## Noisy tenants (quiet tenant: GetConnection at {QUIET_RATE}/s for {PHASE:?}; \
         Plaid at {PROVIDER_LATENCY:?} per call)\n"
    );
    println!(
        "| phase | quiet p50 | quiet p99 | p99 / baseline | quiet failed | noisy served/s | noisy refused/s | items imported/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (phase, figures, baseline) in rows {
        let ratio = baseline.map_or("-".to_string(), |b| {
            format!("{:.2}x", figures.p99.as_secs_f64() / b.as_secs_f64())
        });
        println!(
            "| {phase} | {:.2} ms | {:.2} ms | {ratio} | {} | {:.0} | {:.0} | {:.0} |",
            ms(figures.p50),
            ms(figures.p99),
            figures.failed,
            figures.served_per_second,
            figures.refused_per_second,
            figures.imported_per_second,
        );
    }
    println!("\ngoal: quiet p99 within 2.0x of its baseline while the other tenant floods");
}

/// What the noisy tenant does while the quiet one is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Noise {
    None,
    Flood,
    Migration,
}

/// Two tenants of one server, each with one connection.
struct Tenants {
    channel: Channel,
    quiet_key: String,
    quiet: String,
    noisy_key: String,
    noisy: String,
}

/// One phase's figures.
#[derive(Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    failed: usize,
    served_per_second: f64,
    refused_per_second: f64,
    imported_per_second: f64,
}

impl Tenants {
    /// The quiet tenant's latencies while the noisy one makes `noise`.
    async fn measure(&self, setup: &process::Setup, noise: Noise) -> Figures {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut noisy = tokio::task::JoinSet::new();
        match noise {
            Noise::None => {}
            Noise::Flood => {
                noisy.spawn(flood(
                    self.channel.clone(),
                    self.noisy_key.clone(),
                    self.noisy.clone(),
                    stop.clone(),
                    counts.clone(),
                ));
            }
            Noise::Migration => {
                let tokens = (0..MIGRATION_ITEMS)
                    .map(|_| {
                        let item = setup.sim.create_item("ins_109508");
                        item.access_token.expose().to_string()
                    })
                    .collect();
                noisy.spawn(migrate(
                    self.channel.clone(),
                    self.noisy_key.clone(),
                    tokens,
                    stop.clone(),
                    counts.clone(),
                ));
            }
        }
        if noise != Noise::None {
            // Let the noise reach its pace before measuring.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let started = Instant::now();
        let latencies = quiet_phase(&self.channel, &self.quiet_key, &self.quiet).await;
        let seconds = started.elapsed().as_secs_f64();
        let per_second = |count: &AtomicU64| count.load(Ordering::Relaxed) as f64 / seconds;
        let figures = Figures {
            p50: latencies.p50,
            p99: latencies.p99,
            failed: latencies.failed,
            served_per_second: per_second(&counts.served),
            refused_per_second: per_second(&counts.refused),
            imported_per_second: per_second(&counts.imported),
        };
        stop.store(true, Ordering::Relaxed);
        while noisy.join_next().await.is_some() {}
        drain_jobs(setup).await;
        figures
    }
}

/// Waits until the aggregations the last phase enqueued are done, so none pays for another.
async fn drain_jobs(setup: &process::Setup) {
    while linkstate_testing::count(&setup.pool, "jobs WHERE dead_at IS NULL").await > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// What the noisy tenant got.
#[derive(Default)]
struct Counts {
    served: AtomicU64,
    refused: AtomicU64,
    imported: AtomicU64,
}

/// The quiet tenant's latencies over one phase.
struct Latencies {
    p50: Duration,
    p99: Duration,
    failed: usize,
}

/// GetConnection at `QUIET_RATE` for `PHASE`, one at a time on a fixed schedule.
async fn quiet_phase(channel: &Channel, key: &str, connection_id: &str) -> Latencies {
    let mut client =
        proto::connection_service_client::ConnectionServiceClient::new(channel.clone());
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / QUIET_RATE);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let calls = (PHASE.as_secs() as u32 * QUIET_RATE) as usize;
    let mut latencies = Vec::with_capacity(calls);
    let mut failed = 0;
    for _ in 0..calls {
        ticks.tick().await;
        let started = Instant::now();
        let request = proto::GetConnectionRequest {
            connection_id: connection_id.to_string(),
        };
        if client.get_connection(authed(key, request)).await.is_err() {
            failed += 1;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Latencies {
        p50: at(0.50),
        p99: at(0.99),
        failed,
    }
}

/// GetConnection offered at `FLOOD_RATE`, whatever the answers say.
async fn flood(
    channel: Channel,
    key: String,
    connection_id: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / FLOOD_RATE);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut calls = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let mut client =
            proto::connection_service_client::ConnectionServiceClient::new(channel.clone());
        let request = authed(
            &key,
            proto::GetConnectionRequest {
                connection_id: connection_id.clone(),
            },
        );
        let counts = counts.clone();
        calls.spawn(async move {
            match client.get_connection(request).await {
                Ok(_) => counts.served.fetch_add(1, Ordering::Relaxed),
                Err(_) => counts.refused.fetch_add(1, Ordering::Relaxed),
            };
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

/// A migration at twice the account's import share; refused requests wait as told.
async fn migrate(
    channel: Channel,
    key: String,
    tokens: Vec<String>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    // Each item is its own customer, as in a migration of a whole customer base.
    let items: Vec<(String, String)> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| (format!("migrated-{i}"), token))
        .collect();
    let batches: Vec<Vec<(String, String)>> =
        items.chunks(MIGRATION_BATCH).map(<[_]>::to_vec).collect();
    let next = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let workers = (0..MIGRATION_REQUESTS).map(|_| {
        let (channel, key, next) = (channel.clone(), key.clone(), next.clone());
        let (stop, counts) = (stop.clone(), counts.clone());
        tokio::spawn(async move {
            let mut client =
                proto::connection_service_client::ConnectionServiceClient::new(channel);
            let mut batch = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(tokens) = batch.take().or_else(|| next.lock().unwrap().next()) else {
                    return;
                };
                let request = proto::ImportConnectionsRequest {
                    connections: tokens
                        .iter()
                        .map(|(customer, token)| plaid_item(customer, token))
                        .collect(),
                    ..Default::default()
                };
                match client.import_connections(authed(&key, request)).await {
                    Ok(answer) => {
                        let done = linkstate_testing::imported(&answer.into_inner());
                        counts.imported.fetch_add(done as u64, Ordering::Relaxed);
                    }
                    Err(status) => {
                        let wait = status
                            .get_details_retry_info()
                            .and_then(|info| info.retry_delay)
                            .unwrap_or(Duration::from_secs(1));
                        tokio::time::sleep(wait).await;
                        batch = Some(tokens);
                    }
                }
            }
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await.expect("migration worker");
    }
}

/// Imports one simulator item for `key`'s tenant; answers the connection id.
async fn import_one(channel: &Channel, key: &str, setup: &process::Setup) -> String {
    let item = setup.sim.create_item("ins_109508");
    let mut client =
        proto::connection_service_client::ConnectionServiceClient::new(channel.clone());
    let answer = client
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![plaid_item("bench", item.access_token.expose())],
                ..Default::default()
            },
        ))
        .await
        .expect("import");
    match answer.into_inner().results.remove(0).result {
        Some(proto::import_result::Result::Connection(connection)) => connection.id,
        other => panic!("import failed: {other:?}"),
    }
}

/// One Plaid item to import.
fn plaid_item(customer: &str, access_token: &str) -> proto::ImportConnection {
    proto::ImportConnection {
        service_provider: proto::service_provider::Value::Plaid as i32,
        external_customer_id: customer.to_string(),
        access_token: access_token.to_string(),
        ..Default::default()
    }
}

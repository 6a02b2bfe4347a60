//! A soak: a `linkstate serve` child process under a steady mix of imports, Plaid webhooks,
//! refreshes, customer deletions and event streams for a bounded time (10 minutes unless
//! `SOAK_MINUTES` says otherwise; `scripts/soak`).
//!
//! The population is steady: 100 connections imported first, then every second two more are
//! imported and the two oldest customers deleted with their data, ten items get new
//! transactions (the simulator sends the signed `SYNC_UPDATES_AVAILABLE` webhook), and two
//! connections are refreshed. Events are kept two minutes, so the log is pruned as it grows.
//! Four streams follow the log from the start, and a pager reads it with ListEvents.
//!
//! It prints the server's memory and the database size every 30 s, and at the end: growth
//! after warm-up (the first fifth of the run), ERROR and WARN lines in the server's log, RPCs
//! that failed, and whether every stream received exactly the events the pager read, each
//! once and in order.

#[path = "../tests/common/process.rs"]
#[allow(dead_code)]
mod process;

use std::collections::{HashSet, VecDeque};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linkstate::proto;
use linkstate::proto::connection_service_client::ConnectionServiceClient;
use linkstate::proto::customer_service_client::CustomerServiceClient;
use linkstate::proto::event_service_client::EventServiceClient;
use linkstate_sim::Mutation;
use linkstate_testing::authed;
use rand::seq::IndexedRandom;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const POPULATION: usize = 100;
const IMPORTS_PER_SECOND: usize = 2;
const WEBHOOKS_PER_SECOND: usize = 10;
const REFRESHES_PER_SECOND: usize = 2;
const STREAMS: usize = 4;
const RETENTION: &str = "2m";
const SAMPLE_EVERY: Duration = Duration::from_secs(30);
const PROVIDER_LATENCY: Duration = Duration::from_millis(20);

/// A live connection of the soak.
#[derive(Clone)]
struct Live {
    item_id: String,
    connection_id: String,
    customer_id: String,
}

/// RPCs that failed, by kind.
#[derive(Default)]
struct Failures {
    imports: AtomicU64,
    deletes: AtomicU64,
    refreshes: AtomicU64,
}

fn main() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Duration::from_secs_f64(minutes * 60.0)));
}

async fn run(length: Duration) {
    let setup = process::Setup::new().await;
    let (_, key) = setup.api_key().await;
    let log_path = std::env::temp_dir().join(format!("linkstate-soak-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let service = setup.replicas.start_logging(
        process::free_port(),
        process::free_port(),
        &[
            ("LINKSTATE_EVENT_RETENTION", RETENTION),
            ("LINKSTATE_LOG_FORMAT", "json"),
        ],
        log,
    );
    service.wait_ready().await;
    setup.sim.set_latency(PROVIDER_LATENCY);
    let channel = service.channel().await;
    let failures = Arc::new(Failures::default());

    let live = Arc::new(Mutex::new(VecDeque::new()));
    let mut next_customer = 0;
    while live.lock().unwrap().len() < POPULATION {
        let imported = import(&channel, &key, &setup, &mut next_customer, 25, &failures).await;
        live.lock().unwrap().extend(imported);
    }
    println!(
        "soak: {POPULATION} connections imported; {:.0} minutes of load",
        length.as_secs_f64() / 60.0
    );

    let stop_reading = CancellationToken::new();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| tokio::spawn(follow(channel.clone(), key.clone(), stop_reading.clone())))
        .collect();
    let pager = tokio::spawn(page(channel.clone(), key.clone(), stop_reading.clone()));

    println!("minute | server RSS MiB | database MiB | events kept | connections live | jobs live");
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sample = Instant::now() - SAMPLE_EVERY;
    while started.elapsed() < length {
        ticks.tick().await;
        one_second(&channel, &key, &setup, &live, &mut next_customer, &failures).await;
        if last_sample.elapsed() >= SAMPLE_EVERY {
            last_sample = Instant::now();
            let sample = Sample::take(&setup, &service, started).await;
            println!("{sample}");
            samples.push(sample);
        }
    }
    let drained = drain(&setup).await;
    let final_sample = Sample::take(&setup, &service, started).await;
    println!("{final_sample}");
    samples.push(final_sample);

    // Every event the pager read must reach every stream.
    let truth = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop_reading.cancel();
        pager.await.expect("pager")
    };
    let mut streams_exact = true;
    for (i, stream) in streams.into_iter().enumerate() {
        let received = stream.await.expect("stream");
        let unique: HashSet<&String> = received.iter().collect();
        let exact = received == truth;
        streams_exact &= exact;
        println!(
            "stream {i}: {} events, {} distinct, identical to the log: {exact}",
            received.len(),
            unique.len()
        );
    }
    report(
        &samples,
        &truth,
        streams_exact,
        drained,
        &failures,
        &log_path,
    );
    println!("largest tables at the end:");
    for (table, kib, rows) in largest_tables(&setup).await {
        println!("  {table}: {kib} KiB, {rows} rows");
    }
}

/// The five largest tables, with their indexes: where the database's size is.
async fn largest_tables(setup: &process::Setup) -> Vec<(String, i64, i64)> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        kib: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let mut conn = linkstate::store::connect(&setup.pool)
        .await
        .expect("connection");
    diesel::sql_query(
        "SELECT relname::text AS name, pg_total_relation_size(relid) / 1024 AS kib, \
         n_live_tup AS rows FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT 5",
    )
    .load::<Table>(&mut conn)
    .await
    .expect("sizes")
    .into_iter()
    .map(|t| (t.name, t.kib, t.rows))
    .collect()
}

/// One second of load.
async fn one_second(
    channel: &Channel,
    key: &str,
    setup: &process::Setup,
    live: &Mutex<VecDeque<Live>>,
    next_customer: &mut usize,
    failures: &Failures,
) {
    let gone: Vec<Live> = {
        let mut live = live.lock().unwrap();
        (0..IMPORTS_PER_SECOND)
            .filter_map(|_| live.pop_front())
            .collect()
    };
    let mut customers = CustomerServiceClient::new(channel.clone());
    for connection in gone {
        let deleted = customers
            .delete_customer(authed(
                key,
                proto::DeleteCustomerRequest {
                    customer_id: connection.customer_id,
                    erase_data: true,
                },
            ))
            .await;
        if deleted.is_err() {
            failures.deletes.fetch_add(1, Ordering::Relaxed);
        }
    }
    let imported = import(
        channel,
        key,
        setup,
        next_customer,
        IMPORTS_PER_SECOND,
        failures,
    )
    .await;
    let (mutated, refreshed): (Vec<Live>, Vec<Live>) = {
        let mut live = live.lock().unwrap();
        live.extend(imported);
        let all: Vec<Live> = live.iter().cloned().collect();
        let mut rng = rand::rng();
        (
            all.sample(&mut rng, WEBHOOKS_PER_SECOND).cloned().collect(),
            all.sample(&mut rng, REFRESHES_PER_SECOND)
                .cloned()
                .collect(),
        )
    };
    for connection in mutated {
        setup.sim.mutate(
            &connection.item_id,
            Mutation {
                add: 2,
                modify: 1,
                remove: 0,
            },
        );
    }
    let mut connections = ConnectionServiceClient::new(channel.clone());
    for connection in refreshed {
        let refreshed = connections
            .refresh_connection(authed(
                key,
                proto::RefreshConnectionRequest {
                    connection_id: connection.connection_id,
                    products: Vec::new(),
                },
            ))
            .await;
        if refreshed.is_err() {
            failures.refreshes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Imports `n` new items, each its own customer.
async fn import(
    channel: &Channel,
    key: &str,
    setup: &process::Setup,
    next_customer: &mut usize,
    n: usize,
    failures: &Failures,
) -> Vec<Live> {
    let items: Vec<_> = (0..n)
        .map(|_| setup.sim.create_item("ins_109508"))
        .collect();
    let requests = items
        .iter()
        .map(|item| {
            *next_customer += 1;
            proto::ImportConnection {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: format!("soak-{next_customer}"),
                access_token: item.access_token.expose().to_string(),
                ..Default::default()
            }
        })
        .collect();
    let answer = ConnectionServiceClient::new(channel.clone())
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: requests,
                ..Default::default()
            },
        ))
        .await;
    let Ok(answer) = answer else {
        failures.imports.fetch_add(n as u64, Ordering::Relaxed);
        return Vec::new();
    };
    let mut live = Vec::new();
    for (item, result) in items.iter().zip(answer.into_inner().results) {
        match result.result {
            Some(proto::import_result::Result::Connection(connection)) => live.push(Live {
                item_id: item.item_id.clone(),
                connection_id: connection.id,
                customer_id: connection.customer_id,
            }),
            _ => {
                failures.imports.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    live
}

/// A stream from the start of the log: the ids it received, in order.
async fn follow(channel: Channel, key: String, stop: CancellationToken) -> Vec<String> {
    let mut stream = EventServiceClient::new(channel)
        .stream_events(authed(
            &key,
            proto::StreamEventsRequest {
                from_earliest: true,
                ..Default::default()
            },
        ))
        .await
        .expect("stream opens")
        .into_inner();
    let mut ids = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return ids,
            message = stream.message() => match message.expect("stream stays up") {
                Some(proto::StreamEventsResponse {
                    message: Some(proto::stream_events_response::Message::Event(event)),
                }) => ids.push(event.event_id),
                Some(_) => {}
                None => panic!("the stream ended"),
            },
        }
    }
}

/// ListEvents page after page, every half second, until `stop`: the log as a pager reads it.
async fn page(channel: Channel, key: String, stop: CancellationToken) -> Vec<String> {
    let mut client = EventServiceClient::new(channel);
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_events(authed(
                &key,
                proto::ListEventsRequest {
                    after_cursor: cursor.clone(),
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .expect("ListEvents")
            .into_inner();
        if page.events.is_empty() {
            if stop.is_cancelled() {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        ids.extend(page.events.into_iter().map(|e| e.event_id));
        cursor = page.next_cursor;
    }
}

/// Waits for the queue to empty (two minutes at most); answers whether it did.
async fn drain(setup: &process::Setup) -> bool {
    for _ in 0..1200 {
        if linkstate_testing::count(&setup.pool, "jobs WHERE dead_at IS NULL").await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One reading of the server and the database.
struct Sample {
    at: Duration,
    rss_mib: f64,
    database_mib: f64,
    events: i64,
    connections: i64,
    jobs: i64,
}

impl Sample {
    async fn take(setup: &process::Setup, service: &process::Service, started: Instant) -> Self {
        #[derive(diesel::QueryableByName)]
        struct Size {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            bytes: i64,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = linkstate::store::connect(&setup.pool)
            .await
            .expect("connection");
        let size = diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
            .get_result::<Size>(&mut conn)
            .await
            .expect("size");
        let count = |table: &'static str| linkstate_testing::count(&setup.pool, table);
        Self {
            at: started.elapsed(),
            rss_mib: service.rss_kib() as f64 / 1024.0,
            database_mib: size.bytes as f64 / (1024.0 * 1024.0),
            events: count("events").await,
            connections: count("connections WHERE status <> 'DELETED'").await,
            jobs: count("jobs WHERE dead_at IS NULL").await,
        }
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6.1} | {:>14.1} | {:>12.1} | {:>11} | {:>16} | {:>9}",
            self.at.as_secs_f64() / 60.0,
            self.rss_mib,
            self.database_mib,
            self.events,
            self.connections,
            self.jobs
        )
    }
}

/// The verdicts.
fn report(
    samples: &[Sample],
    truth: &[String],
    streams_exact: bool,
    drained: bool,
    failures: &Failures,
    log_path: &std::path::Path,
) {
    let warm = &samples[(samples.len() / 5).min(samples.len() - 1)];
    let peak_after = |f: fn(&Sample) -> f64| {
        samples
            .iter()
            .filter(|s| s.at >= warm.at)
            .map(f)
            .fold(f64::MIN, f64::max)
    };
    let last = samples.last().expect("samples");
    let (errors, warnings) = log_levels(log_path);
    println!();
    println!(
        "| after warm-up ({:.1} min) | at warm-up | peak after | at the end |",
        warm.at.as_secs_f64() / 60.0
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| server RSS (MiB) | {:.1} | {:.1} | {:.1} |",
        warm.rss_mib,
        peak_after(|s| s.rss_mib),
        last.rss_mib
    );
    println!(
        "| database (MiB) | {:.1} | {:.1} | {:.1} |",
        warm.database_mib,
        peak_after(|s| s.database_mib),
        last.database_mib
    );
    println!(
        "events read: {}; every stream received each once, in order: {streams_exact}",
        truth.len()
    );
    println!("queue drained after the load: {drained}");
    println!(
        "failed RPCs: imports {}, deletes {}, refreshes {}",
        failures.imports.load(Ordering::Relaxed),
        failures.deletes.load(Ordering::Relaxed),
        failures.refreshes.load(Ordering::Relaxed)
    );
    println!(
        "server log: {errors} ERROR lines, {warnings} WARN lines ({})",
        log_path.display()
    );
}

/// ERROR and WARN lines of the server's JSON log.
fn log_levels(path: &std::path::Path) -> (usize, usize) {
    let file = std::fs::File::open(path).expect("log");
    let (mut errors, mut warnings) = (0, 0);
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        if line.contains("\"level\":\"ERROR\"") {
            errors += 1;
            eprintln!("{line}");
        } else if line.contains("\"level\":\"WARN\"") {
            warnings += 1;
            eprintln!("{line}");
        }
    }
    (errors, warnings)
}

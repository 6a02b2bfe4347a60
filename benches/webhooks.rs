//! Webhooks (issue 4), two measurements in one run, on one fresh database of the test cluster:
//!
//! 1. Ingest: signed Plaid webhooks posted by 32 concurrent senders, each answered 200 once its
//!    delivery row and job are committed; against pgbench inserting the same body as one row per
//!    transaction, at the same concurrency, into the same database. A second pgbench row runs
//!    linkstate's own statements for one delivery, to show what the database alone allows.
//!    Then the same ingest at 8 and 128 senders, each against pgbench at as many clients.
//! 2. Webhook to event: ITEM webhooks at a steady 200 per second that each change a connection's
//!    status, timed from the POST until the STATUS_CHANGE arrives on a live `StreamEvents`.
//!
//! Run: `cargo bench --bench webhooks` (uses DATABASE_URL if set, else the embedded test cluster);
//! `cargo bench --bench webhooks -- latency` runs only the second measurement, on a fresh app,
//! and `-- ingest` only the first at 32 senders, without baselines (for profiling).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use linkstate::proto::{self, import_result, stream_events_response::Message};
use linkstate::providers::plaid::verify::UnverifiedWebhook;
use linkstate::store;
use linkstate_testing::{TestApp, authed};

/// Concurrent HTTP senders in the ingest run, and pgbench clients in its baselines.
const SENDERS: usize = 32;
/// The other sender counts the ingest's ratio is measured at (each against pgbench at as many
/// clients).
const OTHER_SENDERS: [usize; 2] = [8, 128];
/// Deliveries timed in the ingest run (about ten seconds' worth on the project machine).
const DELIVERIES: usize = 12_000;
/// Items the ingested deliveries are about.
const ITEMS: usize = 1_000;
/// Deliveries sent before timing: the verifier fetches the simulator's key on the first one, and
/// the HTTP and database pools open their connections.
const WARM_UP: usize = 200;
/// How long each pgbench run lasts.
const BASELINE_SECONDS: u32 = 10;

/// Connections whose status the webhook-to-event run moves back and forth.
const CONNECTIONS: usize = 50;
/// Webhooks per second in the webhook-to-event run.
const RATE: u32 = 200;
/// Webhooks sent in that run (10 s at `RATE`).
const PACED: usize = 2_000;

fn main() {
    // reqwest is built without a default crypto provider; plain HTTP still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let app = TestApp::start_unlimited().await;
    // One client for every sender: it keeps a kept-alive connection per request in flight.
    let client = reqwest::Client::new();
    let url = format!("http://{}/webhooks/plaid", app.app.http_addr);
    if std::env::args().any(|arg| arg == "latency") {
        print_to_event(&webhook_to_event(&app, &client, &url).await);
        app.stop().await;
        return;
    }
    if std::env::args().any(|arg| arg == "ingest") {
        let run = ingest(&app, &client, &url, SENDERS).await;
        println!("{} deliveries in {:.2?}", run.latencies.len(), run.wall);
        app.stop().await;
        return;
    }

    let ingest = ingest(&app, &client, &url, SENDERS).await;
    // The workers process what was ingested; the baselines and the next run start on a quiet
    // database so that none of them pays for that backlog.
    let started = Instant::now();
    wait_quiet(&app).await;
    let backlog = started.elapsed();
    let verify = verify_each(&app).await;
    let baselines = baselines(&app, &ingest.sample_body).await;
    // The latency run starts on a settled database: without the baselines' tables, vacuumed
    // after the ingest's burst, and with the baselines' dirty pages flushed, so that neither
    // autovacuum nor a checkpoint lands in the middle of it.
    sql(
        &app,
        "DROP TABLE bench_inbox, bench_webhook_sources, bench_webhook_deliveries, bench_jobs",
    )
    .await;
    sql(&app, "VACUUM ANALYZE").await;
    sql(&app, "CHECKPOINT").await;
    let to_event = webhook_to_event(&app, &client, &url).await;
    // Last, so that the latency run above starts on the same database as before: the other
    // sender counts leave 24,000 more deliveries behind.
    wait_quiet(&app).await;
    let scaled = scaling(&app, &client, &url).await;

    print_ingest(&ingest, &baselines, backlog, verify);
    print_scaling(&ingest, &baselines.plain, &scaled);
    print_to_event(&to_event);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Ingest

struct Ingest {
    wall: Duration,
    latencies: Vec<Duration>,
    sample_body: Vec<u8>,
}

async fn ingest(app: &TestApp, client: &reqwest::Client, url: &str, senders: usize) -> Ingest {
    // Signed before timing: signing is Plaid's work, not ours. The items are unknown to
    // linkstate, which records the delivery and queues its job exactly as for a known one (the
    // job then finds no connection); the sequence number keeps every body distinct, so none is a
    // retry. Deliveries spread over `ITEMS` items, as a provider's do over a customer base.
    let signed: Vec<(Vec<u8>, String)> = (0..WARM_UP + DELIVERIES)
        .map(|n| {
            let item = format!("bench-unknown-item-{senders}-{}", n % ITEMS);
            let body = serde_json::to_vec(&item_error(&item, n)).expect("json");
            let jwt = app.sim.sign_webhook(&body);
            (body, jwt)
        })
        .collect();
    let sample_body = signed[WARM_UP].0.clone();
    let (warm_up, timed) = signed.split_at(WARM_UP);
    send_all(client, url, warm_up.to_vec(), senders).await;
    wait_quiet(app).await;

    let started = Instant::now();
    let mut latencies = send_all(client, url, timed.to_vec(), senders).await;
    let wall = started.elapsed();
    latencies.sort();
    Ingest {
        wall,
        latencies,
        sample_body,
    }
}

/// What the service's check of one delivery's signature costs on one core, on a quiet machine:
/// the ES256 JWT (its key cached), its age and the body's hash, for 2,000 deliveries one after
/// another.
async fn verify_each(app: &TestApp) -> Duration {
    let deliveries: Vec<(Vec<u8>, String)> = (0..2_000)
        .map(|n| {
            let body = serde_json::to_vec(&item_error("bench-verify-item", n)).expect("json");
            let jwt = app.sim.sign_webhook(&body);
            (body, jwt)
        })
        .collect();
    let verifier = app.app.ctx.plaid_verifier();
    let started = Instant::now();
    for (body, jwt) in &deliveries {
        let unverified = UnverifiedWebhook {
            jwt: Some(jwt),
            body,
        };
        verifier
            .verify(unverified, chrono::Utc::now())
            .await
            .expect("a signed delivery verifies");
    }
    started.elapsed() / deliveries.len() as u32
}

/// Posts every delivery from `senders` tasks that each take the next one as soon as their
/// previous one is answered; answers each delivery's time to its 200.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    deliveries: Vec<(Vec<u8>, String)>,
    senders: usize,
) -> Vec<Duration> {
    let deliveries = Arc::new(deliveries);
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..senders)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            let (deliveries, next) = (deliveries.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some((body, jwt)) = deliveries.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        return latencies;
                    };
                    latencies.push(post(&client, &url, body.clone(), jwt).await);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(deliveries.len());
    for sender in senders {
        all.extend(sender.await.expect("sender"));
    }
    all
}

/// Posts one signed delivery as Plaid does; answers the time until the 200's headers.
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>, jwt: &str) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("Plaid-Verification", jwt)
        .body(body)
        .send()
        .await
        .expect("webhook POST");
    let took = started.elapsed();
    let status = response.status();
    // Read to the end so that the connection goes back to the client's pool.
    let answer = response.text().await.unwrap_or_default();
    assert_eq!(status, reqwest::StatusCode::OK, "webhook refused: {answer}");
    took
}

struct Baseline {
    tps: f64,
    latency_ms: Option<f64>,
    transactions: Option<u64>,
}

struct Baselines {
    /// The goal's baseline: one INSERT of the body per transaction.
    plain: Baseline,
    /// linkstate's own statements for one delivery, on copies of its tables.
    ours_in_sql: Baseline,
}

async fn baselines(app: &TestApp, body: &[u8]) -> Baselines {
    let body = format!("'\\x{}'", hex_of(body));
    // The least an inbox needs: a key, the body, when it came.
    sql(
        app,
        "CREATE TABLE bench_inbox (id bigserial PRIMARY KEY, body bytea NOT NULL, \
         received_at timestamptz NOT NULL DEFAULT now())",
    )
    .await;
    let plain = pgbench(app, &plain_insert(&body), SENDERS).await;

    // What linkstate sends for one delivery: the one statement of store::webhooks::record, on
    // copies of its three tables with their indexes, so that the workers never see these rows.
    // Ids are time-ordered like linkstate's UUIDv7; the hash is random, as every delivery's is.
    for table in ["webhook_sources", "webhook_deliveries", "jobs"] {
        sql(
            app,
            &format!("CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL)"),
        )
        .await;
    }
    let time_ordered_id = "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), \
                           12, '0') || substr(md5(random()::text), 1, 20))::uuid";
    let ours_in_sql = pgbench(
        app,
        &format!(
            "\\set item random(0, {})\n\
             WITH latest AS (INSERT INTO bench_webhook_sources AS s (service_provider, source, \
             body_sha256, delivery_id, received_at) VALUES ('PLAID', 'bench-item-' || :item, \
             md5(random()::text) || md5(random()::text), {time_ordered_id}, now()) \
             ON CONFLICT (service_provider, source) DO UPDATE SET body_sha256 = \
             excluded.body_sha256, delivery_id = excluded.delivery_id, received_at = \
             excluded.received_at WHERE s.body_sha256 <> excluded.body_sha256 OR s.received_at < \
             now() - interval '48 hours' RETURNING delivery_id, body_sha256), \
             delivery AS (INSERT INTO bench_webhook_deliveries (id, service_provider, body_sha256, \
             body, signed_at, webhook_type, webhook_code, provider_connection_id) SELECT \
             delivery_id, 'PLAID', body_sha256, {body}, now(), 'ITEM', 'ERROR', 'bench-item-' || \
             :item FROM latest RETURNING id), \
             job AS (INSERT INTO bench_jobs (id, kind, payload, dedupe_key) SELECT \
             {time_ordered_id}, 'webhook', jsonb_build_object('kind', 'webhook', 'delivery_id', \
             id), 'webhook:' || id FROM delivery) \
             SELECT id FROM delivery;\n",
            ITEMS - 1
        ),
        SENDERS,
    )
    .await;
    Baselines { plain, ours_in_sql }
}

/// The goal's baseline script: one INSERT of the body (a hex literal) per transaction.
fn plain_insert(body: &str) -> String {
    format!("INSERT INTO bench_inbox (body) VALUES ({body});\n")
}

/// The ingest at another sender count, with pgbench at as many clients.
struct Scaled {
    senders: usize,
    ingest: Ingest,
    plain: Baseline,
}

/// The ingest and its plain baseline at each of `OTHER_SENDERS`.
async fn scaling(app: &TestApp, client: &reqwest::Client, url: &str) -> Vec<Scaled> {
    sql(
        app,
        "CREATE TABLE bench_inbox (id bigserial PRIMARY KEY, body bytea NOT NULL, \
         received_at timestamptz NOT NULL DEFAULT now())",
    )
    .await;
    let mut rows = Vec::new();
    for senders in OTHER_SENDERS {
        let ingest = ingest(app, client, url, senders).await;
        wait_quiet(app).await;
        let body = format!("'\\x{}'", hex_of(&ingest.sample_body));
        let plain = pgbench(app, &plain_insert(&body), senders).await;
        rows.push(Scaled {
            senders,
            ingest,
            plain,
        });
    }
    rows
}

fn print_scaling(at_goal: &Ingest, baseline: &Baseline, others: &[Scaled]) {
    println!("\nIngest by sender count (pgbench at as many clients):\n");
    println!("| senders | linkstate/s | p99 | pgbench one-row inserts/s | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    let mut rows: Vec<(usize, &Ingest, &Baseline)> = others
        .iter()
        .map(|s| (s.senders, &s.ingest, &s.plain))
        .collect();
    rows.push((SENDERS, at_goal, baseline));
    rows.sort_by_key(|(senders, _, _)| *senders);
    for (senders, ingest, plain) in rows {
        let ours = ingest.latencies.len() as f64 / ingest.wall.as_secs_f64();
        println!(
            "| {senders} | {ours:.0} | {} | {:.0} | {:.2} |",
            ms(percentile(&ingest.latencies, 0.99)),
            plain.tps,
            ours / plain.tps
        );
    }
}

/// Runs one pgbench script at the ingest run's concurrency, against the bench's database.
async fn pgbench(app: &TestApp, script: &str, clients: usize) -> Baseline {
    let file = tempfile::NamedTempFile::new().expect("script file");
    std::fs::write(file.path(), script).expect("write script");
    let (path, url) = (file.path().to_owned(), app.database.url.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T"])
            .arg(BASELINE_SECONDS.to_string())
            .arg("-f")
            .arg(&path)
            .arg(&url)
            .output()
            .expect("pgbench runs (Debian: postgresql-client)")
    })
    .await
    .expect("pgbench thread");
    drop(file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_pgbench(&stdout)
}

async fn sql(app: &TestApp, statement: &str) {
    use diesel_async::RunQueryDsl;
    let mut conn = store::connect(&app.pool).await.expect("connection");
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads pgbench's summary. Newer versions print one `tps = N (without initial connection
/// time)`; older ones print it including and excluding connection set-up: the latter is wanted.
fn parse_pgbench(stdout: &str) -> Baseline {
    let number = |line: &str, prefix: &str| -> Option<f64> {
        line.trim()
            .strip_prefix(prefix)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let tps_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim().starts_with("tps = "))
        .collect();
    let tps_line = tps_lines
        .iter()
        .find(|l| l.contains("without initial connection time") || l.contains("excluding"))
        .or(tps_lines.first())
        .unwrap_or_else(|| panic!("no tps line in pgbench's output:\n{stdout}"));
    Baseline {
        tps: number(tps_line, "tps = ").expect("tps value"),
        latency_ms: stdout.lines().find_map(|l| number(l, "latency average = ")),
        transactions: stdout.lines().find_map(|l| {
            number(l, "number of transactions actually processed: ").map(|n| n as u64)
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook to event

struct ToEvent {
    sent: usize,
    pacing: Duration,
    latencies: Vec<Duration>,
    superseded: usize,
    unexpected: usize,
}

/// What each connection's sent webhooks should announce, oldest first: the status expected and
/// when its webhook was sent.
type Pending = Arc<Mutex<HashMap<String, VecDeque<(i32, Instant)>>>>;

async fn webhook_to_event(app: &TestApp, client: &reqwest::Client, url: &str) -> ToEvent {
    let (_, key) = app.account("bench-events").await;
    let connections = import_connections(app, &key).await;
    // The imports' aggregations and the simulator's own webhooks (acknowledgement, initial
    // update) must be done, or an aggregation could move a status under the run.
    settle(app, &key).await;

    let mut stream = app
        .events()
        .await
        .stream_events(authed(
            &key,
            proto::StreamEventsRequest {
                event_types: vec![proto::event::Type::BankLinkingConnectionStatusChange as i32],
                ..Default::default()
            },
        ))
        .await
        .expect("StreamEvents")
        .into_inner();
    // A live stream starts at the head of the log when the server opens it; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pending: Pending = Arc::default();
    let reader = {
        let pending = pending.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PACED);
            let (mut superseded, mut unexpected) = (0, 0);
            while latencies.len() + superseded < PACED {
                // Five quiet seconds (no heartbeat comes that soon) mean nothing more is coming.
                let Ok(Ok(Some(message))) =
                    tokio::time::timeout(Duration::from_secs(5), stream.message()).await
                else {
                    break;
                };
                let Some(Message::Event(event)) = message.message else {
                    continue;
                };
                let arrived = Instant::now();
                let payload = event.payload.unwrap_or_default();
                let (Some(connection), Some(status)) = (payload.connection_id, payload.new_status)
                else {
                    unexpected += 1;
                    continue;
                };
                let mut pending = pending.lock().expect("pending");
                let queue = pending.entry(connection).or_default();
                // Normally the oldest pending webhook is the one announced. Should a later one
                // have overtaken it (processed first, so the older one became stale or changed
                // nothing), the ones skipped are counted apart, not timed.
                match queue.iter().position(|(expected, _)| *expected == status) {
                    Some(at) => {
                        superseded += at;
                        let (_, sent) = queue.drain(..=at).next_back().expect("drained one");
                        latencies.push(arrived - sent);
                    }
                    None => unexpected += 1,
                }
            }
            (latencies, superseded, unexpected)
        })
    };

    let mut ticks = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut sends = Vec::with_capacity(PACED);
    let started = Instant::now();
    for n in 0..PACED {
        ticks.tick().await;
        // Round-robin over the connections; each one alternates between a broken login and its
        // repair, so every webhook changes its status.
        let (item_id, connection_id) = &connections[n % CONNECTIONS];
        let (body, expected) = if (n / CONNECTIONS).is_multiple_of(2) {
            (
                item_error(item_id, n),
                proto::connection::Status::ReconnectRequired,
            )
        } else {
            (
                item_webhook(item_id, "LOGIN_REPAIRED", n),
                proto::connection::Status::Active,
            )
        };
        let body = serde_json::to_vec(&body).expect("json");
        // Signed now, not beforehand: the service ignores a webhook signed before the status it
        // already reflects, to the second, so one connection's webhooks must be signed in order.
        let jwt = app.sim.sign_webhook(&body);
        pending
            .lock()
            .expect("pending")
            .entry(connection_id.clone())
            .or_default()
            .push_back((expected as i32, Instant::now()));
        let (client, url) = (client.clone(), url.to_string());
        // Its own task, so that a slow answer never holds back the pace.
        sends.push(tokio::spawn(async move {
            post(&client, &url, body, &jwt).await
        }));
    }
    let pacing = started.elapsed();
    for send in sends {
        send.await.expect("send");
    }
    let (mut latencies, superseded, unexpected) = reader.await.expect("reader");
    latencies.sort();
    ToEvent {
        sent: PACED,
        pacing,
        latencies,
        superseded,
        unexpected,
    }
}

/// Imports `CONNECTIONS` simulator items in one request; answers (item id, connection id) each.
async fn import_connections(app: &TestApp, key: &str) -> Vec<(String, String)> {
    let items: Vec<_> = (0..CONNECTIONS)
        .map(|_| app.sim.create_item("ins_109508"))
        .collect();
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| proto::ImportConnection {
                        service_provider: proto::service_provider::Value::Plaid as i32,
                        external_customer_id: format!("customer-{i}"),
                        access_token: item.access_token.expose().into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        ))
        .await
        .expect("import")
        .into_inner();
    items
        .iter()
        .zip(response.results)
        .map(|(item, result)| match result.result {
            Some(import_result::Result::Connection(connection)) => {
                (item.item_id.clone(), connection.id)
            }
            other => panic!("import failed: {other:?}"),
        })
        .collect()
}

/// Waits until every imported connection has been aggregated and nothing is left to do.
async fn settle(app: &TestApp, key: &str) {
    let mut events = app.events().await;
    for _ in 0..600 {
        let aggregated = events
            .list_events(authed(
                key,
                proto::ListEventsRequest {
                    event_types: vec![proto::event::Type::BankLinkingTransactionsAggregated as i32],
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .expect("ListEvents")
            .into_inner()
            .events
            .len();
        if aggregated >= CONNECTIONS {
            wait_quiet(app).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the imports were not aggregated within 60 s");
}

/// Waits until no job is queued and every delivery is processed, twice in a row a moment apart
/// (a delivery may arrive and a job be queued in between).
async fn wait_quiet(app: &TestApp) {
    let mut quiet_checks = 0;
    for _ in 0..2400 {
        let busy = app.count("jobs WHERE dead_at IS NULL").await
            + app
                .count("webhook_deliveries WHERE processed_at IS NULL")
                .await;
        quiet_checks = if busy == 0 { quiet_checks + 1 } else { 0 };
        if quiet_checks == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs still pending after 120 s");
}

// ---------------------------------------------------------------------------------------------
// Bodies and output

/// An ITEM webhook. Plaid's bodies carry no delivery id and linkstate takes a body's hash for
/// one (the same body again, with nothing else from its item in between, is a retry), so
/// `bench_sequence` keeps ours distinct.
fn item_webhook(item_id: &str, code: &str, sequence: usize) -> Value {
    json!({
        "webhook_type": "ITEM",
        "webhook_code": code,
        "item_id": item_id,
        "environment": "sandbox",
        "bench_sequence": sequence,
    })
}

/// ITEM `ERROR` with ITEM_LOGIN_REQUIRED, as Plaid sends it.
fn item_error(item_id: &str, sequence: usize) -> Value {
    let mut webhook = item_webhook(item_id, "ERROR", sequence);
    webhook["error"] = json!({
        "error_type": "ITEM_ERROR",
        "error_code": "ITEM_LOGIN_REQUIRED",
        "error_message": "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information",
        "display_message": null,
        "request_id": null,
        "causes": [],
        "status": 400,
        "documentation_url": "https://plaid.com/docs/errors/item/#item_login_required",
        "suggested_action": null
    });
    webhook
}

/// The value at quantile `q` of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn print_ingest(ingest: &Ingest, baselines: &Baselines, backlog: Duration, verify: Duration) {
    let ours = ingest.latencies.len() as f64 / ingest.wall.as_secs_f64();
    println!(
        "\nWebhook ingest: {} signed Plaid webhooks ({} bytes each) from {SENDERS} concurrent \
         senders; baselines: pgbench -n -c {SENDERS} -j 2 -T {BASELINE_SECONDS}, same body, \
         same database\n",
        ingest.latencies.len(),
        ingest.sample_body.len()
    );
    println!("| what | requests | wall time | per second | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| linkstate: POST /webhooks/plaid to its 200 (verify, then group-committed: source, delivery and job) | {} | {:.2} s | {:.0} | {} | {} |",
        ingest.latencies.len(),
        ingest.wall.as_secs_f64(),
        ours,
        ms(percentile(&ingest.latencies, 0.50)),
        ms(percentile(&ingest.latencies, 0.99)),
    );
    for (what, baseline) in [
        (
            "baseline: pgbench, one INSERT of the body per transaction",
            &baselines.plain,
        ),
        (
            "reference: pgbench, linkstate's statement for one delivery (source, delivery and job in one statement)",
            &baselines.ours_in_sql,
        ),
    ] {
        println!(
            "| {what} | {} | {BASELINE_SECONDS} s | {:.0} | {} (mean) | – |",
            baseline
                .transactions
                .map_or("?".to_string(), |n| n.to_string()),
            baseline.tps,
            baseline
                .latency_ms
                .map_or("?".to_string(), |l| format!("{l:.1} ms")),
        );
    }
    println!(
        "\nratio, linkstate / baseline: {:.2} (goal: at least 1.0); linkstate's statements alone \
         in pgbench / baseline: {:.2}",
        ours / baselines.plain.tps,
        baselines.ours_in_sql.tps / baselines.plain.tps,
    );
    let verify = verify.as_secs_f64();
    println!(
        "signature check alone (ES256, on one core): {:.1} µs per delivery, at most {:.0}/s per \
         core; at the baseline's rate it would take {:.2} cores by itself",
        verify * 1e6,
        1.0 / verify,
        baselines.plain.tps * verify,
    );
    println!(
        "the workers finished processing the ingested deliveries {:.1} s after the last 200",
        backlog.as_secs_f64()
    );
}

fn print_to_event(run: &ToEvent) {
    println!(
        "\nWebhook to event: {} ITEM webhooks (ERROR ITEM_LOGIN_REQUIRED / LOGIN_REPAIRED, \
         alternating) over {CONNECTIONS} connections at {RATE}/s ({:.1} s of sending), each timed \
         from its POST to its STATUS_CHANGE on a live StreamEvents\n",
        run.sent,
        run.pacing.as_secs_f64()
    );
    println!("| sent | matched | superseded | unexpected | p50 | p99 | max |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        run.sent,
        run.latencies.len(),
        run.superseded,
        run.unexpected,
        ms(percentile(&run.latencies, 0.50)),
        ms(percentile(&run.latencies, 0.99)),
        ms(run.latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "\np99 {} 20 ms (goal: under 20 ms)",
        if percentile(&run.latencies, 0.99) < Duration::from_millis(20) {
            "under"
        } else {
            "NOT under"
        }
    );
}

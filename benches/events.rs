//! Event stream (issue 5), three measurements in one run, on one fresh database of the test
//! cluster, against the real `linkstate serve` binary started as a child process, so that the
//! server's CPU (utime + stime from /proc/<pid>/stat) and memory (VmRSS) are its own and not the
//! load generator's:
//!
//! 1. Fan-out: live `StreamEvents` subscribers on the one server while the bench process, acting
//!    as another replica, appends events through `linkstate::store` at a steady `RATE` per second
//!    over `CUSTOMERS` customers: one event per transaction, then `store::events::notify_peers`
//!    (the NOTIFY a replica's hub sends) on the same connection. Each event's commit time is
//!    taken when its COMMIT returns, each receipt when the subscriber's stream yields it, on the
//!    same clock; latency = receipt - commit. The same write load runs twice: with `UNFILTERED`
//!    unfiltered subscribers alone, then with one subscriber per customer (`customerId` filter)
//!    on top. Each filtered subscriber must receive exactly the events of its customer written
//!    during the phase, each unfiltered one all of them. Subscribers share one gRPC channel (one
//!    HTTP/2 connection) per `PER_CHANNEL`, the unfiltered ones their own. Database load is the
//!    bench database's `xact_commit + xact_rollback` delta in `pg_stat_database`, over the
//!    measured window and over an idle window before the writing; it is printed next to the
//!    writer's share so that the reader can subtract it. That share is measured, not assumed:
//!    before the server starts, `CALIBRATION` events are written the same way on a connection of
//!    their own, which is then closed so that its backend publishes its counts, and the delta is
//!    divided by the events.
//! 2. Catch-up: one subscriber streaming `fromEarliest` over `STORED` events of its own tenant,
//!    inserted beforehand with SQL (`INSERT ... SELECT generate_series`, the same columns and
//!    payload shape as `store::events::append` writes, the ordering columns left to their
//!    defaults). Timed from the request until the client has decoded the last event.
//! 3. Write cost of the ordering scheme: `WRITERS` tasks each calling `store::events::append`
//!    with one event per transaction, into the real `events` table (key: the appending
//!    transaction's xid8, then a sequence), against the very same calls into a table with a plain
//!    `bigserial` key, made the target by setting the writers' `search_path`; same statement,
//!    same payloads, same pool size, in alternating rounds.
//!
//! Run: `cargo bench --bench events` (uses DATABASE_URL if set, else the embedded test cluster).

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use linkstate::cipher::Cipher;
use linkstate::domain::connection_status::{ConnectionStatus, StatusReason};
use linkstate::domain::cursor::Cursor;
use linkstate::domain::event::{EVENT_VERSION, EventPayload, EventType, NewEvent};
use linkstate::domain::ids::{AccountId, ConnectionId, CustomerId, InstitutionId};
use linkstate::proto::stream_events_response::Message;
use linkstate::proto::{self, event_service_client::EventServiceClient};
use linkstate::store::{self, DbPool, StoreError, events};
use linkstate_testing::{TestDatabase, authed};

/// The server under test.
const BINARY: &str = env!("CARGO_BIN_EXE_linkstate");
/// Streams the server accepts, in all and per account: the service's default, which the
/// fan-out's 10,000 subscribers reach exactly.
const MAX_STREAMS: usize = 10_000;
/// The hub's fallback poll, the service's default, set explicitly so that the figures do not
/// move if the default does.
const POLL_INTERVAL: &str = "200ms";

/// Customers the fan-out writes for; the second phase has one filtered subscriber for each.
const CUSTOMERS: usize = 9_990;
/// Unfiltered subscribers, in both phases.
const UNFILTERED: usize = 10;
/// Subscribers sharing one gRPC channel (one HTTP/2 connection).
const PER_CHANNEL: usize = 100;
/// Events appended per second in the fan-out.
const RATE: u32 = 500;
/// Writing before the measured window, so that pools and caches are warm when it opens.
const WARM_UP: Duration = Duration::from_secs(1);
/// The measured window of each fan-out phase.
const MEASURED: Duration = Duration::from_secs(10);
/// Database connections of the fan-out's writer: enough that a slow commit never holds back
/// the pace.
const WRITER_CONNECTIONS: usize = 8;
/// Heartbeat interval asked for by every subscriber; its first heartbeat proves that its stream
/// has taken its starting position, so that no event of the phase can fall before it.
const HEARTBEAT_SECONDS: i32 = 5;
/// Quiet time between opening the subscribers and writing: PostgreSQL 15 publishes an idle
/// backend's transaction counts up to 10 s late, and those of the streams' opening (an API key
/// check and a head read each) must not land in the measured window.
const STATS_SETTLE: Duration = Duration::from_secs(11);
/// Idle window measured before each phase's writing: what the server costs the database with
/// its subscribers open and nothing written.
const IDLE: Duration = Duration::from_secs(3);
/// Events written to measure what one costs the database, as PostgreSQL counts transactions.
const CALIBRATION: usize = 500;
/// How long deliveries may stall after the last write before the missing ones count as missed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Events stored for the catch-up.
const STORED: usize = 1_000_000;
/// Transactions the stored events are inserted in.
const INSERT_TRANSACTIONS: usize = 10;

/// Concurrent appenders in the write-cost comparison.
const WRITERS: usize = 32;
/// Length of one round of appends into one table.
const ROUND: Duration = Duration::from_secs(5);
/// Rounds per table, alternating tables (ordered first, then plain first), so that neither
/// always runs on the warmer database.
const ROUNDS: usize = 2;

/// Builds the runtime and runs the bench.
fn main() {
    // reqwest is built without a default crypto provider; plain HTTP still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// The three measurements, then their tables.
async fn run() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 2).expect("pool");
    let (fan_out_account, fan_out_key) = account(&pool, "bench-fan-out").await;
    let (catch_up_account, catch_up_key) = account(&pool, "bench-catch-up").await;
    let mut bench = Bench {
        url: database.url.clone(),
        pool,
        customers: Arc::new((0..CUSTOMERS).map(Customer::new).collect()),
        institution: InstitutionId::generate(),
        ticks_per_second: clock_ticks_per_second(),
        writer_cost: 0.0,
    };
    // First, while nothing else touches the database.
    bench.writer_cost = writer_cost(&bench, fan_out_account).await;

    // The stored log comes first, before the server starts, so that its hub never reads it
    // and the fan-out runs with a million events in the table, as a live log would have.
    let insert = store_events(&bench, catch_up_account).await;
    sql(&bench.pool, "VACUUM ANALYZE events").await;
    sql(&bench.pool, "CHECKPOINT").await;

    let server = Server::start(&bench.url).await;
    let alone = fan_out(&bench, &server, fan_out_account, &fan_out_key, false).await;
    let crowd = fan_out(&bench, &server, fan_out_account, &fan_out_key, true).await;
    let copy_before = copy_out(&bench, catch_up_account).await;
    let catch_up = catch_up(&bench, &server, &catch_up_key, insert).await;
    let copy_after = copy_out(&bench, catch_up_account).await;
    // Stopped before the write-cost rounds: its hub would otherwise read every appended event
    // of one table and none of the other's.
    drop(server);

    let write_cost = write_cost(&bench, fan_out_account).await;

    print_fan_out(&[&alone, &crowd], bench.writer_cost);
    print_catch_up(&catch_up, [&copy_before, &copy_after]);
    print_write_cost(&write_cost);
}

/// What every part of the run shares.
struct Bench {
    url: String,
    /// For set-up and the statistics reads, apart from every measured pool.
    pool: DbPool,
    customers: Arc<Vec<Customer>>,
    institution: InstitutionId,
    ticks_per_second: f64,
    /// Transactions, as PostgreSQL counts them, that writing one event costs the writer.
    writer_cost: f64,
}

/// One customer with one connection, as the fan-out's events describe it.
struct Customer {
    id: CustomerId,
    external_id: String,
    connection: ConnectionId,
    item: String,
}

impl Customer {
    /// Customer `n`, with fresh ids.
    fn new(n: usize) -> Self {
        Self {
            id: CustomerId::generate(),
            external_id: format!("customer-{n}"),
            connection: ConnectionId::generate(),
            item: format!("bench-item-{n}"),
        }
    }

    /// The STATUS_CHANGE that a failed refresh appends (ACTIVE to RECONNECT_REQUIRED, login
    /// required), with the fields `transition_events` gives it.
    fn status_change(&self, institution: InstitutionId) -> NewEvent {
        let mut details = serde_json::Map::new();
        details.insert("serviceProvider".into(), "PLAID".into());
        details.insert(
            "serviceProviderConnectionId".into(),
            self.item.clone().into(),
        );
        NewEvent {
            event_type: EventType::BankLinkingConnectionStatusChange,
            payload: EventPayload {
                customer_id: Some(self.id),
                external_customer_id: Some(self.external_id.clone()),
                connection_id: Some(self.connection),
                institution_id: Some(institution),
                old_status: Some(ConnectionStatus::Active),
                new_status: Some(ConnectionStatus::ReconnectRequired),
                new_status_reason: Some(Some(StatusReason::LoginRequired)),
                active_duplicate_connection_id: Some(None),
                service_provider_details: details,
                ..EventPayload::default()
            },
        }
    }
}

/// A tenant account and its API key.
async fn account(pool: &DbPool, name: &str) -> (AccountId, String) {
    let mut conn = store::connect(pool).await.expect("connection");
    let (id, key) = store::accounts::create(&mut conn, name)
        .await
        .expect("account");
    (id, key.expose().to_string())
}

/// Runs one statement on its own, panicking with it if it fails.
async fn sql(pool: &DbPool, statement: &str) {
    // Scoped: its blanket `load` would shadow the atomics' elsewhere.
    use diesel_async::RunQueryDsl;
    let mut conn = store::connect(pool).await.expect("connection");
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// The server and what it costs

/// `linkstate serve` on free ports, killed when dropped.
struct Server {
    child: Child,
    grpc: u16,
    /// Its log (warnings and errors), shown if it does not come up.
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Starts the binary on the database and waits until it answers `/readyz`.
    async fn start(database_url: &str) -> Self {
        let (grpc, http) = (free_port(), free_port());
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(BINARY)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("LINKSTATE_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
            .env("LINKSTATE_HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("LINKSTATE_ENCRYPTION_KEY", Cipher::generate_key())
            .env("LINKSTATE_MAX_STREAMS", MAX_STREAMS.to_string())
            .env("LINKSTATE_MAX_STREAMS_PER_ACCOUNT", MAX_STREAMS.to_string())
            .env("LINKSTATE_RATE_LIMIT", "0")
            .env("LINKSTATE_EVENT_POLL_INTERVAL", POLL_INTERVAL)
            // No connection exists, so nothing calls Plaid; should anything try, it fails here.
            .env("PLAID_BASE_URL", "http://127.0.0.1:9")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("linkstate starts");
        let server = Self { child, grpc, log };
        server.wait_ready(http).await;
        server
    }

    /// Waits up to 10 s for `/readyz`; shows the server's log if it never comes.
    async fn wait_ready(&self, http: u16) {
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{http}/readyz")).await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        panic!("linkstate not ready in 10 s:\n{log}");
    }

    /// Its process id, for /proc.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new gRPC channel (one HTTP/2 connection) to it.
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("gRPC connects")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("port 0")
        .local_addr()
        .expect("bound")
        .port()
}

/// The kernel's clock tick, in which /proc reports CPU time.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU time of process `pid` so far, in clock ticks; None once it is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'; utime and
    // stime, fields 14 and 15, are then the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 1..]
        .split_whitespace()
        .collect();
    let field = |n: usize| fields[n].parse::<u64>().expect("ticks");
    Some(field(11) + field(12))
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/<pid>/status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// The whole machine's (busy, total) CPU ticks so far, across all cores.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|n| n.parse().expect("ticks"))
        .collect();
    // idle and iowait are the 4th and 5th.
    let total: u64 = ticks.iter().sum();
    (total - ticks[3] - ticks[4], total)
}

/// Counters read at one instant.
struct Sample {
    at: Instant,
    db_transactions: i64,
    writer_events: u64,
    server_ticks: u64,
    bench_ticks: u64,
    /// CPU ticks of each PostgreSQL backend connected to the bench database, by pid.
    backend_ticks: HashMap<u32, u64>,
    machine: (u64, u64),
}

/// Reads every counter now: the database's transactions, the writer's events, and CPU time.
async fn sample(bench: &Bench, server_pid: u32, writer_events: &AtomicU64) -> Sample {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut conn = store::connect(&bench.pool).await.expect("connection");
    let db_transactions = db_transactions(&mut conn).await;
    let backends =
        diesel::sql_query("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .load::<Backend>(&mut conn)
            .await
            .expect("pg_stat_activity");
    Sample {
        at: Instant::now(),
        db_transactions,
        writer_events: writer_events.load(Ordering::Relaxed),
        server_ticks: cpu_ticks(server_pid).expect("the server runs"),
        bench_ticks: cpu_ticks(std::process::id()).expect("/proc/self"),
        // A backend may exit between the query and the read: it is left out.
        backend_ticks: backends
            .iter()
            .filter_map(|b| Some((b.pid as u32, cpu_ticks(b.pid as u32)?)))
            .collect(),
        machine: machine_ticks(),
    }
}

/// Transactions committed and rolled back in the bench database so far, as published: a busy
/// backend publishes its counts about every second, an idle one up to 10 s late.
async fn db_transactions(conn: &mut AsyncPgConnection) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Transactions {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .get_result::<Transactions>(conn)
    .await
    .expect("pg_stat_database")
    .n
}

/// What the machine did between two samples.
struct Usage {
    db_per_second: f64,
    writer_per_second: f64,
    /// Cores' worth of CPU: 1.0 is one core fully busy.
    server_cores: f64,
    bench_cores: f64,
    /// The bench database's backends that were there at both ends (PostgreSQL's own
    /// background processes, shared by every database, are not counted).
    backend_cores: f64,
    /// Of all cores.
    machine_busy: f64,
}

impl Usage {
    /// Rates between two samples.
    fn between(bench: &Bench, start: &Sample, end: &Sample) -> Self {
        let seconds = (end.at - start.at).as_secs_f64();
        let cores = |ticks: u64| ticks as f64 / bench.ticks_per_second / seconds;
        Self {
            db_per_second: (end.db_transactions - start.db_transactions) as f64 / seconds,
            writer_per_second: (end.writer_events - start.writer_events) as f64 / seconds
                * bench.writer_cost,
            server_cores: cores(end.server_ticks - start.server_ticks),
            bench_cores: cores(end.bench_ticks - start.bench_ticks),
            backend_cores: cores(
                end.backend_ticks
                    .iter()
                    .filter_map(|(pid, ticks)| Some(ticks - start.backend_ticks.get(pid)?))
                    .sum(),
            ),
            machine_busy: (end.machine.0 - start.machine.0) as f64
                / (end.machine.1 - start.machine.1).max(1) as f64,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out

/// One fan-out phase.
struct FanOut {
    subscribers: String,
    written: usize,
    /// From the first write to the last commit (the pace is `RATE`; more means it fell behind).
    writing: Duration,
    groups: Vec<Group>,
    /// Subscribers open, nothing written.
    idle: Usage,
    usage: Usage,
    server_rss_kib: u64,
}

/// Subscribers of one kind in a phase, and what they received.
struct Group {
    label: String,
    expected: usize,
    received: usize,
    missed: usize,
    unexpected: usize,
    /// Receipt minus commit, of every expected event received, sorted.
    latencies: Vec<Duration>,
}

/// One appended event: its id, its customer and when its COMMIT returned.
struct Written {
    id: Uuid,
    customer: usize,
    committed: Instant,
}

/// One fan-out phase: opens the subscribers, writes at `RATE` for `WARM_UP + MEASURED`,
/// waits for the deliveries, and checks each subscriber's events against what was written.
async fn fan_out(
    bench: &Bench,
    server: &Server,
    account: AccountId,
    key: &str,
    with_filtered: bool,
) -> FanOut {
    // Subscriber i is for customer i; the unfiltered ones come last.
    let filters: Vec<Option<usize>> = (0..if with_filtered { CUSTOMERS } else { 0 })
        .map(Some)
        .chain((0..UNFILTERED).map(|_| None))
        .collect();
    let ready = Arc::new(AtomicUsize::new(0));
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new(filters.iter().map(|_| AtomicUsize::new(0)).collect());
    let stop = CancellationToken::new();
    let mut subscribers = Vec::with_capacity(filters.len());
    // A channel per `PER_CHANNEL` subscribers; filtered and unfiltered ones never share one.
    let mut channel = None;
    for (n, filter) in filters.iter().enumerate() {
        let first_unfiltered = filter.is_none() && (n == 0 || filters[n - 1].is_some());
        if n % PER_CHANNEL == 0 || first_unfiltered {
            channel = Some(server.channel().await);
        }
        let client = EventServiceClient::new(channel.clone().expect("a channel"));
        let request = proto::StreamEventsRequest {
            customer_id: filter.map_or(String::new(), |c| bench.customers[c].id.to_string()),
            heartbeat_seconds: HEARTBEAT_SECONDS,
            ..Default::default()
        };
        subscribers.push(tokio::spawn(subscribe(
            client,
            authed(key, request),
            ready.clone(),
            received.clone(),
            n,
            stop.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < filters.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} streams ready after 60 s",
            ready.load(Ordering::Relaxed),
            filters.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(STATS_SETTLE).await;
    let written_events = Arc::new(AtomicU64::new(0));
    let idle_start = sample(bench, server.pid(), &written_events).await;
    tokio::time::sleep(IDLE).await;
    let idle_end = sample(bench, server.pid(), &written_events).await;

    let writer_pool = store::pool(&bench.url, WRITER_CONNECTIONS).expect("writer pool");
    let started = Instant::now() + Duration::from_millis(100);
    let count = (RATE as f64 * (WARM_UP + MEASURED).as_secs_f64()) as usize;
    let writer = tokio::spawn(write_paced(
        writer_pool,
        account,
        bench.customers.clone(),
        bench.institution,
        started,
        count,
        written_events.clone(),
    ));
    tokio::time::sleep_until((started + WARM_UP).into()).await;
    let start = sample(bench, server.pid(), &written_events).await;
    tokio::time::sleep_until((started + WARM_UP + MEASURED).into()).await;
    let end = sample(bench, server.pid(), &written_events).await;
    let server_rss_kib = rss_kib(server.pid());
    let written = writer.await.expect("writer");
    let writing = written
        .iter()
        .map(|w| w.committed)
        .max()
        .expect("written")
        .saturating_duration_since(started);

    // Every subscriber's share, then the wait for it to arrive.
    let mut per_customer = vec![0; CUSTOMERS];
    for w in &written {
        per_customer[w.customer] += 1;
    }
    let expected: Vec<usize> = filters
        .iter()
        .map(|f| f.map_or(written.len(), |c| per_customer[c]))
        .collect();
    let mut last_progress = (0, Instant::now());
    loop {
        let counts: Vec<usize> = received.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        if counts.iter().zip(&expected).all(|(got, want)| got >= want) {
            break;
        }
        let total: usize = counts.iter().sum();
        if total > last_progress.0 {
            last_progress = (total, Instant::now());
        } else if last_progress.1.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut receipts = Vec::with_capacity(subscribers.len());
    for subscriber in subscribers {
        receipts.push(subscriber.await.expect("subscriber"));
    }

    let commits: HashMap<Uuid, &Written> = written.iter().map(|w| (w.id, w)).collect();
    let mut groups = Vec::new();
    for (label, filtered) in [("filtered by customerId", true), ("unfiltered", false)] {
        if filtered && !with_filtered {
            continue;
        }
        let mut group = Group {
            label: label.to_string(),
            expected: 0,
            received: 0,
            missed: 0,
            unexpected: 0,
            latencies: Vec::new(),
        };
        for (filter, got) in filters.iter().zip(&receipts) {
            if filter.is_some() != filtered {
                continue;
            }
            let mut seen = HashSet::new();
            for (id, at) in got {
                let id: Uuid = id.parse().expect("event id");
                match commits.get(&id) {
                    Some(w) if filter.is_none_or(|c| c == w.customer) && seen.insert(id) => {
                        group
                            .latencies
                            .push(at.saturating_duration_since(w.committed));
                    }
                    // Another customer's, one not written in the phase, or a duplicate.
                    _ => group.unexpected += 1,
                }
            }
            let want = filter.map_or(written.len(), |c| per_customer[c]);
            group.expected += want;
            group.received += got.len();
            group.missed += want - seen.len();
        }
        group.latencies.sort();
        groups.push(group);
    }
    FanOut {
        subscribers: if with_filtered {
            format!(
                "{} filtered + {UNFILTERED} unfiltered",
                thousands(CUSTOMERS as f64)
            )
        } else {
            format!("{UNFILTERED} unfiltered")
        },
        written: written.len(),
        writing,
        groups,
        idle: Usage::between(bench, &idle_start, &idle_end),
        usage: Usage::between(bench, &start, &end),
        server_rss_kib,
    }
}

/// One live subscriber: counts a ready stream at its first message, then keeps each event's
/// id and arrival time until told to stop.
async fn subscribe(
    mut client: EventServiceClient<Channel>,
    request: tonic::Request<proto::StreamEventsRequest>,
    ready: Arc<AtomicUsize>,
    received: Arc<Vec<AtomicUsize>>,
    index: usize,
    stop: CancellationToken,
) -> Vec<(String, Instant)> {
    let mut stream = client
        .stream_events(request)
        .await
        .expect("StreamEvents")
        .into_inner();
    let mut events = Vec::new();
    let mut first = true;
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return events,
            message = stream.message() => message,
        };
        let message = match message {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the server ended a stream"),
            Err(status) => panic!("stream failed: {status}"),
        };
        if first {
            first = false;
            ready.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(Message::Event(event)) = message.message {
            events.push((event.event_id, Instant::now()));
            received[index].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Appends `count` events at `RATE` per second from `started`, round-robin over the customers,
/// each in its own transaction followed by a NOTIFY, as another replica would.
async fn write_paced(
    pool: DbPool,
    account: AccountId,
    customers: Arc<Vec<Customer>>,
    institution: InstitutionId,
    started: Instant,
    count: usize,
    written_events: Arc<AtomicU64>,
) -> Vec<Written> {
    let mut ticks = tokio::time::interval_at(started.into(), Duration::from_secs(1) / RATE);
    let mut writes = Vec::with_capacity(count);
    for n in 0..count {
        ticks.tick().await;
        let (pool, customers, written_events) =
            (pool.clone(), customers.clone(), written_events.clone());
        // Its own task, so that a slow commit never holds back the pace.
        writes.push(tokio::spawn(async move {
            let customer = n % CUSTOMERS;
            let event = customers[customer].status_change(institution);
            let mut conn = store::connect(&pool).await.expect("writer connection");
            let (id, committed) = write_one(&mut conn, account, event).await;
            written_events.fetch_add(1, Ordering::Relaxed);
            Written {
                id,
                customer,
                committed,
            }
        }));
    }
    let mut written = Vec::with_capacity(count);
    for write in writes {
        written.push(write.await.expect("write"));
    }
    written
}

/// Appends one event in its own transaction, then NOTIFYs, as a replica's writer and hub do;
/// answers its id and when its COMMIT returned.
async fn write_one(
    conn: &mut AsyncPgConnection,
    account: AccountId,
    event: NewEvent,
) -> (Uuid, Instant) {
    let ids = conn
        .transaction::<_, StoreError, _>(async |conn| events::append(conn, account, &[event]).await)
        .await
        .expect("append");
    let committed = Instant::now();
    events::notify_peers(conn, "bench-writer")
        .await
        .expect("NOTIFY");
    (ids[0].0, committed)
}

/// What writing one event costs the database, in transactions as PostgreSQL counts them:
/// `CALIBRATION` events written as in the fan-out on a connection of their own, closed before
/// the count is read again, since a backend publishes all it still holds when it exits.
async fn writer_cost(bench: &Bench, account: AccountId) -> f64 {
    let before = db_transactions(&mut store::connect(&bench.pool).await.expect("conn")).await;
    {
        let mut conn = AsyncPgConnection::establish(&bench.url)
            .await
            .expect("writer connection");
        for n in 0..CALIBRATION {
            let event = bench.customers[n % CUSTOMERS].status_change(bench.institution);
            write_one(&mut conn, account, event).await;
        }
    }
    // The backend exits after the client has gone; give it a moment to publish.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = before;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = db_transactions(&mut store::connect(&bench.pool).await.expect("conn")).await;
        if after - before >= CALIBRATION as i64 {
            // Published; one more moment for anything else still on its way.
            tokio::time::sleep(Duration::from_millis(500)).await;
            after = db_transactions(&mut store::connect(&bench.pool).await.expect("conn")).await;
            break;
        }
    }
    (after - before) as f64 / CALIBRATION as f64
}

// ---------------------------------------------------------------------------------------------
// Catch-up

/// The catch-up run.
struct CatchUp {
    events: usize,
    bytes: usize,
    wall: Duration,
    /// How long storing the events took (set-up, not the measurement).
    insert: Duration,
    payload_bytes: usize,
    usage: Usage,
}

/// Inserts `STORED` events for `account` in `INSERT_TRANSACTIONS` transactions; answers how
/// long it took and the size of one payload.
async fn store_events(bench: &Bench, account: AccountId) -> (Duration, usize) {
    use diesel_async::RunQueryDsl;
    // One payload as `append` stores it, with recognizable stand-ins that each row replaces
    // with its own customer, connection and item (as many of each as the fan-out has).
    let stand_in = Customer {
        id: CustomerId(Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111)),
        external_id: "bench-external-id".into(),
        connection: ConnectionId(Uuid::from_u128(0x2222_2222_2222_2222_2222_2222_2222_2222)),
        item: "bench-item-id".into(),
    };
    let template = serde_json::to_string(&stand_in.status_change(bench.institution).payload)
        .expect("payload json");
    let statement = format!(
        "INSERT INTO events (event_id, account_id, event_type, customer_id, \
         external_customer_id, connection_id, version, payload) \
         SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') \
                 || '7' || substr(md5(n::text || random()::text), 1, 19))::uuid, \
                $1, $2, c.customer, c.external, c.connection, $3, \
                replace(replace(replace(replace($4, '{}', c.customer::text), '{}', \
                c.connection::text), '{}', c.external), '{}', c.item)::json \
         FROM generate_series($5::bigint, $6::bigint) n, \
         LATERAL (SELECT md5('customer-' || n % {CUSTOMERS})::uuid AS customer, \
                         md5('connection-' || n % {CUSTOMERS})::uuid AS connection, \
                         'customer-' || n % {CUSTOMERS} AS external, \
                         'item-' || n % {CUSTOMERS} AS item) c",
        stand_in.id, stand_in.connection, stand_in.external_id, stand_in.item
    );
    let per_transaction = STORED / INSERT_TRANSACTIONS;
    let mut conn = store::connect(&bench.pool).await.expect("connection");
    let started = Instant::now();
    for t in 0..INSERT_TRANSACTIONS {
        // One statement, one transaction: committed, hence visible to readers, when it returns.
        let first = (t * per_transaction) as i64;
        diesel::sql_query(&statement)
            .bind::<diesel::sql_types::Uuid, _>(account.0)
            .bind::<diesel::sql_types::Text, _>(
                EventType::BankLinkingConnectionStatusChange.as_str(),
            )
            .bind::<diesel::sql_types::Text, _>(EVENT_VERSION)
            .bind::<diesel::sql_types::Text, _>(&template)
            .bind::<diesel::sql_types::BigInt, _>(first)
            .bind::<diesel::sql_types::BigInt, _>(first + per_transaction as i64 - 1)
            .execute(&mut conn)
            .await
            .expect("insert stored events");
    }
    (started.elapsed(), template.len())
}

/// One baseline read of the stored events: what a client gets from PostgreSQL alone.
struct CopyOut {
    rows: usize,
    bytes: usize,
    wall: Duration,
}

/// Reads the stored events of `account` with `COPY (SELECT <the stream's columns> ...) TO
/// STDOUT`, in the stream's order, on a fresh connection, counting the bytes a client receives.
async fn copy_out(bench: &Bench, account: AccountId) -> CopyOut {
    use futures::TryStreamExt;
    let (client, connection) = tokio_postgres::connect(&bench.url, tokio_postgres::NoTls)
        .await
        .expect("baseline connects");
    let connection = tokio::spawn(connection);
    // The columns `store::events::read_after` selects, minus its running byte sum.
    let statement = format!(
        "COPY (SELECT transaction_id, sequence, event_id, account_id, event_type, created_at, \
         version, payload FROM events WHERE account_id = '{}' \
         ORDER BY transaction_id, sequence) TO STDOUT",
        account.0
    );
    let started = Instant::now();
    let out = client.copy_out(&statement).await.expect("COPY");
    futures::pin_mut!(out);
    let (mut rows, mut bytes) = (0, 0);
    while let Some(chunk) = out.try_next().await.expect("COPY data") {
        bytes += chunk.len();
        rows += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    let wall = started.elapsed();
    drop(client);
    let _ = connection.await;
    assert_eq!(rows, STORED, "COPY read every stored event");
    CopyOut { rows, bytes, wall }
}

/// Streams every stored event from the earliest cursor and times it.
async fn catch_up(
    bench: &Bench,
    server: &Server,
    key: &str,
    (insert, payload_bytes): (Duration, usize),
) -> CatchUp {
    let mut client = EventServiceClient::new(server.channel().await);
    let unused = AtomicU64::new(0);
    let start = sample(bench, server.pid(), &unused).await;
    let started = Instant::now();
    let mut stream = client
        .stream_events(authed(
            key,
            proto::StreamEventsRequest {
                from_earliest: true,
                ..Default::default()
            },
        ))
        .await
        .expect("StreamEvents")
        .into_inner();
    let (mut events, mut bytes, mut last) = (0, 0, Cursor::START);
    while events < STORED {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("the catch-up stalled for 30 s")
            .expect("stream")
            .expect("the stream ended early");
        bytes += message.encoded_len();
        if let Some(Message::Event(event)) = message.message {
            // Decoded down to its cursor, which must keep rising: no duplicate, no step back.
            let cursor = Cursor::decode(&event.cursor).expect("cursor");
            assert!(cursor > last, "cursors out of order");
            last = cursor;
            events += 1;
        }
    }
    let wall = started.elapsed();
    let end = sample(bench, server.pid(), &unused).await;
    CatchUp {
        events,
        bytes,
        wall,
        insert,
        payload_bytes,
        usage: Usage::between(bench, &start, &end),
    }
}

// ---------------------------------------------------------------------------------------------
// Write cost

/// The tables compared.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    /// `events`, keyed by (transaction xid8, sequence).
    Ordered,
    /// `bench_plain.events`, keyed by a bigserial.
    Plain,
}

/// All rounds into one table.
struct Appends {
    table: Table,
    appended: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

/// Creates the plain table, then runs `ROUNDS` rounds into each table.
async fn write_cost(bench: &Bench, account: AccountId) -> [Appends; 2] {
    // Both tables start empty and settled.
    sql(&bench.pool, "TRUNCATE events").await;
    sql(&bench.pool, "CREATE SCHEMA bench_plain").await;
    // The same columns and defaults, without the two ordering columns and their key; the same
    // other indexes, with the bigserial where the ordering key was.
    sql(
        &bench.pool,
        "CREATE TABLE bench_plain.events (id bigserial PRIMARY KEY, \
         LIKE public.events INCLUDING DEFAULTS)",
    )
    .await;
    sql(
        &bench.pool,
        "ALTER TABLE bench_plain.events DROP COLUMN sequence, DROP COLUMN transaction_id",
    )
    .await;
    for index in [
        "CREATE UNIQUE INDEX ON bench_plain.events (event_id)",
        "CREATE INDEX ON bench_plain.events (account_id, id)",
        "CREATE INDEX ON bench_plain.events (created_at)",
    ] {
        sql(&bench.pool, index).await;
    }
    let mut results = [Table::Ordered, Table::Plain].map(|table| Appends {
        table,
        appended: 0,
        wall: Duration::ZERO,
        latencies: Vec::new(),
    });
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            sql(&bench.pool, "VACUUM ANALYZE").await;
            sql(&bench.pool, "CHECKPOINT").await;
            let (wall, latencies) = append_round(bench, account, results[i].table).await;
            results[i].appended += latencies.len();
            results[i].wall += wall;
            results[i].latencies.extend(latencies);
        }
    }
    for result in &mut results {
        result.latencies.sort();
    }
    results
}

/// `WRITERS` tasks append one event per transaction into `table` for `ROUND`; answers the
/// round's wall time and each append's time.
async fn append_round(
    bench: &Bench,
    account: AccountId,
    table: Table,
) -> (Duration, Vec<Duration>) {
    use diesel_async::RunQueryDsl;
    let pool = store::pool(&bench.url, WRITERS).expect("pool");
    // Every connection opened (and pointed at its table) before the clock starts.
    let mut conns = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let mut conn = store::connect(&pool).await.expect("connection");
        if table == Table::Plain {
            diesel::sql_query("SET search_path TO bench_plain")
                .execute(&mut conn)
                .await
                .expect("search_path");
        }
        conns.push(conn);
    }
    let started = Instant::now();
    let deadline = started + ROUND;
    let writers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let customers = bench.customers.clone();
            let institution = bench.institution;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = w;
                while Instant::now() < deadline {
                    let event = customers[n % CUSTOMERS].status_change(institution);
                    n += WRITERS;
                    let began = Instant::now();
                    conn.transaction::<_, StoreError, _>(async |conn| {
                        events::append(conn, account, &[event]).await
                    })
                    .await
                    .expect("append");
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.await.expect("writer"));
    }
    (started.elapsed(), latencies)
}

// ---------------------------------------------------------------------------------------------
// Output

/// The value at quantile `q` of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `n` with thousands separators, as the tables in BENCHMARKS.md write numbers.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if n < -0.5 { format!("-{out}") } else { out }
}

/// The fan-out's two tables and its verdict.
fn print_fan_out(phases: &[&FanOut], writer_cost: f64) {
    println!(
        "\nFan-out: one linkstate serve process; the bench process appends one \
         STATUS_CHANGE per transaction at {RATE}/s over {CUSTOMERS} customers, then NOTIFYs \
         (as another replica's hub would); {} s of writing per phase ({} s warm-up, then {} s \
         measured); subscribers on one gRPC channel per {PER_CHANNEL}, heartbeat every \
         {HEARTBEAT_SECONDS} s; latency = receipt - commit of each expected event\n",
        (WARM_UP + MEASURED).as_secs(),
        WARM_UP.as_secs(),
        MEASURED.as_secs(),
    );
    println!(
        "| subscribers | of them | events written | deliveries expected | received | missed | unexpected | p50 | p99 | max |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase in phases {
        for group in &phase.groups {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                phase.subscribers,
                group.label,
                thousands(phase.written as f64),
                thousands(group.expected as f64),
                thousands(group.received as f64),
                group.missed,
                group.unexpected,
                ms(percentile(&group.latencies, 0.50)),
                ms(percentile(&group.latencies, 0.99)),
                ms(group.latencies.last().copied().unwrap_or_default()),
            );
        }
    }
    println!(
        "\nLoad over the {} s measured window of each phase, and over {} s with the subscribers \
         open before any writing (idle); the writer's share is {writer_cost:.2} transactions per \
         event, as PostgreSQL counted {CALIBRATION} events written alone before the server \
         started; CPU in cores (1.00 is one core busy; the machine has {} cores), RSS at the end \
         of the window\n",
        MEASURED.as_secs(),
        IDLE.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "| subscribers | DB transactions/s, idle | DB transactions/s, writing | of which the writer's | the rest | server CPU, idle | server CPU, writing | server RSS | PostgreSQL backends' CPU | bench process CPU | machine busy | writing took |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase in phases {
        let usage = &phase.usage;
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} MiB | {:.2} | {:.2} | {:.0}% | {:.2} s |",
            phase.subscribers,
            thousands(phase.idle.db_per_second),
            thousands(usage.db_per_second),
            thousands(usage.writer_per_second),
            thousands(usage.db_per_second - usage.writer_per_second),
            phase.idle.server_cores,
            usage.server_cores,
            phase.server_rss_kib as f64 / 1024.0,
            usage.backend_cores,
            usage.bench_cores,
            usage.machine_busy * 100.0,
            phase.writing.as_secs_f64(),
        );
    }
    let worst = phases
        .iter()
        .flat_map(|p| &p.groups)
        .map(|g| percentile(&g.latencies, 0.99))
        .max()
        .unwrap_or_default();
    let missed: usize = phases
        .iter()
        .flat_map(|p| &p.groups)
        .map(|g| g.missed)
        .sum();
    let rest = |p: &FanOut| p.usage.db_per_second - p.usage.writer_per_second;
    let (first, last) = (phases[0], phases[phases.len() - 1]);
    // What the filtered subscribers add, the second phase less the first, per thousand.
    let thousands_added = CUSTOMERS as f64 / 1000.0;
    println!(
        "\nper 1,000 subscribers added (second phase less first, over {} filtered): server CPU \
         {:.3} cores writing, {:.3} idle; server RSS {:.1} MiB",
        thousands(CUSTOMERS as f64),
        (last.usage.server_cores - first.usage.server_cores) / thousands_added,
        (last.idle.server_cores - first.idle.server_cores) / thousands_added,
        (last.server_rss_kib as f64 - first.server_rss_kib as f64) / 1024.0 / thousands_added,
    );
    println!(
        "\nworst p99 {} (goal: under 50 ms: {}); missed {missed} (expected 0); database \
         transactions/s besides the writer's, with vs without the filtered subscribers: {} vs {} \
         (goal: no growth with subscribers)",
        ms(worst),
        if worst < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        },
        thousands(rest(last)),
        thousands(rest(first)),
    );
}

/// The catch-up's table, its baseline and its verdict.
fn print_catch_up(run: &CatchUp, copies: [&CopyOut; 2]) {
    println!(
        "\nCatch-up: one StreamEvents from the earliest cursor over {} stored events of its \
         tenant (STATUS_CHANGE, {}-byte JSON payloads, inserted with SQL in {INSERT_TRANSACTIONS} \
         transactions in {:.1} s, then VACUUM ANALYZE), timed from the request until the client \
         has decoded the last event; MB/s counts the encoded protobuf messages. Baseline, just \
         before and just after: COPY (SELECT the stream's columns FROM events WHERE account_id \
         = ... ORDER BY transaction_id, sequence) TO STDOUT read by a tokio-postgres client; \
         MB/s counts the COPY text received\n",
        thousands(STORED as f64),
        run.payload_bytes,
        run.insert.as_secs_f64(),
    );
    println!(
        "| reader | events received | wall time | events/s | MB/s | server CPU | PostgreSQL backends' CPU | bench process CPU | machine busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, copy) in ["COPY, before", "COPY, after"].iter().zip(copies) {
        println!(
            "| {label} | {} | {:.2} s | {} | {:.1} | | | | |",
            thousands(copy.rows as f64),
            copy.wall.as_secs_f64(),
            thousands(copy.rows as f64 / copy.wall.as_secs_f64()),
            copy.bytes as f64 / 1e6 / copy.wall.as_secs_f64(),
        );
    }
    let rate = run.events as f64 / run.wall.as_secs_f64();
    let mb_per_second = run.bytes as f64 / 1e6 / run.wall.as_secs_f64();
    println!(
        "| StreamEvents | {} | {:.2} s | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0}% |",
        thousands(run.events as f64),
        run.wall.as_secs_f64(),
        thousands(rate),
        mb_per_second,
        run.usage.server_cores,
        run.usage.backend_cores,
        run.usage.bench_cores,
        run.usage.machine_busy * 100.0,
    );
    // The faster of the two baseline reads.
    let baseline = copies
        .iter()
        .map(|c| c.bytes as f64 / 1e6 / c.wall.as_secs_f64())
        .fold(0.0, f64::max);
    let baseline_rate = copies
        .iter()
        .map(|c| c.rows as f64 / c.wall.as_secs_f64())
        .fold(0.0, f64::max);
    let ratio = mb_per_second / baseline;
    println!(
        "\n{} events/s, {mb_per_second:.1} MB/s: {ratio:.2}x the faster COPY's MB/s, {:.2}x its \
         rows/s (goal: 0.5x its MB/s or more: {})",
        thousands(rate),
        rate / baseline_rate,
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
}

/// The write-cost table and its ratio.
fn print_write_cost(results: &[Appends; 2]) {
    println!(
        "\nWrite cost of the ordering scheme: {WRITERS} concurrent writers, each calling \
         store::events::append with one event per transaction on its own connection, \
         {ROUNDS} rounds of {} s per table, alternating; the plain table is the same table with \
         a bigserial key instead of (transaction xid8, sequence), reached through search_path \
         so that the statement is the same\n",
        ROUND.as_secs()
    );
    println!("| table | appended | wall time | per second | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    let rate = |r: &Appends| r.appended as f64 / r.wall.as_secs_f64();
    for result in results {
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} |",
            match result.table {
                Table::Ordered => "events: key (transaction xid8, sequence), the service's",
                Table::Plain => "bench_plain.events: key bigserial",
            },
            thousands(result.appended as f64),
            result.wall.as_secs_f64(),
            thousands(rate(result)),
            ms(percentile(&result.latencies, 0.50)),
            ms(percentile(&result.latencies, 0.99)),
        );
    }
    println!(
        "\nratio, ordered / plain: {:.2}",
        rate(&results[0]) / rate(&results[1])
    );
}

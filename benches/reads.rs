//! Reads (issue 16): GetConnection, and ListTransactions (a page of 100 of a connection with
//! 10,000 transactions), each at 32 concurrent gRPC clients (a connection each) for 10 s, against pgbench running,
//! at 32 clients on the same database in the same run, exactly the SQL linkstate sent for each
//! call: the statements are read from `pg_stat_statements` after the gRPC run (their count per
//! call shows any N+1), their parameters filled with the values the calls used, and run with
//! `pgbench -M prepared` (the database's best for that SQL). Goal: each read at least 0.5x of
//! its pgbench rate.
//!
//! Each read is driven twice: by tonic clients (what a Rust service calling linkstate runs), and
//! by a raw HTTP/2 client that sends the request encoded once and checks each answer's status,
//! grpc-status and length against the first answer, which it decoded and checked in full (as
//! h2load does): a load generator as light on the shared 2 cores as pgbench's C client.
//!
//! Run: `cargo bench --bench reads` (uses DATABASE_URL if set, else the embedded test cluster,
//! which preloads pg_stat_statements).

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use linkstate::proto::{self, import_result};
use linkstate::store;
use linkstate_testing::{TestApp, authed};
use tonic::transport::Channel;

/// The allocator the `linkstate` binary runs with, so that the server in this process allocates
/// as it does in production.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CLIENTS: usize = 32;
const SECONDS: u64 = 10;
const TRANSACTIONS: usize = 10_000;
const PAGE: i32 = 100;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// What the bench's calls are about: the values linkstate bound into its SQL.
struct Subject {
    key: String,
    account_id: String,
    connection_id: String,
}

async fn run() {
    let app = TestApp::start_unlimited().await;
    sql(&app, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await;
    let (account_id, key) = app.account("bench").await;
    let connection_id = import(&app, &key).await;
    // The planner's statistics of the imported rows, as autovacuum gives them within a minute:
    // without them, a run that starts sooner reads the page by sorting the whole connection
    // (about 1.6 ms a call, in linkstate and pgbench alike).
    sql(&app, "ANALYZE").await;
    let subject = Arc::new(Subject {
        key,
        account_id: account_id.to_string(),
        connection_id,
    });
    // One HTTP/2 connection per client, as 32 client processes (or pgbench's 32 clients)
    // would have: one shared connection is served by one task and would bound the server.
    let mut channels = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        channels.push(app.channel().await);
    }
    println!(
        "\nReads: {CLIENTS} concurrent gRPC clients, one HTTP/2 connection each, for {SECONDS} s each; baseline: pgbench -M prepared -c {CLIENTS} -j 2 -T {SECONDS} running the statements linkstate sent per call\n"
    );
    let mut rows = Vec::new();
    for read in [Read::GetConnection, Read::ListTransactions] {
        // Warm: pools open, statements prepared.
        drive(&channels, &subject, read, Duration::from_secs(1)).await;
        sql(&app, "SELECT pg_stat_statements_reset()").await;
        let run = drive(&channels, &subject, read, Duration::from_secs(SECONDS)).await;
        let statements = statements_of(&app, run.latencies.len()).await;
        println!("{read:?}: statements per call (pg_stat_statements):");
        for (text, calls) in &statements {
            println!(
                "  {:.2} x {}",
                *calls as f64 / run.latencies.len() as f64,
                one_line(text)
            );
        }
        let script: String = statements
            .iter()
            .map(|(text, _)| format!("{};\n", one_line(&fill(text, &subject))))
            .collect();
        let raw = raw::drive(
            app.app.grpc_addr,
            &subject,
            read,
            Duration::from_secs(SECONDS),
        )
        .await;
        let baseline = pgbench(&app, &script).await;
        rows.push((read, "tonic", run, baseline));
        rows.push((read, "raw HTTP/2", raw, baseline));
    }
    println!(
        "\n| read | client | calls | per second | p50 | p99 | pgbench, same SQL, per second | ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (read, client, run, baseline) in &rows {
        let mut sorted = run.latencies.clone();
        sorted.sort();
        let rate = sorted.len() as f64 / run.wall.as_secs_f64();
        println!(
            "| {read:?} | {client} | {} | {rate:.0} | {} | {} | {baseline:.0} | {:.2} |",
            sorted.len(),
            ms(percentile(&sorted, 0.50)),
            ms(percentile(&sorted, 0.99)),
            rate / baseline
        );
    }
    println!("\ngoal: each ratio at least 0.5");
    app.stop().await;
}

/// The two reads measured.
#[derive(Clone, Copy, Debug)]
enum Read {
    GetConnection,
    ListTransactions,
}

struct Run {
    wall: Duration,
    latencies: Vec<Duration>,
}

/// `CLIENTS` tasks calling `read` back to back for `length`.
async fn drive(channels: &[Channel], subject: &Arc<Subject>, read: Read, length: Duration) -> Run {
    let started = Instant::now();
    let clients: Vec<_> = channels
        .iter()
        .map(|channel| {
            let (channel, subject) = (channel.clone(), subject.clone());
            tokio::spawn(async move {
                let mut connections =
                    proto::connection_service_client::ConnectionServiceClient::new(channel.clone());
                let mut data =
                    proto::financial_data_service_client::FinancialDataServiceClient::new(channel);
                let mut latencies = Vec::new();
                while started.elapsed() < length {
                    let call = Instant::now();
                    match read {
                        Read::GetConnection => {
                            connections
                                .get_connection(authed(
                                    &subject.key,
                                    proto::GetConnectionRequest {
                                        connection_id: subject.connection_id.clone(),
                                    },
                                ))
                                .await
                                .expect("GetConnection");
                        }
                        Read::ListTransactions => {
                            let page = data
                                .list_transactions(authed(
                                    &subject.key,
                                    proto::ListTransactionsRequest {
                                        connection_id: subject.connection_id.clone(),
                                        page_size: PAGE,
                                        ..Default::default()
                                    },
                                ))
                                .await
                                .expect("ListTransactions")
                                .into_inner();
                            assert_eq!(page.transactions.len(), PAGE as usize);
                        }
                    }
                    latencies.push(call.elapsed());
                }
                latencies
            })
        })
        .collect();
    gather(started, clients).await
}

/// Every client's latencies, once all have stopped; the wall time runs from `started`.
async fn gather(started: Instant, clients: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Run {
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("client"));
    }
    Run {
        wall: started.elapsed(),
        latencies,
    }
}

/// The statements this database ran about once per call or more since the reset, with their
/// counts, most frequent first.
async fn statements_of(app: &TestApp, calls: usize) -> Vec<(String, i64)> {
    #[derive(diesel::QueryableByName)]
    struct Statement {
        #[diesel(sql_type = diesel::sql_types::Text)]
        query: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        calls: i64,
    }
    let mut conn = store::connect(&app.pool).await.expect("connection");
    diesel::sql_query(
        "SELECT query, calls FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND calls >= $1 ORDER BY calls DESC",
    )
    .bind::<diesel::sql_types::BigInt, _>((calls / 2) as i64)
    .load::<Statement>(&mut conn)
    .await
    .expect("pg_stat_statements")
    .into_iter()
    .map(|s| (s.query, s.calls))
    .collect()
}

/// A statement from pg_stat_statements with its `$n` filled with the values linkstate bound
/// (diesel numbers them in the order it binds them; pg_stat_statements numbers the literals
/// it hides after them), each statement known by its table.
fn fill(text: &str, subject: &Subject) -> String {
    let key_hash = format!(
        "'\\x{}'::bytea",
        linkstate::domain::api_key::hash(&subject.key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let account = format!("'{}'::uuid", subject.account_id);
    let connection = format!("'{}'::uuid", subject.connection_id);
    let values: Vec<String> = if text.contains("\"api_keys\"") {
        vec![key_hash, "1".into()]
    } else if text.contains("FROM \"transactions\"") {
        vec![account, connection, (PAGE + 1).to_string()]
    } else if text.contains("\"connections\"") {
        // $4: the literal 'DELETED' of the duplicates' subquery, which pg_stat_statements
        // shows as a parameter.
        vec![account, connection, "1".into(), "'DELETED'".into()]
    } else {
        panic!("a statement the bench does not know: {text}");
    };
    // From the highest number down, so that $1 does not match inside $10.
    let mut filled = text.to_string();
    for (n, value) in values.iter().enumerate().rev() {
        filled = filled.replace(&format!("${}", n + 1), value);
    }
    filled
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// pgbench running `script` (one transaction per call's statements); answers its rate.
async fn pgbench(app: &TestApp, script: &str) -> f64 {
    let file = tempfile::NamedTempFile::new().expect("script file");
    std::fs::write(file.path(), script).expect("write script");
    let (path, url) = (file.path().to_owned(), app.database.url.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args([
                "-n",
                "-M",
                "prepared",
                "-c",
                &CLIENTS.to_string(),
                "-j",
                "2",
                "-T",
            ])
            .arg(SECONDS.to_string())
            .arg("-f")
            .arg(&path)
            .arg(&url)
            .output()
            .expect("pgbench runs (Debian: postgresql-client)")
    })
    .await
    .expect("pgbench thread");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{stdout}"))
}

/// Imports one item with `TRANSACTIONS` transactions and waits until all are stored.
async fn import(app: &TestApp, key: &str) -> String {
    let item = app.sim.create_item("ins_109508");
    app.sim.set_history(&item.item_id, TRANSACTIONS);
    app.sim.complete_historical(&item.item_id);
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![proto::ImportConnection {
                    service_provider: proto::service_provider::Value::Plaid as i32,
                    external_customer_id: "bench".into(),
                    access_token: item.access_token.expose().into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ))
        .await
        .expect("import")
        .into_inner();
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("import failed");
    };
    for _ in 0..1200 {
        let stored = app
            .count(&format!(
                "transactions WHERE connection_id = '{}'",
                connection.id
            ))
            .await;
        if stored as usize >= TRANSACTIONS {
            return connection.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the transactions were not stored in 120 s");
}

async fn sql(app: &TestApp, statement: &str) {
    let mut conn = store::connect(&app.pool).await.expect("connection");
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
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
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The raw HTTP/2 load generator.
mod raw {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::{BufMut, Bytes, BytesMut};
    use http::{HeaderValue, Method, Request, Uri};
    use linkstate::proto;
    use prost::Message;

    use super::{CLIENTS, PAGE, Read, Run, Subject};

    /// One call as sent on the wire: its path and its length-prefixed message, encoded once.
    struct Call {
        uri: Uri,
        authorization: HeaderValue,
        body: Bytes,
    }

    /// `CLIENTS` tasks, each on its own HTTP/2 connection, calling `read` back to back for
    /// `length`.
    pub async fn drive(addr: SocketAddr, subject: &Subject, read: Read, length: Duration) -> Run {
        let call = Arc::new(call(addr, subject, read));
        // Decoded and checked in full once; every later answer must be as long.
        let expected = first_answer(addr, &call, subject, read).await;
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move {
                    let mut sender = connect(addr).await;
                    let mut latencies = Vec::new();
                    while started.elapsed() < length {
                        let at = Instant::now();
                        let answer = one(&mut sender, &call).await;
                        assert_eq!(answer.len(), expected, "an answer of another length");
                        latencies.push(at.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        super::gather(started, clients).await
    }

    fn call(addr: SocketAddr, subject: &Subject, read: Read) -> Call {
        let (path, message) = match read {
            Read::GetConnection => (
                "linkstate.v1.ConnectionService/GetConnection",
                proto::GetConnectionRequest {
                    connection_id: subject.connection_id.clone(),
                }
                .encode_to_vec(),
            ),
            Read::ListTransactions => (
                "linkstate.v1.FinancialDataService/ListTransactions",
                proto::ListTransactionsRequest {
                    connection_id: subject.connection_id.clone(),
                    page_size: PAGE,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        };
        let mut body = BytesMut::with_capacity(5 + message.len());
        body.put_u8(0); // not compressed
        body.put_u32(message.len() as u32);
        body.put_slice(&message);
        Call {
            uri: format!("http://{addr}/{path}").parse().expect("uri"),
            authorization: format!("Bearer {}", subject.key)
                .parse()
                .expect("ascii key"),
            body: body.freeze(),
        }
    }

    /// The first answer, decoded and checked; answers its length on the wire.
    async fn first_answer(addr: SocketAddr, call: &Call, subject: &Subject, read: Read) -> usize {
        let mut sender = connect(addr).await;
        let answer = one(&mut sender, call).await;
        let message = &answer[5..];
        match read {
            Read::GetConnection => {
                let connection = proto::Connection::decode(message).expect("a Connection");
                assert_eq!(connection.id, subject.connection_id);
            }
            Read::ListTransactions => {
                let page =
                    proto::ListTransactionsResponse::decode(message).expect("a transactions page");
                assert_eq!(page.transactions.len(), PAGE as usize);
            }
        }
        answer.len()
    }

    async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (sender, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
        tokio::spawn(connection);
        sender
    }

    /// One call; answers the response's body, after checking its status and grpc-status.
    async fn one(sender: &mut h2::client::SendRequest<Bytes>, call: &Call) -> BytesMut {
        let request = Request::builder()
            .method(Method::POST)
            .uri(call.uri.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", call.authorization.clone())
            .body(())
            .expect("request");
        let ready = sender.clone().ready().await.expect("ready");
        *sender = ready;
        let (response, mut stream) = sender.send_request(request, false).expect("send");
        stream.send_data(call.body.clone(), true).expect("body");
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut answer = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("data");
            body.flow_control()
                .release_capacity(chunk.len())
                .expect("capacity");
            answer.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..]),
            "grpc-status"
        );
        answer
    }
}

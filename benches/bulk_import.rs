//! `linkstate import` against the bound the server allows, and its memory on a large file.
//!
//! 1. 10,000 Plaid items against the simulator at 50 ms per Plaid call: a raw gRPC client
//!    (4 requests of 100 items at a time, the CLI's defaults) measures the server's bound, then
//!    the release `linkstate import` binary imports 10,000 other items with the same settings,
//!    then the raw client runs once more; the faster raw run is the bound. All run against the
//!    same server and database; the aggregation jobs each phase enqueues are drained before the
//!    next one starts, so none pays for another's.
//! 2. A dry run of 1,000,000 Akoya lines (checked for shape only, so the server answers at once):
//!    the CLI's peak resident memory (VmHWM), polled from /proc while it runs.
//!
//! Run: `cargo bench --bench bulk_import` (uses DATABASE_URL if set, else the embedded cluster).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linkstate::proto;
use linkstate_testing::{TestApp, authed, imported};
use serde_json::json;

const ITEMS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(50);
const CONCURRENCY: usize = 4;
const BATCH: usize = 100;
/// Items one request keeps in flight at the server (`import::CONCURRENCY`).
const SERVER_PER_REQUEST: usize = 16;
/// Plaid round trips one item waits for in turn: /item/get with /accounts/get, the
/// institution's name, /item/webhook/update.
const ROUND_TRIPS: u32 = 3;
const DRY_RUN_LINES: usize = 1_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = TestApp::start_unlimited().await;
        let (_, key) = app.account("bench").await;
        app.sim.set_latency(LATENCY);
        let dir = tempfile::tempdir().expect("temporary directory");

        let raw_first = raw_client(&app, &key, "raw-a", tokens(&app, ITEMS)).await;
        drain_jobs(&app).await;

        let file = dir.path().join("migration.jsonl");
        write_lines(
            &file,
            tokens(&app, ITEMS).iter().enumerate().map(plaid_line),
        );
        let cli = run_cli(&app, &key, &file, &dir.path().join("state"), false).await;
        assert_eq!(cli.exit, Some(0), "the import succeeds");
        assert_eq!(app.count("connections").await, (2 * ITEMS) as i64);
        drain_jobs(&app).await;
        let raw_second = raw_client(&app, &key, "raw-b", tokens(&app, ITEMS)).await;
        drain_jobs(&app).await;
        let raw = raw_first.min(raw_second);

        let bound_per_request = SERVER_PER_REQUEST.min(BATCH) as f64;
        let theoretical =
            CONCURRENCY as f64 * bound_per_request / (LATENCY * ROUND_TRIPS).as_secs_f64();
        let raw_rate = ITEMS as f64 / raw.as_secs_f64();
        let cli_rate = ITEMS as f64 / cli.wall.as_secs_f64();
        println!();
        println!(
            "## {ITEMS} Plaid items, {} ms per Plaid call",
            LATENCY.as_millis()
        );
        println!();
        println!("| how | wall time | items/s | of the measured bound |");
        println!("|---|---:|---:|---:|");
        println!(
            "| theoretical: {CONCURRENCY} requests x {SERVER_PER_REQUEST} items in flight / \
             ({ROUND_TRIPS} x {} ms) | – | {theoretical:.0} | – |",
            LATENCY.as_millis()
        );
        for (name, run) in [("before", raw_first), ("after", raw_second)] {
            println!(
                "| raw gRPC client, {CONCURRENCY} requests of {BATCH} at a time, {name} the CLI \
                 | {:.2} s | {:.0} | {:.2} |",
                run.as_secs_f64(),
                ITEMS as f64 / run.as_secs_f64(),
                raw.as_secs_f64() / run.as_secs_f64()
            );
        }
        println!(
            "| `linkstate import --concurrency {CONCURRENCY} --batch-size {BATCH}` (release, \
             process start included) | {:.2} s | {cli_rate:.0} | {:.2} |",
            cli.wall.as_secs_f64(),
            cli_rate / raw_rate
        );
        println!("| CLI peak RSS | {:.1} MiB | | |", mib(cli.peak_rss_kib));
        println!();
        println!("the measured bound is the faster raw run");

        let big = dir.path().join("large.jsonl");
        write_lines(&big, (0..DRY_RUN_LINES).map(akoya_line));
        let size = std::fs::metadata(&big).expect("file").len();
        let dry = run_cli(&app, &key, &big, &dir.path().join("unused"), true).await;
        assert_eq!(dry.exit, Some(0), "the dry run succeeds");
        println!();
        println!(
            "## dry run of {DRY_RUN_LINES} Akoya lines ({:.0} MiB file)",
            size as f64 / 1024.0 / 1024.0
        );
        println!();
        println!("| wall time | lines/s | CLI peak RSS (VmHWM) |");
        println!("|---:|---:|---:|");
        println!(
            "| {:.1} s | {:.0} | {:.1} MiB |",
            dry.wall.as_secs_f64(),
            DRY_RUN_LINES as f64 / dry.wall.as_secs_f64(),
            mib(dry.peak_rss_kib)
        );
        app.stop().await;
    });
}

/// New simulator Items' access tokens, each Item with a short history: this measures the
/// import, not the aggregation after it.
fn tokens(app: &TestApp, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let item = app.sim.create_item("ins_109508");
            app.sim.set_history(&item.item_id, 3);
            item.access_token.expose().to_string()
        })
        .collect()
}

fn plaid_line((i, token): (usize, &String)) -> String {
    json!({"serviceProvider": "PLAID", "externalCustomerId": format!("cli-{i}"), "accessToken": token})
        .to_string()
}

fn akoya_line(i: usize) -> String {
    json!({
        "serviceProvider": "AKOYA",
        "externalCustomerId": format!("customer-{i}"),
        "refreshToken": format!("refresh-token-{i:08}"),
        "providerId": "mikomo",
    })
    .to_string()
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("file"));
    for line in lines {
        writeln!(out, "{line}").expect("write");
    }
    out.flush().expect("flush");
}

/// The bound: the generated client sending the items as the CLI would, nothing else.
async fn raw_client(app: &TestApp, key: &str, prefix: &str, tokens: Vec<String>) -> Duration {
    let batches: Vec<Vec<proto::ImportConnection>> = tokens
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, token)| proto::ImportConnection {
                    service_provider: proto::service_provider::Value::Plaid as i32,
                    external_customer_id: format!("{prefix}-{}", b * BATCH + i),
                    access_token: token.clone(),
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    let queue = Arc::new(Mutex::new(batches));
    let client = app.connections().await;
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let queue = queue.clone();
            let mut client = client.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                loop {
                    let Some(batch) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let n = batch.len();
                    let request = proto::ImportConnectionsRequest {
                        connections: batch,
                        ..Default::default()
                    };
                    let response = client
                        .import_connections(authed(&key, request))
                        .await
                        .expect("import")
                        .into_inner();
                    assert_eq!(imported(&response), n, "every item imported");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    started.elapsed()
}

struct CliRun {
    exit: Option<i32>,
    wall: Duration,
    peak_rss_kib: u64,
}

async fn run_cli(app: &TestApp, key: &str, file: &Path, state: &Path, dry_run: bool) -> CliRun {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkstate"));
    command
        .arg("import")
        .arg("--file")
        .arg(file)
        .arg("--state")
        .arg(state)
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--batch-size", &BATCH.to_string()])
        .env("LINKSTATE_SERVER", format!("http://{}", app.app.grpc_addr))
        .env("LINKSTATE_API_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if dry_run {
        command.arg("--dry-run");
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("linkstate import starts");
    let pid = child.id().expect("pid");
    let mut peak_rss_kib = 0;
    let exit = loop {
        if let Some(kib) = high_water_mark(pid) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        tokio::select! {
            status = child.wait() => break status.expect("wait").code(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    CliRun {
        exit,
        wall: started.elapsed(),
        peak_rss_kib,
    }
}

/// The process's peak resident set so far, in KiB.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Waits until the jobs the imports enqueued have run, so that the next phase has the server
/// to itself; Plaid answers at once meanwhile, to keep the wait short.
async fn drain_jobs(app: &TestApp) {
    app.sim.set_latency(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(600);
    while app
        .count("jobs WHERE dead_at IS NULL AND run_at <= now()")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "jobs drain");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.sim.set_latency(LATENCY);
}

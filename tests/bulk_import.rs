//! `linkstate import`: the real binary, against a running linkstate and the simulator.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use common::{assert_nothing_written, wait_until};
use linkstate_sim::ErrorRule;
use linkstate_testing::TestApp;
use serde_json::{Value, json};

/// One migration file's worth of work in a temporary directory.
struct Migration {
    dir: tempfile::TempDir,
}

impl Migration {
    fn new(lines: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("items.jsonl"), lines.join("\n") + "\n").unwrap();
        Self { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("items.jsonl")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `linkstate import --file items.jsonl`, with `args` after it, run in the migration's
    /// directory (so that `--report report.jsonl` lands there).
    fn command(&self, app: &TestApp, key: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = linkstate_import(app, key);
        command
            .arg("--file")
            .arg(self.file())
            .args(args)
            .current_dir(self.dir.path());
        command
    }

    async fn run(&self, app: &TestApp, key: &str, args: &[&str]) -> Run {
        let output = self.command(app, key, args).output().await.unwrap();
        Run {
            status: output.status,
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// The report's lines, by line number (each line exactly once).
    fn report(&self, name: &str) -> BTreeMap<u64, Value> {
        let mut by_line = BTreeMap::new();
        for text in read(&self.path(name)).lines() {
            let line: Value = serde_json::from_str(text).unwrap();
            let number = line["line"].as_u64().unwrap();
            assert!(
                by_line.insert(number, line).is_none(),
                "line {number} twice"
            );
        }
        by_line
    }
}

/// `linkstate import` pointed at `app` with `key`, its output piped.
fn linkstate_import(app: &TestApp, key: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkstate"));
    command
        .arg("import")
        .env("LINKSTATE_SERVER", format!("http://{}", app.app.grpc_addr))
        .env("LINKSTATE_API_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// A row of the summary table.
    fn row(&self, name: &str) -> u64 {
        self.stdout
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .filter(|rest| rest.starts_with("  "))
            })
            .unwrap_or_else(|| panic!("no {name:?} row in\n{}", self.stdout))
            .trim()
            .parse()
            .unwrap()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn plaid_line(customer: &str, token: &str) -> String {
    json!({"serviceProvider": "PLAID", "externalCustomerId": customer, "accessToken": token})
        .to_string()
}

/// New simulator Items, each as a migration line of its own customer, with their tokens.
fn items(app: &TestApp, prefix: &str, n: usize) -> (Vec<String>, Vec<String>) {
    (0..n)
        .map(|i| {
            let item = app.sim.create_item("ins_109508");
            // A short history: these tests are about the import, not the aggregation after it.
            app.sim.set_history(&item.item_id, 3);
            let token = item.access_token.expose().to_string();
            (plaid_line(&format!("{prefix}-{i}"), &token), token)
        })
        .unzip()
}

/// Items removed at Plaid: their tokens are refused from now on.
async fn revoked(app: &TestApp, n: usize) -> (Vec<String>, Vec<String>) {
    let (lines, tokens) = items(app, "revoked", n);
    for token in &tokens {
        let token = linkstate::domain::secret::Secret::new(token.clone());
        app.app.ctx.plaid().item_remove(&token).await.unwrap();
    }
    (lines, tokens)
}

#[track_caller]
fn assert_no_credential(texts: &[&str], tokens: &[String]) {
    for text in texts {
        for token in tokens {
            assert!(
                !text.contains(token.as_str()),
                "a credential in {text:.200}"
            );
        }
        assert!(
            !text.contains("access-sandbox"),
            "a credential in {text:.200}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_file_is_imported_line_by_line_with_a_summary_and_a_report() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (good, mut tokens) = items(&app, "customer", 990);
    let (gone, gone_tokens) = revoked(&app, 5).await;
    tokens.extend(gone_tokens);
    let mut lines = good.clone();
    // Bad lines: not JSON, a provider that cannot be imported, no credentials.
    lines.insert(10, "{\"serviceProvider\": \"PLAID\",".into());
    lines.insert(20, plaid_line("mx", "t").replace("PLAID", "MX"));
    lines.insert(
        30,
        json!({"serviceProvider": "PLAID", "externalCustomerId": "c"}).to_string(),
    );
    for (at, line) in gone.iter().enumerate() {
        lines.insert(100 + at * 100, line.clone());
    }
    // The same items twice, as an export with a join gone wrong would have them.
    lines.push(good[0].clone());
    lines.push(good[500].clone());
    assert_eq!(lines.len(), 1000);
    let migration = Migration::new(&lines);

    let run = migration
        .run(
            &app,
            &key,
            &["--report", "report.jsonl", "--concurrency", "4"],
        )
        .await;

    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.row("imported"), 990);
    assert_eq!(run.row("already imported"), 2);
    assert_eq!(run.row("failed"), 8);
    assert_eq!(run.row("  INVALID_ARGUMENT"), 3);
    assert_eq!(run.row("  UNAUTHENTICATED"), 5);
    assert_eq!(run.row("total"), 1000);
    // Not a terminal: plain progress lines, the last one complete.
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("import: "))
        .collect();
    assert!(progress.len() >= 2, "{}", run.stderr);
    assert!(
        progress
            .last()
            .unwrap()
            .starts_with("import: 1000/1000 lines, 8 failed, "),
        "{}",
        run.stderr
    );

    let report = migration.report("report.jsonl");
    assert_eq!(report.len(), 1000);
    let bad = |n: u64| report[&n]["error"].clone();
    assert_eq!(bad(11)["code"], "INVALID_ARGUMENT");
    assert!(
        bad(11)["message"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON")
    );
    assert_eq!(
        bad(21)["message"],
        "importing only works for PLAID and AKOYA, not MX"
    );
    assert_eq!(bad(31)["message"], "accessToken is required for PLAID");
    let failed: Vec<&Value> = report
        .values()
        .filter(|l| l.get("error").is_some())
        .collect();
    assert_eq!(failed.len(), 8);
    let refused: BTreeSet<String> = failed
        .iter()
        .filter(|l| l["error"]["code"] == "UNAUTHENTICATED")
        .map(|l| l["externalCustomerId"].as_str().unwrap().to_string())
        .collect();
    let revoked: BTreeSet<String> = (0..5).map(|i| format!("revoked-{i}")).collect();
    assert_eq!(refused, revoked);
    // The duplicates answer the connection of their first line.
    let first_of = |customer: &str| {
        report
            .values()
            .find(|l| l["externalCustomerId"] == customer && l.get("alreadyImported").is_none())
            .unwrap()["connectionId"]
            .clone()
    };
    for (line, customer) in [(999, "customer-0"), (1000, "customer-500")] {
        assert_eq!(report[&line]["alreadyImported"], true);
        assert_eq!(report[&line]["connectionId"], first_of(customer));
    }

    assert_eq!(app.count("connections").await, 990);
    assert_eq!(app.count("customers").await, 990);
    let state = read(&migration.path("items.jsonl.state"));
    assert_eq!(state.lines().count(), 1001, "the header and every line");
    assert_no_credential(
        &[
            &state,
            &read(&migration.path("report.jsonl")),
            &run.stdout,
            &run.stderr,
        ],
        &tokens,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_where_it_stopped_and_imports_every_line_once() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (lines, _) = items(&app, "customer", 300);
    let migration = Migration::new(&lines);
    // Slow enough that the kill comes half way.
    app.sim.set_latency(Duration::from_millis(40));
    let state = migration.path("items.jsonl.state");
    let args = ["--batch-size", "10", "--concurrency", "2"];

    let mut first = migration.command(&app, &key, &args).spawn().unwrap();
    wait_until(|| async { read(&state).lines().count() > 60 }).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let recorded: BTreeMap<u64, String> = read(&state)
        .lines()
        .skip(1)
        .map(|text| serde_json::from_str::<Value>(text).unwrap())
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["connectionId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(recorded.len() < 300, "the kill came too late");
    // The server may still be finishing what the killed run had in flight (or dropping it):
    // count calls only once they have stopped coming.
    loop {
        let calls = app.sim.calls("/item/get");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if app.sim.calls("/item/get") == calls {
            break;
        }
    }
    let sent_before = app.sim.calls("/item/get");

    app.sim.set_latency(Duration::ZERO);
    let second = migration
        .run(&app, &key, &["--report", "report.jsonl"])
        .await;

    assert_eq!(
        second.status.code(),
        Some(0),
        "{}{}",
        second.stdout,
        second.stderr
    );
    assert_eq!(
        second.row("imported by an earlier run"),
        recorded.len() as u64
    );
    // What was in flight at the kill was imported but not recorded: it comes back as already
    // imported, never as a second connection.
    let in_flight = second.row("already imported");
    assert!(
        in_flight <= 20,
        "at most the two batches in flight: {in_flight}"
    );
    assert_eq!(
        second.row("imported") + in_flight + recorded.len() as u64,
        300
    );
    // No line that succeeded was sent again.
    assert_eq!(
        app.sim.calls("/item/get") - sent_before,
        300 - recorded.len()
    );
    let report = migration.report("report.jsonl");
    for (line, connection_id) in &recorded {
        assert_eq!(report[line]["connectionId"], connection_id.as_str());
        assert_eq!(report[line]["fromEarlierRun"], true);
    }
    let ids: BTreeSet<&str> = report
        .values()
        .map(|l| l["connectionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 300);
    assert_eq!(app.count("connections").await, 300);

    // A file changed under its state file is refused before anything is sent.
    let mut changed = lines.clone();
    changed[3] = plaid_line("someone-else", "access-sandbox-changed");
    std::fs::write(migration.file(), changed.join("\n") + "\n").unwrap();
    let sent = app.sim.calls("/item/get");
    let refused = migration.run(&app, &key, &[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        refused.stderr.contains("changed since")
            && refused.stderr.contains("line 4 is not the line it was"),
        "{}",
        refused.stderr
    );
    assert_eq!(app.sim.calls("/item/get"), sent);
    assert_eq!(app.count("connections").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_every_line_writes_nothing_and_reports_the_revoked_tokens() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (mut lines, mut tokens) = items(&app, "customer", 30);
    let (gone, gone_tokens) = revoked(&app, 3).await;
    lines.extend(gone);
    tokens.extend(gone_tokens);
    let migration = Migration::new(&lines);

    let run = migration
        .run(&app, &key, &["--dry-run", "--report", "report.jsonl"])
        .await;

    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.row("valid"), 30);
    assert_eq!(run.row("  UNAUTHENTICATED"), 3);
    let report = migration.report("report.jsonl");
    assert_eq!(report.values().filter(|l| l["valid"] == true).count(), 30);
    for line in 31..=33 {
        assert_eq!(report[&line]["error"]["code"], "UNAUTHENTICATED");
    }
    assert_eq!(
        app.sim.calls("/item/get"),
        33,
        "each credential checked at Plaid"
    );
    assert_eq!(
        app.sim.calls("/item/webhook/update"),
        0,
        "nothing changed at Plaid"
    );
    assert_nothing_written(&app).await;
    assert!(
        !migration.path("items.jsonl.state").exists(),
        "a dry run keeps no state"
    );
    assert_no_credential(
        &[
            &read(&migration.path("report.jsonl")),
            &run.stdout,
            &run.stderr,
        ],
        &tokens,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_running_out_of_room_is_waited_out_not_failed() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (lines, tokens) = items(&app, "customer", 4);
    // Plaid rate-limits one item longer than the server's own quick retries last: that item
    // comes back RESOURCE_EXHAUSTED, and the CLI sends it again after a backoff.
    app.sim.inject_error(ErrorRule {
        access_token: Some(tokens[2].clone()),
        times: Some(6),
        ..linkstate_testing::plaid::rule(
            "/item/get",
            429,
            "RATE_LIMIT_EXCEEDED",
            "RATE_LIMIT_EXCEEDED",
        )
    });
    let migration = Migration::new(&lines);

    let run = migration
        .run(&app, &key, &["--report", "report.jsonl"])
        .await;

    assert_eq!(run.status.code(), Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.row("imported"), 4);
    assert_eq!(run.row("failed"), 0);
    assert!(
        app.sim.calls("/item/get") >= 4 + 6,
        "the limited item was tried again"
    );
    assert_eq!(app.count("connections").await, 4);
}

/// The state file of a first run, with line 2's refusal turned into what a Plaid outage would
/// have left (the CLI's own retries of an outage take over a minute, too long for a test): a
/// second run sends line 2 again, and not line 3, whose refusal a retry cannot change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_retries_only_the_lines_that_failed_with_a_retryable_code() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (lines, tokens) = items(&app, "customer", 4);
    for token in &tokens[1..3] {
        app.sim.inject_error(ErrorRule {
            access_token: Some(token.clone()),
            ..linkstate_testing::plaid::rule(
                "/item/get",
                400,
                "INVALID_INPUT",
                "INVALID_ACCESS_TOKEN",
            )
        });
    }
    let migration = Migration::new(&lines);
    let first = migration.run(&app, &key, &[]).await;
    assert_eq!(
        first.status.code(),
        Some(1),
        "{}{}",
        first.stdout,
        first.stderr
    );
    assert_eq!(first.row("imported"), 2);
    assert_eq!(first.row("failed"), 2);
    app.sim.clear_errors();

    let state_path = migration.path("items.jsonl.state");
    let state = read(&state_path);
    let edited: Vec<String> = state
        .lines()
        .map(|record| {
            if record.starts_with(r#"{"line":2,"#) {
                assert!(record.contains("UNAUTHENTICATED"), "{record}");
                record.replace("UNAUTHENTICATED", "UNAVAILABLE")
            } else {
                record.to_string()
            }
        })
        .collect();
    assert_ne!(
        edited.join("\n"),
        state.trim_end(),
        "line 2 was in the state"
    );
    std::fs::write(&state_path, edited.join("\n") + "\n").unwrap();

    let calls = app.sim.calls("/item/get");
    let second = migration.run(&app, &key, &[]).await;
    assert_eq!(
        second.status.code(),
        Some(1),
        "{}{}",
        second.stdout,
        second.stderr
    );
    assert_eq!(
        app.sim.calls("/item/get") - calls,
        1,
        "only line 2 was sent again"
    );
    assert_eq!(app.count("connections").await, 3);
    let record_of = |line: u64| {
        read(&state_path)
            .lines()
            .rfind(|r| r.starts_with(&format!(r#"{{"line":{line},"#)))
            .unwrap()
            .to_string()
    };
    assert!(record_of(2).contains("connectionId"), "{}", record_of(2));
    assert!(record_of(3).contains("UNAUTHENTICATED"), "{}", record_of(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_start_exits_2_and_sends_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (lines, _) = items(&app, "customer", 3);
    let migration = Migration::new(&lines);

    let wrong_key = migration.run(&app, "lsk_not-a-key", &[]).await;
    assert_eq!(wrong_key.status.code(), Some(2));
    assert!(
        wrong_key
            .stderr
            .contains("the server refused the API key (UNAUTHENTICATED)"),
        "{}",
        wrong_key.stderr
    );

    let mut no_key = migration.command(&app, &key, &[]);
    no_key.env_remove("LINKSTATE_API_KEY");
    let no_key = no_key.output().await.unwrap();
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("LINKSTATE_API_KEY"));

    let mut no_file = linkstate_import(&app, &key);
    no_file.args(["--file", "/nonexistent/items.jsonl"]);
    let no_file = no_file.output().await.unwrap();
    assert_eq!(no_file.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_file.stderr).contains("/nonexistent/items.jsonl"));

    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unreachable.local_addr().unwrap().port();
    drop(unreachable);
    let mut nobody = migration.command(&app, &key, &[]);
    nobody.env("LINKSTATE_SERVER", format!("http://127.0.0.1:{port}"));
    let nobody = nobody.output().await.unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot reach the server"));

    for (flag, value) in [
        ("--batch-size", "0"),
        ("--batch-size", "101"),
        ("--concurrency", "0"),
    ] {
        let out_of_range = migration.run(&app, &key, &[flag, value]).await;
        assert_eq!(out_of_range.status.code(), Some(2), "{flag} {value}");
        assert_eq!(
            out_of_range.stderr.lines().count(),
            1,
            "{}",
            out_of_range.stderr
        );
        assert!(
            out_of_range.stderr.contains(flag) && out_of_range.stderr.contains(value),
            "{}",
            out_of_range.stderr
        );
    }

    assert_eq!(app.sim.calls("/item/get"), 0);
    assert_nothing_written(&app).await;
}

//! Settings: a malformed one, a zero limit included, stops start-up with one line naming it.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_linkstate");

/// Runs `linkstate serve` with one setting; answers its exit code and standard error.
fn serve_with(name: &str, value: &str) -> (Option<i32>, String) {
    let output = Command::new(BINARY)
        .arg("serve")
        .env(name, value)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("linkstate runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn zero_for_a_concurrency_a_limit_or_a_timeout_is_refused_in_one_line() {
    for (name, value) in [
        ("LINKSTATE_WORKER_CONCURRENCY", "0"),
        ("LINKSTATE_REFRESH_MAX_CONCURRENT", "0"),
        ("LINKSTATE_MAX_STREAMS", "0"),
        ("LINKSTATE_DATABASE_POOL_SIZE", "0"),
        ("LINKSTATE_HTTP_MAX_CONNECTIONS", "0"),
        ("LINKSTATE_GRPC_MAX_CONCURRENT_STREAMS", "0"),
        ("LINKSTATE_WEBHOOK_MAX_BYTES", "0"),
        ("LINKSTATE_HTTP_HEADER_TIMEOUT", "0s"),
        ("LINKSTATE_JOB_LEASE", "0s"),
        ("LINKSTATE_EVENT_POLL_INTERVAL", "0s"),
        ("LINKSTATE_RATE_BURST", "0"),
        ("LINKSTATE_MAX_STREAMS_PER_ACCOUNT", "0"),
        ("LINKSTATE_MAX_IMPORTS_PER_ACCOUNT", "0"),
        ("LINKSTATE_CIRCUIT_THRESHOLD", "0"),
        ("LINKSTATE_CIRCUIT_COOL_DOWN", "0s"),
        ("LINKSTATE_CIRCUIT_MAX_COOL_DOWN", "soon"),
        ("LINKSTATE_RATE_LIMIT", "-1"),
        ("LINKSTATE_RATE_LIMIT", "fast"),
    ] {
        let (code, stderr) = serve_with(name, value);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[test]
fn a_malformed_log_format_is_refused_in_one_line() {
    let (code, stderr) = serve_with("LINKSTATE_LOG_FORMAT", "xml");
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LINKSTATE_LOG_FORMAT"), "{stderr}");
}

#[test]
fn a_malformed_old_encryption_key_stops_start_up_naming_which_one() {
    let current = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let output = Command::new(BINARY)
        .arg("serve")
        .env("LINKSTATE_ENCRYPTION_KEY", current)
        .env(
            "LINKSTATE_ENCRYPTION_OLD_KEYS",
            format!("{current}, c2hvcnQ="),
        )
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("linkstate runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("linkstate: LINKSTATE_ENCRYPTION_OLD_KEYS: key 2: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c2hvcnQ"),
        "the key is not echoed: {stderr}"
    );
}

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
fn a_malformed_log_filter_is_refused_in_one_line() {
    let (code, stderr) = serve_with("RUST_LOG", "info,linkstate=loudest");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("linkstate: RUST_LOG: "), "{stderr}");
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

/// Runs `linkstate serve` with the given environment only (and a database nobody listens on);
/// answers its exit code and standard error.
fn serve_in(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .envs(env.iter().copied())
        .output()
        .expect("linkstate runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const A_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

#[test]
fn serve_without_an_encryption_key_stops_in_one_line_naming_it() {
    let (code, stderr) = serve_in(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "linkstate: LINKSTATE_ENCRYPTION_KEY: is required: 32 random bytes in base64 \
         (`openssl rand -base64 32`)"
    );
}

#[test]
fn a_malformed_encryption_key_stops_in_one_line_without_echoing_it() {
    for key in ["c2hvcnQ=", "not base64 at all!"] {
        let (code, stderr) = serve_in(&[("LINKSTATE_ENCRYPTION_KEY", key)]);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("linkstate: LINKSTATE_ENCRYPTION_KEY"),
            "{stderr}"
        );
        assert!(!stderr.contains(key), "the key is not echoed: {stderr}");
    }
}

#[test]
fn a_public_url_that_is_not_http_stops_in_one_line_naming_it() {
    let (code, stderr) = serve_in(&[
        ("LINKSTATE_ENCRYPTION_KEY", A_KEY),
        ("LINKSTATE_PUBLIC_URL", "ftp://hooks.example.com"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "linkstate: LINKSTATE_PUBLIC_URL: \"ftp://hooks.example.com\" is not an http(s) URL"
    );
}

/// Without `DATABASE_URL` and without PostgreSQL's server binaries, `serve` says so and names
/// `DATABASE_URL`. The binaries are hidden in a mount namespace of the child alone (util-linux's
/// `unshare`): an empty directory over `/usr/lib/postgresql`, and a `PATH` without them.
#[test]
fn without_postgresql_binaries_the_error_names_database_url() {
    let empty = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let script = format!(
        "mount --bind {empty} /usr/lib/postgresql && exec {BINARY} serve",
        empty = empty.path().display()
    );
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/bin:/usr/bin")
        .env("LINKSTATE_ENCRYPTION_KEY", A_KEY)
        .env("LINKSTATE_DATA_DIR", data.path())
        .output()
        .expect("unshare runs (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "linkstate: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install \
         Debian's `postgresql` package, or set DATABASE_URL to use an existing server",
        "{stderr}"
    );
}

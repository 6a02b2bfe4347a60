//! The embedded PostgreSQL cluster that `serve` and `dev` start when no `DATABASE_URL` is set.
//!
//! It lives under `LINKSTATE_DATA_DIR/postgres`, is made once with `initdb`, reused on every
//! start, and listens only on 127.0.0.1. `initdb` refuses to run as root, so as root the cluster
//! belongs to, and runs as, the `postgres` user.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why the embedded cluster could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The server binaries are not installed.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install Debian's \
         `postgresql` package, or set DATABASE_URL to use an existing server"
    )]
    BinariesMissing,
    /// A step failed; the message names it.
    #[error("embedded PostgreSQL: {0}")]
    Failed(String),
}

/// A running cluster under a data directory.
#[derive(Debug)]
pub struct EmbeddedCluster {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
    started_here: bool,
}

impl EmbeddedCluster {
    /// Starts the cluster under `data_dir/postgres` (creating it first if needed), or joins it
    /// if another process already runs it. Blocking: call from `spawn_blocking`.
    pub fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::BinariesMissing)?;
        std::fs::create_dir_all(data_dir).map_err(|e| failed("create data dir", e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| failed("resolve data dir", e))?;
        // Several processes (test binaries, two `dev`s) may race to start the same cluster.
        let lock = File::create(data_dir.join("postgres.lock")).map_err(|e| failed("lock", e))?;
        lock.lock().map_err(|e| failed("lock", e))?;
        let mut cluster = Self {
            data_dir: data_dir.join("postgres"),
            bin_dir,
            port: 0,
            run_as_postgres: running_as_root(),
            started_here: false,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.init()?;
        }
        match cluster.running_port() {
            Some(port) => cluster.port = port,
            None => cluster.launch()?,
        }
        Ok(cluster)
    }

    /// The URL of database `name` in this cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Whether this process started the cluster (and so should stop it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the cluster (fast shutdown: open sessions are ended, data is safe). Blocking.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir.to_string_lossy().into_owned();
        self.run("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w"])
            .map(|_| ())
    }

    fn init(&self) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| failed("create cluster dir", e))?;
        if self.run_as_postgres {
            chown_to_postgres(&self.data_dir)?;
        }
        let data = self.data_dir.to_string_lossy().into_owned();
        self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )?;
        Ok(())
    }

    fn launch(&mut self) -> Result<(), EmbeddedError> {
        let port = free_port()?;
        let data = self.data_dir.to_string_lossy().into_owned();
        let log = self
            .data_dir
            .join("server.log")
            .to_string_lossy()
            .into_owned();
        // Room for the benches' pgbench baselines (128 clients) beside the service's pool, and
        // pg_stat_statements where it is installed (what SQL runs, and how often).
        let mut options =
            format!("-p {port} -c listen_addresses=127.0.0.1 -c max_connections=200 -k {data}");
        if self.has_library("pg_stat_statements") {
            options.push_str(" -c shared_preload_libraries=pg_stat_statements");
        }
        self.run(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options,
            ],
        )?;
        self.port = port;
        self.started_here = true;
        Ok(())
    }

    /// Whether the server's library directory (beside its binaries) holds `name`.
    fn has_library(&self, name: &str) -> bool {
        self.bin_dir
            .parent()
            .is_some_and(|dir| dir.join("lib").join(format!("{name}.so")).exists())
    }

    /// The port of a server already running on this data dir, read from `postmaster.pid`.
    fn running_port(&self) -> Option<u16> {
        let data = self.data_dir.to_string_lossy().into_owned();
        self.run("pg_ctl", &["status", "-D", &data]).ok()?;
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, EmbeddedError> {
        let binary = self.bin_dir.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let output = command
            .args(args)
            .current_dir("/")
            .output()
            .map_err(|e| failed(program, e))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(EmbeddedError::Failed(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            )))
        }
    }
}

fn failed(step: &str, error: impl std::fmt::Display) -> EmbeddedError {
    EmbeddedError::Failed(format!("{step}: {error}"))
}

/// Where the server binaries are: `pg_config --bindir`, Debian's versioned dirs, or `PATH`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).exists())
    };
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    debian.sort_by_key(|dir| std::cmp::Reverse(version_of(dir)));
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    from_pg_config
        .into_iter()
        .chain(debian)
        .chain(on_path)
        .find(|dir| has_all(dir))
}

/// The major version in `/usr/lib/postgresql/<version>/bin`.
fn version_of(bin_dir: &Path) -> u32 {
    bin_dir
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(0)
}

/// Whether this process runs as root (then PostgreSQL's tools must run as `postgres`).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Gives `dir` to the `postgres` user, so that a cluster run as it may live there.
pub fn chown_to_postgres(dir: &Path) -> Result<(), EmbeddedError> {
    let id = |flag: &str| -> Result<u32, EmbeddedError> {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| failed("look up the postgres user", e))?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                EmbeddedError::Failed(
                    "running as root needs a `postgres` user to own the cluster".into(),
                )
            })
    };
    std::os::unix::fs::chown(dir, Some(id("-u")?), Some(id("-g")?))
        .map_err(|e| failed("chown cluster dir", e))
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| failed("find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| failed("find a free port", e))?
        .port();
    Ok(port)
}

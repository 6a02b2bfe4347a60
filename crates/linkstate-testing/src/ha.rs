//! A PostgreSQL primary and its streaming hot standby, made by the test itself: `initdb`, then
//! `pg_basebackup -R`, with `synchronous_standby_names` so that a commit is acknowledged only
//! once the standby has it. For failover tests: SIGKILL the primary, promote the standby.
//! Blocking; both servers are stopped and their files removed when the pair is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use linkstate::store::embedded::{chown_to_postgres, find_bin_dir, running_as_root};

/// The standby's name in `synchronous_standby_names`.
const STANDBY_NAME: &str = "standby1";

/// One server of the pair.
pub struct Node {
    data: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

/// A primary and its synchronous standby under one directory.
pub struct Pair {
    /// Where both live; removed on drop.
    dir: PathBuf,
    /// The primary.
    pub primary: Node,
    /// The synchronous standby.
    pub standby: Node,
}

impl Pair {
    /// Makes and starts both servers under `target/failover/<random>`, and waits until the
    /// standby streams synchronously.
    pub fn start() -> Pair {
        let bin = find_bin_dir().expect("PostgreSQL server binaries are installed");
        let as_postgres = running_as_root();
        let dir = crate::workspace_root()
            .join("target/failover")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).expect("failover dir");
        let dir = dir.canonicalize().expect("failover dir");
        if as_postgres {
            chown_to_postgres(&dir).expect("chown");
        }
        let node = |name: &str| Node {
            data: dir.join(name),
            port: free_port(),
            bin: bin.clone(),
            as_postgres,
        };
        let (primary, standby) = (node("primary"), node("standby"));
        primary.init();
        primary.configure(&[
            "wal_level = replica",
            "max_wal_senders = 4",
            &format!("synchronous_standby_names = '{STANDBY_NAME}'"),
            "synchronous_commit = on",
            // A primary that restarts itself after its backends die would take writes (or
            // answer duplicates from commits the standby never got) beside the promoted one.
            "restart_after_crash = off",
        ]);
        primary.start();
        primary.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &path_text(&standby.data),
                "-R",
                "-X",
                "stream",
            ],
        );
        // Once promoted, the standby must not wait for a standby of its own.
        standby.configure(&[
            "synchronous_standby_names = ''",
            &format!(
                "primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name={STANDBY_NAME}'",
                primary.port
            ),
        ]);
        standby.start();
        let pair = Pair {
            dir,
            primary,
            standby,
        };
        pair.wait_synchronous();
        pair
    }

    /// `DATABASE_URL` naming both servers: clients connect to whichever accepts writes.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    fn wait_synchronous(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let state = self.primary.psql(
                "postgres",
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'",
            );
            if state.trim() == "sync" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the standby did not become synchronous in 30 s");
    }
}

impl Node {
    /// The URL of `database` on this server alone.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// SIGKILL to the postmaster and every backend, in one `kill`, postmaster first: as if the
    /// machine died.
    pub fn kill(&self) {
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .expect("postmaster.pid")
            .lines()
            .next()
            .expect("a pid")
            .trim()
            .to_string();
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .expect("pgrep runs");
        let children = String::from_utf8_lossy(&children.stdout);
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(&postmaster)
            .args(children.split_whitespace())
            .status();
    }

    /// Promotes a standby to primary, waiting until it accepts writes.
    pub fn promote(&self) {
        self.run("pg_ctl", &["promote", "-D", &path_text(&self.data), "-w"]);
    }

    /// Runs one statement with `psql` and answers its unaligned output.
    pub fn psql(&self, database: &str, statement: &str) -> String {
        let output = self.try_run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                statement,
            ],
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn init(&self) {
        self.run(
            "initdb",
            &[
                "-D",
                &path_text(&self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
    }

    /// Appends settings to `postgresql.auto.conf` (read after `postgresql.conf`, so they win).
    fn configure(&self, lines: &[&str]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.auto.conf"))
            .expect("postgresql.auto.conf");
        for line in lines {
            writeln!(file, "{line}").expect("write setting");
        }
    }

    fn start(&self) {
        let data = path_text(&self.data);
        let log = format!("{data}.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data.parent().expect("parent").display()
        );
        self.run(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options,
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.try_run(program, args);
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Output {
        let binary = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .current_dir("/")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for node in [&self.primary, &self.standby] {
            let data = path_text(&node.data);
            let _ = node.try_run("pg_ctl", &["stop", "-D", &data, "-m", "immediate"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as an argument.
fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

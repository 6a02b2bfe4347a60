//! `linkstate serve` as a child process: for tests that kill, stop or signal a real replica.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use linkstate::cipher::Cipher;
use linkstate::domain::ids::AccountId;
use linkstate::store::{self, DbPool};
use linkstate_sim::{SimConfig, Simulator};
use linkstate_testing::TestDatabase;
use linkstate_testing::{SIM_CLIENT_ID, SIM_SECRET};

const BINARY: &str = env!("CARGO_BIN_EXE_linkstate");

/// A port free right now, for a process that must come back on the same one.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory of process `pid`, in KiB, from /proc (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What every replica of one test shares.
#[derive(Clone, Debug)]
pub struct Replicas {
    /// The database.
    pub database_url: String,
    /// The Plaid simulator's base URL.
    pub sim_url: String,
    /// LINKSTATE_ENCRYPTION_KEY.
    pub key: String,
}

/// A running `linkstate serve`, killed when dropped.
pub struct Service {
    child: Child,
    /// Its gRPC port.
    pub grpc: u16,
    /// Its HTTP port.
    pub http: u16,
}

impl Replicas {
    /// A simulator on a free port (historical loads completed only when a test says so), and
    /// the settings of replicas that share `database_url` and a fresh encryption key.
    pub async fn with_simulator(database_url: &str) -> (Simulator, Replicas) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sim = Simulator::new(SimConfig {
            client_id: SIM_CLIENT_ID.into(),
            secret: SIM_SECRET.into(),
        });
        sim.set_auto_historical(false);
        let sim_addr = sim
            .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await;
        let replicas = Replicas {
            database_url: database_url.to_string(),
            sim_url: format!("http://{sim_addr}"),
            key: Cipher::generate_key(),
        };
        (sim, replicas)
    }

    /// Starts a replica on these ports with these extra settings.
    pub fn start(&self, grpc: u16, http: u16, env: &[(&str, &str)]) -> Service {
        self.start_logging(grpc, http, env, Stdio::null())
    }

    /// Starts a replica whose standard error goes to `stderr`.
    pub fn start_logging(
        &self,
        grpc: u16,
        http: u16,
        env: &[(&str, &str)],
        stderr: impl Into<Stdio>,
    ) -> Service {
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("LINKSTATE_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
            .env("LINKSTATE_HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("LINKSTATE_ENCRYPTION_KEY", &self.key)
            .env("PLAID_BASE_URL", &self.sim_url)
            .env("PLAID_CLIENT_ID", SIM_CLIENT_ID)
            .env("PLAID_SECRET", SIM_SECRET)
            .env("AKOYA_PRODUCTS_URL", &self.sim_url)
            .env("AKOYA_IDP_URL", &self.sim_url)
            .env("AKOYA_CLIENT_ID", SIM_CLIENT_ID)
            .env("AKOYA_CLIENT_SECRET", SIM_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        Service {
            child: command.spawn().expect("linkstate starts"),
            grpc,
            http,
        }
    }
}

impl Service {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (TERM, STOP, CONT, ...).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// SIGKILL: no shutdown handler runs, whatever was in flight is cut off.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for it to exit by itself; answers how long that took, or None after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Waits until /readyz answers 200 (10 s at most).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) =
                reqwest::get(format!("http://127.0.0.1:{}/readyz", self.http)).await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("linkstate not ready in 10 s");
    }

    /// A gRPC channel to it.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One database, one simulator, and the settings every replica of a test shares.
pub struct Setup {
    /// Kept for the test's length: dropping it drops the database.
    _database: TestDatabase,
    /// A pool on the database, for checks.
    pub pool: DbPool,
    /// The Plaid simulator the replicas call.
    pub sim: Simulator,
    /// What the replicas share.
    pub replicas: Replicas,
}

impl Setup {
    /// A fresh database and a simulator.
    pub async fn new() -> Self {
        let database = TestDatabase::new().await;
        let (sim, replicas) = Replicas::with_simulator(&database.url).await;
        let pool = store::pool(&database.url, 4).unwrap();
        Self {
            _database: database,
            pool,
            sim,
            replicas,
        }
    }

    /// A replica on free ports with these extra settings, once it is ready.
    pub async fn start(&self, env: &[(&str, &str)]) -> Service {
        let service = self.replicas.start(free_port(), free_port(), env);
        service.wait_ready().await;
        service
    }

    /// A tenant and its API key.
    pub async fn api_key(&self) -> (AccountId, String) {
        let mut conn = store::connect(&self.pool).await.unwrap();
        let (account, key) = store::accounts::create(&mut conn, "replicas")
            .await
            .unwrap();
        (account, key.expose().to_string())
    }
}

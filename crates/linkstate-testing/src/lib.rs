//! Test and benchmark harness: a fresh database per test, cloned from a migrated template, and
//! a whole linkstate process with the provider simulator, on port 0.
//!
//! The database server is `DATABASE_URL`'s when set, otherwise an embedded cluster under
//! `target/` that the first test starts and later tests (and later runs) reuse.

#![warn(missing_docs)]

pub mod ha;
pub mod plaid;
pub mod receiver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::net::TcpListener;
use tonic::transport::Channel;

use linkstate::app::{self, AppConfig, RunningApp};
use linkstate::cipher::Cipher;
use linkstate::config::{DeliverySettings, EventSettings, WorkerSettings};
use linkstate::domain::ids::AccountId;
use linkstate::proto;
use linkstate::providers::akoya::AkoyaConfig;
use linkstate::providers::plaid::PlaidConfig;
use linkstate::store::embedded::EmbeddedCluster;
use linkstate::store::{self, DbPool, accounts, migrations};
use linkstate_sim::{SimConfig, Simulator};

/// The simulator's API keys in tests.
pub const SIM_CLIENT_ID: &str = "test-client";
/// The simulator's secret in tests.
pub const SIM_SECRET: &str = "test-secret";

/// The workspace's top directory, where `migrations/` and `target/` are.
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The URL of database `name` on the test server.
fn server_url(name: &str) -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let (base, _) = url
                .rsplit_once('/')
                .expect("DATABASE_URL has a database name");
            format!("{base}/{name}")
        }
        Err(_) => embedded_cluster().database_url(name),
    }
}

fn embedded_cluster() -> &'static EmbeddedCluster {
    static CLUSTER: std::sync::OnceLock<EmbeddedCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = workspace_root().join("target/test-postgres");
        EmbeddedCluster::start(&dir).unwrap_or_else(|e| panic!("test database server: {e}"))
    })
}

/// The template's name changes with the migrations, so a stale template is never used.
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let dir = workspace_root().join("migrations");
    let mut files: Vec<PathBuf> = walk(&dir);
    files.sort();
    for file in files {
        hash.update(file.to_string_lossy().as_bytes());
        hash.update(std::fs::read(&file).unwrap_or_default());
    }
    format!("linkstate_template_{}", &hex::encode(hash.finalize())[..12])
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Makes the migrated template once per server; processes racing here take turns.
async fn ensure_template() -> String {
    let template = template_name();
    let mut admin = AsyncPgConnection::establish(&server_url("postgres"))
        .await
        .expect("the test database server answers");
    diesel::sql_query("SELECT pg_advisory_lock(7245001)")
        .execute(&mut admin)
        .await
        .expect("advisory lock");
    let exists = database_exists(&mut admin, &template).await;
    if !exists {
        let building = format!("{template}_building");
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\""))
            .execute(&mut admin)
            .await;
        diesel::sql_query(format!("CREATE DATABASE \"{building}\""))
            .execute(&mut admin)
            .await
            .expect("create template");
        migrations::run(&server_url(&building))
            .await
            .expect("migrate template");
        diesel::sql_query(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .expect("rename template");
    }
    diesel::sql_query("SELECT pg_advisory_unlock(7245001)")
        .execute(&mut admin)
        .await
        .expect("advisory unlock");
    template
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n > 0)
        .unwrap_or(false)
}

/// A database of one test's own, dropped when the test ends.
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    /// A fresh, migrated database. Needs the multi-threaded runtime.
    pub async fn new() -> Self {
        let template = ensure_template().await;
        let name = format!("linkstate_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&server_url("postgres"))
            .await
            .expect("the test database server answers");
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .expect("create test database");
        let url = server_url(&name);
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (server_url("postgres"), self.name.clone());
        // Drop runs outside async code's reach: a thread with its own runtime does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = diesel::sql_query(sql).execute(&mut admin).await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// A whole linkstate process, its database and its Plaid simulator.
pub struct TestApp {
    /// The simulator the process calls as Plaid.
    pub sim: Simulator,
    /// Where the simulator listens.
    pub sim_addr: SocketAddr,
    /// The process.
    pub app: RunningApp,
    /// A pool on the test database, for checks.
    pub pool: DbPool,
    /// The test database (dropped last).
    pub database: TestDatabase,
}

impl TestApp {
    /// Starts everything on port 0.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts everything with no request rate per API key: a benchmark measures the service
    /// serving one tenant as fast as it can, not the tenant limits.
    pub async fn start_unlimited() -> Self {
        Self::start_with(|config| config.tenants.rate_limit = 0).await
    }

    /// Starts everything, letting the caller adjust the configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut AppConfig)) -> Self {
        let database = TestDatabase::new().await;
        let sim = Simulator::new(SimConfig {
            client_id: SIM_CLIENT_ID.into(),
            secret: SIM_SECRET.into(),
        });
        // Tests release Plaid's historical load themselves, so that its webhook-driven sync
        // comes when a test asks for it rather than racing the import's own aggregation.
        sim.set_auto_historical(false);
        let sim_addr = sim.spawn(bind().await).await;
        let http_listener = bind().await;
        let public_url = format!("http://{}", http_listener.local_addr().expect("bound"));
        let mut config = AppConfig {
            database_url: database.url.clone(),
            grpc_listener: bind().await,
            http_listener,
            public_url,
            pool_size: 32,
            cipher: Cipher::from_base64(&Cipher::generate_key()).expect("fresh key"),
            plaid: PlaidConfig {
                base_url: format!("http://{sim_addr}"),
                client_id: Some(SIM_CLIENT_ID.into()),
                secret: Some(linkstate::domain::secret::Secret::new(SIM_SECRET)),
                timeout: Duration::from_secs(2),
            },
            akoya: AkoyaConfig {
                products_url: format!("http://{sim_addr}"),
                idp_url: format!("http://{sim_addr}"),
                client_id: Some(SIM_CLIENT_ID.into()),
                client_secret: Some(linkstate::domain::secret::Secret::new(SIM_SECRET)),
                timeout: Duration::from_secs(2),
            },
            worker: WorkerSettings {
                concurrency: 4,
                job_lease: Duration::from_secs(60),
                refresh_interval: Duration::from_secs(24 * 3600),
                refresh_max_concurrent: 10,
                shutdown_grace: Duration::from_secs(10),
                circuit_threshold: 5,
                circuit_cool_down: Duration::from_secs(10),
                circuit_max_cool_down: Duration::from_secs(300),
            },
            events: EventSettings {
                retention: Duration::from_secs(30 * 24 * 3600),
                max_streams: 100,
                poll_interval: Duration::from_millis(200),
            },
            // Receivers in tests listen on 127.0.0.1; the schedule is compressed to seconds.
            delivery: DeliverySettings {
                retry_base: Duration::from_millis(200),
                retry_max: Duration::from_secs(2),
                give_up: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                allow_private: true,
                concurrency: 16,
                profile_concurrency: 4,
            },
            tenants: Default::default(),
            http_limits: Default::default(),
            grpc_limits: Default::default(),
        };
        adjust(&mut config);
        let app = app::start(config).await.expect("linkstate starts");
        let pool = store::pool(&database.url, 4).expect("pool");
        Self {
            sim,
            sim_addr,
            app,
            pool,
            database,
        }
    }

    /// A tenant account and its API key.
    pub async fn account(&self, name: &str) -> (AccountId, String) {
        let mut conn = store::connect(&self.pool).await.expect("connection");
        let (id, key) = accounts::create(&mut conn, name).await.expect("account");
        (id, key.expose().to_string())
    }

    /// A gRPC channel to the process.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.app.grpc_addr))
            .expect("uri")
            .connect()
            .await
            .expect("gRPC connects")
    }

    /// A ConnectionService client.
    pub async fn connections(
        &self,
    ) -> proto::connection_service_client::ConnectionServiceClient<Channel> {
        proto::connection_service_client::ConnectionServiceClient::new(self.channel().await)
    }

    /// A CustomerService client.
    pub async fn customers(
        &self,
    ) -> proto::customer_service_client::CustomerServiceClient<Channel> {
        proto::customer_service_client::CustomerServiceClient::new(self.channel().await)
    }

    /// A FinancialDataService client.
    pub async fn financial_data(
        &self,
    ) -> proto::financial_data_service_client::FinancialDataServiceClient<Channel> {
        proto::financial_data_service_client::FinancialDataServiceClient::new(self.channel().await)
    }

    /// A WebhookProfileService client.
    pub async fn profiles(
        &self,
    ) -> proto::webhook_profile_service_client::WebhookProfileServiceClient<Channel> {
        proto::webhook_profile_service_client::WebhookProfileServiceClient::new(
            self.channel().await,
        )
    }

    /// An EventService client.
    pub async fn events(&self) -> proto::event_service_client::EventServiceClient<Channel> {
        proto::event_service_client::EventServiceClient::new(self.channel().await)
    }

    /// Rows in `table` of the test database, to show that nothing was half written.
    pub async fn count(&self, table: &str) -> i64 {
        count(&self.pool, table).await
    }

    /// Stops the process.
    pub async fn stop(self) {
        self.app.stop().await;
    }
}

/// Rows of `table` (a `FROM` clause: a table and perhaps a `WHERE`) in the database of `pool`.
pub async fn count(pool: &DbPool, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = store::connect(pool).await.expect("connection");
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n
}

/// How many results of an import answer are connections (the rest are errors).
pub fn imported(response: &proto::ImportConnectionsResponse) -> usize {
    response
        .results
        .iter()
        .filter(|r| matches!(r.result, Some(proto::import_result::Result::Connection(_))))
        .count()
}

/// A request with the API key in its metadata.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    request
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("port 0")
}

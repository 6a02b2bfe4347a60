//! Every setting, read once from flags or the environment (the names are fixed by the contract).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::api::grpc::GrpcLimits;
use crate::api::http::HttpLimits;
use crate::cipher::Cipher;
use crate::domain::circuit::CircuitPolicy;
use crate::domain::secret::Secret;
use crate::providers::akoya::AkoyaConfig;
use crate::providers::plaid::PlaidConfig;

/// The Plaid client id the simulator accepts by default, and `dev` uses.
pub const SIM_CLIENT_ID: &str = "linkstate-sim-client";

/// The Plaid secret the simulator accepts by default, and `dev` uses.
pub const SIM_SECRET: &str = "linkstate-sim-secret";

/// linkstate: the aggregation state of bank connections, served over gRPC.
#[derive(Debug, Parser)]
#[command(name = "linkstate", version, about)]
pub struct Cli {
    /// Log format on standard error: `text` or `json`.
    #[arg(
        long,
        global = true,
        env = "LINKSTATE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Reads the command line and the environment. Each value is named by its environment
    /// variable (`--grpc-addr <LINKSTATE_GRPC_ADDR>`), so help and errors name the setting as
    /// the contract does.
    pub fn try_parse_args() -> Result<Self, clap::Error> {
        let command = name_values_by_env(Self::command());
        Self::from_arg_matches(&command.try_get_matches()?)
    }
}

/// Names each value of `command` and its subcommands by its environment variable.
fn name_values_by_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| match arg.get_env().and_then(|env| env.to_str()) {
            Some(env) => {
                let env = env.to_owned();
                arg.value_name(env)
            }
            None => arg,
        })
        .mut_subcommands(name_values_by_env)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: gRPC, the webhook HTTP listener and the background workers.
    Serve(Settings),
    /// Run the service for a newcomer: embedded PostgreSQL, the provider simulator, a dev key.
    Dev(DevSettings),
    /// Apply pending migrations to DATABASE_URL and exit.
    Migrate(DatabaseSettings),
    /// Manage tenant accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Run only the provider simulator (Plaid-sandbox compatible HTTP API).
    Simulate(SimulatorSettings),
    /// Import connections from a JSON-lines file through a running linkstate's gRPC API.
    Import(ImportSettings),
    /// Re-seal every stored credential and webhook secret under LINKSTATE_ENCRYPTION_KEY.
    Reseal(ResealSettings),
}

/// Settings of `linkstate reseal`.
#[derive(Debug, Clone, Args)]
pub struct ResealSettings {
    /// Where the database is.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The current key, and the old ones that open what is left to move.
    #[command(flatten)]
    pub keys: KeySettings,
}

/// Settings of `linkstate import` (contract section 5).
#[derive(Debug, Clone, Args)]
pub struct ImportSettings {
    /// The JSON-lines file: one `ImportConnection` per line, in its JSON form.
    #[arg(long)]
    pub file: PathBuf,
    /// The gRPC address of the linkstate to import into.
    #[arg(
        long,
        env = "LINKSTATE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// The tenant's API key (better in the environment than on a command line others can see).
    #[arg(long, env = "LINKSTATE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Items per request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub batch_size: u8,
    /// What is done, for resuming; default: FILE.state.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Write one JSON line per input line here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Check every line (`validateOnly`) and write nothing, here or at the server.
    #[arg(long)]
    pub dry_run: bool,
}

/// `linkstate accounts ...`.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create a tenant account and print its id and API key as JSON.
    Create {
        /// The account's name.
        #[arg(long)]
        name: String,
        /// Where the database is.
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; unset: an embedded cluster under LINKSTATE_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the embedded cluster and dev secrets live.
    #[arg(long, env = "LINKSTATE_DATA_DIR", default_value = "./.linkstate")]
    pub data_dir: PathBuf,
}

/// Settings of `serve` (and, with defaults filled in, of `dev`), in groups that are passed
/// down as they are.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where the database is.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Database connections one process keeps at most.
    #[arg(long, env = "LINKSTATE_DATABASE_POOL_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_size: u32,
    /// The keys that seal credentials and secrets at rest.
    #[command(flatten)]
    pub keys: KeySettings,
    /// Where the listeners are, and their limits.
    #[command(flatten)]
    pub listen: ListenSettings,
    /// The Plaid API.
    #[command(flatten)]
    pub plaid: PlaidSettings,
    /// The Akoya API.
    #[command(flatten)]
    pub akoya: AkoyaSettings,
    /// The job workers and background refresh.
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// The event log and its streams.
    #[command(flatten)]
    pub events: EventSettings,
    /// Outbound webhooks to the customers' endpoints.
    #[command(flatten)]
    pub delivery: DeliverySettings,
    /// Each tenant's share: request rate, open streams, running imports.
    #[command(flatten)]
    pub tenants: TenantSettings,
}

/// Each tenant's share of one process, so that one tenant's flood or migration cannot starve
/// the others.
#[derive(Debug, Clone, Args)]
pub struct TenantSettings {
    /// gRPC requests per second per API key (a token bucket; 0: no limit). Health and
    /// reflection are not limited.
    #[arg(long, env = "LINKSTATE_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// Requests one API key may send at once after a quiet spell.
    #[arg(long, env = "LINKSTATE_RATE_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Event streams one account may hold open on one process.
    #[arg(long, env = "LINKSTATE_MAX_STREAMS_PER_ACCOUNT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_account: u32,
    /// ImportConnections requests one account may have running at once on one process.
    #[arg(long, env = "LINKSTATE_MAX_IMPORTS_PER_ACCOUNT", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_imports_per_account: u32,
}

impl Default for TenantSettings {
    /// The defaults of the settings (contract section 1).
    fn default() -> Self {
        Self {
            rate_limit: 100,
            rate_burst: 200,
            max_streams_per_account: 1000,
            max_imports_per_account: 4,
        }
    }
}

/// The Plaid API and its keys.
#[derive(Debug, Clone, Args)]
pub struct PlaidSettings {
    /// Plaid API base.
    #[arg(
        long,
        env = "PLAID_BASE_URL",
        default_value = "https://sandbox.plaid.com"
    )]
    pub plaid_base_url: String,
    /// Plaid client id.
    #[arg(long, env = "PLAID_CLIENT_ID")]
    pub plaid_client_id: Option<String>,
    /// Plaid secret.
    #[arg(long, env = "PLAID_SECRET", hide_env_values = true)]
    pub plaid_secret: Option<String>,
}

impl PlaidSettings {
    /// The Plaid client's configuration.
    pub fn client(&self) -> PlaidConfig {
        PlaidConfig {
            base_url: self.plaid_base_url.trim_end_matches('/').to_string(),
            client_id: self.plaid_client_id.clone().filter(|s| !s.is_empty()),
            secret: self
                .plaid_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The Akoya API and the app's credentials.
#[derive(Debug, Clone, Args)]
pub struct AkoyaSettings {
    /// Akoya's data API base.
    #[arg(
        long,
        env = "AKOYA_PRODUCTS_URL",
        default_value = "https://sandbox-products.ddp.akoya.com"
    )]
    pub akoya_products_url: String,
    /// Akoya's token endpoint base (`{idp}/token`).
    #[arg(
        long,
        env = "AKOYA_IDP_URL",
        default_value = "https://sandbox-idp.ddp.akoya.com"
    )]
    pub akoya_idp_url: String,
    /// Akoya client id.
    #[arg(long, env = "AKOYA_CLIENT_ID")]
    pub akoya_client_id: Option<String>,
    /// Akoya client secret.
    #[arg(long, env = "AKOYA_CLIENT_SECRET", hide_env_values = true)]
    pub akoya_client_secret: Option<String>,
}

impl AkoyaSettings {
    /// The Akoya client's configuration.
    pub fn client(&self) -> AkoyaConfig {
        AkoyaConfig {
            products_url: self.akoya_products_url.trim_end_matches('/').to_string(),
            idp_url: self.akoya_idp_url.trim_end_matches('/').to_string(),
            client_id: self.akoya_client_id.clone().filter(|s| !s.is_empty()),
            client_secret: self
                .akoya_client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            timeout: Duration::from_secs(30),
        }
    }
}

/// How jobs run, and how often connections are refreshed in the background.
#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Jobs one process runs at once.
    #[arg(long = "worker-concurrency", env = "LINKSTATE_WORKER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How long a replica that stopped renewing its claim (it died) keeps a job from the others
    /// (`30s`); a live replica renews its claims three times per lease.
    #[arg(long = "job-lease", env = "LINKSTATE_JOB_LEASE", default_value = "30s", value_parser = positive_duration)]
    pub job_lease: Duration,
    /// How often each connection is aggregated again in the background (`24h`, `90m`, ...).
    #[arg(long = "refresh-interval", env = "LINKSTATE_REFRESH_INTERVAL", default_value = "24h", value_parser = positive_duration)]
    pub refresh_interval: Duration,
    /// Background refreshes queued or running at once, across all replicas.
    #[arg(long = "refresh-max-concurrent", env = "LINKSTATE_REFRESH_MAX_CONCURRENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub refresh_max_concurrent: u32,
    /// On SIGTERM, how long running jobs may take to finish before they are given back and the
    /// process exits (`30s`).
    #[arg(long = "shutdown-grace", env = "LINKSTATE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// A provider's failures in a row (5xx, timeouts, broken connections, after each call's
    /// quick retries) that open its circuit: its aggregations wait instead of calling it.
    #[arg(long = "circuit-threshold", env = "LINKSTATE_CIRCUIT_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuit_threshold: u32,
    /// How long an open circuit waits before one trial call (`10s`); doubled after each failed
    /// trial, up to LINKSTATE_CIRCUIT_MAX_COOL_DOWN.
    #[arg(long = "circuit-cool-down", env = "LINKSTATE_CIRCUIT_COOL_DOWN", default_value = "10s", value_parser = positive_duration)]
    pub circuit_cool_down: Duration,
    /// The longest wait between trials of a provider that stays down (`5m`).
    #[arg(long = "circuit-max-cool-down", env = "LINKSTATE_CIRCUIT_MAX_COOL_DOWN", default_value = "5m", value_parser = positive_duration)]
    pub circuit_max_cool_down: Duration,
}

impl WorkerSettings {
    /// When a provider's circuit opens, and for how long.
    pub fn circuit_policy(&self) -> CircuitPolicy {
        CircuitPolicy {
            threshold: self.circuit_threshold,
            cool_down: self.circuit_cool_down,
            max_cool_down: self.circuit_max_cool_down.max(self.circuit_cool_down),
        }
    }
}

/// The event log: how long it is kept, and its streams.
#[derive(Debug, Clone, Args)]
pub struct EventSettings {
    /// How long events, and the processed webhook deliveries behind them, are kept; older ones
    /// are pruned (`30d`).
    #[arg(long = "event-retention", env = "LINKSTATE_EVENT_RETENTION", default_value = "30d", value_parser = positive_duration)]
    pub retention: Duration,
    /// Event streams one process serves at once; more answer RESOURCE_EXHAUSTED.
    #[arg(long = "max-streams", env = "LINKSTATE_MAX_STREAMS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// How often the event hub reads the log when no wake-up came; other replicas' writes
    /// arrive by LISTEN/NOTIFY, and this poll is the fallback (`200ms`).
    #[arg(long = "event-poll-interval", env = "LINKSTATE_EVENT_POLL_INTERVAL", default_value = "200ms", value_parser = positive_duration)]
    pub poll_interval: Duration,
}

/// Outbound webhooks: Meld's retry schedule, the attempt timeout, which addresses may be called,
/// and how many requests are in flight.
#[derive(Debug, Clone, Args)]
pub struct DeliverySettings {
    /// The wait before the first retry; each later one doubles (`60s`).
    #[arg(id = "delivery-retry-base", long = "delivery-retry-base", env = "LINKSTATE_DELIVERY_RETRY_BASE", default_value = "60s", value_parser = positive_duration)]
    pub retry_base: Duration,
    /// The longest wait between retries, and the most a `Retry-After` is honoured for (`1h`).
    #[arg(id = "delivery-retry-max", long = "delivery-retry-max", env = "LINKSTATE_DELIVERY_RETRY_MAX", default_value = "1h", value_parser = positive_duration)]
    pub retry_max: Duration,
    /// How long after its first attempt a delivery is retried before it FAILS (`72h`).
    #[arg(id = "delivery-give-up", long = "delivery-give-up", env = "LINKSTATE_DELIVERY_GIVE_UP", default_value = "72h", value_parser = positive_duration)]
    pub give_up: Duration,
    /// How long one attempt may take (`10s`).
    #[arg(id = "delivery-timeout", long = "delivery-timeout", env = "LINKSTATE_DELIVERY_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Whether endpoints on loopback, private and other non-public addresses (and plain http)
    /// are allowed: for development only.
    #[arg(id = "delivery-allow-private", long = "delivery-allow-private", env = "LINKSTATE_DELIVERY_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private: bool,
    /// Requests in flight at once, across all profiles, in one process.
    #[arg(id = "delivery-concurrency", long = "delivery-concurrency", env = "LINKSTATE_DELIVERY_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Requests in flight at once to one profile, in one process: a slow endpoint holds only
    /// these.
    #[arg(id = "delivery-profile-concurrency", long = "delivery-profile-concurrency", env = "LINKSTATE_DELIVERY_PROFILE_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub profile_concurrency: u32,
}

impl DeliverySettings {
    /// The retry schedule.
    pub fn policy(&self) -> crate::domain::delivery::RetryPolicy {
        crate::domain::delivery::RetryPolicy {
            base: self.retry_base,
            max: self.retry_max,
            give_up: self.give_up,
        }
    }
}

/// Where the listeners are, and how long clients may take and how many may connect: no client
/// holds a connection forever.
#[derive(Debug, Clone, Args)]
pub struct ListenSettings {
    /// gRPC listen address.
    #[arg(long, env = "LINKSTATE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Webhook, health and metrics HTTP listen address.
    #[arg(long, env = "LINKSTATE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Base URL at which providers reach the HTTP listener; default `http://{LINKSTATE_HTTP_ADDR}`.
    #[arg(long, env = "LINKSTATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The largest provider webhook body accepted, in bytes.
    #[arg(long, env = "LINKSTATE_WEBHOOK_MAX_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_max_bytes: u32,
    /// Time an HTTP client has to send a request's headers; also how long a kept-alive HTTP
    /// connection waits for its next request (`10s`).
    #[arg(long, env = "LINKSTATE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub http_header_timeout: Duration,
    /// Time an HTTP client has to send a request's body (`30s`).
    #[arg(long, env = "LINKSTATE_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub http_body_timeout: Duration,
    /// An HTTP connection on which no byte moves either way for this long is closed (`60s`).
    #[arg(long, env = "LINKSTATE_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    pub http_idle_timeout: Duration,
    /// HTTP connections served at once; more wait until one closes.
    #[arg(long, env = "LINKSTATE_HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// How often an idle gRPC connection is pinged (HTTP/2 keep-alive); one that does not
    /// answer within 10 s is closed (`30s`).
    #[arg(long, env = "LINKSTATE_GRPC_KEEPALIVE", default_value = "30s", value_parser = positive_duration)]
    pub grpc_keepalive: Duration,
    /// Calls one gRPC connection may have open at once (HTTP/2 concurrent streams).
    #[arg(long, env = "LINKSTATE_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_max_concurrent_streams: u32,
}

impl ListenSettings {
    /// The HTTP listener's limits.
    pub fn http(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: self.http_header_timeout,
            body_timeout: self.http_body_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.http_max_connections as usize,
            max_body_bytes: self.webhook_max_bytes as usize,
        }
    }

    /// The gRPC listener's limits.
    pub fn grpc(&self) -> GrpcLimits {
        GrpcLimits {
            keepalive_interval: self.grpc_keepalive,
            max_concurrent_streams: self.grpc_max_concurrent_streams,
            ..GrpcLimits::default()
        }
    }
}

/// A duration setting that must be more than zero (`10s`, `500ms`).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

/// How log lines are written on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: ANSI colours only when standard error is a terminal.
    Text,
    /// For machines: one JSON object per line, with the span fields.
    Json,
}

/// Settings of `dev`: the service's, plus where the simulator listens.
#[derive(Debug, Clone, Args)]
pub struct DevSettings {
    /// The service's settings.
    #[command(flatten)]
    pub service: Settings,
    /// Where the provider simulator listens.
    #[arg(long, env = "LINKSTATE_SIM_ADDR", default_value = "127.0.0.1:8090")]
    pub sim_addr: SocketAddr,
    /// Where the local webhook receiver listens: a profile pointed at it shows deliveries.
    #[arg(
        long,
        env = "LINKSTATE_DEV_RECEIVER_ADDR",
        default_value = "127.0.0.1:8091"
    )]
    pub receiver_addr: SocketAddr,
}

/// Settings of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulatorSettings {
    /// Where the provider simulator listens.
    #[arg(long, env = "LINKSTATE_SIM_ADDR", default_value = "127.0.0.1:8090")]
    pub sim_addr: SocketAddr,
    /// The Plaid client id the simulator accepts.
    #[arg(long, env = "PLAID_CLIENT_ID", default_value = SIM_CLIENT_ID)]
    pub plaid_client_id: String,
    /// The Plaid secret the simulator accepts.
    #[arg(long, env = "PLAID_SECRET", default_value = SIM_SECRET, hide_env_values = true)]
    pub plaid_secret: String,
}

/// A setting that is missing or malformed; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct SettingError {
    /// The environment variable.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// The keys that seal provider credentials, account numbers and webhook secrets at rest.
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// 32-byte key, base64, sealing provider credentials at rest.
    #[arg(long, env = "LINKSTATE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// Comma-separated old keys that still open what they sealed (new writes use the key above).
    #[arg(long, env = "LINKSTATE_ENCRYPTION_OLD_KEYS", hide_env_values = true)]
    pub encryption_old_keys: Option<String>,
}

impl KeySettings {
    /// The cipher for values at rest: the key is required.
    pub fn cipher(&self) -> Result<Cipher, SettingError> {
        let key = self.encryption_key.as_deref().ok_or_else(|| SettingError {
            setting: "LINKSTATE_ENCRYPTION_KEY",
            problem: "is required: 32 random bytes in base64 (`openssl rand -base64 32`)".into(),
        })?;
        let cipher = Cipher::from_base64(key).map_err(|e| SettingError {
            setting: "LINKSTATE_ENCRYPTION_KEY",
            problem: e.to_string(),
        })?;
        let old_keys = self.encryption_old_keys.as_deref().unwrap_or_default();
        let old_keys = old_keys.split(',').map(str::trim).filter(|k| !k.is_empty());
        old_keys.enumerate().try_fold(cipher, |cipher, (i, key)| {
            cipher.with_old_keys([key]).map_err(|e| SettingError {
                setting: "LINKSTATE_ENCRYPTION_OLD_KEYS",
                problem: format!("key {}: {e}", i + 1),
            })
        })
    }
}

impl Settings {
    /// The base URL providers reach us at.
    pub fn public_url(&self) -> Result<String, SettingError> {
        let url = self
            .listen
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen.http_addr));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SettingError {
                setting: "LINKSTATE_PUBLIC_URL",
                problem: format!("{url:?} is not an http(s) URL"),
            });
        }
        Ok(url.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    #[test]
    fn every_argument_is_well_formed_and_named_once() {
        name_values_by_env(Cli::command()).debug_assert();
    }
}

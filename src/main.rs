//! The `linkstate` command line.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[cfg(feature = "dev-tools")]
mod dev_tools;

use linkstate::app::{self, AppConfig};
use linkstate::cipher::Cipher;
use linkstate::config::{AccountsCommand, Cli, Command, DatabaseSettings, LogFormat, Settings};
use linkstate::store::embedded::EmbeddedCluster;
use linkstate::store::{self, accounts};

/// jemalloc gives freed memory back to the system within a second or so (its background thread
/// purges dirty pages on a decay); glibc's allocator kept what a burst of large events had
/// taken (60 MB of it, for good, in `tests/limits.rs`), and so, mostly, did mimalloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: purge freed pages by a background thread, after about a second.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() {
    let cli = match Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("linkstate: {}", one_line(&error.to_string()));
            std::process::exit(2);
        }
    };
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve(settings) => serve(settings).await,
        #[cfg(feature = "dev-tools")]
        Command::Dev(settings) => dev_tools::dev(settings).await,
        Command::Migrate(database) => migrate(database).await,
        Command::Accounts(AccountsCommand::Create { name, database }) => {
            create_account(&name, database).await
        }
        #[cfg(feature = "dev-tools")]
        Command::Simulate(settings) => dev_tools::simulate(settings).await,
        Command::Import(settings) => bulk_import(settings).await,
        Command::Reseal(settings) => reseal(settings).await,
        #[cfg(not(feature = "dev-tools"))]
        Command::Dev(_) | Command::Simulate(_) => Err(anyhow::anyhow!(
            "`dev` and `simulate` were left out of this build (it has no `dev-tools` feature)"
        )),
    };
    if let Err(error) = result {
        // One line that names what is wrong.
        eprintln!("linkstate: {error:#}");
        std::process::exit(1);
    }
}

/// One line that names the setting, not clap's whole usage text: its first line, and the
/// list under it when the first line ends in a colon ("required arguments were not provided:").
fn one_line(clap_error: &str) -> String {
    let mut lines = clap_error.lines();
    let mut line = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    if line.ends_with(':') {
        let listed: Vec<&str> = lines
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        line = format!("{line} {}", listed.join(", "));
    }
    line
}

/// Logs on standard error: for people (colours only on a terminal, so log files stay plain
/// text) or one JSON object per line, with the fields of the spans around each line.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = log_filter().unwrap_or_else(|problem| {
        eprintln!("linkstate: RUST_LOG: {problem}");
        std::process::exit(2);
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// The log filter: `RUST_LOG`, else `info`; a malformed one is a setting error like any other,
/// not a silent `info`.
fn log_filter() -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if directives.trim().is_empty() => Ok(EnvFilter::new("info")),
        Ok(directives) => EnvFilter::try_new(&directives).map_err(|e| one_line(&e.to_string())),
        Err(std::env::VarError::NotPresent) => Ok(EnvFilter::new("info")),
        Err(std::env::VarError::NotUnicode(_)) => Err("is not valid UTF-8".into()),
    }
}

/// A database URL, and the embedded cluster behind it when this process started one.
struct Database {
    url: String,
    embedded: Option<EmbeddedCluster>,
}

impl Database {
    async fn open(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        if let Some(url) = &settings.database_url {
            return Ok(Self {
                url: url.clone(),
                embedded: None,
            });
        }
        let data_dir = settings.data_dir.clone();
        let cluster =
            tokio::task::spawn_blocking(move || EmbeddedCluster::start(&data_dir)).await??;
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            "DATABASE_URL is unset: using the embedded PostgreSQL cluster"
        );
        store::create_database_if_missing(&cluster.database_url("postgres"), "linkstate").await?;
        Ok(Self {
            url: cluster.database_url("linkstate"),
            embedded: Some(cluster),
        })
    }

    /// The embedded cluster is ours to migrate; a database named by DATABASE_URL is migrated
    /// deliberately, with `linkstate migrate`, so `serve` only checks it.
    async fn prepare_schema(&self) -> anyhow::Result<()> {
        if self.embedded.is_some() {
            store::migrations::run(&self.url).await?;
            return Ok(());
        }
        match store::migrations::pending(&self.url).await? {
            0 => Ok(()),
            n => anyhow::bail!(
                "DATABASE_URL: the database lacks {n} migration(s): run `linkstate migrate` first"
            ),
        }
    }

    async fn close(self) {
        if let Some(cluster) = self.embedded.filter(EmbeddedCluster::started_here) {
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => tracing::info!("embedded PostgreSQL stopped"),
                Ok(Err(error)) => tracing::warn!(%error, "could not stop embedded PostgreSQL"),
                Err(error) => tracing::warn!(%error, "could not stop embedded PostgreSQL"),
            }
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let cipher = settings.keys.cipher()?;
    let public_url = settings.public_url()?;
    let database = Database::open(&settings.database).await?;
    let running = match database.prepare_schema().await {
        Ok(()) => start(&settings, &database, cipher, public_url).await,
        Err(error) => Err(error),
    };
    let outcome = match running {
        Ok(app) => {
            shutdown_signal().await;
            app.stop().await;
            Ok(())
        }
        Err(error) => Err(error),
    };
    database.close().await;
    outcome
}

async fn start(
    settings: &Settings,
    database: &Database,
    cipher: Cipher,
    public_url: String,
) -> anyhow::Result<app::RunningApp> {
    let grpc_listener = TcpListener::bind(settings.listen.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "LINKSTATE_GRPC_ADDR: cannot listen on {}",
                settings.listen.grpc_addr
            )
        })?;
    let http_listener = TcpListener::bind(settings.listen.http_addr)
        .await
        .with_context(|| {
            format!(
                "LINKSTATE_HTTP_ADDR: cannot listen on {}",
                settings.listen.http_addr
            )
        })?;
    app::start(AppConfig {
        database_url: database.url.clone(),
        grpc_listener,
        http_listener,
        public_url,
        cipher,
        pool_size: settings.pool_size as usize,
        plaid: settings.plaid.client(),
        akoya: settings.akoya.client(),
        worker: settings.worker.clone(),
        events: settings.events.clone(),
        delivery: settings.delivery.clone(),
        tenants: settings.tenants.clone(),
        http_limits: settings.listen.http(),
        grpc_limits: settings.listen.grpc(),
    })
    .await
}

async fn migrate(settings: DatabaseSettings) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    let outcome = store::migrations::run(&database.url).await;
    database.close().await;
    let applied = outcome?;
    println!("applied {applied} migration(s)");
    Ok(())
}

async fn create_account(name: &str, settings: DatabaseSettings) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        anyhow::bail!("--name: must not be empty");
    }
    let database = Database::open(&settings).await?;
    let created = async {
        let pool = store::pool(&database.url, 1)?;
        let mut conn = store::connect(&pool).await?;
        anyhow::Ok(accounts::create(&mut conn, name.trim()).await?)
    }
    .await;
    database.close().await;
    let (account_id, key) = created?;
    println!(
        "{}",
        serde_json::json!({"accountId": account_id.to_string(), "apiKey": key.expose()})
    );
    Ok(())
}

/// `linkstate import`: exits 0 when every line was imported, 1 when some were not, 2 when
/// the run could not start (or the server refused the key).
async fn bulk_import(settings: linkstate::config::ImportSettings) -> anyhow::Result<()> {
    match linkstate::bulk_import::run(settings).await {
        Ok(outcome) => {
            if let Some(reason) = &outcome.stopped_by {
                eprintln!("linkstate: {reason}");
            }
            std::process::exit(outcome.exit_code());
        }
        Err(error) => {
            eprintln!("linkstate: {error}");
            std::process::exit(2);
        }
    }
}

async fn reseal(settings: linkstate::config::ResealSettings) -> anyhow::Result<()> {
    let cipher = settings.keys.cipher()?;
    let database = Database::open(&settings.database).await?;
    let outcome = async {
        database.prepare_schema().await?;
        let pool = store::pool(&database.url, 2)?;
        anyhow::Ok(linkstate::reseal::run(&pool, &cipher).await?)
    }
    .await;
    database.close().await;
    let report = outcome?;
    print!("{}", report.table());
    if !report.done() {
        anyhow::bail!(
            "{} value(s) open with no configured key ({}): add the key that sealed them to LINKSTATE_ENCRYPTION_OLD_KEYS and run again",
            report.unopenable,
            report.unopenable_named.join(", ")
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}

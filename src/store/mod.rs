//! Storage: the Postgres pool, the migrations, and one module of queries per table family.
//!
//! Error policy: queries return [`StoreError`]. Callers branch on `NotFound`, `Conflict` (a
//! unique key taken by a concurrent writer) and `Unavailable` (the API turns them into
//! NOT_FOUND and UNAVAILABLE); everything else is a bug or a broken database and surfaces as
//! INTERNAL with the detail in the log, not in the response.

pub mod accounts;
pub mod connections;
pub mod credentials;
pub mod customers;
pub mod embedded;
pub mod events;
pub mod financial_accounts;
pub mod flows;
pub mod institutions;
pub mod jobs;
pub mod leases;
pub mod migrations;
pub mod prepared;
pub mod refresh_schedule;
pub mod schema;
pub mod transactions;
pub mod webhooks;

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

/// The shared pool of database connections.
pub type DbPool = Pool<AsyncPgConnection>;

/// One connection taken from the pool.
pub type DbConn = Object<AsyncPgConnection>;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row (within the caller's tenant).
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or gave no connection in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique key is taken: another request wrote the same thing first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value that does not parse: the database holds something the code never writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for StoreError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => StoreError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.constraint_name().unwrap_or("unique key").to_string())
            }
            Error::DatabaseError(kind, info) if is_unavailable(kind, info.message()) => {
                StoreError::Unavailable(info.message().to_string())
            }
            other => StoreError::Query(other),
        }
    }
}

/// Whether a database error says the server cannot serve now (gone, stopping, starting, a
/// standby, too slow) rather than that the statement is wrong: only those are worth a retry.
/// diesel keeps no SQLSTATE for these, so the server's fixed messages tell them apart.
fn is_unavailable(kind: diesel::result::DatabaseErrorKind, message: &str) -> bool {
    use diesel::result::DatabaseErrorKind as Kind;
    const MESSAGES: [&str; 5] = [
        "terminating connection",
        "the database system is",
        "canceling statement due to statement timeout",
        "no connection to the server",
        "server closed the connection",
    ];
    matches!(
        kind,
        Kind::ClosedConnection | Kind::UnableToSendCommand | Kind::ReadOnlyTransaction
    ) || MESSAGES.iter().any(|m| message.starts_with(m))
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

/// Builds the pool; connections are made lazily, so this does not touch the database.
pub fn pool(database_url: &str, max_size: usize) -> Result<DbPool, StoreError> {
    // No test query on every checkout: it was a third of the round trips of recording a webhook.
    // A connection whose socket closed is still dropped on return, and a query on one that died
    // unnoticed fails like any query on a database that went away.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Takes a connection from the pool.
pub async fn connect(pool: &DbPool) -> Result<DbConn, StoreError> {
    Ok(pool.get().await?)
}

/// Whether the database answers a trivial query.
pub async fn ping(pool: &DbPool) -> bool {
    use diesel_async::RunQueryDsl;
    match pool.get().await {
        Ok(mut conn) => diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// Creates database `name` on the server at `admin_url` unless it exists.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(name)
            .get_result::<Found>(&mut conn)
            .await?;
    if !found.exists {
        // Identifiers cannot be bound; `name` is ours, never a user's.
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

//! The schema migrations, embedded in the binary.

use diesel_async::AsyncConnection;
use diesel_async::AsyncMigrationHarness;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StoreError;

/// Every migration in `migrations/`.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies pending migrations to the database at `database_url`; returns how many ran.
pub async fn run(database_url: &str) -> Result<usize, StoreError> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    // The harness drives the async connection from blocking code (`block_in_place`), so this
    // needs the multi-threaded runtime.
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Unavailable(format!("migrations failed: {e}")))?;
    Ok(applied.len())
}

/// How many migrations the database at `database_url` still lacks.
pub async fn pending(database_url: &str) -> Result<usize, StoreError> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    harness
        .pending_migrations(MIGRATIONS)
        .map(|pending| pending.len())
        .map_err(|e| StoreError::Unavailable(format!("cannot read migrations: {e}")))
}

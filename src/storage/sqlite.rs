//! SQLite backend: the embedded default.
//!
//! One writer connection and a pool of readers. WAL lets readers run beside
//! the writer; a single writer means SQLite never has to arbitrate write
//! locks, so `database is locked` cannot reach a client.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Readers beyond the core count only queue inside SQLite; 4 covers a 2-core
/// machine with room for a slow query.
const READERS: u32 = 4;

/// How long a connection waits for a lock (a checkpoint, another process)
/// before failing with SQLITE_BUSY, which the service reports as UNAVAILABLE.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a pooled connection before UNAVAILABLE.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Readers and the writer are separate pools.
    const SHARED_POOL: bool = false;

    pub(super) async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: an acknowledged write
            // survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {url:?}"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .context("applying SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening SQLite readers for {url:?}"))?;
        Ok(Self { reader, writer })
    }
}

super::sql::impl_store!(SqliteStore, sqlx::Sqlite);

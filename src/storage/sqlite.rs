//! SQLite backend: the embedded default.
//!
//! Two writer connections and a pool of readers. WAL lets readers run
//! beside the writers. Creates, nearly all of the writes, go through the
//! group committer's own connection (`sqlite_commit.rs`); the rest through
//! sqlx's single writer, and SQLite's busy timeout settles the rare moment
//! both want the write lock. The two hot reads (one timesheet, one page)
//! skip sqlx's worker threads: see `sqlite_reads.rs`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;

use super::{
    sqlite_commit::Committer,
    sqlite_reads::{Inline, Reads},
};
use sqlx::{
    Connection, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
        SqliteSynchronous,
    },
};

/// Readers beyond the core count only queue inside SQLite; 4 covers a 2-core
/// machine with room for a slow query.
const READERS: u32 = 4;

/// How long a connection waits for a lock (a checkpoint, another process)
/// before failing with SQLITE_BUSY, which the service reports as UNAVAILABLE.
/// At startup it is also how long a second process waits for the file.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's unix VFS that takes one exclusive lock on the file for the whole
/// process, the first time the file is read, and keeps the WAL index in
/// process memory; connections in this process coordinate in memory.
///
/// With the default VFS every transaction takes and drops POSIX locks on
/// the database and on its `-shm` file, four or more `fcntl` system calls,
/// which were two fifths of a GetTimesheet's storage CPU under load
/// (docs/performance.md). The price: no other process can open the file
/// while the server runs; it waits `BUSY_TIMEOUT` and fails with "database
/// is locked". That also enforces what the deployment guide asks: one
/// server per SQLite file.
///
/// Every connection, readers included, must open the file read-write: a
/// read-only one falls back to per-transaction POSIX locks, which in the
/// same process would downgrade and then drop the process lock. Readers
/// are kept from writing with `PRAGMA query_only` instead.
pub(super) const VFS: &str = "unix-excl";

pub(super) struct SqliteStore {
    reader: SqlitePool,
    /// Every write but creates, and the migrations.
    writer: SqlitePool,
    /// Creates, in groups (see `sqlite_commit.rs`).
    committer: Committer,
    /// The hot reads, without sqlx's thread hand-offs.
    reads: Reads,
}

impl SqliteStore {
    /// Readers and the writer are separate pools.
    const SHARED_POOL: bool = false;

    pub(super) async fn connect(url: &str, pool: super::PoolOptions) -> anyhow::Result<Self> {
        // Read from the URL as given: sqlx keeps the flag private.
        let in_memory = url.contains(":memory:")
            || url
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|pair| pair == "mode=memory"));
        anyhow::ensure!(
            !in_memory,
            "an in-memory SQLite database ({url:?}) keeps nothing: give a file, sqlite://<path>"
        );
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: an acknowledged write
            // survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement journals and sorts in memory, not in temporary files.
            .pragma("temp_store", "MEMORY")
            .vfs(VFS);
        // Opened outside the pool first and held until the pool has its own
        // connection: a pool that cannot connect reports only its timeout,
        // and SQLite's "database is locked" from a file another process
        // holds is the error an operator needs.
        let first = SqliteConnection::connect_with(&options)
            .await
            .map_err(|err| {
                let hint = if matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("5")) {
                    " (another process holds it: one server per SQLite file)"
                } else {
                    ""
                };
                anyhow::Error::new(err).context(format!("opening SQLite database {url:?}{hint}"))
            })?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // Never recycled: while it is open this process holds the file
            // (see `VFS`), so no other process can slip in between.
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {url:?}"))?;
        first
            .close()
            .await
            .context("closing the first SQLite connection")?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .context("applying SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options.clone().pragma("query_only", "ON"))
            .await
            .with_context(|| format!("opening SQLite readers for {url:?}"))?;
        let path = options.get_filename();
        Ok(Self {
            reader,
            writer,
            committer: Committer::start(path)?,
            reads: Reads::new(path),
        })
    }

    /// Group commit: the insert joins whatever else is queued, they commit
    /// in one transaction (one fsync), and the caller is answered only after
    /// that commit, so an acknowledged insert survives a crash.
    async fn insert_durably(&self, new: NewTimesheet) -> Result<Inserted> {
        self.committer.insert(new).await
    }

    fn group_stats(&self) -> Option<super::WriteStats> {
        Some(self.committer.stats())
    }

    /// Read on this thread when that needs no wait; a read that would wait
    /// for a lock goes through the sqlx pool, which waits off the runtime.
    async fn get_row(&self, owner: &str, id: &str) -> Result<Option<super::TimesheetRecord>> {
        match self.reads.get(owner, id) {
            Inline::Done(result) => result,
            Inline::WouldWait => self.sqlx_get(owner, id).await,
        }
    }

    async fn list_rows(&self, q: &super::ListQuery) -> Result<Vec<super::TimesheetRecord>> {
        match self.reads.list(q) {
            Inline::Done(result) => result,
            Inline::WouldWait => self.sqlx_list(q).await,
        }
    }

    /// Stops taking inserts and waits until the queued ones are committed.
    async fn stop_writes(&self) {
        self.committer.stop().await;
    }

    /// Readiness fails once the committer no longer takes inserts, so a
    /// replica whose creates would all fail is taken out of rotation.
    fn writes_accepted(&self) -> Result<()> {
        self.committer.check()
    }
}

use super::{Inserted, NewTimesheet, Result};

super::sql::impl_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_in_memory_database_is_refused_because_it_keeps_nothing() {
        for url in ["sqlite::memory:", "sqlite://timesheets.db?mode=memory"] {
            let pool = super::super::PoolOptions {
                max_connections: 4,
                acquire_timeout: std::time::Duration::from_secs(2),
            };
            let refused = super::SqliteStore::connect(url, pool).await.err();
            let message = refused.map(|err| format!("{err:#}")).unwrap_or_default();
            assert!(message.contains("keeps nothing"), "{url}: {message:?}");
        }
    }
}

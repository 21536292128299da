//! SQLite backend: the embedded default.
//!
//! Two writer connections and a pool of readers. WAL lets readers run
//! beside the writers. Creates, nearly all of the writes, go through the
//! group committer's own connection (`sqlite_commit.rs`); the rest through
//! sqlx's single writer, and SQLite's busy timeout settles the rare moment
//! both want the write lock. The two hot reads (one timesheet, one page)
//! skip sqlx's worker threads: see `sqlite_reads.rs`; single rows are also
//! cached, see `row_cache.rs`.

use std::{future::Future, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use tracing::Instrument;

use super::{
    Error,
    row_cache::{Lookup, RowCache},
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
    /// Single rows for `get`; `None` when the operator turned it off.
    rows: Option<Arc<RowCache>>,
    /// Row changes still running, whether or not their callers still wait.
    changes: tokio_util::task::TaskTracker,
}

impl SqliteStore {
    /// Readers and the writer are separate pools.
    const SHARED_POOL: bool = false;

    pub(super) async fn connect(
        url: &str,
        store_options: super::StoreOptions,
    ) -> anyhow::Result<Self> {
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
            .acquire_timeout(store_options.acquire_timeout)
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
            .acquire_timeout(store_options.acquire_timeout)
            .connect_with(options.clone().pragma("query_only", "ON"))
            .await
            .with_context(|| format!("opening SQLite readers for {url:?}"))?;
        let path = options.get_filename();
        Ok(Self {
            reader,
            writer,
            committer: Committer::start(path)?,
            reads: Reads::new(path),
            rows: RowCache::new(store_options.row_cache_bytes),
            changes: tokio_util::task::TaskTracker::new(),
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

    fn cache_stats(&self) -> Option<super::RowCacheStats> {
        self.rows.as_deref().map(RowCache::stats)
    }

    /// From the row cache when it has the row; ids are unique, so a cached
    /// row of another owner means none of this one's. Otherwise read on this
    /// thread when that needs no wait; a read that would wait for a lock
    /// goes through the sqlx pool, which waits off the runtime.
    async fn get_row(&self, owner: &str, id: &str) -> Result<Option<super::TimesheetRecord>> {
        let ticket = match self.rows.as_deref().map(|rows| rows.get(id)) {
            Some(Lookup::Hit(row)) => return Ok((row.user_id == owner).then_some(row)),
            Some(Lookup::Miss(ticket)) => Some(ticket),
            None => None,
        };
        let found = match self.reads.get(owner, id) {
            Inline::Done(result) => result,
            Inline::WouldWait => self.sqlx_get(owner, id).await,
        }?;
        if let (Some(rows), Some(ticket), Some(row)) = (&self.rows, ticket, &found) {
            rows.fill(ticket, id, row);
        }
        Ok(found)
    }

    /// Runs `change`, a statement that changes or deletes the existing row
    /// `id`, with the row cache closed to that row until it has committed
    /// or failed. It runs as its own task: a caller that goes away drops
    /// only its wait, while the statement, which sqlx's worker thread runs
    /// to the end regardless, still holds the cache closed until it is done.
    async fn change_row<T: Send + 'static>(
        &self,
        id: &str,
        change: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let Some(rows) = &self.rows else {
            return change.await;
        };
        let changing = rows.changing(id);
        let task = async move {
            let done = change.await;
            drop(changing);
            done
        };
        self.changes
            .spawn(task.instrument(tracing::Span::current()))
            .await
            .map_err(|err| Error::Internal(Arc::new(err)))?
    }

    async fn list_rows(&self, q: &super::ListQuery) -> Result<Vec<super::TimesheetRecord>> {
        match self.reads.list(q) {
            Inline::Done(result) => result,
            Inline::WouldWait => self.sqlx_list(q).await,
        }
    }

    /// Stops taking inserts and waits until the queued ones, and the row
    /// changes under way, are committed. Each change is one or two
    /// statements, bounded by the pool's acquire timeout and SQLite's busy
    /// timeout, so this wait is too.
    async fn stop_writes(&self) {
        self.changes.close();
        self.changes.wait().await;
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
    use std::time::Duration;

    use futures::FutureExt;

    use super::SqliteStore;
    use crate::{
        domain::{RawTimesheet, TimesheetInput},
        storage::{NewTimesheet, Store, StoreOptions, sqlite_reads::tests::new_database_path},
    };

    /// A store on a new file, migrated by `connect` as in production.
    async fn store() -> SqliteStore {
        let url = format!("sqlite://{}", new_database_path().display());
        let options = StoreOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
            row_cache_bytes: 64 * 1024,
        };
        SqliteStore::connect(&url, options).await.expect("open")
    }

    async fn insert(store: &SqliteStore, id: &str) {
        let raw = RawTimesheet {
            date: "2026-11-27",
            project: "Website",
            hours: 7.5,
            notes: "",
        };
        let new = NewTimesheet {
            id: id.into(),
            user_id: "alice".into(),
            input: TimesheetInput::parse(raw, &[]).expect("valid"),
            create_time_us: 1,
            created_by: "alice".into(),
            request_id: None,
            fingerprint: None,
        };
        store.insert(new).await.expect("insert");
    }

    #[tokio::test]
    async fn a_cached_row_is_answered_for_its_owner_only() {
        let store = store().await;
        insert(&store, "a").await;
        for _ in 0..2 {
            // The first read fills the cache, the rest are answered from it.
            assert!(store.get("alice", "a").await.expect("get").is_some());
            assert!(store.get("bob", "a").await.expect("get").is_none());
        }
        let stats = store.row_cache_stats().expect("a cache");
        assert_eq!((stats.misses, stats.hits), (1, 3));
        store.close().await;
    }

    #[tokio::test]
    async fn an_approval_whose_caller_went_away_still_reaches_the_cached_row() {
        let store = store().await;
        insert(&store, "a").await;
        assert!(
            !store
                .get("alice", "a")
                .await
                .expect("get")
                .expect("row")
                .approved
        );
        // Polled once and dropped, as when a client disconnects mid-call:
        // the change has begun (its row's shard is closed) and its task is
        // spawned, but nothing has reached SQLite yet.
        assert!(store.approve("a", "manager", 2).now_or_never().is_none());
        // Reads during the change may see either row but must not keep the
        // old one: once the approval lands, every read shows it.
        let landed = tokio::time::timeout(Duration::from_secs(10), async {
            while !store
                .get("alice", "a")
                .await
                .expect("get")
                .expect("row")
                .approved
            {
                tokio::task::yield_now().await;
            }
        });
        landed
            .await
            .expect("the approval never showed: lost, or a stale row stayed cached");
        for _ in 0..3 {
            assert!(
                store
                    .get("alice", "a")
                    .await
                    .expect("get")
                    .expect("row")
                    .approved
            );
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_deleted_row_is_gone_although_it_was_cached() {
        let store = store().await;
        insert(&store, "a").await;
        assert!(store.get("alice", "a").await.expect("get").is_some());
        store.delete("alice", "a").await.expect("delete");
        assert!(store.get("alice", "a").await.expect("get").is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_because_it_keeps_nothing() {
        for url in ["sqlite::memory:", "sqlite://timesheets.db?mode=memory"] {
            let pool = StoreOptions {
                max_connections: 4,
                acquire_timeout: std::time::Duration::from_secs(2),
                row_cache_bytes: 64 * 1024,
            };
            let refused = SqliteStore::connect(url, pool).await.err();
            let message = refused.map(|err| format!("{err:#}")).unwrap_or_default();
            assert!(message.contains("keeps nothing"), "{url}: {message:?}");
        }
    }
}

//! SQLite backend: the embedded default.
//!
//! One writer connection and a pool of readers. WAL lets readers run beside
//! the writer; a single writer means SQLite never has to arbitrate write
//! locks, so `database is locked` cannot reach a client. The two hot reads
//! (one timesheet, one page) skip sqlx's worker threads: see
//! `sqlite_reads.rs`.

use std::{collections::HashMap, str::FromStr, time::Duration};

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context;

use super::sqlite_reads::Inline;
use sqlx::{
    Connection, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
        SqliteSynchronous,
    },
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

/// Readers beyond the core count only queue inside SQLite; 4 covers a 2-core
/// machine with room for a slow query.
const READERS: u32 = 4;

/// How long a connection waits for a lock (a checkpoint, another process)
/// before failing with SQLITE_BUSY, which the service reports as UNAVAILABLE.
/// At startup it is also how long a second process waits for the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// How long a request waits for a pooled connection before UNAVAILABLE.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Inserts gathered into one transaction at most; bounds how long one
/// commit holds the writer and how many callers share one failure.
const MAX_GROUP: usize = 256;

/// Inserts waiting for the committer; beyond this, callers wait to enqueue
/// (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 4096;

/// One insert waiting for its group to commit.
struct Pending {
    new: NewTimesheet,
    reply: oneshot::Sender<Result<Inserted>>,
}

pub(super) struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Where inserts queue for group commit; `None` once closed.
    queue: std::sync::Mutex<Option<mpsc::Sender<Pending>>>,
    /// The committer task; owned here, stopped by `close` or on drop.
    committer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    stats: Arc<GroupStats>,
    /// The hot reads, without sqlx's thread hand-offs; `None` for an
    /// in-memory database, which only sqlx's connections share.
    reads: Option<super::sqlite_reads::Reads>,
}

/// Counters the committer keeps for metrics.
#[derive(Default)]
struct GroupStats {
    rows: AtomicU64,
    sizes: [AtomicU64; super::GROUP_SIZE_BOUNDS.len() + 1],
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Ok(mut committer) = self.committer.try_lock()
            && let Some(task) = committer.take()
        {
            task.abort();
        }
    }
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
            .foreign_keys(true)
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
            .acquire_timeout(ACQUIRE_TIMEOUT)
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
        // Read from the URL as given: sqlx keeps the flag private.
        let in_memory = url.contains(":memory:")
            || url
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|pair| pair == "mode=memory"));
        let reads = (!in_memory).then(|| super::sqlite_reads::Reads::new(options.get_filename()));
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .with_context(|| format!("opening SQLite readers for {url:?}"))?;
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(GroupStats::default());
        let committer = tokio::spawn(run_committer(writer.clone(), pending, Arc::clone(&stats)));
        Ok(Self {
            reader,
            writer,
            queue: std::sync::Mutex::new(Some(queue)),
            committer: tokio::sync::Mutex::new(Some(committer)),
            stats,
            reads,
        })
    }

    /// Group commit: the insert joins whatever else is queued, they commit
    /// in one transaction (one fsync), and the caller is answered only after
    /// that commit, so an acknowledged insert survives a crash.
    async fn insert_durably(&self, new: NewTimesheet) -> Result<Inserted> {
        let closed = || Error::Unavailable(Arc::new(sqlx::Error::PoolClosed));
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending { new, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    fn group_stats(&self) -> Option<super::WriteStats> {
        Some(super::WriteStats {
            rows: self.stats.rows.load(Ordering::Relaxed),
            sizes: std::array::from_fn(|i| self.stats.sizes[i].load(Ordering::Relaxed)),
        })
    }

    /// Read on this thread when that needs no wait; a read that would wait
    /// for a lock goes through the sqlx pool, which waits off the runtime.
    async fn get_row(&self, owner: &str, id: &str) -> Result<Option<super::TimesheetRecord>> {
        match self.reads.as_ref().map(|reads| reads.get(owner, id)) {
            Some(Inline::Done(result)) => result,
            Some(Inline::WouldWait) | None => self.sqlx_get(owner, id).await,
        }
    }

    async fn list_rows(&self, q: &super::ListQuery) -> Result<Vec<super::TimesheetRecord>> {
        match self.reads.as_ref().map(|reads| reads.list(q)) {
            Some(Inline::Done(result)) => result,
            Some(Inline::WouldWait) | None => self.sqlx_list(q).await,
        }
    }

    /// Stops taking inserts and waits until the queued ones are committed.
    async fn stop_writes(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = self.committer.lock().await.take()
            && let Err(err) = task.await
        {
            tracing::error!(%err, "the SQLite committer task failed");
        }
    }
}

/// Commits queued inserts in groups until every sender is gone.
async fn run_committer(
    writer: SqlitePool,
    mut pending: mpsc::Receiver<Pending>,
    stats: Arc<GroupStats>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while pending.recv_many(&mut group, MAX_GROUP).await > 0 {
        stats.rows.fetch_add(group.len() as u64, Ordering::Relaxed);
        stats.sizes[super::WriteStats::bucket(group.len())].fetch_add(1, Ordering::Relaxed);
        commit_group(&writer, std::mem::take(&mut group)).await;
    }
}

async fn commit_group(writer: &SqlitePool, group: Vec<Pending>) {
    let size = group.len();
    // The caller's deadline expired while it queued: it was told
    // DEADLINE_EXCEEDED, so the work is cancelled, not done anyway. Decided
    // once, so a row is never both skipped and inserted.
    let live: Vec<bool> = group.iter().map(|item| !item.reply.is_closed()).collect();
    let outcome = async {
        let mut tx = writer.begin().await?;
        let rows: Vec<&NewTimesheet> = group
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .map(|(item, _)| &item.new)
            .collect();
        let mut created: HashMap<String, TimesheetRecord> = insert_rows(&mut tx, &rows)
            .await?
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        let mut results = Vec::with_capacity(group.len());
        for (item, live) in group.iter().zip(&live) {
            if !live {
                results.push(Err(Error::Unavailable(Arc::new(sqlx::Error::PoolClosed))));
                continue;
            }
            if let Some(record) = created.remove(&item.new.id) {
                results.push(Ok(Inserted::Created(record)));
                continue;
            }
            // A reused request_id is a per-caller answer, not a failed
            // statement: nothing to undo, the rest of the group goes on.
            match SqliteStore::replay(&mut tx, &item.new, 0).await {
                Ok(replayed) => results.push(Ok(replayed)),
                Err(conflict @ Error::IdempotencyConflict { .. }) => results.push(Err(conflict)),
                Err(failure) => return Err(failure),
            }
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(results)
    }
    .await;
    tracing::trace!(size, ok = outcome.is_ok(), "group committed");
    match outcome {
        Ok(results) => {
            for (item, result) in group.into_iter().zip(results) {
                // A caller that gave up (deadline) no longer listens; its
                // row is committed all the same, and a retry with its
                // request_id finds it.
                let _ = item.reply.send(result);
            }
        }
        Err(failure) => {
            for item in group {
                let _ = item.reply.send(Err(failure.share()));
            }
        }
    }
}

/// A group's rows in one INSERT: one round trip to SQLite's connection
/// thread for the whole group instead of one per row, which was most of the
/// committer's cost beyond SQLite's own work. Returns the rows stored; the
/// ones the idempotency index turned away are missing.
async fn insert_rows(
    conn: &mut sqlx::SqliteConnection,
    rows: &[&NewTimesheet],
) -> Result<Vec<TimesheetRecord>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let statement = super::sql::insert(rows.len(), super::sql::Placeholders::Anonymous);
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(statement));
    for new in rows {
        query = SqliteStore::bind_insert(query, new);
    }
    Ok(query.fetch_all(&mut *conn).await?)
}

use super::{Error, Inserted, NewTimesheet, Result, TimesheetRecord};

super::sql::impl_store!(SqliteStore, sqlx::Sqlite);

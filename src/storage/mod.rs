//! Durable storage behind one interface.
//!
//! [`Store`] has a SQLite implementation (the embedded default) and a
//! PostgreSQL one (for replicas sharing a database); [`connect`] picks the
//! backend from the URL scheme. Both share the SQL in `sql.rs`, and each
//! applies its own migrations folder at startup. SQLite's hot paths step
//! SQLite directly: reads in `sqlite_reads.rs`, the group committer in
//! `sqlite_commit.rs`; single rows are cached in `row_cache.rs`.

mod postgres;
mod row_cache;
mod sql;
mod sqlite;
mod sqlite_commit;
mod sqlite_reads;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::TimesheetInput;

/// A stored timesheet, as read back from the database.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TimesheetRecord {
    pub id: String,
    pub user_id: String,
    /// `YYYY-MM-DD`.
    pub work_date: String,
    pub project: String,
    pub hours: f64,
    pub notes: String,
    pub approved: bool,
    pub approved_by: String,
    pub create_time_us: i64,
    pub approve_time_us: Option<i64>,
}

/// A validated timesheet ready to insert.
#[derive(Debug, Clone)]
pub struct NewTimesheet {
    pub id: String,
    pub user_id: String,
    pub input: TimesheetInput,
    pub create_time_us: i64,
    /// The caller who stored it; idempotency keys are scoped to this.
    pub created_by: String,
    pub request_id: Option<String>,
    /// Digest of the request payload, compared when `request_id` repeats;
    /// present exactly when `request_id` is, since nothing else reads it.
    pub fingerprint: Option<String>,
}

impl NewTimesheet {
    /// Whether a stored row's fingerprint shows the same payload as this
    /// request, so a repeated request_id replays the row instead of
    /// conflicting with it.
    pub fn same_payload(&self, stored: Option<&str>) -> bool {
        matches!((stored, self.fingerprint.as_deref()), (Some(a), Some(b)) if a == b)
    }

    /// The row `sql::insert` stores for it: not approved, no approver.
    pub fn record(&self) -> TimesheetRecord {
        TimesheetRecord {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            work_date: self.input.date.iso().as_str().to_owned(),
            project: self.input.project.as_str().to_owned(),
            hours: self.input.hours.value(),
            notes: self.input.notes.as_str().to_owned(),
            approved: false,
            approved_by: String::new(),
            create_time_us: self.create_time_us,
            approve_time_us: None,
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new row was stored.
    Created(TimesheetRecord),
    /// The same caller already stored this `request_id` with the same payload.
    Replayed(TimesheetRecord),
}

impl Inserted {
    pub fn record(&self) -> &TimesheetRecord {
        match self {
            Inserted::Created(r) | Inserted::Replayed(r) => r,
        }
    }

    pub fn into_record(self) -> TimesheetRecord {
        match self {
            Inserted::Created(r) | Inserted::Replayed(r) => r,
        }
    }
}

/// Position after the last row of a page (keyset pagination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub work_date: String,
    pub id: String,
}

/// Filters and page for ListTimesheets; `owner` is always applied.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub owner: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub project: Option<String>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
    /// Approved rows are part of payroll history and stay.
    Approved,
}

/// Upper bounds of the group-size buckets: doublings up to the largest
/// group the SQLite committer forms.
pub const GROUP_SIZE_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Group-commit counts, for metrics: how many inserts each commit carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Inserts those transactions carried.
    pub rows: u64,
    /// Groups by size: entry `i` counts the groups larger than bound `i - 1`
    /// and at most [`GROUP_SIZE_BOUNDS`]`[i]`; the last entry, larger ones.
    pub sizes: [u64; GROUP_SIZE_BOUNDS.len() + 1],
}

impl WriteStats {
    /// Transactions committed for inserts: every one falls in one bucket.
    pub fn groups(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// The bucket a group of `rows` inserts falls in.
    pub fn bucket(rows: usize) -> usize {
        GROUP_SIZE_BOUNDS.partition_point(|&bound| bound < rows as u64)
    }
}

/// Row-cache counts, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCacheStats {
    pub hits: u64,
    pub misses: u64,
    /// What the cached rows weigh now (their text plus a fixed overhead each).
    pub bytes: u64,
}

/// One connection pool's size, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// Storage failures. `error.rs` maps them to gRPC status codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `request_id` was reused with a different payload (ALREADY_EXISTS).
    /// `index` is the item's position in a batch, 0 for single inserts.
    #[error("request_id was already used with a different payload")]
    IdempotencyConflict { index: usize },
    /// A batch's rows failed the caller's size check; nothing was stored
    /// (RESOURCE_EXHAUSTED).
    #[error("the batch's rows are too large to return in one reply")]
    TooLarge,
    /// The database cannot be reached or is overloaded; worth retrying (UNAVAILABLE).
    #[error("database unavailable")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Anything else (INTERNAL); logged, never shown to clients.
    #[error("database error")]
    Internal(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::classify(Arc::new(err))
    }
}

impl From<rusqlite::Error> for Error {
    /// SQLite's busy and locked codes are worth retrying, as in
    /// [`is_transient`]; anything else is internal.
    fn from(err: rusqlite::Error) -> Self {
        if sqlite_reads::is_locked(&err) {
            Error::Unavailable(Arc::new(err))
        } else {
            Error::Internal(Arc::new(err))
        }
    }
}

impl Error {
    /// Sorts a database failure into retryable or not. Shared (`Arc`) so
    /// one failed group commit can answer every caller in its batch.
    pub fn classify(err: Arc<sqlx::Error>) -> Self {
        if is_transient(&err) {
            Error::Unavailable(err)
        } else {
            Error::Internal(err)
        }
    }

    /// The same failure for another caller of the same group commit.
    pub fn share(&self) -> Self {
        match self {
            Error::IdempotencyConflict { index } => Error::IdempotencyConflict { index: *index },
            Error::TooLarge => Error::TooLarge,
            Error::Unavailable(err) => Error::Unavailable(Arc::clone(err)),
            Error::Internal(err) => Error::Internal(Arc::clone(err)),
        }
    }
}

/// Faults a retry can fix: connectivity, pool exhaustion, server restarts
/// and lock contention, as opposed to bugs and constraint violations.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
            // Each backend's codes only: read as SQLite's, PostgreSQL's 22021
            // (a NUL in a text value) is 5, SQLITE_BUSY, and a request that can
            // never succeed would be told to retry.
            Some(sqlite) => {
                sqlite_code_is_transient(sqlx::error::DatabaseError::code(sqlite).as_deref())
            }
            None => postgres_code_is_transient(db.code().as_deref()),
        },
        _ => false,
    }
}

/// PostgreSQL: 08 connection exceptions, 53 insufficient resources, 57P0x
/// shutdown, 40001/40P01 serialization failure and deadlock, 25006 a write
/// on a pooled connection to a server that became a standby (after a
/// failover, until the pool replaces it), 57014 a statement cancelled (an
/// operator's `statement_timeout`), 55P03 a lock not granted in time.
fn postgres_code_is_transient(sqlstate: Option<&str>) -> bool {
    sqlstate.is_some_and(|code| {
        code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P0")
            || matches!(code, "40001" | "40P01" | "25006" | "57014" | "55P03")
    })
}

/// SQLite: 5 SQLITE_BUSY and 6 SQLITE_LOCKED, with their extended codes
/// (the primary code is the low byte).
fn sqlite_code_is_transient(code: Option<&str>) -> bool {
    code.and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A caller's last check on a batch's rows, before they are committed.
pub type Fits = dyn for<'a> Fn(&'a [Inserted]) -> bool + Send + Sync;

/// The storage interface every handler uses.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores one row, or replays the caller's earlier row for the same `request_id`.
    async fn insert(&self, new: NewTimesheet) -> Result<Inserted>;
    /// Stores all rows in one transaction, or none of them. `fits` sees what
    /// the batch stored (replays included) before the commit; when it says
    /// no, nothing is committed and the answer is [`Error::TooLarge`].
    async fn insert_batch(&self, rows: Vec<NewTimesheet>, fits: &Fits) -> Result<Vec<Inserted>>;
    /// One of `owner`'s rows.
    async fn get(&self, owner: &str, id: &str) -> Result<Option<TimesheetRecord>>;
    /// A page of `owner`'s rows, newest date first, then id; at most `limit + 1`
    /// rows so the caller can tell whether another page follows.
    async fn list(&self, query: &ListQuery) -> Result<Vec<TimesheetRecord>>;
    /// Deletes one of `owner`'s unapproved rows.
    async fn delete(&self, owner: &str, id: &str) -> Result<Deleted>;
    /// Every user's unapproved rows, oldest date first, then id; at most `limit + 1`.
    async fn list_pending(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<TimesheetRecord>>;
    /// Marks a row approved unless it already is; `None` when no such row.
    async fn approve(
        &self,
        id: &str,
        approver: &str,
        now_us: i64,
    ) -> Result<Option<TimesheetRecord>>;
    /// A random secret shared by every replica, created on first use.
    async fn shared_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>>;
    /// Checks that the database answers (readiness).
    async fn ping(&self) -> Result<()>;
    /// Closes the pools, waiting for checked-out connections.
    async fn close(&self);
    /// Connection counts per pool, for metrics.
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// Group-commit counters, where the backend batches inserts itself.
    fn write_stats(&self) -> Option<WriteStats>;
    /// Row-cache counters, where the backend keeps one.
    fn row_cache_stats(&self) -> Option<RowCacheStats>;
}

/// What an operator tunes about storage, per replica.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// PostgreSQL connections. (SQLite's pools have fixed sizes: one
    /// writer, and readers a file serves well.)
    pub max_connections: u32,
    /// How long a call waits for a connection before UNAVAILABLE, so a
    /// database outage fails calls fast instead of hanging them.
    pub acquire_timeout: std::time::Duration,
    /// Memory for rows SQLite keeps for single-row reads (0: none); see
    /// `row_cache`. PostgreSQL has no such cache.
    pub row_cache_bytes: usize,
}

/// Opens the database named by `url` and applies its migrations.
pub async fn connect(url: &str, options: StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?))
    } else {
        anyhow::bail!(
            "unsupported --database-url {:?}: use sqlite://<path> or postgres://user@host/db",
            crate::config::redact_url(url)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{
        GROUP_SIZE_BOUNDS, WriteStats, postgres_code_is_transient, sqlite_code_is_transient,
    };

    #[test]
    fn each_backend_retries_only_its_own_transient_codes() {
        for sqlstate in [
            "08006", "53300", "57P01", "40001", "40P01", "25006", "57014", "55P03",
        ] {
            assert!(postgres_code_is_transient(Some(sqlstate)), "{sqlstate}");
        }
        // 22021 (a NUL in text) and 42501 (no privilege) end in 5 and 1, the
        // low byte SQLite's busy test reads: neither is worth a retry.
        for sqlstate in ["22021", "42501", "23505", "22P02"] {
            assert!(!postgres_code_is_transient(Some(sqlstate)), "{sqlstate}");
        }
        assert!(!postgres_code_is_transient(None));
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE.
        for code in ["5", "6", "517", "262"] {
            assert!(sqlite_code_is_transient(Some(code)), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CORRUPT, SQLITE_READONLY.
        for code in ["2067", "11", "8"] {
            assert!(!sqlite_code_is_transient(Some(code)), "{code}");
        }
        assert!(!sqlite_code_is_transient(None));
    }

    #[test]
    fn a_group_falls_in_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(WriteStats::bucket(1), 0);
        assert_eq!(WriteStats::bucket(2), 1);
        assert_eq!(WriteStats::bucket(3), 2);
        assert_eq!(WriteStats::bucket(256), GROUP_SIZE_BOUNDS.len() - 1);
        assert_eq!(WriteStats::bucket(257), GROUP_SIZE_BOUNDS.len());
    }
}

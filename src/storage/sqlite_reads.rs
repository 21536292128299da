//! The hot SQLite reads (one timesheet, one page of timesheets), stepped
//! directly with rusqlite instead of through sqlx.
//!
//! sqlx runs each SQLite connection on its own OS thread and sends every
//! row back through a channel, copying each column value on the way; under
//! load most of a read's CPU went to those hand-offs, not to the query (see
//! docs/performance.md). Here a read takes an idle connection, runs on the
//! calling thread, builds the records directly and returns the connection.
//! That is only right for work that never waits: in WAL mode readers do not
//! wait for the writer, both statements are index seeks returning at most a
//! page, and these connections have no busy timeout, so the rare read that
//! would have to wait for a lock (while SQLite recovers a WAL after a crash,
//! say) returns [`Inline::WouldWait`] at once and the caller goes through
//! the sqlx pool instead, which waits on its own thread.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, named_params};

use super::{Error, ListQuery, Result, TimesheetRecord, sql};

/// Idle connections kept for reuse; more are opened when every kept one is
/// in use and closed when returned beyond this.
const MAX_IDLE: usize = 8;

/// Statements cached per connection: the two reads, with headroom.
const STATEMENT_CACHE: usize = 8;

/// The outcome of a read attempted on the calling thread.
pub(super) enum Inline<T> {
    Done(Result<T>),
    /// The database is locked; reading would mean waiting.
    WouldWait,
}

pub(super) struct Reads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Reads {
    /// Readers of the (already migrated) database at `path`.
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write only for the VFS's sake (see `sqlite::VFS`); `query_only`
        // keeps these connections from writing.
        let conn = Connection::open_with_flags_and_vfs(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            super::sqlite::VFS,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        // rusqlite's default is 5 s; here a lock must fail fast instead.
        conn.busy_timeout(Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Inline<T> {
        let kept = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let result = match kept {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
        .and_then(|conn| {
            let result = read(&conn);
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            result
        });
        match result {
            Ok(value) => Inline::Done(Ok(value)),
            Err(err) if is_locked(&err) => Inline::WouldWait,
            Err(err) => Inline::Done(Err(Error::Internal(Arc::new(err)))),
        }
    }

    // `get` and the first page of `list` bind by position: by name, every
    // binding scans the statement's parameter names. That is right because
    // SQLite numbers parameters in order of first appearance and in these
    // statements `$n` appears n-th, which a test checks.
    pub(super) fn get(&self, owner: &str, id: &str) -> Inline<Option<TimesheetRecord>> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(sql::GET)?;
            let mut rows = statement.query((id, owner))?;
            rows.next()?.map(record).transpose()
        })
    }

    pub(super) fn list(&self, q: &ListQuery) -> Inline<Vec<TimesheetRecord>> {
        let limit = i64::from(q.limit) + 1;
        self.with(|conn| {
            let filters = (&q.owner, &q.start_date, &q.end_date, &q.project, limit);
            let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or_default());
            let mut push_all = |mut rows: rusqlite::Rows<'_>| -> rusqlite::Result<()> {
                while let Some(row) = rows.next()? {
                    out.push(record(row)?);
                }
                Ok(())
            };
            match &q.after {
                None => {
                    let mut statement = conn.prepare_cached(sql::LIST_FIRST)?;
                    push_all(statement.query(filters)?)?;
                }
                Some(after) => {
                    // `$6` and `$7` come before `$5` in this statement's text,
                    // so its parameters are bound by name.
                    let (owner, start, end, project, limit) = filters;
                    let mut statement = conn.prepare_cached(sql::LIST_AFTER)?;
                    push_all(statement.query(named_params! {
                        "$1": owner,
                        "$2": start,
                        "$3": end,
                        "$4": project,
                        "$5": limit,
                        "$6": after.work_date,
                        "$7": after.id,
                    })?)?;
                }
            }
            Ok(out)
        })
    }
}

/// A row of `record_columns!()`, in its order.
pub(super) fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<TimesheetRecord> {
    Ok(TimesheetRecord {
        id: row.get(0)?,
        user_id: row.get(1)?,
        work_date: row.get(2)?,
        project: row.get(3)?,
        hours: row.get(4)?,
        notes: row.get(5)?,
        approved: row.get(6)?,
        approved_by: row.get(7)?,
        create_time_us: row.get(8)?,
        approve_time_us: row.get(9)?,
    })
}

pub(super) fn is_locked(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Where a database may be created: a file in a fresh temporary folder.
    pub(in crate::storage) fn new_database_path() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("timesheets-db-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("db.sqlite")
    }

    /// A migrated WAL database in a fresh temporary folder.
    pub(in crate::storage) fn database() -> PathBuf {
        let path = new_database_path();
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("WAL");
        for migration in [
            include_str!("../../migrations/sqlite/0001_timesheets.sql"),
            include_str!("../../migrations/sqlite/0002_fewer_btrees_per_insert.sql"),
        ] {
            conn.execute_batch(migration).expect("schema");
        }
        path
    }

    fn first_page(owner: &str) -> ListQuery {
        ListQuery {
            owner: owner.into(),
            start_date: None,
            end_date: None,
            project: None,
            after: None,
            limit: 50,
        }
    }

    #[test]
    fn the_reads_bound_by_position_have_each_dollar_n_parameter_at_position_n() {
        let path = database();
        let conn = Connection::open(&path).expect("open");
        for statement in [sql::GET, sql::LIST_FIRST] {
            let prepared = conn.prepare(statement).expect("prepare");
            let names: Vec<Option<String>> = (1..=prepared.parameter_count())
                .map(|n| prepared.parameter_name(n).map(str::to_owned))
                .collect();
            let positions: Vec<Option<String>> =
                (1..=names.len()).map(|n| Some(format!("${n}"))).collect();
            assert_eq!(names, positions, "{statement}");
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[test]
    fn a_read_that_would_wait_for_a_lock_says_so_instead_of_waiting() {
        let path = database();
        // A connection in exclusive locking mode shuts every reader out until
        // it closes: the one way to make a WAL reader meet a lock on demand.
        let holder = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::default(),
            crate::storage::sqlite::VFS,
        )
        .expect("open");
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .expect("take the lock");
        let reads = Reads::new(&path);
        let started = std::time::Instant::now();
        assert!(matches!(reads.get("alice", "x"), Inline::WouldWait));
        assert!(matches!(
            reads.list(&first_page("alice")),
            Inline::WouldWait
        ));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the reads waited for the lock"
        );
        drop(holder);
        assert!(matches!(reads.get("alice", "x"), Inline::Done(Ok(None))));
        assert!(
            matches!(reads.list(&first_page("alice")), Inline::Done(Ok(rows)) if rows.is_empty())
        );
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[test]
    fn every_query_reads_through_its_index_and_sorts_at_most_a_page() {
        let path = database();
        let conn = Connection::open(&path).expect("open");
        let plan = |query: &str| -> String {
            let mut statement = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .expect("explain");
            // Unbound parameters are NULL; the plan does not depend on them.
            let mut rows = statement.raw_query();
            let mut details = Vec::new();
            while let Some(row) = rows.next().expect("plan row") {
                details.push(row.get::<_, String>(3).expect("detail"));
            }
            details.join("; ")
        };
        for (query, index) in [
            (sql::GET, "PRIMARY KEY"),
            (sql::GET_ANY_OWNER, "PRIMARY KEY"),
            // Only keyed rows are in this (partial) index; `request_id = ?`
            // implies that, so the replay lookup may use it.
            (sql::FIND_BY_REQUEST, "INDEX timesheets_idempotency"),
            (sql::LIST_FIRST, "INDEX timesheets_by_owner"),
            (sql::LIST_AFTER, "INDEX timesheets_by_owner"),
            (sql::PENDING_FIRST, "INDEX timesheets_pending"),
            (sql::PENDING_AFTER, "INDEX timesheets_pending"),
        ] {
            let plan = plan(query);
            let reads: Vec<&str> = plan
                .split("; ")
                .filter(|step| {
                    step.starts_with("SEARCH timesheets") || step.starts_with("SCAN timesheets")
                })
                .collect();
            assert!(
                !reads.is_empty()
                    && reads
                        .iter()
                        .all(|step| step.contains(&format!("USING {index}"))),
                "{query}: {plan}"
            );
            // LIST_AFTER merges two subqueries of at most a page each; any
            // other sort would be over rows the LIMIT has not bounded.
            if query != sql::LIST_AFTER {
                assert!(!plan.contains("TEMP B-TREE"), "{query} sorts: {plan}");
            }
        }
        drop(conn);
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[test]
    fn the_rebuilt_table_keeps_every_row_of_the_first_schema() {
        let dir = std::env::temp_dir().join(format!("timesheets-mig-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conn = Connection::open(dir.join("db.sqlite")).expect("open");
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_timesheets.sql"))
            .expect("first schema");
        conn.execute_batch(
            "INSERT INTO timesheets (id, user_id, work_date, project, hours, notes, approved, \
             approved_by, create_time_us, approve_time_us, created_by, request_id, fingerprint) \
             VALUES ('a', 'alice', '2026-11-27', 'Website', 7.5, 'n', TRUE, 'boss', 1, 2, 'alice', 'k', 'f'), \
                    ('b', 'bob', '2026-11-28', 'Mobile', 1.0, '', FALSE, '', 3, NULL, 'bob', NULL, 'g')",
        )
        .expect("rows");
        let dump = |conn: &Connection| -> Vec<String> {
            let mut statement = conn
                .prepare("SELECT * FROM timesheets ORDER BY id")
                .expect("select");
            statement
                .query_map([], |row| {
                    (0..13)
                        .map(|i| {
                            row.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(|values| values.join("|"))
                })
                .expect("rows")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("values")
        };
        let before = dump(&conn);
        conn.execute_batch(include_str!(
            "../../migrations/sqlite/0002_fewer_btrees_per_insert.sql"
        ))
        .expect("second schema");
        assert_eq!(dump(&conn), before);
        let without_rowid = conn.prepare("SELECT rowid FROM timesheets").is_err();
        assert!(without_rowid, "the table still has a rowid");
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn page_queries_keep_their_plan_from_one_binding_to_the_next() {
        let path = database();
        let conn = Connection::open(&path).expect("open");
        // (query, its limit parameter); every other parameter is left NULL.
        for (query, limit_parameter) in [
            (sql::LIST_FIRST, "$5"),
            (sql::LIST_AFTER, "$5"),
            (sql::PENDING_FIRST, "$1"),
            (sql::PENDING_AFTER, "$1"),
        ] {
            for limit in [10_i64, 51, 2] {
                let mut statement = conn.prepare_cached(query).expect("prepare");
                statement
                    .raw_bind_parameter(limit_parameter, limit)
                    .expect("bind the limit");
                let mut rows = statement.raw_query();
                while rows.next().expect("step").is_some() {}
            }
            let statement = conn.prepare_cached(query).expect("prepare");
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "SQLite re-planned on a new binding: {query}"
            );
        }
        drop(conn);
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }
}

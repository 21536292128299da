//! SQLite group commit: one OS thread owns the connection that stores
//! creates, gathers whatever inserts are queued into one transaction (one
//! fsync), and answers each caller only after that transaction commits.
//!
//! The thread steps SQLite itself, through rusqlite. Run through sqlx, a
//! group took six thread hand-offs (begin, insert, rows, commit, each a
//! round trip to sqlx's connection thread) on the path every create waits
//! on; on two busy cores each wake-up could wait a scheduler slice, and
//! that serial chain, not the CPU, bounded the create rate
//! (docs/performance.md). Here a group costs one wake-up of this thread.
//!
//! The other writes (deletes, approvals, uploads) are rare and stay on
//! sqlx's writer connection; SQLite's busy timeout arbitrates between the
//! two connections, and a group holds the write lock for about a
//! millisecond.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, named_params};
use tokio::sync::{mpsc, oneshot};

use super::{Error, Inserted, NewTimesheet, Result, TimesheetRecord, WriteStats, sql};

/// Inserts gathered into one transaction at most; bounds how long one
/// commit holds the writer and how many callers share one failure. A power
/// of two: see [`INSERTS`].
const MAX_GROUP: usize = 256;

/// Inserts waiting for the committer; beyond this, callers wait to enqueue
/// (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 4096;

/// The group INSERTs for 1, 2, 4, … [`MAX_GROUP`] rows, one family per
/// [`sql::Rows`]. A group is stored in chunks of these sizes, so the
/// connection caches at most eighteen inserts whatever the group sizes,
/// instead of one per size seen.
struct Inserts {
    unkeyed: Vec<String>,
    keyed: Vec<String>,
}

impl Inserts {
    fn sql(&self, rows_are: sql::Rows, power: u32) -> &str {
        let family = match rows_are {
            sql::Rows::Unkeyed => &self.unkeyed,
            sql::Rows::Keyed => &self.keyed,
        };
        &family[power as usize]
    }
}

static INSERTS: LazyLock<Inserts> = LazyLock::new(|| {
    let family = |rows_are| {
        (0..=MAX_GROUP.ilog2())
            .map(|power| sql::insert(1 << power, sql::Placeholders::Anonymous, rows_are))
            .collect()
    };
    Inserts {
        unkeyed: family(sql::Rows::Unkeyed),
        keyed: family(sql::Rows::Keyed),
    }
});

/// Statements cached on the connection: the eighteen [`INSERTS`] and the
/// replay lookup, with room to spare, so none is ever re-prepared.
const STATEMENT_CACHE: usize = 24;

/// One insert waiting for its group to commit.
struct Pending {
    new: NewTimesheet,
    reply: oneshot::Sender<Result<Inserted>>,
}

/// Counters the committer keeps for metrics.
#[derive(Default)]
struct GroupStats {
    rows: AtomicU64,
    sizes: [AtomicU64; super::GROUP_SIZE_BOUNDS.len() + 1],
}

/// The committer thread and the queue that feeds it. Dropping it closes
/// the queue; the thread commits what is queued and exits.
pub(super) struct Committer {
    /// `None` once closed.
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<GroupStats>,
}

impl Committer {
    /// Opens the write connection on the (already migrated) database at
    /// `path` and starts the thread.
    pub(super) fn start(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let conn = open(path)
            .with_context(|| format!("opening the SQLite committer's connection to {path:?}"))?;
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(GroupStats::default());
        let thread = std::thread::Builder::new()
            .name("sqlite-commit".into())
            .spawn({
                let stats = Arc::clone(&stats);
                move || run(conn, pending, &stats)
            })
            .context("starting the SQLite committer thread")?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    /// Queues `new` and waits for its group's commit: an acknowledged
    /// insert has been synced to disk.
    pub(super) async fn insert(&self, new: NewTimesheet) -> Result<Inserted> {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending { new, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Stops taking inserts and waits until the queued ones are committed.
    pub(super) async fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the SQLite committer thread panicked"),
                Err(err) => tracing::error!(%err, "waiting for the SQLite committer failed"),
            }
        }
    }

    /// `Ok` while inserts are taken: the queue is open and its thread is
    /// there to drain it.
    pub(super) fn check(&self) -> Result<()> {
        let open = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|queue| !queue.is_closed());
        if open { Ok(()) } else { Err(closed()) }
    }

    pub(super) fn stats(&self) -> WriteStats {
        WriteStats {
            rows: self.stats.rows.load(Ordering::Relaxed),
            sizes: std::array::from_fn(|i| self.stats.sizes[i].load(Ordering::Relaxed)),
        }
    }
}

fn closed() -> Error {
    Error::Unavailable(Arc::new(sqlx::Error::PoolClosed))
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        super::sqlite::VFS,
    )?;
    // Per connection, like sqlx's writer: FULL syncs the WAL on every
    // commit, so an acknowledged write survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // A multi-row INSERT keeps a statement journal; on disk it was a
    // temporary file opened, written and deleted per group.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(super::sqlite::BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Commits queued inserts in groups until every sender is gone.
fn run(mut conn: Connection, mut pending: mpsc::Receiver<Pending>, stats: &GroupStats) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = pending.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match pending.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        stats.rows.fetch_add(group.len() as u64, Ordering::Relaxed);
        stats.sizes[WriteStats::bucket(group.len())].fetch_add(1, Ordering::Relaxed);
        commit_group(&mut conn, std::mem::take(&mut group));
    }
}

fn commit_group(conn: &mut Connection, group: Vec<Pending>) {
    let size = group.len();
    let outcome = (|| -> Result<Vec<Result<Inserted>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A caller whose deadline expired while it queued, or while BEGIN
        // waited for the write lock (up to the busy timeout, behind a batch
        // upload on the sqlx writer), was told DEADLINE_EXCEEDED, so its work
        // is cancelled, not done anyway. Decided once, with the lock held,
        // so a row is never both skipped and inserted; only a deadline that
        // expires during the inserts and the commit itself is too late.
        let live: Vec<bool> = group.iter().map(|item| !item.reply.is_closed()).collect();
        let rows: Vec<&NewTimesheet> = group
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .map(|(item, _)| &item.new)
            .collect();
        let mut created: HashMap<String, TimesheetRecord> = insert_rows(&tx, &rows)?
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        let mut results = Vec::with_capacity(group.len());
        for (item, live) in group.iter().zip(&live) {
            if !live {
                results.push(Err(closed()));
                continue;
            }
            if let Some(record) = created.remove(&item.new.id) {
                results.push(Ok(Inserted::Created(record)));
                continue;
            }
            // A reused request_id is a per-caller answer, not a failed
            // statement: nothing to undo, the rest of the group goes on.
            match replay(&tx, &item.new) {
                Ok(replayed) => results.push(Ok(replayed)),
                Err(conflict @ Error::IdempotencyConflict { .. }) => results.push(Err(conflict)),
                Err(failure) => return Err(failure),
            }
        }
        tx.commit()?;
        Ok(results)
    })();
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

/// Stores `rows`, in chunks of [`INSERTS`] sizes. Returns the rows stored;
/// the ones the idempotency index turned away are missing.
fn insert_rows(
    conn: &Connection,
    rows: &[&NewTimesheet],
) -> rusqlite::Result<Vec<TimesheetRecord>> {
    // Most creates carry no request id; they cannot be turned away, so
    // they go in statements that return nothing.
    let (keyed, unkeyed): (Vec<&NewTimesheet>, Vec<&NewTimesheet>) =
        rows.iter().partition(|new| new.request_id.is_some());
    let mut stored = Vec::with_capacity(rows.len());
    for (rows_are, mut rest) in [
        (sql::Rows::Unkeyed, &unkeyed[..]),
        (sql::Rows::Keyed, &keyed[..]),
    ] {
        while !rest.is_empty() {
            let power = rest.len().ilog2();
            let (chunk, tail) = rest.split_at(1 << power);
            rest = tail;
            let mut statement = conn.prepare_cached(INSERTS.sql(rows_are, power))?;
            let mut index = 0;
            let mut bind = |value: &dyn rusqlite::ToSql| {
                index += 1;
                statement.raw_bind_parameter(index, value)
            };
            for new in chunk {
                // The column order of `sql::insert`.
                let input = &new.input;
                bind(&new.id)?;
                bind(&new.user_id)?;
                bind(&input.date.iso().as_str())?;
                bind(&input.project.as_str())?;
                bind(&input.hours.value())?;
                bind(&input.notes.as_str())?;
                bind(&new.create_time_us)?;
                bind(&new.created_by)?;
                bind(&new.request_id)?;
                bind(&new.fingerprint)?;
            }
            match rows_are {
                sql::Rows::Unkeyed => {
                    // Each row is answered as stored from its own values;
                    // the count makes that a checked fact.
                    let changed = statement.raw_execute()?;
                    if changed != chunk.len() {
                        return Err(rusqlite::Error::StatementChangedRows(changed));
                    }
                    stored.extend(chunk.iter().map(|new| new.record()));
                }
                sql::Rows::Keyed => {
                    let mut returned = statement.raw_query();
                    while let Some(row) = returned.next()? {
                        stored.push(super::sqlite_reads::record(row)?);
                    }
                }
            }
        }
    }
    Ok(stored)
}

/// `new` was turned away by the idempotency index (the only one with ON
/// CONFLICT), so the row holding its request_id exists: the same payload
/// replays it, another is a conflict.
fn replay(conn: &Connection, new: &NewTimesheet) -> Result<Inserted> {
    let mut statement = conn.prepare_cached(sql::FIND_BY_REQUEST)?;
    let (record, fingerprint) = statement.query_row(
        named_params! { "$1": new.created_by, "$2": new.request_id },
        |row| {
            Ok((
                super::sqlite_reads::record(row)?,
                row.get::<_, Option<String>>(10)?,
            ))
        },
    )?;
    if new.same_payload(fingerprint.as_deref()) {
        Ok(Inserted::Replayed(record))
    } else {
        Err(Error::IdempotencyConflict { index: 0 })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::domain::{RawTimesheet, TimesheetInput};
    use crate::storage::sqlite_reads::{Inline, Reads, tests::database};

    fn new_timesheet(n: usize, request_id: Option<&str>, hours: f64) -> NewTimesheet {
        let input = TimesheetInput::parse(
            RawTimesheet {
                date: "2026-11-27",
                project: "Website",
                hours,
                notes: &format!("note {n}"),
            },
            &[],
        )
        .expect("valid input");
        NewTimesheet {
            id: format!("{n:032}"),
            user_id: format!("user-{}", n % 3),
            input,
            create_time_us: 1_700_000_000_000_000 + n as i64,
            created_by: "importer".into(),
            request_id: request_id.map(str::to_owned),
            fingerprint: request_id.map(|_| format!("fingerprint {hours}")),
        }
    }

    fn stored(reads: &Reads, new: &NewTimesheet) -> Option<TimesheetRecord> {
        match reads.get(&new.user_id, &new.id) {
            Inline::Done(result) => result.expect("read"),
            Inline::WouldWait => panic!("the read met a lock"),
        }
    }

    fn expected(new: &NewTimesheet, n: usize) -> TimesheetRecord {
        TimesheetRecord {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            work_date: "2026-11-27".into(),
            project: "Website".into(),
            hours: 7.5,
            notes: format!("note {n}"),
            approved: false,
            approved_by: String::new(),
            create_time_us: new.create_time_us,
            approve_time_us: None,
        }
    }

    #[test]
    fn a_group_of_any_size_is_stored_in_chunks_with_each_of_its_values() {
        let path = database();
        let mut conn = open(&path).expect("open");
        // 37 = 32 + 4 + 1: three statements.
        let rows: Vec<NewTimesheet> = (0..37).map(|n| new_timesheet(n, None, 7.5)).collect();
        let tx = conn.transaction().expect("begin");
        let returned = insert_rows(&tx, &rows.iter().collect::<Vec<_>>()).expect("insert");
        tx.commit().expect("commit");
        let wanted: Vec<TimesheetRecord> = rows
            .iter()
            .enumerate()
            .map(|(n, new)| expected(new, n))
            .collect();
        assert_eq!(returned, wanted);
        let reads = Reads::new(&path);
        for (new, wanted) in rows.iter().zip(wanted) {
            assert_eq!(stored(&reads, new), Some(wanted));
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[test]
    fn a_group_mixing_request_ids_stores_each_row_but_the_one_whose_key_is_taken() {
        let path = database();
        let mut conn = open(&path).expect("open");
        let holder = new_timesheet(100, Some("key 0"), 7.5);
        let tx = conn.transaction().expect("begin");
        insert_rows(&tx, &[&holder]).expect("first insert");
        // Every third row carries a request id, and row 0 reuses the holder's.
        let rows: Vec<NewTimesheet> = (0..37)
            .map(|n| new_timesheet(n, (n % 3 == 0).then(|| format!("key {n}")).as_deref(), 7.5))
            .collect();
        let mut returned = insert_rows(&tx, &rows.iter().collect::<Vec<_>>()).expect("insert");
        tx.commit().expect("commit");
        returned.sort_by(|a, b| a.id.cmp(&b.id));
        let wanted: Vec<TimesheetRecord> = rows
            .iter()
            .enumerate()
            .skip(1)
            .map(|(n, new)| expected(new, n))
            .collect();
        assert_eq!(returned, wanted);
        let reads = Reads::new(&path);
        assert_eq!(stored(&reads, &rows[0]), None);
        for (new, wanted) in rows.iter().skip(1).zip(wanted) {
            assert_eq!(stored(&reads, new), Some(wanted));
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[test]
    fn a_group_that_fails_stores_none_of_its_rows_and_the_next_group_commits() {
        let path = database();
        let mut conn = open(&path).expect("open");
        let send = |conn: &mut Connection, rows: Vec<NewTimesheet>| {
            let (group, answers): (Vec<Pending>, Vec<_>) = rows
                .into_iter()
                .map(|new| {
                    let (reply, answer) = oneshot::channel();
                    (Pending { new, reply }, answer)
                })
                .unzip();
            commit_group(conn, group);
            answers
                .into_iter()
                .map(|mut answer| answer.try_recv().expect("answered"))
                .collect::<Vec<_>>()
        };
        let first = send(&mut conn, vec![new_timesheet(1, None, 7.5)]);
        assert!(first.iter().all(Result::is_ok), "{first:?}");
        let reads = Reads::new(&path);
        // Row 1's id again, once in the unkeyed statement after one that
        // stored rows 2 and 3 (`INSERT OR ROLLBACK`), and once as a keyed row
        // after the unkeyed ones were stored (the keyed statement aborts and
        // the committer rolls back): either way nothing of the group stays.
        let unkeyed_failure = vec![
            new_timesheet(2, None, 7.5),
            new_timesheet(3, None, 7.5),
            new_timesheet(1, None, 7.5),
        ];
        let keyed_failure = vec![
            new_timesheet(4, None, 7.5),
            new_timesheet(1, Some("key"), 7.5),
        ];
        for (case, rows) in [("unkeyed", unkeyed_failure), ("keyed", keyed_failure)] {
            let failed = send(&mut conn, rows);
            assert!(failed.iter().all(Result::is_err), "{case}: {failed:?}");
            for n in [2, 3, 4] {
                let row = new_timesheet(n, None, 7.5);
                assert_eq!(stored(&reads, &row), None, "{case}: row {n}");
            }
        }
        let next = send(&mut conn, vec![new_timesheet(5, None, 7.5)]);
        assert!(next.iter().all(Result::is_ok), "{next:?}");
        assert!(stored(&reads, &new_timesheet(5, None, 7.5)).is_some());
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_are_each_answered_with_their_own_row() {
        let path = database();
        let committer = Arc::new(Committer::start(&path).expect("start"));
        let inserts = (0..20).map(|n| {
            let committer = Arc::clone(&committer);
            tokio::spawn(async move { committer.insert(new_timesheet(n, None, 7.5)).await })
        });
        let mut answers = Vec::new();
        for insert in inserts {
            answers.push(insert.await.expect("task").expect("insert"));
        }
        for (n, answer) in answers.into_iter().enumerate() {
            let new = new_timesheet(n, None, 7.5);
            assert_eq!(answer, Inserted::Created(expected(&new, n)), "insert {n}");
        }
        let stats = committer.stats();
        assert_eq!(
            (stats.rows, stats.sizes.iter().sum::<u64>() > 0),
            (20, true)
        );
        committer.stop().await;
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reused_request_id_replays_the_same_payload_and_refuses_another() {
        let path = database();
        let committer = Committer::start(&path).expect("start");
        let first = committer
            .insert(new_timesheet(1, Some("key"), 7.5))
            .await
            .expect("first insert")
            .into_record();
        // Another id for the same key and payload: the first row comes back.
        let again = committer.insert(new_timesheet(2, Some("key"), 7.5)).await;
        assert_eq!(again.expect("replay"), Inserted::Replayed(first));
        let other = committer.insert(new_timesheet(3, Some("key"), 8.0)).await;
        assert!(
            matches!(other, Err(Error::IdempotencyConflict { index: 0 })),
            "{other:?}"
        );
        committer.stop().await;
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_insert_waits_for_another_connection_s_write_lock_instead_of_failing() {
        let path = database();
        let committer = Committer::start(&path).expect("start");
        let other = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE,
            super::super::sqlite::VFS,
        )
        .expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        let hold = Duration::from_millis(300);
        let release = std::thread::spawn(move || {
            std::thread::sleep(hold);
            other
                .execute_batch("COMMIT")
                .expect("release the write lock");
        });
        let started = Instant::now();
        let inserted = committer.insert(new_timesheet(1, None, 7.5)).await;
        assert!(matches!(inserted, Ok(Inserted::Created(_))), "{inserted:?}");
        // The lock was taken before the clock started, so allow for the start.
        assert!(
            started.elapsed() >= hold / 2,
            "the insert did not wait for the lock"
        );
        release.join().expect("release thread");
        committer.stop().await;
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }

    #[tokio::test]
    async fn a_committer_whose_thread_is_gone_refuses_inserts_and_fails_its_check() {
        // What a dead thread leaves: the queue's sender with nobody receiving.
        let (queue, pending) = mpsc::channel(1);
        drop(pending);
        let committer = Committer {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(None),
            stats: Arc::default(),
        };
        assert!(matches!(committer.check(), Err(Error::Unavailable(_))));
        let refused = committer.insert(new_timesheet(1, None, 7.5)).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_after_stop_are_refused_as_unavailable() {
        let path = database();
        let committer = Committer::start(&path).expect("start");
        assert!(
            committer.check().is_ok(),
            "a running committer takes inserts"
        );
        committer.stop().await;
        let refused = committer.insert(new_timesheet(1, None, 7.5)).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        assert!(matches!(committer.check(), Err(Error::Unavailable(_))));
        let _ = std::fs::remove_dir_all(path.parent().expect("folder"));
    }
}

//! A bounded in-memory cache of single timesheet rows in front of SQLite's
//! `get`, and the rule that keeps it from ever answering with a stale row.
//!
//! Why: reading one row through SQLite costs a GetTimesheet about a tenth of
//! its instructions (a read transaction, a B-tree seek, a copy of each
//! column) and more than that in wall time under load; a hit costs a hash
//! and a clone (docs/performance.md).
//!
//! Why it can be coherent at all: the server owns its SQLite file (the
//! `unix-excl` VFS locks every other process out, see `sqlite::VFS`), so
//! every change to a row goes through this process. Rows are only ever
//! inserted, approved or deleted, and only the last two change a row that
//! may be cached; both run inside [`RowCache::changing`]. PostgreSQL gets no
//! cache: other replicas change its rows behind this one's back.
//!
//! The rule, per shard: a change bumps the shard's epoch and evicts the row
//! when it starts and again when it ends, and while any change is in flight
//! the shard takes no fills. A read that missed may fill the cache only if
//! no change started or ended in its shard since it missed, so a row read
//! before a change committed can never be put back after it. Only rows that
//! exist are cached: a new row needs no eviction, and "not found" is always
//! asked of the database. (Another connection in this process could still
//! write behind the cache's back; only the store's own connections write.)

use std::{
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use super::{RowCacheStats, TimesheetRecord};

/// Independent locks, so the runtime's threads rarely meet on one.
const SHARDS: usize = 16;

/// What a row costs beyond its text: the record and key themselves, the
/// allocator's headers and the cache's own entry, rounded up.
const ROW_OVERHEAD: usize = std::mem::size_of::<(String, TimesheetRecord)>() + 96;

/// A row of the usual size, to size the shards' tables.
const TYPICAL_ROW: usize = ROW_OVERHEAD + 100;

pub(super) struct RowCache {
    shards: Box<[Mutex<Shard>]>,
}

/// Rows are weighed in bytes, so long notes cannot make the cache outgrow
/// what the operator gave it.
#[derive(Debug, Clone, Copy)]
struct RowBytes;

impl quick_cache::Weighter<String, TimesheetRecord> for RowBytes {
    fn weight(&self, id: &String, row: &TimesheetRecord) -> u64 {
        let text = id.len()
            + row.id.len()
            + row.user_id.len()
            + row.work_date.len()
            + row.project.len()
            + row.notes.len()
            + row.approved_by.len();
        u64::try_from(text + ROW_OVERHEAD).unwrap_or(u64::MAX)
    }
}

struct Shard {
    rows: quick_cache::unsync::Cache<String, TimesheetRecord, RowBytes>,
    /// Bumped when a change starts and when it ends.
    epoch: u64,
    /// Changes in flight; the shard takes no fills while there are any.
    changes: u32,
    /// Lookups answered and not, for metrics.
    hits: u64,
    misses: u64,
}

/// What a lookup found.
pub(super) enum Lookup {
    Hit(TimesheetRecord),
    /// Read the database, then offer the row to [`RowCache::fill`] with this.
    Miss(Ticket),
}

/// A miss's permission to fill, valid while its shard sees no change.
#[derive(Debug)]
pub(super) struct Ticket {
    shard: usize,
    /// `None` when a change was already in flight at the miss.
    epoch: Option<u64>,
}

impl RowCache {
    /// A cache of rows weighing at most about `bytes`; `None` when `bytes` is 0.
    pub(super) fn new(bytes: usize) -> Option<Arc<Self>> {
        if bytes == 0 {
            return None;
        }
        let per_shard = bytes.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    rows: quick_cache::unsync::Cache::with_weighter(
                        per_shard / TYPICAL_ROW + 1,
                        u64::try_from(per_shard).unwrap_or(u64::MAX),
                        RowBytes,
                    ),
                    epoch: 0,
                    changes: 0,
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Some(Arc::new(Self { shards }))
    }

    pub(super) fn get(&self, id: &str) -> Lookup {
        let shard = shard_of(id);
        let mut cached = self.lock(shard);
        if let Some(row) = cached.rows.get(id) {
            let row = row.clone();
            cached.hits += 1;
            return Lookup::Hit(row);
        }
        cached.misses += 1;
        Lookup::Miss(Ticket {
            shard,
            epoch: (cached.changes == 0).then_some(cached.epoch),
        })
    }

    /// Counts over every shard, each read under its lock.
    pub(super) fn stats(&self) -> RowCacheStats {
        (0..SHARDS).fold(RowCacheStats::default(), |total, shard| {
            let cached = self.lock(shard);
            RowCacheStats {
                hits: total.hits + cached.hits,
                misses: total.misses + cached.misses,
                bytes: total.bytes + cached.rows.weight(),
            }
        })
    }

    /// Keeps `row`, read from the database for `id` after the miss that
    /// gave `ticket`, unless a change in its shard may have overtaken the
    /// read. A row stored under another id than it was asked for (were the
    /// database ever to match ids loosely) would sit where `changing` never
    /// looks, so it is not kept.
    pub(super) fn fill(&self, ticket: Ticket, id: &str, row: &TimesheetRecord) {
        if row.id != id || shard_of(id) != ticket.shard {
            return;
        }
        let Some(epoch) = ticket.epoch else { return };
        let mut cached = self.lock(ticket.shard);
        if cached.epoch == epoch {
            cached.rows.insert(row.id.clone(), row.clone());
        }
    }

    /// Marks row `id` as changing until the returned guard is dropped,
    /// which must not happen before the change has committed or failed.
    pub(super) fn changing(self: &Arc<Self>, id: &str) -> Changing {
        let shard = shard_of(id);
        let mut cached = self.lock(shard);
        cached.changes += 1;
        cached.evict(id);
        drop(cached);
        Changing {
            cache: Arc::clone(self),
            shard,
            id: id.to_owned(),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Every update to a shard is complete before anything in it can
        // panic, so a poisoned lock still guards a consistent shard.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shard {
    fn evict(&mut self, id: &str) {
        self.epoch = self.epoch.wrapping_add(1);
        self.rows.remove(id);
    }
}

fn shard_of(id: &str) -> usize {
    // Only spreads rows over the locks: a caller who picks ids that share a
    // shard slows nothing but their own fills.
    let hash = foldhash::fast::FixedState::default().hash_one(id);
    usize::try_from(hash % SHARDS as u64).unwrap_or_default()
}

/// A change to one row in flight; see [`RowCache::changing`].
#[derive(Debug)]
pub(super) struct Changing {
    cache: Arc<RowCache>,
    shard: usize,
    id: String,
}

impl Drop for Changing {
    fn drop(&mut self) {
        let mut cached = self.cache.lock(self.shard);
        cached.changes -= 1;
        cached.evict(&self.id);
    }
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{Lookup, RowCache, Ticket};
    use crate::storage::TimesheetRecord;

    fn row(id: &str, approved: bool) -> TimesheetRecord {
        TimesheetRecord {
            id: id.to_owned(),
            user_id: "alice@example.com".to_owned(),
            work_date: "2026-11-27".to_owned(),
            project: "Website".to_owned(),
            hours: 7.5,
            notes: String::new(),
            approved,
            approved_by: String::new(),
            create_time_us: 1,
            approve_time_us: None,
        }
    }

    fn miss(cache: &RowCache, id: &str) -> Ticket {
        match cache.get(id) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(row) => panic!("{id} was cached: {row:?}"),
        }
    }

    fn hit(cache: &RowCache, id: &str) -> TimesheetRecord {
        match cache.get(id) {
            Lookup::Hit(row) => row,
            Lookup::Miss(_) => panic!("{id} was not cached"),
        }
    }

    #[test]
    fn a_filled_row_is_answered_until_a_change_to_it_starts() {
        let cache = RowCache::new(64 * 1024).expect("a cache");
        let ticket = miss(&cache, "a");
        cache.fill(ticket, "a", &row("a", false));
        assert!(!hit(&cache, "a").approved);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert!(stats.bytes > 0);

        let change = cache.changing("a");
        miss(&cache, "a");
        drop(change);
        miss(&cache, "a");
    }

    #[test]
    fn a_row_read_before_a_change_is_not_put_back_after_it() {
        let cache = RowCache::new(64 * 1024).expect("a cache");
        // The read misses and reads the old row; the change starts and
        // commits before the read offers what it found.
        let ticket = miss(&cache, "a");
        drop(cache.changing("a"));
        cache.fill(ticket, "a", &row("a", false));
        miss(&cache, "a");
        // A read after the change may fill again.
        let ticket = miss(&cache, "a");
        cache.fill(ticket, "a", &row("a", true));
        assert!(hit(&cache, "a").approved);
    }

    #[test]
    fn no_row_is_filled_from_a_miss_during_a_change_even_after_it_ends() {
        let cache = RowCache::new(64 * 1024).expect("a cache");
        let change = cache.changing("a");
        // Missed during the change, so it may have read the row before the
        // commit: it never fills.
        let first = miss(&cache, "a");
        let second = miss(&cache, "a");
        cache.fill(first, "a", &row("a", false));
        miss(&cache, "a");
        drop(change);
        cache.fill(second, "a", &row("a", false));
        miss(&cache, "a");
    }

    #[test]
    fn a_row_offered_for_another_id_is_not_kept() {
        let cache = RowCache::new(64 * 1024).expect("a cache");
        let ticket = miss(&cache, "a");
        cache.fill(ticket, "a", &row("A", false));
        assert_eq!(
            cache.stats().bytes,
            0,
            "kept where no change would evict it"
        );
    }

    #[test]
    fn overlapping_changes_keep_the_shard_closed_until_the_last_ends() {
        let cache = RowCache::new(64 * 1024).expect("a cache");
        let first = cache.changing("a");
        let second = cache.changing("a");
        drop(first);
        let ticket = miss(&cache, "a");
        cache.fill(ticket, "a", &row("a", false));
        miss(&cache, "a");
        drop(second);
        let ticket = miss(&cache, "a");
        cache.fill(ticket, "a", &row("a", true));
        assert!(hit(&cache, "a").approved);
    }

    #[test]
    fn the_cache_keeps_within_its_bytes_however_long_the_rows() {
        assert!(RowCache::new(0).is_none());
        let budget = 64 * 1024;
        let cache = RowCache::new(budget).expect("a cache");
        let long_notes = "n".repeat(crate::domain::MAX_NOTES_CHARS);
        for n in 0..2_000 {
            let id = format!("{n:032x}");
            let mut long = row(&id, false);
            if n % 2 == 0 {
                long.notes.clone_from(&long_notes);
            }
            let ticket = miss(&cache, &id);
            cache.fill(ticket, &id, &long);
        }
        let weight = usize::try_from(cache.stats().bytes).expect("small");
        assert!(
            weight <= budget,
            "{weight} bytes kept in a cache of {budget}"
        );
        assert!(
            weight >= budget / 2,
            "only {weight} bytes kept in a cache of {budget}"
        );
    }
}

//! The SQL both backends share, and the one [`Store`](super::Store)
//! implementation written over it.
//!
//! SQLite and PostgreSQL both accept `$n` placeholders, `RETURNING`,
//! `ON CONFLICT`, row values and partial indexes, so the statements are
//! written once (the few SQLite-only forms say so where they are built).
//! Rust generics over `sqlx::Database` need a wall of
//! higher-ranked bounds; a macro instantiating the same code per backend
//! reads better, and each backend file keeps only what truly differs
//! (connecting, pool shape, pragmas).

/// Columns of [`super::TimesheetRecord`], in one place.
macro_rules! record_columns {
    () => {
        "id, user_id, work_date, project, hours, notes, approved, approved_by, create_time_us, approve_time_us"
    };
}

/// Parameters one inserted row binds (see [`insert`]).
const INSERT_PARAMETERS: usize = 10;

/// How [`insert`] writes its placeholders.
#[derive(Clone, Copy)]
pub(super) enum Placeholders {
    /// `$1, $2, …`: both backends accept them.
    Numbered,
    /// `?, ?, …`, bound in order: SQLite only. sqlx asks SQLite for every
    /// parameter's name while binding, and SQLite finds a name by scanning
    /// all of the statement's named parameters, so with `$n` a group of
    /// `r` rows cost O(r²) in binding alone (5% of a create's CPU in the
    /// peer benchmark). Anonymous parameters have no names to scan.
    Anonymous,
}

/// Whether the rows of an [`insert`] may carry request ids.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Rows {
    /// Some may: `ON CONFLICT … DO NOTHING` skips a row whose
    /// `(created_by, request_id)` is already stored, and `RETURNING` tells
    /// the caller which rows were stored.
    Keyed,
    /// None does, so none can meet the idempotency index (the one index
    /// with `ON CONFLICT`): every row is stored as bound or the statement
    /// fails, and it returns nothing (SQLite runs `RETURNING` through a
    /// temporary table it builds and frees per execution).
    ///
    /// SQLite only, and only for a caller that gives up its whole
    /// transaction when the insert fails: `INSERT OR ROLLBACK` rolls the
    /// transaction back itself, so SQLite keeps no statement journal (a copy
    /// of each page the statement changes) to undo the statement alone.
    Unkeyed,
}

/// An insert of `rows` rows in one statement. Row `k` (from 0) binds
/// parameters `10k+1 ..= 10k+10`: id, user_id, work_date, project, hours,
/// notes, create_time_us, created_by, request_id, fingerprint. Each row is
/// stored as [`NewTimesheet::record`](super::NewTimesheet::record) says.
pub(super) fn insert(rows: usize, placeholders: Placeholders, rows_are: Rows) -> String {
    use std::fmt::Write;
    let mut sql = String::from(match rows_are {
        Rows::Keyed => "INSERT INTO",
        Rows::Unkeyed => "INSERT OR ROLLBACK INTO",
    });
    sql.push_str(
        " timesheets (id, user_id, work_date, project, hours, notes, approved, approved_by, \
         create_time_us, approve_time_us, created_by, request_id, fingerprint) VALUES ",
    );
    // Writing to a String cannot fail.
    let param = |sql: &mut String, n: usize| match placeholders {
        Placeholders::Numbered => {
            let _ = write!(sql, "${n}");
        }
        Placeholders::Anonymous => sql.push('?'),
    };
    for row in 0..rows {
        let first = row * INSERT_PARAMETERS;
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for n in 1..=INSERT_PARAMETERS {
            if n > 1 {
                sql.push_str(", ");
            }
            param(&mut sql, first + n);
            if n == 6 {
                sql.push_str(", FALSE, ''");
            } else if n == 7 {
                sql.push_str(", NULL");
            }
        }
        sql.push(')');
    }
    if rows_are == Rows::Keyed {
        sql.push_str(concat!(
            " ON CONFLICT (created_by, request_id) WHERE request_id IS NOT NULL DO NOTHING RETURNING ",
            record_columns!()
        ));
    }
    sql
}

/// The one-row insert, built once.
pub(super) static INSERT_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert(1, Placeholders::Numbered, Rows::Keyed));

pub(super) const FIND_BY_REQUEST: &str = concat!(
    "SELECT ",
    record_columns!(),
    ", fingerprint FROM timesheets WHERE created_by = $1 AND request_id = $2"
);

pub(super) const GET: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM timesheets WHERE id = $1 AND user_id = $2"
);

pub(super) const GET_ANY_OWNER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM timesheets WHERE id = $1"
);

/// A page's row limit, bound as parameter `$n`. The cast matters: SQLite
/// (the bundled 3.51) plans a bare `LIMIT $n` with the bound value, so it
/// throws the cached plan away and re-parses the statement on every new
/// binding, which was a fifth of a list call's CPU. An expression keeps one
/// plan; the index order already makes the plan right for any limit.
macro_rules! page_limit {
    ($n:literal) => {
        concat!(" LIMIT CAST(", $n, " AS BIGINT)")
    };
}

/// The owner's filters; `$2..$4` are NULL when unset.
macro_rules! owner_filters {
    () => {
        "user_id = $1 AND ($2 IS NULL OR work_date >= $2) AND ($3 IS NULL OR work_date <= $3) \
         AND ($4 IS NULL OR project = $4)"
    };
}

pub(super) const LIST_FIRST: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM timesheets WHERE ",
    owner_filters!(),
    " ORDER BY work_date DESC, id",
    page_limit!("$5")
);

/// Newest date first but id ascending cannot be one row-value comparison, so
/// the rest of the cursor's day and the earlier days are two index seeks,
/// merged. Neither branch scans the rows already served.
pub(super) const LIST_AFTER: &str = concat!(
    "SELECT * FROM (SELECT ",
    record_columns!(),
    " FROM timesheets WHERE ",
    owner_filters!(),
    " AND work_date = $6 AND id > $7 ORDER BY id",
    page_limit!("$5"),
    ") AS same_day",
    " UNION ALL SELECT * FROM (SELECT ",
    record_columns!(),
    " FROM timesheets WHERE ",
    owner_filters!(),
    " AND work_date < $6 ORDER BY work_date DESC, id",
    page_limit!("$5"),
    ") AS earlier ORDER BY work_date DESC, id",
    page_limit!("$5")
);

pub(super) const PENDING_FIRST: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM timesheets WHERE NOT approved ORDER BY work_date, id",
    page_limit!("$1")
);

pub(super) const PENDING_AFTER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM timesheets WHERE NOT approved AND (work_date, id) > ($2, $3) ORDER BY work_date, id",
    page_limit!("$1")
);

pub(super) const DELETE_UNAPPROVED: &str =
    "DELETE FROM timesheets WHERE id = $1 AND user_id = $2 AND NOT approved";

pub(super) const APPROVED_FLAG: &str =
    "SELECT approved FROM timesheets WHERE id = $1 AND user_id = $2";

pub(super) const APPROVE: &str = concat!(
    "UPDATE timesheets SET approved = TRUE, approved_by = $2, approve_time_us = $3 ",
    "WHERE id = $1 AND NOT approved RETURNING ",
    record_columns!()
);

pub(super) const SECRET_INIT: &str =
    "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

pub(super) const SECRET_GET: &str = "SELECT value FROM server_secrets WHERE name = $1";

/// A record plus the stored payload fingerprint, for idempotent replays.
#[derive(sqlx::FromRow)]
pub(super) struct ReplayRow {
    #[sqlx(flatten)]
    pub record: super::TimesheetRecord,
    pub fingerprint: Option<String>,
}

/// What a create turned away by the idempotency index answers, from the
/// row that now holds its request_id: the same payload replays it, another
/// is a conflict. Through sqlx the insert and this read are two statements,
/// and on PostgreSQL another replica may delete the row between them; the
/// client is then told to retry (UNAVAILABLE), and its retry stores the row
/// anew, as it would have had the delete come first.
pub(super) fn replayed(
    existing: Option<ReplayRow>,
    new: &super::NewTimesheet,
    index: usize,
) -> super::Result<super::Inserted> {
    use super::{Error, Inserted};
    match existing {
        Some(row) if new.same_payload(row.fingerprint.as_deref()) => {
            Ok(Inserted::Replayed(row.record))
        }
        Some(_) => Err(Error::IdempotencyConflict { index }),
        None => {
            let vanished: Box<dyn std::error::Error + Send + Sync> =
                "the row holding this request_id was deleted while the create was replayed".into();
            Err(Error::Unavailable(vanished.into()))
        }
    }
}

/// Implements [`super::Store`] for a backend struct with `reader` and
/// `writer` pools of database type `$db`. The backend supplies the hot
/// reads (`get_row`, `list_rows`, which may use the generated `sqlx_get`
/// and `sqlx_list`) and inserts (`insert_durably`) itself, and runs each
/// statement that changes an existing row through `change_row`.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// One row through the `reader` pool.
            async fn sqlx_get(
                &self,
                owner: &str,
                id: &str,
            ) -> $crate::storage::Result<Option<$crate::storage::TimesheetRecord>> {
                use $crate::storage::{TimesheetRecord, sql};
                Ok(sqlx::query_as::<_, TimesheetRecord>(sql::GET)
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&self.reader)
                    .await?)
            }

            /// One page through the `reader` pool.
            async fn sqlx_list(
                &self,
                q: &$crate::storage::ListQuery,
            ) -> $crate::storage::Result<Vec<$crate::storage::TimesheetRecord>> {
                use $crate::storage::{TimesheetRecord, sql};
                let statement = if q.after.is_some() {
                    sql::LIST_AFTER
                } else {
                    sql::LIST_FIRST
                };
                let mut query = sqlx::query_as::<_, TimesheetRecord>(statement)
                    .bind(&q.owner)
                    .bind(&q.start_date)
                    .bind(&q.end_date)
                    .bind(&q.project)
                    .bind(i64::from(q.limit) + 1);
                if let Some(after) = &q.after {
                    query = query.bind(&after.work_date).bind(&after.id);
                }
                Ok(query.fetch_all(&self.reader).await?)
            }

            /// Binds `new`'s values as one row of [`sql::insert`].
            fn bind_insert<'q>(
                query: sqlx::query::QueryAs<
                    'q,
                    $db,
                    $crate::storage::TimesheetRecord,
                    <$db as sqlx::Database>::Arguments,
                >,
                new: &'q $crate::storage::NewTimesheet,
            ) -> sqlx::query::QueryAs<
                'q,
                $db,
                $crate::storage::TimesheetRecord,
                <$db as sqlx::Database>::Arguments,
            > {
                let input = &new.input;
                query
                    .bind(&new.id)
                    .bind(&new.user_id)
                    .bind(input.date.iso().as_str().to_owned())
                    .bind(input.project.as_str())
                    .bind(input.hours.value())
                    .bind(input.notes.as_str())
                    .bind(new.create_time_us)
                    .bind(&new.created_by)
                    .bind(&new.request_id)
                    .bind(&new.fingerprint)
            }

            async fn insert_one(
                conn: &mut <$db as sqlx::Database>::Connection,
                new: &$crate::storage::NewTimesheet,
                index: usize,
            ) -> $crate::storage::Result<$crate::storage::Inserted> {
                use $crate::storage::{Inserted, sql};
                let created = Self::bind_insert(sqlx::query_as(sql::INSERT_ONE.as_str()), new)
                    .fetch_optional(&mut *conn)
                    .await?;
                match created {
                    Some(record) => Ok(Inserted::Created(record)),
                    None => Self::replay(conn, new, index).await,
                }
            }

            /// `new` was turned away by the idempotency index (the only one
            /// with ON CONFLICT), so the row holding its request_id exists:
            /// the same payload replays it, another is a conflict.
            async fn replay(
                conn: &mut <$db as sqlx::Database>::Connection,
                new: &$crate::storage::NewTimesheet,
                index: usize,
            ) -> $crate::storage::Result<$crate::storage::Inserted> {
                use $crate::storage::sql;
                let existing = sqlx::query_as::<_, sql::ReplayRow>(sql::FIND_BY_REQUEST)
                    .bind(&new.created_by)
                    .bind(&new.request_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                sql::replayed(existing, new, index)
            }
        }

        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            async fn insert(
                &self,
                new: $crate::storage::NewTimesheet,
            ) -> $crate::storage::Result<$crate::storage::Inserted> {
                self.insert_durably(new).await
            }

            async fn insert_batch(
                &self,
                rows: Vec<$crate::storage::NewTimesheet>,
                fits: &$crate::storage::Fits,
            ) -> $crate::storage::Result<Vec<$crate::storage::Inserted>> {
                let mut tx = self.writer.begin().await?;
                let mut out = Vec::with_capacity(rows.len());
                for (index, row) in rows.iter().enumerate() {
                    out.push(Self::insert_one(&mut tx, row, index).await?);
                }
                if !fits(&out) {
                    // Dropping `tx` rolls the batch back.
                    return Err($crate::storage::Error::TooLarge);
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn get(
                &self,
                owner: &str,
                id: &str,
            ) -> $crate::storage::Result<Option<$crate::storage::TimesheetRecord>> {
                self.get_row(owner, id).await
            }

            async fn list(
                &self,
                q: &$crate::storage::ListQuery,
            ) -> $crate::storage::Result<Vec<$crate::storage::TimesheetRecord>> {
                self.list_rows(q).await
            }

            async fn delete(
                &self,
                owner: &str,
                id: &str,
            ) -> $crate::storage::Result<$crate::storage::Deleted> {
                use $crate::storage::{Deleted, sql};
                let writer = self.writer.clone();
                let (owner, id_owned) = (owner.to_owned(), id.to_owned());
                self.change_row(id, async move {
                    let done = sqlx::query(sql::DELETE_UNAPPROVED)
                        .bind(&id_owned)
                        .bind(&owner)
                        .execute(&writer)
                        .await?;
                    if done.rows_affected() > 0 {
                        return Ok(Deleted::Deleted);
                    }
                    let approved: Option<bool> = sqlx::query_scalar(sql::APPROVED_FLAG)
                        .bind(&id_owned)
                        .bind(&owner)
                        .fetch_optional(&writer)
                        .await?;
                    Ok(match approved {
                        Some(true) => Deleted::Approved,
                        // Some(false) cannot follow a delete that matched nothing
                        // (ids are never reused, approval never undone): not found.
                        _ => Deleted::NotFound,
                    })
                })
                .await
            }

            async fn list_pending(
                &self,
                after: Option<&$crate::storage::Cursor>,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::storage::TimesheetRecord>> {
                use $crate::storage::{TimesheetRecord, sql};
                let rows = match after {
                    None => {
                        sqlx::query_as::<_, TimesheetRecord>(sql::PENDING_FIRST)
                            .bind(i64::from(limit) + 1)
                            .fetch_all(&self.reader)
                            .await?
                    }
                    Some(after) => {
                        sqlx::query_as::<_, TimesheetRecord>(sql::PENDING_AFTER)
                            .bind(i64::from(limit) + 1)
                            .bind(&after.work_date)
                            .bind(&after.id)
                            .fetch_all(&self.reader)
                            .await?
                    }
                };
                Ok(rows)
            }

            async fn approve(
                &self,
                id: &str,
                approver: &str,
                now_us: i64,
            ) -> $crate::storage::Result<Option<$crate::storage::TimesheetRecord>> {
                use $crate::storage::{TimesheetRecord, sql};
                let writer = self.writer.clone();
                let (id_owned, approver) = (id.to_owned(), approver.to_owned());
                self.change_row(id, async move {
                    let updated = sqlx::query_as::<_, TimesheetRecord>(sql::APPROVE)
                        .bind(&id_owned)
                        .bind(&approver)
                        .bind(now_us)
                        .fetch_optional(&writer)
                        .await?;
                    if updated.is_some() {
                        return Ok(updated);
                    }
                    Ok(sqlx::query_as::<_, TimesheetRecord>(sql::GET_ANY_OWNER)
                        .bind(&id_owned)
                        .fetch_optional(&writer)
                        .await?)
                })
                .await
            }

            async fn shared_secret(
                &self,
                name: &str,
                fresh: &[u8],
            ) -> $crate::storage::Result<Vec<u8>> {
                use $crate::storage::sql;
                sqlx::query(sql::SECRET_INIT)
                    .bind(name)
                    .bind(fresh)
                    .execute(&self.writer)
                    .await?;
                Ok(sqlx::query_scalar(sql::SECRET_GET)
                    .bind(name)
                    .fetch_one(&self.writer)
                    .await?)
            }

            async fn ping(&self) -> $crate::storage::Result<()> {
                self.writes_accepted()?;
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                Ok(())
            }

            async fn close(&self) {
                self.stop_writes().await;
                self.reader.close().await;
                self.writer.close().await;
            }

            fn write_stats(&self) -> Option<$crate::storage::WriteStats> {
                self.group_stats()
            }

            fn row_cache_stats(&self) -> Option<$crate::storage::RowCacheStats> {
                self.cache_stats()
            }

            fn pool_stats(&self) -> Vec<$crate::storage::PoolStats> {
                let stats = |name, pool: &sqlx::Pool<$db>| $crate::storage::PoolStats {
                    name,
                    size: pool.size(),
                    idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                };
                if Self::SHARED_POOL {
                    vec![stats("shared", &self.reader)]
                } else {
                    vec![stats("reader", &self.reader), stats("writer", &self.writer)]
                }
            }
        }
    };
}

pub(super) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{RawTimesheet, TimesheetInput},
        storage::{Error, Inserted, NewTimesheet},
    };

    fn keyed(fingerprint: &str) -> NewTimesheet {
        let raw = RawTimesheet {
            date: "2026-11-27",
            project: "Website",
            hours: 7.5,
            notes: "",
        };
        NewTimesheet {
            id: format!("{:032x}", 1),
            user_id: "ann@example.com".into(),
            input: TimesheetInput::parse(raw, &[]).expect("valid input"),
            create_time_us: 1_700_000_000_000_000,
            created_by: "ann@example.com".into(),
            request_id: Some("key-1".into()),
            fingerprint: Some(fingerprint.into()),
        }
    }

    #[test]
    fn a_create_whose_keyed_row_vanished_before_its_replay_is_told_to_retry() {
        let new = keyed("payload a");
        let stored = || ReplayRow {
            record: new.record(),
            fingerprint: Some("payload a".into()),
        };
        assert!(matches!(
            replayed(Some(stored()), &new, 0),
            Ok(Inserted::Replayed(_))
        ));
        assert!(matches!(
            replayed(Some(stored()), &keyed("payload b"), 3),
            Err(Error::IdempotencyConflict { index: 3 })
        ));
        // Deleted between the insert and the read (another replica): not
        // the server's fault, and a retry succeeds.
        assert!(matches!(
            replayed(None, &new, 0),
            Err(Error::Unavailable(_))
        ));
    }

    #[test]
    fn each_inserted_row_binds_its_ten_parameters_in_column_order() {
        let numbered = insert(2, Placeholders::Numbered, Rows::Keyed);
        // Without request ids: the same rows, and nothing after them.
        let plain = insert(2, Placeholders::Numbered, Rows::Unkeyed);
        let rows = plain
            .strip_prefix("INSERT OR ROLLBACK INTO")
            .expect("OR ROLLBACK");
        assert!(numbered.contains(rows), "{plain}");
        assert!(plain.ends_with("$18, $19, $20)"), "{plain}");
        assert!(
            numbered.contains(
                "VALUES ($1, $2, $3, $4, $5, $6, FALSE, '', $7, NULL, $8, $9, $10), \
                 ($11, $12, $13, $14, $15, $16, FALSE, '', $17, NULL, $18, $19, $20) ON CONFLICT"
            ),
            "{numbered}"
        );
        // Anonymous placeholders bind in textual order, so the same statement
        // with each `$n` (highest first, so `$1` does not eat `$10`) as `?`.
        let expected = (1..=20)
            .rev()
            .fold(numbered, |sql, n| sql.replace(&format!("${n}"), "?"));
        assert_eq!(insert(2, Placeholders::Anonymous, Rows::Keyed), expected);
    }
}

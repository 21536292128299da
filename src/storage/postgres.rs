//! PostgreSQL backend: for several replicas sharing one database.
//!
//! One pool serves reads and writes; PostgreSQL arbitrates concurrent
//! writers itself, and the unique idempotency index makes a retried request
//! create one row even when two replicas receive it at once.

use std::str::FromStr;

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub(super) struct PgStore {
    reader: PgPool,
    writer: PgPool,
}

impl PgStore {
    /// `reader` and `writer` are the same pool.
    const SHARED_POOL: bool = true;

    pub(super) async fn connect(
        url: &str,
        store_options: super::StoreOptions,
    ) -> anyhow::Result<Self> {
        let redacted = crate::config::redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("parsing PostgreSQL URL {redacted:?}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(store_options.max_connections)
            .acquire_timeout(store_options.acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {redacted:?}"))?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .context("applying PostgreSQL migrations")?;
        Ok(Self {
            reader: pool.clone(),
            writer: pool,
        })
    }
}

impl PgStore {
    /// PostgreSQL commits concurrent transactions in groups on its own
    /// (its WAL writer batches fsyncs), so each insert is its own statement.
    async fn insert_durably(&self, new: super::NewTimesheet) -> super::Result<super::Inserted> {
        let mut conn = self.writer.acquire().await?;
        Self::insert_one(&mut conn, &new, 0).await
    }

    async fn get_row(
        &self,
        owner: &str,
        id: &str,
    ) -> super::Result<Option<super::TimesheetRecord>> {
        self.sqlx_get(owner, id).await
    }

    async fn list_rows(&self, q: &super::ListQuery) -> super::Result<Vec<super::TimesheetRecord>> {
        self.sqlx_list(q).await
    }

    /// Nothing is cached, so a change needs no care beyond its statement.
    async fn change_row<T>(
        &self,
        _id: &str,
        change: impl std::future::Future<Output = super::Result<T>>,
    ) -> super::Result<T> {
        change.await
    }

    /// Nothing is queued outside the pool.
    async fn stop_writes(&self) {}

    /// Writes go through the pool, which `ping` checks.
    fn writes_accepted(&self) -> super::Result<()> {
        Ok(())
    }

    /// No row cache: other replicas change the rows.
    fn cache_stats(&self) -> Option<super::RowCacheStats> {
        None
    }

    fn group_stats(&self) -> Option<super::WriteStats> {
        None
    }
}

super::sql::impl_store!(PgStore, sqlx::Postgres);

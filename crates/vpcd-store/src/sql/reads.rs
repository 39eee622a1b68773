//! Where the store's reads run: sqlx's read pool, or, for an SQLite file,
//! rusqlite on the caller's thread (`crate::sqlite_read`, which says why).
//!
//! Every read of the [`Store`](crate::Store) outside a write transaction
//! goes through [`SqlStore::read`] and its shorthands, with the statements
//! the rest of the layer builds; writes and the reads inside them stay on
//! sqlx (`DB::fetch` on the transaction's connection).

use std::sync::Arc;

use sqlx::Database;

use super::{Engine, Record, Sql, SqlStore};
use crate::common::StoreRow;
pub(crate) use crate::sqlite_read::Size;
use crate::sqlite_read::{self, Readers};

use crate::{Result, StoreError};

/// The read path of a store.
pub(crate) enum Reads<DB: Database> {
    /// sqlx's pool: PostgreSQL, and SQLite's in-memory database (which
    /// lives in its one sqlx connection).
    Pool(sqlx::Pool<DB>),
    /// An SQLite file's read-only connections, called on this thread.
    Direct(Arc<Readers>),
}

/// A row of either read path.
pub(crate) enum ReadRow<DB: Database> {
    Pool(Record<DB>),
    Direct(sqlite_read::Row),
}

impl<DB: Engine> StoreRow for ReadRow<DB> {
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        match self {
            ReadRow::Pool(r) => r.opt_int(col),
            ReadRow::Direct(r) => r.opt_int(col),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self {
            ReadRow::Pool(r) => r.opt_text(col),
            ReadRow::Direct(r) => r.opt_text(col),
        }
    }
    fn flag(&self, col: &str) -> Result<bool> {
        match self {
            ReadRow::Pool(r) => r.flag(col),
            ReadRow::Direct(r) => r.flag(col),
        }
    }
}

impl<DB: Engine> SqlStore<DB> {
    /// Run `qs` in order, from one snapshot of the database (one read
    /// transaction when there are several); the rows of each.
    pub(crate) async fn read(&self, qs: Vec<Sql>, size: Size) -> Result<Vec<Vec<ReadRow<DB>>>> {
        let rows = match &self.read {
            Reads::Direct(readers) => readers
                .run(qs, size)
                .await?
                .into_iter()
                .map(|rows| rows.into_iter().map(ReadRow::Direct).collect())
                .collect(),
            Reads::Pool(pool) if qs.len() == 1 => {
                let mut conn = pool.acquire().await?;
                fetch_each::<DB>(&mut conn, qs).await?
            }
            Reads::Pool(pool) => {
                let mut tx = pool.begin_with(DB::BEGIN_READ).await?;
                let rows = fetch_each::<DB>(&mut tx, qs).await?;
                tx.commit().await?;
                rows
            }
        };
        Ok(rows)
    }

    /// The rows of `first` and of `second`, from one snapshot.
    pub(crate) async fn read_pair(
        &self,
        first: Sql,
        second: Sql,
        size: Size,
    ) -> Result<(Vec<ReadRow<DB>>, Vec<ReadRow<DB>>)> {
        let mut both = self.read(vec![first, second], size).await?.into_iter();
        match (both.next(), both.next()) {
            (Some(first), Some(second)) => Ok((first, second)),
            _ => Err(StoreError::Backend("a read lost a statement".into())),
        }
    }

    /// The rows of `q`.
    pub(crate) async fn read_rows(&self, q: Sql, size: Size) -> Result<Vec<ReadRow<DB>>> {
        Ok(self.read(vec![q], size).await?.pop().unwrap_or_default())
    }

    /// The first row of `q`, a bounded read, if any.
    pub(crate) async fn read_opt(&self, q: Sql) -> Result<Option<ReadRow<DB>>> {
        Ok(self.read_rows(q, Size::Bounded).await?.into_iter().next())
    }

    /// The first row of `q` (an aggregate, which always has one).
    pub(crate) async fn read_one(&self, q: Sql, size: Size) -> Result<ReadRow<DB>> {
        first_of(self.read_rows(q, size).await?)
    }
}

/// The first of `rows` (an aggregate's one row).
pub(crate) fn first_of<R>(rows: Vec<R>) -> Result<R> {
    rows.into_iter()
        .next()
        .ok_or_else(|| StoreError::Backend("an aggregate read returned no row".into()))
}

/// The rows of each of `qs`, in order, on `conn`.
async fn fetch_each<DB: Engine>(
    conn: &mut DB::Connection,
    qs: Vec<Sql>,
) -> Result<Vec<Vec<ReadRow<DB>>>> {
    let mut out = Vec::with_capacity(qs.len());
    for q in qs {
        let rows = DB::fetch(&mut *conn, q).await?;
        out.push(rows.into_iter().map(ReadRow::Pool).collect());
    }
    Ok(out)
}

//! Group commit: one writer task that runs every queued write in one
//! transaction and syncs it to disk once.
//!
//! SQLite has a single writer and `synchronous=FULL`, so each commit waits
//! for an fsync; one transaction per request made the fsync the ceiling of
//! every mutation. Here a caller hands its write (a closure over the
//! connection) to the writer task and waits. The writer takes the first write
//! queued, opens one `BEGIN IMMEDIATE` transaction, and runs each write in
//! its own savepoint, taking in every write queued meanwhile (up to
//! [`MAX_BATCH`]); then it commits once and answers every caller of the
//! batch. Writes that arrive during the commit's fsync form the next batch,
//! so the batch grows with the load and a lone write waits for nobody.
//!
//! # What each caller sees
//! - Each write makes its own checks (quotas, unique names, state rules)
//!   against everything the writes before it in the batch did, exactly as
//!   if they had committed one by one in that order.
//! - A write that fails (a refusal or a statement error) is rolled back to
//!   its savepoint: the others of the batch are untouched.
//! - Nobody is answered before the commit is durable, refusals included
//!   (a refusal may rest on a write of the same batch).
//! - A failed commit (a full disk, an I/O error), or a storage fault inside
//!   a write (SQLite may then have rolled the whole transaction back), fails
//!   every caller of the batch with that error; nothing of the batch was
//!   written. The connection goes back to the pool, which rolls it back or
//!   replaces it ([`super::recovering`]), and the next batch starts clean:
//!   one failed batch fails its callers, never the writer.
//! - A caller that stops waiting (its request was dropped) does not stop
//!   its write: the write is in the queue or the transaction already, and it
//!   commits or fails with its batch like any other.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::FutureExt;
use sqlx::{Connection, Database, Pool};
use tokio::sync::{mpsc, oneshot};

use super::Engine;
use crate::{Result, StoreError};

/// Writes committed together at most. Bounds how long the first caller of a
/// batch waits for the others (each write takes tens of microseconds).
pub(crate) const MAX_BATCH: usize = 256;

/// The future of one write: borrows the connection for its run.
pub(crate) type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// How one write of a batch went.
enum Step {
    /// Its statements stand (its savepoint is released).
    Done,
    /// It refused or failed on its own: rolled back to its savepoint.
    Refused,
    /// The storage failed under it: the whole batch is lost.
    Fault(StoreError),
}

/// A queued write, with the caller's result type erased.
trait Job<DB: Database>: Send {
    fn run<'c>(
        &'c mut self,
        conn: &'c mut DB::Connection,
    ) -> Pin<Box<dyn Future<Output = Step> + Send + 'c>>;
    /// Answer the caller once the batch's fate is known: `Err` when the
    /// batch failed as a whole.
    fn answer(self: Box<Self>, batch: std::result::Result<(), &StoreError>);
}

struct Typed<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<DB, T, F> Job<DB> for Typed<T, F>
where
    DB: Database,
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut DB::Connection) -> WriteFuture<'c, T> + Send + 'static,
{
    fn run<'c>(
        &'c mut self,
        conn: &'c mut DB::Connection,
    ) -> Pin<Box<dyn Future<Output = Step> + Send + 'c>> {
        Box::pin(async move {
            let Some(work) = self.work.take() else {
                return Step::Refused;
            };
            let result = work(conn).await;
            let step = match &result {
                Ok(_) => Step::Done,
                Err(StoreError::StorageUnavailable(e)) => {
                    Step::Fault(StoreError::StorageUnavailable(e.clone()))
                }
                Err(_) => Step::Refused,
            };
            self.result = Some(result);
            step
        })
    }

    fn answer(self: Box<Self>, batch: std::result::Result<(), &StoreError>) {
        let answer = match (batch, self.result) {
            (Err(e), _) => Err(same_error(e)),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("the write did not run".into())),
        };
        // The caller may have gone; its write stands or falls all the same.
        let _ = self.reply.send(answer);
    }
}

/// `e` again, for another caller of the same failed batch.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::StorageUnavailable(s) => StoreError::StorageUnavailable(s.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// The handle callers send their writes through; the writer task ends when
/// the last handle is dropped.
pub(crate) struct Writer<DB: Database> {
    queue: mpsc::UnboundedSender<Box<dyn Job<DB>>>,
}

impl<DB: Engine> Writer<DB> {
    /// Start the writer task on `pool` (whose connections it borrows one
    /// batch at a time, so other users of the pool still get their turn).
    pub(crate) fn start(pool: Pool<DB>) -> Writer<DB> {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, jobs));
        Writer { queue }
    }

    /// Run `work` in the next batch; its result once the batch committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut DB::Connection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job<DB>> = Box::new(Typed {
            work: Some(work),
            result: None,
            reply,
        });
        self.queue
            .send(job)
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the writer dropped a write".into()))?
    }
}

async fn run<DB: Engine>(pool: Pool<DB>, mut queue: mpsc::UnboundedReceiver<Box<dyn Job<DB>>>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let outcome = commit_batch(&pool, &mut queue, &mut batch).await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, writes = batch.len(), "a batch of writes failed; each of its callers gets the error");
        }
        for job in batch {
            job.answer(outcome.as_ref().map(|_| ()));
        }
    }
}

/// Run `batch`, and whatever joins the queue while it runs, in one
/// transaction, and commit it.
async fn commit_batch<DB: Engine>(
    pool: &Pool<DB>,
    queue: &mut mpsc::UnboundedReceiver<Box<dyn Job<DB>>>,
    batch: &mut Vec<Box<dyn Job<DB>>>,
) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with(DB::BEGIN_WRITE).await?;
    let mut next = 0;
    loop {
        while next < batch.len() {
            // A nested transaction is a SAVEPOINT.
            let mut savepoint = Connection::begin(&mut *tx).await?;
            let step = AssertUnwindSafe(batch[next].run(&mut *savepoint))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Step::Fault(StoreError::Backend("a write panicked".into())));
            match step {
                Step::Done => savepoint.commit().await?,
                Step::Refused => savepoint.rollback().await?,
                // Dropping the transaction rolls everything back.
                Step::Fault(e) => return Err(e),
            }
            next += 1;
        }
        if batch.len() >= MAX_BATCH {
            break;
        }
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    tx.commit().await?;
    Ok(())
}

//! The task engine: applies connection tasks to the data plane.
//!
//! Tasks are rows. A worker claims one with a lease (the store makes the
//! claim atomic, so each task is owned by one worker at a time, in this
//! process or another), calls the gateway node's driver with the complete
//! desired state, and records the outcome together with the connection's
//! state transition in one transaction. A worker that dies holding a lease
//! simply lets it expire; the next claim picks the task up again. Drivers are
//! idempotent, and `finish_task` refuses a worker whose lease was taken over,
//! so a task is completed exactly once. A worker claims only the tasks of
//! gateway nodes this process has a driver for (those whose lease it holds,
//! see [`super::cluster`]) and of API-only gateways; another node's tasks are
//! left to the vpcd driving that node.
//!
//! Claims and finishes are batched: the claimer takes as many tasks as
//! there are free workers in one claim (one transaction; the store takes
//! them round robin by account, so one account's burst does not hold up
//! the others), and finished tasks are recorded by one finisher, which
//! writes every outcome queued at the time in one transaction. A task is
//! logged as succeeded only once its finish is durable.
//!
//! A lease held by a process that is provably dead (on this host, in this
//! pid namespace, and gone: see [`super::holder`]) is released at start and
//! then every [`DEAD_HOLDER_CHECK`], so a vpcd restarted after a crash (or a
//! neighbour on the same host) resumes the dead process's tasks at once,
//! not when their leases run out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use vpcd_dataplane::DriverError;
use vpcd_store::{ClaimedTask, Store, StoreError, TaskError};
use vpcd_types::{TaskId, TaskKind};

use super::drivers::Drivers;
use super::holder::Holder;
use crate::clock::Clock;
use crate::error::TaskFailure;

/// How often the leases of running tasks are checked for dead holders.
const DEAD_HOLDER_CHECK: Duration = Duration::from_secs(5);
/// Outcomes written per finishing transaction at most.
const FINISH_BATCH: usize = 256;

/// One outcome on its way to the finisher, and where to tell whether the
/// lease still held.
type Finish = (
    TaskId,
    Result<(), TaskError>,
    oneshot::Sender<Result<bool, StoreError>>,
);

pub(crate) struct Engine {
    store: Arc<dyn Store>,
    drivers: Arc<Drivers>,
    clock: Clock,
    worker_id: String,
    lease_secs: i64,
    concurrency: usize,
    /// Notified when a task may be waiting: by the API side after a task row
    /// commits, and when this process starts driving another gateway node.
    wake: Arc<Notify>,
    /// This process, as lease owners name it; `None` where `/proc` cannot
    /// tell (then no holder is ever judged dead).
    me: Option<Holder>,
}

impl Engine {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        drivers: Arc<Drivers>,
        clock: Clock,
        lease_secs: i64,
        concurrency: usize,
        wake: Arc<Notify>,
    ) -> Self {
        let me = Holder::current();
        let worker_id = format!(
            "{}-{}-{:08x}{}",
            super::hostname().unwrap_or_else(|| "vpcd".into()),
            std::process::id(),
            rand::random::<u32>(),
            me.as_ref().map(Holder::tag).unwrap_or_default()
        );
        Engine {
            store,
            drivers,
            clock,
            worker_id,
            lease_secs,
            concurrency: concurrency.max(1),
            wake,
            me,
        }
    }

    pub(crate) fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claim and run one task. Returns whether there was one. Tests use this
    /// to drain the queue at a chosen point.
    pub(crate) async fn run_once(&self) -> anyhow::Result<bool> {
        let Some(claimed) = self.claim(1).await?.pop() else {
            return Ok(false);
        };
        let (task_id, outcome) = self.execute(&claimed).await;
        let finished = self
            .store
            .finish_task(task_id, &self.worker_id, self.clock.now(), outcome.clone())
            .await;
        report(&claimed, &outcome, finished)?;
        Ok(true)
    }

    /// Up to `max` runnable tasks of the gateway nodes this process drives
    /// (or of API-only gateways), leased to this worker.
    async fn claim(&self, max: usize) -> Result<Vec<ClaimedTask>, StoreError> {
        self.store
            .claim_tasks_on(
                &self.worker_id,
                self.clock.now(),
                self.lease_secs,
                &self.drivers.driven(),
                max,
            )
            .await
    }

    /// Run the task on its gateway's driver; the outcome to record.
    async fn execute(&self, claimed: &ClaimedTask) -> (TaskId, Result<(), TaskError>) {
        let ClaimedTask { task, conn } = claimed;
        let outcome = match self.drivers.get(conn.node_id) {
            None => Err(TaskError {
                error_code: TaskFailure::GatewayNodeUnavailable.as_str().into(),
                error_msg: format!(
                    "the gateway node serving VPN gateway {} is not connected to this vpcd",
                    conn.vpn_gw.un_id
                ),
            }),
            Some(driver) => {
                let spec = conn.tunnel_spec();
                let result = match task.kind {
                    TaskKind::Create | TaskKind::Modify => driver.apply(&spec).await,
                    TaskKind::Delete => driver.remove(&spec.name).await,
                    TaskKind::Reset => driver.reset(&spec).await,
                };
                result.map_err(driver_task_error)
            }
        };
        (task.id, outcome)
    }

    /// Release the task leases of every holder that is provably dead.
    async fn release_dead_holders(&self) {
        let Some(me) = &self.me else {
            return;
        };
        let holders = match self.store.task_lease_holders().await {
            Ok(holders) => holders,
            Err(e) => {
                tracing::warn!(error = %e, "listing task lease holders failed");
                return;
            }
        };
        for holder in holders {
            let dead = Holder::of_worker(&holder).is_some_and(|h| h.is_dead_seen_from(me));
            if !dead || holder == self.worker_id {
                continue;
            }
            match self.store.release_task_leases(&holder).await {
                Ok(n) => tracing::info!(
                    holder = %holder,
                    tasks = n,
                    "released the task leases of a vpcd process that is gone"
                ),
                Err(e) => tracing::warn!(error = %e, "releasing a dead holder's leases failed"),
            }
        }
    }

    /// Run workers until `shutdown` turns true, then wait for the tasks in
    /// hand (the caller bounds that wait with a deadline).
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let (finish, finishes) = mpsc::unbounded_channel();
        let finisher = tokio::spawn(self.clone().finish_queued(finishes));
        self.release_dead_holders().await;
        let mut last_check = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = shutdown.changed() => break,
            };
            // One claim for every free worker.
            let mut permits = vec![first];
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            match self.claim(permits.len()).await {
                Ok(claimed) if !claimed.is_empty() => {
                    for (claimed, permit) in claimed.into_iter().zip(permits) {
                        let (me, finish) = (self.clone(), finish.clone());
                        tokio::spawn(me.run_claimed(claimed, finish, permit));
                    }
                }
                Ok(_) => {
                    drop(permits);
                    if last_check.elapsed() >= DEAD_HOLDER_CHECK {
                        self.release_dead_holders().await;
                        last_check = Instant::now();
                        continue;
                    }
                    // Poll as a fallback: tasks may come from other vpcd
                    // nodes, or leases may expire.
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                Err(e) => {
                    drop(permits);
                    tracing::error!(error = %e, "claiming tasks failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Wait for in-flight tasks (and their finishes): take every permit
        // back; then the finisher has nothing left and stops.
        let _ = slots.acquire_many(self.concurrency as u32).await;
        drop(finish);
        let _ = finisher.await;
    }

    /// One claimed task: run it, hand its outcome to the finisher, report.
    async fn run_claimed(
        self: Arc<Self>,
        claimed: ClaimedTask,
        finish: mpsc::UnboundedSender<Finish>,
        _permit: OwnedSemaphorePermit,
    ) {
        let (task_id, outcome) = self.execute(&claimed).await;
        let (tell, told) = oneshot::channel();
        let finished = match finish.send((task_id, outcome.clone(), tell)) {
            Ok(()) => told
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the finisher stopped".into()))),
            Err(_) => Err(StoreError::Backend("the finisher stopped".into())),
        };
        if let Err(e) = report(&claimed, &outcome, finished) {
            tracing::error!(error = %e, task = %task_id, "task bookkeeping failed; the lease will expire and the task will run again");
        }
    }

    /// Record outcomes as they come, every outcome queued at the time in
    /// one transaction.
    async fn finish_queued(self: Arc<Self>, mut finishes: mpsc::UnboundedReceiver<Finish>) {
        while let Some(first) = finishes.recv().await {
            let mut batch = vec![first];
            while batch.len() < FINISH_BATCH {
                match finishes.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (outcomes, tells): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(id, outcome, tell)| ((id, outcome), tell))
                .unzip();
            let done = self
                .store
                .finish_tasks(&self.worker_id, self.clock.now(), outcomes)
                .await;
            match done {
                Ok(done) => {
                    for (tell, finished) in tells.into_iter().zip(done) {
                        let _ = tell.send(Ok(finished));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    for tell in tells {
                        let _ = tell.send(Err(StoreError::Backend(text.clone())));
                    }
                }
            }
        }
    }
}

/// Log how a task ended, once its outcome is recorded (or failed to be).
fn report(
    claimed: &ClaimedTask,
    outcome: &Result<(), TaskError>,
    finished: Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let (task, conn) = (&claimed.task, &claimed.conn);
    if !finished? {
        tracing::warn!(
            task = %task.id,
            "lease lost before the task finished; another worker owns it now"
        );
        return Ok(());
    }
    match outcome {
        Ok(()) => {
            tracing::info!(task = %task.id, kind = task.kind.as_str(), conn = %conn.un_id, "task succeeded")
        }
        Err(e) => {
            tracing::warn!(task = %task.id, kind = task.kind.as_str(), conn = %conn.un_id, error = %e.error_msg, "task failed")
        }
    }
    Ok(())
}

fn driver_task_error(e: DriverError) -> TaskError {
    let code = match e {
        DriverError::Unreachable(_) => TaskFailure::GatewayNodeUnreachable,
        DriverError::Rejected(_) => TaskFailure::DataPlaneRejected,
    };
    TaskError {
        error_code: code.as_str().into(),
        error_msg: e.to_string(),
    }
}

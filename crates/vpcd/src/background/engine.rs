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
//! logged as succeeded only once its finish is durable. On SQLite both go
//! through the store's group-commit writer, so a claim or a finish shares
//! the transaction and the fsync of the requests' writes queued with it.
//!
//! Two lanes: the workers (`--workers`, each applying one task at a time)
//! take the tasks of gateway nodes, whose drivers wait on a data plane. The
//! API-only driver without simulated latency applies nothing and answers at
//! once, so its tasks need no worker: the instant lane claims up to
//! [`INSTANT_BATCH`] of them at a time (at most [`INSTANT_IN_FLIGHT`]
//! claimed and not yet finished), applies them together and hands them to
//! the finisher together. Either way a task is leased before it is applied
//! and finished only by its lease holder, so it is still completed once.
//! The claimer is woken as soon as a task is enqueued in this process, and
//! polls every [`POLL`] for the others; a round that claimed something is
//! followed by the next at once. Under a steady stream of adds the engine
//! therefore claims, in each group commit, what the previous ones enqueued,
//! and finishes it in the next.
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
use vpcd_types::{GatewayNodeId, TaskId, TaskKind};

use super::drivers::Drivers;
use super::holder::Holder;
use crate::clock::Clock;
use crate::error::TaskFailure;

/// How often the leases of running tasks are checked for dead holders.
const DEAD_HOLDER_CHECK: Duration = Duration::from_secs(5);
/// Outcomes written per finishing transaction at most.
const FINISH_BATCH: usize = 1024;
/// API-only tasks claimed at once by the instant lane, at most.
const INSTANT_BATCH: usize = 256;
/// API-only tasks of the instant lane claimed and not yet finished, at most.
const INSTANT_IN_FLIGHT: usize = 1024;
/// How often the claimer looks for tasks it was not told about: enqueued
/// by another vpcd, or whose lease ran out.
const POLL: Duration = Duration::from_millis(500);

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
        let Some(claimed) = self.claim(&self.drivers.driven(), 1).await?.pop() else {
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

    /// Up to `max` runnable tasks of the gateways placed on `nodes` (`None`:
    /// API-only gateways), leased to this worker.
    async fn claim(
        &self,
        nodes: &[Option<GatewayNodeId>],
        max: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        if max == 0 || nodes.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .claim_tasks_on(
                &self.worker_id,
                self.clock.now(),
                self.lease_secs,
                nodes,
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
    ///
    /// Each round claims, in one claim per lane (both ride in the same
    /// group commit on SQLite): the worker lane as many tasks as there are
    /// free workers, and the instant lane (API-only tasks, when they need
    /// no worker) up to [`INSTANT_BATCH`]. A round that claimed something is
    /// followed by the next at once; an empty one waits for a task to be
    /// enqueued in this process ([`Engine::wake`]), for a worker or room
    /// to free up, or, for other processes' tasks and expired leases, for
    /// [`POLL`].
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let room = Arc::new(Semaphore::new(INSTANT_IN_FLIGHT));
        let instant = self.drivers.api_only_instant();
        let (finish, finishes) = mpsc::unbounded_channel();
        let finisher = tokio::spawn(self.clone().finish_queued(finishes));
        self.release_dead_holders().await;
        let mut last_check = Instant::now();
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            // The worker lane: every gateway this process may run tasks
            // for, but API-only ones when the instant lane takes them.
            let mut nodes = self.drivers.driven();
            if instant {
                nodes.retain(Option::is_some);
            }
            let for_workers = if nodes.is_empty() { 0 } else { permits.len() };
            let for_instant = if instant {
                room.available_permits().min(INSTANT_BATCH)
            } else {
                0
            };
            let (by_workers, by_instant) = tokio::join!(
                self.claim(&nodes, for_workers),
                self.claim(&[None], for_instant)
            );
            let mut claimed_any = false;
            let mut failed = None;
            match by_workers {
                Ok(claimed) => {
                    claimed_any |= !claimed.is_empty();
                    // The store claims no more than asked: a worker each.
                    let n = claimed.len().min(permits.len());
                    for (claimed, permit) in claimed.into_iter().zip(permits.drain(..n)) {
                        let (me, finish) = (self.clone(), finish.clone());
                        tokio::spawn(me.run_claimed(claimed, finish, permit));
                    }
                }
                Err(e) => failed = Some(e),
            }
            match by_instant {
                Ok(claimed) if !claimed.is_empty() => {
                    claimed_any = true;
                    let n = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
                    // Only this loop takes room, so it is there.
                    let held = room
                        .clone()
                        .acquire_many_owned(n)
                        .await
                        .expect("semaphore never closed");
                    tokio::spawn(self.clone().run_instant(claimed, finish.clone(), held));
                }
                Ok(_) => {}
                Err(e) => failed = Some(e),
            }
            if let Some(e) = failed {
                tracing::error!(error = %e, "claiming tasks failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if last_check.elapsed() >= DEAD_HOLDER_CHECK {
                self.release_dead_holders().await;
                last_check = Instant::now();
                continue;
            }
            if claimed_any {
                continue;
            }
            // Nothing runnable: wait for a task enqueued here, a worker or
            // room freed (what a lane lacked), or poll as a fallback: tasks
            // may come from other vpcd nodes, or leases may expire.
            let waiting_worker = !nodes.is_empty() && permits.is_empty();
            let waiting_room = instant && for_instant == 0;
            tokio::select! {
                _ = self.wake.notified() => {}
                p = slots.clone().acquire_owned(), if waiting_worker => {
                    permits.push(p.expect("semaphore never closed"));
                }
                p = room.clone().acquire_owned(), if waiting_room => drop(p),
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => break,
            }
        }
        // Wait for in-flight tasks (and their finishes): take every permit
        // and all the room back; then the finisher has nothing left and
        // stops.
        drop(permits);
        let _ = slots.acquire_many(self.concurrency as u32).await;
        let _ = room.acquire_many(INSTANT_IN_FLIGHT as u32).await;
        drop(finish);
        let _ = finisher.await;
    }

    /// A claim of the instant lane: apply every task (in memory, at once),
    /// hand the outcomes to the finisher together, report each once it is
    /// recorded; `_room` goes back when all are.
    async fn run_instant(
        self: Arc<Self>,
        claimed: Vec<ClaimedTask>,
        finish: mpsc::UnboundedSender<Finish>,
        _room: OwnedSemaphorePermit,
    ) {
        let outcomes = futures::future::join_all(claimed.iter().map(|c| self.execute(c))).await;
        let mut told = Vec::with_capacity(outcomes.len());
        for (task_id, outcome) in &outcomes {
            let (tell, answer) = oneshot::channel();
            let _ = finish.send((*task_id, outcome.clone(), tell));
            told.push(answer);
        }
        for ((claimed, (task_id, outcome)), answer) in claimed.iter().zip(&outcomes).zip(told) {
            let finished = answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the finisher stopped".into())));
            if let Err(e) = report(claimed, outcome, finished) {
                tracing::error!(error = %e, task = %task_id, "task bookkeeping failed; the lease will expire and the task will run again");
            }
        }
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

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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use vpcd_dataplane::DriverError;
use vpcd_store::{ClaimedTask, Store, TaskError};
use vpcd_types::TaskKind;

use super::drivers::Drivers;
use crate::clock::Clock;
use crate::error::TaskFailure;

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
        let worker_id = format!(
            "{}-{}-{:08x}",
            super::hostname().unwrap_or_else(|| "vpcd".into()),
            std::process::id(),
            rand::random::<u32>()
        );
        Engine {
            store,
            drivers,
            clock,
            worker_id,
            lease_secs,
            concurrency: concurrency.max(1),
            wake,
        }
    }

    pub(crate) fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claim and run one task. Returns whether there was one. Tests use this
    /// to drain the queue at a chosen point.
    pub(crate) async fn run_once(&self) -> anyhow::Result<bool> {
        let Some(claimed) = self.claim().await? else {
            return Ok(false);
        };
        self.execute(claimed).await?;
        Ok(true)
    }

    /// The oldest runnable task of a gateway node this process drives (or
    /// of an API-only gateway), leased to this worker.
    async fn claim(&self) -> Result<Option<ClaimedTask>, vpcd_store::StoreError> {
        self.store
            .claim_task_on(
                &self.worker_id,
                self.clock.now(),
                self.lease_secs,
                &self.drivers.driven(),
            )
            .await
    }

    async fn execute(&self, claimed: ClaimedTask) -> anyhow::Result<()> {
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
        match &outcome {
            Ok(()) => {
                tracing::info!(task = %task.id, kind = task.kind.as_str(), conn = %conn.un_id, "task succeeded")
            }
            Err(e) => {
                tracing::warn!(task = %task.id, kind = task.kind.as_str(), conn = %conn.un_id, error = %e.error_msg, "task failed")
            }
        }
        let finished = self
            .store
            .finish_task(task.id, &self.worker_id, self.clock.now(), outcome)
            .await?;
        if !finished {
            tracing::warn!(
                task = %task.id,
                "lease lost before the task finished; another worker owns it now"
            );
        }
        Ok(())
    }

    /// Run workers until `shutdown` turns true, then wait for the tasks in
    /// hand (the caller bounds that wait with a deadline).
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = shutdown.changed() => break,
            };
            match self.claim().await {
                Ok(Some(claimed)) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.execute(claimed).await {
                            tracing::error!(error = %e, "task bookkeeping failed; the lease will expire and the task will run again");
                        }
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    // Poll as a fallback: tasks may come from other vpcd
                    // nodes, or leases may expire.
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a task failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Wait for in-flight tasks: take every permit back.
        let _ = slots.acquire_many(self.concurrency as u32).await;
    }
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

//! Pruning finished tasks (issue 11, finding 8): a task row stays for the
//! retention period after it finished (`--task-retention-secs`), so
//! DescribeVpcTaskResult can report it, and is deleted after that. A pruned
//! task is answered like one that never existed (`TaskNotFound`).
//!
//! Rows go a batch per short write transaction, oldest first, with a yield
//! between batches, so the writer is never held long however large the
//! backlog (an upgraded database keeps every task an older vpcd made).
//! Every vpcd of a cluster prunes; deleting rows another one deleted first is
//! harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vpcd_store::Store;

use crate::clock::Clock;

/// Task rows deleted per transaction.
const BATCH: u32 = 1_000;
/// How often a process looks for tasks past their retention.
pub(crate) const INTERVAL: Duration = Duration::from_secs(300);

pub(crate) struct Pruner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    /// How long a finished task is kept, in seconds.
    pub(crate) retention_secs: i64,
}

impl Pruner {
    /// Delete every task that finished more than the retention period ago;
    /// the number deleted.
    pub(crate) async fn run_once(&self) -> vpcd_store::Result<u64> {
        let finished_before = self.clock.now().saturating_sub(self.retention_secs);
        let mut deleted = 0;
        loop {
            let n = self.store.prune_tasks(finished_before, BATCH).await?;
            deleted += n;
            if n < u64::from(BATCH) {
                return Ok(deleted);
            }
            // Writers that queued meanwhile go before the next batch.
            tokio::task::yield_now().await;
        }
    }
}

/// Prune now and then every `interval` until `shutdown`.
pub(crate) async fn run(
    pruner: Arc<Pruner>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match pruner.run_once().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(tasks = n, "pruned finished tasks past their retention"),
            Err(e) => tracing::warn!(error = %e, "pruning finished tasks failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;
    use vpcd_store::testing::claim_any;
    use vpcd_store::*;
    use vpcd_types::{IdRef, TaskStatus};

    use super::*;
    use crate::api::ApiState;
    use crate::error::ErrorCode;
    use crate::ops::task::{describe_task, DescribeTask, TaskRef};
    use crate::placement::Placement;

    /// A connection in `scope` whose create task is left running.
    async fn conn(store: &dyn Store, scope: &Scope, vpc: &Vpc, gw: &VpnGw, peer: &str) -> Task {
        let ugw = store
            .create_user_gw(
                scope,
                NewUserGw {
                    name: peer.into(),
                    address: peer.parse().unwrap(),
                },
                &Limits::default(),
            )
            .await
            .unwrap();
        // The ready-made settings of the data plane's tests: the store does
        // not look into them.
        let settings = vpcd_dataplane::test_support::spec_default().settings;
        let new = NewConn {
            vpc_id: vpc.id,
            vpn_gw_id: gw.id,
            user_gw_id: ugw.id,
            name: peer.into(),
            settings,
            tags: Vec::new(),
        };
        store
            .create_conn(scope, new, &Limits::default())
            .await
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn finished_tasks_go_after_the_retention_period_and_then_are_not_found() {
        let store = vpcd_store::connect("sqlite::memory:", MasterKey::generate())
            .await
            .unwrap();
        let account = store.create_account("a").await.unwrap();
        let scope = Scope {
            account_id: account.id,
            region: "gz".into(),
        };
        let vpc = store
            .create_vpc(
                &scope,
                NewVpc {
                    name: "v".into(),
                    cidr: "10.0.0.0/16".parse().unwrap(),
                },
                &Limits::default(),
            )
            .await
            .unwrap();
        let gw = store
            .create_vpn_gw(
                &scope,
                NewVpnGw {
                    vpc_id: vpc.id,
                    name: "g".into(),
                    bandwidth: 10,
                    charge_type: "POSTPAID_BY_HOUR".into(),
                    charge_period: None,
                    address: AddressSource::Pool("203.0.113.0/24".parse().unwrap()),
                },
                &Limits::default(),
            )
            .await
            .unwrap();
        let clock = Clock::default();
        let done = conn(store.as_ref(), &scope, &vpc, &gw, "198.51.100.1").await;
        let claimed = claim_any(store.as_ref(), "w", clock.now(), 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.task.id, done.id);
        assert!(store
            .finish_task(done.id, "w", clock.now(), Ok(()))
            .await
            .unwrap());
        let running = conn(store.as_ref(), &scope, &vpc, &gw, "198.51.100.2").await;

        let pruner = Pruner {
            store: store.clone(),
            clock: clock.clone(),
            retention_secs: 7 * 24 * 3600,
        };
        assert_eq!(pruner.run_once().await.unwrap(), 0);
        // Exactly the retention period: still kept.
        clock.advance(7 * 24 * 3600);
        assert_eq!(pruner.run_once().await.unwrap(), 0);
        clock.advance(1);
        assert_eq!(pruner.run_once().await.unwrap(), 1);
        assert_eq!(store.get_task(&scope, done.id).await.unwrap(), None);
        // The running task stays, however old.
        let kept = store.get_task(&scope, running.id).await.unwrap().unwrap();
        assert_eq!(kept.status, TaskStatus::Running);

        // DescribeVpcTaskResult (either protocol, either way of naming the
        // task) answers a pruned task as an unknown one.
        let api = ApiState {
            store: store.clone(),
            settings: Arc::default(),
            clock: clock.clone(),
            placement: Arc::new(Placement::default()),
            tasks: Arc::new(Notify::new()),
            storage: crate::storage_health::StorageHealth::new(clock.clone()),
            rate: Arc::new(crate::rate_limit::RateLimiter::new(
                crate::rate_limit::RateLimit::default(),
            )),
            keys: Arc::default(),
            replay: crate::replay::Replay::start(store.clone(), false, 300, clock.clone())
                .await
                .unwrap(),
            requests: Default::default(),
        };
        let req = DescribeTask {
            task: TaskRef::Id(done.id),
        };
        let e = describe_task(&api, &scope, req).await.err().unwrap();
        assert_eq!(e.code, ErrorCode::TaskNotFound);
        assert!(store
            .get_conn(&scope, &IdRef::Numeric(done.conn_id.get()))
            .await
            .unwrap()
            .is_some());
    }
}

//! What monitoring reads at scrape time: the task queue, connections by
//! state and health, and the connection pools. Written once for both
//! engines; only how many pools there are differs ([`Engine::ONE_POOL`]).
//!
//! These are counts across every account, read on each scrape (every 15 s
//! or so), never on a request path. The unfinished tasks are read through
//! the partial index on `status = 2`; the failed count and the connection
//! counts scan their tables, which stay small enough for that: finished
//! tasks are pruned after the retention period, and a scan of 100 000
//! connection rows is a few milliseconds.

use super::*;

/// Unfinished tasks split by whether a lease is current at `$1`, and the
/// oldest one no worker holds. `status = 2` written literally for the
/// partial index.
const UNFINISHED_TASKS: &str = "SELECT \
     COALESCE(SUM(CASE WHEN lease_until IS NULL OR lease_until < $1 THEN 1 ELSE 0 END), 0) AS queued, \
     COALESCE(SUM(CASE WHEN lease_until >= $1 THEN 1 ELSE 0 END), 0) AS running, \
     MIN(CASE WHEN lease_until IS NULL OR lease_until < $1 THEN created_at END) AS oldest_queued_at \
     FROM tasks WHERE status = 2";

const FAILED_TASKS: &str = "SELECT COUNT(*) AS failed FROM tasks WHERE status = 1";

const CONNS_BY_STATE: &str = "SELECT status, net_status, COUNT(*) AS n FROM vpn_conns \
     GROUP BY status, net_status ORDER BY status, net_status";

impl<DB: Engine> SqlStore<DB> {
    pub(super) async fn count_tasks(&self, now: Timestamp) -> Result<TaskCounts> {
        let (unfinished, failed) = self
            .read_pair(
                Sql::new(UNFINISHED_TASKS).arg(now),
                Sql::new(FAILED_TASKS),
                Size::Bulk,
            )
            .await?;
        let (unfinished, failed) = (first_of(unfinished)?, first_of(failed)?);
        Ok(TaskCounts {
            queued: count(unfinished.int("queued")?),
            running: count(unfinished.int("running")?),
            failed: count(failed.int("failed")?),
            oldest_queued_at: unfinished.opt_int("oldest_queued_at")?,
        })
    }

    pub(super) async fn count_conns(&self) -> Result<Vec<ConnCount>> {
        let rows = self.read_rows(Sql::new(CONNS_BY_STATE), Size::Bulk).await?;
        rows.iter()
            .map(|r| {
                Ok(ConnCount {
                    status: conn_status(r.int("status")?)?,
                    net_status: net_status_of(&r.text("net_status")?)?,
                    count: count(r.int("n")?),
                })
            })
            .collect()
    }

    pub(super) fn pools_in_use(&self) -> Vec<PoolUse> {
        let use_of = |pool: &'static str, p: &Pool<DB>| PoolUse {
            pool,
            open: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            max: p.options().get_max_connections(),
        };
        if DB::ONE_POOL {
            vec![use_of("main", &self.write)]
        } else {
            vec![
                use_of("write", &self.write),
                match &self.read {
                    Reads::Pool(p) => use_of("read", p),
                    Reads::Direct(readers) => {
                        let (open, idle) = readers.in_use();
                        PoolUse {
                            pool: "read",
                            open,
                            idle,
                            max: readers.kept(),
                        }
                    }
                },
                use_of("nonces", &self.nonces),
            ]
        }
    }
}

/// A `COUNT`/`SUM` as a count (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

//! What gateway nodes observed about their tunnels (`conn_diagnostics`,
//! `conn_events`): written by the driving vpcd in batches, read by any.

use vpcd_types::diag::{EventReason, FailureDetail, FailureKind, Stage};
use vpcd_types::VpnConnId;

use super::*;

/// Columns of a `conn_diagnostics` row.
const DIAG_SELECT: &str = "SELECT failure_kind, failure_stage, peer_offered, gateway_allows, \
     peer_identity, failure_first_at, failure_last_at, traffic_at, bytes_in, bytes_out, \
     packets_in, packets_out, established_at, last_rekey_at \
     FROM conn_diagnostics WHERE conn_id = $1";

/// The connection's row id, for a statement whose `$1` is its unified id.
const CONN_OF: &str = "(SELECT id FROM vpn_conns WHERE un_id = $1)";

fn counter(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn failure_stmt(conn: &VpnConnId, f: &LastFailure) -> Sql {
    let d = &f.detail;
    Sql::new(
        "INSERT INTO conn_diagnostics (conn_id, failure_kind, failure_stage, peer_offered, \
         gateway_allows, peer_identity, failure_first_at, failure_last_at) \
         SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM vpn_conns WHERE un_id = $1 \
         ON CONFLICT (conn_id) DO UPDATE SET failure_kind = excluded.failure_kind, \
         failure_stage = excluded.failure_stage, peer_offered = excluded.peer_offered, \
         gateway_allows = excluded.gateway_allows, peer_identity = excluded.peer_identity, \
         failure_first_at = excluded.failure_first_at, failure_last_at = excluded.failure_last_at",
    )
    .arg(conn.as_str())
    .arg(f.kind.code())
    .arg(d.stage.map(|s| s.code().to_owned()))
    .arg(d.peer_offered.clone())
    .arg(d.gateway_allows.clone())
    .arg(d.peer_identity.clone())
    .arg(f.first_at)
    .arg(f.last_at)
}

fn traffic_stmt(conn: &VpnConnId, at: Timestamp, t: Option<&Traffic>) -> Sql {
    let n = |f: fn(&Traffic) -> u64| t.map(|t| counter(f(t)));
    Sql::new(
        "INSERT INTO conn_diagnostics (conn_id, traffic_at, bytes_in, bytes_out, packets_in, \
         packets_out, established_at, last_rekey_at) \
         SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM vpn_conns WHERE un_id = $1 \
         ON CONFLICT (conn_id) DO UPDATE SET traffic_at = excluded.traffic_at, \
         bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, \
         packets_in = excluded.packets_in, packets_out = excluded.packets_out, \
         established_at = excluded.established_at, last_rekey_at = excluded.last_rekey_at",
    )
    .arg(conn.as_str())
    .arg(at)
    .arg(n(|t| t.bytes_in))
    .arg(n(|t| t.bytes_out))
    .arg(n(|t| t.packets_in))
    .arg(n(|t| t.packets_out))
    .arg(t.and_then(|t| t.established_at))
    .arg(t.and_then(|t| t.last_rekey_at))
}

fn event_stmt(conn: &VpnConnId, e: &TunnelEvent) -> Sql {
    Sql::new(
        "INSERT INTO conn_events (conn_id, at, up, reason) \
         SELECT id, $2, $3, $4 FROM vpn_conns WHERE un_id = $1",
    )
    .arg(conn.as_str())
    .arg(e.at)
    .arg(e.up)
    .arg(e.reason.code())
}

/// Keep only the newest [`EVENTS_KEPT`] events of the connection.
fn prune_events_stmt(conn: &VpnConnId) -> Sql {
    Sql::new(format!(
        "DELETE FROM conn_events WHERE conn_id = {CONN_OF} AND id NOT IN \
         (SELECT id FROM conn_events WHERE conn_id = {CONN_OF} ORDER BY id DESC LIMIT $2)"
    ))
    .arg(conn.as_str())
    .arg(EVENTS_KEPT as i64)
}

fn parse_code<T: std::str::FromStr>(v: &str, what: &str) -> Result<T> {
    v.parse()
        .map_err(|_| StoreError::Backend(format!("unknown {what} {v:?} in the database")))
}

impl<DB: Engine> SqlStore<DB> {
    pub(super) async fn record_diagnostics_batch(&self, batch: DiagnosticsBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut stmts = Vec::new();
        for (conn, f) in &batch.failures {
            stmts.push(failure_stmt(conn, f));
        }
        for (conn, t) in &batch.traffic {
            stmts.push(traffic_stmt(conn, batch.traffic_at, t.as_ref()));
        }
        let mut touched: Vec<&VpnConnId> = Vec::new();
        for (conn, e) in &batch.events {
            stmts.push(event_stmt(conn, e));
            if !touched.contains(&conn) {
                touched.push(conn);
            }
        }
        for conn in touched {
            stmts.push(prune_events_stmt(conn));
        }
        self.write(move |tx| {
            Box::pin(async move {
                for q in stmts {
                    DB::execute(&mut *tx, q).await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub(super) async fn read_conn_diagnostics(
        &self,
        conn: VpnConnRowId,
    ) -> Result<ConnDiagnostics> {
        let (row, events) = self
            .read_pair(
                Sql::new(DIAG_SELECT).arg(conn),
                Sql::new(
                    "SELECT at, up, reason FROM conn_events WHERE conn_id = $1 \
                     ORDER BY id DESC LIMIT $2",
                )
                .arg(conn)
                .arg(EVENTS_KEPT as i64),
                Size::Bounded,
            )
            .await?;
        let mut out = ConnDiagnostics::default();
        if let Some(r) = row.first() {
            if let Some(kind) = r.opt_text("failure_kind")? {
                let stage = r.opt_text("failure_stage")?;
                out.last_failure = Some(LastFailure {
                    kind: parse_code::<FailureKind>(&kind, "failure kind")?,
                    detail: FailureDetail {
                        stage: stage
                            .map(|s| parse_code::<Stage>(&s, "failure stage"))
                            .transpose()?,
                        peer_offered: r.opt_text("peer_offered")?,
                        gateway_allows: r.opt_text("gateway_allows")?,
                        peer_identity: r.opt_text("peer_identity")?,
                    },
                    first_at: r.int("failure_first_at")?,
                    last_at: r.int("failure_last_at")?,
                });
            }
            out.sampled_at = r.opt_int("traffic_at")?;
            let n = |c: &str| -> Result<Option<u64>> {
                Ok(r.opt_int(c)?.map(|v| u64::try_from(v).unwrap_or(0)))
            };
            if let (Some(bi), Some(bo), Some(pi), Some(po)) = (
                n("bytes_in")?,
                n("bytes_out")?,
                n("packets_in")?,
                n("packets_out")?,
            ) {
                out.traffic = Some(Traffic {
                    bytes_in: bi,
                    bytes_out: bo,
                    packets_in: pi,
                    packets_out: po,
                    established_at: r.opt_int("established_at")?,
                    last_rekey_at: r.opt_int("last_rekey_at")?,
                });
            }
        }
        for e in &events {
            out.events.push(TunnelEvent {
                at: e.int("at")?,
                up: e.flag("up")?,
                reason: parse_code::<EventReason>(&e.text("reason")?, "event reason")?,
            });
        }
        Ok(out)
    }
}

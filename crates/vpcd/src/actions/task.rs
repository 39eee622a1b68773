//! DescribeVpcTaskResult.

use serde_json::{json, Value};
use vpcd_store::{Resource, Scope, Task};
use vpcd_types::{TaskId, TaskKind, TaskStatus};

use super::Reply;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

fn task_json(t: &Task) -> Value {
    let output = match (t.status, &t.error) {
        (TaskStatus::Failed, Some(e)) => json!({
            "errorCode": e.error_code,
            "errorMsg": e.error_msg,
        }),
        (TaskStatus::Failed, None) => json!({
            "errorCode": "TaskFailed",
            "errorMsg": "the task failed",
        }),
        (TaskStatus::Success, _) => {
            let mut out = json!({
                "vpnConnId": t.conn_id,
                "unVpnConnId": t.conn_un_id.to_string(),
                "vpnGwId": t.vpn_gw_un_id.to_string(),
                "userGwId": t.user_gw_un_id.to_string(),
            });
            if t.kind == TaskKind::Delete {
                out["deleted"] = json!(true);
            }
            out
        }
        (TaskStatus::Running, _) => json!({}),
    };
    json!({
        "taskId": t.id,
        "status": t.status.code(),
        "action": t.kind.as_str(),
        "output": output,
    })
}

pub(super) async fn describe(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let id = p
        .opt_int("taskId", 1..=i64::MAX)?
        .map(TaskId::new)
        .ok_or_else(|| ApiError::missing("taskId"))?;
    let task = state
        .store
        .get_task(scope, id)
        .await
        .map_err(|e| ApiError::from_store(e, "taskId"))?
        .ok_or_else(|| ApiError::not_found(Resource::Task, "taskId", id))?;
    Ok(Reply::Data(task_json(&task)))
}

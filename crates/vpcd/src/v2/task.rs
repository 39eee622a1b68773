//! DescribeVpcTaskResult.

use serde::Serialize;
use vpcd_store::{Scope, Task};
use vpcd_types::{TaskId, TaskKind, TaskStatus, UserGwId, VpnConnId, VpnConnRowId, VpnGwId};

use super::params::Params;
use super::Reply;
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, TaskFailure};
use crate::ops::task::{self as op, DescribeTask, TaskRef};

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = DescribeTask {
        task: TaskRef::Id(
            p.opt_int("taskId", 1..=i64::MAX)?
                .map(TaskId::new)
                .ok_or_else(|| ApiError::missing("taskId"))?,
        ),
    };
    let task = op::describe_task(api, scope, req).await?;
    Reply::data(render(&task))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    task_id: TaskId,
    status: i64,
    action: &'static str,
    output: Output<'a>,
}

#[derive(Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum Output<'a> {
    Failed {
        error_code: &'a str,
        error_msg: &'a str,
    },
    Succeeded {
        vpn_conn_id: VpnConnRowId,
        un_vpn_conn_id: &'a VpnConnId,
        vpn_gw_id: &'a VpnGwId,
        user_gw_id: &'a UserGwId,
        #[serde(skip_serializing_if = "Option::is_none")]
        deleted: Option<bool>,
    },
    Running {},
}

fn render(t: &Task) -> Item<'_> {
    let output = match (t.status, &t.error) {
        (TaskStatus::Failed, Some(e)) => Output::Failed {
            error_code: &e.error_code,
            error_msg: &e.error_msg,
        },
        (TaskStatus::Failed, None) => Output::Failed {
            error_code: TaskFailure::TaskFailed.as_str(),
            error_msg: "the task failed",
        },
        (TaskStatus::Success, _) => Output::Succeeded {
            vpn_conn_id: t.conn_id,
            un_vpn_conn_id: &t.conn_un_id,
            vpn_gw_id: &t.vpn_gw_un_id,
            user_gw_id: &t.user_gw_un_id,
            deleted: (t.kind == TaskKind::Delete).then_some(true),
        },
        (TaskStatus::Running, _) => Output::Running {},
    };
    Item {
        task_id: t.id,
        status: t.status.code(),
        action: t.kind.as_str(),
        output,
    }
}

//! DescribeVpcTaskResult, and labelling a task with the RequestId of the
//! call that started it.
//!
//! 3.0's `TaskId` is the RequestId an asynchronous call answered. A v2 task
//! number is taken too, so a task started through v2 can be followed
//! through 3.0.

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::Task;
use vpcd_types::{TaskId, TaskStatus, VpnConnId};

use super::params::{invalid, Obj};
use super::{answer, Ctx, Handler};
use crate::api::ApiState;
use crate::error::{ApiResult, TaskFailure};
use crate::ops::task::{self as op, DescribeTask, TaskRef};

/// Remember that this request started `task`.
pub(super) async fn record(api: &ApiState, ctx: &Ctx, task: &Task) -> ApiResult<()> {
    op::label(api, task, &ctx.request_id).await
}

/// Whether `s` has the shape of a RequestId (a lower-case UUID).
fn is_request_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

pub(super) struct Describe(DescribeTask);

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let f = o.required("TaskId")?;
        let text = f.str()?;
        let task = if is_request_id(text) {
            TaskRef::Request(text.to_owned())
        } else {
            match text.parse::<i64>() {
                Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => {
                    TaskRef::Id(TaskId::new(n))
                }
                _ => {
                    return Err(invalid(
                        &f.path,
                        "expected the RequestId of an asynchronous call (or a v2 task number)",
                    ))
                }
            }
        };
        Ok(Describe(DescribeTask { task }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let t = op::describe_task(api, &ctx.scope, self.0).await?;
        let (status, output) = match (t.status, &t.error) {
            (TaskStatus::Success, _) => ("SUCCESS", "success".to_owned()),
            (TaskStatus::Running, _) => ("RUNNING", String::new()),
            (TaskStatus::Failed, Some(e)) => {
                ("FAILED", format!("{}: {}", e.error_code, e.error_msg))
            }
            (TaskStatus::Failed, None) => (
                "FAILED",
                format!("{}: the task failed", TaskFailure::TaskFailed.as_str()),
            ),
        };
        answer(Described {
            status,
            output,
            result: [Detail {
                resource_id: &t.conn_un_id,
                status,
            }],
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described<'a> {
    status: &'static str,
    output: String,
    /// The connection the task is about.
    result: [Detail<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Detail<'a> {
    resource_id: &'a VpnConnId,
    status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_request_id("3f2b0c1e-7a9d-4c1b-8e2f-5d6a7b8c9d0e"));
        assert!(!is_request_id("3F2B0C1E-7A9D-4C1B-8E2F-5D6A7B8C9D0E"));
        assert!(!is_request_id("3f2b0c1e7a9d4c1b8e2f5d6a7b8c9d0e"));
        assert!(!is_request_id("12"));
    }
}

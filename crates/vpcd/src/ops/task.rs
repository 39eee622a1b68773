//! Tasks: how an asynchronous connection change is going.

use vpcd_store::{Scope, Task};
use vpcd_types::TaskId;

use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};

/// How a caller names a task.
pub(crate) enum TaskRef {
    /// Its number (v2's `taskId`).
    Id(TaskId),
    /// The RequestId of the API 3.0 call that started it.
    Request(String),
}

pub(crate) struct DescribeTask {
    pub(crate) task: TaskRef,
}

pub(crate) async fn describe_task(
    api: &ApiState,
    scope: &Scope,
    req: DescribeTask,
) -> ApiResult<Task> {
    let found = match &req.task {
        TaskRef::Id(id) => api.store.get_task(scope, *id).await,
        TaskRef::Request(rid) => api.store.get_task_by_request(scope, rid).await,
    };
    found
        .map_err(|e| ApiError::from_store(e, Field::TaskId))?
        .ok_or_else(|| {
            let shown = match &req.task {
                TaskRef::Id(id) => id.to_string(),
                TaskRef::Request(rid) => rid.clone(),
            };
            ApiError::not_found(ErrorCode::TaskNotFound, Field::TaskId, shown)
        })
}

/// Remember that the request `request_id` started `task`, so that
/// [`TaskRef::Request`] finds it. Runs right after the change committed:
/// if vpcd stops in between, the task runs all the same and only its
/// number finds it.
pub(crate) async fn label(api: &ApiState, task: &Task, request_id: &str) -> ApiResult<()> {
    api.store
        .label_task(task.id, request_id)
        .await
        .map_err(|e| ApiError::internal(format!("labelling task {}: {e}", task.id)))
}

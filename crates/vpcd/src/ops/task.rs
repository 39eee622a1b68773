//! Tasks: how an asynchronous connection change is going.

use vpcd_store::{Scope, Task};
use vpcd_types::TaskId;

use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};

pub(crate) struct DescribeTask {
    pub(crate) task: TaskId,
}

pub(crate) async fn describe_task(
    api: &ApiState,
    scope: &Scope,
    req: DescribeTask,
) -> ApiResult<Task> {
    api.store
        .get_task(scope, req.task)
        .await
        .map_err(|e| ApiError::from_store(e, Field::TaskId))?
        .ok_or_else(|| ApiError::not_found(ErrorCode::TaskNotFound, Field::TaskId, req.task))
}

-- API 3.0 follows an asynchronous call by the RequestId it answered:
-- DescribeVpcTaskResult takes that RequestId as its TaskId. The RequestId of
-- the call that started a task is kept on the task (v2 tasks have none).
ALTER TABLE tasks ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX tasks_by_request ON tasks (request_id) WHERE request_id IS NOT NULL;

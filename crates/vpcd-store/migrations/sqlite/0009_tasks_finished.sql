-- Finished tasks are deleted once older than the retention period (issue
-- 11, `vpcd serve --task-retention-secs`): the pruner finds them by their
-- finish time, oldest first, a batch at a time.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE status <> 2;

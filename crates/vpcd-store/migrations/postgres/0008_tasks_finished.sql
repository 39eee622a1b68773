-- Finished tasks are deleted once older than the retention period (issue
-- 11, `vpcd serve --task-retention-secs`): the pruner finds them by their
-- finish time, oldest first, a batch at a time. Every task row an older vpcd
-- wrote is still there, so on a busy database this build reads a large
-- table and holds writes to `tasks` meanwhile (a one-time pause at the
-- upgrade; CREATE INDEX CONCURRENTLY cannot run inside the migrator's
-- transaction).
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE status <> 2;

-- Claims go round robin by account: the claim query walks the running tasks
-- of the accounts after the last one served, oldest first within each.
CREATE INDEX tasks_running_by_account ON tasks (account_id, id) WHERE status = 2;

-- The per-region connection quota (Limits::conns_per_region) was a
-- COUNT(*) over every tunnel of the (account, region), taken while holding
-- the scope's lock row: 11 ms of AddVpnConnEx's 15 ms of counts at 100k.
-- The count now lives on that lock row itself: create_conn reads it with
-- the SELECT ... FOR UPDATE that serializes the scope's creators, and every
-- statement that inserts (create_conn, import_conns) or deletes (finish_task
-- of a successful delete) connection rows updates it in the same
-- transaction. A missing row means no connection yet.
ALTER TABLE scope_locks ADD COLUMN conns BIGINT NOT NULL DEFAULT 0 CHECK (conns >= 0);

INSERT INTO scope_locks (account_id, region, conns)
SELECT account_id, region, COUNT(*) FROM vpn_conns GROUP BY account_id, region
ON CONFLICT (account_id, region) DO UPDATE SET conns = EXCLUDED.conns;

-- The per-region connection quota (Limits::conns_per_region) was a
-- COUNT(*) over every tunnel of the (account, region) inside AddVpnConnEx's
-- write transaction: 2.8 ms at 100k tunnels, with the single writer held.
-- The count is now maintained here, in the same BEGIN IMMEDIATE transactions
-- that insert (create_conn, import_conns) or delete (finish_task of a
-- successful delete) connection rows, so the quota check reads one row.
-- No row means no connection yet.
CREATE TABLE conn_counts (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    region      TEXT    NOT NULL,
    conns       INTEGER NOT NULL CHECK (conns >= 0),
    PRIMARY KEY (account_id, region)
) WITHOUT ROWID;

INSERT INTO conn_counts (account_id, region, conns)
SELECT account_id, region, COUNT(*) FROM vpn_conns GROUP BY account_id, region;

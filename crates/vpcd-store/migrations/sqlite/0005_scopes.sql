-- One design for the per-region connection count on both engines: the
-- PostgreSQL engine kept it on its per-(account, region) lock row
-- (`scope_locks.conns`), this one in `conn_counts`; both are now `scopes`,
-- one row per (account, region) that has resources, created by the first
-- VPC, peer gateway or connection of the scope (a scope without one here
-- has no connection yet and gets its row on its next create). Under
-- SQLite's single writer nothing is locked on it; the count is kept the
-- same way (the transactions that insert or delete connection rows update
-- it).
CREATE TABLE scopes (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    region      TEXT    NOT NULL,
    conns       INTEGER NOT NULL DEFAULT 0 CHECK (conns >= 0),
    PRIMARY KEY (account_id, region)
) WITHOUT ROWID;

INSERT INTO scopes (account_id, region, conns)
SELECT account_id, region, conns FROM conn_counts;

DROP TABLE conn_counts;

-- "Node" meant both a vpcd process and a strongSwan gateway node; the vpcd
-- processes of a cluster are its members.
ALTER TABLE cluster_nodes RENAME TO cluster_members;
DROP INDEX cluster_nodes_by_last_seen;
CREATE INDEX cluster_members_by_last_seen ON cluster_members (last_seen);

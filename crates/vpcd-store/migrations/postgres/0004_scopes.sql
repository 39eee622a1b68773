-- One design for the per-region connection count on both engines: the row
-- per (account, region) that per-region quotas lock, with the scope's
-- connection count on it, is `scopes` on both (the SQLite engine's separate
-- `conn_counts` table is gone too).
ALTER TABLE scope_locks RENAME TO scopes;
ALTER TABLE scopes RENAME CONSTRAINT scope_locks_pkey TO scopes_pkey;

-- "Node" meant both a vpcd process and a strongSwan gateway node; the vpcd
-- processes of a cluster are its members.
ALTER TABLE cluster_nodes RENAME TO cluster_members;
ALTER TABLE cluster_members RENAME CONSTRAINT cluster_nodes_pkey TO cluster_members_pkey;
ALTER INDEX cluster_nodes_by_last_seen RENAME TO cluster_members_by_last_seen;

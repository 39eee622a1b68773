-- Gateway nodes, and the bookkeeping of several vpcd processes sharing one
-- database.

-- strongSwan charons that vpcd drives over VICI. `vpn_gws.node_id` names one
-- of these; the store refuses to remove a node while gateways use it.
CREATE TABLE gateway_nodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE CHECK (name <> ''),
    vici        TEXT    NOT NULL UNIQUE CHECK (vici <> ''),
    -- JSON array of the public addresses gateways on the node may use.
    addresses   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The vpcd processes, one row per process start (named by its worker id).
CREATE TABLE cluster_nodes (
    name        TEXT    PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    info        TEXT    NOT NULL
);
CREATE INDEX cluster_nodes_by_last_seen ON cluster_nodes (last_seen);

-- Which vpcd drives each gateway node. A lease is held through `until`
-- inclusive; an expired one may be taken by anyone.
CREATE TABLE gateway_leases (
    gateway_node_id INTEGER PRIMARY KEY REFERENCES gateway_nodes (id) ON DELETE CASCADE,
    holder          TEXT    NOT NULL,
    until           INTEGER NOT NULL
);

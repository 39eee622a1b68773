-- vpcd schema for SQLite.
--
-- Rules that a single row or index can express live here, so they hold even
-- if a bug in Rust forgets one: unique unified ids, unique names where the API
-- says so, one running task per connection, valid status codes. Quotas span
-- rows and are counted inside BEGIN IMMEDIATE transactions by the store.
--
-- Every id is AUTOINCREMENT so a number handed to a caller (a numeric resource
-- id, a task id being polled) is never reused for something else.
-- Times are Unix seconds.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    secret_id   TEXT    PRIMARY KEY,
    secret_key  TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_by_account ON api_keys (account_id);

-- Replay protection: one row per (key, nonce) seen inside the window.
CREATE TABLE nonces (
    secret_id   TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (secret_id, nonce)
);
CREATE INDEX nonces_by_seen_at ON nonces (seen_at);

CREATE TABLE vpcs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    un_id       TEXT    NOT NULL UNIQUE,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    region      TEXT    NOT NULL,
    name        TEXT    NOT NULL CHECK (name <> ''),
    cidr        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
-- The rowid (id) ends every SQLite index implicitly, which gives the
-- "tie-break by id" of every ordering for free.
CREATE UNIQUE INDEX vpcs_name ON vpcs (account_id, region, name);
CREATE INDEX vpcs_by_created ON vpcs (account_id, region, created_at);

CREATE TABLE vpn_gws (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    un_id         TEXT    NOT NULL UNIQUE,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    region        TEXT    NOT NULL,
    vpc_id        INTEGER NOT NULL REFERENCES vpcs (id),
    name          TEXT    NOT NULL CHECK (name <> ''),
    bandwidth     INTEGER NOT NULL,
    charge_type   TEXT    NOT NULL,
    charge_period INTEGER,
    address       TEXT    NOT NULL,
    -- The IPv4 address as a number, for picking the lowest free pool address.
    address_num   INTEGER,
    -- The gateway node serving it; NULL means API only.
    node_id       INTEGER,
    created_at    INTEGER NOT NULL
);
CREATE INDEX vpn_gws_by_vpc ON vpn_gws (vpc_id, created_at);
CREATE INDEX vpn_gws_by_created ON vpn_gws (account_id, region, created_at);
CREATE INDEX vpn_gws_by_name ON vpn_gws (account_id, region, name);
CREATE INDEX vpn_gws_by_address ON vpn_gws (address_num);
CREATE INDEX vpn_gws_by_node ON vpn_gws (node_id);

CREATE TABLE user_gws (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    un_id       TEXT    NOT NULL UNIQUE,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    region      TEXT    NOT NULL,
    name        TEXT    NOT NULL CHECK (name <> ''),
    address     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX user_gws_name ON user_gws (account_id, region, name);
CREATE UNIQUE INDEX user_gws_address ON user_gws (account_id, region, address);
CREATE INDEX user_gws_by_created ON user_gws (account_id, region, created_at);

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL,
    region         TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('create', 'modify', 'delete', 'reset')),
    -- 2 running, 0 success, 1 failed (DescribeVpcTaskResult codes).
    status         INTEGER NOT NULL CHECK (status IN (0, 1, 2)),
    -- No foreign key: a finished delete task outlives its connection, and
    -- the unified ids below keep it describable.
    conn_id        INTEGER NOT NULL,
    conn_un_id     TEXT    NOT NULL,
    vpn_gw_un_id   TEXT    NOT NULL,
    user_gw_un_id  TEXT    NOT NULL,
    error_code     TEXT,
    error_msg      TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_until    INTEGER,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
-- The claim query walks running tasks oldest first.
CREATE INDEX tasks_running ON tasks (id) WHERE status = 2;
-- At most one unfinished task per connection.
CREATE UNIQUE INDEX tasks_one_running_per_conn ON tasks (conn_id) WHERE status = 2;

CREATE TABLE vpn_conns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    un_id        TEXT    NOT NULL UNIQUE,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    region       TEXT    NOT NULL,
    vpc_id       INTEGER NOT NULL REFERENCES vpcs (id),
    vpn_gw_id    INTEGER NOT NULL REFERENCES vpn_gws (id),
    user_gw_id   INTEGER NOT NULL REFERENCES user_gws (id),
    name         TEXT    NOT NULL CHECK (name <> ''),
    -- vpcConnStatus: 0 creating .. 6 running.
    status       INTEGER NOT NULL CHECK (status BETWEEN 0 AND 6),
    net_status   TEXT    NOT NULL CHECK (net_status IN ('available', 'unavailable')),
    -- The unfinished task that owns the connection.
    active_task  INTEGER REFERENCES tasks (id),
    -- serde_json of vpcd_types::ConnSettings (holds the pre-shared key).
    settings     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX vpn_conns_name ON vpn_conns (account_id, region, vpc_id, name);
-- `id` is explicit here because `name` rides along after it, so a
-- substring filter is checked on the index without visiting the table.
CREATE INDEX vpn_conns_by_created ON vpn_conns (account_id, region, created_at, id, name);
CREATE INDEX vpn_conns_by_name ON vpn_conns (account_id, region, name);
CREATE INDEX vpn_conns_by_vpc ON vpn_conns (vpc_id, created_at);
CREATE INDEX vpn_conns_by_vpn_gw ON vpn_conns (vpn_gw_id, created_at);
CREATE INDEX vpn_conns_by_pair ON vpn_conns (vpn_gw_id, user_gw_id);
CREATE INDEX vpn_conns_by_user_gw ON vpn_conns (user_gw_id);
CREATE INDEX vpn_conns_by_status ON vpn_conns (status);
CREATE INDEX vpn_conns_by_net_status ON vpn_conns (net_status);
CREATE INDEX vpn_conns_by_active_task ON vpn_conns (active_task);

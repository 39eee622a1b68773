-- Tunnels that explain themselves (issue 13): the driving vpcd records what
-- charon tells it about each connection, so that any vpcd of a cluster can
-- answer DescribeVpnConnDiagnostics. One row per connection for the last
-- negotiation failure and the latest traffic sample; a bounded history of
-- up/down events (the store keeps the newest few per connection). Both go
-- with their connection (ON DELETE CASCADE). New tables: nothing to carry
-- over; connections of an older vpcd simply have no diagnostics yet.
CREATE TABLE conn_diagnostics (
    conn_id          INTEGER PRIMARY KEY REFERENCES vpn_conns (id) ON DELETE CASCADE,
    -- vpcd_types::diag::FailureKind::code, or NULL: no failure seen.
    failure_kind     TEXT,
    failure_stage    TEXT CHECK (failure_stage IN ('ike', 'ipsec')),
    peer_offered     TEXT,
    gateway_allows   TEXT,
    peer_identity    TEXT,
    failure_first_at INTEGER,
    failure_last_at  INTEGER,
    -- The latest traffic sample (NULL: none yet); counters of the SAs
    -- installed at sample time.
    traffic_at       INTEGER,
    bytes_in         INTEGER,
    bytes_out        INTEGER,
    packets_in       INTEGER,
    packets_out      INTEGER,
    established_at   INTEGER,
    last_rekey_at    INTEGER
);
CREATE TABLE conn_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    conn_id INTEGER NOT NULL REFERENCES vpn_conns (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    up      INTEGER NOT NULL CHECK (up IN (0, 1)),
    -- vpcd_types::diag::EventReason::code
    reason  TEXT    NOT NULL
);
CREATE INDEX conn_events_by_conn ON conn_events (conn_id, id);

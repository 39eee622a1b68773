-- API 3.0 takes Tags on CreateVpnConnection, answers them in TagSet and
-- filters by them (tag-key, tag:<key>). A connection's tags are one JSON
-- array of {"key", "value"} objects, written once at creation; existing
-- connections have none.
ALTER TABLE vpn_conns ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

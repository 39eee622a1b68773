-- A DescribeVpnConn page filtered by gateway or VPC checks the caller's scope
-- with `+c.account_id = ? AND +c.region = ?` next to `c.vpn_gw_id = ?` (the
-- `+` keeps the scope index out of the plan: the parent is the selective
-- side). The scope columns were not in the parent's index, so the count and
-- the page fetched every tunnel of the gateway from the table. These indexes
-- carry them (and the name, for name order and name filters): the count and
-- the page's ids come from the index alone, and `created_at, id` right after
-- the parent keeps the page in index order (no sort, a deep offset skips
-- index entries).
DROP INDEX vpn_conns_by_vpn_gw;
DROP INDEX vpn_conns_by_vpc;
CREATE INDEX vpn_conns_by_vpn_gw_page ON vpn_conns (vpn_gw_id, created_at, id, account_id, region, name);
CREATE INDEX vpn_conns_by_vpc_page ON vpn_conns (vpc_id, created_at, id, account_id, region, name);

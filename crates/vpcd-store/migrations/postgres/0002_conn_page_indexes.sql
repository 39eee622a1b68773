-- A DescribeVpnConn page filtered by gateway or VPC also checks the caller's
-- scope (account_id, region). Those columns were not in the parent's index:
-- the count was a bitmap heap scan over every tunnel of the gateway and the
-- page sorted them all before its offset. With the scope right after the
-- parent, all three equalities are index conditions, the rows come in
-- `created_at, id` order (no sort; a deep offset skips index entries), and
-- both the count and the page's ids are index-only scans once the table is
-- vacuumed. The name is carried for name filters.
DROP INDEX vpn_conns_by_vpn_gw;
DROP INDEX vpn_conns_by_vpc;
CREATE INDEX vpn_conns_by_vpn_gw_page ON vpn_conns (vpn_gw_id, account_id, region, created_at, id) INCLUDE (name);
CREATE INDEX vpn_conns_by_vpc_page ON vpn_conns (vpc_id, account_id, region, created_at, id) INCLUDE (name);

//! End to end with real IPsec: the `vpcd` binary drives a strongSwan charon
//! in a network namespace; the customer's side is a second charon loaded
//! with the configuration vpcd hands out. AddVpnConnEx goes through the
//! official Python SDK.
//!
//! Needs root, strongSwan and the test virtualenv (`bash scripts/test.sh`
//! sets them up). Under `CI=true` a missing piece fails the test; elsewhere
//! the test is skipped with the reason printed.
//!
//! Network safety: all tunnel traffic stays inside the two namespaces the
//! test bed creates (joined by one veth living inside them); vpcd's API is on
//! 127.0.0.1.

mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::Vpcd;
use serde_json::{json, Value};
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::testbed::{Side, Testbed, TestbedConfig};
use vpcd_dataplane::VpnDriver;
use vpcd_types::testing::without_proxies;

/// Everything the test needs, or `None` after printing why (a panic under CI).
fn setup(cfg: TestbedConfig) -> Option<(Testbed, PathBuf)> {
    let py = match e2e::venv_python("QcloudApi") {
        Ok(p) => p,
        Err(why) => {
            vpcd_types::testing::skip("vpcd tunnel test", &why);
            return None;
        }
    };
    let tb = Testbed::start_or_skip(cfg)?;
    Some((tb, py))
}

struct Ids {
    vpc: String,
    gw: String,
    conn: String,
}

/// The VPC, VPN gateway and peer gateway every tunnel of a test uses.
struct Topology {
    vpc: String,
    gw: String,
    user_gw: String,
}

/// VPC, gateway and peer gateway through the SDK.
fn topology(v: &Vpcd, py: &Path) -> Topology {
    let vpc = v.sdk(
        py,
        "CreateVpc",
        json!({"vpcName": "e2e", "cidrBlock": "10.100.0.0/16"}),
    );
    let vpc = vpc["uniqVpcId"].as_str().unwrap().to_owned();
    let gw = v.sdk(
        py,
        "RunVpnGw",
        json!({"vpcId": vpc, "name": "gw", "bandwidth": 5}),
    );
    assert_eq!(
        gw["data"]["vpnGwAddress"], "203.0.113.1",
        "the node's public address"
    );
    let gw = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
    let user = v.sdk(
        py,
        "AddUserGw",
        json!({"userGwName": "office", "userGwAddr": "198.51.100.1"}),
    );
    let user_gw = user["userGwId"].as_str().unwrap().to_owned();
    Topology { vpc, gw, user_gw }
}

/// AddVpnConnEx through the SDK with `extra` settings (peer range
/// `10.200.0.0/16` unless `spdAcl` is given); waits for the task and
/// returns the connection's id.
fn add_conn(v: &Vpcd, py: &Path, t: &Topology, psk: &str, extra: &Value) -> String {
    let mut params =
        json!({"vpcId": t.vpc, "vpnGwId": t.gw, "userGwId": t.user_gw, "preSharedKey": psk});
    for (k, val) in extra.as_object().unwrap() {
        params[k] = val.clone();
    }
    if params.get("spdAcl").is_none() {
        params["userGwCidrBlock"] = json!(["10.200.0.0/16"]);
    }
    let add = v.sdk(py, "AddVpnConnEx", params);
    assert_eq!(add["data"]["vpnConnStatus"], 0);
    let task = add["data"]["taskId"].as_i64().unwrap();
    v.wait_task(task);
    let t = v.call("DescribeVpcTaskResult", &[&format!("taskId={task}")]);
    t["data"]["output"]["unVpnConnId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A topology and one connection with `extra` settings.
/// A tunnel with v2's defaults, its peer loaded with the file vpcd hands
/// out, once netStatus says it is up.
fn live_tunnel(tb: &mut Testbed, v: &Vpcd, py: &Path, psk: &str) -> Ids {
    let ids = create_tunnel(v, py, psk, json!({}));
    tb.load_swanctl(Side::Peer, &v.peer_config(&ids.conn))
        .unwrap();
    v.wait_net(&ids.conn, "available", Duration::from_secs(20));
    ids
}

fn create_tunnel(v: &Vpcd, py: &Path, psk: &str, extra: Value) -> Ids {
    let t = topology(v, py);
    let conn = add_conn(v, py, &t, psk, &extra);
    Ids {
        vpc: t.vpc,
        gw: t.gw,
        conn,
    }
}

/// A setting family: its label, its AddVpnConnEx settings, and the
/// (cloud, peer) inner addresses to ping across.
type Family = (&'static str, Value, Vec<(&'static str, &'static str)>);

/// Every value of every IKEv1 setting the API offers appears in at least
/// one family; together they cover main and aggressive mode with address
/// and FQDN identities each, PFS with every group and without, and one to
/// three SPD pairs.
fn families() -> Vec<Family> {
    let fqdn = |ike: Value| {
        let mut ike = ike;
        for (k, v) in [
            ("localIdentity", "fqdn"),
            ("localFqdnName", "vpn.cloud.example"),
            ("remoteIdentity", "fqdn"),
            ("remoteFqdnName", "office.example.net"),
        ] {
            ike[k] = json!(v);
        }
        ike
    };
    let two_rules = r#"{"10.100.0.0/24":["10.200.0.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#;
    let one_to_two = r#"{"10.100.0.0/24":["10.200.0.0/24","10.200.1.0/24"]}"#;
    vec![
        (
            "API defaults: 3des/md5/group2, main mode, address ids, no PFS",
            json!({}),
            vec![("10.100.0.1", "10.200.0.1")],
        ),
        (
            "aes-cbc-128/sha/group1, aggressive, FQDN ids, PFS group1, two SPD rules",
            json!({
                "spdAcl": two_rules,
                "IKESet": fqdn(json!({"propoEncryAlgorithm": "aes-cbc-128",
                    "propoAuthenAlgorithm": "sha", "dhGroupName": "group1",
                    "exchangeMode": "aggressive"})),
                "IPsecSet": {"encryptAlgorithm": "aes-cbc-128", "integrityAlgorith": "sha",
                    "pfsDhGroup": "dh-group1"},
            }),
            vec![("10.100.0.1", "10.200.0.1"), ("10.100.1.1", "10.200.1.1")],
        ),
        (
            "aes-cbc-192/md5/group5, main mode, FQDN ids, PFS group5",
            json!({
                "IKESet": fqdn(json!({"propoEncryAlgorithm": "aes-cbc-192",
                    "propoAuthenAlgorithm": "md5", "dhGroupName": "group5"})),
                "IPsecSet": {"encryptAlgorithm": "aes-cbc-192", "integrityAlgorith": "md5",
                    "pfsDhGroup": "dh-group5"},
            }),
            vec![("10.100.0.1", "10.200.0.1")],
        ),
        (
            "aes-cbc-256/sha/group14, aggressive, address ids, PFS group14, one rule to two nets",
            json!({
                "spdAcl": one_to_two,
                "IKESet": {"propoEncryAlgorithm": "aes-cbc-256", "propoAuthenAlgorithm": "sha",
                    "dhGroupName": "group14", "exchangeMode": "aggressive"},
                "IPsecSet": {"encryptAlgorithm": "aes-cbc-256", "integrityAlgorith": "sha",
                    "pfsDhGroup": "dh-group14"},
            }),
            vec![("10.100.0.1", "10.200.0.1"), ("10.100.0.1", "10.200.1.1")],
        ),
        (
            "des-cbc/md5/group24, main mode, address ids, ESP des/sha, PFS group24",
            json!({
                "IKESet": {"propoEncryAlgorithm": "des-cbc", "propoAuthenAlgorithm": "md5",
                    "dhGroupName": "group24"},
                "IPsecSet": {"encryptAlgorithm": "des-cbc", "integrityAlgorith": "sha",
                    "pfsDhGroup": "dh-group24"},
            }),
            vec![("10.100.0.1", "10.200.0.1")],
        ),
        (
            "aggressive, FQDN ids, ESP-NULL/md5, PFS group2",
            json!({
                "IKESet": fqdn(json!({"exchangeMode": "aggressive"})),
                "IPsecSet": {"encryptAlgorithm": "null", "integrityAlgorith": "md5",
                    "pfsDhGroup": "dh-group2"},
            }),
            vec![("10.100.0.1", "10.200.0.1")],
        ),
    ]
}

/// One test bed and one vpcd; for each setting family in turn: a
/// connection through the SDK, the strongSwan peer loaded with the file
/// GetVpnConnConfig hands out, a ping across each SPD pair (ESP in UDP on
/// the veth), then DeleteVpnConn, after which the pings fail and the cloud
/// charon no longer has the tunnel.
#[test]
fn tunnel_carries_every_setting_family() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let t = topology(&v, &py);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();
    for (label, extra, pairs) in families() {
        let conn = add_conn(&v, &py, &t, "e2e-Pre-Shared-key", &extra);
        assert_eq!(v.net_status(&conn), "unavailable", "{label}: no peer yet");

        let conf = v.peer_config(&conn);
        tb.load_swanctl(Side::Peer, &conf)
            .unwrap_or_else(|e| panic!("{label}: the peer loads vpcd's configuration: {e}"));
        let took = v.wait_net(&conn, "available", Duration::from_secs(20));
        eprintln!("{label}: netStatus available {took:?} after the peer loaded its file");

        let cap = tb.capture(Side::Cloud).unwrap();
        for (src, dst) in &pairs {
            assert!(
                ping_within(&tb, src, dst, Duration::from_secs(5)),
                "{label}: ping {src} -> {dst} through the tunnel"
            );
        }
        let dump = cap.stop().unwrap();
        assert!(
            dump.contains("UDP-encap") && dump.contains("ESP"),
            "{label}: the veth carries ESP in UDP:\n{dump}"
        );

        let del = v.call(
            "DeleteVpnConn",
            &[
                &format!("vpcId={}", t.vpc),
                &format!("vpnGwId={}", t.gw),
                &format!("vpnConnId={conn}"),
            ],
        );
        assert_eq!(del["code"], 0, "{del}");
        v.wait_task(del["data"]["taskId"].as_i64().unwrap());
        for (src, dst) in &pairs {
            assert!(
                !tb.ping(Side::Cloud, src, dst),
                "{label}: ping {src} -> {dst} must fail after DeleteVpnConn"
            );
        }
        let loaded = rt.block_on(driver.loaded()).unwrap();
        assert!(
            !loaded.iter().any(|id| id.as_str() == conn),
            "{label}: the cloud charon no longer has the tunnel"
        );
    }
    tb.teardown();
}

/// Ping until it passes (the tunnel may still be installing its SA).
fn ping_within(tb: &Testbed, src: &str, dst: &str, within: Duration) -> bool {
    let start = Instant::now();
    loop {
        if tb.ping(Side::Cloud, src, dst) {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn wrong_psk_on_the_peer_stays_unavailable_and_the_log_says_why() {
    let Some((tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let ids = create_tunnel(&v, &py, "the-right-key", json!({}));
    let conf = v.peer_config(&ids.conn);
    let right = format!("0x{}", hex("the-right-key"));
    assert!(
        conf.contains(&right),
        "the peer file encodes the PSK in hex"
    );
    tb.load_swanctl(
        Side::Peer,
        &conf.replace(&right, &format!("0x{}", hex("a-wrong-key"))),
    )
    .unwrap();
    // Poll the log until it says why the tunnel is down (the reason points
    // at the key: IKEv1 main mode cannot decrypt the peer's payloads); the
    // tunnel stays unavailable all along.
    let reported = |log: &str| {
        log.lines()
            .any(|l| l.contains("charon reports a tunnel problem") && l.contains("decrypt"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        assert_eq!(
            v.net_status(&ids.conn),
            "unavailable",
            "a wrong PSK never comes up"
        );
        let log = std::fs::read_to_string(&v.log).unwrap();
        if reported(&log) {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "vpcd's log never said the peer's payloads could not be decrypted:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        v.net_status(&ids.conn),
        "unavailable",
        "a wrong PSK never comes up"
    );
    assert!(
        !log.contains("the-right-key") && !log.contains("a-wrong-key"),
        "no PSK in the log"
    );
}

/// A second account's credentials file, made with `vpcd admin`.
fn second_account(v: &Vpcd, name: &str) -> PathBuf {
    let out = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
        .args(["admin", "--data-dir"])
        .arg(&v.data)
        .args(["account", "create", name])
        .output()
        .expect("vpcd admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .trim()
            .to_owned()
    };
    let path = v.data.join(format!("{name}.credentials"));
    let doc =
        json!({"secretId": field("SecretId:"), "secretKey": field("SecretKey:"), "region": "gz"});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// Issue 11, finding 7: on a shared gateway node (one charon, one public
/// address), a second account cannot register the first one's peer
/// address, its identities, or another gateway's address as its own
/// identity, each refused naming the parameter; its own tunnel (behind NAT)
/// is accepted, and the first account's live tunnel keeps passing traffic.
#[test]
fn a_second_account_cannot_take_over_a_live_tunnel_on_the_shared_node() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let a = live_tunnel(&mut tb, &v, &py, "alices-key");
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(5)
    ));

    let bob = second_account(&v, "bob");
    let ok = |action: &str, params: &[&str]| {
        let r = v.call_as(&bob, action, params);
        assert_eq!(r["code"], 0, "{action}: {r}");
        r
    };
    let vpc = ok("CreateVpc", &["vpcName=bob", "cidrBlock=10.101.0.0/16"]);
    let vpc = format!("vpcId={}", vpc["uniqVpcId"].as_str().unwrap());
    let gw = ok("RunVpnGw", &[&vpc, "name=bob-gw", "bandwidth=5"]);
    assert_eq!(
        gw["data"]["vpnGwAddress"], "203.0.113.1",
        "the same node address"
    );
    let gw = format!("vpnGwId={}", gw["data"]["vpnGwId"].as_str().unwrap());
    let user_gw = |name: &str, addr: &str| {
        let u = ok(
            "AddUserGw",
            &[&format!("userGwName={name}"), &format!("userGwAddr={addr}")],
        );
        format!("userGwId={}", u["userGwId"].as_str().unwrap())
    };
    let alices_peer = user_gw("copy", "198.51.100.1");
    let own_peer = user_gw("own", "198.51.100.2");
    let add = |peer: &str, extra: &[&str]| {
        let mut params = vec![
            vpc.as_str(),
            gw.as_str(),
            peer,
            "preSharedKey=bobs-key",
            "userGwCidrBlock.0=10.201.0.0/16",
        ];
        params.extend_from_slice(extra);
        v.call_as(&bob, "AddVpnConnEx", &params)
    };
    let refused = |r: Value, code_desc: &str, param: &str| {
        assert_eq!(r["code"], 4000, "{r}");
        assert_eq!(r["codeDesc"], code_desc, "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{param}: ")), "{r}");
    };
    // Alice's peer address on the shared gateway address.
    refused(
        add(&alices_peer, &["IKESet.remoteAddress=10.9.9.9"]),
        "InvalidUserGw.InUse",
        "userGwId",
    );
    // Alice's pair of identities from another peer address.
    refused(
        add(&own_peer, &["IKESet.remoteAddress=198.51.100.1"]),
        "InvalidParameter",
        "IKESet.remoteAddress",
    );
    // An arbitrary address as the gateway's own identity.
    refused(
        add(&own_peer, &["IKESet.localAddress=8.8.8.8"]),
        "InvalidParameter",
        "IKESet.localAddress",
    );
    // Bob's own peer behind NAT, with its private address as identity.
    let mine = add(&own_peer, &["IKESet.remoteAddress=10.9.9.9"]);
    assert_eq!(mine["code"], 0, "{mine}");
    v.wait_task_as(&bob, mine["data"]["taskId"].as_i64().unwrap());

    // Alice's tunnel still carries traffic and is still up.
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(5)
    ));
    assert_eq!(v.net_status(&a.conn), "available");
    tb.teardown();
}

#[test]
fn charon_and_vpcd_restarts_converge_without_api_calls() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vpcd");
    let mut v = Vpcd::start(&data, &tb.vici_uri(Side::Cloud), &[]);
    let ids = live_tunnel(&mut tb, &v, &py, "restart-key");

    // charon dies and comes back empty: reconciliation reloads the tunnel.
    tb.kill_charon(Side::Cloud);
    v.wait_net(&ids.conn, "unavailable", Duration::from_secs(10));
    tb.start_charon(Side::Cloud).unwrap();
    let took = v.wait_net(&ids.conn, "available", Duration::from_secs(30));
    eprintln!("back {took:?} after the cloud charon restarted");
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(5)
    ));

    // vpcd dies; meanwhile charon restarts empty; the new vpcd converges.
    v.kill();
    tb.kill_charon(Side::Cloud);
    tb.start_charon(Side::Cloud).unwrap();
    let v = Vpcd::start(&data, &tb.vici_uri(Side::Cloud), &[]);
    let took = v.wait_net(&ids.conn, "available", Duration::from_secs(30));
    eprintln!("back {took:?} after vpcd restarted");
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(5)
    ));
    tb.teardown();
}

#[test]
fn two_hundred_tunnels_one_change_touches_only_its_own() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vpcd");
    let limits = [
        "--limit-conns-per-vpn-gw",
        "1000",
        "--limit-conns-per-user-gw",
        "1000",
        "--limit-conns-per-region",
        "1000",
        "--limit-conns-per-pair",
        "1000",
    ];
    let v = Vpcd::start(&data, &tb.vici_uri(Side::Cloud), &limits);
    let live = live_tunnel(&mut tb, &v, &py, "live-key");

    // 199 more through the store's bulk path; reconciliation loads them.
    // They point at a peer address nobody answers on (inside the test bed),
    // so their initiations never disturb the live peer.
    let ghost = v.call(
        "AddUserGw",
        &["userGwName=ghost", "userGwAddr=198.51.100.50"],
    );
    let ghost = ghost["userGwId"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();
    rt.block_on(async {
        let store = vpcd_store::connect(
            &format!("sqlite://{}", data.join("vpcd.db").display()),
            vpcd_store::MasterKey::read(&data.join("master.key")).unwrap(),
        )
        .await
        .unwrap();
        let scope = vpcd_store::Scope {
            account_id: vpcd_types::AccountId::new(1),
            region: "gz".into(),
        };
        let conn = store
            .get_conn(&scope, &live.conn.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let ghost_gw = store
            .get_user_gw(&scope, &ghost.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let mut batch = Vec::new();
        for i in 0..199 {
            let mut settings = conn.settings.clone();
            settings.spd[0].remote = vec![format!("172.{}.{}.0/24", 16 + i / 200, i % 200)
                .parse()
                .unwrap()];
            batch.push(vpcd_store::NewConn {
                vpc_id: conn.vpc.id,
                vpn_gw_id: conn.vpn_gw.id,
                user_gw_id: ghost_gw.id,
                name: format!("bulk{i}"),
                settings,
                tags: Vec::new(),
            });
        }
        assert_eq!(store.import_conns(&scope, batch).await.unwrap(), 199);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let conns = rt.block_on(driver.list_conns()).unwrap();
        if conns.len() >= 200 {
            break conns;
        }
        assert!(
            Instant::now() < deadline,
            "reconciliation loaded {} of 200",
            conns.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let sas_before = rt.block_on(driver.list_sas()).unwrap();

    // One add, one modify, one delete, through the API.
    let id_of = |name: &str| -> String {
        let list = v.call(
            "DescribeVpnConn",
            &[&format!("vpnConnName={name}"), "limit=50"],
        );
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["vpnConnName"] == name)
            .map(|c| c["unVpnConnId"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no connection {name}: {list}"))
    };
    let (modified, deleted) = (&id_of("bulk10"), &id_of("bulk11"));
    let base = [
        format!("vpcId={}", live.vpc),
        format!("vpnGwId={}", live.gw),
    ];
    let m = v.call(
        "ModifyVpnConnEx",
        &[
            &base[0],
            &base[1],
            &format!("vpnConnId={modified}"),
            "userGwCidrBlock.0=192.168.77.0/24",
        ],
    );
    v.wait_task(m["data"]["taskId"].as_i64().unwrap());
    let d = v.call(
        "DeleteVpnConn",
        &[&base[0], &base[1], &format!("vpnConnId={deleted}")],
    );
    v.wait_task(d["data"]["taskId"].as_i64().unwrap());
    let a = v.call(
        "AddVpnConnEx",
        &[
            &base[0],
            &base[1],
            &format!("userGwId={ghost}"),
            "preSharedKey=k",
            "userGwCidrBlock.0=192.168.88.0/24",
            "vpnConnName=added",
        ],
    );
    v.wait_task(a["data"]["taskId"].as_i64().unwrap());

    let after = rt.block_on(driver.list_conns()).unwrap();
    assert_eq!(after.len(), 200, "one added, one deleted");
    let untouched = |c: &&vpcd_dataplane::strongswan::ConnInfo| {
        c.name.as_str() != *modified && c.name.as_str() != *deleted
    };
    let before_rest: Vec<_> = before.iter().filter(untouched).collect();
    let after_rest: Vec<_> = after
        .iter()
        .filter(untouched)
        .filter(|c| before.iter().any(|b| b.name == c.name))
        .collect();
    assert_eq!(
        before_rest, after_rest,
        "every other loaded connection is unchanged"
    );
    let sas_after = rt.block_on(driver.list_sas()).unwrap();
    let live_sa = |sas: &[vpcd_dataplane::strongswan::IkeSaInfo]| {
        sas.iter()
            .find(|s| s.name.as_str() == live.conn)
            .cloned()
            .expect("the live tunnel's SA")
    };
    assert_eq!(
        live_sa(&sas_before),
        live_sa(&sas_after),
        "the live SA was not renegotiated"
    );
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(5)
    ));
    tb.teardown();
}

// ---- tunnels made (or changed) through API 3.0 ----------------------------

impl Vpcd {
    /// Wait for the task an asynchronous 3.0 call started (its RequestId).
    fn wait_task3(&self, py: &Path, request_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.sdk3(py, "DescribeVpcTaskResult", json!({"TaskId": request_id}));
            match v["Status"].as_str() {
                Some("SUCCESS") => return,
                Some("RUNNING") => {}
                _ => panic!("task {request_id} failed: {v}"),
            }
            assert!(Instant::now() < deadline, "task {request_id} still running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn describe3(&self, py: &Path, conn: &str) -> Value {
        let v = self.sdk3(
            py,
            "DescribeVpnConnections",
            json!({"VpnConnectionIds": [conn]}),
        );
        v["VpnConnectionSet"][0].clone()
    }

    /// Wait until 3.0's `NetStatus` is `want`.
    fn wait_net3(&self, py: &Path, conn: &str, want: &str, within: Duration) {
        let start = Instant::now();
        while self.describe3(py, conn)["NetStatus"] != want {
            assert!(
                start.elapsed() < within,
                "NetStatus of {conn} did not become {want} within {within:?}; vpcd log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The strongSwan file for the customer's side, as 3.0 hands it out.
    fn peer_config3(&self, py: &Path, gw: &str, conn: &str) -> String {
        let v = self.sdk3(
            py,
            "DownloadCustomerGatewayConfiguration",
            json!({
                "VpnGatewayId": gw,
                "VpnConnectionId": conn,
                "CustomerGatewayVendor": {
                    "VendorName": "strongSwan",
                    "Platform": "Linux",
                    "SoftwareVersion": "strongSwan 5.8+ (swanctl.conf)",
                },
                "InterfaceName": "eth0",
            }),
        );
        v["CustomerGatewayConfiguration"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// VPC, VPN gateway and customer gateway, then CreateVpnConnection with
/// `extra`, all through the 3.0 SDK; waits for the task.
fn create_tunnel3(v: &Vpcd, py: &Path, extra: Value) -> Ids {
    let vpc = v.sdk3(
        py,
        "CreateVpc",
        json!({"VpcName": "e2e3", "CidrBlock": "10.100.0.0/16"}),
    );
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_owned();
    let gw = v.sdk3(
        py,
        "CreateVpnGateway",
        json!({"VpcId": vpc_id, "VpnGatewayName": "gw3", "InternetMaxBandwidthOut": 5}),
    );
    assert_eq!(gw["VpnGateway"]["PublicIpAddress"], "203.0.113.1");
    let gw_id = gw["VpnGateway"]["VpnGatewayId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cgw = v.sdk3(
        py,
        "CreateCustomerGateway",
        json!({"CustomerGatewayName": "office3", "IpAddress": "198.51.100.1"}),
    );
    let mut params = json!({
        "VpcId": vpc_id,
        "VpnGatewayId": gw_id,
        "CustomerGatewayId": cgw["CustomerGateway"]["CustomerGatewayId"],
        "VpnConnectionName": "e2e3",
        "PreShareKey": "api3-Pre-Shared-key",
        "SecurityPolicyDatabases": [
            {"LocalCidrBlock": "10.100.0.0/16", "RemoteCidrBlock": ["10.200.0.0/16"]}
        ],
    });
    for (k, val) in extra.as_object().unwrap() {
        params[k] = val.clone();
    }
    let created = v.sdk3(py, "CreateVpnConnection", params);
    v.wait_task3(py, created["RequestId"].as_str().unwrap());
    Ids {
        vpc: vpc_id,
        gw: gw_id,
        conn: created["VpnConnection"]["VpnConnectionId"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// A setting family made through API 3.0: its label, the
/// CreateVpnConnection settings (`SecurityPolicyDatabases`, IKE and IPsec
/// options), and the (cloud, peer) inner addresses to ping across.
type Family3 = (&'static str, Value, Vec<(&'static str, &'static str)>);

/// With [`families`]: IKEv2 with address and FQDN identities, with and
/// without PFS, one to three SPD pairs, and every value API 3.0 adds
/// (IKEv2, SHA-2 for IKE and ESP, AES-GCM for IKE and ESP, DH groups 15,
/// 16, 19-21 for IKE and PFS) on IKEv2, the classic ones on IKEv2 too, and
/// the newer ones IKEv1 allows on IKEv1.
fn families3() -> Vec<Family3> {
    let one =
        |local: &str, remote: &[&str]| json!({"LocalCidrBlock": local, "RemoteCidrBlock": remote});
    let fqdn = |mut ike: Value| {
        for (k, v) in [
            ("LocalIdentity", "FQDN"),
            ("LocalFqdnName", "vpn.cloud.example"),
            ("RemoteIdentity", "FQDN"),
            ("RemoteFqdnName", "office.example.net"),
        ] {
            ike[k] = json!(v);
        }
        ike
    };
    let one_rule = json!([one("10.100.0.0/16", &["10.200.0.0/16"])]);
    let two_rules = json!([
        one("10.100.0.0/24", &["10.200.0.0/24"]),
        one("10.100.1.0/24", &["10.200.1.0/24"])
    ]);
    let one_to_two = json!([one("10.100.0.0/24", &["10.200.0.0/24", "10.200.1.0/24"])]);
    let first = vec![("10.100.0.1", "10.200.0.1")];
    let both = vec![("10.100.0.1", "10.200.0.1"), ("10.100.1.1", "10.200.1.1")];
    let fan = vec![("10.100.0.1", "10.200.0.1"), ("10.100.0.1", "10.200.1.1")];
    vec![
        (
            "IKEv2, AES-CBC-128/SHA-1/group 14, address ids, no PFS, one SPD rule",
            json!({
                "SecurityPolicyDatabases": one_rule,
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES-CBC-128", "PropoAuthenAlgorithm": "SHA",
                    "DhGroupName": "GROUP14"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES-CBC-128",
                    "IntegrityAlgorith": "SHA1", "PfsDhGroup": "NULL"},
            }),
            first.clone(),
        ),
        (
            "IKEv2, AES-CBC-256/SHA-256/group 15, FQDN ids, ESP SHA-512, PFS group 16, two rules",
            json!({
                "SecurityPolicyDatabases": two_rules,
                "IKEOptionsSpecification": fqdn(json!({"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES-CBC-256", "PropoAuthenAlgorithm": "SHA-256",
                    "DhGroupName": "GROUP15"})),
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES-CBC-256",
                    "IntegrityAlgorith": "SHA-512", "PfsDhGroup": "DH-GROUP16"},
            }),
            both.clone(),
        ),
        (
            "IKEv2, AES-128-GCM/SHA-512/group 20, address ids, ESP AES-192-GCM, PFS group 21, \
             one rule to two nets",
            json!({
                "SecurityPolicyDatabases": one_to_two,
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES128GCM128", "PropoAuthenAlgorithm": "SHA-512",
                    "DhGroupName": "GROUP20"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES192GCM128",
                    "PfsDhGroup": "DH-GROUP21"},
            }),
            fan.clone(),
        ),
        (
            "IKEv2, AES-192-GCM/SHA-256/group 21, FQDN ids, ESP AES-256-GCM, PFS group 19",
            json!({
                "SecurityPolicyDatabases": one_rule,
                "IKEOptionsSpecification": fqdn(json!({"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES192GCM128", "PropoAuthenAlgorithm": "SHA-256",
                    "DhGroupName": "GROUP21"})),
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES256GCM128",
                    "PfsDhGroup": "DH-GROUP19"},
            }),
            first.clone(),
        ),
        (
            "IKEv2, 3DES/MD5/group 24, address ids, ESP DES/SHA-384, PFS group 1, two rules",
            json!({
                "SecurityPolicyDatabases": two_rules,
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "3DES-CBC", "PropoAuthenAlgorithm": "MD5",
                    "DhGroupName": "GROUP24"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "DES-CBC",
                    "IntegrityAlgorith": "SHA-384", "PfsDhGroup": "DH-GROUP1"},
            }),
            both.clone(),
        ),
        (
            "IKEv2, DES/SHA-1/group 16, FQDN ids, ESP-NULL/SHA-256, PFS group 5",
            json!({
                "SecurityPolicyDatabases": one_rule,
                "IKEOptionsSpecification": fqdn(json!({"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "DES-CBC", "PropoAuthenAlgorithm": "SHA",
                    "DhGroupName": "GROUP16"})),
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "NULL",
                    "IntegrityAlgorith": "SHA-256", "PfsDhGroup": "DH-GROUP5"},
            }),
            first.clone(),
        ),
        (
            "IKEv1 aggressive, AES-CBC-192/SHA-512/group 19, FQDN ids, ESP AES-256-GCM, \
             PFS group 15, two rules",
            json!({
                "SecurityPolicyDatabases": two_rules,
                "IKEOptionsSpecification": fqdn(json!({"IKEVersion": "IKEV1",
                    "ExchangeMode": "AGGRESSIVE",
                    "PropoEncryAlgorithm": "AES-CBC-192", "PropoAuthenAlgorithm": "SHA-512",
                    "DhGroupName": "GROUP19"})),
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES256GCM128",
                    "PfsDhGroup": "DH-GROUP15"},
            }),
            both,
        ),
        (
            "IKEv1 main, AES-CBC-128/SHA-256/group 15, address ids, ESP AES-128-GCM, PFS group 20",
            json!({
                "SecurityPolicyDatabases": one_rule,
                "IKEOptionsSpecification": {"IKEVersion": "IKEV1", "ExchangeMode": "MAIN",
                    "PropoEncryAlgorithm": "AES-CBC-128", "PropoAuthenAlgorithm": "SHA-256",
                    "DhGroupName": "GROUP15"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES128GCM128",
                    "PfsDhGroup": "DH-GROUP20"},
            }),
            first,
        ),
    ]
}

/// [`tunnel_carries_every_setting_family`] for the families only API 3.0
/// can make: one test bed and one vpcd; for each family in turn,
/// CreateVpnConnection through the 3.0 SDK, the strongSwan peer loaded
/// with the file DownloadCustomerGatewayConfiguration hands out, NetStatus
/// AVAILABLE, a ping across each SPD pair (ESP in UDP on the veth), then
/// the connection deleted, after which the pings fail.
#[test]
fn tunnel_carries_every_api3_setting_family() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let t = topology(&v, &py);
    for (label, extra, pairs) in families3() {
        let mut params = json!({
            "VpcId": t.vpc, "VpnGatewayId": t.gw, "CustomerGatewayId": t.user_gw,
            "VpnConnectionName": "family", "PreShareKey": "api3-Pre-Shared-key",
        });
        for (k, val) in extra.as_object().unwrap() {
            params[k] = val.clone();
        }
        let created = v.sdk3(&py, "CreateVpnConnection", params);
        v.wait_task3(&py, created["RequestId"].as_str().unwrap());
        let conn = created["VpnConnection"]["VpnConnectionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let conf = v.peer_config3(&py, &t.gw, &conn);
        let version = if label.starts_with("IKEv2") { 2 } else { 1 };
        assert!(
            conf.contains(&format!("version = {version}")),
            "{label}: {conf}"
        );
        tb.load_swanctl(Side::Peer, &conf)
            .unwrap_or_else(|e| panic!("{label}: the peer loads vpcd's configuration: {e}"));
        v.wait_net3(&py, &conn, "AVAILABLE", Duration::from_secs(20));

        let cap = tb.capture(Side::Cloud).unwrap();
        for (src, dst) in &pairs {
            assert!(
                ping_within(&tb, src, dst, Duration::from_secs(5)),
                "{label}: ping {src} -> {dst} through the tunnel"
            );
        }
        let dump = cap.stop().unwrap();
        assert!(
            dump.contains("UDP-encap") && dump.contains("ESP"),
            "{label}: the veth carries ESP in UDP:\n{dump}"
        );
        eprintln!("{label}: pinged across {} pair(s)", pairs.len());

        let del = v.call(
            "DeleteVpnConn",
            &[
                &format!("vpcId={}", t.vpc),
                &format!("vpnGwId={}", t.gw),
                &format!("vpnConnId={conn}"),
            ],
        );
        assert_eq!(del["code"], 0, "{del}");
        v.wait_task(del["data"]["taskId"].as_i64().unwrap());
        for (src, dst) in &pairs {
            assert!(
                !tb.ping(Side::Cloud, src, dst),
                "{label}: ping {src} -> {dst} must fail after the connection is deleted"
            );
        }
    }
    tb.teardown();
}

/// The IKE SAs charon on `side` holds for `conn`.
fn ike_sas(tb: &Testbed, side: Side, conn: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(side)).unwrap();
    rt.block_on(driver.list_sas())
        .unwrap()
        .into_iter()
        .filter(|sa| sa.name.as_str() == conn)
        .map(|sa| sa.state)
        .collect()
}

/// The gateway has `conn` loaded, and for a few seconds opens no IKE SA
/// for it (nothing on the peer side initiates either).
fn loaded_but_silent(tb: &Testbed, conn: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();
    let loaded = rt.block_on(driver.loaded()).unwrap();
    assert!(
        loaded.iter().any(|id| id.as_str() == conn),
        "the gateway has the connection loaded"
    );
    // An active gateway opens its IKE SA within ~0.2 s of loading (see
    // docs on the test bed); watching 3 s shows it does not.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            ike_sas(tb, Side::Cloud, conn),
            Vec::<String>::new(),
            "the gateway must not initiate"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn ikev2_gcm_group19_tunnel_made_through_api3_carries_a_ping() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let ids = create_tunnel3(
        &v,
        &py,
        json!({
            "IKEOptionsSpecification": {
                "IKEVersion": "IKEV2",
                "PropoEncryAlgorithm": "AES256GCM128",
                "PropoAuthenAlgorithm": "SHA-256",
                "DhGroupName": "GROUP19",
            },
            "IPSECOptionsSpecification": {
                "EncryptAlgorithm": "AES256GCM128",
                "IntegrityAlgorith": "SHA-256",
                "PfsDhGroup": "DH-GROUP19",
            },
            "DpdEnable": 1,
            "DpdTimeout": "45",
            "DpdAction": "restart",
            "EnableHealthCheck": true,
            "Tags": [{"Key": "env", "Value": "e2e"}],
        }),
    );
    let c = v.describe3(&py, &ids.conn);
    let ike = &c["IKEOptionsSpecification"];
    assert_eq!(
        (
            &ike["IKEVersion"],
            &ike["PropoEncryAlgorithm"],
            &ike["PropoAuthenAlgorithm"],
            &ike["DhGroupName"]
        ),
        (
            &json!("IKEV2"),
            &json!("AES256GCM128"),
            &json!("SHA-256"),
            &json!("GROUP19")
        ),
        "{c}"
    );
    assert_eq!(c["IPSECOptionsSpecification"]["PfsDhGroup"], "DH-GROUP19");
    assert_eq!(
        (&c["DpdEnable"], &c["DpdTimeout"], &c["DpdAction"]),
        (&json!(1), &json!("45"), &json!("restart"))
    );
    assert_eq!(c["TagSet"], json!([{"Key": "env", "Value": "e2e"}]));
    assert_eq!(c["HealthCheckStatus"], "UNAVAILABLE", "no peer yet: {c}");

    let conf = v.peer_config3(&py, &ids.gw, &ids.conn);
    assert!(conf.contains("version = 2"), "{conf}");
    assert!(conf.contains("aes256gcm16-prfsha256-ecp256"), "{conf}");
    tb.load_swanctl(Side::Peer, &conf)
        .expect("the peer loads the file vpcd hands out");
    v.wait_net3(&py, &ids.conn, "AVAILABLE", Duration::from_secs(20));
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(10)
    ));
    let c = v.describe3(&py, &ids.conn);
    assert_eq!(c["HealthCheckStatus"], "AVAILABLE");
    tb.teardown();
}

#[test]
fn passive_negotiation_waits_for_the_peer() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let ids = create_tunnel3(
        &v,
        &py,
        json!({"NegotiationType": "passive", "IKEOptionsSpecification": {"IKEVersion": "IKEV2"}}),
    );
    assert_eq!(v.describe3(&py, &ids.conn)["NegotiationType"], "passive");
    loaded_but_silent(&tb, &ids.conn);

    tb.load_swanctl(Side::Peer, &v.peer_config3(&py, &ids.gw, &ids.conn))
        .unwrap();
    v.wait_net3(&py, &ids.conn, "AVAILABLE", Duration::from_secs(20));
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(10)
    ));
    tb.teardown();
}

/// A flowTrigger tunnel: created through 3.0, the gateway installs a trap
/// (`start_action = trap`) and opens no IKE SA; the peer's file traps too.
fn flow_trigger_tunnel(tb: &mut Testbed, v: &Vpcd, py: &Path) -> Ids {
    let ids = create_tunnel3(
        v,
        py,
        json!({"NegotiationType": "flowTrigger", "IKEOptionsSpecification": {"IKEVersion": "IKEV2"}}),
    );
    assert_eq!(v.describe3(py, &ids.conn)["NegotiationType"], "flowTrigger");
    tb.load_swanctl(Side::Peer, &v.peer_config3(py, &ids.gw, &ids.conn))
        .unwrap();
    loaded_but_silent(tb, &ids.conn);
    assert_eq!(v.describe3(py, &ids.conn)["NetStatus"], "UNAVAILABLE");
    let log = tb.charon_log(Side::Cloud);
    assert!(
        log.contains(&format!("installing '{}-1'", ids.conn)),
        "the gateway installs the trap policy:\n{log}"
    );
    ids
}

/// What flowTrigger does that these machines can show. That the first
/// packet then brings the tunnel up is not tested here: with
/// kernel-libipsec (the only IPsec data path on this project's test
/// machines, see shared/reference/strongswan-on-this-machine.md) a packet
/// matching a trap policy is dropped without an acquire ("could not find an
/// outbound IPsec SA for reqid {1}, dropping packet"), so nothing starts the
/// negotiation; it needs kernel ESP (docs/api3.md says so).
#[test]
fn flow_trigger_installs_a_trap_and_opens_no_sa() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    flow_trigger_tunnel(&mut tb, &v, &py);
    tb.teardown();
}

#[test]
fn v2_tunnel_changed_to_ikev2_through_api3_keeps_carrying_traffic() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let ids = live_tunnel(&mut tb, &v, &py, "v2-made-key");
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(10)
    ));

    let m = v.sdk3(
        &py,
        "ModifyVpnConnectionAttribute",
        json!({
            "VpnConnectionId": ids.conn,
            "IKEOptionsSpecification": {
                "IKEVersion": "IKEV2",
                "PropoEncryAlgorithm": "AES128GCM128",
                "PropoAuthenAlgorithm": "SHA-512",
                "DhGroupName": "GROUP20",
            },
        }),
    );
    v.wait_task3(&py, m["RequestId"].as_str().unwrap());
    // v2 reports the change truthfully.
    let d = v.call("DescribeVpnConn", &[&format!("vpnConnId={}", ids.conn)]);
    let ike = &d["data"][0]["IKEArr"];
    assert_eq!(
        (
            &ike["ikeVersion"],
            &ike["propoEncryAlgorithm"],
            &ike["dhGroupName"]
        ),
        (&json!("ikev2"), &json!("aes128gcm128"), &json!("group20")),
        "{d}"
    );
    // The customer updates the device with the new file.
    let conf = v.peer_config(&ids.conn);
    assert!(conf.contains("aes128gcm16-prfsha512-ecp384"), "{conf}");
    tb.load_swanctl(Side::Peer, &conf).unwrap();
    v.wait_net(&ids.conn, "available", Duration::from_secs(20));
    assert!(ping_within(
        &tb,
        "10.100.0.1",
        "10.200.0.1",
        Duration::from_secs(10)
    ));
    tb.teardown();
}

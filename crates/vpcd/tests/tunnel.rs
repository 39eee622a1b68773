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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::testbed::{Side, Testbed, TestbedConfig};
use vpcd_dataplane::VpnDriver;
use vpcd_types::testing::without_proxies;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv's Python with the official SDK, or why it is missing.
fn sdk_python() -> Result<PathBuf, String> {
    let py = std::env::var_os("VPCD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import QcloudApi"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} cannot import the official SDK (run bash scripts/test.sh)",
            py.display()
        ))
    }
}

/// Everything the test needs, or `None` after printing why (a panic under CI).
fn setup(cfg: TestbedConfig) -> Option<(Testbed, PathBuf)> {
    let py = match sdk_python() {
        Ok(p) => p,
        Err(why) => {
            vpcd_types::testing::skip("vpcd tunnel test", &why);
            return None;
        }
    };
    let tb = Testbed::start_or_skip(cfg)?;
    Some((tb, py))
}

struct Vpcd {
    child: Child,
    data: PathBuf,
    http: String,
    https: String,
    log: PathBuf,
}

impl Vpcd {
    fn start(data: &Path, vici: &str, extra: &[&str]) -> Vpcd {
        let _ = std::fs::remove_file(data.join("listen.json"));
        std::fs::create_dir_all(data).unwrap();
        let log = data.join("vpcd.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
            .args(["serve", "--data-dir"])
            .arg(data)
            .args([
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--charon",
                vici,
            ])
            .args([
                "--public-ip",
                "203.0.113.1",
                "--reconcile-interval-secs",
                "2",
            ])
            .args(extra)
            .env("VPCD_LOG", "info,vpcd=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn vpcd");
        // Owned by a value with Drop at once, so a failed start still stops it.
        let mut vpcd = Vpcd {
            child,
            data: data.to_owned(),
            http: String::new(),
            https: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(data.join("listen.json")) {
                let v: Value = serde_json::from_str(&s).unwrap();
                vpcd.http = format!("http://{}", v["http"].as_str().unwrap());
                vpcd.https = v["https"].as_str().unwrap().to_owned();
                return vpcd;
            }
            assert!(Instant::now() < deadline, "vpcd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // by PID
        let _ = self.child.wait();
    }

    /// One action through the official SDK (POST, HmacSHA256, over HTTPS).
    fn sdk(&self, py: &Path, action: &str, params: Value) -> Value {
        let out = without_proxies(&mut Command::new(py))
            .arg(repo_root().join("tests/tunnel/sdk_call.py"))
            .arg(&self.https)
            .arg(self.data.join("tls/cert.pem"))
            .arg(self.data.join("credentials"))
            .arg(action)
            .arg(params.to_string())
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "SDK call failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["code"], 0, "{action}: {v}");
        v
    }

    /// One action through `vpcd call`.
    fn call(&self, action: &str, params: &[&str]) -> Value {
        let out = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
            .arg("call")
            .arg(action)
            .args(params)
            .args(["--endpoint", &self.http, "--credentials"])
            .arg(self.data.join("credentials"))
            .output()
            .expect("vpcd call");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    }

    fn wait_task(&self, task: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.call("DescribeVpcTaskResult", &[&format!("taskId={task}")]);
            match v["data"]["status"].as_i64() {
                Some(0) => return,
                Some(2) => {}
                _ => panic!("task {task} failed: {v}"),
            }
            assert!(Instant::now() < deadline, "task {task} still running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn net_status(&self, conn: &str) -> String {
        let v = self.call("DescribeVpnConn", &[&format!("vpnConnId={conn}")]);
        v["data"][0]["netStatus"]
            .as_str()
            .unwrap_or("gone")
            .to_owned()
    }

    /// Wait until `netStatus` is `want`; the time it took.
    fn wait_net(&self, conn: &str, want: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.net_status(conn) == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "netStatus of {conn} did not become {want} within {within:?}; vpcd log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The strongSwan configuration for the customer's side.
    fn peer_config(&self, conn: &str) -> String {
        let v = self.call(
            "GetVpnConnConfig",
            &[&format!("vpnConnId={conn}"), "vendorname=strongSwan"],
        );
        assert_eq!(v["code"], 0, "{v}");
        v["data"]["configFileInfo"].as_str().unwrap().to_owned()
    }
}

impl Drop for Vpcd {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Ids {
    vpc: String,
    gw: String,
    conn: String,
}

/// VPC, gateway and peer gateway through the SDK, then AddVpnConnEx with
/// `extra` settings; waits for the task and returns the ids.
fn create_tunnel(v: &Vpcd, py: &Path, psk: &str, extra: Value) -> Ids {
    let vpc = v.sdk(
        py,
        "CreateVpc",
        json!({"vpcName": "e2e", "cidrBlock": "10.100.0.0/16"}),
    );
    let vpc_id = vpc["uniqVpcId"].as_str().unwrap().to_owned();
    let gw = v.sdk(
        py,
        "RunVpnGw",
        json!({"vpcId": vpc_id, "name": "gw", "bandwidth": 5}),
    );
    assert_eq!(
        gw["data"]["vpnGwAddress"], "203.0.113.1",
        "the node's public address"
    );
    let gw_id = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
    let user = v.sdk(
        py,
        "AddUserGw",
        json!({"userGwName": "office", "userGwAddr": "198.51.100.1"}),
    );
    let user_id = user["userGwId"].as_str().unwrap().to_owned();
    let mut params =
        json!({"vpcId": vpc_id, "vpnGwId": gw_id, "userGwId": user_id, "preSharedKey": psk});
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
    Ids {
        vpc: vpc_id,
        gw: gw_id,
        conn: t["data"]["output"]["unVpnConnId"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

fn tunnel_end_to_end(extra: Value, pairs: &[(&str, &str)]) {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let ids = create_tunnel(&v, &py, "e2e-Pre-Shared-key", extra);
    assert_eq!(v.net_status(&ids.conn), "unavailable", "no peer yet");

    let conf = v.peer_config(&ids.conn);
    tb.load_swanctl(Side::Peer, &conf)
        .expect("the peer loads vpcd's configuration");
    let took = v.wait_net(&ids.conn, "available", Duration::from_secs(20));
    eprintln!("netStatus available {took:?} after the peer loaded its configuration");

    let cap = tb.capture(Side::Cloud).unwrap();
    // netStatus turns available when the IKE SA is up; the CHILD SAs and
    // their policies may still be on their way, so ping until it passes.
    for (src, dst) in pairs {
        assert!(
            ping_within(&tb, src, dst, Duration::from_secs(10)),
            "ping {src} -> {dst} through the tunnel"
        );
    }
    let dump = cap.stop().unwrap();
    assert!(
        dump.contains("UDP-encap") && dump.contains("ESP"),
        "the veth carries ESP in UDP:\n{dump}"
    );

    let del = v.call(
        "DeleteVpnConn",
        &[
            &format!("vpcId={}", ids.vpc),
            &format!("vpnGwId={}", ids.gw),
            &format!("vpnConnId={}", ids.conn),
        ],
    );
    assert_eq!(del["code"], 0, "{del}");
    v.wait_task(del["data"]["taskId"].as_i64().unwrap());
    for (src, dst) in pairs {
        assert!(
            !tb.ping(Side::Cloud, src, dst),
            "ping {src} -> {dst} must fail after DeleteVpnConn"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let loaded = rt
        .block_on(
            StrongSwanDriver::new(&tb.vici_uri(Side::Cloud))
                .unwrap()
                .loaded(),
        )
        .unwrap();
    assert!(
        !loaded.iter().any(|id| id.as_str() == ids.conn),
        "the cloud charon no longer has the tunnel"
    );
    tb.teardown();
}

#[test]
fn tunnel_with_api_defaults() {
    // 3des-cbc, md5, main mode, group2, address identities.
    tunnel_end_to_end(json!({}), &[("10.100.0.1", "10.200.0.1")]);
}

#[test]
fn tunnel_with_custom_settings_and_two_spd_rules() {
    tunnel_end_to_end(
        json!({
            "vpnConnName": "custom",
            "spdAcl": r#"{"10.100.0.0/24":["10.200.0.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#,
            "IKESet": {
                "propoEncryAlgorithm": "aes-cbc-256",
                "propoAuthenAlgorithm": "sha",
                "exchangeMode": "aggressive",
                "localIdentity": "fqdn",
                "localFqdnName": "vpn.cloud.example",
                "remoteIdentity": "fqdn",
                "remoteFqdnName": "office.example.net",
                "dhGroupName": "group14",
            },
            "IPsecSet": {
                "encryptAlgorithm": "aes-cbc-256",
                "integrityAlgorith": "sha",
                "pfsDhGroup": "dh-group14",
            },
        }),
        &[("10.100.0.1", "10.200.0.1"), ("10.100.1.1", "10.200.1.1")],
    );
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

#[test]
fn charon_and_vpcd_restarts_converge_without_api_calls() {
    let Some((mut tb, py)) = setup(TestbedConfig::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vpcd");
    let mut v = Vpcd::start(&data, &tb.vici_uri(Side::Cloud), &[]);
    let ids = create_tunnel(&v, &py, "restart-key", json!({}));
    tb.load_swanctl(Side::Peer, &v.peer_config(&ids.conn))
        .unwrap();
    v.wait_net(&ids.conn, "available", Duration::from_secs(20));

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
    let live = create_tunnel(&v, &py, "live-key", json!({}));
    tb.load_swanctl(Side::Peer, &v.peer_config(&live.conn))
        .unwrap();
    v.wait_net(&live.conn, "available", Duration::from_secs(20));

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
        let store = vpcd_store::connect(&format!("sqlite://{}", data.join("vpcd.db").display()))
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

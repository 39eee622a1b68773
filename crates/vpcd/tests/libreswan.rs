//! The Libreswan file that GetVpnConnConfig hands out, proven by Libreswan
//! itself: the `vpcd` binary drives a strongSwan charon in one network
//! namespace; the customer's side is Libreswan's pluto in the other, set up
//! from the handed-out text exactly as its parts say.
//!
//! What this kernel lets it prove (it has no ESP, and Libreswan has no
//! userspace ESP as strongSwan's kernel-libipsec is): the file loads, the IKE SA is
//! established with vpcd's charon (PSK, proposal, identities, exchange
//! mode), and each SPD pair's Quick Mode proposal is accepted by both
//! daemons. Only the last step, pluto installing the ESP SA in the kernel,
//! fails ("Protocol not supported", or "Function not implemented" for
//! some ciphers), so no ping crosses: the strongSwan
//! peer test (tests/tunnel.rs) carries the pings.
//!
//! Needs root, strongSwan and Libreswan's extracted package (`bash
//! scripts/test.sh` sets them up). Under `CI=true` a missing piece fails the
//! test; elsewhere it is skipped with the reason printed.
//!
//! Network safety: pluto runs only inside the peer namespace the test bed
//! created, and is stopped by PID; vpcd's API is on 127.0.0.1.

mod e2e;

use std::time::{Duration, Instant};

use e2e::Vpcd;
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::testbed::{libreswan_programs, Side, Testbed, TestbedConfig};

/// One setting family, as AddVpnConnEx takes it, and what both daemons
/// must report for it.
struct Family {
    label: &'static str,
    params: &'static [&'static str],
    /// pluto's summary of the IKE SA (`cipher=... integ=... group=...`).
    pluto_ike: &'static str,
    /// charon's IKE proposal as `swanctl --list-sas` prints it.
    charon_ike: &'static str,
    /// pluto's Quick Mode proposal (`proposal=... pfsgroup=...`).
    pluto_esp: &'static str,
    /// The ESP proposal charon selects.
    charon_esp: &'static str,
    /// (cloud net, peer net) of every SPD pair.
    pairs: &'static [(&'static str, &'static str)],
}

const FAMILIES: &[Family] = &[
    Family {
        label: "main mode, address identities, no PFS, one SPD rule",
        params: &[
            "userGwCidrBlock.0=10.200.0.0/24",
            "IKESet.propoEncryAlgorithm=aes-cbc-128",
            "IKESet.propoAuthenAlgorithm=sha",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=aes-cbc-128",
            "IPsecSet.integrityAlgorith=sha",
        ],
        pluto_ike: "cipher=AES_CBC_128 integ=HMAC_SHA1 group=MODP2048",
        charon_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        pluto_esp: "proposal=AES_CBC_128-HMAC_SHA1_96 pfsgroup=no-pfs",
        charon_esp: "ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ",
        pairs: &[("10.100.0.0/16", "10.200.0.0/24")],
    },
    Family {
        label: "aggressive mode, FQDN identities, PFS group 14, two SPD rules",
        params: &[
            r#"spdAcl={"10.100.0.0/24":["10.200.0.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#,
            "IKESet.exchangeMode=aggressive",
            "IKESet.localIdentity=fqdn",
            "IKESet.localFqdnName=vpn.cloud.example",
            "IKESet.remoteIdentity=fqdn",
            "IKESet.remoteFqdnName=office.example.net",
            "IKESet.propoEncryAlgorithm=aes-cbc-256",
            "IKESet.propoAuthenAlgorithm=sha",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=aes-cbc-256",
            "IPsecSet.integrityAlgorith=sha",
            "IPsecSet.pfsDhGroup=dh-group14",
        ],
        pluto_ike: "cipher=AES_CBC_256 integ=HMAC_SHA1 group=MODP2048",
        charon_ike: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        pluto_esp: "proposal=AES_CBC_256-HMAC_SHA1_96-MODP2048 pfsgroup=MODP2048",
        charon_esp: "ESP:AES_CBC_256/HMAC_SHA1_96/MODP_2048/NO_EXT_SEQ",
        pairs: &[
            ("10.100.0.0/24", "10.200.0.0/24"),
            ("10.100.1.0/24", "10.200.1.0/24"),
        ],
    },
    Family {
        label: "main mode, FQDN identities, 3DES/MD5, group 5, PFS group 5, ESP-NULL",
        params: &[
            "userGwCidrBlock.0=10.200.0.0/24",
            "IKESet.localIdentity=fqdn",
            "IKESet.localFqdnName=vpn.cloud.example",
            "IKESet.remoteIdentity=fqdn",
            "IKESet.remoteFqdnName=office.example.net",
            "IKESet.propoEncryAlgorithm=3des-cbc",
            "IKESet.propoAuthenAlgorithm=md5",
            "IKESet.dhGroupName=group5",
            "IPsecSet.encryptAlgorithm=null",
            "IPsecSet.integrityAlgorith=sha",
            "IPsecSet.pfsDhGroup=dh-group5",
        ],
        pluto_ike: "cipher=3DES_CBC_192 integ=HMAC_MD5 group=MODP1536",
        charon_ike: "3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1536",
        pluto_esp: "proposal=NULL-HMAC_SHA1_96-MODP1536 pfsgroup=MODP1536",
        charon_esp: "ESP:NULL/HMAC_SHA1_96/MODP_1536/NO_EXT_SEQ",
        pairs: &[("10.100.0.0/16", "10.200.0.0/24")],
    },
    Family {
        label: "aggressive mode, address identities, no PFS, three SPD pairs",
        params: &[
            r#"spdAcl={"10.100.0.0/24":["10.200.0.0/24","10.200.1.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#,
            "IKESet.exchangeMode=aggressive",
            "IKESet.propoEncryAlgorithm=aes-cbc-192",
            "IKESet.propoAuthenAlgorithm=md5",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=3des-cbc",
            "IPsecSet.integrityAlgorith=md5",
        ],
        pluto_ike: "cipher=AES_CBC_192 integ=HMAC_MD5 group=MODP2048",
        charon_ike: "AES_CBC-192/HMAC_MD5_96/PRF_HMAC_MD5/MODP_2048",
        pluto_esp: "proposal=3DES_CBC-HMAC_MD5_96 pfsgroup=no-pfs",
        charon_esp: "ESP:3DES_CBC/HMAC_MD5_96/NO_EXT_SEQ",
        pairs: &[
            ("10.100.0.0/24", "10.200.0.0/24"),
            ("10.100.0.0/24", "10.200.1.0/24"),
            ("10.100.1.0/24", "10.200.1.0/24"),
        ],
    },
];

/// The test bed with pluto available, or `None` after printing why (a
/// panic under CI).
fn setup() -> Option<Testbed> {
    if let Err(why) = libreswan_programs() {
        vpcd_types::testing::skip("libreswan peer test", &why);
        return None;
    }
    Testbed::start_or_skip(TestbedConfig::default())
}

#[test]
fn libreswan_peer_establishes_every_setting_family_from_the_handed_out_file() {
    let Some(mut tb) = setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let vpc = v.call("CreateVpc", &["vpcName=lsw", "cidrBlock=10.100.0.0/16"]);
    let vpc = vpc["uniqVpcId"].as_str().expect("vpc").to_owned();
    let gw = v.call(
        "RunVpnGw",
        &[&format!("vpcId={vpc}"), "name=gw", "bandwidth=5"],
    );
    let gw = gw["data"]["vpnGwId"].as_str().expect("gw").to_owned();
    let user = v.call(
        "AddUserGw",
        &["userGwName=office", "userGwAddr=198.51.100.1"],
    );
    let user = user["userGwId"].as_str().expect("user gw").to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();

    for family in FAMILIES {
        eprintln!("---- {}", family.label);
        let base = [
            format!("vpcId={vpc}"),
            format!("vpnGwId={gw}"),
            format!("userGwId={user}"),
            "preSharedKey=lsw-Pre-Shared-key".to_owned(),
        ];
        let mut params: Vec<&str> = base.iter().map(String::as_str).collect();
        params.extend(family.params);
        let add = v.call("AddVpnConnEx", &params);
        assert_eq!(add["code"], 0, "{}: {add}", family.label);
        let task = add["data"]["taskId"].as_i64().unwrap();
        v.wait_task(task);
        let t = v.call("DescribeVpcTaskResult", &[&format!("taskId={task}")]);
        let conn = t["data"]["output"]["unVpnConnId"]
            .as_str()
            .unwrap()
            .to_owned();

        let text = v.peer_config_for(&conn, "Libreswan");
        let charon_mark = tb.charon_log(Side::Cloud).len();
        tb.start_pluto(&text).unwrap_or_else(|e| {
            panic!("{}: pluto starts with the file: {e}\n{text}", family.label)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pluto = tb.pluto_log();
            let charon = tb.charon_log(Side::Cloud)[charon_mark..].to_owned();
            let sas = rt.block_on(driver.list_sas()).unwrap();
            let established = sas
                .iter()
                .any(|sa| sa.name.as_str() == conn && sa.state == "ESTABLISHED");
            let listed = swanctl_list_sas(&tb);
            let missing = missing_evidence(family, &pluto, &charon, established, &listed, &conn);
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: after 30 s, not seen: {missing:#?}\n--- the file\n{text}\n--- pluto\n{pluto}\n\
                 --- charon (list-sas)\n{listed}\n--- charon log\n{charon}",
                family.label
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{}: established and Quick Mode accepted", family.label);
        tb.stop_pluto();
        let del = v.call(
            "DeleteVpnConn",
            &[
                &format!("vpcId={vpc}"),
                &format!("vpnGwId={gw}"),
                &format!("vpnConnId={conn}"),
            ],
        );
        assert_eq!(del["code"], 0, "{del}");
        v.wait_task(del["data"]["taskId"].as_i64().unwrap());
    }
    tb.teardown();
}

/// What is not yet proven for `family` (empty once everything is):
/// - pluto loaded every conn of the file, established the IKE SA with the
///   expected algorithms, proposed the expected Quick Mode for every SPD
///   pair and got as far as installing its ESP SA, the one step this kernel
///   cannot do (when pluto initiated, that step follows charon's answer;
///   when charon did, it follows pluto's acceptance); and no other error;
/// - charon (VICI) holds the connection's IKE SA ESTABLISHED with the
///   expected proposal, and its log shows each pair's Quick Mode matched
///   to a child config with the expected ESP proposal, and answered.
fn missing_evidence(
    family: &Family,
    pluto: &str,
    charon: &str,
    established: bool,
    listed: &str,
    conn: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            missing.push(what);
        }
    };
    let conn_line = |n: usize, needle: &str| {
        pluto
            .lines()
            .any(|l| l.contains(&format!("\"vpcd-{n}\"")) && l.contains(needle))
    };
    let ike = format!(
        "IKE SA established {{auth=PRESHARED_KEY {}}}",
        family.pluto_ike
    );
    need(pluto.contains(&ike), format!("pluto: {ike}"));
    for n in 1..=family.pairs.len() {
        need(
            conn_line(n, "added IKEv1 connection"),
            format!("pluto: vpcd-{n} added"),
        );
        need(
            conn_line(n, family.pluto_esp),
            format!("pluto: vpcd-{n} proposes {}", family.pluto_esp),
        );
        need(
            conn_line(n, "STATE_QUICK_I1 had internal error")
                || conn_line(n, "STATE_QUICK_R0 had internal error"),
            format!("pluto: vpcd-{n} reaches the ESP SA install"),
        );
    }
    for l in pluto.lines().filter(|l| l.contains("ERROR")) {
        // The kernel answers "Protocol not supported" (no ESP at all) or,
        // for some ciphers, "Function not implemented".
        need(
            l.contains("netlink response for Add SA esp."),
            format!("pluto: no error but the kernel refusing the ESP SA; saw {l}"),
        );
    }
    need(established, format!("charon: {conn} ESTABLISHED"));
    need(
        listed.contains(family.charon_ike),
        format!("charon: IKE proposal {}", family.charon_ike),
    );
    for (cloud, peer) in family.pairs {
        let ts = format!("looking for a child config for {cloud} === {peer}");
        need(charon.contains(&ts), format!("charon: {ts}"));
    }
    let selected = format!("selected proposal: {}", family.charon_esp);
    need(
        charon.matches(&selected).count() >= family.pairs.len(),
        format!("charon: {selected} (once per pair)"),
    );
    need(
        charon.matches("generating QUICK_MODE response").count() >= family.pairs.len(),
        "charon: a Quick Mode response per pair".to_owned(),
    );
    missing
}

/// `swanctl --list-sas` of the cloud charon (VICI), for the algorithms.
fn swanctl_list_sas(tb: &Testbed) -> String {
    let out = std::process::Command::new("swanctl")
        .args(["--list-sas", "--uri", &tb.vici_uri(Side::Cloud)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// IKEv2 (only API 3.0 can ask for it) with AES-GCM, SHA-256 as PRF, group
/// 19 and PFS group 20, two SPD pairs: the file (two parts, `ikev2=insist`)
/// loads, pluto establishes the IKE SA, and the CHILD SA that IKE_AUTH
/// carries is accepted by charon, which installs it (userspace ESP), while
/// pluto fails only at installing its own.
#[test]
fn libreswan_peer_establishes_ikev2_with_aes_gcm() {
    let py = match e2e::venv_python("tencentcloud.vpc") {
        Ok(p) => p,
        Err(why) => {
            vpcd_types::testing::skip("libreswan IKEv2 peer test", &why);
            return;
        }
    };
    let Some(mut tb) = setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let vpc = v.sdk3(
        &py,
        "CreateVpc",
        serde_json::json!({"VpcName": "lsw2", "CidrBlock": "10.100.0.0/16"}),
    );
    let vpc = vpc["Vpc"]["VpcId"].as_str().unwrap().to_owned();
    let gw = v.sdk3(
        &py,
        "CreateVpnGateway",
        serde_json::json!({"VpcId": vpc, "VpnGatewayName": "gw", "InternetMaxBandwidthOut": 5}),
    );
    let gw = gw["VpnGateway"]["VpnGatewayId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cgw = v.sdk3(
        &py,
        "CreateCustomerGateway",
        serde_json::json!({"CustomerGatewayName": "office", "IpAddress": "198.51.100.1"}),
    );
    let cgw = cgw["CustomerGateway"]["CustomerGatewayId"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = v.sdk3(
        &py,
        "CreateVpnConnection",
        serde_json::json!({
            "VpcId": vpc, "VpnGatewayId": gw, "CustomerGatewayId": cgw,
            "VpnConnectionName": "ikev2", "PreShareKey": "lsw-Pre-Shared-key",
            "SecurityPolicyDatabases": [{"LocalCidrBlock": "10.100.0.0/24",
                "RemoteCidrBlock": ["10.200.0.0/24", "10.200.1.0/24"]}],
            "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                "PropoEncryAlgorithm": "AES256GCM128", "PropoAuthenAlgorithm": "SHA-256",
                "DhGroupName": "GROUP19"},
            "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES128GCM128",
                "PfsDhGroup": "DH-GROUP20"},
        }),
    );
    let conn = created["VpnConnection"]["VpnConnectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = v.call("DescribeVpnConn", &[&format!("vpnConnId={conn}")]);
        if c["data"][0]["vpcConnStatus"] == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{conn} not running: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = v.peer_config_for(&conn, "Libreswan");
    assert!(text.contains("\tikev2=insist\n"), "{text}");
    assert!(!text.contains("config setup"), "{text}");
    let charon_mark = tb.charon_log(Side::Cloud).len();
    tb.start_pluto(&text)
        .unwrap_or_else(|e| panic!("pluto starts with the file: {e}\n{text}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();
    let pairs = [
        ("10.100.0.0/24", "10.200.0.0/24"),
        ("10.100.0.0/24", "10.200.1.0/24"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pluto = tb.pluto_log();
        let sas = rt.block_on(driver.list_sas()).unwrap();
        let listed = swanctl_list_sas(&tb);
        let mut missing = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                missing.push(what.to_owned());
            }
        };
        let conn_line = |n: usize, needle: &str| {
            pluto
                .lines()
                .any(|l| l.contains(&format!("\"vpcd-{n}\"")) && l.contains(needle))
        };
        need(
            pluto.contains(
                "initiator established IKE SA; authenticated peer using authby=secret and \
                 ID_IPV4_ADDR '203.0.113.1'",
            ),
            "pluto: IKE SA established",
        );
        for n in 1..=pairs.len() {
            need(
                conn_line(n, "added IKEv2 connection"),
                &format!("pluto: vpcd-{n} added"),
            );
            // The CHILD SA reaches the install only once charon's IKE_AUTH
            // (or CREATE_CHILD_SA) answer accepted it.
            need(
                conn_line(n, "netlink response for Add SA esp."),
                &format!("pluto: vpcd-{n} reaches the ESP SA install"),
            );
        }
        for l in pluto.lines().filter(|l| l.contains("ERROR")) {
            need(
                l.contains("netlink response for Add SA esp.")
                    || l.contains("netlink response for Del SA esp."),
                &format!("pluto: no error but the kernel refusing the ESP SA; saw {l}"),
            );
        }
        // charon installed each pair's CHILD SA (userspace ESP) under an
        // established IKEv2 SA with the connection's proposals.
        for (cloud, peer) in pairs {
            let installed = sas.iter().any(|sa| {
                sa.name.as_str() == conn
                    && sa.state == "ESTABLISHED"
                    && sa.children.iter().any(|c| {
                        c.state == "INSTALLED" && c.local_ts == [cloud] && c.remote_ts == [peer]
                    })
            });
            need(
                installed,
                &format!("charon: CHILD SA {cloud} === {peer} INSTALLED"),
            );
        }
        need(
            listed.contains(", ESTABLISHED, IKEv2, ")
                && listed.contains("AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256"),
            "charon: IKEv2 SA with AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256",
        );
        need(
            listed.contains("INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128"),
            "charon: ESP AES_GCM_16-128",
        );
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s, not seen: {missing:#?}\n--- the file\n{text}\n--- pluto\n{pluto}\n\
             --- charon (list-sas)\n{listed}\n--- charon log\n{}",
            &tb.charon_log(Side::Cloud)[charon_mark..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tb.teardown();
}

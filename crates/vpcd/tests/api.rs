//! The API through HTTP: protocol, every action's answers and errors,
//! tenancy, the connection lifecycle, quotas.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use vpcd_dataplane::DriverError;
use vpcd_store::Limits;

fn code(v: &Value) -> (i64, &str) {
    (
        v["code"].as_i64().unwrap(),
        v["codeDesc"].as_str().unwrap_or(""),
    )
}

#[test]
fn docs_cover_every_action() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/actions.md"
    ))
    .expect("docs/actions.md");
    for action in vpcd::v2::Action::ALL.iter().map(|a| a.name()) {
        assert!(
            doc.contains(&format!("### {action}\n")),
            "docs/actions.md has no section for {action}"
        );
    }
}

#[test]
fn docs_cover_every_api3_action() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api3.md"))
        .expect("docs/api3.md");
    for action in vpcd::v3::Action::ALL.iter().map(|a| a.name()) {
        assert!(
            doc.contains(&format!("### {action}\n")),
            "docs/api3.md has no section for {action}"
        );
    }
}

#[tokio::test]
async fn seed_example_and_defaults() {
    let app = spawn_app().await;
    let f = app.fixture("seed").await;
    // Exactly the seed's parameters (no vpnConnName).
    let v = app
        .ok(
            "AddVpnConnEx",
            &[
                ("vpcId", &f.vpc_id),
                ("userGwId", &f.user_gw_id),
                ("vpnGwId", &f.gw_id),
                ("userGwCidrBlock.0", "10.56.20.1/24"),
                ("preSharedKey", "dgdgd33"),
            ],
        )
        .await;
    let data = v["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "preSharedKey",
            "taskId",
            "userGwId",
            "userGwSubnetList",
            "vpnConnId",
            "vpnConnStatus",
            "vpnGwId"
        ]
    );
    assert_eq!(data["vpnGwId"], json!(f.gw_id));
    assert_eq!(data["userGwId"], json!(f.user_gw_id));
    assert_eq!(data["vpnConnId"], 0);
    assert_eq!(data["vpnConnStatus"], 0);
    assert_eq!(data["preSharedKey"], "dgdgd33");
    assert_eq!(data["userGwSubnetList"], json!(["10.56.20.1/24"]));
    let task = data["taskId"].as_i64().unwrap();

    let t = app
        .ok("DescribeVpcTaskResult", &[("taskId", &task.to_string())])
        .await;
    assert_eq!(t["data"]["status"], 2, "running until a worker applies it");
    assert_eq!(app.run_tasks().await, 1);
    let t = app
        .ok("DescribeVpcTaskResult", &[("taskId", &task.to_string())])
        .await;
    assert_eq!(t["data"]["status"], 0);
    let conn_id = t["data"]["output"]["unVpnConnId"].as_str().unwrap();

    let c = app.conn(conn_id).await;
    assert_eq!(c["vpcConnStatus"], 6);
    assert_eq!(
        c["netStatus"], "unavailable",
        "API-only mode negotiates nothing"
    );
    assert!(c["vpnConnName"].as_str().unwrap().starts_with("vpnconn-"));
    assert_eq!(c["destinationCidr"], json!(["10.56.20.1/24"]));
    assert_eq!(c["sourceCidr"], json!(["10.0.0.0/16"]));
    assert_eq!(
        c["IKEArr"],
        json!({
            "propoEncryAlgorithm": "3des-cbc", "propoAuthenAlgorithm": "md5", "exchangeMode": "main",
            "localIdentity": "address", "localAddress": f.gw_addr, "localFqdnName": "",
            "remoteIdentity": "address", "remoteAddress": "198.51.100.7", "remoteFqdnName": "",
            "dhGroupName": "group2", "ikeSaLifetimeSeconds": "86400",
        })
    );
    assert_eq!(
        c["IPSECArr"],
        json!({
            "encryptAlgorithm": "3des-cbc", "integrityAlgorith": "md5",
            "ipsecSaLifetimeSeconds": "3600", "ipsecSaLifetimeTraffic": "1843200",
            "pfsDhGroup": "null", "encapMode": "tunnel", "securityProto": "ESP",
        })
    );
    // The data plane got the network, not the host-bit spelling.
    let spec = app
        .driver
        .tunnel(&conn_id.parse().unwrap())
        .expect("recorded");
    assert_eq!(
        spec.settings.spd[0].remote[0].net().to_string(),
        "10.56.20.0/24"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn every_enumeration_value_is_accepted() {
    let limits = Limits {
        conns_per_vpn_gw: 1000,
        conns_per_user_gw: 1000,
        conns_per_region: 1000,
        conns_per_pair: 1000,
        ..Default::default()
    };
    let app = spawn_with(Options {
        limits,
        ..Default::default()
    })
    .await;
    let f = app.fixture("enum").await;
    let cases: &[(&str, &[&str])] = &[
        (
            "IKESet.propoEncryAlgorithm",
            &[
                "3des-cbc",
                "aes-cbc-128",
                "aes-cbc-192",
                "aes-cbc-256",
                "des-cbc",
            ],
        ),
        ("IKESet.propoAuthenAlgorithm", &["md5", "sha"]),
        ("IKESet.exchangeMode", &["aggressive", "main"]),
        ("IKESet.localIdentity", &["address"]),
        ("IKESet.remoteIdentity", &["address"]),
        (
            "IKESet.dhGroupName",
            &["group1", "group2", "group5", "group14", "group24"],
        ),
        (
            "IKESet.encryptAlgorithm",
            &[
                "3des-cbc",
                "aes-cbc-128",
                "aes-cbc-192",
                "aes-cbc-256",
                "des-cbc",
                "null",
            ],
        ),
        (
            "IPsecSet.encryptAlgorithm",
            &[
                "3des-cbc",
                "aes-cbc-128",
                "aes-cbc-192",
                "aes-cbc-256",
                "des-cbc",
                "null",
            ],
        ),
        ("IPsecSet.integrityAlgorith", &["md5", "sha"]),
        (
            "IPsecSet.pfsDhGroup",
            &[
                "null",
                "dh-group1",
                "dh-group14",
                "dh-group2",
                "dh-group24",
                "dh-group5",
            ],
        ),
        ("IKESet.ikeSaLifetimeSeconds", &["60", "604800"]),
        ("IPsecSet.ipsecSaLifetimeSeconds", &["180", "604800"]),
        ("IPsecSet.ipsecSaLifetimeTraffic", &["2560", "1843200"]),
    ];
    let mut n = 0;
    let mut made = Vec::new();
    for (key, values) in cases {
        for value in *values {
            n += 1;
            let name = format!("c{n}");
            let v = app
                .add_conn(&f, &f.user_gw_id, &[(key, value), ("vpnConnName", &name)])
                .await;
            assert_eq!(v["code"], 0, "{key}={value}: {v}");
            made.push((*key, *value, v["data"]["taskId"].as_i64().unwrap()));
        }
    }
    // Identities with FQDNs, in every documented spelling of the set.
    for (i, prefix) in ["IKESet.", "IKESet.0.", "ikeSet.0."].iter().enumerate() {
        let name = format!("fqdn{i}");
        let v = app
            .add_conn(
                &f,
                &f.user_gw_id,
                &[
                    (&format!("{prefix}localIdentity"), "fqdn"),
                    (&format!("{prefix}localFqdnName"), "vpn.example.com"),
                    (&format!("{prefix}remoteIdentity"), "fqdn"),
                    (&format!("{prefix}remoteFqdnName"), "peer.example.net"),
                    ("vpnConnName", &name),
                ],
            )
            .await;
        assert_eq!(v["code"], 0, "{prefix}: {v}");
    }
    assert_eq!(app.run_tasks().await, n + 3);
    // Each value reads back as sent, and reaches charon as the strongSwan
    // proposal, lifetime or mode it stands for.
    for (key, value, task) in made {
        let conn = conn_id_of(&app, task).await;
        let c = app.conn(&conn).await;
        let (set, field) = key.split_once('.').unwrap();
        let arr = if set == "IPsecSet" || field == "encryptAlgorithm" {
            "IPSECArr"
        } else {
            "IKEArr"
        };
        assert_eq!(c[arr][field], value, "{key}={value} read back: {c}");
        let spec = app.driver.tunnel(&conn.parse().unwrap()).unwrap();
        let load =
            serde_json::to_value(vpcd_dataplane::strongswan::render::load_conn(&spec)).unwrap();
        let body = &load[&conn];
        let (ike, ipsec) = (&c["IKEArr"], &c["IPSECArr"]);
        let s = |v: &Value| v.as_str().unwrap().to_owned();
        let want_ike = format!(
            "{}-{}-{}",
            cipher(&s(&ike["propoEncryAlgorithm"])),
            integrity(&s(&ike["propoAuthenAlgorithm"])),
            modp(&s(&ike["dhGroupName"]))
        );
        let mut want_esp = format!(
            "{}-{}",
            cipher(&s(&ipsec["encryptAlgorithm"])),
            integrity(&s(&ipsec["integrityAlgorith"]))
        );
        if let Some(group) = s(&ipsec["pfsDhGroup"]).strip_prefix("dh-") {
            want_esp = format!("{want_esp}-{}", modp(group));
        }
        assert_eq!(body["proposals"], json!([want_ike]), "{key}={value}");
        let child = body["children"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert_eq!(child["esp_proposals"], json!([want_esp]), "{key}={value}");
        assert_eq!(
            body["aggressive"],
            ike["exchangeMode"] == "aggressive",
            "{key}={value}"
        );
        let secs = |v: &Value| s(v).parse::<u64>().unwrap();
        assert_eq!(
            body["reauth_time"].as_u64().unwrap() + body["over_time"].as_u64().unwrap(),
            secs(&ike["ikeSaLifetimeSeconds"]),
            "{key}={value}: the IKE SA ends at its lifetime"
        );
        assert_eq!(child["life_time"], secs(&ipsec["ipsecSaLifetimeSeconds"]));
        assert_eq!(
            child["life_bytes"],
            secs(&ipsec["ipsecSaLifetimeTraffic"]) * 1024,
            "{key}={value}: KB of 1024 bytes"
        );
    }
    let page = app.ok("DescribeVpnConn", &[("vpnConnName", "fqdn1")]).await;
    assert_eq!(
        page["data"][0]["IKEArr"]["localFqdnName"],
        "vpn.example.com"
    );
    assert_eq!(page["data"][0]["IKEArr"]["localAddress"], "");
    app.shutdown().await;
}

/// strongSwan's keyword for an API cipher (IKE and ESP spell them alike).
fn cipher(api: &str) -> &'static str {
    match api {
        "3des-cbc" => "3des",
        "des-cbc" => "des",
        "aes-cbc-128" => "aes128",
        "aes-cbc-192" => "aes192",
        "aes-cbc-256" => "aes256",
        "null" => "null",
        other => panic!("no cipher {other}"),
    }
}

/// strongSwan's keyword for an API integrity algorithm.
fn integrity(api: &str) -> &'static str {
    match api {
        "md5" => "md5",
        "sha" => "sha1",
        other => panic!("no integrity algorithm {other}"),
    }
}

/// strongSwan's keyword for a Diffie-Hellman group (RFC 2409, 3526, 5114).
fn modp(group: &str) -> &'static str {
    match group {
        "group1" => "modp768",
        "group2" => "modp1024",
        "group5" => "modp1536",
        "group14" => "modp2048",
        "group24" => "modp2048s256",
        other => panic!("no DH group {other}"),
    }
}

/// One row of the bad-input table: parameters (on top of a valid base),
/// the expected code, codeDesc, and the parameter the message must name.
struct Bad {
    set: Vec<(&'static str, String)>,
    drop: &'static [&'static str],
    code: i64,
    desc: &'static str,
    names: &'static str,
}

fn bad(
    set: &[(&'static str, &str)],
    drop: &'static [&'static str],
    code: i64,
    desc: &'static str,
    names: &'static str,
) -> Bad {
    Bad {
        set: set.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        drop,
        code,
        desc,
        names,
    }
}

async fn check_table(app: &TestApp, action: &str, base: &[(&str, String)], rows: Vec<Bad>) {
    for row in rows {
        let mut params: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| !row.drop.contains(k) && !row.set.iter().any(|(s, _)| s == k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        params.extend(row.set.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = app.call(action, &refs).await;
        assert_eq!(
            code(&v),
            (row.code, row.desc),
            "{action} with {:?} minus {:?}: {v}",
            row.set,
            row.drop
        );
        assert!(
            v["message"].as_str().unwrap().starts_with(row.names),
            "{action}: message must name {}: {v}",
            row.names
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_code_and_parameter() {
    let app = spawn_app().await;
    let f = app.fixture("bad").await;
    let long = "x".repeat(61);

    check_table(
        &app,
        "CreateVpc",
        &[("vpcName", "n".into()), ("cidrBlock", "10.1.0.0/16".into())],
        vec![
            bad(&[], &["vpcName"], 4000, "MissingParameter", "vpcName"),
            bad(&[("vpcName", "")], &[], 4000, "InvalidVpcName", "vpcName"),
            bad(
                &[("vpcName", &long)],
                &[],
                4000,
                "InvalidVpcName",
                "vpcName",
            ),
            bad(
                &[("vpcName", "a\nb")],
                &[],
                4000,
                "InvalidVpcName",
                "vpcName",
            ),
            bad(&[], &["cidrBlock"], 4000, "MissingParameter", "cidrBlock"),
            bad(
                &[("cidrBlock", "")],
                &[],
                4000,
                "InvalidParameter",
                "cidrBlock",
            ),
            bad(
                &[("cidrBlock", "banana")],
                &[],
                4000,
                "InvalidVpcCidr",
                "cidrBlock",
            ),
            bad(
                &[("cidrBlock", "10.0.0.0/8")],
                &[],
                4000,
                "InvalidVpcCidr",
                "cidrBlock",
            ),
            bad(
                &[("cidrBlock", "10.0.0.0/29")],
                &[],
                4000,
                "InvalidVpcCidr",
                "cidrBlock",
            ),
            bad(
                &[("cidrBlock", "8.8.0.0/16")],
                &[],
                4000,
                "InvalidVpcCidr",
                "cidrBlock",
            ),
            bad(
                &[
                    ("subnetSet.0.cidrBlock", "10.9.0.0/24"),
                    ("subnetSet.0.subnetName", "s"),
                ],
                &[],
                4000,
                "InvalidSubnetCidr",
                "subnetSet.0.cidrBlock",
            ),
            bad(
                &[("vpcName", "vpc-bad")],
                &[],
                4000,
                "InvalidVpcName.InUse",
                "vpcName",
            ),
        ],
    )
    .await;

    check_table(
        &app,
        "RunVpnGw",
        &[
            ("vpcId", f.vpc_id.clone()),
            ("name", "g".into()),
            ("bandwidth", "10".into()),
        ],
        vec![
            bad(&[], &["vpcId"], 4000, "MissingParameter", "vpcId"),
            bad(
                &[("vpcId", "vpc-nonexist")],
                &[],
                5000,
                "InvalidVpc.NotFound",
                "vpcId",
            ),
            bad(
                &[("vpcId", "vpc-x")],
                &[],
                4000,
                "InvalidParameter",
                "vpcId",
            ),
            bad(
                &[("vpcId", "999999")],
                &[],
                5000,
                "InvalidVpc.NotFound",
                "vpcId",
            ),
            bad(&[], &["name"], 4000, "MissingParameter", "name"),
            bad(&[("name", &long)], &[], 4000, "InvalidVpnGwName", "name"),
            bad(
                &[("bandwidth", "7")],
                &[],
                4000,
                "InvalidParameter",
                "bandwidth",
            ),
            bad(
                &[("bandwidth", "ten")],
                &[],
                4000,
                "InvalidParameter",
                "bandwidth",
            ),
            bad(
                &[("bandwidth", "")],
                &[],
                4000,
                "InvalidParameter",
                "bandwidth",
            ),
            bad(
                &[("chargeType", "a b")],
                &[],
                4000,
                "InvalidParameter",
                "chargeType",
            ),
            bad(&[("period", "0")], &[], 4000, "InvalidParameter", "period"),
        ],
    )
    .await;

    check_table(
        &app,
        "AddUserGw",
        &[
            ("userGwName", "u".into()),
            ("userGwAddr", "198.51.100.50".into()),
        ],
        vec![
            bad(&[], &["userGwName"], 4000, "MissingParameter", "userGwName"),
            bad(
                &[("userGwName", &long)],
                &[],
                4000,
                "InvalidUserGwName",
                "userGwName",
            ),
            bad(&[], &["userGwAddr"], 4000, "MissingParameter", "userGwAddr"),
            bad(
                &[("userGwAddr", "1.2.3")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "::1")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "127.0.0.1")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "224.0.0.5")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "169.254.0.9")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "0.0.0.0")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "255.255.255.255")],
                &[],
                4000,
                "InvalidUserGwAddr",
                "userGwAddr",
            ),
            bad(
                &[("userGwAddr", "198.51.100.7")],
                &[],
                4000,
                "InvalidUserGw.InUse",
                "userGwAddr",
            ),
            bad(
                &[("userGwName", "user-bad-7")],
                &[],
                4000,
                "InvalidUserGwName.InUse",
                "userGwName",
            ),
        ],
    )
    .await;

    let base: Vec<(&str, String)> = vec![
        ("vpcId", f.vpc_id.clone()),
        ("vpnGwId", f.gw_id.clone()),
        ("userGwId", f.user_gw_id.clone()),
        ("preSharedKey", "k3y".into()),
        ("userGwCidrBlock.0", "192.168.1.0/24".into()),
    ];
    let too_many: Vec<(&'static str, String)> = (0..51)
        .map(|i| {
            (
                Box::leak(format!("userGwCidrBlock.{i}").into_boxed_str()) as &'static str,
                format!("172.16.{i}.0/24"),
            )
        })
        .collect();
    let mut rows = vec![
        bad(&[], &["vpcId"], 4000, "MissingParameter", "vpcId"),
        bad(
            &[("vpcId", "vpc-zzzzzzzz")],
            &[],
            5000,
            "InvalidVpc.NotFound",
            "vpcId",
        ),
        bad(&[], &["vpnGwId"], 4000, "MissingParameter", "vpnGwId"),
        bad(
            &[("vpnGwId", "vpngw-zzzzzzzz")],
            &[],
            5000,
            "InvalidVpnGw.NotFound",
            "vpnGwId",
        ),
        bad(&[], &["userGwId"], 4000, "MissingParameter", "userGwId"),
        bad(
            &[("userGwId", "cgw-zzzzzzzz")],
            &[],
            5000,
            "InvalidUserGw.NotFound",
            "userGwId",
        ),
        bad(
            &[("userGwId", "vpc-zzzzzzzz")],
            &[],
            4000,
            "InvalidParameter",
            "userGwId",
        ),
        bad(
            &[("vpnConnName", "")],
            &[],
            4000,
            "InvalidVpnConnName",
            "vpnConnName",
        ),
        bad(
            &[("vpnConnName", &long)],
            &[],
            4000,
            "InvalidVpnConnName",
            "vpnConnName",
        ),
        bad(
            &[],
            &["preSharedKey"],
            4000,
            "MissingParameter",
            "preSharedKey",
        ),
        bad(
            &[("preSharedKey", "")],
            &[],
            4000,
            "InvalidParameter",
            "preSharedKey",
        ),
        bad(
            &[("preSharedKey", "has space")],
            &[],
            4000,
            "InvalidParameter",
            "preSharedKey",
        ),
        bad(
            &[("preSharedKey", &"k".repeat(129))],
            &[],
            4000,
            "InvalidParameter",
            "preSharedKey",
        ),
        bad(
            &[],
            &["userGwCidrBlock.0"],
            4000,
            "MissingParameter",
            "userGwCidrBlock.n or spdAcl",
        ),
        bad(
            &[("userGwCidrBlock.0", "192.168.1.0")],
            &[],
            4000,
            "InvalidParameter",
            "userGwCidrBlock.0",
        ),
        bad(
            &[("userGwCidrBlock.0", "10.0.3.0/24")],
            &[],
            4000,
            "InvalidParameter",
            "userGwCidrBlock.0",
        ),
        bad(
            &[("userGwCidrBlock.1", "192.168.1.9/24")],
            &[],
            4000,
            "InvalidParameter",
            "userGwCidrBlock.1",
        ),
        bad(
            &[("userGwCidrBlock.2", "192.168.2.0/24")],
            &[],
            4000,
            "InvalidParameter",
            "userGwCidrBlock.2",
        ),
        bad(
            &[("spdAcl", r#"{"10.0.0.0/24":["172.16.0.0/16"]}"#)],
            &[],
            4000,
            "InvalidParameter",
            "spdAcl",
        ),
        bad(
            &[("spdAcl", "{")],
            &["userGwCidrBlock.0"],
            4000,
            "InvalidParameter",
            "spdAcl",
        ),
        bad(
            &[("spdAcl", r#"{"10.9.0.0/24":["172.16.0.0/16"]}"#)],
            &["userGwCidrBlock.0"],
            4000,
            "InvalidParameter",
            "spdAcl",
        ),
        bad(
            &[("IKESet.propoEncryAlgorithm", "aes")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.propoEncryAlgorithm",
        ),
        bad(
            &[("IKESet.propoEncryAlgorithm", "")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.propoEncryAlgorithm",
        ),
        bad(
            &[("IKESet.propoAuthenAlgorithm", "sha256")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.propoAuthenAlgorithm",
        ),
        bad(
            &[("IKESet.exchangeMode", "quick")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.exchangeMode",
        ),
        bad(
            &[("IKESet.localIdentity", "user")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localIdentity",
        ),
        bad(
            &[("IKESet.remoteIdentity", "fqdn")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.remoteFqdnName",
        ),
        bad(
            &[("IKESet.localIdentity", "fqdn")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localFqdnName",
        ),
        bad(
            &[
                ("IKESet.localIdentity", "fqdn"),
                ("IKESet.localFqdnName", "a\"b"),
            ],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localFqdnName",
        ),
        bad(
            &[
                ("IKESet.localIdentity", "fqdn"),
                ("IKESet.localFqdnName", "a.com"),
                ("IKESet.localAddress", "1.2.3.4"),
            ],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localAddress",
        ),
        bad(
            &[("IKESet.localFqdnName", "a.com")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localFqdnName",
        ),
        bad(
            &[("IKESet.localAddress", "not-ip")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.localAddress",
        ),
        bad(
            &[("IKESet.remoteAddress", "2001:db8::1")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.remoteAddress",
        ),
        bad(
            &[("IKESet.dhGroupName", "group3")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.dhGroupName",
        ),
        bad(
            &[("IKESet.ikeSaLifetimeSeconds", "59")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.ikeSaLifetimeSeconds",
        ),
        bad(
            &[("IKESet.ikeSaLifetimeSeconds", "604801")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.ikeSaLifetimeSeconds",
        ),
        bad(
            &[("IKESet.ikeSaLifetimeSeconds", "1h")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.ikeSaLifetimeSeconds",
        ),
        bad(
            &[("IKESet.encryptAlgorithm", "rc4")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.encryptAlgorithm",
        ),
        bad(
            &[
                ("IKESet.encryptAlgorithm", "null"),
                ("IPsecSet.encryptAlgorithm", "null"),
            ],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.encryptAlgorithm",
        ),
        bad(
            &[("IKESet.dhGroup", "group2")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.dhGroup",
        ),
        bad(
            &[("IKESet.1.dhGroupName", "group2")],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.1.dhGroupName",
        ),
        bad(
            &[
                ("IKESet.dhGroupName", "group2"),
                ("ikeSet.0.dhGroupName", "group2"),
            ],
            &[],
            4000,
            "InvalidParameter",
            "IKESet.dhGroupName",
        ),
        bad(
            &[("IPsecSet.integrityAlgorith", "sha1")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.integrityAlgorith",
        ),
        bad(
            &[("IPsecSet.ipsecSaLifetimeSeconds", "179")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.ipsecSaLifetimeSeconds",
        ),
        bad(
            &[("IPsecSet.ipsecSaLifetimeSeconds", "604801")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.ipsecSaLifetimeSeconds",
        ),
        bad(
            &[("IPsecSet.ipsecSaLifetimeTraffic", "2559")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.ipsecSaLifetimeTraffic",
        ),
        bad(
            &[("IPsecSet.ipsecSaLifetimeTraffic", "1843201")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.ipsecSaLifetimeTraffic",
        ),
        bad(
            &[("IPsecSet.pfsDhGroup", "group2")],
            &[],
            4000,
            "InvalidParameter",
            "IPsecSet.pfsDhGroup",
        ),
    ];
    rows.push(Bad {
        set: too_many,
        drop: &["userGwCidrBlock.0"],
        code: 4000,
        desc: "InvalidParameter",
        names: "userGwCidrBlock.n",
    });
    let many_rules: String = format!(
        "{{{}}}",
        (0..11)
            .map(|i| format!("\"10.0.{i}.0/24\":[\"172.16.0.0/16\"]"))
            .collect::<Vec<_>>()
            .join(",")
    );
    rows.push(Bad {
        set: vec![("spdAcl", many_rules)],
        drop: &["userGwCidrBlock.0"],
        code: 4000,
        desc: "InvalidParameter",
        names: "spdAcl",
    });
    check_table(&app, "AddVpnConnEx", &base, rows).await;

    // Nothing was half-written by any refused request.
    assert_eq!(app.ok("DescribeVpnConn", &[]).await["totalCount"], 0);
    assert_eq!(app.ok("DescribeVpcEx", &[]).await["totalCount"], 1);
    assert_eq!(app.ok("DescribeVpnGw", &[]).await["totalCount"], 1);
    assert_eq!(app.ok("DescribeUserGw", &[]).await["totalCount"], 1);
    assert_eq!(app.run_tasks().await, 0);

    // Paging parameters of the Describe actions.
    for action in [
        "DescribeVpcEx",
        "DescribeVpnGw",
        "DescribeUserGw",
        "DescribeVpnConn",
    ] {
        check_table(
            &app,
            action,
            &[],
            vec![
                bad(&[("limit", "0")], &[], 4000, "InvalidParameter", "limit"),
                bad(&[("limit", "51")], &[], 4000, "InvalidParameter", "limit"),
                bad(&[("offset", "-1")], &[], 4000, "InvalidParameter", "offset"),
                bad(&[("offset", "x")], &[], 4000, "InvalidParameter", "offset"),
                bad(
                    &[("orderField", "size")],
                    &[],
                    4000,
                    "InvalidParameter",
                    "orderField",
                ),
                bad(
                    &[("orderDirection", "up")],
                    &[],
                    4000,
                    "InvalidParameter",
                    "orderDirection",
                ),
            ],
        )
        .await;
    }
    check_table(
        &app,
        "DescribeVpcTaskResult",
        &[],
        vec![
            bad(&[], &[], 4000, "MissingParameter", "taskId"),
            bad(
                &[("taskId", "abc")],
                &[],
                4000,
                "InvalidParameter",
                "taskId",
            ),
            bad(&[("taskId", "0")], &[], 4000, "InvalidParameter", "taskId"),
            bad(
                &[("taskId", "424242")],
                &[],
                5000,
                "InvalidTask.NotFound",
                "taskId",
            ),
        ],
    )
    .await;
    for action in ["ModifyVpnConnEx", "DeleteVpnConn", "ResetVpnConnSA"] {
        check_table(
            &app,
            action,
            &[
                ("vpcId", f.vpc_id.clone()),
                ("vpnGwId", f.gw_id.clone()),
                ("vpnConnId", "vpnx-zzzzzzzz".into()),
            ],
            vec![
                bad(&[], &["vpnConnId"], 4000, "MissingParameter", "vpnConnId"),
                bad(&[], &["vpcId"], 4000, "MissingParameter", "vpcId"),
                bad(&[], &["vpnGwId"], 4000, "MissingParameter", "vpnGwId"),
                bad(&[], &[], 5000, "InvalidVpnConn.NotFound", "vpnConnId"),
                bad(
                    &[("vpnConnId", "7")],
                    &[],
                    5000,
                    "InvalidVpnConn.NotFound",
                    "vpnConnId",
                ),
            ],
        )
        .await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn protocol_errors() {
    let app = spawn_with(Options {
        max_body_bytes: 4096,
        ..Default::default()
    })
    .await;
    // Unknown action.
    let v = app.call("DescribeEverything", &[]).await;
    assert_eq!(code(&v), (4000, "InvalidAction"));
    assert!(v["message"].as_str().unwrap().starts_with("Action:"));

    // Replay: the same signed request twice.
    let signed = app.sign(&app.account, "GET", "DescribeVpcEx", &[]);
    assert_eq!(app.send_get(&signed).await["code"], 0);
    let v = app.send_get(&signed).await;
    assert_eq!(code(&v), (4500, "RequestReplay"));
    assert!(v["message"].as_str().unwrap().starts_with("Nonce:"));

    // A stale Timestamp.
    let mut signed = app.sign(&app.account, "GET", "DescribeVpcEx", &[]);
    let signer_stale = vpcd_auth::Signer {
        secret_id: &app.account.secret_id,
        secret_key: app.account.secret_key.as_bytes(),
        method: vpcd_auth::SignatureMethod::HmacSha1,
    };
    let stale = signer_stale.signed_params(
        "GET",
        &app.host,
        "/v2/index.php",
        "DescribeVpcEx",
        "gz",
        now() - 3600,
        77,
        &[],
    );
    let v = app.send_get(&stale).await;
    assert_eq!(code(&v), (4500, "RequestReplay"));
    assert!(v["message"].as_str().unwrap().starts_with("Timestamp:"));

    // Tampering after signing: 4100.
    signed.push(("vpcName".into(), "x".into()));
    assert_eq!(code(&app.send_get(&signed).await), (4100, "AuthFailure"));

    // Unknown SecretId: 4104; wrong key: 4100.
    let ghost = Creds {
        secret_id: "AKIDnobodyhere".into(),
        ..app.account.clone()
    };
    assert_eq!(
        app.call_as(&ghost, "DescribeVpcEx", &[]).await["code"],
        4104
    );
    let wrong = Creds {
        secret_key: "not-the-key".into(),
        ..app.account.clone()
    };
    assert_eq!(
        app.call_as(&wrong, "DescribeVpcEx", &[]).await["code"],
        4100
    );

    // A repeated parameter: 4000 naming it.
    let mut signed = app.sign(
        &app.account,
        "GET",
        "DescribeVpcEx",
        &kv(&[("offset", "0")]),
    );
    signed.push(("offset".into(), "1".into()));
    let v = app.send_get(&signed).await;
    assert_eq!(v["code"], 4000);
    assert!(v["message"].as_str().unwrap().starts_with("offset:"), "{v}");

    // POST works and is verified against POST.
    let signed = app.sign(&app.account, "POST", "DescribeVpcEx", &[]);
    assert_eq!(app.send_post(&signed).await["code"], 0);
    let signed = app.sign(&app.account, "GET", "DescribeVpcEx", &[]);
    assert_eq!(
        app.send_post(&signed).await["code"],
        4100,
        "a GET signature does not verify a POST"
    );

    // '@' values on POST are refused (they are not signed by v2 clients).
    let signed = app.sign(
        &app.account,
        "POST",
        "CreateVpc",
        &kv(&[("vpcName", "@x"), ("cidrBlock", "10.0.0.0/16")]),
    );
    let v = app.send_post(&signed).await;
    assert_eq!(v["code"], 4000);
    assert!(
        v["message"].as_str().unwrap().starts_with("vpcName:"),
        "{v}"
    );

    // Missing common parameters.
    for drop in [
        "Region",
        "SecretId",
        "Signature",
        "Timestamp",
        "Nonce",
        "Action",
    ] {
        let signed: Vec<(String, String)> = app
            .sign(&app.account, "GET", "DescribeVpcEx", &[])
            .into_iter()
            .filter(|(k, _)| k != drop)
            .collect();
        let v = app.send_get(&signed).await;
        assert_eq!(code(&v), (4000, "MissingParameter"), "without {drop}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(drop));
    }
    for (k, bad) in [
        ("Nonce", "-5"),
        ("Nonce", "99999999999999999999"),
        ("Timestamp", "soon"),
        ("Region", "GZ!"),
    ] {
        let mut signed: Vec<(String, String)> = app
            .sign(&app.account, "GET", "DescribeVpcEx", &[])
            .into_iter()
            .filter(|(key, _)| key != k)
            .collect();
        signed.push((k.to_owned(), bad.to_owned()));
        let v = app.send_get(&signed).await;
        assert_eq!(v["code"], 4000, "{k}={bad}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(k));
    }

    // Oversized bodies, declared and chunked, are refused (4000, HTTP 200).
    let big = "a=".to_owned() + &"x".repeat(10_000);
    let resp = app
        .http
        .post(format!("{}/v2/index.php", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], 4000);
    assert!(v["message"].as_str().unwrap().starts_with("request body"));
    let stream = futures::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1000])));
    let resp = app
        .http
        .post(format!("{}/v2/index.php", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], 4000, "{v}");

    // Health needs no signature.
    let h: Value = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn tenancy_other_accounts_resources_are_not_found() {
    let app = spawn_app().await;
    let f = app.fixture("ten").await;
    let v = app.add_conn(&f, &f.user_gw_id, &[]).await;
    app.run_tasks().await;
    let task = v["data"]["taskId"].as_i64().unwrap().to_string();
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let b = app.new_account("bob").await;

    for (action, params) in [
        ("DescribeVpcEx", vec![]),
        ("DescribeVpnGw", vec![]),
        ("DescribeUserGw", vec![]),
        ("DescribeVpnConn", vec![]),
    ] {
        let v = app.call_as(&b, action, &params).await;
        assert_eq!(
            (v["code"].as_i64(), v["totalCount"].as_i64()),
            (Some(0), Some(0)),
            "{action}: {v}"
        );
    }
    let missing_vpc = app
        .call_as(&b, "DeleteVpc", &[("vpcId", "vpc-zzzzzzzz")])
        .await;
    let others_vpc = app.call_as(&b, "DeleteVpc", &[("vpcId", &f.vpc_id)]).await;
    assert_eq!(code(&others_vpc), code(&missing_vpc));
    assert_eq!(code(&others_vpc), (5000, "InvalidVpc.NotFound"));
    let numeric = app.call_as(&b, "DeleteVpc", &[("vpcId", "1")]).await;
    assert_eq!(code(&numeric), (5000, "InvalidVpc.NotFound"));

    type Check<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let checks: Vec<Check> = vec![
        (
            "RunVpnGw",
            vec![("vpcId", &f.vpc_id), ("name", "x")],
            "InvalidVpc.NotFound",
        ),
        (
            "ModifyVpnGw",
            vec![
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("vpnGwName", "x"),
            ],
            "InvalidVpc.NotFound",
        ),
        (
            "DeleteVpnGw",
            vec![("vpcId", &f.vpc_id), ("vpnGwId", &f.gw_id)],
            "InvalidVpc.NotFound",
        ),
        (
            "ModifyUserGw",
            vec![("userGwId", &f.user_gw_id), ("userGwName", "x")],
            "InvalidUserGw.NotFound",
        ),
        (
            "DeleteUserGw",
            vec![("userGwId", &f.user_gw_id)],
            "InvalidUserGw.NotFound",
        ),
        (
            "AddVpnConnEx",
            vec![
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("userGwId", &f.user_gw_id),
                ("preSharedKey", "k"),
                ("userGwCidrBlock.0", "192.168.9.0/24"),
            ],
            "InvalidVpc.NotFound",
        ),
        (
            "ModifyVpnConnEx",
            vec![
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("vpnConnId", &conn),
                ("vpnConnName", "x"),
            ],
            "InvalidVpc.NotFound",
        ),
        (
            "DeleteVpnConn",
            vec![
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("vpnConnId", &conn),
            ],
            "InvalidVpc.NotFound",
        ),
        (
            "ResetVpnConnSA",
            vec![
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("vpnConnId", &conn),
            ],
            "InvalidVpc.NotFound",
        ),
        (
            "DescribeVpcTaskResult",
            vec![("taskId", &task)],
            "InvalidTask.NotFound",
        ),
    ];
    for (action, params, desc) in checks {
        let v = app.call_as(&b, action, &params).await;
        assert_eq!(code(&v), (5000, desc), "{action}: {v}");
    }
    // Bob's own VPC may reuse Alice's name; the other region sees nothing of Alice.
    let v = app
        .call_as(
            &b,
            "CreateVpc",
            &[("vpcName", "vpc-ten"), ("cidrBlock", "10.0.0.0/16")],
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let other_region = Creds {
        region: "bj".into(),
        ..app.account.clone()
    };
    assert_eq!(
        app.call_as(&other_region, "DescribeVpcEx", &[]).await["totalCount"],
        0
    );
    // Alice still has everything, unchanged.
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 6);
    assert_eq!(
        app.ok("DescribeUserGw", &[]).await["data"][0]["userGwName"],
        "user-ten-7"
    );
    app.shutdown().await;
}

/// The first answer other than `code 0` to `action`, sent again until it
/// comes or the deadline passes. Keys are cached for at most half a second
/// (`api::KEY_TTL`), so a disable shows well inside the deadline.
async fn first_refusal(app: &TestApp, who: &Creds, action: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = app.call_as(who, action, &[]).await;
        if v["code"] != 0 || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Disabling a key or its account through the admin path (the store, as
/// `vpcd admin` does, possibly from another process) stops the key on the
/// next requests, although it is cached; enabling it again brings it back.
#[tokio::test]
async fn disabled_key_is_refused() {
    let app = spawn_app().await;
    let b = app.new_account("carol").await;
    assert_eq!(app.call_as(&b, "DescribeVpcEx", &[]).await["code"], 0);
    app.store()
        .set_account_disabled("carol", true)
        .await
        .unwrap();
    assert_eq!(
        code(&first_refusal(&app, &b, "DescribeVpcEx").await),
        (4110, "AuthFailure.SecretIdDisabled")
    );
    // Changes are refused as well.
    assert_eq!(
        code(
            &app.call_as(
                &b,
                "CreateVpc",
                &[("vpcName", "x"), ("cidrBlock", "10.0.0.0/16")]
            )
            .await
        ),
        (4110, "AuthFailure.SecretIdDisabled")
    );
    app.store()
        .set_account_disabled("carol", false)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.call_as(&b, "DescribeVpcEx", &[]).await["code"] != 0 {
        assert!(std::time::Instant::now() < deadline, "never enabled again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The key alone.
    app.store()
        .set_key_disabled(&b.secret_id, true)
        .await
        .unwrap();
    assert_eq!(
        code(&first_refusal(&app, &b, "DescribeVpnConn").await),
        (4110, "AuthFailure.SecretIdDisabled")
    );
    // Other keys are untouched.
    assert_eq!(app.call("DescribeVpcEx", &[]).await["code"], 0);
    app.shutdown().await;
}

/// A request signed with `key` at `timestamp` with `nonce` (HmacSHA256, GET).
fn sign_at(
    app: &TestApp,
    creds: &Creds,
    key: &str,
    timestamp: i64,
    nonce: u64,
) -> Vec<(String, String)> {
    vpcd_auth::Signer {
        secret_id: &creds.secret_id,
        secret_key: key.as_bytes(),
        method: vpcd_auth::SignatureMethod::HmacSha256,
    }
    .signed_params(
        "GET",
        &app.host,
        "/v2/index.php",
        "DescribeVpcEx",
        &creds.region,
        timestamp,
        nonce,
        &[],
    )
}

fn assert_refused(v: &Value, want: (i64, &str), param: &str) {
    assert_eq!(code(v), want, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{param}:")),
        "the message names {param}: {v}"
    );
}

/// docs/actions.md, order of checks: the Nonce is recorded only for a
/// correctly signed request inside the Timestamp window, so a forged or
/// stale request cannot burn a caller's Nonce.
#[tokio::test]
async fn a_nonce_is_recorded_only_after_a_valid_signature() {
    let app = spawn_app().await;
    let me = app.account.clone();
    let nonce = 4242;
    let forged = sign_at(&app, &me, "not-the-key", now(), nonce);
    assert_refused(
        &app.send_get(&forged).await,
        (4100, "AuthFailure"),
        "Signature",
    );
    let stale = sign_at(&app, &me, &me.secret_key, now() - 3600, nonce);
    assert_refused(
        &app.send_get(&stale).await,
        (4500, "RequestReplay"),
        "Timestamp",
    );
    let good = sign_at(&app, &me, &me.secret_key, now(), nonce);
    let v = app.send_get(&good).await;
    assert_eq!(v["code"], 0, "the Nonce was still unused: {v}");
    assert_refused(&app.send_get(&good).await, (4500, "RequestReplay"), "Nonce");
    // The signature is checked before the Nonce, also once it is used.
    assert_refused(
        &app.send_get(&forged).await,
        (4100, "AuthFailure"),
        "Signature",
    );
    app.shutdown().await;
}

/// The signature is checked before the key's state: a disabled key with a
/// bad signature is an authentication failure, and only a correct
/// signature learns that the key is disabled.
#[tokio::test]
async fn a_disabled_key_with_a_bad_signature_answers_4100() {
    let app = spawn_app().await;
    let dave = app.new_account("dave").await;
    assert_eq!(app.call_as(&dave, "DescribeVpcEx", &[]).await["code"], 0);
    app.store()
        .set_key_disabled(&dave.secret_id, true)
        .await
        .unwrap();
    // Keys are cached for up to `KEY_TTL`: wait for the change to show.
    assert_refused(
        &first_refusal(&app, &dave, "DescribeVpcEx").await,
        (4110, "AuthFailure.SecretIdDisabled"),
        "SecretId",
    );
    let forged = Creds {
        secret_key: "not-the-key".into(),
        ..dave.clone()
    };
    assert_refused(
        &app.call_as(&forged, "DescribeVpcEx", &[]).await,
        (4100, "AuthFailure"),
        "Signature",
    );
    // Another account's key is not affected.
    assert_eq!(app.call("DescribeVpcEx", &[]).await["code"], 0);
    app.shutdown().await;
}

/// The Timestamp window (`--timestamp-window`, default 300 s) either way:
/// 300 s away is accepted, 301 s refused.
#[tokio::test]
async fn the_timestamp_window_ends_at_300_seconds_either_way() {
    let app = spawn_app().await;
    let me = app.account.clone();
    for (offset, accepted) in [(-300, true), (300, true), (-301, false), (301, false)] {
        // The in-process server reads the same clock (vpcd's `Clock`, no
        // offset) between the two readings here; when a second boundary
        // passes meanwhile the distance is unknown, so ask again.
        let mut tries = 0;
        let v = loop {
            tries += 1;
            assert!(tries < 50, "the clock kept moving across seconds");
            let t0 = now();
            let signed = sign_at(
                &app,
                &me,
                &me.secret_key,
                t0 + offset,
                rand::random::<u64>() % (i64::MAX as u64) + 1,
            );
            let v = app.send_get(&signed).await;
            if now() == t0 {
                break v;
            }
        };
        if accepted {
            assert_eq!(v["code"], 0, "{offset} s: {v}");
        } else {
            assert_refused(&v, (4500, "RequestReplay"), "Timestamp");
        }
    }
    app.shutdown().await;
}

/// `_` in a key means `.` (as in the signature), so the two spellings of one
/// parameter together are a repeated parameter; either alone is accepted.
#[tokio::test]
async fn underscore_and_dot_spellings_together_are_refused() {
    let app = spawn_app().await;
    let f = app.fixture("us").await;
    for (dot, underscore, value) in [
        ("IKESet.dhGroupName", "IKESet_dhGroupName", "group5"),
        ("ikeSet.0.dhGroupName", "ikeSet_0_dhGroupName", "group5"),
        ("IPsecSet.pfsDhGroup", "IPsecSet_pfsDhGroup", "dh-group2"),
        ("userGwCidrBlock.0", "userGwCidrBlock_0", "192.168.30.0/24"),
    ] {
        let v = app
            .add_conn(&f, &f.user_gw_id, &[(dot, value), (underscore, value)])
            .await;
        assert_eq!(code(&v), (4000, "InvalidParameter"), "{dot}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .ends_with("the parameter is given more than once"),
            "{v}"
        );
    }
    assert_eq!(app.run_tasks().await, 0, "nothing was created");
    let v = app
        .add_conn(
            &f,
            &f.user_gw_id,
            &[("IKESet_dhGroupName", "group5"), ("vpnConnName", "us")],
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    app.run_tasks().await;
    let c = app.ok("DescribeVpnConn", &[("vpnConnName", "us")]).await;
    assert_eq!(c["data"][0]["IKEArr"]["dhGroupName"], "group5");
    app.shutdown().await;
}

/// RunVpnGw: `bandwidth` defaults to 5, `chargeType` to POSTPAID_BY_HOUR,
/// `period` is echoed (and absent when not given), in the answer and in
/// DescribeVpnGw.
#[tokio::test]
async fn run_vpn_gw_defaults_and_echoes_period() {
    let app = spawn_app().await;
    let vpc = app
        .ok(
            "CreateVpc",
            &[("vpcName", "gws"), ("cidrBlock", "10.0.0.0/16")],
        )
        .await["uniqVpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        (vec![], 5, "POSTPAID_BY_HOUR", Value::Null),
        (
            vec![
                ("bandwidth", "20"),
                ("chargeType", "PREPAID"),
                ("period", "12"),
            ],
            20,
            "PREPAID",
            json!(12),
        ),
        (vec![("period", "1")], 5, "POSTPAID_BY_HOUR", json!(1)),
        (vec![("period", "120")], 5, "POSTPAID_BY_HOUR", json!(120)),
    ];
    for (n, (extra, bandwidth, charge, period)) in cases.into_iter().enumerate() {
        let name = format!("gw-{n}");
        let mut p = vec![("vpcId", vpc.as_str()), ("name", name.as_str())];
        p.extend(extra.iter().copied());
        let v = app.ok("RunVpnGw", &p).await;
        assert_eq!(v["data"]["chargeType"], charge, "{p:?}: {v}");
        assert_eq!(v["data"]["period"], period, "{p:?}: {v}");
        let id = v["data"]["vpnGwId"].as_str().unwrap();
        let d = app.ok("DescribeVpnGw", &[("vpnGwId", id)]).await;
        assert_eq!(d["totalCount"], 1);
        let d = &d["data"][0];
        assert_eq!(d["unVpnGwId"], id);
        assert_eq!(d["bandwidth"], bandwidth, "{p:?}: {d}");
        assert_eq!(d["chargeType"], charge, "{p:?}: {d}");
        assert_eq!(d["period"], period, "{p:?}: {d}");
    }
    let v = app
        .call(
            "RunVpnGw",
            &[("vpcId", &vpc), ("name", "gw-x"), ("period", "121")],
        )
        .await;
    assert_refused(&v, (4000, "InvalidParameter"), "period");
    app.shutdown().await;
}

#[tokio::test]
async fn connection_lifecycle_and_state_machine() {
    let app = spawn_app().await;
    let f = app.fixture("life").await;
    let v = app
        .add_conn(&f, &f.user_gw_id, &[("vpnConnName", "c1")])
        .await;
    let task = v["data"]["taskId"].as_i64().unwrap();
    // Creating: visible with status 0; a mutation now is refused.
    let c = app.ok("DescribeVpnConn", &[("vpnConnName", "c1")]).await["data"][0].clone();
    assert_eq!(c["vpcConnStatus"], 0);
    let conn = c["unVpnConnId"].as_str().unwrap().to_owned();
    let ids = [
        ("vpcId", f.vpc_id.as_str()),
        ("vpnGwId", f.gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];
    let busy = app.call("DeleteVpnConn", &ids).await;
    assert_eq!(code(&busy), (5100, "InvalidVpnConnState"));
    assert!(busy["message"].as_str().unwrap().starts_with("vpnConnId:"));
    app.run_tasks().await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 6);
    assert_eq!(conn_id_of(&app, task).await, conn);

    // Modify: 2 -> 6, settings echoed, omitted fields kept.
    let mut p = ids.to_vec();
    p.push(("IKESet.dhGroupName", "group14"));
    p.push(("vpnConnName", "c1-renamed"));
    let m = app.ok("ModifyVpnConnEx", &p).await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 2);
    assert_eq!(
        code(&app.call("ResetVpnConnSA", &ids).await),
        (5100, "InvalidVpnConnState")
    );
    app.run_tasks().await;
    let c = app.conn(&conn).await;
    assert_eq!(
        (c["vpcConnStatus"].as_i64(), c["vpnConnName"].as_str()),
        (Some(6), Some("c1-renamed"))
    );
    assert_eq!(c["IKEArr"]["dhGroupName"], "group14");
    assert_eq!(c["IKEArr"]["propoEncryAlgorithm"], "3des-cbc");
    assert_eq!(c["destinationCidr"], json!(["192.168.10.0/24"]));
    let t = app
        .ok(
            "DescribeVpcTaskResult",
            &[("taskId", &m["data"]["taskId"].to_string())],
        )
        .await;
    assert_eq!(
        (t["data"]["status"].as_i64(), t["data"]["action"].as_str()),
        (Some(0), Some("modify"))
    );
    assert_eq!(
        app.driver
            .tunnel(&conn.parse().unwrap())
            .unwrap()
            .settings
            .ike
            .dh_group
            .as_str(),
        "group14"
    );

    // Modify failing in the data plane: 2 -> 3, the task says why.
    app.driver
        .fail_next(DriverError::Rejected("proposal refused".into()));
    let mut p = ids.to_vec();
    p.push(("IPsecSet.pfsDhGroup", "dh-group5"));
    let m = app.ok("ModifyVpnConnEx", &p).await;
    app.run_tasks().await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 3);
    let t = app
        .ok(
            "DescribeVpcTaskResult",
            &[("taskId", &m["data"]["taskId"].to_string())],
        )
        .await;
    assert_eq!(t["data"]["status"], 1);
    assert_eq!(t["data"]["output"]["errorCode"], "DataPlaneRejected");
    assert!(t["data"]["output"]["errorMsg"]
        .as_str()
        .unwrap()
        .contains("proposal refused"));

    // Retrying the modify from 3 works.
    app.ok("ModifyVpnConnEx", &p).await;
    app.run_tasks().await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 6);

    // Reset keeps 6.
    let r = app.ok("ResetVpnConnSA", &ids).await;
    app.run_tasks().await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 6);
    let t = app
        .ok(
            "DescribeVpcTaskResult",
            &[("taskId", &r["data"]["taskId"].to_string())],
        )
        .await;
    assert_eq!(t["data"]["action"], "reset");

    // Delete failing: 4 -> 5; retried: removed.
    app.driver
        .fail_next(DriverError::Unreachable("socket gone".into()));
    app.ok("DeleteVpnConn", &ids).await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 4);
    app.run_tasks().await;
    assert_eq!(app.conn(&conn).await["vpcConnStatus"], 5);
    let d = app.ok("DeleteVpnConn", &ids).await;
    app.run_tasks().await;
    assert_eq!(
        app.ok("DescribeVpnConn", &[("vpnConnId", &conn)]).await["totalCount"],
        0
    );
    assert!(app.driver.tunnel(&conn.parse().unwrap()).is_none());
    let t = app
        .ok(
            "DescribeVpcTaskResult",
            &[("taskId", &d["data"]["taskId"].to_string())],
        )
        .await;
    assert_eq!(t["data"]["status"], 0);

    // Create failing: 0 -> 1, with the reason; then it can be deleted.
    app.driver
        .fail_next(DriverError::Unreachable("charon down".into()));
    let v = app
        .add_conn(&f, &f.user_gw_id, &[("vpnConnName", "c2")])
        .await;
    app.run_tasks().await;
    let t = app
        .ok(
            "DescribeVpcTaskResult",
            &[("taskId", &v["data"]["taskId"].to_string())],
        )
        .await;
    assert_eq!(t["data"]["status"], 1);
    assert_eq!(t["data"]["output"]["errorCode"], "GatewayNodeUnreachable");
    let c = app.ok("DescribeVpnConn", &[("vpnConnName", "c2")]).await["data"][0].clone();
    assert_eq!(c["vpcConnStatus"], 1);
    app.ok(
        "DeleteVpnConn",
        &[
            ("vpcId", &f.vpc_id),
            ("vpnGwId", &f.gw_id),
            ("vpnConnId", c["unVpnConnId"].as_str().unwrap()),
        ],
    )
    .await;
    app.run_tasks().await;
    assert_eq!(app.ok("DescribeVpnConn", &[]).await["totalCount"], 0);
    app.shutdown().await;
}

/// ModifyVpnConnEx changes what it names; every omitted field keeps its
/// *current* value, here chosen unlike every default, in the answer and on
/// the data plane.
#[tokio::test]
async fn modify_keeps_omitted_fields_at_their_current_values() {
    use vpcd_types::{DhGroup, PfsGroup, Secret};
    let app = spawn_app().await;
    let f = app.fixture("keep").await;
    let v = app
        .add_conn(
            &f,
            &f.user_gw_id,
            &[
                ("vpnConnName", "keep"),
                ("preSharedKey", "first-key"),
                (
                    "spdAcl",
                    r#"{"10.0.1.0/24":["192.168.20.0/24","192.168.21.0/24"]}"#,
                ),
                ("IKESet.propoEncryAlgorithm", "aes-cbc-192"),
                ("IKESet.propoAuthenAlgorithm", "sha"),
                ("IKESet.exchangeMode", "aggressive"),
                ("IKESet.localIdentity", "fqdn"),
                ("IKESet.localFqdnName", "vpn.cloud.example"),
                ("IKESet.remoteAddress", "198.51.100.99"),
                ("IKESet.dhGroupName", "group5"),
                ("IKESet.ikeSaLifetimeSeconds", "7200"),
                ("IPsecSet.encryptAlgorithm", "aes-cbc-128"),
                ("IPsecSet.integrityAlgorith", "sha"),
                ("IPsecSet.ipsecSaLifetimeSeconds", "1800"),
                ("IPsecSet.ipsecSaLifetimeTraffic", "4096"),
                ("IPsecSet.pfsDhGroup", "dh-group14"),
            ],
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    app.run_tasks().await;
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let id = conn.parse().unwrap();
    let first = app.conn(&conn).await;
    assert_eq!(
        first["IKEArr"],
        json!({
            "propoEncryAlgorithm": "aes-cbc-192", "propoAuthenAlgorithm": "sha",
            "exchangeMode": "aggressive", "localIdentity": "fqdn", "localAddress": "",
            "localFqdnName": "vpn.cloud.example", "remoteIdentity": "address",
            "remoteAddress": "198.51.100.99", "remoteFqdnName": "", "dhGroupName": "group5",
            "ikeSaLifetimeSeconds": "7200",
        })
    );
    let first_spec = app.driver.tunnel(&id).unwrap();
    let ids = [
        ("vpcId", f.vpc_id.as_str()),
        ("vpnGwId", f.gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];
    for (key, value, at) in [
        ("vpnConnName", "kept", &["vpnConnName"][..]),
        (
            "IKESet.dhGroupName",
            "group24",
            &["IKEArr", "dhGroupName"][..],
        ),
        (
            "IPsecSet.pfsDhGroup",
            "dh-group5",
            &["IPSECArr", "pfsDhGroup"][..],
        ),
        ("preSharedKey", "second-key", &["preSharedKey"][..]),
    ] {
        let before = app.conn(&conn).await;
        let mut p = ids.to_vec();
        p.push((key, value));
        app.ok("ModifyVpnConnEx", &p).await;
        assert_eq!(app.run_tasks().await, 1);
        let mut want = before.clone();
        let slot = at.iter().fold(&mut want, |v, k| &mut v[*k]);
        *slot = json!(value);
        assert_eq!(app.conn(&conn).await, want, "after changing {key} only");
    }
    let mut want = first_spec.settings.clone();
    want.ike.dh_group = DhGroup::Group24;
    want.ipsec.pfs = PfsGroup::DhGroup5;
    want.pre_shared_key = Secret::new("second-key");
    assert_eq!(
        app.driver.tunnel(&id).unwrap().settings,
        want,
        "the data plane got the kept settings"
    );
    app.shutdown().await;
}

/// Changing an identity type on ModifyVpnConnEx needs the matching address
/// or FQDN, unless the current one already fits; the other kind's value
/// is refused.
#[tokio::test]
async fn modify_identity_type_needs_its_value_unless_the_current_one_fits() {
    let app = spawn_app().await;
    let f = app.fixture("ident").await;
    let v = app
        .add_conn(&f, &f.user_gw_id, &[("vpnConnName", "ident")])
        .await;
    app.run_tasks().await;
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let ids = [
        ("vpcId", f.vpc_id.as_str()),
        ("vpnGwId", f.gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];
    let modify = |extra: &'static [(&'static str, &'static str)]| {
        let mut p = ids.to_vec();
        p.extend_from_slice(extra);
        let app = &app;
        async move { app.call("ModifyVpnConnEx", &p).await }
    };
    let ike = |v: &Value, side: &str| {
        let ike = &v["IKEArr"];
        (
            ike[format!("{side}Identity")].as_str().unwrap().to_owned(),
            ike[format!("{side}Address")].as_str().unwrap().to_owned(),
            ike[format!("{side}FqdnName")].as_str().unwrap().to_owned(),
        )
    };
    let is =
        |kind: &str, addr: &str, fqdn: &str| (kind.to_owned(), addr.to_owned(), fqdn.to_owned());

    // address -> fqdn without the name: refused, nothing queued or changed.
    let before = app.conn(&conn).await;
    assert_refused(
        &modify(&[("IKESet.localIdentity", "fqdn")]).await,
        (4000, "InvalidParameter"),
        "IKESet.localFqdnName",
    );
    assert_refused(
        &modify(&[("IKESet.remoteIdentity", "fqdn")]).await,
        (4000, "InvalidParameter"),
        "IKESet.remoteFqdnName",
    );
    assert_eq!(app.run_tasks().await, 0);
    assert_eq!(app.conn(&conn).await, before);

    // With the name: done.
    let v = modify(&[
        ("IKESet.localIdentity", "fqdn"),
        ("IKESet.localFqdnName", "vpn.cloud.example"),
    ])
    .await;
    assert_eq!(v["code"], 0, "{v}");
    app.run_tasks().await;
    let c = app.conn(&conn).await;
    assert_eq!(ike(&c, "local"), is("fqdn", "", "vpn.cloud.example"));

    // The current type fits: a new name alone is enough.
    assert_eq!(
        modify(&[("IKESet.localFqdnName", "vpn2.cloud.example")]).await["code"],
        0
    );
    app.run_tasks().await;
    let c = app.conn(&conn).await;
    assert_eq!(ike(&c, "local"), is("fqdn", "", "vpn2.cloud.example"));

    // An address while the type stays fqdn: refused.
    assert_refused(
        &modify(&[("IKESet.localAddress", "203.0.113.9")]).await,
        (4000, "InvalidParameter"),
        "IKESet.localAddress",
    );
    // fqdn -> address without an address: the VPN gateway's own.
    assert_eq!(
        modify(&[("IKESet.localIdentity", "address")]).await["code"],
        0
    );
    app.run_tasks().await;
    let c = app.conn(&conn).await;
    assert_eq!(ike(&c, "local"), is("address", &f.gw_addr, ""));

    // A non-default address is kept while other fields change, and an FQDN
    // for an address identity is refused.
    assert_eq!(
        modify(&[("IKESet.remoteAddress", "198.51.100.99")]).await["code"],
        0
    );
    app.run_tasks().await;
    assert_eq!(
        modify(&[("IKESet.dhGroupName", "group14")]).await["code"],
        0
    );
    app.run_tasks().await;
    let c = app.conn(&conn).await;
    assert_eq!(ike(&c, "remote"), is("address", "198.51.100.99", ""));
    assert_refused(
        &modify(&[("IKESet.remoteFqdnName", "office.example")]).await,
        (4000, "InvalidParameter"),
        "IKESet.remoteFqdnName",
    );
    assert_eq!(app.run_tasks().await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn names_unique_in_vpc_and_in_use_rules() {
    let app = spawn_app().await;
    let f = app.fixture("use").await;
    let u2 = app.add_user_gw("use", 8).await;
    app.ok(
        "AddVpnConnEx",
        &[
            ("vpcId", &f.vpc_id),
            ("vpnGwId", &f.gw_id),
            ("userGwId", &f.user_gw_id),
            ("vpnConnName", "same"),
            ("preSharedKey", "k"),
            ("userGwCidrBlock.0", "192.168.0.0/24"),
        ],
    )
    .await;
    let v = app
        .call(
            "AddVpnConnEx",
            &[
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("userGwId", &u2),
                ("vpnConnName", "same"),
                ("preSharedKey", "k"),
                ("userGwCidrBlock.0", "192.168.0.0/24"),
            ],
        )
        .await;
    assert_eq!(code(&v), (4000, "InvalidVpnConnName.InUse"));
    assert!(v["message"].as_str().unwrap().starts_with("vpnConnName:"));
    app.run_tasks().await;

    let v = app
        .call(
            "DeleteVpnGw",
            &[("vpcId", &f.vpc_id), ("vpnGwId", &f.gw_id)],
        )
        .await;
    assert_eq!(code(&v), (5100, "InvalidVpnGw.CannotDelete"));
    let v = app
        .call("DeleteUserGw", &[("userGwId", &f.user_gw_id)])
        .await;
    assert_eq!(code(&v), (5100, "InvalidUserGw.CannotDelete"));
    let v = app.call("DeleteVpc", &[("vpcId", &f.vpc_id)]).await;
    assert_eq!(code(&v), (5100, "InvalidVpc.CannotDelete"));
    // A gateway of another VPC is not found through this VPC.
    let other = app
        .ok(
            "CreateVpc",
            &[("vpcName", "other"), ("cidrBlock", "172.16.0.0/16")],
        )
        .await;
    let v = app
        .call(
            "ModifyVpnGw",
            &[
                ("vpcId", other["uniqVpcId"].as_str().unwrap()),
                ("vpnGwId", &f.gw_id),
                ("vpnGwName", "x"),
            ],
        )
        .await;
    assert_eq!(code(&v), (5000, "InvalidVpnGw.NotFound"));
    let v = app
        .call(
            "AddVpnConnEx",
            &[
                ("vpcId", other["uniqVpcId"].as_str().unwrap()),
                ("vpnGwId", &f.gw_id),
                ("userGwId", &u2),
                ("preSharedKey", "k"),
                ("userGwCidrBlock.0", "192.168.0.0/24"),
            ],
        )
        .await;
    assert_eq!(code(&v), (5000, "InvalidVpnGw.NotFound"));

    // Once the tunnel is gone, everything can be deleted in order.
    let c = app.ok("DescribeVpnConn", &[]).await["data"][0]["unVpnConnId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "DeleteVpnConn",
        &[
            ("vpcId", &f.vpc_id),
            ("vpnGwId", &f.gw_id),
            ("vpnConnId", &c),
        ],
    )
    .await;
    app.run_tasks().await;
    app.ok("DeleteUserGw", &[("userGwId", &f.user_gw_id)]).await;
    app.ok(
        "DeleteVpnGw",
        &[("vpcId", &f.vpc_id), ("vpnGwId", &f.gw_id)],
    )
    .await;
    app.ok("DeleteVpc", &[("vpcId", &f.vpc_id)]).await;
    app.shutdown().await;
}

fn limits_with(edit: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits {
        vpcs_per_region: 100,
        vpn_gws_per_vpc: 100,
        user_gws_per_region: 100,
        conns_per_vpn_gw: 100,
        conns_per_user_gw: 100,
        conns_per_region: 100,
        conns_per_pair: 100,
        spd_rules_per_conn: 10,
        cidrs_per_spd_rule: 50,
        pool_addresses_per_account: 100,
    };
    edit(&mut l);
    l
}

/// Add `n` connections from distinct peer gateways (or one, if `same_peer`).
async fn fill(app: &TestApp, f: &Fixture, n: usize, same_peer: bool, tag: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let peer = if same_peer {
            f.user_gw_id.clone()
        } else {
            app.add_user_gw(tag, 20 + i as u8).await
        };
        out.push(
            app.add_conn(f, &peer, &[("vpnConnName", &format!("{tag}{i}"))])
                .await,
        );
    }
    out
}

/// Issue 11, finding 3: one account's gateways hold at most its share of the
/// shared address pool, so another account's RunVpnGw still gets an address.
#[tokio::test]
async fn one_account_cannot_take_the_whole_gateway_address_pool() {
    let app = spawn_with(Options {
        limits: limits_with(|l| l.pool_addresses_per_account = 2),
        ..Default::default()
    })
    .await;
    let f = app.fixture("p").await;
    app.ok(
        "RunVpnGw",
        &[("vpcId", &f.vpc_id), ("name", "second"), ("bandwidth", "5")],
    )
    .await;
    let v = app
        .call(
            "RunVpnGw",
            &[("vpcId", &f.vpc_id), ("name", "third"), ("bandwidth", "5")],
        )
        .await;
    assert_eq!(code(&v), (5100, "VpnGwLimitExceeded"));
    assert_eq!(
        v["message"],
        "vpcId: the account holds its share of the shared public gateway addresses (all regions)"
    );
    let other = app.new_account("other").await;
    let vpc = app
        .call_as(
            &other,
            "CreateVpc",
            &[("vpcName", "v"), ("cidrBlock", "10.0.0.0/16")],
        )
        .await;
    let gw = app
        .call_as(
            &other,
            "RunVpnGw",
            &[
                ("vpcId", vpc["uniqVpcId"].as_str().unwrap()),
                ("name", "g"),
                ("bandwidth", "5"),
            ],
        )
        .await;
    assert_eq!(gw["code"], 0, "{gw}");
    app.shutdown().await;
}

#[tokio::test]
async fn quotas_at_the_limit_and_one_beyond() {
    // Tunnels per VPN gateway.
    let app = spawn_with(Options {
        limits: limits_with(|l| l.conns_per_vpn_gw = 3),
        ..Default::default()
    })
    .await;
    let f = app.fixture("q1").await;
    let r = fill(&app, &f, 4, false, "a").await;
    assert!(r[..3].iter().all(|v| v["code"] == 0));
    assert_eq!(code(&r[3]), (5100, "VpnConnLimitExceeded"));
    app.shutdown().await;

    // Tunnels per peer gateway (over several VPN gateways).
    let app = spawn_with(Options {
        limits: limits_with(|l| l.conns_per_user_gw = 2),
        ..Default::default()
    })
    .await;
    let f = app.fixture("q2").await;
    let mut codes = Vec::new();
    for i in 0..3 {
        let gw = app
            .ok(
                "RunVpnGw",
                &[("vpcId", &f.vpc_id), ("name", &format!("g{i}"))],
            )
            .await;
        let g = Fixture {
            gw_id: gw["data"]["vpnGwId"].as_str().unwrap().to_owned(),
            ..f_clone(&f)
        };
        codes.push(
            app.add_conn(&g, &f.user_gw_id, &[("vpnConnName", &format!("p{i}"))])
                .await,
        );
    }
    assert!(codes[..2].iter().all(|v| v["code"] == 0));
    assert_eq!(code(&codes[2]), (5100, "VpnConnLimitExceeded"));
    app.shutdown().await;

    // Tunnels per region.
    let app = spawn_with(Options {
        limits: limits_with(|l| l.conns_per_region = 2),
        ..Default::default()
    })
    .await;
    let f = app.fixture("q3").await;
    let r = fill(&app, &f, 3, false, "r").await;
    assert!(r[..2].iter().all(|v| v["code"] == 0));
    assert_eq!(code(&r[2]), (5100, "VpnConnLimitExceeded"));
    app.shutdown().await;

    // One tunnel per (peer gateway, VPN gateway) pair (the default).
    let app = spawn_app().await;
    let f = app.fixture("q4").await;
    let r = fill(&app, &f, 2, true, "pair").await;
    assert_eq!(r[0]["code"], 0);
    assert_eq!(code(&r[1]), (5100, "VpnConnLimitExceeded"));
    assert!(r[1]["message"].as_str().unwrap().contains("already has"));

    // VPCs per region (default 5: one exists).
    for i in 1..5 {
        app.ok(
            "CreateVpc",
            &[("vpcName", &format!("v{i}")), ("cidrBlock", "10.0.0.0/16")],
        )
        .await;
    }
    assert_eq!(
        code(
            &app.call(
                "CreateVpc",
                &[("vpcName", "v5"), ("cidrBlock", "10.0.0.0/16")]
            )
            .await
        ),
        (5100, "VpcLimitExceeded")
    );
    // VPN gateways per VPC (default 10: one exists).
    for i in 1..10 {
        app.ok(
            "RunVpnGw",
            &[("vpcId", &f.vpc_id), ("name", &format!("g{i}"))],
        )
        .await;
    }
    assert_eq!(
        code(
            &app.call("RunVpnGw", &[("vpcId", &f.vpc_id), ("name", "g10")])
                .await
        ),
        (5100, "VpnGwLimitExceeded")
    );
    // Peer gateways per region (default 20: one exists).
    for i in 0..19 {
        app.add_user_gw("lim", 100 + i).await;
    }
    let v = app
        .call(
            "AddUserGw",
            &[
                ("userGwName", "one-too-many"),
                ("userGwAddr", "198.51.100.250"),
            ],
        )
        .await;
    assert_eq!(code(&v), (5100, "UserGwLimitExceeded"));
    app.shutdown().await;
}

fn f_clone(f: &Fixture) -> Fixture {
    Fixture {
        vpc_id: f.vpc_id.clone(),
        gw_id: f.gw_id.clone(),
        user_gw_id: f.user_gw_id.clone(),
        gw_addr: f.gw_addr.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_adds_for_the_last_slot() {
    let app = spawn_with(Options {
        limits: limits_with(|l| {
            l.conns_per_vpn_gw = 5;
            l.user_gws_per_region = 100;
        }),
        ..Default::default()
    })
    .await;
    let f = app.fixture("race").await;
    let r = fill(&app, &f, 4, false, "pre").await;
    assert!(r.iter().all(|v| v["code"] == 0));
    let mut peers = Vec::new();
    for i in 0..50 {
        peers.push(app.add_user_gw("race", 100 + i).await);
    }
    let app = std::sync::Arc::new(app);
    let mut handles = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        let app = app.clone();
        let f = f_clone(&f);
        handles.push(tokio::spawn(async move {
            app.add_conn(&f, &peer, &[("vpnConnName", &format!("race{i}"))])
                .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        let v = h.await.unwrap();
        match v["code"].as_i64().unwrap() {
            0 => ok += 1,
            _ => assert_eq!(code(&v), (5100, "VpnConnLimitExceeded"), "{v}"),
        }
    }
    assert_eq!(ok, 1, "exactly one request wins the last slot");
    assert_eq!(
        app.ok("DescribeVpnConn", &[("vpnGwId", &f.gw_id)]).await["totalCount"],
        5
    );
}

#[tokio::test]
async fn paging_filters_and_ordering() {
    let app = spawn_with(Options {
        limits: limits_with(|_| {}),
        ..Default::default()
    })
    .await;
    let f = app.fixture("page").await;
    for name in ["b", "a", "c"] {
        app.ok(
            "AddUserGw",
            &[
                ("userGwName", &format!("peer-{name}")),
                ("userGwAddr", &format!("192.0.2.{}", name.as_bytes()[0])),
            ],
        )
        .await;
    }
    let v = app
        .ok(
            "DescribeUserGw",
            &[
                ("orderField", "userGwName"),
                ("orderDirection", "asc"),
                ("limit", "2"),
                ("offset", "1"),
            ],
        )
        .await;
    assert_eq!(v["totalCount"], 4);
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["userGwName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["peer-b", "peer-c"]);
    let v = app.ok("DescribeUserGw", &[("userGwName", "peer-")]).await;
    assert_eq!(v["totalCount"], 3);
    let v = app.ok("DescribeUserGw", &[("userGwName", "%")]).await;
    assert_eq!(v["totalCount"], 0, "LIKE wildcards in a filter are literal");
    // The numeric and unified ids find the same row.
    let by_uni = app.ok("DescribeVpcEx", &[("vpcId", &f.vpc_id)]).await;
    let num = by_uni["data"][0]["vpcId"].to_string();
    let by_num = app.ok("DescribeVpcEx", &[("vpcId", &num)]).await;
    assert_eq!(by_uni["data"], by_num["data"]);
    app.shutdown().await;
}

#[tokio::test]
async fn peer_device_configuration() {
    let app = spawn_app().await;
    let f = app.fixture("cfg").await;
    let hostile = r#"k"e}y{#x;$'\"#;
    let v = app
        .add_conn(
            &f,
            &f.user_gw_id,
            &[
                ("preSharedKey", hostile),
                ("vpnConnName", "n\"}{#"),
                // Every vendor can do group 14 (see the capability test).
                ("IKESet.dhGroupName", "group14"),
            ],
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    app.run_tasks().await;
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let vendors = app.ok("DescribeUserGwVendor", &[]).await;
    let list = vendors["data"].as_array().unwrap();
    assert!(list.len() >= 4, "{vendors}");
    for vd in list {
        let name = vd["vendorname"].as_str().unwrap();
        let v = app
            .call(
                "GetVpnConnConfig",
                &[
                    ("vpnConnId", &conn),
                    ("vendorname", name),
                    ("platform", vd["platform"].as_str().unwrap()),
                    ("software", vd["software"].as_str().unwrap()),
                ],
            )
            .await;
        // strongSwan, Libreswan and Junos get the key encoded, so any valid
        // key works; Cisco IOS gets it as is and refuses one it would
        // misread (this one has `"` and `\`).
        let refused = match name {
            "strongSwan" | "Libreswan" | "Juniper" => false,
            "Cisco" => true,
            other => panic!("a vendor this test does not know: {other}"),
        };
        if !refused {
            assert_eq!(v["code"], 0, "{name} encodes any valid PSK: {v}");
            let text = v["data"]["configFileInfo"].as_str().unwrap();
            assert!(!text.is_empty());
            assert!(
                !text.contains(hostile),
                "{name}: the PSK is written raw: {text}"
            );
            assert!(
                !text.contains("n\"}{#"),
                "{name}: the connection name leaked into the file"
            );
            assert!(
                text.contains(&f.gw_addr),
                "{name}: the file names the VPN gateway's address"
            );
        } else {
            // A device that cannot carry this PSK safely refuses it.
            assert_eq!(code(&v), (4000, "InvalidParameter"), "{name}: {v}");
            assert!(
                v["message"].as_str().unwrap().starts_with("preSharedKey:"),
                "{v}"
            );
            assert!(!v.to_string().contains(hostile));
        }
    }
    let v = app
        .call(
            "GetVpnConnConfig",
            &[("vpnConnId", &conn), ("vendorname", "Netgear")],
        )
        .await;
    assert_eq!(code(&v), (4000, "InvalidVendor"));
    assert!(v["message"].as_str().unwrap().starts_with("vendorname:"));
    let v = app
        .call(
            "GetVpnConnConfig",
            &[
                ("vpnConnId", &conn),
                ("vendorname", "Cisco"),
                ("interfaceName", "Gi0/0\nexit"),
            ],
        )
        .await;
    assert_eq!(v["code"], 4000, "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("interfaceName:"));
    let v = app
        .call(
            "GetVpnConnConfig",
            &[("vpnConnId", "vpnx-zzzzzzzz"), ("vendorname", "strongSwan")],
        )
        .await;
    assert_eq!(code(&v), (5000, "InvalidVpnConn.NotFound"));
    let other = app.new_account("eve").await;
    let v = app
        .call_as(
            &other,
            "GetVpnConnConfig",
            &[("vpnConnId", &conn), ("vendorname", "strongSwan")],
        )
        .await;
    assert_eq!(
        code(&v),
        (5000, "InvalidVpnConn.NotFound"),
        "another account's connection is not found"
    );
    app.shutdown().await;
}

/// A connection with a setting the device cannot negotiate gets no file: a
/// 4000 naming the setting and what to change; after the change, the file.
#[tokio::test]
async fn peer_configuration_follows_the_capability_table() {
    let app = spawn_app().await;
    let f = app.fixture("cap").await;
    let v = app.add_conn(&f, &f.user_gw_id, &[]).await;
    app.run_tasks().await;
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let get = |vendor: &'static str| {
        let conn = conn.clone();
        let app = &app;
        async move {
            app.call(
                "GetVpnConnConfig",
                &[("vpnConnId", &conn), ("vendorname", vendor)],
            )
            .await
        }
    };
    // The v2 defaults (group2) suit every vendor but Libreswan.
    for vendor in ["strongSwan", "Cisco", "Juniper"] {
        assert_eq!(get(vendor).await["code"], 0, "{vendor}");
    }
    let v = get("Libreswan").await;
    assert_eq!(code(&v), (4000, "InvalidParameter"), "{v}");
    assert_eq!(
        v["message"],
        "IKESet.dhGroupName: Libreswan 4 and later do not support DH group 2: \
         modify the connection to DH group 14"
    );
    let m = app
        .ok(
            "ModifyVpnConnEx",
            &[
                ("vpcId", &f.vpc_id),
                ("vpnGwId", &f.gw_id),
                ("vpnConnId", &conn),
                ("IKESet.dhGroupName", "group14"),
                ("IPsecSet.encryptAlgorithm", "des-cbc"),
            ],
        )
        .await;
    app.run_tasks().await;
    assert_eq!(m["code"], 0, "{m}");
    let v = get("Libreswan").await;
    assert_eq!(code(&v), (4000, "InvalidParameter"), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("IPsecSet.encryptAlgorithm: Libreswan 4 and later do not support DES"),
        "{v}"
    );
    app.ok(
        "ModifyVpnConnEx",
        &[
            ("vpcId", &f.vpc_id),
            ("vpnGwId", &f.gw_id),
            ("vpnConnId", &conn),
            ("IPsecSet.encryptAlgorithm", "aes-cbc-128"),
        ],
    )
    .await;
    app.run_tasks().await;
    let v = get("Libreswan").await;
    assert_eq!(v["code"], 0, "{v}");
    let text = v["data"]["configFileInfo"].as_str().unwrap();
    assert!(text.contains("\tike=3des-md5;modp2048\n"), "{text}");
    assert!(text.contains("\tesp=aes128-md5\n"), "{text}");
    app.shutdown().await;
}

/// Random garbage for every parameter of every action: always HTTP 200, a
/// documented code, never 6000 (an internal error) and never a panic.
#[tokio::test]
async fn random_input_never_breaks_the_server() {
    use rand::{Rng, SeedableRng};
    let app = spawn_app().await;
    let f = app.fixture("fuzz").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let keys = [
        "vpcId",
        "vpnGwId",
        "userGwId",
        "vpnConnId",
        "vpcName",
        "cidrBlock",
        "name",
        "bandwidth",
        "userGwName",
        "userGwAddr",
        "vpnConnName",
        "preSharedKey",
        "userGwCidrBlock.0",
        "userGwCidrBlock.1",
        "spdAcl",
        "IKESet.propoEncryAlgorithm",
        "IKESet.localIdentity",
        "IKESet.localFqdnName",
        "IKESet.ikeSaLifetimeSeconds",
        "ikeSet.0.dhGroupName",
        "IPsecSet.ipsecSaLifetimeTraffic",
        "IPsecSet.pfsDhGroup",
        "offset",
        "limit",
        "orderField",
        "orderDirection",
        "taskId",
        "vendorname",
        "interfaceName",
        "subnetSet.0.cidrBlock",
    ];
    let values = [
        String::new(),
        "0".into(),
        "-1".into(),
        "99999999999999999999".into(),
        "1".into(),
        f.vpc_id.clone(),
        f.gw_id.clone(),
        f.user_gw_id.clone(),
        "10.0.0.0/16".into(),
        "192.168.0.0/24".into(),
        "{}".into(),
        "{\"10.0.0.0/24\":[\"1.2.3.4/32\"]}".into(),
        "[1,2]".into(),
        "fqdn".into(),
        "address".into(),
        "é\u{0}\u{202e}".into(),
        "x".repeat(300),
        "%".into(),
        "\"}{#\n".into(),
        "aes-cbc-256".into(),
        "null".into(),
        "strongSwan".into(),
    ];
    let mut actions: Vec<&str> = vpcd::v2::Action::ALL.iter().map(|a| a.name()).collect();
    actions.push("NoSuchAction");
    for i in 0..1500 {
        let action = actions[rng.gen_range(0..actions.len())];
        let n = rng.gen_range(0..6);
        let mut params: Vec<(String, String)> = Vec::new();
        for _ in 0..n {
            let k = keys[rng.gen_range(0..keys.len())];
            if params.iter().any(|(p, _)| p == k) {
                continue;
            }
            params.push((k.to_owned(), values[rng.gen_range(0..values.len())].clone()));
        }
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = app.call(action, &refs).await;
        let c = v["code"].as_i64().unwrap();
        assert!(
            [0, 4000, 5000, 5100].contains(&c),
            "#{i} {action} {params:?}: {v}"
        );
        if c != 0 {
            assert!(!v["message"].as_str().unwrap().is_empty());
        }
        if i % 100 == 0 {
            app.run_tasks().await;
        }
    }
    // Other methods and paths do not produce a 5xx either.
    let resp = app
        .http
        .put(format!("{}/v2/index.php", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .get(format!("{}/nope", app.base))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    app.shutdown().await;
}

/// Issue 11, finding 5: a signature binds the parameter boundaries. A signed
/// ModifyVpnConnEx {preSharedKey=X, userGwCidrBlock.0=Y} resent as the one
/// parameter `preSharedKey=X&userGwCidrBlock.0=Y` (same string to sign, same
/// Signature) is refused before verifying, as is a client's own merged value
/// and a value that is not UTF-8 after percent-decoding. A plain `&` stays allowed.
#[tokio::test]
async fn signature_input_is_canonical() {
    let app = spawn_app().await;
    let f = app.fixture("canon").await;
    let v = app.add_conn(&f, &f.user_gw_id, &[]).await;
    app.run_tasks().await;
    let conn = conn_id_of(&app, v["data"]["taskId"].as_i64().unwrap()).await;
    let creds = app.account.clone();
    let ids = [
        ("vpcId", f.vpc_id.as_str()),
        ("vpnGwId", f.gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];

    // Signed split, resent merged.
    let mut split = kv(&ids);
    split.extend(kv(&[
        ("preSharedKey", "X"),
        ("userGwCidrBlock.0", "192.168.77.0/24"),
    ]));
    let signed = app.sign(&creds, "GET", "ModifyVpnConnEx", &split);
    let merged: Vec<(String, String)> = signed
        .iter()
        .filter(|(k, _)| k != "userGwCidrBlock.0")
        .map(|(k, v)| match k.as_str() {
            "preSharedKey" => (k.clone(), "X&userGwCidrBlock.0=192.168.77.0/24".to_owned()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let r = app.send_get(&merged).await;
    assert_eq!(code(&r), (4000, "InvalidParameter"), "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("preSharedKey:"),
        "{r}"
    );

    // Signed merged (the client's own request is refused too), resent split.
    let mut one = kv(&ids);
    one.push((
        "preSharedKey".into(),
        "X&userGwCidrBlock.0=192.168.78.0/24".into(),
    ));
    let signed = app.sign(&creds, "GET", "ModifyVpnConnEx", &one);
    let r = app.send_get(&signed).await;
    assert_eq!(code(&r), (4000, "InvalidParameter"), "{r}");
    // Resent split, it would verify: the residual that vpcd_auth::form
    // documents (only values a client itself signs with `&name=` in them,
    // and such a client's own request is refused, as just checked).

    // `%FF` is refused, not decoded to U+FFFD, even when signed as U+FFFD.
    let signed = app.sign(
        &creds,
        "GET",
        "DescribeVpcEx",
        &kv(&[("vpcName", "\u{FFFD}")]),
    );
    let query: String = vpcd_auth::encode_form(&signed).replace("vpcName=%EF%BF%BD", "vpcName=%FF");
    assert!(query.contains("vpcName=%FF"));
    let resp = reqwest::get(format!("{}/v2/index.php?{query}", app.base))
        .await
        .unwrap();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(code(&r), (4000, "InvalidParameter"), "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("vpcName:"),
        "{r}"
    );

    // A plain '&' in a value (the seed allows any name) is accepted.
    let ok = app
        .call(
            "ModifyVpnConnEx",
            &[ids[0], ids[1], ids[2], ("vpnConnName", "R&D")],
        )
        .await;
    assert_eq!(ok["code"], 0, "{ok}");
}

/// Issue 11: finished tasks are pruned after their retention period; a
/// pruned task is answered as an unknown one, by DescribeVpcTaskResult in
/// both protocols (v2 by number, 3.0 by RequestId and by number).
#[tokio::test]
async fn a_pruned_task_is_not_found_in_either_protocol() {
    let app = spawn_app().await;
    let f = app.fixture("prune").await;
    let v = app.add_conn(&f, &f.user_gw_id, &[]).await;
    let task = v["data"]["taskId"].as_i64().unwrap().to_string();
    let created = app
        .call3(
            "CreateVpnConnection",
            json!({
                "VpcId": f.vpc_id,
                "VpnGatewayId": f.gw_id,
                "CustomerGatewayId": app.add_user_gw("prune3", 77).await,
                "VpnConnectionName": "c3",
                "PreShareKey": "k3",
                "SecurityPolicyDatabases": [
                    {"LocalCidrBlock": "10.0.0.0/16", "RemoteCidrBlock": ["10.77.0.0/24"]}
                ]
            }),
        )
        .await;
    let request_id = created["Response"]["RequestId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created["Response"]["Error"].is_null(), "{created}");
    assert_eq!(app.run_tasks().await, 2);
    let t = app.ok("DescribeVpcTaskResult", &[("taskId", &task)]).await;
    assert_eq!(t["data"]["status"], 0);
    for id in [&request_id, &task] {
        let t = app
            .call3("DescribeVpcTaskResult", json!({ "TaskId": id }))
            .await;
        assert_eq!(t["Response"]["Status"], "SUCCESS", "{t}");
    }

    assert_eq!(app.store().prune_tasks(i64::MAX, 100).await.unwrap(), 2);
    let gone = app
        .call("DescribeVpcTaskResult", &[("taskId", &task)])
        .await;
    assert_eq!(code(&gone), (5000, "InvalidTask.NotFound"), "{gone}");
    for id in [&request_id, &task] {
        let gone = app
            .call3("DescribeVpcTaskResult", json!({ "TaskId": id }))
            .await;
        assert_eq!(
            gone["Response"]["Error"]["Code"], "ResourceNotFound",
            "{gone}"
        );
        assert!(gone["Response"]["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("TaskId"));
    }
}

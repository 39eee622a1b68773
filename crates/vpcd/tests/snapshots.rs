//! Pins the JSON answer of every action (success and a typical error), so
//! the contract cannot drift silently. Unified ids and times are masked.

mod common;

use common::*;
use serde_json::Value;

/// Mask what differs between runs: random unified ids, default names,
/// timestamps.
fn normalize(v: &mut Value) {
    match v {
        Value::String(s) => *s = mask_ids(s),
        Value::Array(a) => a.iter_mut().for_each(normalize),
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k == "createTime" {
                    *val = Value::String("<time>".into());
                } else {
                    normalize(val);
                }
            }
        }
        _ => {}
    }
}

/// Replace every unified id (also inside longer text, like a generated
/// configuration file) by its prefix and stars.
fn mask_ids(s: &str) -> String {
    let mut out = s.to_owned();
    for prefix in ["vpc-", "vpngw-", "cgw-", "vpnx-", "vpnconn-"] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(prefix) {
            let start = from + pos + prefix.len();
            let tail = &out.as_bytes()[start..];
            let is_id = tail.len() >= 8
                && tail[..8]
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && tail.get(8).is_none_or(|b| !b.is_ascii_alphanumeric());
            if is_id {
                out.replace_range(start..start + 8, "********");
            }
            from = start;
        }
    }
    out
}

fn snap(name: &str, mut v: Value) {
    normalize(&mut v);
    insta::assert_json_snapshot!(name, v);
}

#[tokio::test]
async fn every_action_answer_is_pinned() {
    let app = spawn_app().await;
    let vpc = app
        .ok(
            "CreateVpc",
            &[("vpcName", "snap"), ("cidrBlock", "10.0.0.0/16")],
        )
        .await;
    snap("CreateVpc", vpc.clone());
    let vpc_id = vpc["uniqVpcId"].as_str().unwrap().to_owned();
    snap(
        "CreateVpc.error",
        app.call(
            "CreateVpc",
            &[("vpcName", "snap"), ("cidrBlock", "10.0.0.0/8")],
        )
        .await,
    );
    snap("DescribeVpcEx", app.ok("DescribeVpcEx", &[]).await);
    let gw = app
        .ok(
            "RunVpnGw",
            &[("vpcId", &vpc_id), ("name", "gw"), ("bandwidth", "10")],
        )
        .await;
    snap("RunVpnGw", gw.clone());
    let gw_id = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
    snap(
        "RunVpnGw.error",
        app.call("RunVpnGw", &[("vpcId", "vpc-00000000"), ("name", "gw")])
            .await,
    );
    snap("DescribeVpnGw", app.ok("DescribeVpnGw", &[]).await);
    snap(
        "ModifyVpnGw",
        app.ok(
            "ModifyVpnGw",
            &[
                ("vpcId", &vpc_id),
                ("vpnGwId", &gw_id),
                ("vpnGwName", "gw2"),
            ],
        )
        .await,
    );
    let u = app
        .ok(
            "AddUserGw",
            &[("userGwName", "peer"), ("userGwAddr", "198.51.100.7")],
        )
        .await;
    snap("AddUserGw", u.clone());
    let u_id = u["userGwId"].as_str().unwrap().to_owned();
    snap(
        "AddUserGw.error",
        app.call(
            "AddUserGw",
            &[("userGwName", "peer2"), ("userGwAddr", "127.0.0.1")],
        )
        .await,
    );
    snap("DescribeUserGw", app.ok("DescribeUserGw", &[]).await);
    snap(
        "ModifyUserGw",
        app.ok(
            "ModifyUserGw",
            &[("userGwId", &u_id), ("userGwName", "peer-renamed")],
        )
        .await,
    );
    let add = app
        .ok(
            "AddVpnConnEx",
            &[
                ("vpcId", &vpc_id),
                ("vpnGwId", &gw_id),
                ("userGwId", &u_id),
                ("vpnConnName", "conn"),
                ("preSharedKey", "dgdgd33"),
                ("spdAcl", r#"{"10.0.0.5/24":["172.123.10.5/16"]}"#),
                ("IKESet.propoEncryAlgorithm", "aes-cbc-256"),
                ("IPsecSet.pfsDhGroup", "dh-group14"),
            ],
        )
        .await;
    snap("AddVpnConnEx", add.clone());
    snap(
        "AddVpnConnEx.error",
        app.call(
            "AddVpnConnEx",
            &[
                ("vpcId", &vpc_id),
                ("vpnGwId", &gw_id),
                ("userGwId", &u_id),
                ("preSharedKey", "k"),
                ("userGwCidrBlock.0", "192.168.0.0/24"),
            ],
        )
        .await,
    );
    let task = add["data"]["taskId"].to_string();
    snap(
        "DescribeVpcTaskResult.running",
        app.ok("DescribeVpcTaskResult", &[("taskId", &task)]).await,
    );
    app.run_tasks().await;
    snap(
        "DescribeVpcTaskResult.success",
        app.ok("DescribeVpcTaskResult", &[("taskId", &task)]).await,
    );
    snap("DescribeVpnConn", app.ok("DescribeVpnConn", &[]).await);
    let conn = conn_id_of(&app, add["data"]["taskId"].as_i64().unwrap()).await;
    snap(
        "DescribeUserGwVendor",
        app.ok("DescribeUserGwVendor", &[]).await,
    );
    // The connection has the v2 defaults: Libreswan's answer is the
    // capability table's refusal of DH group 2.
    for vendor in ["strongSwan", "Libreswan", "Cisco", "Juniper"] {
        snap(
            &format!("GetVpnConnConfig.{vendor}"),
            app.call(
                "GetVpnConnConfig",
                &[("vpnConnId", &conn), ("vendorname", vendor)],
            )
            .await,
        );
    }
    snap(
        "GetVpnConnConfig.error",
        app.call(
            "GetVpnConnConfig",
            &[("vpnConnId", &conn), ("vendorname", "Acme")],
        )
        .await,
    );
    let ids = [
        ("vpcId", vpc_id.as_str()),
        ("vpnGwId", gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];
    let mut m = ids.to_vec();
    m.push(("IKESet.exchangeMode", "aggressive"));
    snap("ModifyVpnConnEx", app.ok("ModifyVpnConnEx", &m).await);
    snap(
        "ModifyVpnConnEx.error",
        app.call("ModifyVpnConnEx", &m).await,
    );
    app.run_tasks().await;
    snap("ResetVpnConnSA", app.ok("ResetVpnConnSA", &ids).await);
    app.run_tasks().await;
    snap(
        "DeleteVpnGw.error",
        app.call("DeleteVpnGw", &[("vpcId", &vpc_id), ("vpnGwId", &gw_id)])
            .await,
    );
    app.driver
        .fail_next(vpcd_dataplane::DriverError::Unreachable(
            "connection refused".into(),
        ));
    let del = app.ok("DeleteVpnConn", &ids).await;
    snap("DeleteVpnConn", del.clone());
    app.run_tasks().await;
    snap(
        "DescribeVpcTaskResult.failed",
        app.ok(
            "DescribeVpcTaskResult",
            &[("taskId", &del["data"]["taskId"].to_string())],
        )
        .await,
    );
    app.ok("DeleteVpnConn", &ids).await;
    app.run_tasks().await;
    snap(
        "DeleteUserGw",
        app.ok("DeleteUserGw", &[("userGwId", &u_id)]).await,
    );
    snap(
        "DeleteVpc.error",
        app.call("DeleteVpc", &[("vpcId", &vpc_id)]).await,
    );
    snap(
        "DeleteVpnGw",
        app.ok("DeleteVpnGw", &[("vpcId", &vpc_id), ("vpnGwId", &gw_id)])
            .await,
    );
    snap(
        "DeleteVpc",
        app.ok("DeleteVpc", &[("vpcId", &vpc_id)]).await,
    );
    snap("UnknownAction.error", app.call("AddVpnConn", &[]).await);
    app.shutdown().await;
}

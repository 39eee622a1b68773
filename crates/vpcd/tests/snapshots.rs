//! Pins the JSON answer of every action (success and a typical error), so
//! the contract cannot drift silently. Unified ids show as labels of the
//! resources they name (so the right id must be echoed); times are masked.

mod common;

use common::*;
use serde_json::Value;

/// Makes answers comparable between runs: each unified id the test made
/// becomes a stable label naming that resource (`vpc-<snap>`), so a
/// snapshot shows *which* id an answer echoes; times become `<time>`.
/// An id the test did not register (another resource's, or a random one)
/// fails the test.
#[derive(Default)]
struct Ids {
    labels: Vec<(String, String)>,
}

const PREFIXES: [&str; 4] = ["vpc-", "vpngw-", "cgw-", "vpnx-"];

impl Ids {
    /// `id` (e.g. `vpc-k3j5m2n8`) shows as `<prefix><label>`.
    fn name(&mut self, id: &str, label: &str) {
        let prefix = PREFIXES
            .iter()
            .find(|p| id.starts_with(*p))
            .unwrap_or_else(|| panic!("not a unified id: {id}"));
        self.labels
            .push((id.to_owned(), format!("{prefix}<{label}>")));
    }

    fn normalize(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.mask(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.normalize(v)),
            Value::Object(m) => {
                for (k, val) in m.iter_mut() {
                    if k == "createTime" {
                        *val = Value::String("<time>".into());
                    } else {
                        self.normalize(val);
                    }
                }
            }
            _ => {}
        }
    }

    /// Replace every unified id (also inside longer text, like a generated
    /// configuration file) by its label.
    fn mask(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for prefix in PREFIXES {
            let mut from = 0;
            while let Some(pos) = out[from..].find(prefix) {
                let at = from + pos;
                let start = at + prefix.len();
                let tail = &out.as_bytes()[start..];
                let is_id = tail.len() >= 8
                    && tail[..8]
                        .iter()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && tail.get(8).is_none_or(|b| !b.is_ascii_alphanumeric());
                if !is_id {
                    from = start;
                    continue;
                }
                let id = &out[at..start + 8];
                let label = self
                    .labels
                    .iter()
                    .find(|(known, _)| known == id)
                    .map(|(_, label)| label.clone())
                    .unwrap_or_else(|| panic!("an id the test did not make or send: {id} in {s}"));
                out.replace_range(at..start + 8, &label);
                from = at + label.len();
            }
        }
        out
    }

    fn snap(&self, name: &str, mut v: Value) {
        self.normalize(&mut v);
        insta::assert_json_snapshot!(name, v);
    }
}

#[tokio::test]
async fn every_action_answer_is_pinned() {
    let app = spawn_app().await;
    let mut ids = Ids::default();
    // Sent by the test as an id that does not exist; shown as sent.
    ids.name("vpc-00000000", "00000000");
    let vpc = app
        .ok(
            "CreateVpc",
            &[("vpcName", "snap"), ("cidrBlock", "10.0.0.0/16")],
        )
        .await;
    let vpc_id = vpc["uniqVpcId"].as_str().unwrap().to_owned();
    ids.name(&vpc_id, "snap");
    ids.snap("CreateVpc", vpc.clone());
    ids.snap(
        "CreateVpc.error",
        app.call(
            "CreateVpc",
            &[("vpcName", "snap"), ("cidrBlock", "10.0.0.0/8")],
        )
        .await,
    );
    ids.snap("DescribeVpcEx", app.ok("DescribeVpcEx", &[]).await);
    let gw = app
        .ok(
            "RunVpnGw",
            &[("vpcId", &vpc_id), ("name", "gw"), ("bandwidth", "10")],
        )
        .await;
    let gw_id = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
    ids.name(&gw_id, "gw");
    ids.snap("RunVpnGw", gw.clone());
    ids.snap(
        "RunVpnGw.error",
        app.call("RunVpnGw", &[("vpcId", "vpc-00000000"), ("name", "gw")])
            .await,
    );
    ids.snap("DescribeVpnGw", app.ok("DescribeVpnGw", &[]).await);
    ids.snap(
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
    let u_id = u["userGwId"].as_str().unwrap().to_owned();
    ids.name(&u_id, "peer");
    ids.snap("AddUserGw", u.clone());
    ids.snap(
        "AddUserGw.error",
        app.call(
            "AddUserGw",
            &[("userGwName", "peer2"), ("userGwAddr", "127.0.0.1")],
        )
        .await,
    );
    ids.snap("DescribeUserGw", app.ok("DescribeUserGw", &[]).await);
    ids.snap(
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
    ids.snap("AddVpnConnEx", add.clone());
    ids.snap(
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
    ids.snap(
        "DescribeVpcTaskResult.running",
        app.ok("DescribeVpcTaskResult", &[("taskId", &task)]).await,
    );
    app.run_tasks().await;
    let conn = conn_id_of(&app, add["data"]["taskId"].as_i64().unwrap()).await;
    ids.name(&conn, "conn");
    ids.snap(
        "DescribeVpcTaskResult.success",
        app.ok("DescribeVpcTaskResult", &[("taskId", &task)]).await,
    );
    ids.snap("DescribeVpnConn", app.ok("DescribeVpnConn", &[]).await);
    ids.snap(
        "DescribeUserGwVendor",
        app.ok("DescribeUserGwVendor", &[]).await,
    );
    // The connection has the v2 defaults: Libreswan's answer is the
    // capability table's refusal of DH group 2.
    for vendor in ["strongSwan", "Libreswan", "Cisco", "Juniper"] {
        ids.snap(
            &format!("GetVpnConnConfig.{vendor}"),
            app.call(
                "GetVpnConnConfig",
                &[("vpnConnId", &conn), ("vendorname", vendor)],
            )
            .await,
        );
    }
    ids.snap(
        "GetVpnConnConfig.error",
        app.call(
            "GetVpnConnConfig",
            &[("vpnConnId", &conn), ("vendorname", "Acme")],
        )
        .await,
    );
    let target = [
        ("vpcId", vpc_id.as_str()),
        ("vpnGwId", gw_id.as_str()),
        ("vpnConnId", conn.as_str()),
    ];
    let mut m = target.to_vec();
    m.push(("IKESet.exchangeMode", "aggressive"));
    ids.snap("ModifyVpnConnEx", app.ok("ModifyVpnConnEx", &m).await);
    ids.snap(
        "ModifyVpnConnEx.error",
        app.call("ModifyVpnConnEx", &m).await,
    );
    app.run_tasks().await;
    ids.snap("ResetVpnConnSA", app.ok("ResetVpnConnSA", &target).await);
    app.run_tasks().await;
    ids.snap(
        "DeleteVpnGw.error",
        app.call("DeleteVpnGw", &[("vpcId", &vpc_id), ("vpnGwId", &gw_id)])
            .await,
    );
    app.driver
        .fail_next(vpcd_dataplane::DriverError::Unreachable(
            "connection refused".into(),
        ));
    let del = app.ok("DeleteVpnConn", &target).await;
    ids.snap("DeleteVpnConn", del.clone());
    app.run_tasks().await;
    ids.snap(
        "DescribeVpcTaskResult.failed",
        app.ok(
            "DescribeVpcTaskResult",
            &[("taskId", &del["data"]["taskId"].to_string())],
        )
        .await,
    );
    app.ok("DeleteVpnConn", &target).await;
    app.run_tasks().await;
    ids.snap(
        "DeleteUserGw",
        app.ok("DeleteUserGw", &[("userGwId", &u_id)]).await,
    );
    ids.snap(
        "DeleteVpc.error",
        app.call("DeleteVpc", &[("vpcId", &vpc_id)]).await,
    );
    ids.snap(
        "DeleteVpnGw",
        app.ok("DeleteVpnGw", &[("vpcId", &vpc_id), ("vpnGwId", &gw_id)])
            .await,
    );
    ids.snap(
        "DeleteVpc",
        app.ok("DeleteVpc", &[("vpcId", &vpc_id)]).await,
    );
    ids.snap("UnknownAction.error", app.call("AddVpnConn", &[]).await);
    app.shutdown().await;
}

//! `/metrics` (issue 13, part 2): served on its own listener and nowhere
//! else, read with a Prometheus text-format parser that shares no code with
//! the exporter, and its values follow what the API and the task engine do.

mod common;

use std::time::{Duration, Instant};

use common::scrape::Scraped;
use common::*;
use prometheus_parse::Value as PValue;
use serde_json::{json, Value};
use vpcd_dataplane::DriverError;

fn with_metrics(cfg: &mut vpcd::server::ServeConfig) {
    cfg.metrics = Some("127.0.0.1:0".parse().unwrap());
}

async fn metrics_app() -> TestApp {
    spawn_with(Options {
        configure: with_metrics,
        ..Options::default()
    })
    .await
}

fn metrics_url(app: &TestApp) -> String {
    let addr = app
        .running
        .as_ref()
        .unwrap()
        .bound
        .metrics
        .expect("the metrics listener is bound");
    format!("http://{addr}/metrics")
}

async fn scrape(app: &TestApp) -> Scraped {
    let resp = app.http.get(metrics_url(app)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    Scraped::parse(&ct, resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_follow_requests_tasks_and_tunnels() {
    let app = metrics_app().await;
    let before = scrape(&app).await;
    assert_eq!(before.requests("v2", "CreateVpc", "Success"), 0.0);
    assert_eq!(before.tasks("queued"), 0.0);
    assert_eq!(before.tunnels("creating", "unavailable"), 0.0);
    assert_eq!(
        before.value("vpcd_task_oldest_queued_age_seconds", &[]),
        0.0
    );
    assert_eq!(before.value("vpcd_storage_writable", &[]), 1.0);
    assert_eq!(before.value("vpcd_scrape_store_ok", &[]), 1.0);
    assert_eq!(
        before.value("vpcd_cluster_members", &[("state", "alive")]),
        1.0
    );
    assert_eq!(
        before.value("vpcd_gateway_nodes", &[("driven_by", "nobody")]),
        0.0
    );
    let max_conns: f64 = before
        .samples
        .iter()
        .filter(|s| s.metric == "vpcd_db_pool_max_connections")
        .map(|s| match s.value {
            PValue::Gauge(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(max_conns >= 1.0, "{}", before.text);

    // Requests of both protocols, refused ones included.
    let psk = "Metr1cs-PSK-not-for-labels";
    let f = app.fixture("m").await;
    let add = app
        .add_conn(&f, &f.user_gw_id, &[("preSharedKey", psk)])
        .await;
    assert_eq!(add["code"], 0, "{add}");
    let bad_sig = bad_signature(&app).await;
    assert_eq!(bad_sig["codeDesc"], "AuthFailure", "{bad_sig}");
    let unknown = app.call("NoSuchAction", &[]).await;
    assert_eq!(unknown["codeDesc"], "InvalidAction", "{unknown}");
    let v3 = app.call3("DescribeVpcs", json!({})).await;
    assert!(v3["Response"]["Error"].is_null(), "{v3}");
    let v3_bad = app
        .call3(
            "CreateVpc",
            json!({"VpcName": "x", "CidrBlock": "10.0.0.0/33"}),
        )
        .await;
    let v3_code = v3_bad["Response"]["Error"]["Code"]
        .as_str()
        .unwrap()
        .to_owned();

    let after = scrape(&app).await;
    for action in ["CreateVpc", "RunVpnGw", "AddUserGw", "AddVpnConnEx"] {
        assert_eq!(after.requests("v2", action, "Success"), 1.0, "{action}");
        assert!(
            after.observations(
                "vpcd_request_duration_seconds",
                &[("protocol", "v2"), ("action", action)]
            ) >= 1.0,
            "{action} latency:\n{}",
            after.text
        );
    }
    assert_eq!(after.requests("v2", "DescribeVpcEx", "AuthFailure"), 1.0);
    assert_eq!(after.requests("v2", "unknown", "InvalidAction"), 1.0);
    assert_eq!(after.requests("v3", "DescribeVpcs", "Success"), 1.0);
    assert_eq!(after.requests("v3", "CreateVpc", &v3_code), 1.0);
    // The task waits (no worker runs here), its tunnel is being created.
    assert_eq!(after.tasks("queued"), 1.0);
    assert_eq!(after.tasks("running"), 0.0);
    assert_eq!(after.tunnels("creating", "unavailable"), 1.0);

    // Once the task ran: nothing queued, the tunnel runs.
    assert_eq!(app.run_tasks().await, 1);
    let done = scrape(&app).await;
    assert_eq!(done.tasks("queued"), 0.0);
    assert_eq!(done.value("vpcd_task_oldest_queued_age_seconds", &[]), 0.0);
    assert_eq!(done.tunnels("creating", "unavailable"), 0.0);
    assert_eq!(done.tunnels("running", "unavailable"), 1.0);

    // A task that fails in the data plane is counted as failed.
    let u2 = app.add_user_gw("m", 8).await;
    app.driver
        .fail_next(DriverError::Unreachable("charon down".into()));
    let second = app
        .add_conn(&f, &u2, &[("userGwCidrBlock.0", "192.168.20.0/24")])
        .await;
    assert_eq!(second["code"], 0, "{second}");
    assert_eq!(app.run_tasks().await, 1);
    let failed = scrape(&app).await;
    assert_eq!(failed.tasks("failed"), 1.0);
    assert_eq!(failed.tunnels("create_failed", "unavailable"), 1.0);
    assert_eq!(failed.tunnels("running", "unavailable"), 1.0);
    // Counters only grow.
    assert_eq!(failed.requests("v2", "AddVpnConnEx", "Success"), 2.0);

    // No secret, id or client text anywhere in the exposition; label
    // values are all plain words.
    let conn_task = add["data"]["taskId"].as_i64().unwrap();
    let conn_id = conn_id_of(&app, conn_task).await;
    for s in [&before, &after, &done, &failed] {
        s.assert_documented();
        for secret in [
            app.account.secret_key.as_str(),
            app.account.secret_id.as_str(),
            psk,
            BAD_SIGNATURE,
            "NoSuchAction",
            f.vpc_id.as_str(),
            f.gw_id.as_str(),
            f.user_gw_id.as_str(),
            conn_id.as_str(),
        ] {
            assert!(!s.text.contains(secret), "{secret:?} in:\n{}", s.text);
        }
        for v in s.label_values() {
            assert!(
                !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c)),
                "label value {v:?}"
            );
        }
    }
    app.shutdown().await;
}

const BAD_SIGNATURE: &str = "Zm9v+YmFy/YmF6cXV4d3Jvbmc=";

/// DescribeVpcEx signed, then given another signature.
async fn bad_signature(app: &TestApp) -> Value {
    let mut signed = app.sign(&app.account, "GET", "DescribeVpcEx", &[]);
    for (k, v) in signed.iter_mut() {
        if k == "Signature" {
            *v = BAD_SIGNATURE.to_owned();
        }
    }
    app.send_get(&signed).await
}

#[tokio::test]
async fn metrics_are_not_on_the_api_port_and_the_api_is_not_on_the_metrics_port() {
    let app = metrics_app().await;
    let on_api = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    assert!(!on_api.text().await.unwrap().contains("vpcd_requests"));
    let metrics = metrics_url(&app);
    let base = metrics.trim_end_matches("/metrics");
    for path in ["/v2/index.php", "/", "/healthz"] {
        let r = app.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    app.shutdown().await;

    // Off by default: no listener, nothing in listen.json.
    let plain = spawn_app().await;
    assert_eq!(plain.running.as_ref().unwrap().bound.metrics, None);
    let listen = std::fs::read_to_string(plain.data_dir.join("listen.json")).unwrap();
    assert!(!listen.contains("metrics"), "{listen}");
    plain.shutdown().await;
}

/// A gateway node whose charon does not answer: this vpcd drives it (its
/// lease), reports it unreachable, and its reconciliation as failed.
#[tokio::test]
async fn gateway_node_metrics_show_an_unreachable_charon() {
    fn dead_charon(cfg: &mut vpcd::server::ServeConfig) {
        with_metrics(cfg);
        let socket = cfg.data_dir.with_file_name("no-charon.vici");
        cfg.charon = Some(format!("unix://{}", socket.display()));
        cfg.public_ips = vec!["203.0.113.10".parse().unwrap()];
        cfg.heartbeat_interval = Duration::from_millis(200);
        cfg.reconcile_interval = Duration::from_millis(200);
    }
    let app = spawn_with(Options {
        configure: dead_charon,
        ..Options::default()
    })
    .await;
    let node = [("node", "local")];
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = scrape(&app).await;
        let seen = s
            .samples
            .iter()
            .any(|x| x.metric == "vpcd_gateway_node_last_reconcile_timestamp_seconds");
        if seen
            && s.samples
                .iter()
                .any(|x| x.metric == "vpcd_gateway_node_charon_reachable")
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no gateway node metrics:\n{}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    s.assert_documented();
    assert_eq!(
        s.value("vpcd_gateway_nodes", &[("driven_by", "this_process")]),
        1.0,
        "{}",
        s.text
    );
    assert_eq!(s.value("vpcd_gateway_node_charon_reachable", &node), 0.0);
    assert_eq!(
        s.value("vpcd_gateway_node_last_reconcile_success", &node),
        0.0
    );
    let at = s.value("vpcd_gateway_node_last_reconcile_timestamp_seconds", &node);
    assert!((at - now() as f64).abs() < 60.0, "{at}");
    for change in ["loaded", "unloaded"] {
        assert_eq!(
            s.value(
                "vpcd_gateway_node_last_reconcile_changes",
                &[("node", "local"), ("change", change)]
            ),
            0.0
        );
    }
    app.shutdown().await;
}

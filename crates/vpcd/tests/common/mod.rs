//! Test harness: an in-process vpcd on port 0 with a fresh database, and a
//! signing client.
#![allow(dead_code, unreachable_pub)]

pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vpcd::server::{Running, ServeConfig};
use vpcd_auth::{SignatureMethod, Signer};
use vpcd_dataplane::test_support::RecordingDriver;
use vpcd_store::{Limits, Store};

pub struct TestApp {
    pub running: Option<Running>,
    pub base: String,
    pub host: String,
    pub http: reqwest::Client,
    pub account: Creds,
    /// The driver of gateways on no gateway node: what the data plane was
    /// told, and failures to inject.
    pub driver: Arc<RecordingDriver>,
    /// The data directory (credentials, TLS certificate).
    pub data_dir: std::path::PathBuf,
    /// The app's own PostgreSQL database (dropped after the app), when the
    /// suite runs on PostgreSQL.
    _db: Option<vpcd_store::testing::ScratchDb>,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Creds {
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
}

pub struct Options {
    pub limits: Limits,
    /// Run the background worker; with `false`, tests drain tasks with
    /// `run_tasks()` at a chosen point.
    pub worker: bool,
    pub max_body_bytes: usize,
    /// Off by default: tests send one account's requests back to back.
    pub rate_limit: vpcd::RateLimit,
    /// Any other setting, applied last.
    pub configure: fn(&mut ServeConfig),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            worker: false,
            max_body_bytes: 64 * 1024,
            rate_limit: vpcd::RateLimit {
                per_second: 0.0,
                burst: 1,
            },
            configure: |_| {},
        }
    }
}

/// The database the app runs on: a fresh PostgreSQL database of its own
/// when `VPCD_TEST_PG_URL` names a server, else (`None`) SQLite in the
/// app's data directory. A set but unreachable server is a failure: the
/// caller asked for PostgreSQL.
async fn database_for() -> Option<vpcd_store::testing::ScratchDb> {
    let url = std::env::var(vpcd_store::testing::PG_URL_VAR).ok()?;
    Some(
        vpcd_store::testing::ScratchDb::create(&url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", vpcd_store::testing::PG_URL_VAR)),
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = ServeConfig::new(dir.path().join("data"));
    let db = database_for().await;
    cfg.database = db.as_ref().map(|db| db.url().to_owned());
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    cfg.https = None;
    cfg.settings.limits = opts.limits;
    cfg.settings.max_body_bytes = opts.max_body_bytes;
    cfg.settings.rate_limit = opts.rate_limit;
    (opts.configure)(&mut cfg);
    cfg.workers = if opts.worker { 4 } else { 0 };
    cfg.task_lease_secs = 5;
    let driver = Arc::new(RecordingDriver::new());
    let running = vpcd::server::start_with(cfg.clone(), driver.clone())
        .await
        .expect("server starts");
    let addr = running.bound.http.expect("http bound");
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(cfg.data_dir.join("credentials")).expect("credentials file"),
    )
    .unwrap();
    TestApp {
        running: Some(running),
        base: format!("http://{addr}"),
        host: addr.to_string(),
        // Signed requests go straight to the app, never to a proxy.
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        account: Creds {
            secret_id: creds["secretId"].as_str().unwrap().to_owned(),
            secret_key: creds["secretKey"].as_str().unwrap().to_owned(),
            region: creds["region"].as_str().unwrap().to_owned(),
        },
        driver,
        data_dir: cfg.data_dir.clone(),
        _db: db,
        _dir: dir,
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl TestApp {
    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.running().store()
    }

    /// A second account with its own key.
    pub async fn new_account(&self, name: &str) -> Creds {
        let store = self.store();
        store.create_account(name).await.unwrap();
        let key = store.create_key(name).await.unwrap();
        Creds {
            secret_id: key.secret_id,
            secret_key: key.secret_key.expose().to_owned(),
            region: self.account.region.clone(),
        }
    }

    /// Signed parameters for one request (GET, HmacSHA256, fresh nonce).
    pub fn sign(
        &self,
        creds: &Creds,
        method: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Vec<(String, String)> {
        self.sign_for(&self.host, creds, method, action, params)
    }

    /// [`TestApp::sign`] for another host (the HTTPS listener's).
    pub fn sign_for(
        &self,
        host: &str,
        creds: &Creds,
        method: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Vec<(String, String)> {
        let signer = Signer {
            secret_id: &creds.secret_id,
            secret_key: creds.secret_key.as_bytes(),
            method: SignatureMethod::HmacSha256,
        };
        signer.signed_params(
            method,
            host,
            "/v2/index.php",
            action,
            &creds.region,
            now(),
            rand::random::<u64>() % (i64::MAX as u64) + 1,
            params,
        )
    }

    pub async fn send_get(&self, signed: &[(String, String)]) -> Value {
        let url = format!(
            "{}/v2/index.php?{}",
            self.base,
            vpcd_auth::encode_form(signed)
        );
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "every API answer is HTTP 200");
        resp.json().await.unwrap()
    }

    pub async fn send_post(&self, signed: &[(String, String)]) -> Value {
        let resp = self
            .http
            .post(format!("{}/v2/index.php", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(vpcd_auth::encode_form(signed))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "every API answer is HTTP 200");
        resp.json().await.unwrap()
    }

    pub async fn call_as(&self, creds: &Creds, action: &str, params: &[(&str, &str)]) -> Value {
        let signed = self.sign(creds, "GET", action, &kv(params));
        self.send_get(&signed).await
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let creds = self.account.clone();
        self.call_as(&creds, action, params).await
    }

    /// One API 3.0 call (POST `/`, JSON body, TC3-HMAC-SHA256) as the
    /// app's account, in its region; the whole answer.
    pub async fn call3(&self, action: &str, body: Value) -> Value {
        v3_call(self, &self.account, action, &body.to_string()).await
    }

    /// Call and assert success.
    pub async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let v = self.call(action, params).await;
        assert_eq!(v["code"], 0, "{action} {params:?} failed: {v}");
        v
    }

    /// Drain the task queue (the background worker is off by default).
    pub async fn run_tasks(&self) -> usize {
        let mut n = 0;
        while self.running().run_task().await.unwrap() {
            n += 1;
        }
        n
    }

    /// Poll a task until it ends (for apps with the background worker).
    pub async fn wait_task(&self, task_id: i64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .ok("DescribeVpcTaskResult", &[("taskId", &task_id.to_string())])
                .await;
            if v["data"]["status"] != 2 {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "task {task_id} never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// VPC 10.0.0.0/16, one VPN gateway, one peer gateway; their unified ids.
    pub async fn fixture(&self, tag: &str) -> Fixture {
        let vpc = self
            .ok(
                "CreateVpc",
                &[
                    ("vpcName", &format!("vpc-{tag}")),
                    ("cidrBlock", "10.0.0.0/16"),
                ],
            )
            .await;
        let vpc_id = vpc["uniqVpcId"].as_str().unwrap().to_owned();
        let gw = self
            .ok(
                "RunVpnGw",
                &[
                    ("vpcId", &vpc_id),
                    ("name", &format!("gw-{tag}")),
                    ("bandwidth", "5"),
                ],
            )
            .await;
        let gw_id = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
        let user = self.add_user_gw(tag, 7).await;
        Fixture {
            vpc_id,
            gw_id,
            user_gw_id: user,
            gw_addr: gw["data"]["vpnGwAddress"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn add_user_gw(&self, tag: &str, host: u8) -> String {
        let u = self
            .ok(
                "AddUserGw",
                &[
                    ("userGwName", &format!("user-{tag}-{host}")),
                    ("userGwAddr", &format!("198.51.100.{host}")),
                ],
            )
            .await;
        u["userGwId"].as_str().unwrap().to_owned()
    }

    /// AddVpnConnEx with the given extra parameters; returns the answer.
    pub async fn add_conn(&self, f: &Fixture, user_gw: &str, extra: &[(&str, &str)]) -> Value {
        let mut p: Vec<(&str, &str)> = vec![
            ("vpcId", &f.vpc_id),
            ("vpnGwId", &f.gw_id),
            ("userGwId", user_gw),
        ];
        if !extra.iter().any(|(k, _)| *k == "preSharedKey") {
            p.push(("preSharedKey", "dgdgd33"));
        }
        if !extra
            .iter()
            .any(|(k, _)| k.starts_with("userGwCidrBlock") || *k == "spdAcl")
        {
            p.push(("userGwCidrBlock.0", "192.168.10.0/24"));
        }
        p.extend_from_slice(extra);
        self.call("AddVpnConnEx", &p).await
    }

    pub async fn conn(&self, conn_id: &str) -> Value {
        let v = self.ok("DescribeVpnConn", &[("vpnConnId", conn_id)]).await;
        assert_eq!(v["totalCount"], 1, "{v}");
        v["data"][0].clone()
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }
}

pub struct Fixture {
    pub vpc_id: String,
    pub gw_id: String,
    pub user_gw_id: String,
    pub gw_addr: String,
}

/// The created connection's unified id, from its finished create task.
pub async fn conn_id_of(app: &TestApp, task_id: i64) -> String {
    let t = app
        .ok("DescribeVpcTaskResult", &[("taskId", &task_id.to_string())])
        .await;
    t["data"]["output"]["unVpnConnId"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned()
}

/// One API 3.0 call (TC3-signed JSON POST to `/`) as `creds`, in the
/// region `ap-guangzhou`; the answer's JSON.
pub async fn v3_call(app: &TestApp, creds: &Creds, action: &str, body: &str) -> Value {
    let ts = now();
    let authorization = tc3_authorization(&app.host, &creds.secret_id, &creds.secret_key, body, ts);
    let resp = app
        .http
        .post(format!("{}/", app.base))
        .header("Content-Type", "application/json")
        .header("Authorization", authorization)
        .header("X-TC-Action", action)
        .header("X-TC-Version", "2017-03-12")
        .header("X-TC-Timestamp", ts.to_string())
        .header("X-TC-Region", "ap-guangzhou")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "every API answer is HTTP 200");
    resp.json().await.unwrap()
}

/// The `Authorization` header of a TC3-signed JSON POST to `/` on `host`.
pub fn tc3_authorization(
    host: &str,
    secret_id: &str,
    secret_key: &str,
    body: &str,
    ts: i64,
) -> String {
    let headers = [("Content-Type", "application/json"), ("Host", host)];
    vpcd_auth::tc3::Signer {
        secret_id,
        secret_key: secret_key.as_bytes(),
        service: "vpc",
    }
    .authorization(&vpcd_auth::tc3::Request {
        http_method: "POST",
        query: "",
        headers: &headers,
        payload: body.as_bytes(),
        timestamp: ts,
    })
    .unwrap()
}

/// `s` as it may appear in a log: raw, and percent-encoded as a form or
/// URL would carry it (upper- and lower-case hex, space as `+` or `%20`).
pub fn encodings(s: &str) -> Vec<String> {
    let encode = |upper: bool, space_plus: bool| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b' ' if space_plus => out.push('+'),
                _ if upper => out.push_str(&format!("%{b:02X}")),
                _ => out.push_str(&format!("%{b:02x}")),
            }
        }
        out
    };
    let mut forms = vec![s.to_owned()];
    for upper in [true, false] {
        for plus in [true, false] {
            let f = encode(upper, plus);
            if !forms.contains(&f) {
                forms.push(f);
            }
        }
    }
    forms
}

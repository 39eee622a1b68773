//! The `vpcd` binary as the end-to-end tests run it: started on port 0
//! against a test bed's cloud charon, driven through `vpcd call` and the
//! official v2 SDK, stopped by PID when dropped.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vpcd_types::testing::without_proxies;

/// The 3.0 region of the tests' scope (the credentials' v2 region `gz`).
pub const REGION3: &str = "ap-guangzhou";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test virtualenv's Python if it can `import module`, or why not.
pub fn venv_python(module: &str) -> Result<PathBuf, String> {
    let py = std::env::var_os("VPCD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} cannot import {module} (run bash scripts/test.sh)",
            py.display()
        ))
    }
}

/// Run `tests/tunnel/<script> ARGS...` with `py` and parse what it prints.
fn run_script(py: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let out = without_proxies(&mut Command::new(py))
        .arg(repo_root().join("tests/tunnel").join(script))
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub struct Vpcd {
    child: Child,
    pub data: PathBuf,
    pub http: String,
    pub https: String,
    pub log: PathBuf,
}

impl Vpcd {
    pub fn start(data: &Path, vici: &str, extra: &[&str]) -> Vpcd {
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
            .env("VPCD_RATE_LIMIT_PER_ACCOUNT", "0")
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

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // by PID
        let _ = self.child.wait();
    }

    /// One action through the official SDK (POST, HmacSHA256, over HTTPS).
    pub fn sdk(&self, py: &Path, action: &str, params: Value) -> Value {
        let v = run_script(
            py,
            "sdk_call.py",
            &[
                self.https.as_ref(),
                self.data.join("tls/cert.pem").as_os_str(),
                self.data.join("credentials").as_os_str(),
                action.as_ref(),
                params.to_string().as_ref(),
            ],
        );
        assert_eq!(v["code"], 0, "{action}: {v}");
        v
    }

    /// One API 3.0 action through tencentcloud-sdk-python (TC3, POST JSON,
    /// typed request and response models) in [`REGION3`]; its `Response`,
    /// which must not be an error.
    pub fn sdk3(&self, py: &Path, action: &str, params: Value) -> Value {
        let v = run_script(
            py,
            "sdk3_call.py",
            &[
                self.http.trim_start_matches("http://").as_ref(),
                self.data.join("credentials").as_os_str(),
                REGION3.as_ref(),
                action.as_ref(),
                params.to_string().as_ref(),
            ],
        );
        assert!(v.get("Error").is_none(), "{action}: {v}");
        v
    }

    /// One action through `vpcd call`.
    pub fn call(&self, action: &str, params: &[&str]) -> Value {
        self.call_as(&self.data.join("credentials"), action, params)
    }

    /// One action through `vpcd call` with the credentials file `creds`.
    pub fn call_as(&self, creds: &Path, action: &str, params: &[&str]) -> Value {
        let out = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
            .arg("call")
            .arg(action)
            .args(params)
            .args(["--endpoint", &self.http, "--credentials"])
            .arg(creds)
            .output()
            .expect("vpcd call");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    }

    /// DeleteVpnConn, answered with code 0, and its task waited for.
    pub fn delete_conn(&self, vpc: &str, gw: &str, conn: &str) {
        let del = self.call(
            "DeleteVpnConn",
            &[
                &format!("vpcId={vpc}"),
                &format!("vpnGwId={gw}"),
                &format!("vpnConnId={conn}"),
            ],
        );
        assert_eq!(del["code"], 0, "{del}");
        self.wait_task(del["data"]["taskId"].as_i64().unwrap());
    }

    pub fn wait_task(&self, task: i64) {
        self.wait_task_as(&self.data.join("credentials"), task);
    }

    pub fn wait_task_as(&self, creds: &Path, task: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.call_as(creds, "DescribeVpcTaskResult", &[&format!("taskId={task}")]);
            match v["data"]["status"].as_i64() {
                Some(0) => return,
                Some(2) => {}
                _ => panic!("task {task} failed: {v}"),
            }
            assert!(Instant::now() < deadline, "task {task} still running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn net_status(&self, conn: &str) -> String {
        let v = self.call("DescribeVpnConn", &[&format!("vpnConnId={conn}")]);
        v["data"][0]["netStatus"]
            .as_str()
            .unwrap_or("gone")
            .to_owned()
    }

    /// Wait until `netStatus` is `want`; the time it took.
    pub fn wait_net(&self, conn: &str, want: &str, within: Duration) -> Duration {
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
    pub fn peer_config(&self, conn: &str) -> String {
        self.peer_config_for(conn, "strongSwan")
    }

    /// The configuration for `vendor`'s device on the customer's side.
    pub fn peer_config_for(&self, conn: &str, vendor: &str) -> String {
        let v = self.call(
            "GetVpnConnConfig",
            &[
                &format!("vpnConnId={conn}"),
                &format!("vendorname={vendor}"),
            ],
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

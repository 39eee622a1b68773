//! `--log-format json` (issue 13, part 4), on the real binary: every log
//! line is one JSON object, every line an API request causes carries that
//! request's id (on API 3.0 the answer's `RequestId`), and no secret reaches
//! a line: not the SecretKey, a pre-shared key or a signature, raw or
//! percent-encoded.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encodings, tc3_authorization, Creds};
use serde_json::{json, Value};
use vpcd_auth::{SignatureMethod, Signer};
use vpcd_types::testing::without_proxies;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Stopped by PID only.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Vpcd {
    _proc: Proc,
    host: String,
    secret_id: String,
    secret_key: String,
    http: reqwest::blocking::Client,
    /// Every signature sent, to look for in the log.
    signatures: Vec<String>,
}

fn start(data: &Path, stdout: &Path, stderr: &Path) -> Vpcd {
    let child = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
        .args(["serve", "--log-format", "json", "--data-dir"])
        .arg(data)
        .args(["--http", "127.0.0.1:0", "--https", "off"])
        .env("VPCD_LOG", "trace")
        .env("VPCD_RATE_LIMIT_PER_ACCOUNT", "0")
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stderr).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn vpcd");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let listen: Value = loop {
        if let Ok(s) = std::fs::read_to_string(data.join("listen.json")) {
            break serde_json::from_str(&s).unwrap();
        }
        assert!(Instant::now() < deadline, "vpcd did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("credentials")).unwrap()).unwrap();
    Vpcd {
        _proc: proc,
        host: listen["http"].as_str().unwrap().to_owned(),
        secret_id: creds["secretId"].as_str().unwrap().to_owned(),
        secret_key: creds["secretKey"].as_str().unwrap().to_owned(),
        http: reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap(),
        signatures: Vec::new(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Vpcd {
    /// A signed v2 GET; `signature` replaces the real one when given.
    fn v2(&mut self, action: &str, params: &[(&str, &str)], signature: Option<&str>) -> Value {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut signed = Signer {
            secret_id: &self.secret_id,
            secret_key: self.secret_key.as_bytes(),
            method: SignatureMethod::HmacSha256,
        }
        .signed_params(
            "GET",
            &self.host,
            "/v2/index.php",
            action,
            "gz",
            unix_now(),
            rand::random::<u32>() as u64 + 1,
            &params,
        );
        for (k, v) in signed.iter_mut() {
            if k == "Signature" {
                self.signatures.push(v.clone());
                if let Some(s) = signature {
                    *v = s.to_owned();
                }
            }
        }
        let url = format!(
            "http://{}/v2/index.php?{}",
            self.host,
            vpcd_auth::encode_form(&signed)
        );
        self.http.get(url).send().unwrap().json().unwrap()
    }

    /// A TC3-signed API 3.0 call; the whole answer.
    fn v3(&mut self, action: &str, body: Value) -> Value {
        let body = body.to_string();
        let ts = unix_now();
        let creds = Creds {
            secret_id: self.secret_id.clone(),
            secret_key: self.secret_key.clone(),
            region: "ap-guangzhou".into(),
        };
        let auth = tc3_authorization(&self.host, &creds.secret_id, &creds.secret_key, &body, ts);
        let sig = auth.rsplit("Signature=").next().unwrap().to_owned();
        self.signatures.push(sig);
        self.http
            .post(format!("http://{}/", self.host))
            .header("Content-Type", "application/json")
            .header("Authorization", auth)
            .header("X-TC-Action", action)
            .header("X-TC-Version", "2017-03-12")
            .header("X-TC-Region", "ap-guangzhou")
            .header("X-TC-Timestamp", ts.to_string())
            .body(body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

/// A JSON value in which no object names a key twice (serde_json would
/// keep the last silently; log shippers differ).
struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoRepeatedKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeys {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("key {key:?} twice")));
            }
            map.next_value::<NoRepeatedKeys>()?;
        }
        Ok(self)
    }
}

/// The request id of a log line, from the request's span.
fn request_id(line: &Value) -> Option<&str> {
    line["span"]["request_id"].as_str()
}

#[test]
fn json_logs_carry_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut v = start(&data, &out, &err);

    // API 3.0: the answer's RequestId is the id in the request's lines.
    let created = v.v3(
        "CreateVpc",
        json!({"VpcName": "j", "CidrBlock": "10.0.0.0/16"}),
    );
    let rid = created["Response"]["RequestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let vpc_id = created["Response"]["Vpc"]["VpcId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let refused3 = v.v3(
        "CreateVpc",
        json!({"VpcName": "k", "CidrBlock": "10.0.0.0/33"}),
    );
    let refused_rid = refused3["Response"]["RequestId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(refused3["Response"]["Error"].is_object(), "{refused3}");

    // v2: resources, a PSK-carrying AddVpnConnEx, a refused PSK, a bad
    // signature.
    let gw = v.v2("RunVpnGw", &[("vpcId", &vpc_id), ("name", "g")], None);
    let gw_id = gw["data"]["vpnGwId"]
        .as_str()
        .unwrap_or_else(|| panic!("{gw}"))
        .to_owned();
    let u = v.v2(
        "AddUserGw",
        &[("userGwName", "u"), ("userGwAddr", "198.51.100.9")],
        None,
    );
    let u_id = u["userGwId"].as_str().unwrap().to_owned();
    let psk = "Js0n-Log-PSK-value!";
    let conn = [
        ("vpcId", vpc_id.as_str()),
        ("vpnGwId", gw_id.as_str()),
        ("userGwId", u_id.as_str()),
        ("userGwCidrBlock.0", "192.168.0.0/24"),
    ];
    let mut params = conn.to_vec();
    params.push(("preSharedKey", psk));
    let added = v.v2("AddVpnConnEx", &params, None);
    assert_eq!(added["code"], 0, "{added}");
    let bad_psk = "bad psk with spaces";
    let mut params = conn.to_vec();
    params.push(("preSharedKey", bad_psk));
    params.push(("vpnConnName", "x"));
    let refused = v.v2("AddVpnConnEx", &params, None);
    assert_eq!(refused["code"], 4000, "{refused}");
    let wrong_sig = "Zm9v+YmFy/YmF6cXV4d3Jvbmc=";
    let bad = v.v2("DescribeVpcEx", &[], Some(wrong_sig));
    assert_eq!(bad["codeDesc"], "AuthFailure", "{bad}");
    // The task runs (its lines are the worker's, in no request's span).
    let task = added["data"]["taskId"].to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while v.v2("DescribeVpcTaskResult", &[("taskId", &task)], None)["data"]["status"] == 2 {
        assert!(Instant::now() < deadline, "task never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secret_key = v.secret_key.clone();
    let signatures = v.signatures.clone();
    drop(v);

    let stdout = std::fs::read_to_string(&out).unwrap();
    assert!(
        stdout.starts_with("created account"),
        "stdout holds only the first-start banner: {stdout}"
    );
    let stderr = std::fs::read_to_string(&err).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| {
            if let Err(e) = serde_json::from_str::<NoRepeatedKeys>(l) {
                panic!("{e}: {l}");
            }
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("not a JSON object: {l}"))
        })
        .collect();
    assert!(lines.len() > 20, "{} lines", lines.len());

    // The 3.0 request's lines carry its RequestId; a line naming the id
    // in a field is in that request's span.
    let of =
        |id: &str| -> Vec<&Value> { lines.iter().filter(|l| request_id(l) == Some(id)).collect() };
    let mine = of(&rid);
    assert!(!mine.is_empty(), "no line of request {rid}:\n{stderr}");
    for l in &mine {
        assert_eq!(l["span"]["protocol"], "v3", "{l}");
    }
    let refusal = of(&refused_rid);
    assert!(
        refusal
            .iter()
            .any(|l| l["message"] == "3.0 request refused"),
        "the refusal of {refused_rid} is not in its span:\n{stderr}"
    );
    for l in &lines {
        if let Some(id) = l["request_id"].as_str() {
            assert_eq!(request_id(l), Some(id), "{l}");
        }
    }
    // v2 requests have their own ids, one per request: the refusals of the
    // bad PSK and of the bad signature are in two different requests.
    let refusal_ids: HashSet<&str> = lines
        .iter()
        .filter(|l| l["message"] == "refused" || l["message"] == "refused an unsigned request")
        .map(|l| {
            assert_eq!(l["span"]["protocol"], "v2", "{l}");
            request_id(l).unwrap_or_else(|| panic!("a refusal outside a request: {l}"))
        })
        .collect();
    assert_eq!(refusal_ids.len(), 2, "{refusal_ids:?}");
    assert!(!refusal_ids.contains(rid.as_str()));

    // No secret anywhere, in any form.
    assert!(
        stderr.contains("the signature does not match"),
        "the bad signature's refusal was logged"
    );
    let mut secrets = vec![secret_key.as_str(), psk, bad_psk, wrong_sig];
    secrets.extend(signatures.iter().map(String::as_str));
    for secret in secrets {
        for form in encodings(secret) {
            assert!(
                !stderr.contains(&form) && !stdout.contains(&form),
                "a secret reached the log (as {form:?})"
            );
        }
    }
}

//! `vpcd call`: sign and send one v2 request, print the answer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;
use vpcd_auth::{SignatureMethod, Signer};

/// Where to send and how to sign.
pub struct CallOptions {
    pub endpoint: String,
    pub region: Option<String>,
    pub secret_id: Option<String>,
    pub secret_key: Option<String>,
    pub credentials: PathBuf,
    pub post: bool,
    pub method: SignatureMethod,
    pub ca_cert: Option<PathBuf>,
}

struct Creds {
    secret_id: String,
    secret_key: vpcd_types::Secret,
    region: String,
}

fn load_creds(o: &CallOptions) -> anyhow::Result<Creds> {
    let file: Option<Value> = match std::fs::read_to_string(&o.credentials) {
        Ok(s) => Some(serde_json::from_str(&s).with_context(|| {
            format!("{} is not a credentials JSON file", o.credentials.display())
        })?),
        Err(_) => None,
    };
    let from_file = |k: &str| {
        file.as_ref()
            .and_then(|f| f.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let secret_id = o.secret_id.clone().or_else(|| from_file("secretId"));
    let secret_key = o.secret_key.clone().or_else(|| from_file("secretKey"));
    let (Some(secret_id), Some(secret_key)) = (secret_id, secret_key) else {
        bail!(
            "no credentials: give --secret-id/--secret-key, set VPCD_SECRET_ID/VPCD_SECRET_KEY, or create {} by starting `vpcd serve`",
            o.credentials.display()
        );
    };
    let region = o
        .region
        .clone()
        .or_else(|| from_file("region"))
        .unwrap_or_else(|| "gz".to_owned());
    Ok(Creds {
        secret_id,
        secret_key: vpcd_types::Secret::new(secret_key),
        region,
    })
}

struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    creds: Creds,
    post: bool,
    method: SignatureMethod,
}

impl Client {
    fn new(o: &CallOptions) -> anyhow::Result<Self> {
        crate::tls::init_crypto();
        let creds = load_creds(o)?;
        let mut url: reqwest::Url = o
            .endpoint
            .parse()
            .with_context(|| format!("--endpoint {} is not a URL", o.endpoint))?;
        url.set_path(crate::v2::PATH);
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => bail!("--endpoint needs a host"),
        };
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &o.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Client {
            http: b.build()?,
            url,
            host,
            creds,
            post: o.post,
            method: o.method,
        })
    }

    /// Sign and send one action; the parsed JSON answer.
    async fn call(&self, action: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
        let signer = Signer {
            secret_id: &self.creds.secret_id,
            secret_key: self.creds.secret_key.expose().as_bytes(),
            method: self.method,
        };
        let http_method = if self.post { "POST" } else { "GET" };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let nonce = rand::random::<u64>() % (i64::MAX as u64) + 1;
        let signed = signer.signed_params(
            http_method,
            &self.host,
            crate::v2::PATH,
            action,
            &self.creds.region,
            now,
            nonce,
            params,
        );
        let body = vpcd_auth::encode_form(&signed);
        let resp = if self.post {
            self.http
                .post(self.url.clone())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
        } else {
            let mut url = self.url.clone();
            url.set_query(Some(&body));
            self.http.get(url).send().await
        }
        .with_context(|| format!("sending {action} to {}", self.url))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("the answer is not JSON: {text}"))
    }

    /// Poll DescribeVpcTaskResult until the task ends; print progress to
    /// stderr. Returns the final answer.
    async fn wait_task(&self, task_id: i64, timeout: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let v = self
                .call(
                    "DescribeVpcTaskResult",
                    &[("taskId".into(), task_id.to_string())],
                )
                .await?;
            let status = v.pointer("/data/status").and_then(Value::as_i64);
            match status {
                Some(2) => {
                    eprintln!(
                        "task {task_id}: running ({:.1}s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                Some(_) => return Ok(v),
                None => return Ok(v),
            }
            if started.elapsed() > timeout {
                bail!("task {task_id} still running after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Parse `key=value` arguments. The key is everything before the first `=`.
fn parse_kv(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("argument {a:?} is not key=value"))
        })
        .collect()
}

/// Run `vpcd call`; the process exit code.
pub async fn run(
    o: CallOptions,
    action: &str,
    args: &[String],
    wait: bool,
    wait_timeout: Duration,
) -> anyhow::Result<i32> {
    let params = parse_kv(args)?;
    let client = Client::new(&o)?;
    let answer = client.call(action, &params).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if answer.get("code").and_then(Value::as_i64) != Some(0) {
        return Ok(1);
    }
    if wait {
        if let Some(task_id) = answer.pointer("/data/taskId").and_then(Value::as_i64) {
            let done = client.wait_task(task_id, wait_timeout).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            let ok = done.get("code").and_then(Value::as_i64) == Some(0)
                && done.pointer("/data/status").and_then(Value::as_i64) == Some(0);
            if !ok {
                eprintln!("task {task_id} failed");
                return Ok(1);
            }
            eprintln!("task {task_id}: succeeded");
        }
    }
    Ok(0)
}

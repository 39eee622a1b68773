//! moto side by side: `moto_server` (PyPI `moto[server]`, the AWS emulator
//! most often used as a local stand-in) started by the bench on 127.0.0.1,
//! measured with the same clients on the nearest operations: EC2
//! CreateVpnConnection and DescribeVpnConnections by id.
//!
//! Requests are the EC2 query API as the AWS SDKs send it (POST, form body,
//! `Version=2016-11-15`) with an `Authorization` header naming the region
//! and service; moto does not verify signatures, so none is computed (the
//! generator's cost is lower than for vpcd, which is signed and verified).
//! Every answer is checked (HTTP 200 and the connection id in the XML).
//! moto_server (Werkzeug's development server) closes the connection after
//! each answer, so each request opens its own loopback connection, inside
//! the measured time (as wrk against it does).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use vpcd_bench::stats::{micros, Summary};

use crate::client::{Api, Conn, Credentials, Prepared, Shape};

/// Gateways created before measuring (CreateVpnConnection picks a pair).
const GATEWAYS: usize = 10;
/// Connections stored before DescribeVpnConnections by id.
pub(crate) const STORED: usize = 1_000;

const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=AKIDEXAMPLE/20260101/us-east-1/ec2/aws4_request, \
    SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000";

/// A running moto_server.
pub(crate) struct Moto {
    child: Child,
    api: Arc<Api>,
    cgws: Vec<String>,
    vgws: Vec<String>,
    conns: Vec<String>,
}

/// One measured moto operation.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MotoPhase {
    pub(crate) operation: &'static str,
    pub(crate) elapsed_s: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) latency: Summary,
}

impl MotoPhase {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed_s
    }
}

/// The EC2 query request for `action`.
fn ec2(action: &str, params: &[(&str, &str)]) -> Prepared {
    let mut pairs = vec![
        ("Action".to_owned(), action.to_owned()),
        ("Version".to_owned(), "2016-11-15".to_owned()),
    ];
    pairs.extend(
        params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut p = Prepared::post("/", vpcd_auth::encode_form(&pairs));
    p.authorization = Some(AUTHORIZATION);
    p
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find('<')?;
    Some(&xml[start..start + len])
}

async fn call(api: &Arc<Api>, req: &Prepared, tag: &str) -> anyhow::Result<String> {
    let mut conn: Conn = api.connect().await?;
    let body = conn.send(req).await?;
    let text = String::from_utf8_lossy(&body);
    element(&text, tag)
        .map(str::to_owned)
        .with_context(|| format!("no <{tag}> in {}", &text[..text.len().min(300)]))
}

impl Moto {
    /// Start `moto_server` on a free loopback port and create the gateways
    /// and the stored connections.
    pub(crate) async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("moto.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for k in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(k);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let api = Api::new(
            addr,
            Credentials {
                secret_id: String::new(),
                secret_key: String::new(),
                region: String::new(),
            },
            Shape::HttpPost,
            None,
        );
        let mut moto = Moto {
            child,
            api,
            cgws: Vec::new(),
            vgws: Vec::new(),
            conns: Vec::new(),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait()? {
                bail!(
                    "moto_server exited with {status}; see {}",
                    dir.join("moto.log").display()
                );
            }
            let req = ec2("CreateVpnGateway", &[("Type", "ipsec.1")]);
            match call(&moto.api, &req, "vpnGatewayId").await {
                Ok(_) => break,
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.context("moto_server did not answer within 60 s")),
            }
        }
        let api = moto.api.clone();
        for i in 0..GATEWAYS {
            let ip = format!("198.51.100.{}", i + 1);
            let req = ec2(
                "CreateCustomerGateway",
                &[("Type", "ipsec.1"), ("IpAddress", &ip), ("BgpAsn", "65000")],
            );
            moto.cgws.push(call(&api, &req, "customerGatewayId").await?);
            let req = ec2("CreateVpnGateway", &[("Type", "ipsec.1")]);
            moto.vgws.push(call(&api, &req, "vpnGatewayId").await?);
        }
        for i in 0..STORED {
            let req = moto.create(i);
            moto.conns.push(call(&api, &req, "vpnConnectionId").await?);
        }
        // One of each, checked in full.
        let id = moto.conns[STORED / 2].clone();
        let req = ec2("DescribeVpnConnections", &[("VpnConnectionId.1", &id)]);
        let got = call(&api, &req, "vpnConnectionId").await?;
        anyhow::ensure!(got == id, "DescribeVpnConnections {id} answered {got}");
        Ok(moto)
    }

    fn create(&self, i: usize) -> Prepared {
        ec2(
            "CreateVpnConnection",
            &[
                ("Type", "ipsec.1"),
                ("CustomerGatewayId", &self.cgws[i % GATEWAYS]),
                ("VpnGatewayId", &self.vgws[(i / GATEWAYS) % GATEWAYS]),
                ("Options.StaticRoutesOnly", "true"),
            ],
        )
    }

    /// `clients` clients for `duration`: CreateVpnConnection (`create`) or
    /// DescribeVpnConnections of a random stored id.
    pub(crate) async fn measure(
        &self,
        create: bool,
        clients: usize,
        duration: Duration,
    ) -> anyhow::Result<MotoPhase> {
        let start = Instant::now();
        let deadline = start + duration;
        let outs = futures::future::join_all((0..clients).map(|c| {
            let mut i = c * 7919;
            async move {
                let (mut n, mut errors, mut first, mut lat) = (0u64, 0u64, None, Vec::new());
                while Instant::now() < deadline {
                    i += 1;
                    let (req, want) = if create {
                        (self.create(i), None)
                    } else {
                        let id = &self.conns[(i * 31) % self.conns.len()];
                        let req = ec2("DescribeVpnConnections", &[("VpnConnectionId.1", id)]);
                        (req, Some(id.as_str()))
                    };
                    let t0 = Instant::now();
                    let got = call(&self.api, &req, "vpnConnectionId").await;
                    lat.push(micros(t0.elapsed()));
                    n += 1;
                    let err = match (got, want) {
                        (Ok(got), Some(want)) if got != want => {
                            Some(format!("asked for {want}, got {got}"))
                        }
                        (Ok(_), _) => None,
                        (Err(e), _) => Some(format!("{e:#}")),
                    };
                    if let Some(e) = err {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
                (n, errors, first, lat)
            }
        }))
        .await;
        let elapsed = start.elapsed();
        let mut lat = Vec::new();
        let (mut requests, mut errors, mut first_error) = (0, 0, None);
        for (n, e, f, mut l) in outs {
            requests += n;
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
            lat.append(&mut l);
        }
        Ok(MotoPhase {
            operation: if create {
                "CreateVpnConnection"
            } else {
                "DescribeVpnConnections by id"
            },
            elapsed_s: elapsed.as_secs_f64(),
            requests,
            errors,
            first_error,
            latency: Summary::of(&mut lat),
        })
    }

    pub(crate) fn stop(mut self) {
        // By PID: the child this bench started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_requests() {
        let xml =
            "<r><vpnConnection><vpnConnectionId>vpn-1a2b</vpnConnectionId></vpnConnection></r>";
        assert_eq!(element(xml, "vpnConnectionId"), Some("vpn-1a2b"));
        assert_eq!(element(xml, "nope"), None);
        let req = ec2("DescribeVpnConnections", &[("VpnConnectionId.1", "vpn-1")]);
        assert_eq!(req.path, "/");
        let body = req.body.unwrap();
        assert!(
            body.starts_with("Action=DescribeVpnConnections&Version=2016-11-15&"),
            "{body}"
        );
        assert!(req.authorization.unwrap().contains("/us-east-1/ec2/"));
    }
}

//! The generator's side of the wire: one keep-alive HTTP/1.1 connection per
//! client (hyper's connection-level API: no pool, no retries, nothing between
//! the loop and the socket), plain or TLS, and v2 request signing in each
//! request shape ([`Shape`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use vpcd_auth::{encode_form, SignatureMethod, Signer};

pub(crate) const API_PATH: &str = "/v2/index.php";

/// A request that has not been answered within this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the official v2 SDK (qcloudapi-sdk-python 2.0.15) adds to every request.
const SDK_REQUEST_CLIENT: &str = "SDK_PYTHON_2.0.15";

/// How a signed request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Shape {
    /// Signed GET, HmacSHA256, plain HTTP (the shape of every earlier run).
    HttpGet,
    /// Signed POST, form body, HmacSHA256, plain HTTP.
    HttpPost,
    HttpsGet,
    HttpsPost,
    /// What the official v2 SDK sends by default: HTTPS, GET, HmacSHA1,
    /// `RequestClient=SDK_PYTHON_2.0.15`, `Connection: Keep-Alive`.
    Sdk,
}

impl Shape {
    pub(crate) const ALL: [Shape; 5] = [
        Shape::HttpGet,
        Shape::HttpPost,
        Shape::HttpsGet,
        Shape::HttpsPost,
        Shape::Sdk,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Shape::HttpGet => "http-get",
            Shape::HttpPost => "http-post",
            Shape::HttpsGet => "https-get",
            Shape::HttpsPost => "https-post",
            Shape::Sdk => "sdk",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|sh| sh.name() == s)
    }

    pub(crate) fn https(self) -> bool {
        matches!(self, Shape::HttpsGet | Shape::HttpsPost | Shape::Sdk)
    }

    fn post(self) -> bool {
        matches!(self, Shape::HttpPost | Shape::HttpsPost)
    }
}

/// `<data-dir>/credentials` as `vpcd serve` writes it on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Credentials {
    pub(crate) secret_id: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
}

/// One request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Path and query.
    pub(crate) path: String,
    /// A form body (POST).
    pub(crate) body: Option<String>,
    /// An `Authorization` header (moto's requests).
    pub(crate) authorization: Option<&'static str>,
}

impl Prepared {
    pub(crate) fn get(path: impl Into<String>) -> Prepared {
        Prepared {
            path: path.into(),
            body: None,
            authorization: None,
        }
    }

    /// A form POST to `path`.
    pub(crate) fn post(path: impl Into<String>, body: String) -> Prepared {
        Prepared {
            path: path.into(),
            body: Some(body),
            authorization: None,
        }
    }

    /// The same request with the first `from` (in the query or the body)
    /// replaced by `to`.
    pub(crate) fn replaced(&self, from: &str, to: &str) -> Prepared {
        match &self.body {
            Some(b) => Prepared::post(self.path.clone(), b.replacen(from, to, 1)),
            None => Prepared::get(self.path.replacen(from, to, 1)),
        }
    }
}

/// Where to send requests and how to sign them. Shared by every client.
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
    /// The Host header, exactly as signed.
    host: String,
    creds: Credentials,
    shape: Shape,
    tls: Option<tokio_rustls::TlsConnector>,
    /// Nonces only need to be unique per SecretId; a counter is the cheapest
    /// way to guarantee that.
    nonce: AtomicU64,
}

/// A TLS client trusting only the certificate in `cert_pem` (vpcd's own
/// self-signed one, for `localhost` and `127.0.0.1`).
pub(crate) fn tls_trusting(cert_pem: &Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let pem = std::fs::read(cert_pem).with_context(|| format!("reading {}", cert_pem.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl Api {
    pub(crate) fn new(
        addr: SocketAddr,
        creds: Credentials,
        shape: Shape,
        tls: Option<tokio_rustls::TlsConnector>,
    ) -> Arc<Api> {
        Arc::new(Api {
            addr,
            host: addr.to_string(),
            creds,
            shape,
            tls,
            nonce: AtomicU64::new(1),
        })
    }

    /// A signed request in this API's shape: the current Timestamp, a fresh
    /// Nonce.
    pub(crate) fn signed(&self, action: &str, params: &[(String, String)]) -> Prepared {
        let sdk = self.shape == Shape::Sdk;
        let signer = Signer {
            secret_id: &self.creds.secret_id,
            secret_key: self.creds.secret_key.as_bytes(),
            method: if sdk {
                SignatureMethod::HmacSha1
            } else {
                SignatureMethod::HmacSha256
            },
        };
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut all;
        let params = if sdk {
            all = params.to_vec();
            all.push(("RequestClient".into(), SDK_REQUEST_CLIENT.into()));
            &all[..]
        } else {
            params
        };
        let method = if self.shape.post() { "POST" } else { "GET" };
        let signed = signer.signed_params(
            method,
            &self.host,
            API_PATH,
            action,
            &self.creds.region,
            timestamp,
            nonce,
            params,
        );
        let form = encode_form(&signed);
        if self.shape.post() {
            return Prepared::post(API_PATH, form);
        }
        let mut path = String::with_capacity(API_PATH.len() + 1 + form.len());
        path.push_str(API_PATH);
        path.push('?');
        path.push_str(&form);
        Prepared::get(path)
    }

    pub(crate) async fn connect(self: &Arc<Self>) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let sender = match &self.tls {
            None => handshake(stream).await?,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                handshake(tls.connect(name, stream).await.context("TLS handshake")?).await?
            }
        };
        Ok(Conn {
            sender,
            host: self.host.clone(),
            keep_alive_header: self.shape == Shape::Sdk,
        })
    }
}

async fn handshake<S>(stream: S) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes.
        let _ = conn.await;
    });
    Ok(sender)
}

/// One keep-alive connection; requests on it are strictly sequential.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    keep_alive_header: bool,
}

impl Conn {
    /// Send `req` and return the whole body (status must be 200).
    pub(crate) async fn send(&mut self, req: &Prepared) -> anyhow::Result<Bytes> {
        let fut = async {
            self.sender.ready().await?;
            let mut b = Request::builder()
                .uri(req.path.as_str())
                .header(header::HOST, &self.host);
            if self.keep_alive_header {
                b = b.header(header::CONNECTION, "Keep-Alive");
            }
            if let Some(auth) = req.authorization {
                b = b.header(header::AUTHORIZATION, auth);
            }
            let req = match &req.body {
                None => b.method("GET").body(Full::new(Bytes::new()))?,
                Some(body) => b
                    .method("POST")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from(body.clone())))?,
            };
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                bail!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
            }
            anyhow::Ok(body)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .context("request timed out")?
    }

    /// GET `path`.
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Bytes> {
        self.send(&Prepared::get(path)).await
    }
}

/// Whether an envelope says `code: 0`. The server writes `code` first, so
/// the common case is a prefix check; anything else is parsed to report it.
pub(crate) fn check_ok(body: &[u8]) -> Result<(), String> {
    if body.starts_with(br#"{"code":0,"#) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["code"] == 0 => Ok(()),
        Ok(v) => Err(format!(
            "code {} {}: {}",
            v["code"], v["codeDesc"], v["message"]
        )),
        Err(_) => Err(format!(
            "not an envelope: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// The parsed envelope of a successful answer.
pub(crate) fn parse_ok(body: &[u8]) -> Result<serde_json::Value, String> {
    check_ok(body)?;
    serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
}

/// Time spent in a closure, for measuring the generator's own costs.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_checks() {
        assert!(check_ok(br#"{"code":0,"message":""}"#).is_ok());
        assert!(check_ok(br#"{ "code": 0 }"#).is_ok());
        let e = check_ok(br#"{"code":4100,"codeDesc":"AuthFailure","message":"m"}"#).unwrap_err();
        assert!(e.contains("4100") && e.contains("AuthFailure"), "{e}");
        assert!(check_ok(b"<html>").is_err());
        assert_eq!(
            parse_ok(br#"{"code":0,"data":{"taskId":7}}"#).unwrap()["data"]["taskId"],
            7
        );
    }

    #[test]
    fn signed_paths_verify() {
        for shape in Shape::ALL {
            let api = Api::new(
                "127.0.0.1:8080".parse().unwrap(),
                Credentials {
                    secret_id: "AKIDbench".into(),
                    secret_key: "key".into(),
                    region: "gz".into(),
                },
                shape,
                None,
            );
            let a = api.signed(
                "DescribeVpnConn",
                &[("vpnConnId".into(), "vpnx-abc".into())],
            );
            let b = api.signed(
                "DescribeVpnConn",
                &[("vpnConnId".into(), "vpnx-abc".into())],
            );
            assert_ne!(
                (&a.path, &a.body),
                (&b.path, &b.body),
                "every request gets a fresh nonce"
            );
            let (method, form) = match &a.body {
                Some(body) => ("POST", body.as_str()),
                None => ("GET", a.path.strip_prefix("/v2/index.php?").unwrap()),
            };
            assert_eq!(method == "POST", shape.post(), "{shape:?}");
            let pairs: Vec<(String, String)> = form
                .split('&')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_owned(), percent_decode(v))
                })
                .collect();
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let sig = &pairs.iter().find(|(k, _)| k == "Signature").unwrap().1;
            let sts =
                vpcd_auth::string_to_sign(method, "127.0.0.1:8080", API_PATH, &borrowed, false);
            let alg = if shape == Shape::Sdk {
                assert!(pairs
                    .iter()
                    .any(|(k, v)| k == "RequestClient" && v == SDK_REQUEST_CLIENT));
                SignatureMethod::HmacSha1
            } else {
                SignatureMethod::HmacSha256
            };
            assert!(vpcd_auth::verify(b"key", alg, &sts, sig), "{shape:?}");
        }
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
}

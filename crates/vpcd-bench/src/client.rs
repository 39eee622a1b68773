//! The generator's side of the wire: one keep-alive HTTP/1.1 connection per
//! client (hyper's connection-level API: no pool, no retries, nothing between
//! the loop and the socket), and v2 request signing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use vpcd_auth::{encode_form, SignatureMethod, Signer};

pub(crate) const API_PATH: &str = "/v2/index.php";

/// A request that has not been answered within this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `<data-dir>/credentials` as `vpcd serve` writes it on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Credentials {
    pub(crate) secret_id: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
}

/// Where to send requests and how to sign them. Shared by every client.
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
    /// The Host header, exactly as signed.
    host: String,
    creds: Credentials,
    /// Nonces only need to be unique per SecretId; a counter is the cheapest
    /// way to guarantee that.
    nonce: AtomicU64,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr, creds: Credentials) -> Arc<Api> {
        Arc::new(Api {
            addr,
            host: addr.to_string(),
            creds,
            nonce: AtomicU64::new(1),
        })
    }

    /// The path and query of a signed GET: HmacSHA256, the current
    /// Timestamp, a fresh Nonce.
    pub(crate) fn signed_path(&self, action: &str, params: &[(String, String)]) -> String {
        let signer = Signer {
            secret_id: &self.creds.secret_id,
            secret_key: self.creds.secret_key.as_bytes(),
            method: SignatureMethod::HmacSha256,
        };
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signed = signer.signed_params(
            "GET",
            &self.host,
            API_PATH,
            action,
            &self.creds.region,
            timestamp,
            nonce,
            params,
        );
        let query = encode_form(&signed);
        let mut path = String::with_capacity(API_PATH.len() + 1 + query.len());
        path.push_str(API_PATH);
        path.push('?');
        path.push_str(&query);
        path
    }

    pub(crate) async fn connect(self: &Arc<Self>) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: self.host.clone(),
        })
    }
}

/// One keep-alive connection; requests on it are strictly sequential.
pub(crate) struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
}

impl Conn {
    /// GET `path` and return the whole body (status must be 200).
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Bytes> {
        let fut = async {
            self.sender.ready().await?;
            let req = Request::get(path)
                .header(header::HOST, &self.host)
                .body(Empty::<Bytes>::new())?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                bail!("HTTP {status}");
            }
            anyhow::Ok(body)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .context("request timed out")?
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
        let api = Api::new(
            "127.0.0.1:8080".parse().unwrap(),
            Credentials {
                secret_id: "AKIDbench".into(),
                secret_key: "key".into(),
                region: "gz".into(),
            },
        );
        let a = api.signed_path(
            "DescribeVpnConn",
            &[("vpnConnId".into(), "vpnx-abc".into())],
        );
        let b = api.signed_path(
            "DescribeVpnConn",
            &[("vpnConnId".into(), "vpnx-abc".into())],
        );
        assert_ne!(a, b, "every request gets a fresh nonce");
        let query = a.strip_prefix("/v2/index.php?").unwrap();
        let pairs: Vec<(String, String)> = query
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
        let sts = vpcd_auth::string_to_sign("GET", "127.0.0.1:8080", API_PATH, &borrowed, false);
        assert!(vpcd_auth::verify(
            b"key",
            SignatureMethod::HmacSha256,
            &sts,
            sig
        ));
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

//! The HTTP side under hostile or unusual clients (issue 11): idle and slow
//! connections, the connection cap, the body and whole-request timeouts,
//! HTTP/2 (h2c and over TLS) with `:authority` as the host, and the
//! per-account request rate limit.
//!
//! The timeouts below only keep a broken build from hanging the suite; each
//! test asserts what the server did (closed, answered), never how fast.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{kv, spawn_with, Options, TestApp};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use vpcd::server::ServeConfig;

/// How long a test waits for something that should happen at once.
const GUARD: Duration = Duration::from_secs(20);

async fn app(configure: fn(&mut ServeConfig)) -> TestApp {
    spawn_with(Options {
        configure,
        ..Options::default()
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(&app.host).await.unwrap()
}

/// Read until the server closes the connection; what it sent before.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    match tokio::time::timeout(GUARD, s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => buf,
        // A reset after the answer is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => buf,
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!(
            "the server did not close the connection within {GUARD:?}; got {:?}",
            String::from_utf8_lossy(&buf)
        ),
    }
}

/// The JSON envelope of a raw HTTP/1.1 answer.
fn envelope(raw: &[u8]) -> Value {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let app = app(|c| {
        c.idle_timeout = Duration::from_millis(200);
        // Long enough that only the idle timeout can close it.
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut silent = connect(&app).await;
    assert!(until_closed(&mut silent).await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout_following_its_answer() {
    let app = app(|c| {
        c.idle_timeout = Duration::from_millis(300);
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"ok\""), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_after_the_body_read_timeout() {
    let app = app(|c| {
        c.settings.body_read_timeout = Duration::from_millis(200);
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut s = connect(&app).await;
    s.write_all(
        b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n\
          Action=Des",
    )
    .await
    .unwrap();
    let v = envelope(&until_closed(&mut s).await);
    assert_eq!(v["code"], 4000, "{v}");
    assert_eq!(
        v["message"], "request body: was not received within 200 ms",
        "{v}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_past_the_whole_request_timeout_gets_an_error_answer() {
    let app = app(|c| {
        c.settings.request_timeout = Duration::from_millis(200);
        c.settings.body_read_timeout = Duration::from_secs(600);
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    // API 3.0 this time: its envelope.
    let mut s = connect(&app).await;
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let v = envelope(&until_closed(&mut s).await);
    assert_eq!(v["Response"]["Error"]["Code"], "InternalError", "{v}");
    let msg = v["Response"]["Error"]["Message"].as_str().unwrap();
    assert!(msg.contains("not completed within 200 ms"), "{msg}");
    app.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let app = app(|c| {
        c.max_connections = 2;
        c.idle_timeout = Duration::from_secs(600);
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two held every slot"
    );
    drop(first);
    let rest = until_closed(&mut third).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("200 OK"), "{text}");
    app.shutdown().await;
}

// ---- HTTP/2 ---------------------------------------------------------------

/// Send one GET over an HTTP/2 connection with `authority` in the URI and
/// `host` (when given) as a Host header; the answer's JSON.
async fn h2_get<T>(io: T, authority: &str, host: Option<&str>, query: &str) -> Value
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client, conn) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = axum::http::Request::get(format!("http://{authority}/v2/index.php?{query}"));
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
    let resp = tokio::time::timeout(GUARD, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).unwrap()
}

/// A signed DescribeVpcEx for `host`, as a query string.
fn describe_for(app: &TestApp, host: &str) -> String {
    let signed = app.sign_for(host, &app.account, "GET", "DescribeVpcEx", &kv(&[]));
    vpcd_auth::encode_form(&signed)
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A new connection to the listener at `authority`: TLS or plain.
async fn h2_io(app: &TestApp, authority: &str, tls: bool) -> Box<dyn Io> {
    let addr = authority.parse().unwrap();
    if tls {
        Box::new(h2_tls(app, addr).await)
    } else {
        Box::new(TcpStream::connect(addr).await.unwrap())
    }
}

/// Over HTTP/2 to `authority`: `:authority` alone and with the same Host
/// are served; a Host that disagrees is refused.
async fn h2_serves_authority_as_the_host(app: &TestApp, authority: &str, tls: bool) {
    let query = || describe_for(app, authority);
    let v = h2_get(h2_io(app, authority, tls).await, authority, None, &query()).await;
    assert_eq!(v["code"], 0, "{v}");
    let v = h2_get(
        h2_io(app, authority, tls).await,
        authority,
        Some(authority),
        &query(),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let v = h2_get(
        h2_io(app, authority, tls).await,
        authority,
        Some("other.example"),
        &query(),
    )
    .await;
    assert_eq!(v["code"], 4000, "{v}");
    assert_eq!(
        v["message"], "Host: the Host header and :authority disagree",
        "{v}"
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_with_authority_as_the_host() {
    let app = app(|_| {}).await;
    h2_serves_authority_as_the_host(&app, &app.host.clone(), false).await;
    app.shutdown().await;
}

/// A TLS connection to the app's HTTPS listener offering only h2 (ALPN),
/// trusting its self-signed certificate.
async fn h2_tls(
    app: &TestApp,
    addr: std::net::SocketAddr,
) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let cert = CertificateDer::from_pem_file(app.data_dir.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

#[tokio::test]
async fn http2_over_tls_is_served_with_authority_as_the_host() {
    let app = app(|c| c.https = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = app.running.as_ref().unwrap().bound.https.unwrap();
    h2_serves_authority_as_the_host(&app, &addr.to_string(), true).await;
    app.shutdown().await;
}

// ---- the per-account rate limit ------------------------------------------

#[tokio::test]
async fn an_account_over_its_rate_is_refused_with_the_documented_code_and_others_are_not() {
    let app = spawn_with(Options {
        // A rate so low that no token comes back during the test.
        rate_limit: vpcd::RateLimit {
            per_second: 0.001,
            burst: 3,
        },
        ..Options::default()
    })
    .await;
    let other = app.new_account("other").await;
    for _ in 0..3 {
        app.ok("DescribeVpcEx", &[]).await;
    }
    let v = app.call("DescribeVpcEx", &[]).await;
    assert_eq!(v["code"], 4400, "{v}");
    assert_eq!(v["codeDesc"], "RequestLimitExceeded", "{v}");
    // API 3.0 shares the account's bucket and answers its own code.
    let v3 = common::v3_call(&app, &app.account, "DescribeVpcs", "{}").await;
    assert_eq!(
        v3["Response"]["Error"]["Code"], "RequestLimitExceeded",
        "{v3}"
    );
    // Another account is not slowed down by the first.
    let v = app.call_as(&other, "DescribeVpcEx", &[]).await;
    assert_eq!(v["code"], 0, "{v}");
    // An unsigned or badly signed request spends no account's tokens.
    let mut forged = app.sign(&other, "GET", "DescribeVpcEx", &kv(&[]));
    for (k, v) in forged.iter_mut() {
        if k == "Signature" {
            *v = "AAAA".into();
        }
    }
    let v = app.send_get(&forged).await;
    assert_eq!(v["codeDesc"], "AuthFailure", "{v}");
    let v = app.call_as(&other, "DescribeVpcEx", &[]).await;
    assert_eq!(v["code"], 0, "{v}");
    app.shutdown().await;
}

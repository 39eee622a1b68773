//! The web console (`/console/`).
//!
//! Two kinds of test:
//! - HTTP-level checks against an in-process vpcd (no browser): cookie
//!   flags and security headers, refused sign-ins that say nothing
//!   specific, CSRF and cross-origin refusals, sign-out and expiry, no
//!   secret in any page, the API's own validation messages next to the
//!   form field, password sign-in through `vpcd admin`, `--console off`.
//! - One end-to-end test in a real browser (Debian's chromium driven
//!   through chromedriver on a loopback port): sign in, create a VPC, a VPN
//!   gateway, a peer gateway and a connection through the forms, see a
//!   validation error for a bad CIDR, download the peer's strongSwan
//!   configuration, load it into a real peer charon in a network namespace,
//!   and watch the connection's health change on the page by itself.
//!   Screenshots go to `target/tmp/console-screenshots/`.
//!
//! Network safety: the browser, chromedriver and vpcd talk on 127.0.0.1
//! only (proxy variables cleared for each); tunnel traffic stays inside the
//! test bed's two namespaces.

mod common;
mod e2e;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_app, spawn_with, Options, TestApp};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use vpcd_types::testing::without_proxies;

// ---- HTTP-level checks --------------------------------------------------------

/// A client that follows no redirect (the tests look at each answer).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session cookie's `name=value` from a sign-in answer.
fn session_cookie(headers: &HeaderMap) -> String {
    let set = headers
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn sign_in(app: &TestApp, http: &reqwest::Client) -> (String, reqwest::Response) {
    let res = http
        .post(format!("{}/console/login", app.base))
        .form(&[
            ("mode", "key"),
            ("secretId", app.account.secret_id.as_str()),
            ("secretKey", app.account.secret_key.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    (session_cookie(res.headers()), res)
}

async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> reqwest::Response {
    http.get(url).header(COOKIE, cookie).send().await.unwrap()
}

/// The CSRF token of the page at `url` (its hidden field).
async fn csrf_of(http: &reqwest::Client, url: &str, cookie: &str) -> String {
    let page = get(http, url, cookie).await.text().await.unwrap();
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_pages_carry_security_headers() {
    let app = spawn_app().await;
    let http = client();
    let login = get(&http, &format!("{}/console/login", app.base), "").await;
    assert_eq!(login.status(), StatusCode::OK);
    let h = login.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");

    let (cookie, res) = sign_in(&app, &http).await;
    assert_eq!(res.headers()[LOCATION], "/console/conns");
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP: no Secure flag ({set})"
    );
    let token = cookie.split_once('=').unwrap().1;
    assert_eq!(token.len(), 64);
    let page = get(&http, &format!("{}/console/vpcs", app.base), &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let text = page.text().await.unwrap();
    assert!(text.contains("Signed in as"), "{text}");
    assert!(!text.contains(token), "the session token is in the page");
    app.shutdown().await;
}

#[tokio::test]
async fn over_https_the_cookie_is_secure() {
    let app = spawn_with(Options {
        configure: |cfg| cfg.https = Some("127.0.0.1:0".parse().unwrap()),
        ..Options::default()
    })
    .await;
    let listen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(app.data_dir.join("listen.json")).unwrap())
            .unwrap();
    let https = listen["https"].as_str().unwrap();
    let cert = std::fs::read(app.data_dir.join("tls/cert.pem")).unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let res = http
        .post(format!("https://{https}/console/login"))
        .form(&[
            ("mode", "key"),
            ("secretId", app.account.secret_id.as_str()),
            ("secretKey", app.account.secret_key.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn refused_sign_ins_look_alike_and_echo_nothing() {
    let app = spawn_app().await;
    let http = client();
    let other = app.new_account("bob").await;
    app.store()
        .set_key_disabled(&other.secret_id, true)
        .await
        .unwrap();
    let wrong_key = "WrongSecretKeyValue0123456789abc";
    let cases = [
        (app.account.secret_id.as_str(), wrong_key),
        ("AKIDdoesnotexist000000000000000000", wrong_key),
        (other.secret_id.as_str(), other.secret_key.as_str()),
        (app.account.secret_id.as_str(), ""),
    ];
    let mut pages = Vec::new();
    for (id, key) in cases {
        let res = http
            .post(format!("{}/console/login", app.base))
            .form(&[("mode", "key"), ("secretId", id), ("secretKey", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{id}");
        assert!(res.headers().get(SET_COOKIE).is_none());
        let text = res.text().await.unwrap();
        if !key.is_empty() {
            assert!(!text.contains(key), "the SecretKey is echoed");
        }
        assert!(!text.contains(id), "the SecretId is echoed");
        pages.push(text);
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "refusals differ");
    assert!(pages[0].contains("Sign-in failed"));
    // No password set: a password sign-in is refused the same way.
    let res = http
        .post(format!("{}/console/login", app.base))
        .form(&[
            ("mode", "password"),
            ("account", "bob"),
            ("password", "whatever-it-is"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), pages[0]);
    app.shutdown().await;
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_or_from_elsewhere_are_refused() {
    let app = spawn_app().await;
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let url = format!("{}/console/vpcs", app.base);
    let csrf = csrf_of(&http, &url, &cookie).await;
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = http.post(&url).header(COOKIE, &cookie).form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let fields = |csrf: Option<String>| {
        let mut f = vec![
            ("region", "gz".to_owned()),
            ("vpcName", "csrf".to_owned()),
            ("cidrBlock", "10.9.0.0/16".to_owned()),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c));
        }
        f
    };
    let missing = post(fields(None), None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let mut wrong = csrf.clone();
    wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
    let wrong = post(fields(Some(wrong)), None).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross = post(fields(Some(csrf.clone())), Some("http://evil.example"))
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // Nothing was created by the refused forms.
    let v = app.call("DescribeVpcEx", &[]).await;
    assert_eq!(v["totalCount"], 0, "{v}");
    // The same form with the token, from the console's own origin, works.
    let origin: &'static str = Box::leak(app.base.clone().into_boxed_str());
    let ok = post(fields(Some(csrf)), Some(origin)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let v = app.call("DescribeVpcEx", &[]).await;
    assert_eq!(v["totalCount"], 1, "{v}");
    assert_eq!(v["data"][0]["vpcName"], "csrf");
    // Sign-out needs the token too.
    let out = http
        .post(format!("{}/console/logout", app.base))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    app.shutdown().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere() {
    let app = spawn_app().await;
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let page = format!("{}/console/conns", app.base);
    assert_eq!(get(&http, &page, &cookie).await.status(), StatusCode::OK);
    let csrf = csrf_of(&http, &page, &cookie).await;
    let out = http
        .post(format!("{}/console/logout", app.base))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie no longer opens anything.
    let again = get(&http, &page, &cookie).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()[LOCATION], "/console/login");
    let state = get(&http, &format!("{}/console/state.json", app.base), &cookie).await;
    assert_eq!(state.status(), StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    // Sessions that expire the moment they start: the sign-in succeeds,
    // the next request finds the session expired.
    let app = spawn_with(Options {
        configure: |cfg| cfg.settings.console.session_ttl = Duration::ZERO,
        ..Options::default()
    })
    .await;
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let res = get(&http, &format!("{}/console/vpcs", app.base), &cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/login");
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_cidr_gets_the_apis_own_message_next_to_its_field() {
    let app = spawn_app().await;
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let url = format!("{}/console/vpcs", app.base);
    let csrf = csrf_of(&http, &url, &cookie).await;
    let res = http
        .post(&url)
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("region", "gz"),
            ("vpcName", "bad"),
            ("cidrBlock", "10.0.0.0/33"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    let api = app
        .call(
            "CreateVpc",
            &[("vpcName", "bad"), ("cidrBlock", "10.0.0.0/33")],
        )
        .await;
    let message = api["message"].as_str().unwrap();
    assert!(message.starts_with("cidrBlock"), "{api}");
    let shown = format!(
        r#"<p class="error" role="alert" data-error-for="cidrBlock" data-code="{}">{}</p>"#,
        api["codeDesc"].as_str().unwrap(),
        message.replace('<', "&lt;").replace('>', "&gt;")
    );
    assert!(page.contains(&shown), "{shown} not in:\n{page}");
    // The rest of what was typed is shown again.
    assert!(page.contains(r#"value="bad""#));
    app.shutdown().await;
}

#[tokio::test]
async fn no_secret_in_any_page() {
    let app = spawn_with(Options {
        worker: true,
        ..Options::default()
    })
    .await;
    let f = app.fixture("s").await;
    let ugw = app.add_user_gw("s", 9).await;
    let psk = "TopSecretPsk-4242";
    let add = app
        .add_conn(
            &f,
            &ugw,
            &[
                ("preSharedKey", psk),
                ("userGwCidrBlock.0", "10.250.0.0/16"),
            ],
        )
        .await;
    assert_eq!(add["code"], 0, "{add}");
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let token = cookie.split_once('=').unwrap().1.to_owned();
    for page in [
        "vpcs",
        "vpn-gws",
        "user-gws",
        "conns",
        "tasks",
        "state.json",
    ] {
        let res = get(
            &http,
            &format!("{}/console/{page}?region=gz", app.base),
            &cookie,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        let text = res.text().await.unwrap();
        assert!(!text.contains(psk), "{page} shows the PSK");
        assert!(
            !text.contains(&app.account.secret_key),
            "{page} shows the SecretKey"
        );
        assert!(!text.contains(&token), "{page} shows the session token");
    }
    // The connection is listed (so the check above looked at it).
    let conns = get(&http, &format!("{}/console/conns", app.base), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(conns.contains("10.250.0.0/16"), "{conns}");
    app.shutdown().await;
}

/// A connection's diagnostics page shows the DescribeVpnConnDiagnostics
/// answer: on an API-only gateway, plainly that no IPsec is negotiated; a
/// connection that does not exist gets the API's own refusal naming
/// vpnConnId. The list links each connection to its page.
#[tokio::test]
async fn a_connections_diagnostics_page_says_what_the_api_says() {
    let app = spawn_with(Options {
        worker: true,
        ..Options::default()
    })
    .await;
    let f = app.fixture("d").await;
    let ugw = app.add_user_gw("d", 9).await;
    let add = app
        .add_conn(&f, &ugw, &[("userGwCidrBlock.0", "10.251.0.0/16")])
        .await;
    assert_eq!(add["code"], 0, "{add}");
    let http = client();
    let (cookie, _) = sign_in(&app, &http).await;
    let list = get(
        &http,
        &format!("{}/console/conns?region=gz", app.base),
        &cookie,
    )
    .await
    .text()
    .await
    .unwrap();
    // The one connection's id, as its row carries it.
    let conn = list
        .split_once(r#"data-conn=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("no connection row in {list}"));
    assert!(conn.starts_with("vpnx-"), "{conn}");
    let link = format!("/console/conns/diagnostics?region=gz&amp;vpnConnId={conn}");
    assert!(list.contains(&link), "no link {link} in {list}");

    let res = get(
        &http,
        &format!(
            "{}/console/conns/diagnostics?region=gz&vpnConnId={conn}",
            app.base
        ),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains(&conn), "{page}");
    assert!(
        page.contains(r#"<td data-field="dataPlane">api-only</td>"#),
        "{page}"
    );
    assert!(page.contains("no IKE/IPsec is negotiated"), "{page}");
    assert!(page.contains("None recorded."), "{page}");

    let res = get(
        &http,
        &format!(
            "{}/console/conns/diagnostics?region=gz&vpnConnId=vpnx-nothere",
            app.base
        ),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("vpnConnId"),
        "the refusal names the parameter: {page}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_console_password_set_by_vpcd_admin_signs_in() {
    let app = spawn_app().await;
    if std::env::var_os(vpcd_store::testing::PG_URL_VAR).is_some() {
        // `vpcd admin` would need the app's scratch database URL; the
        // store methods are covered on both engines by the conformance suite.
        eprintln!("the admin half runs on SQLite only");
        app.shutdown().await;
        return;
    }
    app.store().create_account("carol").await.unwrap();
    let password = "correct horse battery staple";
    let mut admin = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
        .args(["admin", "--data-dir"])
        .arg(&app.data_dir)
        .args(["account", "password", "carol"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(admin.stdin.take().unwrap(), "{password}").unwrap();
    let out = admin.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains(password));
    let login = app.store().console_login("carol").await.unwrap().unwrap();
    let hash = login.password_hash.expect("a hash is stored");
    assert!(
        hash.starts_with("$argon2id$") && !hash.contains(password),
        "{hash}"
    );

    let http = client();
    let try_password = |p: &'static str| {
        http.post(format!("{}/console/login", app.base))
            .form(&[("mode", "password"), ("account", "carol"), ("password", p)])
            .send()
    };
    let wrong = try_password("correct horse battery stapler").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = try_password(password).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(ok.headers());
    let page = get(&http, &format!("{}/console/vpcs", app.base), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<strong>carol</strong>"), "{page}");
    // Disabling the account ends its sessions.
    app.store()
        .set_account_disabled("carol", true)
        .await
        .unwrap();
    let res = get(&http, &format!("{}/console/vpcs", app.base), &cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.shutdown().await;
}

#[tokio::test]
async fn console_off_serves_no_console() {
    let app = spawn_with(Options {
        configure: |cfg| cfg.settings.console.enabled = false,
        ..Options::default()
    })
    .await;
    let http = client();
    let res = get(&http, &format!("{}/console/login", app.base), "").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let v = app.call("DescribeVpcEx", &[]).await;
    assert_eq!(v["code"], 0, "the API is still served");
    app.shutdown().await;
}

// ---- the browser ----------------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a loopback port, stopped by PID when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(log: &Path) -> Driver {
        // A port the kernel just handed out and released: chromedriver binds
        // it at once (it only listens on loopback).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = without_proxies(&mut Command::new(CHROMEDRIVER))
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by PID
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Poll `check` until it answers `Some`, failing after `within`.
async fn until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_creates_everything_and_sees_health_change() {
    use fantoccini::{ClientBuilder, Locator};
    use vpcd_dataplane::testbed::{Side, Testbed, TestbedConfig};

    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            vpcd_types::testing::skip(
                "console browser test",
                &format!("{tool} missing (apt-get install chromium chromium-driver)"),
            );
            return;
        }
    }
    let Some(mut tb) = Testbed::start_or_skip(TestbedConfig::default()) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let v = e2e::Vpcd::start(&work.path().join("data"), &tb.vici_uri(Side::Cloud), &[]);
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("data/credentials")).unwrap(),
    )
    .unwrap();
    let (secret_id, secret_key) = (
        creds["secretId"].as_str().unwrap().to_owned(),
        creds["secretKey"].as_str().unwrap().to_owned(),
    );
    let downloads = work.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let driver = Driver::start(&work.path().join("chromedriver.log"));
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-proxy-server", "--window-size=1500,1400",
                     format!("--user-data-dir={}", work.path().join("profile").display())],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session");
    let shots = screenshots();
    let shot = |name: &'static str| {
        let c = c.clone();
        let path = shots.join(format!("{name}.png"));
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(&path, png).unwrap();
        }
    };
    let base = v.http.clone();

    // Sign in with the account's key.
    c.goto(&format!("{base}/console/login")).await.unwrap();
    let f = c.form(Locator::Css("#login-key")).await.unwrap();
    f.set_by_name("secretId", &secret_id).await.unwrap();
    f.set_by_name("secretKey", &secret_key).await.unwrap();
    f.submit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.current_url().await.unwrap().path() != "/console/conns" {
        if Instant::now() > deadline {
            shot("0-sign-in-failed").await;
            panic!("not signed in; the page:\n{}", c.source().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cookie = c.get_named_cookie("vpcd_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );

    // A VPC: first a bad CIDR, refused next to its field, then a good one.
    c.goto(&format!("{base}/console/vpcs")).await.unwrap();
    let f = c.form(Locator::Css("#create-vpc")).await.unwrap();
    f.set_by_name("vpcName", "web").await.unwrap();
    f.set_by_name("cidrBlock", "10.100.0.0/33").await.unwrap();
    f.submit().await.unwrap();
    let err = c
        .wait()
        .for_element(Locator::Css(r#"[data-error-for="cidrBlock"]"#))
        .await
        .unwrap();
    let text = err.text().await.unwrap();
    assert!(text.starts_with("cidrBlock"), "{text}");
    shot("1-bad-cidr").await;
    let f = c.form(Locator::Css("#create-vpc")).await.unwrap();
    f.set_by_name("cidrBlock", "10.100.0.0/16").await.unwrap();
    f.submit().await.unwrap();
    let row = c
        .wait()
        .for_element(Locator::Css("#vpcs tr[data-id]"))
        .await
        .unwrap();
    assert!(row.text().await.unwrap().contains("10.100.0.0/16"));

    // A VPN gateway in it.
    c.goto(&format!("{base}/console/vpn-gws")).await.unwrap();
    let f = c.form(Locator::Css("#create-vpn-gw")).await.unwrap();
    f.set_by_name("name", "gw").await.unwrap();
    f.set_by_name("bandwidth", "5").await.unwrap();
    f.submit().await.unwrap();
    let row = c
        .wait()
        .for_element(Locator::Css("#vpn-gws tr[data-id]"))
        .await
        .unwrap();
    assert!(row.text().await.unwrap().contains("203.0.113.1"));

    // The peer gateway.
    c.goto(&format!("{base}/console/user-gws")).await.unwrap();
    let f = c.form(Locator::Css("#create-user-gw")).await.unwrap();
    f.set_by_name("userGwName", "office").await.unwrap();
    f.set_by_name("userGwAddr", "198.51.100.1").await.unwrap();
    f.submit().await.unwrap();
    c.wait()
        .for_element(Locator::Css("#user-gws tr[data-id]"))
        .await
        .unwrap();

    // The connection, with the form's defaults and a PSK.
    let psk = "console-psk-7Hq2";
    c.goto(&format!("{base}/console/conns")).await.unwrap();
    let f = c.form(Locator::Css("#create-conn")).await.unwrap();
    f.set_by_name("vpnConnName", "to-office").await.unwrap();
    f.set_by_name("preSharedKey", psk).await.unwrap();
    f.set_by_name("userGwCidrBlock", "10.200.0.0/16")
        .await
        .unwrap();
    f.submit().await.unwrap();
    let row = c
        .wait()
        .for_element(Locator::Css("#conns tr[data-conn]"))
        .await
        .unwrap();
    let conn_id = row.attr("data-conn").await.unwrap().unwrap();
    let cell = |field: &'static str| {
        let c = c.clone();
        let css = format!(r#"tr[data-conn="{conn_id}"] [data-field="{field}"]"#);
        async move {
            c.find(Locator::Css(&css))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // The task finishes and the table says so by itself (no reload).
    until(
        Duration::from_secs(20),
        "the connection running",
        || async { (cell("status").await == "running").then_some(()) },
    )
    .await;
    assert_eq!(cell("health").await, "down", "no peer yet");
    let source = c.source().await.unwrap();
    assert!(!source.contains(psk), "the PSK is in the page source");
    assert!(
        !source.contains(&secret_key),
        "the SecretKey is in the page source"
    );
    assert!(
        !source.contains(cookie.value()),
        "the session token is in the page source"
    );

    // Download the strongSwan configuration for the peer.
    let row_form = c
        .find(Locator::Css(&format!(
            r#"tr[data-conn="{conn_id}"] form.config"#
        )))
        .await
        .unwrap();
    let vendor = row_form.find(Locator::Css("select")).await.unwrap();
    vendor.select_by_value("strongswan").await.unwrap();
    row_form
        .find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let file = downloads.join(format!("{conn_id}-strongswan.conf"));
    let config = until(
        Duration::from_secs(20),
        "the configuration downloaded",
        || {
            let file = file.clone();
            async move {
                std::fs::read_to_string(&file)
                    .ok()
                    .filter(|t| t.contains("connections"))
            }
        },
    )
    .await;
    // The device's file carries the PSK (hex-encoded for swanctl).
    let psk_hex: String = psk.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        config.contains(&format!("secret = 0x{psk_hex}")),
        "the file carries the PSK for the device:\n{config}"
    );
    assert!(
        config.contains("203.0.113.1") && config.contains("10.200.0.0/16"),
        "{config}"
    );

    // The peer loads it: health goes up on the page by itself.
    tb.load_swanctl(Side::Peer, &config).unwrap();
    until(Duration::from_secs(30), "health up", || async {
        (cell("health").await == "up").then_some(())
    })
    .await;
    assert_eq!(cell("netStatus").await, "available");
    shot("2-connection-up").await;

    // The peer goes away: health goes down, again without a reload.
    tb.stop_charon(Side::Peer);
    until(Duration::from_secs(30), "health down", || async {
        (cell("health").await == "down").then_some(())
    })
    .await;
    assert_eq!(cell("netStatus").await, "unavailable");
    shot("3-connection-down").await;

    // Sign out: the session is gone.
    c.find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(Duration::from_secs(10), "signed out", || {
        let c = c.clone();
        async move {
            c.current_url()
                .await
                .ok()
                .filter(|u| u.path() == "/console/login")
        }
    })
    .await;
    c.goto(&format!("{base}/console/conns")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
    c.close().await.unwrap();
    drop(driver);
    drop(v);
    tb.teardown();
}

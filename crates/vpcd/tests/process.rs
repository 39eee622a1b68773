//! The `vpcd` binary as operators run it: first start, secrets in logs,
//! kill -9 with tasks in flight, graceful shutdown.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};
use vpcd_types::testing::without_proxies;

use common::encodings;
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpcd"))
}

struct Proc {
    child: Child,
    http: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Stopped by PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path, extra: &[&str], log: &Path) -> Proc {
    let _ = std::fs::remove_file(data.join("listen.json"));
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = without_proxies(&mut Command::new(bin()))
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
        .args(extra)
        .env("VPCD_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("VPCD_RATE_LIMIT_PER_ACCOUNT", "0")
        .stdout(Stdio::piped())
        .stderr(logf)
        .spawn()
        .expect("spawn vpcd");
    // Owned by a value with Drop at once, so a failed start still stops it.
    let mut p = Proc {
        child,
        http: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::fs::read_to_string(data.join("listen.json")) {
            let v: Value = serde_json::from_str(&s).unwrap();
            p.http = format!("http://{}", v["http"].as_str().unwrap());
            return p;
        }
        assert!(Instant::now() < deadline, "vpcd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn call(data: &Path, endpoint: &str, action: &str, params: &[&str]) -> Value {
    let out = without_proxies(&mut Command::new(bin()))
        .arg("call")
        .arg(action)
        .args(params)
        .args(["--endpoint", endpoint, "--credentials"])
        .arg(data.join("credentials"))
        .env("VPCD_LOG", "trace")
        .output()
        .expect("vpcd call");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!(
            "not JSON: {text} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A VPC, a VPN gateway and a peer gateway: their unified ids.
fn resources(data: &Path, http: &str) -> (String, String, String) {
    let vpc = call(
        data,
        http,
        "CreateVpc",
        &["vpcName=v", "cidrBlock=10.0.0.0/16"],
    );
    let vpc_id = vpc["uniqVpcId"].as_str().unwrap().to_owned();
    let gw = call(
        data,
        http,
        "RunVpnGw",
        &[&format!("vpcId={vpc_id}"), "name=g"],
    );
    let gw_id = gw["data"]["vpnGwId"].as_str().unwrap().to_owned();
    let u = call(
        data,
        http,
        "AddUserGw",
        &["userGwName=u", "userGwAddr=198.51.100.9"],
    );
    let u_id = u["userGwId"].as_str().unwrap().to_owned();
    (vpc_id, gw_id, u_id)
}

/// AddVpnConnEx between `ids` (from [`resources`]) with pre-shared key
/// `psk` and `extra` parameters.
fn add_conn(
    data: &Path,
    http: &str,
    ids: &(String, String, String),
    psk: &str,
    extra: &[&str],
) -> Value {
    let (vpc_id, gw_id, u_id) = ids;
    let mut params = vec![
        format!("vpcId={vpc_id}"),
        format!("vpnGwId={gw_id}"),
        format!("userGwId={u_id}"),
        format!("preSharedKey={psk}"),
    ];
    params.extend(extra.iter().map(|p| p.to_string()));
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    call(data, http, "AddVpnConnEx", &params)
}

/// [`add_conn`] of a tunnel to 192.168.0.0/24 that must be accepted.
fn add_conn_ok(data: &Path, http: &str, ids: &(String, String, String), psk: &str) {
    let add = add_conn(data, http, ids, psk, &["userGwCidrBlock.0=192.168.0.0/24"]);
    assert_eq!(add["code"], 0, "{add}");
}

fn creds(data: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data.join("credentials")).unwrap()).unwrap()
}

#[test]
fn first_start_credentials_and_secrets_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let p = start(&data, &[], &log);
    let c = creds(&data);
    let secret_key = c["secretKey"].as_str().unwrap().to_owned();
    assert_eq!(c["region"], "gz");
    assert!(c["secretId"].as_str().unwrap().starts_with("AKID"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("credentials"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(data.join("tls/cert.pem").exists() && data.join("tls/key.pem").exists());

    // Traffic that carries every kind of secret: PSKs, signatures, bad
    // signatures and bad PSKs.
    let psk = "Sup3r-Secret-PSK-value!";
    let ids = resources(&data, &p.http);
    add_conn_ok(&data, &p.http, &ids, psk);
    let bad_psk = "bad secret with spaces";
    let bad = add_conn(
        &data,
        &p.http,
        &ids,
        bad_psk,
        &["userGwCidrBlock.0=192.168.1.0/24", "vpnConnName=x"],
    );
    assert_eq!(bad["code"], 4000);
    assert!(!bad.to_string().contains(bad_psk));
    // A wrong signature, on an otherwise valid request (a current Timestamp,
    // so the signature is what gets checked), with characters that are
    // percent-encoded on the wire.
    let wrong_sig = "Zm9v+YmFy/YmF6cXV4d3Jvbmc=";
    let query = vpcd_auth::encode_form(&[
        ("Action".into(), "DescribeVpcEx".into()),
        ("Region".into(), "gz".into()),
        ("Timestamp".into(), unix_now().to_string()),
        ("Nonce".into(), "5".into()),
        ("SecretId".into(), c["secretId"].as_str().unwrap().into()),
        ("Signature".into(), wrong_sig.into()),
    ]);
    let refused: Value = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/v2/index.php?{query}", p.http))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (&refused["code"], &refused["codeDesc"]),
        (&Value::from(4100), &Value::from("AuthFailure")),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature:"),
        "{refused}"
    );
    assert!(!refused.to_string().contains(wrong_sig), "{refused}");
    drop(p);

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the run logged at trace level"
    );
    assert!(
        logs.contains("the signature does not match"),
        "the refusal was logged, so the search below looked at it:\n{logs}"
    );
    for secret in [secret_key.as_str(), psk, bad_psk, wrong_sig] {
        for form in encodings(secret) {
            assert!(
                !logs.contains(&form),
                "a secret reached the log (as {form:?})"
            );
        }
    }
    // Secrets at rest: no file of the data directory but the credentials
    // file (which exists to hand the first key over) holds the SecretKey
    // or the PSK in clear: not the database, its -wal and -shm, nor the
    // nonce database.
    let mut looked = Vec::new();
    for (path, _) in modes(&data) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || name == "credentials" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [secret_key.as_str(), psk] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{name} holds a secret in clear");
        }
        looked.push(name);
    }
    for f in ["vpcd.db", "vpcd.db-wal", "vpcd.db-shm"] {
        assert!(looked.iter().any(|n| n == f), "{f} not among {looked:?}");
    }
    // Signatures of the real requests: none of their Base64 values appear.
    for line in logs.lines() {
        assert!(
            !line.contains("Signature="),
            "a signed query reached the log: {line}"
        );
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every directory under `dir` (and `dir`) with its mode, then every file.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(
        dir.to_owned(),
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
    )];
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(modes(&e.path()));
        } else {
            out.push((e.path(), e.metadata().unwrap().permissions().mode() & 0o777));
        }
    }
    out
}

#[test]
fn secrets_at_rest_are_owner_only_at_every_start_and_a_piped_stdout_gets_no_secret_key() {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let mut p = start(&data, &[], &log);
    // A write, so the database has its -wal and the nonce database exists.
    let vpc = call(
        &data,
        &p.http,
        "CreateVpc",
        &["vpcName=v", "cidrBlock=10.0.0.0/16"],
    );
    assert_eq!(vpc["code"], 0, "{vpc}");
    let mut stdout = p.child.stdout.take().unwrap();
    drop(p);
    let mut banner = String::new();
    stdout.read_to_string(&mut banner).unwrap();
    let c = creds(&data);
    assert!(banner.contains(c["secretId"].as_str().unwrap()), "{banner}");
    assert!(banner.contains(&data.join("credentials").display().to_string()));
    assert!(
        !banner.contains(c["secretKey"].as_str().unwrap()),
        "{banner}"
    );

    let names: Vec<String> = modes(&data)
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in [
        "vpcd.db",
        "vpcd.db-wal",
        "vpcd.db-nonces",
        "credentials",
        "key.pem",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} missing from {names:?}");
    }
    let check = |when: &str| {
        for (path, mode) in modes(&data) {
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{when}: {} is {mode:o}", path.display());
        }
    };
    check("first start");

    // What an older vpcd (umask 022) left: everything readable by all.
    for (path, _) in modes(&data) {
        let wide = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wide)).unwrap();
    }
    let p = start(&data, &[], &log);
    check("restart");
    drop(p);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("readable by group or others"),
        "no warning logged"
    );
}

/// Quotas high enough that no add of a burst is refused.
const NO_LIMITS: [&str; 8] = [
    "--limit-conns-per-user-gw",
    "1000",
    "--limit-conns-per-vpn-gw",
    "1000",
    "--limit-conns-per-region",
    "1000",
    "--limit-conns-per-pair",
    "1000",
];

/// The database of the vpcd serving `data`, opened beside it (SQLite takes
/// a reader while vpcd writes), to see what a kill interrupted.
fn open_store(rt: &tokio::runtime::Runtime, data: &Path) -> Arc<dyn vpcd_store::Store> {
    rt.block_on(vpcd_store::connect(
        &format!("sqlite://{}", data.join("vpcd.db").display()),
        vpcd_store::MasterKey::read(&data.join("master.key")).unwrap(),
    ))
    .unwrap()
}

/// Where the test account's resources live.
fn scope() -> vpcd_store::Scope {
    vpcd_store::Scope {
        account_id: vpcd_types::AccountId::new(1),
        region: "gz".into(),
    }
}

/// The rows of `tasks`, read from the database.
fn task_rows(
    rt: &tokio::runtime::Runtime,
    store: &dyn vpcd_store::Store,
    tasks: &[i64],
) -> Vec<vpcd_store::Task> {
    rt.block_on(async {
        let mut rows = Vec::new();
        for t in tasks {
            let task = store
                .get_task(&scope(), vpcd_types::TaskId::new(*t))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("task {t} lost"));
            rows.push(task);
        }
        rows
    })
}

/// SIGKILL `p` by PID, and reap it: until then its pid is a zombie's, and
/// a restarted vpcd could not tell that it is gone.
fn kill_dash_nine(mut p: Proc) {
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

/// Poll DescribeVpcTaskResult until task `t` succeeds; its `data`. A failed
/// task fails the test, and so does `deadline`, with `late` saying why the
/// task should have been done by then.
fn wait_task_succeeded(data: &Path, http: &str, t: i64, deadline: Instant, late: &str) -> Value {
    loop {
        let v = call(
            data,
            http,
            "DescribeVpcTaskResult",
            &[&format!("taskId={t}")],
        );
        if v["data"]["status"] == 0 {
            return v["data"].clone();
        }
        assert_eq!(v["data"]["status"], 2, "task {t} failed: {v}");
        assert!(Instant::now() < deadline, "task {t}: {late}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every connection of the test account (DescribeVpnConn, page by page).
fn all_conns(data: &Path, http: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for offset in (0..).step_by(50) {
        let page = call(
            data,
            http,
            "DescribeVpnConn",
            &["limit=50", &format!("offset={offset}")],
        );
        let rows = page["data"].as_array().unwrap_or_else(|| panic!("{page}"));
        all.extend(rows.iter().cloned());
        if rows.len() < 50 {
            return all;
        }
    }
    unreachable!()
}

#[test]
fn kill_dash_nine_with_tasks_in_flight_then_every_task_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    // Slow data plane and short leases, so the kill lands mid-task.
    let p = start(
        &data,
        &[
            "--api-only-delay-ms",
            "1500",
            "--task-lease-secs",
            "2",
            "--workers",
            "2",
            "--limit-conns-per-vpn-gw",
            "50",
            "--limit-conns-per-region",
            "50",
            "--limit-conns-per-pair",
            "50",
        ],
        &log,
    );
    let (vpc_id, gw_id, u_id) = resources(&data, &p.http);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let v = call(
            &data,
            &p.http,
            "AddVpnConnEx",
            &[
                &format!("vpcId={vpc_id}"),
                &format!("vpnGwId={gw_id}"),
                &format!("userGwId={u_id}"),
                "preSharedKey=k",
                "userGwCidrBlock.0=192.168.0.0/24",
                &format!("vpnConnName=c{i}"),
            ],
        );
        assert_eq!(v["code"], 0, "{v}");
        tasks.push(v["data"]["taskId"].as_i64().unwrap());
    }
    // Kill as soon as a task is claimed and sleeping in the driver (1.5 s),
    // watched through the database the test shares with vpcd.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = open_store(&rt, &data);
    let claimed_unfinished = || -> Vec<vpcd_types::TaskId> {
        task_rows(&rt, &*store, &tasks)
            .iter()
            .filter(|t| t.attempts >= 1 && t.finished_at.is_none())
            .map(|t| t.id)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while claimed_unfinished().is_empty() {
        assert!(Instant::now() < deadline, "no task was ever claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_dash_nine(p);
    // What the kill interrupted, read after the process is gone.
    let interrupted = claimed_unfinished();
    assert!(
        !interrupted.is_empty(),
        "the kill interrupted no claimed task"
    );

    let p = start(&data, &["--task-lease-secs", "2"], &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    for t in &tasks {
        wait_task_succeeded(
            &data,
            &p.http,
            *t,
            deadline,
            "never completed after the restart",
        );
    }
    let list = call(&data, &p.http, "DescribeVpnConn", &["limit=50"]);
    assert_eq!(list["totalCount"], 6, "no connection lost or doubled");
    for c in list["data"].as_array().unwrap() {
        assert_eq!(c["vpcConnStatus"], 6, "{c}");
    }
    drop(p);
    // Each task finished exactly once: the interrupted ones were claimed
    // twice (the killed attempt and the one that finished), every other
    // task once.
    for task in task_rows(&rt, &*store, &tasks) {
        assert!(task.finished_at.is_some(), "{task:?}");
        let want = if interrupted.contains(&task.id) { 2 } else { 1 };
        assert_eq!(task.attempts, want, "{task:?}");
    }
}

/// `call`, but `None` when no JSON answer came back (the server is gone).
fn try_call(data: &Path, endpoint: &str, action: &str, params: &[String]) -> Option<Value> {
    let out = without_proxies(&mut Command::new(bin()))
        .arg("call")
        .arg(action)
        .args(params)
        .args(["--endpoint", endpoint, "--credentials"])
        .arg(data.join("credentials"))
        .output()
        .expect("vpcd call");
    serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).ok()
}

/// Clients adding connections from several threads at once (so the adds
/// are group-committed in batches) until the server is gone.
struct Burst {
    acked: Arc<AtomicUsize>,
    clients: Vec<std::thread::JoinHandle<Vec<(String, i64)>>>,
}

impl Burst {
    /// `threads` clients adding tunnels between `ids` (from [`resources`]),
    /// named `{prefix}{client}-{n}`.
    fn start(
        data: &Path,
        http: &str,
        ids: &(String, String, String),
        threads: usize,
        prefix: &str,
    ) -> Burst {
        let acked = Arc::new(AtomicUsize::new(0));
        let clients = (0..threads)
            .map(|t| {
                let (data, http, count) = (data.to_owned(), http.to_owned(), acked.clone());
                let (vpc_id, gw_id, u_id) = ids.clone();
                let prefix = format!("{prefix}{t}-");
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let name = format!("{prefix}{i}");
                        let params = [
                            format!("vpcId={vpc_id}"),
                            format!("vpnGwId={gw_id}"),
                            format!("userGwId={u_id}"),
                            "preSharedKey=k".into(),
                            "userGwCidrBlock.0=192.168.0.0/24".into(),
                            format!("vpnConnName={name}"),
                        ];
                        match try_call(&data, &http, "AddVpnConnEx", &params) {
                            Some(v) if v["code"] == 0 => {
                                acked.push((name, v["data"]["taskId"].as_i64().unwrap()));
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(v) => panic!("refused under load: {v}"),
                            // The server was killed under this call.
                            None => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        Burst { acked, clients }
    }

    /// How many adds were answered with code 0 so far.
    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Wait until `n` adds were answered with code 0.
    fn wait_acked(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked() < n {
            assert!(Instant::now() < deadline, "the adds did not get going");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The name and task id of every add answered with code 0, once every
    /// client has stopped (the server is gone).
    fn join(self) -> Vec<(String, i64)> {
        self.clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    }
}

/// kill -9 under concurrent adds (so they are group-committed in batches)
/// with tasks in the driver: after a restart every add that was answered
/// with code 0 exists, and its task completes, although the leases of the
/// killed process last ten minutes: the restarted vpcd sees that their
/// holder (this host, its process gone) is dead and takes them at once.
#[test]
fn kill_dash_nine_under_load_loses_no_acknowledged_add() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let mut args = vec![
        "--api-only-delay-ms",
        "2000",
        "--task-lease-secs",
        "600",
        "--workers",
        "4",
    ];
    args.extend(NO_LIMITS);
    let p = start(&data, &args, &log);
    let ids = resources(&data, &p.http);
    let burst = Burst::start(&data, &p.http, &ids, 6, "c");
    // Let the adds run (and tasks start in the slow driver), then kill,
    // with adds still arriving.
    burst.wait_acked(12);
    kill_dash_nine(p);
    let acked = burst.join();
    eprintln!("{} adds acknowledged before the kill", acked.len());

    let mut args = vec!["--task-lease-secs", "600", "--workers", "4"];
    args.extend(NO_LIMITS);
    let p = start(&data, &args, &log);
    let present: HashSet<String> = all_conns(&data, &p.http)
        .iter()
        .map(|c| c["vpnConnName"].as_str().unwrap().to_owned())
        .collect();
    for (conn, _) in &acked {
        assert!(present.contains(conn), "acknowledged {conn} lost");
    }
    // Every acknowledged task completes long before any lease (600 s)
    // could run out.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (_, t) in &acked {
        wait_task_succeeded(
            &data,
            &p.http,
            *t,
            deadline,
            "waits for its dead holder's lease",
        );
    }
    drop(p);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("released the task leases of a vpcd process that is gone"),
        "the kill interrupted no claimed task"
    );
}

/// The same crash in the instant lane (API-only tasks without a delay,
/// claimed up to 256 at a time, applied together and finished together in
/// one batch), with leases of an hour: after a restart every acknowledged
/// add exists and runs, every task is finished exactly once, and no
/// connection is left creating, long before a lease could run out, so the
/// restarted vpcd must have released the dead process's leases at once.
///
/// A claimed batch is unfinished only until the next group commit, so the
/// kill is timed by watching the database for claimed, unfinished tasks.
/// A kill that lands elsewhere (no task claimed, or all finished) still
/// proves that no acknowledged add is lost and no task runs twice, but not
/// that a dead holder's tasks resume at once: then vpcd is restarted and
/// the burst repeated, and the test fails if no kill ever interrupted a
/// claimed task.
#[test]
fn kill_dash_nine_in_the_instant_lane_loses_no_acknowledged_add_and_resumes_at_once() {
    const ROUNDS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    // The default driver (API only) without --api-only-delay-ms: every
    // task goes through the instant lane (there is no gateway node for the
    // workers).
    let mut args = vec!["--task-lease-secs", "3600"];
    args.extend(NO_LIMITS);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut p = start(&data, &args, &log);
    let ids = resources(&data, &p.http);
    let store = open_store(&rt, &data);
    // Claimed and unfinished: a lease (of an hour) current now.
    let running = || rt.block_on(store.task_counts(unix_now())).unwrap().running;
    let mut acked = Vec::new();
    let mut round = 0;
    let interrupted = loop {
        round += 1;
        let burst = Burst::start(&data, &p.http, &ids, 6, &format!("r{round}c"));
        burst.wait_acked(10);
        // Not past 150 adds a round, so ROUNDS rounds stay within the
        // quotas.
        let deadline = Instant::now() + Duration::from_secs(60);
        while running() == 0 && burst.acked() < 150 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        kill_dash_nine(p);
        acked.extend(burst.join());
        // What the kill interrupted, read after the process is gone.
        let interrupted = running();
        eprintln!(
            "round {round}: {} adds acknowledged, {interrupted} tasks claimed and unfinished at the kill",
            acked.len()
        );
        if interrupted > 0 {
            break interrupted;
        }
        assert!(
            round < ROUNDS,
            "in {ROUNDS} rounds no kill interrupted a claimed task"
        );
        p = start(&data, &args, &log);
    };
    let tasks: Vec<i64> = acked.iter().map(|(_, t)| *t).collect();
    let before = task_rows(&rt, &*store, &tasks);

    let p = start(&data, &args, &log);
    // No connection left creating: the tasks the kill interrupted (acknowledged
    // or not) resumed, and the ones never claimed ran.
    let deadline = Instant::now() + Duration::from_secs(60);
    let conns = loop {
        let conns = all_conns(&data, &p.http);
        let creating: Vec<&Value> = conns.iter().filter(|c| c["vpcConnStatus"] == 0).collect();
        if creating.is_empty() {
            break conns;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} connections still creating: the restarted vpcd waits for the leases of \
             the {interrupted} tasks the killed one held",
            creating.len(),
            conns.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let by_name: HashMap<&str, &Value> = conns
        .iter()
        .map(|c| (c["vpnConnName"].as_str().unwrap(), c))
        .collect();
    for (name, t) in &acked {
        let conn = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("acknowledged {name} lost"));
        assert_eq!(conn["vpcConnStatus"], 6, "{conn}");
        let task = wait_task_succeeded(&data, &p.http, *t, deadline, "not finished");
        // The add answers no connection id (vpnConnId 0 until the task
        // ran); the task names the connection it made.
        assert_eq!(task["output"]["unVpnConnId"], conn["unVpnConnId"], "{task}");
    }
    drop(p);
    // Finished exactly once: the killed vpcd claimed each task once at
    // most (its leases last an hour); a task it finished was not run again,
    // and every other one was claimed once more and finished.
    for (was, now) in before.iter().zip(task_rows(&rt, &*store, &tasks)) {
        assert!(was.attempts <= 1, "claimed twice before the kill: {was:?}");
        assert!(now.finished_at.is_some(), "{now:?}");
        if was.finished_at.is_some() {
            assert_eq!(
                (now.attempts, now.finished_at),
                (was.attempts, was.finished_at),
                "run again after it finished: {now:?}"
            );
        } else {
            assert_eq!(now.attempts, was.attempts + 1, "{was:?} then {now:?}");
        }
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let mut p = start(&data, &[], &log);
    let pid = p.child.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(Instant::now() < deadline, "vpcd ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("stopped"));
}

/// Issue 11, finding 2: a client that never finishes its headers is
/// disconnected after `--header-read-timeout-ms`, while a valid request on
/// another connection is answered. (The read guard below only keeps a
/// broken build from hanging the suite; the test asserts the close.)
#[test]
fn a_partial_header_connection_is_closed_after_the_header_read_timeout() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let p = start(&data, &["--header-read-timeout-ms", "200"], &log);
    let addr = p.http.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let closed = slow.read_to_end(&mut buf);
    assert!(
        closed.is_ok(),
        "the partial-header connection was not closed: {closed:?}"
    );
    let ok = reqwest::blocking::get(format!("{}/healthz", p.http)).unwrap();
    assert_eq!(ok.status(), 200);
}

/// `vpcd admin ...` on `data`, with `extra` arguments after the data
/// directory; the output.
fn admin(data: &Path, extra: &[&str], args: &[&str]) -> std::process::Output {
    without_proxies(&mut Command::new(bin()))
        .args(["admin", "--data-dir"])
        .arg(data)
        .args(extra)
        .args(args)
        .env("VPCD_LOG", "warn")
        .output()
        .expect("vpcd admin")
}

/// Issue 11, secrets at rest: the first start creates the master key file
/// (0600); a vpcd given another key refuses to start and says why (without
/// printing either key); `vpcd admin master-key rotate` re-seals everything,
/// after which the old key no longer opens the database and the new one
/// serves the same credentials.
#[test]
fn a_wrong_master_key_is_refused_and_rotation_retires_the_old_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("vpcd.log");
    let p = start(&data, &[], &log);
    let key_file = data.join("master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let ids = resources(&data, &p.http);
    let psk = "Rotate-Me-PSK-4d1e";
    add_conn_ok(&data, &p.http, &ids, psk);
    // Rotation is refused while a vpcd runs on the database.
    let busy = admin(&data, &[], &["master-key", "rotate"]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("stop them first"));
    drop(p);

    // Another key: refused, with the reason and the file, never a key.
    let other = dir.path().join("other.key");
    std::fs::write(&other, "ab".repeat(32)).unwrap();
    let refused = without_proxies(&mut Command::new(bin()))
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--master-key-file")
        .arg(&other)
        .args(["--http", "127.0.0.1:0", "--https", "off"])
        .env("VPCD_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        err.contains("master key does not open this database")
            && err.contains(&other.display().to_string()),
        "{err}"
    );
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!err.contains(old_key.trim()) && !err.contains(&"ab".repeat(32)));

    // Rotation. The killed vpcd's last heartbeat looks alive for a few
    // seconds more; it is stopped, so --force is right here.
    let rotated = admin(&data, &[], &["master-key", "rotate", "--force"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let out = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        out.contains("re-sealed 1 API SecretKeys and 1 pre-shared keys"),
        "{out}"
    );
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!data.join("master.key.new").exists());
    // The old key no longer opens the database.
    let old_file = dir.path().join("old.key");
    std::fs::write(&old_file, &old_key).unwrap();
    let with_old = admin(
        &data,
        &["--master-key-file", old_file.to_str().unwrap()],
        &["account", "list"],
    );
    assert!(!with_old.status.success());
    assert!(String::from_utf8_lossy(&with_old.stderr).contains("does not open this database"));
    // The new one serves the same credentials and PSK.
    let p = start(&data, &[], &log);
    let list = call(&data, &p.http, "DescribeVpnConn", &[]);
    assert_eq!(list["data"][0]["preSharedKey"], psk, "{list}");
}

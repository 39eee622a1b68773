//! Three `vpcd serve` processes on one PostgreSQL database behave as one
//! service: quotas and names hold across nodes under concurrency, every
//! accepted task completes exactly once even when a node is killed, a rolling
//! restart costs no request, a Nonce cannot be replayed on another node, and
//! each gateway node is driven by exactly one vpcd, moving when it dies.
//!
//! Each test gets a fresh database on the server named by `VPCD_TEST_PG_URL`
//! (default: the local server); under `CI=true` an unreachable server fails
//! the test, elsewhere it is skipped with the reason printed. The processes
//! listen on 127.0.0.1 port 0 and are stopped by PID only. The tests run one
//! at a time (three processes each already share two cores).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::sync::Arc;
use std::time::{Duration, Instant};
use vpcd_types::testing::without_proxies;

use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use vpcd_auth::{SignatureMethod, Signer};
use vpcd_store::testing::{claim_any, ScratchDb};
use vpcd_store::{ConnFilter, Order, Page, PgStore, Scope, Store};

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const REGION: &str = "gz";

// ---- processes -------------------------------------------------------------------

struct Node {
    child: Option<Child>,
    data: PathBuf,
    /// `127.0.0.1:port` of the plain HTTP listener.
    host: String,
    db_url: String,
    extra: Vec<String>,
}

impl Node {
    async fn start(data: &Path, db_url: &str, extra: &[&str]) -> Node {
        let mut node = Node {
            child: None,
            data: data.to_owned(),
            host: String::new(),
            db_url: db_url.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        node.restart().await;
        node
    }

    /// Start (again) on the same data directory; a new port.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        std::fs::create_dir_all(&self.data).unwrap();
        let _ = std::fs::remove_file(self.data.join("listen.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("vpcd.log"))
            .unwrap();
        let child = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .arg("--master-key-file")
            .arg(shared_key_file(self.data.parent().unwrap()))
            .args(["--database", &self.db_url])
            .args(["--http", "127.0.0.1:0", "--https", "off"])
            .args(&self.extra)
            .env("VPCD_LOG", "info")
            .env("NO_COLOR", "1")
            .env("VPCD_RATE_LIMIT_PER_ACCOUNT", "0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vpcd");
        // Held by the node (and its Drop) at once, so a failed start still
        // stops the process.
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let listen = loop {
            if let Ok(s) = std::fs::read_to_string(self.data.join("listen.json")) {
                if let Ok(v) = serde_json::from_str::<Value>(&s) {
                    break v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "vpcd did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.host = listen["http"].as_str().unwrap().to_owned();
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("vpcd.log")).unwrap_or_default()
    }

    /// kill -9, by PID, and reap it.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM by PID, then wait for the graceful exit.
    async fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "vpcd exited with {st} after SIGTERM");
                return;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("vpcd did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---- the cluster under test --------------------------------------------------------

struct Cluster {
    nodes: Vec<Node>,
    client: Client,
    store: Arc<dyn Store>,
    scope: Scope,
    /// Dropped after the nodes (fields drop in order).
    _db: ScratchDb,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A fresh database with one account and key, and `n` vpcd processes
    /// on it with `extra` flags; `None` when PostgreSQL is not available
    /// here (outside CI).
    async fn start(what: &str, n: usize, extra: &[&str]) -> Option<Cluster> {
        let db = ScratchDb::for_test(what).await?;
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect(db.url(), vpcd_store::testing::master_key())
                .await
                .unwrap(),
        );
        let account = store.create_account("cluster").await.unwrap();
        let key = store.create_key("cluster").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(Node::start(&dir.path().join(format!("node{i}")), db.url(), extra).await);
        }
        Some(Cluster {
            nodes,
            client: Client::new(key.secret_id, key.secret_key.expose().to_owned()),
            store,
            scope: Scope {
                account_id: account.id,
                region: REGION.into(),
            },
            _db: db,
            _dir: dir,
        })
    }

    fn host(&self, i: usize) -> String {
        self.nodes[i % self.nodes.len()].host.clone()
    }

    async fn ok(&self, node: usize, action: &str, params: &[(&str, &str)]) -> Value {
        let v = self
            .client
            .call(&self.host(node), action, params)
            .await
            .unwrap();
        assert_eq!(v["code"], 0, "{action} {params:?}: {v}");
        v
    }

    /// A VPC with `gws` VPN gateways and `peers` peer gateways; their ids.
    async fn topology(&self, gws: usize, peers: usize) -> (String, Vec<String>, Vec<String>) {
        let vpc = self
            .ok(
                0,
                "CreateVpc",
                &[("vpcName", "main"), ("cidrBlock", "10.0.0.0/16")],
            )
            .await["uniqVpcId"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut gw_ids = Vec::new();
        for g in 0..gws {
            let v = self
                .ok(
                    g,
                    "RunVpnGw",
                    &[
                        ("vpcId", &vpc),
                        ("name", &format!("gw{g}")),
                        ("bandwidth", "5"),
                    ],
                )
                .await;
            gw_ids.push(v["data"]["vpnGwId"].as_str().unwrap().to_owned());
        }
        let mut peer_ids = Vec::new();
        for p in 0..peers {
            let addr = format!("198.51.{}.{}", 100 + p / 200, 1 + p % 200);
            let v = self
                .ok(
                    p,
                    "AddUserGw",
                    &[("userGwName", &format!("peer{p}")), ("userGwAddr", &addr)],
                )
                .await;
            peer_ids.push(v["userGwId"].as_str().unwrap().to_owned());
        }
        (vpc, gw_ids, peer_ids)
    }

    async fn all_conns(&self) -> Vec<vpcd_store::VpnConn> {
        let page = Page {
            offset: 0,
            limit: 100_000,
            order: Order::CreateTime,
            descending: false,
        };
        self.store
            .list_conns(&self.scope, &ConnFilter::default(), &page)
            .await
            .unwrap()
            .1
    }

    /// Wait until every task in `ids` has finished; their final rows.
    async fn wait_tasks(&self, ids: &[i64], within: Duration) -> Vec<vpcd_store::Task> {
        let deadline = Instant::now() + within;
        loop {
            let mut done = Vec::new();
            let mut running = Vec::new();
            for id in ids {
                let t = self
                    .store
                    .get_task(&self.scope, vpcd_types::TaskId::new(*id))
                    .await
                    .unwrap()
                    .expect("an accepted task exists");
                if t.status == vpcd_types::TaskStatus::Running {
                    running.push(*id);
                } else {
                    done.push(t);
                }
            }
            if running.is_empty() {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "tasks still running after {within:?}: {running:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until no connection has a task in flight.
    async fn wait_no_active_task(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let busy: Vec<String> = self
                .all_conns()
                .await
                .into_iter()
                .filter(|c| c.active_task.is_some())
                .map(|c| c.name)
                .collect();
            if busy.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "connections still have a task after {within:?}: {busy:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// No task is left running anywhere: with every lease expired (a claim
    /// far in the future), nothing is claimable.
    async fn assert_nothing_running(&self) {
        let far = now() + 100_000;
        let left = claim_any(&*self.store, "checker", far, 1).await.unwrap();
        assert!(left.is_none(), "a task is still running: {left:?}");
        for c in self.all_conns().await {
            assert_eq!(c.active_task, None, "{c:?}");
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(Node::log)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---- a signing client ----------------------------------------------------------------

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    secret_id: String,
    secret_key: String,
}

impl Client {
    fn new(secret_id: String, secret_key: String) -> Client {
        Client {
            // A fresh connection per request: a restarted node is never
            // reached through a connection pooled to its predecessor.
            http: reqwest::Client::builder()
                // Signed requests go straight to the node, never to a proxy.
                .no_proxy()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            secret_id,
            secret_key,
        }
    }

    fn sign(&self, host: &str, action: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let signer = Signer {
            secret_id: &self.secret_id,
            secret_key: self.secret_key.as_bytes(),
            method: SignatureMethod::HmacSha256,
        };
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        signer.signed_params(
            "POST",
            host,
            "/v2/index.php",
            action,
            REGION,
            now(),
            rand::random::<u64>() % (i64::MAX as u64) + 1,
            &params,
        )
    }

    async fn send(&self, host: &str, signed: &[(String, String)]) -> reqwest::Result<Value> {
        self.send_as(host, host, signed).await
    }

    /// Send to `addr` with `Host: host`.
    async fn send_as(
        &self,
        addr: &str,
        host: &str,
        signed: &[(String, String)],
    ) -> reqwest::Result<Value> {
        self.http
            .post(format!("http://{addr}/v2/index.php"))
            .header("Host", host)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(vpcd_auth::encode_form(signed))
            .send()
            .await?
            .json()
            .await
    }

    async fn call(
        &self,
        host: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<Value> {
        let signed = self.sign(host, action, params);
        self.send(host, &signed).await
    }
}

fn add_conn_params<'a>(
    vpc: &'a str,
    gw: &'a str,
    peer: &'a str,
    name: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("vpcId", vpc),
        ("vpnGwId", gw),
        ("userGwId", peer),
        ("vpnConnName", name),
        ("preSharedKey", "cluster-psk"),
        ("userGwCidrBlock.0", "192.168.10.0/24"),
    ]
}

const LIMITS: &[&str] = &[
    "--limit-vpcs-per-region",
    "100",
    "--limit-vpn-gws-per-vpc",
    "100",
    "--limit-user-gws-per-region",
    "1000",
    "--limit-conns-per-vpn-gw",
    "20",
    "--limit-conns-per-user-gw",
    "1000",
    "--limit-conns-per-region",
    "100000",
    "--limit-conns-per-pair",
    "1",
];

fn flags(more: &[&'static str]) -> Vec<&'static str> {
    let mut v = LIMITS.to_vec();
    v.extend_from_slice(&[
        "--heartbeat-interval-ms",
        "500",
        "--gateway-lease-secs",
        "3",
    ]);
    v.extend_from_slice(more);
    v
}

// ---- 1. concurrency ---------------------------------------------------------------------

/// 300 concurrent AddVpnConnEx over 3 nodes against a quota of 20 tunnels per
/// gateway on 5 gateways: exactly 20 per gateway, no duplicate names (pairs
/// of requests to a gateway race for each name), every accepted task
/// completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_across_nodes_respect_quota_and_names() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start("cluster concurrency", 3, &flags(&[])).await else {
        return;
    };
    const GWS: usize = 5;
    const PER_GW: usize = 60;
    let (vpc, gws, peers) = c.topology(GWS, PER_GW).await;
    let c = Arc::new(c);
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..GWS * PER_GW {
        let c = c.clone();
        let (g, k) = (i % GWS, i / GWS);
        let (vpc, gw, peer) = (vpc.clone(), gws[g].clone(), peers[k].clone());
        // Requests 2j and 2j+1 to a gateway share a name.
        let name = format!("t{g}-{}", k / 2);
        set.spawn(async move {
            let v = c
                .client
                .call(
                    &c.host(i),
                    "AddVpnConnEx",
                    &add_conn_params(&vpc, &gw, &peer, &name),
                )
                .await
                .expect("every node answers");
            (g, name, v)
        });
    }
    let answers = set.join_all().await;
    eprintln!("300 concurrent AddVpnConnEx answered in {:?}", t0.elapsed());

    let mut accepted: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for (g, _, v) in &answers {
        match v["code"].as_i64().unwrap() {
            0 => accepted
                .entry(*g)
                .or_default()
                .push(v["data"]["taskId"].as_i64().unwrap()),
            code => {
                let desc = v["codeDesc"].as_str().unwrap_or("").to_owned();
                assert!(
                    (code == 5100 && desc == "VpnConnLimitExceeded")
                        || (code == 4000 && desc == "InvalidVpnConnName.InUse"),
                    "unexpected refusal: {v}"
                );
                *refusals.entry(desc).or_default() += 1;
            }
        }
    }
    eprintln!("refusals: {refusals:?}");
    for g in 0..GWS {
        assert_eq!(accepted.get(&g).map_or(0, Vec::len), 20, "gateway {g}");
    }
    let conns = c.all_conns().await;
    assert_eq!(conns.len(), GWS * 20);
    let names: BTreeSet<&str> = conns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), conns.len(), "duplicate names");
    let mut per_gw: HashMap<String, usize> = HashMap::new();
    for conn in &conns {
        *per_gw.entry(conn.vpn_gw.un_id.to_string()).or_default() += 1;
    }
    assert!(per_gw.values().all(|n| *n == 20), "{per_gw:?}");

    // Every accepted task completes, once.
    let ids: Vec<i64> = accepted.values().flatten().copied().collect();
    let tasks = c.wait_tasks(&ids, Duration::from_secs(60)).await;
    assert!(tasks
        .iter()
        .all(|t| t.status == vpcd_types::TaskStatus::Success));
    let logs = c.logs();
    for id in &ids {
        let done = logs.matches(&format!("task succeeded task={id} ")).count();
        assert_eq!(done, 1, "task {id} was applied {done} times");
    }
    assert!(!logs.contains("lease lost"), "a lease was lost:\n{logs}");
    for conn in c.all_conns().await {
        assert_eq!(conn.status, vpcd_types::ConnStatus::Running);
    }
    c.assert_nothing_running().await;
    // All three nodes did work.
    for (i, n) in c.nodes.iter().enumerate() {
        assert!(n.log().contains("task succeeded"), "node {i} ran no task");
    }
    assert!(!logs.contains("internal error"), "{logs}");
}

// ---- 2. node loss --------------------------------------------------------------------------

/// kill -9 one node in the middle of a burst, with tasks in flight (a 1 s
/// simulated data plane, 2 s task leases): every code-0 answer leads to a
/// completed task, a request without an answer either completed or left
/// nothing behind, and nothing stays running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_node_loses_no_accepted_work() {
    let _serial = SERIAL.lock().await;
    let extra = flags(&["--task-lease-secs", "2", "--api-only-delay-ms", "1000"]);
    let Some(c) = Cluster::start("cluster node loss", 3, &extra).await else {
        return;
    };
    const GWS: usize = 6;
    const PEERS: usize = 20;
    let (vpc, gws, peers) = c.topology(GWS, PEERS).await;
    let c = Arc::new(RwLock::new(c));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..GWS * PEERS {
        let c = c.clone();
        let (vpc, gw, peer) = (vpc.clone(), gws[i % GWS].clone(), peers[i / GWS].clone());
        let name = format!("burst-{i}");
        set.spawn(async move {
            // Spread over two seconds, so the kill lands mid-burst.
            tokio::time::sleep(Duration::from_millis(17 * i as u64)).await;
            let (host, client) = {
                let c = c.read().await;
                (c.host(i), c.client.clone())
            };
            let answer = client
                .call(
                    &host,
                    "AddVpnConnEx",
                    &add_conn_params(&vpc, &gw, &peer, &name),
                )
                .await
                .ok();
            (name, answer)
        });
    }
    // Kill once part of the burst is in: some connections exist, most
    // requests are still to come (the burst spreads over two seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = c.read().await.all_conns().await.len();
        if made >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the burst never started: {made}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim_pid = {
        let mut c = c.write().await;
        let pid = c.nodes[0].pid();
        c.nodes[0].kill9();
        pid
    };
    eprintln!("killed node 0 (pid {victim_pid}) mid-burst");
    let answers = set.join_all().await;
    let c = Arc::try_unwrap(c).ok().unwrap().into_inner();

    let mut accepted = Vec::new();
    let mut unanswered = Vec::new();
    for (name, answer) in &answers {
        match answer {
            Some(v) => {
                assert_eq!(v["code"], 0, "{name}: {v}");
                accepted.push((name.clone(), v["data"]["taskId"].as_i64().unwrap()));
            }
            None => unanswered.push(name.clone()),
        }
    }
    eprintln!(
        "{} accepted, {} without an answer (sent to the killed node)",
        accepted.len(),
        unanswered.len()
    );
    assert!(!unanswered.is_empty(), "the kill landed after the burst");
    assert!(accepted.len() > 60);
    // The killed node's leases expire (2 s) and the others take its tasks.
    let ids: Vec<i64> = accepted.iter().map(|(_, t)| *t).collect();
    let tasks = c.wait_tasks(&ids, Duration::from_secs(60)).await;
    for t in &tasks {
        assert_eq!(t.status, vpcd_types::TaskStatus::Success, "{t:?}");
    }
    let taken_over = tasks.iter().filter(|t| t.attempts > 1).count();
    eprintln!("{taken_over} task(s) were taken over from the killed node");
    // Requests that committed without an answer have tasks of their own,
    // taken over once the killed node's leases expire: wait for those too.
    c.wait_no_active_task(Duration::from_secs(60)).await;
    let conns: HashMap<String, vpcd_store::VpnConn> = c
        .all_conns()
        .await
        .into_iter()
        .map(|conn| (conn.name.clone(), conn))
        .collect();
    for (name, _) in &accepted {
        let conn = conns
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(conn.status, vpcd_types::ConnStatus::Running, "{name}");
    }
    // Unanswered: created and completed, or nothing at all.
    let mut completed_silently = 0;
    for name in &unanswered {
        if let Some(conn) = conns.get(name) {
            assert_eq!(conn.status, vpcd_types::ConnStatus::Running, "{name}");
            completed_silently += 1;
        }
    }
    eprintln!("{completed_silently} unanswered request(s) had committed and completed");
    assert_eq!(conns.len(), accepted.len() + completed_silently);
    c.assert_nothing_running().await;
}

// ---- 3. rolling restart -----------------------------------------------------------------------

/// Restart the three nodes one at a time (SIGTERM, wait for the exit,
/// start) while clients keep sending to the nodes that are up: no 6000 and
/// no connection error from a running node, and all accepted work completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_load_fails_no_request() {
    let _serial = SERIAL.lock().await;
    let extra = flags(&["--api-only-delay-ms", "300"]);
    let Some(c) = Cluster::start("cluster rolling restart", 3, &extra).await else {
        return;
    };
    const GWS: usize = 20;
    let (vpc, gws, peers) = c.topology(GWS, 10).await;
    let client = c.client.clone();
    // Per node: its address while it is up (None: down). A request holds
    // the read side while in flight, so a node is taken down only between
    // requests: a request never starts against a node being stopped.
    let up: Arc<Vec<RwLock<Option<String>>>> =
        Arc::new((0..3).map(|i| RwLock::new(Some(c.host(i)))).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    // Answers received so far: each restart waits for some, so every node
    // goes down and comes back under load.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..6usize {
        let (up, stop, client) = (up.clone(), stop.clone(), client.clone());
        let answered = answered.clone();
        let (vpc, gws, peers) = (vpc.clone(), gws.clone(), peers.clone());
        workers.spawn(async move {
            let mut sent = 0usize;
            let mut accepted = Vec::new();
            let mut failures = Vec::new();
            let mut pair_full = 0usize;
            let mut i = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 6;
                let node = i % 3;
                let guard = up[node].read().await;
                let Some(host) = guard.clone() else {
                    drop(guard);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let (gw, peer) = (&gws[i % GWS], &peers[(i / GWS) % 10]);
                let name = format!("roll-{i}");
                let res = match i % 3 {
                    0 => {
                        client
                            .call(
                                &host,
                                "AddVpnConnEx",
                                &add_conn_params(&vpc, gw, peer, &name),
                            )
                            .await
                    }
                    1 => {
                        client
                            .call(&host, "DescribeVpnConn", &[("vpcId", &vpc)])
                            .await
                    }
                    _ => {
                        client
                            .call(&host, "DescribeVpnGw", &[("vpcId", &vpc)])
                            .await
                    }
                };
                drop(guard);
                sent += 1;
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The exact answers: every Describe succeeds; an add
                // succeeds, or (a second connection for the same gateway
                // pair, at most one per pair) meets the pair quota.
                match res {
                    Err(e) => failures.push(format!("node {node}: connection error: {e}")),
                    Ok(v) if v["code"] == 0 => {
                        if i % 3 == 0 {
                            accepted.push(v["data"]["taskId"].as_i64().expect("a taskId"));
                        } else if !v["totalCount"].is_u64() {
                            failures.push(format!("node {node}: no totalCount: {v}"));
                        }
                    }
                    Ok(v) if i % 3 == 0
                        && v["code"] == 5100
                        && v["codeDesc"] == "VpnConnLimitExceeded"
                        && v["message"].as_str().is_some_and(|m| {
                            m.ends_with("this peer gateway already has the allowed number of connections to this VPN gateway")
                        }) =>
                    {
                        pair_full += 1;
                    }
                    Ok(v) => failures.push(format!("node {node}: {v}")),
                }
            }
            (sent, accepted, failures, pair_full)
        });
    }
    let mut c = c;
    more_answers(&answered, 30).await;
    for i in 0..3 {
        *up[i].write().await = None;
        let t = Instant::now();
        c.nodes[i].terminate().await;
        c.nodes[i].restart().await;
        eprintln!("node {i} restarted in {:?}", t.elapsed());
        *up[i].write().await = Some(c.nodes[i].host.clone());
        more_answers(&answered, 30).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    let mut pair_full = 0;
    for (s, a, f, p) in workers.join_all().await {
        sent += s;
        accepted.extend(a);
        failures.extend(f);
        pair_full += p;
    }
    eprintln!(
        "{sent} requests during the rolling restart, {} tasks, {pair_full} refused by the pair quota",
        accepted.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(sent > 100 && !accepted.is_empty());
    let tasks = c.wait_tasks(&accepted, Duration::from_secs(60)).await;
    assert!(tasks
        .iter()
        .all(|t| t.status == vpcd_types::TaskStatus::Success));
    c.assert_nothing_running().await;
    let logs = c.logs();
    assert!(!logs.contains("internal error"), "{logs}");
}

/// Wait until `n` more answers than now have arrived.
async fn more_answers(answered: &std::sync::atomic::AtomicUsize, n: usize) {
    let from = answered.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(std::sync::atomic::Ordering::Relaxed) < from + n {
        assert!(
            Instant::now() < deadline,
            "the clients stopped getting answers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- 4. replay ---------------------------------------------------------------------------------

/// A request replayed to another node is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_replay_is_refused_on_every_node() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start("cluster replay", 3, &flags(&[])).await else {
        return;
    };
    // The Host header is signed: clients reach every node under one service
    // name, as behind a load balancer.
    let service = "vpc.cluster.test";
    let signed = c.client.sign(service, "DescribeVpcEx", &[]);
    let first = c
        .client
        .send_as(&c.host(1), service, &signed)
        .await
        .unwrap();
    assert_eq!(first["code"], 0, "{first}");
    for node in [2, 0, 1] {
        let again = c
            .client
            .send_as(&c.host(node), service, &signed)
            .await
            .unwrap();
        assert_eq!(again["code"], 4500, "node {node}: {again}");
        assert_eq!(again["codeDesc"], "RequestReplay", "node {node}: {again}");
    }
    // A fresh Nonce through the same name works on every node.
    for node in 0..3 {
        let signed = c.client.sign(service, "DescribeVpcEx", &[]);
        let v = c
            .client
            .send_as(&c.host(node), service, &signed)
            .await
            .unwrap();
        assert_eq!(v["code"], 0, "node {node}: {v}");
    }
}

// ---- 5. gateway node leases and `vpcd admin members` -------------------------------------------

/// Each gateway node is driven by exactly one live vpcd, the nodes are
/// spread, a killed holder's nodes move to a live one, and `vpcd admin
/// members` shows it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_nodes_have_one_driver_that_moves_when_it_dies() {
    let _serial = SERIAL.lock().await;
    let Some(db) = ScratchDb::for_test("cluster gateway leases").await else {
        return;
    };
    // Gateway nodes whose charon is not there: driving them fails, which is
    // fine here; what matters is who holds them.
    let store = PgStore::connect(db.url(), vpcd_store::testing::master_key())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let vici = format!(
            "unix://{}",
            scratch.path().join(format!("gw{i}.vici")).display()
        );
        store
            .add_gateway_node(&format!("gw{i}"), &vici, &[])
            .await
            .unwrap();
    }
    store.create_account("cluster").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = flags(&[]);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(Node::start(&dir.path().join(format!("node{i}")), db.url(), &extra).await);
    }
    // Spread: one gateway node each, every one held by a live vpcd.
    let deadline = Instant::now() + Duration::from_secs(30);
    let vpcds = loop {
        let vpcds = vpcd_names(&store, &nodes).await;
        let holders = current_holders(&store).await;
        let per: BTreeMap<&String, usize> = holders.values().fold(BTreeMap::new(), |mut m, h| {
            *m.entry(h).or_default() += 1;
            m
        });
        if holders.len() == 3 && per.len() == 3 && per.keys().all(|h| vpcds.contains(h)) {
            break vpcds;
        }
        assert!(
            Instant::now() < deadline,
            "leases never spread: {holders:?} over {vpcds:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let admin = admin_members(db.url(), dir.path());
    eprintln!("{admin}");
    for v in &vpcds {
        let line = admin.lines().find(|l| l.starts_with(v.as_str())).unwrap();
        assert!(line.contains(" alive "), "{line}");
        assert!(line.contains("gw"), "{line}");
    }
    assert_eq!(admin.matches("driven by").count(), 3, "{admin}");

    // The holder of gw0 dies: gw0 moves to a live vpcd, and stays single.
    let holders = current_holders(&store).await;
    let gw0 = store.list_gateway_nodes().await.unwrap()[0].id;
    let victim = vpcds.iter().position(|v| v == &holders[&gw0]).unwrap();
    nodes[victim].kill9();
    let t = Instant::now();
    loop {
        let holders = current_holders(&store).await;
        if let Some(h) = holders.get(&gw0) {
            if h != &vpcds[victim] {
                assert!(vpcds.contains(h));
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "gw0 never moved: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "gw0 moved to a live vpcd {:?} after its holder died",
        t.elapsed()
    );
    // Once the dead node's heartbeats have aged out, `members` shows it dead
    // and the live vpcds hold every gateway node (a lease being renewed may
    // be missing for a moment: poll for the whole state).
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        let admin = admin_members(db.url(), dir.path());
        let dead = admin
            .lines()
            .find(|l| l.starts_with(vpcds[victim].as_str()))
            .unwrap_or_else(|| panic!("the dead vpcd is not listed:\n{admin}"));
        let holders = current_holders(&store).await;
        // Dead, driving nothing; every node driven by a live vpcd.
        if dead.contains(" dead ")
            && dead.trim_end().ends_with(" -")
            && admin.matches("driven by").count() == 3
            && holders.len() == 3
            && holders.values().all(|h| h != &vpcds[victim])
        {
            break admin;
        }
        assert!(
            Instant::now() < deadline,
            "the killed vpcd is never shown dead, driving nothing, with its nodes moved: {holders:?}\n{admin}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("{admin}");
    drop(nodes);
}

/// The cluster name of each running node (matched by pid; "" if unknown).
async fn vpcd_names(store: &PgStore, nodes: &[Node]) -> Vec<String> {
    let members: Vec<(String, u32)> = store
        .list_members()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.name, vpcd::MemberInfo::parse(&n.info).pid))
        .collect();
    nodes
        .iter()
        .map(|n| {
            let pid = n.child.as_ref().map_or(0, |c| c.id());
            members
                .iter()
                .find(|(_, p)| *p == pid)
                .map(|(name, _)| name.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Gateway node -> the vpcd holding a current lease on it.
async fn current_holders(store: &PgStore) -> BTreeMap<vpcd_types::GatewayNodeId, String> {
    let now = now();
    store
        .gateway_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, _, until)| *until >= now)
        .map(|(node, holder, _)| (node, holder))
        .collect()
}

/// The master key every vpcd of a test cluster shares (the one the test's
/// own store uses), in a file in `dir`.
fn shared_key_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("master.key");
    if !path.exists() {
        vpcd_store::testing::master_key().write_new(&path).unwrap();
    }
    path
}

fn admin_members(db_url: &str, dir: &Path) -> String {
    let out = without_proxies(&mut Command::new(env!("CARGO_BIN_EXE_vpcd")))
        .args(["admin", "--data-dir"])
        .arg(dir.join("admin"))
        .arg("--master-key-file")
        .arg(shared_key_file(dir))
        .args(["--database", db_url, "members"])
        .env("VPCD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vpcd admin members failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

//! Storage faults, shared by the engines' test files: a workload of creates
//! that records every answer, the checks that the answers were true, and
//! guards for the faults themselves (a small tmpfs, a private PostgreSQL
//! server) that always clean up.
//!
//! The faults need root (mount, a server run as `postgres`). Without it the
//! tests are skipped with the reason printed, except under `CI=true`, where
//! they fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vpcd_store::testing::in_ci;
use vpcd_store::*;
use vpcd_types::{VpcRowId, VpnGwRowId};

use super::conformance::settings;

/// Whether the fault can be made here; prints why not, and fails under CI.
pub(crate) fn can_make_faults(what: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(!in_ci(), "{what}: needs root under CI");
        println!("skipping {what}: needs root");
    }
    root
}

/// Run `cmd`, failing the test with its output if it fails.
pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tmpfs of a given size mounted on a fresh temp dir; unmounted on drop,
/// also when the test fails. (Only the SQLite file uses it.)
#[allow(dead_code)]
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        Tmpfs { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grow (or shrink) the filesystem in place.
    pub(crate) fn resize(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path()));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (a store the failing test never dropped)
        // must not keep the mount alive.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A PostgreSQL server of its own on a free loopback port and a socket in
/// its temp dir, run as `postgres`; stopped and removed on drop. Never the
/// shared server on 5432. (Only the PostgreSQL file uses it.)
#[allow(dead_code)]
pub(crate) struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

#[allow(dead_code)]
impl PrivatePg {
    /// `None` (printed; a failure under CI) where no PostgreSQL 15 is
    /// installed.
    pub(crate) fn init() -> Option<PrivatePg> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            assert!(!in_ci(), "no PostgreSQL binaries in {PG_BIN}");
            println!("skipping: no PostgreSQL binaries in {PG_BIN}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("chown").arg("postgres").arg(dir.path()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg { dir, port };
        run(pg
            .as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(pg.data()));
        pg.start();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join(tool));
        cmd
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start and wait until it accepts connections.
    pub(crate) fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        run(self
            .as_postgres("pg_ctl")
            .args(["-w", "-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data())
            .arg("start"));
    }

    /// Stop (fast: sessions are cut off) and wait until it is down.
    pub(crate) fn stop(&self) {
        run(self
            .as_postgres("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop"));
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

/// Creates peer gateways and a connection on each, recording what every
/// create was answered, so the store's state can be checked against the
/// answers afterwards.
pub(crate) struct Workload {
    store: Arc<dyn Store>,
    scope: Scope,
    vpc: VpcRowId,
    vpn_gw: VpnGwRowId,
    limits: Limits,
    next: u32,
    /// Names answered with success.
    pub(crate) made: BTreeSet<String>,
    /// Names refused because the storage could not take them.
    pub(crate) refused: BTreeSet<String>,
    /// Every distinct refusal text seen (for the report).
    pub(crate) errors: BTreeSet<String>,
}

impl Workload {
    pub(crate) async fn new(store: Arc<dyn Store>) -> Workload {
        let account = store.create_account("faults").await.unwrap();
        let scope = Scope {
            account_id: account.id,
            region: "gz".into(),
        };
        let limits = Limits {
            user_gws_per_region: u32::MAX,
            conns_per_vpn_gw: u32::MAX,
            conns_per_region: u32::MAX,
            ..Limits::default()
        };
        let vpc = NewVpc {
            name: "v".into(),
            cidr: "10.0.0.0/16".parse().unwrap(),
        };
        let vpc = store.create_vpc(&scope, vpc, &limits).await.unwrap();
        let gw = NewVpnGw {
            vpc_id: vpc.id,
            name: "g".into(),
            bandwidth: 10,
            charge_type: "POSTPAID_BY_HOUR".into(),
            charge_period: None,
            address: AddressSource::Pool("203.0.113.0/24".parse().unwrap()),
        };
        let vpn_gw = store.create_vpn_gw(&scope, gw, &limits).await.unwrap();
        Workload {
            store,
            scope,
            vpc: vpc.id,
            vpn_gw: vpn_gw.id,
            limits,
            next: 0,
            made: BTreeSet::new(),
            refused: BTreeSet::new(),
            errors: BTreeSet::new(),
        }
    }

    /// One peer gateway and a connection on it (names `u<n>` and `c<n>`).
    /// Returns whether both were created. A refusal must be
    /// `StorageUnavailable`; any other error fails the test.
    pub(crate) async fn step(&mut self) -> bool {
        let n = self.next;
        self.next += 1;
        let (ugw_name, conn_name) = (format!("u{n}"), format!("c{n}"));
        let address = std::net::Ipv4Addr::from(0x0a00_0000 + n);
        let ugw = NewUserGw {
            name: ugw_name.clone(),
            address: address.into(),
        };
        let ugw = match self
            .store
            .create_user_gw(&self.scope, ugw, &self.limits)
            .await
        {
            Ok(ugw) => {
                self.made.insert(ugw_name);
                ugw
            }
            Err(e) => {
                self.refusal(e, ugw_name);
                return false;
            }
        };
        let conn = NewConn {
            vpc_id: self.vpc,
            vpn_gw_id: self.vpn_gw,
            user_gw_id: ugw.id,
            // Padded so the disk fills in a few hundred steps.
            name: format!("{conn_name}-{}", "x".repeat(200)),
            settings: settings("psk"),
            tags: Vec::new(),
        };
        match self
            .store
            .create_conn(&self.scope, conn, &self.limits)
            .await
        {
            Ok(_) => {
                self.made.insert(conn_name);
                true
            }
            Err(e) => {
                self.refusal(e, conn_name);
                false
            }
        }
    }

    /// `n` steps at once, so the engine batches their writes (on SQLite:
    /// group commits of several callers). Returns how many steps created
    /// both of their rows.
    #[allow(dead_code)]
    pub(crate) async fn burst(&mut self, n: u32) -> usize {
        let mut runs = Vec::new();
        for k in 0..n {
            let n = self.next + k;
            let (store, scope, limits) =
                (self.store.clone(), self.scope.clone(), self.limits.clone());
            let (vpc, vpn_gw) = (self.vpc, self.vpn_gw);
            runs.push(tokio::spawn(async move {
                let (ugw_name, conn_name) = (format!("u{n}"), format!("c{n}"));
                let ugw = NewUserGw {
                    name: ugw_name.clone(),
                    address: std::net::Ipv4Addr::from(0x0a00_0000 + n).into(),
                };
                let ugw = match store.create_user_gw(&scope, ugw, &limits).await {
                    Ok(ugw) => ugw,
                    Err(e) => return vec![(ugw_name, Err(e))],
                };
                let conn = NewConn {
                    vpc_id: vpc,
                    vpn_gw_id: vpn_gw,
                    user_gw_id: ugw.id,
                    name: format!("{conn_name}-{}", "x".repeat(200)),
                    settings: settings("psk"),
                    tags: Vec::new(),
                };
                let made = store.create_conn(&scope, conn, &limits).await.map(|_| ());
                vec![(ugw_name, Ok(())), (conn_name, made)]
            }));
        }
        self.next += n;
        let mut whole = 0;
        for run in runs {
            let answers = run.await.expect("a step panicked");
            let both = answers.len() == 2 && answers.iter().all(|(_, r)| r.is_ok());
            whole += usize::from(both);
            for (name, answer) in answers {
                match answer {
                    Ok(()) => {
                        self.made.insert(name);
                    }
                    Err(e) => self.refusal(e, name),
                }
            }
        }
        whole
    }

    fn refusal(&mut self, e: StoreError, name: String) {
        assert!(
            matches!(e, StoreError::StorageUnavailable(_)),
            "{name}: not a storage fault: {e}"
        );
        self.errors.insert(e.to_string());
        self.refused.insert(name);
    }

    /// Every answered create exists, no refused one left anything (a row, a
    /// task, a count), and reads agree with the counter. Claims the tasks.
    pub(crate) async fn check(&self) {
        let conns = self.check_reads().await;
        // One create task per connection answered, none for a refused one.
        let mut tasks = 0;
        while testing::claim_any(self.store.as_ref(), "check", 0, 60)
            .await
            .unwrap()
            .is_some()
        {
            tasks += 1;
        }
        assert_eq!(tasks, conns);
    }

    /// What [`Workload::check`] checks without writing (the task claims):
    /// while the storage takes no writes. The number of connections.
    pub(crate) async fn check_reads(&self) -> usize {
        let page = Page {
            offset: 0,
            limit: u32::MAX,
            order: Order::CreateTime,
            descending: false,
        };
        let (_, ugws) = self
            .store
            .list_user_gws(&self.scope, &UserGwFilter::default(), &page)
            .await
            .unwrap();
        let (_, conns) = self
            .store
            .list_conns(&self.scope, &ConnFilter::default(), &page)
            .await
            .unwrap();
        let mut present: BTreeSet<String> = ugws.into_iter().map(|u| u.name).collect();
        present.extend(
            conns
                .iter()
                .map(|c| c.name.split('-').next().unwrap().to_owned()),
        );
        assert_eq!(present, self.made, "rows differ from the answers");
        assert!(present.is_disjoint(&self.refused));
        let (counted, rows) = self.store.conn_count_check(&self.scope).await.unwrap();
        assert_eq!((counted, rows), (conns.len() as u64, conns.len() as u64));
        conns.len()
    }
}

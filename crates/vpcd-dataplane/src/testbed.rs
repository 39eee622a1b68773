//! Two network namespaces joined by a veth pair, with a charon in each: a
//! "cloud" gateway and a "peer" (customer) gateway, for end-to-end tests of
//! real IPsec tunnels. Requires root, iproute2, strongSwan 5.9 with the
//! kernel-libipsec plugin (`charon-systemd`, `swanctl`), ping and tcpdump.
//!
//! # Network safety
//! Both ends of the veth are created directly inside the test's own
//! namespaces (`ip link add A netns C type veth peer name B netns P`);
//! nothing is attached to a host interface and no route leads out. "Public"
//! addresses are documentation ranges (cloud `203.0.113.0/24`, peer
//! `198.51.100.0/24`), each side routing the other's /24 onto the veth only.
//! Inner test addresses are /32s on `lo`. IPv6 is disabled inside.
//!
//! # Lifecycle
//! Namespace names are unique per process and test (`vpcd-<pid>-<n>-c`/`-p`).
//! Each charon runs with a private `STRONGSWAN_CONF`, a private `/run` (bind
//! mount inside the namespace's own mount namespace) and its VICI socket in
//! a per-test temporary directory. [`Testbed::teardown`] (also run on
//! `Drop`, so on panics too) stops processes by PID and deletes the
//! namespaces.
//!
//! The API is synchronous (it runs short commands); from a tokio test use a
//! multi-thread runtime or `spawn_blocking` for long waits.
//!
//! # Example
//! ```no_run
//! use vpcd_dataplane::testbed::{Side, Testbed, TestbedConfig};
//! use vpcd_dataplane::{peer_config, test_support, StrongSwanDriver, VpnDriver};
//!
//! # async fn demo() {
//! // Skips (printing why) when not root or strongSwan is missing; panics
//! // instead under CI=true.
//! let Some(mut tb) = Testbed::start_or_skip(TestbedConfig::default()) else { return };
//! let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();
//! let spec = test_support::spec_default(); // 203.0.113.1 <-> 198.51.100.1
//! driver.apply(&spec).await.unwrap();
//! let conf = peer_config::render(peer_config::vendor("strongswan").unwrap(), &spec, None).unwrap();
//! tb.load_swanctl(Side::Peer, &conf).unwrap();
//! // ... poll driver.net_status() until available, then:
//! assert!(tb.ping(Side::Cloud, "10.100.0.1", "10.200.0.1"));
//! tb.teardown(); // also done by Drop
//! # }
//! ```

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The charon binary used (writes no pid file, runs without systemd).
pub const CHARON: &str = "/usr/sbin/charon-systemd";
/// Interface name of the veth end in each namespace.
pub const VETH: &str = "vpcd0";

/// A test bed operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("testbed: {0}")]
pub struct TestbedError(pub String);

fn err(msg: impl Into<String>) -> TestbedError {
    TestbedError(msg.into())
}

/// Which gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Cloud,
    Peer,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Cloud => "cloud",
            Side::Peer => "peer",
        })
    }
}

/// Addresses to configure. The first public address of each side is its
/// primary one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestbedConfig {
    pub cloud_public: Vec<Ipv4Addr>,
    pub peer_public: Vec<Ipv4Addr>,
    pub cloud_inner: Vec<Ipv4Addr>,
    pub peer_inner: Vec<Ipv4Addr>,
}

impl Default for TestbedConfig {
    /// Cloud `203.0.113.1`, peer `198.51.100.1`; inner `10.100.0.1`,
    /// `10.100.1.1` (cloud) and `10.200.0.1`, `10.200.1.1` (peer).
    fn default() -> Self {
        Self {
            cloud_public: vec![Ipv4Addr::new(203, 0, 113, 1)],
            peer_public: vec![Ipv4Addr::new(198, 51, 100, 1)],
            cloud_inner: vec![Ipv4Addr::new(10, 100, 0, 1), Ipv4Addr::new(10, 100, 1, 1)],
            peer_inner: vec![Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(10, 200, 1, 1)],
        }
    }
}

struct Node {
    ns: String,
    state: PathBuf,
    charon: Option<Child>,
    /// Libreswan's pluto, in place of the charon (peer side only).
    pluto: Option<Child>,
}

/// A running two-namespace test bed. See the module docs.
pub struct Testbed {
    cloud: Node,
    peer: Node,
    config: TestbedConfig,
    /// State directory of the pluto last started.
    pluto_dir: Option<PathBuf>,
    torn_down: bool,
    // Dropped last: the state directories live in it.
    _dir: tempfile::TempDir,
}

/// Why the test bed cannot run here, if it cannot (not root, a tool
/// missing).
pub fn unavailable_reason() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        return Some("needs root (network namespaces)".into());
    }
    for tool in [CHARON, "/usr/sbin/swanctl"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} missing (install strongswan-charon, strongswan-swanctl, charon-systemd)"
            ));
        }
    }
    let plugin = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so";
    if !Path::new(plugin).exists() {
        return Some(format!(
            "{plugin} missing (install libcharon-extra-plugins)"
        ));
    }
    for tool in ["ip", "ping", "tcpdump", "kill"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("`{tool}` not found"));
        }
    }
    None
}

/// The project's rule for tests that cannot run ([`vpcd_types::testing::skip`]:
/// fail under CI, otherwise skip visibly). Returns `true` when the caller
/// should skip.
pub fn skip_unless_available(test: &str) -> bool {
    match unavailable_reason() {
        None => false,
        Some(reason) => {
            vpcd_types::testing::skip(test, &reason);
            true
        }
    }
}

/// The parts of a Libreswan file as vpcd hands it out, each opened by a
/// `# Part N of M: PATH ...` line naming the file it belongs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibreswanFiles {
    /// The `config setup` lines for /etc/ipsec.conf, when the file has any.
    pub setup: Option<String>,
    /// /etc/ipsec.d/vpcd.conf.
    pub conns: String,
    /// /etc/ipsec.d/vpcd.secrets.
    pub secrets: String,
}

impl LibreswanFiles {
    /// Split the handed-out text; every part must name a known file.
    pub fn split(text: &str) -> Result<LibreswanFiles, TestbedError> {
        let mut parts: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# Part ") {
                let path = rest
                    .split_once(": ")
                    .and_then(|(_, p)| p.split_whitespace().next())
                    .ok_or_else(|| err(format!("part line without a file: {line}")))?;
                parts.push((path.trim_end_matches(',').to_owned(), String::new()));
            } else if let Some((_, body)) = parts.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        let mut files = LibreswanFiles {
            setup: None,
            conns: String::new(),
            secrets: String::new(),
        };
        for (path, body) in parts {
            match path.as_str() {
                "/etc/ipsec.conf" => files.setup = Some(body),
                "/etc/ipsec.d/vpcd.conf" => files.conns = body,
                "/etc/ipsec.d/vpcd.secrets" => files.secrets = body,
                other => return Err(err(format!("unknown file in the text: {other}"))),
            }
        }
        if files.conns.is_empty() || files.secrets.is_empty() {
            return Err(err("the text lacks the conn or the secrets part"));
        }
        Ok(files)
    }

    /// A whole ipsec.conf as a customer's would be: the `config setup`
    /// lines, then an `include` of the conns at `conns_path`.
    pub fn ipsec_conf(&self, conns_path: &Path) -> String {
        format!(
            "{}\ninclude {}\n",
            self.setup.as_deref().unwrap_or("config setup\n"),
            conns_path.display()
        )
    }
}

/// Where pluto expects its helper programs (it runs `addconn` by this path).
const LIBRESWAN_MOUNT: &str = "/usr/libexec/ipsec";

/// The environment variable naming the root of an extracted Libreswan
/// package (`dpkg -x libreswan_*.deb ROOT`); default `.cache/libreswan/root`
/// in the workspace, where `scripts/test.sh` puts it.
pub const LIBRESWAN_DIR_VAR: &str = "VPCD_LIBRESWAN_DIR";

/// The folder with Libreswan's programs (pluto, whack, addconn,
/// readwriteconf, algparse), or why it is not usable here. Libreswan's
/// package conflicts with strongSwan's, so it is extracted, not installed.
pub fn libreswan_programs() -> Result<PathBuf, String> {
    programs_in(LIBRESWAN_DIR_VAR, "libreswan")
}

/// The environment variable naming the root of an extracted Libreswan 5
/// package (Debian 13's, `dpkg -x`, with a stand-in for the one library
/// Debian 12 lacks: see `scripts/libreswan5/`); default
/// `.cache/libreswan5/root`, where `scripts/test.sh` puts it.
pub const LIBRESWAN5_DIR_VAR: &str = "VPCD_LIBRESWAN5_DIR";

/// [`libreswan_programs`] for Libreswan 5 ([`LIBRESWAN5_DIR_VAR`]).
pub fn libreswan5_programs() -> Result<PathBuf, String> {
    programs_in(LIBRESWAN5_DIR_VAR, "libreswan5")
}

/// A Command for one of Libreswan's programs in `dir` (from
/// [`libreswan_programs`] or [`libreswan5_programs`]), finding the
/// libraries extracted beside them first.
pub fn libreswan_command(dir: &Path, program: &str) -> Command {
    let mut c = Command::new(dir.join(program));
    c.env("LD_LIBRARY_PATH", libreswan_libs(dir));
    c
}

/// `ROOT/usr/lib/x86_64-linux-gnu` for `ROOT/usr/libexec/ipsec`.
fn libreswan_libs(dir: &Path) -> PathBuf {
    dir.join("../../lib/x86_64-linux-gnu")
}

fn programs_in(var: &str, cache: &str) -> Result<PathBuf, String> {
    let root = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../.cache/{cache}/root"))
    });
    let dir = root.join("usr/libexec/ipsec");
    let pluto = dir.join("pluto");
    let runs = libreswan_command(&dir, "pluto")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let certutil = Command::new("sh")
        .args(["-c", "command -v certutil"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if runs && !certutil {
        return Err("certutil not found (install libnss3-tools)".into());
    }
    if runs {
        Ok(dir)
    } else {
        Err(format!(
            "{} does not run (bash scripts/test.sh extracts Debian's libreswan package \
             there and installs its libraries; or set {var})",
            pluto.display()
        ))
    }
}

fn run(cmd: &mut Command) -> Result<Output, TestbedError> {
    let out = cmd
        .output()
        .map_err(|e| err(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output, TestbedError> {
    run(Command::new("ip").args(args))
}

fn in_ns(ns: &str, args: &[&str]) -> Result<Output, TestbedError> {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Wait for `child` to exit, up to `limit`.
fn wait_for_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn strongswan_conf(state: &Path) -> String {
    let s = state.display();
    // One setting per line: a value runs to the end of its line.
    format!(
        "charon {{
  load_modular = no
  load = random nonce openssl aes sha1 sha2 md5 hmac gmp kdf pem pkcs1 pubkey x509 kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  install_virtual_ip = no
  i_dont_care_about_security_and_use_aggressive_mode_psk = yes
  retransmit_tries = 3
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  filelog {{
    main {{
      path = {s}/charon.log
      time_format = %H:%M:%S
      default = 1
      ike = 2
      cfg = 2
      knl = 1
      flush_line = yes
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{s}/charon.vici
    }}
  }}
}}
swanctl {{
  load = pem pkcs1 x509 pubkey random
}}
"
    )
}

impl Testbed {
    /// Build the namespaces and start both charons.
    pub fn start(config: TestbedConfig) -> Result<Testbed, TestbedError> {
        if config.cloud_public.is_empty() || config.peer_public.is_empty() {
            return Err(err("each side needs a public address"));
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("vpcd-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{base}-"))
            .tempdir()
            .map_err(|e| err(format!("temp dir: {e}")))?;
        let node = |suffix: &str| -> Result<Node, TestbedError> {
            let state = dir.path().join(suffix);
            fs::create_dir_all(state.join("run")).map_err(|e| err(e.to_string()))?;
            fs::write(state.join("strongswan.conf"), strongswan_conf(&state))
                .map_err(|e| err(e.to_string()))?;
            Ok(Node {
                ns: format!("{base}-{suffix}"),
                state,
                charon: None,
                pluto: None,
            })
        };
        let mut tb = Testbed {
            cloud: node("c")?,
            peer: node("p")?,
            config,
            pluto_dir: None,
            torn_down: false,
            _dir: dir,
        };
        // From here on, Drop cleans up whatever was created.
        tb.build_network()?;
        tb.start_charon(Side::Cloud)?;
        tb.start_charon(Side::Peer)?;
        Ok(tb)
    }

    /// [`Testbed::start`], or `None` after printing why the test is skipped
    /// (panics instead under `CI=true`, see [`skip_unless_available`]).
    pub fn start_or_skip(config: TestbedConfig) -> Option<Testbed> {
        let thread = std::thread::current();
        // The test harness names each test's thread after the test.
        if skip_unless_available(thread.name().unwrap_or("this test")) {
            return None;
        }
        Some(Testbed::start(config).expect("test bed setup"))
    }

    fn node(&self, side: Side) -> &Node {
        match side {
            Side::Cloud => &self.cloud,
            Side::Peer => &self.peer,
        }
    }

    fn node_mut(&mut self, side: Side) -> &mut Node {
        match side {
            Side::Cloud => &mut self.cloud,
            Side::Peer => &mut self.peer,
        }
    }

    fn build_network(&mut self) -> Result<(), TestbedError> {
        let (c, p) = (self.cloud.ns.clone(), self.peer.ns.clone());
        ip(&["netns", "add", &c])?;
        ip(&["netns", "add", &p])?;
        for ns in [&c, &p] {
            in_ns(
                ns,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        // Both ends are born inside the test's namespaces.
        ip(&[
            "link", "add", VETH, "netns", &c, "type", "veth", "peer", "name", VETH, "netns", &p,
        ])?;
        let sides = [
            (
                &c,
                &self.config.cloud_public,
                &self.config.cloud_inner,
                "198.51.100.0/24",
            ),
            (
                &p,
                &self.config.peer_public,
                &self.config.peer_inner,
                "203.0.113.0/24",
            ),
        ];
        for (ns, public, inner, other) in sides {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", VETH, "up"])?;
            for a in public {
                ip(&["-n", ns, "addr", "add", &format!("{a}/24"), "dev", VETH])?;
            }
            ip(&["-n", ns, "route", "add", other, "dev", VETH])?;
            for a in inner {
                ip(&["-n", ns, "addr", "add", &format!("{a}/32"), "dev", "lo"])?;
            }
        }
        Ok(())
    }

    /// The network namespace of a side.
    pub fn netns(&self, side: Side) -> &str {
        &self.node(side).ns
    }

    /// The per-side state directory (strongswan.conf, charon.log, socket).
    pub fn state_dir(&self, side: Side) -> &Path {
        &self.node(side).state
    }

    /// The addresses this bed was built with.
    pub fn config(&self) -> &TestbedConfig {
        &self.config
    }

    /// `unix://.../charon.vici` of a side's charon.
    pub fn vici_uri(&self, side: Side) -> String {
        format!(
            "unix://{}",
            self.node(side).state.join("charon.vici").display()
        )
    }

    /// PID of a side's charon, if running.
    pub fn charon_pid(&self, side: Side) -> Option<u32> {
        self.node(side).charon.as_ref().map(Child::id)
    }

    /// Start a side's charon and wait (up to 10 s) until VICI accepts
    /// connections.
    pub fn start_charon(&mut self, side: Side) -> Result<(), TestbedError> {
        if self.node(side).charon.is_some() {
            return Err(err(format!("{side} charon already running")));
        }
        let node = self.node_mut(side);
        let sock = node.state.join("charon.vici");
        let _ = fs::remove_file(&sock);
        let out =
            fs::File::create(node.state.join("charon.out")).map_err(|e| err(e.to_string()))?;
        let out2 = out.try_clone().map_err(|e| err(e.to_string()))?;
        // `ip netns exec` gives the command its own mount namespace, so the
        // bind mount over /run stays private to this charon.
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns, "sh", "-c"])
            .arg("mount --bind \"$1\" /run && exec \"$2\"")
            .arg("sh")
            .arg(node.state.join("run"))
            .arg(CHARON)
            .env("STRONGSWAN_CONF", node.state.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(out2)
            .spawn()
            .map_err(|e| err(format!("cannot start charon: {e}")))?;
        node.charon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return Ok(());
            }
            let node = self.node_mut(side);
            if let Some(c) = node.charon.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    node.charon = None;
                    let log = fs::read_to_string(node.state.join("charon.out")).unwrap_or_default();
                    return Err(err(format!("{side} charon exited ({status}): {log}")));
                }
            }
            if Instant::now() >= deadline {
                return Err(err(format!("{side} charon's VICI socket did not appear")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop a side's charon gracefully (SIGTERM, SIGKILL after 5 s).
    pub fn stop_charon(&mut self, side: Side) {
        if let Some(mut c) = self.node_mut(side).charon.take() {
            signal(c.id(), "TERM");
            if !wait_for_exit(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Kill a side's charon with SIGKILL (a crash: no DELETE sent).
    pub fn kill_charon(&mut self, side: Side) {
        if let Some(mut c) = self.node_mut(side).charon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Load a swanctl.conf into a side's charon with
    /// `swanctl --load-all --file F --uri U`. Returns swanctl's output.
    pub fn load_swanctl(&self, side: Side, conf: &str) -> Result<String, TestbedError> {
        let node = self.node(side);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let file = node.state.join(format!("swanctl-{n}.conf"));
        fs::write(&file, conf).map_err(|e| err(e.to_string()))?;
        let out = run(Command::new("swanctl")
            .arg("--load-all")
            .arg("--noprompt")
            .arg("--file")
            .arg(&file)
            .arg("--uri")
            .arg(self.vici_uri(side))
            .env("STRONGSWAN_CONF", node.state.join("strongswan.conf")));
        let _ = fs::remove_file(&file);
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Run a command inside a side's namespace.
    pub fn exec(&self, side: Side, args: &[&str]) -> Result<Output, TestbedError> {
        in_ns(self.netns(side), args)
    }

    /// One ping (1 s timeout) from `src` (an address of `side`) to `dst`.
    pub fn ping(&self, side: Side, src: &str, dst: &str) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                self.netns(side),
                "ping",
                "-n",
                "-q",
                "-c1",
                "-W1",
                "-I",
                src,
                dst,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Start tcpdump on a side's veth; returns once it is capturing.
    pub fn capture(&mut self, side: Side) -> Result<Capture, TestbedError> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let file = self.node(side).state.join(format!("capture-{n}.pcap"));
        let errfile = self.node(side).state.join(format!("capture-{n}.err"));
        let stderr = fs::File::create(&errfile).map_err(|e| err(e.to_string()))?;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.netns(side),
                "tcpdump",
                // Keep root: the capture file lives in a root-only directory.
                "-Z",
                "root",
                "-i",
                VETH,
                "-n",
                // Deliver each packet at once: otherwise packets still in
                // the kernel ring when tcpdump is stopped are lost.
                "--immediate-mode",
                "-U",
                "-w",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| err(format!("cannot start tcpdump: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listening = fs::read_to_string(&errfile)
                .unwrap_or_default()
                .contains("listening on");
            if listening {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                let msg = fs::read_to_string(&errfile).unwrap_or_default();
                return Err(err(format!("tcpdump exited: {msg}")));
            }
            if Instant::now() >= deadline {
                signal(child.id(), "KILL");
                let _ = child.wait();
                return Err(err("tcpdump did not start"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Capture { child, file })
    }

    /// A side's charon log (levels: default 1, ike/cfg 2).
    pub fn charon_log(&self, side: Side) -> String {
        fs::read_to_string(self.node(side).state.join("charon.log")).unwrap_or_default()
    }

    /// Run Libreswan's pluto on the peer side, in place of its charon
    /// (stopped first: only one IKE daemon can own UDP 500/4500 in a
    /// namespace), set up from the text GetVpnConnConfig hands out for
    /// Libreswan, each part where it says ([`LibreswanFiles`]), after
    /// `addconn --checkconfig` has accepted it without a word. Returns once
    /// pluto listens; it then loads every conn and initiates those with
    /// `auto=start` by itself, as `ipsec start` would. See
    /// [`libreswan_programs`] for where pluto comes from; the bind mount it
    /// needs lives in the namespace's own mount namespace, so the host's
    /// filesystem only gains the empty mount point `/usr/libexec/ipsec`.
    pub fn start_pluto(&mut self, handed_out: &str) -> Result<(), TestbedError> {
        let programs = libreswan_programs().map_err(err)?;
        self.start_pluto_from(&programs, handed_out)
    }

    /// [`Testbed::start_pluto`] with the Libreswan programs in `programs`
    /// (e.g. [`libreswan5_programs`]).
    pub fn start_pluto_from(
        &mut self,
        programs: &Path,
        handed_out: &str,
    ) -> Result<(), TestbedError> {
        let files = LibreswanFiles::split(handed_out)?;
        self.stop_pluto();
        self.stop_charon(Side::Peer);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = self.peer.state.join(format!("pluto-{n}"));
        let (nss, rundir, ipsecd) = (dir.join("nss"), dir.join("run"), dir.join("ipsec.d"));
        for d in [&nss, &rundir, &ipsecd] {
            fs::create_dir_all(d).map_err(|e| err(e.to_string()))?;
        }
        let conf = dir.join("ipsec.conf");
        let secrets_file = dir.join("ipsec.secrets");
        fs::write(&conf, files.ipsec_conf(&ipsecd.join("vpcd.conf")))
            .map_err(|e| err(e.to_string()))?;
        fs::write(ipsecd.join("vpcd.conf"), &files.conns).map_err(|e| err(e.to_string()))?;
        fs::write(&secrets_file, &files.secrets).map_err(|e| err(e.to_string()))?;
        // What Libreswan's ipsec.service runs before starting pluto. It
        // exits 0 whatever it finds, so anything it says is a refusal
        // (pluto itself loads some refused files all the same).
        let check = run(libreswan_command(programs, "addconn")
            .arg("--config")
            .arg(&conf)
            .arg("--checkconfig"))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        if !said.trim().is_empty() {
            return Err(err(format!(
                "addconn --checkconfig refuses the file: {said}"
            )));
        }
        run(Command::new("certutil")
            .args(["-N", "--empty-password", "-d"])
            .arg(format!("sql:{}", nss.display())))?;
        fs::create_dir_all(LIBRESWAN_MOUNT).map_err(|e| err(e.to_string()))?;
        let log = dir.join("pluto.log");
        let out = fs::File::create(dir.join("pluto.out")).map_err(|e| err(e.to_string()))?;
        let out2 = out.try_clone().map_err(|e| err(e.to_string()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.peer.ns, "sh", "-c"])
            .arg(format!(
                "mount --bind \"$1\" {LIBRESWAN_MOUNT} && export LD_LIBRARY_PATH=\"$8\" && \
                 exec {LIBRESWAN_MOUNT}/pluto --nofork \
                 --config \"$2\" --secretsfile \"$3\" --nssdir \"$4\" --rundir \"$5\" \
                 --ipsecdir \"$6\" --logfile \"$7\""
            ))
            .arg("sh")
            .arg(programs)
            .args([&conf, &secrets_file, &nss, &rundir, &ipsecd, &log])
            .arg(libreswan_libs(programs))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(out2)
            .spawn()
            .map_err(|e| err(format!("cannot start pluto: {e}")))?;
        self.peer.pluto = Some(child);
        self.pluto_dir = Some(dir.clone());
        // pluto loads the conns itself once it listens (it runs `addconn
        // --autoall`, which initiates the `auto=start` ones): wait for that.
        let ctl = rundir.join("pluto.ctl");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ctl.exists() || !self.pluto_log().contains("listening for IKE messages") {
            if let Some(Ok(Some(status))) = self.peer.pluto.as_mut().map(Child::try_wait) {
                self.peer.pluto = None;
                let out = fs::read_to_string(dir.join("pluto.out")).unwrap_or_default();
                return Err(err(format!(
                    "pluto exited ({status}): {out}{}",
                    self.pluto_log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "pluto did not start listening: {}",
                    self.pluto_log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The log of the pluto last started ([`Testbed::start_pluto`]).
    pub fn pluto_log(&self) -> String {
        self.pluto_dir
            .as_ref()
            .and_then(|d| fs::read_to_string(d.join("pluto.log")).ok())
            .unwrap_or_default()
    }

    /// Stop the peer side's pluto, if running (SIGTERM, SIGKILL after 5 s).
    pub fn stop_pluto(&mut self) {
        if let Some(mut c) = self.peer.pluto.take() {
            // The PID is that of `ip netns exec`, which exec'd sh, which
            // exec'd pluto: one process.
            signal(c.id(), "TERM");
            if !wait_for_exit(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stop everything and delete the namespaces. Idempotent; also run by
    /// `Drop`.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if std::thread::panicking() {
            let logs = [
                ("cloud charon", self.charon_log(Side::Cloud)),
                ("peer charon", self.charon_log(Side::Peer)),
                ("peer pluto", self.pluto_log()),
            ];
            for (what, log) in logs {
                if log.is_empty() {
                    continue;
                }
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- last lines of the {what} log ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        self.stop_pluto();
        self.stop_charon(Side::Cloud);
        self.stop_charon(Side::Peer);
        for ns in [&self.cloud.ns, &self.peer.ns] {
            if Path::new("/run/netns").join(ns).exists() {
                if let Err(e) = ip(&["netns", "del", ns]) {
                    eprintln!("testbed teardown: {e}");
                }
            }
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A running tcpdump. Stop it to read what it saw.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Stop capturing and return tcpdump's text rendering of the packets.
    pub fn stop(mut self) -> Result<String, TestbedError> {
        signal(self.child.id(), "TERM");
        if !wait_for_exit(&mut self.child, Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let out = run(Command::new("tcpdump").args(["-n", "-r"]).arg(&self.file))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

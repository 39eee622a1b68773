//! Storage faults as an operator meets them, on the `vpcd` binary: a data
//! directory that fills up and is freed again (readiness and the log follow
//! the episode, writes resume without a restart), and a read-only data
//! directory at start (a clear error and an exit status that stops a
//! supervisor's restart loop).
//!
//! Each vpcd runs in a mount namespace of its own (`unshare --mount`) with
//! its data directory on a small tmpfs mounted inside it: the mount dies
//! with the process, even when the test is killed. The test reaches the
//! files through `/proc/<pid>/root`, which resolves paths in that namespace.
//! Needs root (mount namespaces); under CI a non-root run fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vpcd_types::testing::{in_ci, skip, without_proxies};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpcd"))
}

fn can_run(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let unshare = Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && unshare {
        return true;
    }
    let why = "needs root and unshare(1) to mount a tmpfs in a private mount namespace";
    assert!(!in_ci(), "{test}: {why}");
    skip(test, why);
    false
}

/// A vpcd whose data directory `dir` is a tmpfs of `size` (mounted with
/// `opts`) in its own mount namespace. Killed by PID on drop.
struct Confined {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Confined {
    fn spawn(dir: &Path, size: &str, opts: &str, log: &Path, extra: &[&str]) -> Confined {
        let logf = std::fs::File::create(log).unwrap();
        // `unshare` and `sh` exec: the child's PID is vpcd's.
        let child = without_proxies(&mut Command::new("unshare"))
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o "size=$1,mode=0700$2" tmpfs "$3" && shift 3 && exec "$@""#)
            .arg("sh")
            .args([size, opts])
            .arg(dir)
            .arg(bin())
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--http", "127.0.0.1:0", "--https", "off"])
            .args(["--heartbeat-interval-ms", "200"])
            .args(extra)
            .env("VPCD_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn unshare");
        Confined {
            child,
            dir: dir.to_owned(),
            log: log.to_owned(),
        }
    }

    /// `path` inside the data directory, as seen from the test.
    fn file(&self, name: &str) -> PathBuf {
        let inside = self.dir.join(name);
        PathBuf::from(format!("/proc/{}/root", self.child.id()))
            .join(inside.strip_prefix("/").unwrap())
    }

    fn endpoint(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = std::fs::read_to_string(self.file("listen.json")) {
                if let Ok(v) = serde_json::from_str::<Value>(&s) {
                    return format!("http://{}", v["http"].as_str().unwrap());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vpcd exited ({status}): {}", self.logs());
            }
            assert!(Instant::now() < deadline, "vpcd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn call(&self, endpoint: &str, action: &str, params: &[&str]) -> Value {
        let out = without_proxies(&mut Command::new(bin()))
            .arg("call")
            .arg(action)
            .args(params)
            .args(["--endpoint", endpoint, "--credentials"])
            .arg(self.file("credentials"))
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
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let r = client.get(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

/// Poll `f` every 50 ms until it returns `Some`, for at most `within`.
fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fill the filesystem under `path` up to its last byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&block).and_then(|()| f.sync_data()).is_err() {
            break;
        }
    }
    // The last bytes of a partly written block.
    for _ in 0..4096 {
        if f.write_all(&[0u8; 16])
            .and_then(|()| f.sync_data())
            .is_err()
        {
            break;
        }
    }
}

#[test]
fn a_full_data_directory_is_one_logged_episode_and_writes_resume_without_a_restart() {
    const TEST: &str = "a_full_data_directory_is_one_logged_episode";
    if !can_run(TEST) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let mut v = Confined::spawn(&dir, "8m", "", &tmp.path().join("vpcd.log"), &[]);
    let ep = v.endpoint();
    assert_eq!(
        get(&format!("{ep}/readyz")),
        (200, serde_json::json!({"status": "ready"}))
    );
    let vpc = v.call(&ep, "CreateVpc", &["vpcName=v", "cidrBlock=10.0.0.0/16"]);
    assert_eq!(vpc["code"], 0, "{vpc}");

    fill(&v.file("filler"));
    // Every write is refused with the storage code, reads go on. Several
    // refusals, so the log has a chance to say it more than once.
    let mut refused = Vec::new();
    for i in 0..8 {
        let r = v.call(
            &ep,
            "AddUserGw",
            &[
                &format!("userGwName=u{i}"),
                &format!("userGwAddr=198.51.100.{}", i + 1),
            ],
        );
        if r["code"] == 5200 {
            assert_eq!(r["codeDesc"], "StorageUnavailable", "{r}");
            let msg = r["message"].as_str().unwrap();
            assert!(
                msg.starts_with("the storage is full or unavailable"),
                "{msg}"
            );
            assert!(!msg.contains('/'), "no path reaches the client: {msg}");
            refused.push(format!("u{i}"));
        } else {
            // A write that still found room (a page already allocated)
            // must be a real success.
            assert_eq!(r["code"], 0, "{r}\n{}", v.logs());
        }
    }
    assert!(
        refused.len() >= 6,
        "writes kept succeeding on a full disk: {refused:?}"
    );
    let (status, ready) = get(&format!("{ep}/readyz"));
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("storage not writable")),
        "{ready}"
    );
    // What reads do while the Nonce store cannot write is the replay
    // policy's (docs/actions.md): tested with it.

    std::fs::remove_file(v.file("filler")).unwrap();
    // Readiness returns by itself (within a few heartbeats), and so do writes.
    poll(Duration::from_secs(10), "readyz back to ready", || {
        (get(&format!("{ep}/readyz")).0 == 200).then_some(())
    });
    let r = v.call(
        &ep,
        "AddUserGw",
        &["userGwName=after", "userGwAddr=198.51.100.200"],
    );
    assert_eq!(r["code"], 0, "{r}");
    // Nothing refused was written.
    let users = v.call(&ep, "DescribeUserGw", &[]);
    let names: Vec<&str> = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userGwName"].as_str().unwrap())
        .collect();
    for name in &refused {
        assert!(
            !names.contains(&name.as_str()),
            "refused {name} exists: {names:?}"
        );
    }
    assert!(names.contains(&"after"), "{names:?}");

    drop(v.child.kill());
    let _ = v.child.wait();
    let logs = std::fs::read_to_string(tmp.path().join("vpcd.log")).unwrap();
    let count = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("storage not writable"),
        1,
        "one line per episode:\n{logs}"
    );
    assert_eq!(count("storage writable again"), 1, "{logs}");
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_and_exit_status_78() {
    const TEST: &str = "a_read_only_data_directory_is_a_clear_error";
    if !can_run(TEST) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("vpcd.log");
    let mut v = Confined::spawn(&dir, "1m", ",ro", &log, &[]);
    let status = poll(Duration::from_secs(30), "vpcd exits", || {
        v.child.try_wait().unwrap()
    });
    let logs = v.logs();
    assert_eq!(status.code(), Some(78), "{logs}");
    let last = logs.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the data directory ")
            && last.contains("is not writable")
            && last.contains("Read-only file system"),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

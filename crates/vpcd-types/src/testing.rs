//! The one rule every crate's tests follow when they cannot run here (no
//! root, no strongSwan, no PostgreSQL): under CI (`CI=true` or `CI=1`) that
//! is a failure; elsewhere the test skips and says why, visibly.
//!
//! "Visibly" needs more than `eprintln!`: the test harness hides the output
//! of passing tests, so a skipped test would read "ok". [`skip`] therefore
//! also appends `<test>: <reason>` to the file named by `VPCD_TEST_SKIP_LOG`,
//! and `scripts/test.sh` (which sets it) lists those lines at the end.
//!
//! The only part of this crate that touches the environment or a file; it
//! serves tests only.

use std::io::Write;

/// The proxy variables HTTP clients honour. A child process that talks to a
/// vpcd under test must not see them: a signed request (a PSK among its
/// parameters) would otherwise go to whatever proxy the machine has, and some
/// clients (the v2 SDK) ignore `no_proxy`.
pub const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Remove [`PROXY_VARS`] from a child's environment.
pub fn without_proxies(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG_VAR: &str = "VPCD_TEST_SKIP_LOG";

/// Whether the tests run under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

fn ci_value(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

/// Skip `test` because of `reason`: panics under CI; otherwise prints the
/// reason and records it in `$VPCD_TEST_SKIP_LOG` (when set).
pub fn skip(test: &str, reason: &str) {
    record(
        in_ci(),
        std::env::var_os(SKIP_LOG_VAR).as_deref(),
        test,
        reason,
    );
}

fn record(ci: bool, log: Option<&std::ffi::OsStr>, test: &str, reason: &str) {
    if ci {
        panic!("{test} cannot run under CI: {reason}");
    }
    let line = format!("{test}: {}", reason.replace('\n', " "));
    eprintln!("SKIPPED {line}");
    if let Some(path) = log {
        // One write of one line with O_APPEND: lines of tests running at
        // the same time do not interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            eprintln!(
                "could not record the skip in {}: {e}",
                path.to_string_lossy()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_true_or_1() {
        assert!(ci_value(Some("true")));
        assert!(ci_value(Some("1")));
        for other in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("TRUE"),
            Some("yes"),
        ] {
            assert!(!ci_value(other), "{other:?}");
        }
    }

    #[test]
    fn a_skip_is_recorded_with_its_reason() {
        let dir = std::env::temp_dir().join(format!("vpcd-types-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips");
        record(
            false,
            Some(log.as_os_str()),
            "a_test",
            "no strongSwan\nhere",
        );
        record(false, Some(log.as_os_str()), "b_test", "not root");
        record(false, None, "c_test", "nowhere to record");
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "a_test: no strongSwan here\nb_test: not root\n");
    }

    #[test]
    #[should_panic(expected = "a_test cannot run under CI: not root")]
    fn under_ci_a_skip_fails() {
        record(true, None, "a_test", "not root");
    }
}

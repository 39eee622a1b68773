//! Which process holds a task lease, recorded precisely enough that another
//! vpcd on the same host can prove the holder dead.
//!
//! A worker's id (the lease owner written with every claim) ends in
//! `@<boot id>/<pid namespace>/<pid>/<start time>`: the kernel's boot id, the
//! inode of the process's pid namespace, its pid and its start time in clock
//! ticks since boot (`/proc/<pid>/stat`, field 22). A vpcd that reads the
//! same boot id and pid namespace sees the same process table, so when no
//! process with that pid and start time exists the holder is gone (a reused
//! pid has a later start time). That is a proof, not a guess: a holder on
//! another host, in another pid namespace (another container) or after a
//! reboot cannot be checked this way and keeps its lease until it runs out.

use std::path::Path;

/// A process, as the tag on a worker id names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    boot_id: String,
    pid_ns: String,
    pid: u32,
    start_ticks: u64,
}

impl Holder {
    /// This process; `None` where `/proc` does not tell (then the tag is
    /// left off and no holder is ever judged dead).
    pub(crate) fn current() -> Option<Holder> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let pid = std::process::id();
        Some(Holder {
            boot_id: boot_id.trim().to_owned(),
            pid_ns: pid_namespace(Path::new("/proc/self/ns/pid"))?,
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    /// The tag appended to the worker id: `@boot/ns/pid/start`.
    pub(crate) fn tag(&self) -> String {
        format!(
            "@{}/{}/{}/{}",
            self.boot_id, self.pid_ns, self.pid, self.start_ticks
        )
    }

    /// The holder named by the tag at the end of `worker_id`, if any.
    pub(crate) fn of_worker(worker_id: &str) -> Option<Holder> {
        let (_, tag) = worker_id.rsplit_once('@')?;
        let mut parts = tag.split('/');
        let holder = Holder {
            boot_id: parts.next()?.to_owned(),
            pid_ns: parts.next()?.to_owned(),
            pid: parts.next()?.parse().ok()?,
            start_ticks: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(holder)
    }

    /// Whether this holder is provably gone, judged from process `me`: same
    /// boot and pid namespace, and no process with its pid and start time.
    pub(crate) fn is_dead_seen_from(&self, me: &Holder) -> bool {
        self.boot_id == me.boot_id
            && self.pid_ns == me.pid_ns
            && *self != *me
            && start_ticks(self.pid) != Some(self.start_ticks)
    }
}

/// The inode in the `pid:[N]` link of a pid namespace.
fn pid_namespace(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    let target = target.to_str()?;
    let inode = target.strip_prefix("pid:[")?.strip_suffix(']')?;
    Some(inode.to_owned())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock
/// ticks since boot. `None` when there is no such process.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3, so field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trips_and_judges_only_what_it_can_see() {
        let Some(me) = Holder::current() else {
            assert!(!vpcd_types::testing::in_ci(), "no /proc under CI");
            println!("skipping: no /proc here");
            return;
        };
        let id = format!("host-1-00ab{}", me.tag());
        assert_eq!(Holder::of_worker(&id), Some(me.clone()));
        assert!(!me.is_dead_seen_from(&me));
        // A child that has exited: same boot and namespace, process gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_pid = child.id();
        let child_start = start_ticks(child_pid);
        child.wait().unwrap();
        let gone = Holder {
            pid: child_pid,
            start_ticks: child_start.unwrap_or(0),
            ..me.clone()
        };
        assert!(gone.is_dead_seen_from(&me));
        // Our pid with another start time: a reused pid, so the holder is gone.
        let reused = Holder {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(reused.is_dead_seen_from(&me));
        // Another boot or namespace: cannot be judged, so never dead.
        for other in [
            Holder {
                boot_id: "other".into(),
                ..gone.clone()
            },
            Holder {
                pid_ns: "1".into(),
                ..gone.clone()
            },
        ] {
            assert!(!other.is_dead_seen_from(&me));
        }
        for bad in ["host-1-00ab", "w@a/b/c/d", "w@a/b/1/2/3", "w@a/b/1"] {
            assert_eq!(Holder::of_worker(bad), None, "{bad}");
        }
    }
}

//! Attacker-controlled text in log lines (issue 11, finding 4).
//!
//! Anyone who can reach the port chooses the Action, the parameter names and the SecretId of an
//! unsigned request, and vpcd logs them when it refuses it. Logged raw, a newline in an Action
//! forges a complete log line and a 60 KB Action makes a 60 KB line per request. So every such
//! string goes through [`untrusted`], and refusals of requests that never proved who sent them go
//! through a [`RefusalGate`], which lets at most a fixed number of lines a second through and
//! reports how many it held back.
//!
//! # Layout
//! - [`untrusted`], [`untrusted_text`], [`Untrusted`]: escaped and truncated display of one string.
//! - [`RefusalGate`], [`Admit`]: the per-second budget of refusal lines.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Characters of an untrusted string shown before it is cut off. Enough for every real Action,
/// parameter name and SecretId; the rest is replaced by a count.
pub(crate) const SHOWN_CHARS: usize = 64;

/// Characters shown of a longer text that quotes the client, such as an
/// error message naming a parameter.
const SHOWN_TEXT_CHARS: usize = 256;

/// Display `s` for a log line: printable ASCII as is, everything else (newlines, other control
/// characters, quotes, backslashes, non-ASCII) as a Rust escape, and at most [`SHOWN_CHARS`]
/// characters followed by `...(N more bytes)`. The output is one line of printable ASCII, so it
/// cannot end a log line nor pass for a field of another.
pub(crate) fn untrusted(s: &str) -> Untrusted<'_> {
    Untrusted(s, SHOWN_CHARS)
}

/// [`untrusted`] for a longer text that quotes the client (an error message).
pub(crate) fn untrusted_text(s: &str) -> Untrusted<'_> {
    Untrusted(s, SHOWN_TEXT_CHARS)
}

/// See [`untrusted`]: the text and how many of its characters to show.
pub(crate) struct Untrusted<'a>(&'a str, usize);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown_bytes = 0;
        for (n, c) in self.0.chars().enumerate() {
            if n == self.1 {
                return write!(f, "...({} more bytes)", self.0.len() - shown_bytes);
            }
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                write!(f, "{c}")?;
            } else {
                write!(f, "{}", c.escape_default())?;
            }
            shown_bytes += c.len_utf8();
        }
        Ok(())
    }
}

/// Whether a refusal may be logged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Log it; `held_back` lines were dropped in the previous full second and should be reported
    /// along with it (0: none).
    Log { held_back: u64 },
    /// Over the budget of the current second: drop the line.
    Drop,
}

/// A budget of `per_second` log lines in each one-second window; lines over it are counted and
/// the count is handed to the first line of a later window.
pub(crate) struct RefusalGate {
    per_second: u32,
    window: Mutex<Window>,
}

struct Window {
    start: Option<Instant>,
    logged: u32,
    held_back: u64,
}

impl RefusalGate {
    pub(crate) const fn new(per_second: u32) -> Self {
        RefusalGate {
            per_second,
            window: Mutex::new(Window {
                start: None,
                logged: 0,
                held_back: 0,
            }),
        }
    }

    /// Whether a refusal seen at `now` may be logged.
    pub(crate) fn admit(&self, now: Instant) -> Admit {
        // A poisoned lock only means another thread panicked while counting; the counts are
        // still usable.
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let expired = w
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if expired {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < self.per_second {
            w.logged += 1;
            Admit::Log {
                held_back: std::mem::take(&mut w.held_back),
            }
        } else {
            w.held_back += 1;
            Admit::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        let forged =
            "DescribeVpcEx\n2026-01-01T00:00:00Z  INFO vpcd: \"admin\" logged in\r\t\u{1b}[31m";
        let shown = untrusted(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(shown.starts_with(r#"DescribeVpcEx\n2026-01-01T00:00:00Z  INFO vpcd: \"admin\""#));
        assert!(shown.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        assert_eq!(untrusted("é\\").to_string(), r"\u{e9}\\");
    }

    #[test]
    fn long_strings_are_cut_with_a_count() {
        let long = "A".repeat(60_000);
        let shown = untrusted(&long).to_string();
        assert_eq!(
            shown,
            format!(
                "{}...({} more bytes)",
                "A".repeat(SHOWN_CHARS),
                60_000 - SHOWN_CHARS
            )
        );
        let exact = "B".repeat(SHOWN_CHARS);
        assert_eq!(untrusted(&exact).to_string(), exact);
        // Cut at a character boundary, counting bytes.
        let wide = "é".repeat(SHOWN_CHARS + 1);
        assert!(untrusted(&wide).to_string().ends_with("...(2 more bytes)"));
    }

    #[test]
    fn the_gate_keeps_a_budget_per_second_and_reports_what_it_held_back() {
        let gate = RefusalGate::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(gate.admit(t0), Admit::Log { held_back: 0 });
        }
        for _ in 0..5 {
            assert_eq!(gate.admit(t0 + Duration::from_millis(999)), Admit::Drop);
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(gate.admit(t1), Admit::Log { held_back: 5 });
        assert_eq!(gate.admit(t1), Admit::Log { held_back: 0 });
    }
}

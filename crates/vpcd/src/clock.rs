//! Wall-clock seconds, injectable so tests can move time, and the one way
//! answers of both protocols write a time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Unix seconds now, plus an offset that tests may move. Clones share the
/// offset.
#[derive(Clone, Default)]
pub(crate) struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub(crate) fn now(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.offset.load(Ordering::Relaxed)
    }

    /// Shift the clock.
    #[cfg(test)]
    pub(crate) fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// `YYYY-MM-DD HH:MM:SS`, UTC: how both protocols' answers write a time
/// (v2 `createTime`, 3.0 `CreatedTime`).
pub(crate) fn format_utc(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

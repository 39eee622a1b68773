//! Latency summaries.
//!
//! Every sample is kept (a bounded run produces at most a few hundred
//! thousand), so percentiles are exact rather than bucketed.

use std::time::Duration;

/// p50/p99/max and the sample count of a set of latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Summary {
    /// Summarise samples given in microseconds (sorted in place).
    pub fn of(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        Summary {
            count: samples.len(),
            p50_us: percentile(samples, 50.0),
            p99_us: percentile(samples, 99.0),
            max_us: samples[samples.len() - 1],
        }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest sample such
/// that at least `p` percent of all samples are less than or equal to it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A latency in microseconds as milliseconds with two decimals, for tables.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.count, s.p50_us, s.p99_us, s.max_us), (100, 50, 99, 100));
        assert_eq!(Summary::of(&mut [7]).p99_us, 7);
        assert_eq!(Summary::of(&mut []), Summary::default());
        assert_eq!(percentile(&[1, 2], 0.0), 1);
    }

    #[test]
    fn formatting() {
        assert_eq!(ms(1234), "1.23");
        assert_eq!(micros(Duration::from_millis(3)), 3000);
    }
}

//! `/metrics` as a Prometheus server reads it: parsed with
//! `prometheus-parse`, which shares no code with the exporter.

use prometheus_parse::{Sample, Scrape, Value as PValue};

/// One scrape: its text, and the samples as the parser read them.
pub struct Scraped {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scraped {
    /// A scrape's answer, checked to be OpenMetrics text and parsed.
    pub fn parse(content_type: &str, text: String) -> Scraped {
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
        Scraped {
            text,
            samples: parsed.samples,
        }
    }

    /// The value of the one sample `name` with (at least) `labels`; 0 when
    /// there is none (a counter not yet incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        match found.as_slice() {
            [] => 0.0,
            [one] => match &one.value {
                PValue::Counter(v) | PValue::Gauge(v) | PValue::Untyped(v) => *v,
                other => panic!("{name}: not a number: {other:?}"),
            },
            many => panic!("{name} {labels:?} is ambiguous: {} samples", many.len()),
        }
    }

    /// How many observations a histogram `name` with `labels` counted.
    pub fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                PValue::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .sum()
    }

    pub fn requests(&self, protocol: &str, action: &str, code: &str) -> f64 {
        self.value(
            "vpcd_requests_total",
            &[("protocol", protocol), ("action", action), ("code", code)],
        )
    }

    pub fn tasks(&self, state: &str) -> f64 {
        self.value("vpcd_tasks", &[("state", state)])
    }

    pub fn tunnels(&self, state: &str, health: &str) -> f64 {
        self.value("vpcd_tunnels", &[("state", state), ("health", health)])
    }

    /// Every metric of the scrape has its row in docs/metrics.md.
    pub fn assert_documented(&self) {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
        )
        .unwrap();
        for s in &self.samples {
            // A histogram's `_sum` and `_count` are documented with it.
            let base = ["_sum", "_count"]
                .iter()
                .find_map(|suffix| s.metric.strip_suffix(suffix))
                .filter(|base| docs.contains(&format!("| `{base}` | histogram |")));
            let name = base.unwrap_or(&s.metric);
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{} is not in docs/metrics.md",
                s.metric
            );
        }
    }

    /// Every label value of every sample.
    pub fn label_values(&self) -> Vec<String> {
        self.samples
            .iter()
            .flat_map(|s| s.labels.values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

//! The load tester's metrics, in the OpenMetrics text format through prometheus-client, the one
//! label a payload names escaped. Every label is bounded: task types are the known ones (`other` for the
//! rest), answers are HTTP status codes, and the latency of each Canary's last load is kept for
//! at most [`MAX_CANARIES`] Canaries and expires [`LATENCY_TTL`] after that load.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::load::LoadReport;

/// How long the latency of a Canary's last load stays exposed.
pub const LATENCY_TTL: Duration = Duration::from_secs(15 * 60);
/// The most Canaries whose latency is exposed at once (the oldest goes first).
pub const MAX_CANARIES: usize = 1_000;

const TASK_TYPES: [&str; 8] = [
    "cmd", "bash", "helm", "helmv3", "kubectl", "load", "ngrinder", "concord",
];
const QUANTILES: [&str; 3] = ["0.5", "0.9", "0.99"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    r#type: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    canary: Escaped,
    quantile: String,
}

/// A label value from a payload, escaped as the text format requires (prometheus-client 0.24
/// writes label values as they are).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Escaped(String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for character in self.0.chars() {
            match character {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                other => encoder.write_char(other)?,
            }
        }
        Ok(())
    }
}

pub struct Metrics {
    registry: Registry,
    tasks: Family<TaskLabels, Counter>,
    requests: Family<StatusLabels, Counter>,
    latency: Family<LatencyLabels, Gauge<f64, AtomicU64>>,
    /// When each Canary's latency was last set.
    latency_set: Mutex<BTreeMap<String, Instant>>,
    latency_ttl: Duration,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::with_latency_ttl(LATENCY_TTL)
    }
}

impl Metrics {
    pub fn with_latency_ttl(latency_ttl: Duration) -> Metrics {
        let mut registry = Registry::default();
        let (tasks, requests, latency) = (Family::default(), Family::default(), Family::default());
        registry.register(
            "serin_loadtester_tasks",
            "Tasks asked for, by type and result",
            tasks.clone(),
        );
        registry.register(
            "serin_loadtester_load_requests",
            "Requests the built-in generator sent, by answer (HTTP status, or error)",
            requests.clone(),
        );
        registry.register(
            "serin_loadtester_load_latency_ms",
            "Latency quantiles of each Canary's last built-in load, in milliseconds",
            latency.clone(),
        );
        Metrics {
            registry,
            tasks,
            requests,
            latency,
            latency_set: Mutex::default(),
            latency_ttl,
        }
    }

    /// A task of `kind` (as the payload named it) ended with `result`.
    pub fn task(&self, kind: &str, result: &'static str) {
        let kind = TASK_TYPES
            .iter()
            .find(|known| **known == kind)
            .copied()
            .unwrap_or("other");
        self.tasks
            .get_or_create(&TaskLabels {
                r#type: kind.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// A built-in load of `canary` (`namespace/name`) finished with `report`.
    pub fn load(&self, canary: &str, report: &LoadReport) {
        for (status, count) in &report.responses {
            // Statuses are three digits or `error`; anything else would come from a bug.
            let status = if status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()) {
                status.as_str()
            } else {
                "error"
            };
            self.requests
                .get_or_create(&StatusLabels {
                    status: status.to_string(),
                })
                .inc_by(*count);
        }
        let mut set = self
            .latency_set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.expire(&mut set);
        if !set.contains_key(canary)
            && set.len() >= MAX_CANARIES
            && let Some(oldest) = set.iter().min_by_key(|(_, at)| **at).map(|(c, _)| c.clone())
        {
            self.forget(&mut set, &oldest);
        }
        set.insert(canary.to_string(), Instant::now());
        for (quantile, value) in QUANTILES.iter().zip([report.p50_ms, report.p90_ms, report.p99_ms]) {
            self.latency.get_or_create(&latency_labels(canary, quantile)).set(value);
        }
    }

    fn expire(&self, set: &mut BTreeMap<String, Instant>) {
        let expired: Vec<String> = set
            .iter()
            .filter(|(_, at)| at.elapsed() > self.latency_ttl)
            .map(|(canary, _)| canary.clone())
            .collect();
        for canary in expired {
            self.forget(set, &canary);
        }
    }

    fn forget(&self, set: &mut BTreeMap<String, Instant>, canary: &str) {
        set.remove(canary);
        for quantile in QUANTILES {
            self.latency.remove(&latency_labels(canary, quantile));
        }
    }

    /// The exposition, once expired latencies are gone.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        {
            let mut set = self
                .latency_set
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.expire(&mut set);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn latency_labels(canary: &str, quantile: &str) -> LatencyLabels {
    LatencyLabels {
        canary: Escaped(canary.to_string()),
        quantile: quantile.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p99_ms: f64) -> LoadReport {
        LoadReport {
            requests: 3,
            responses: BTreeMap::from([("200".to_string(), 2), ("error".to_string(), 1)]),
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms,
            seconds: 1.0,
        }
    }

    /// Payload strings cannot add lines or series to the exposition.
    #[test]
    fn payload_strings_cannot_inject_series() {
        let metrics = Metrics::default();
        metrics.task("cmd\"} 1\nserin_injected_total 1\n#", "started");
        metrics.task("load", "succeeded");
        metrics.load("test/web\"} 7\nserin_injected 1", &report(5.0));
        let text = metrics.encode().expect("exposition");
        assert!(
            !text.lines().any(|l| l.starts_with("serin_injected")),
            "an injected line:\n{text}"
        );
        assert!(
            text.contains("serin_loadtester_tasks_total{type=\"other\",result=\"started\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("serin_loadtester_tasks_total{type=\"load\",result=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("serin_loadtester_load_requests_total{status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "serin_loadtester_load_latency_ms{canary=\"test/web\\\"} 7\\nserin_injected 1\",quantile=\"0.99\"} 5.0"
            ),
            "{text}"
        );
    }

    #[test]
    fn latency_series_expire_and_are_bounded() {
        let metrics = Metrics::with_latency_ttl(Duration::from_millis(200));
        metrics.load("test/old", &report(1.0));
        std::thread::sleep(Duration::from_millis(300));
        metrics.load("test/new", &report(2.0));
        let text = metrics.encode().expect("exposition");
        assert!(!text.contains("test/old"), "expired:\n{text}");
        assert!(text.contains("test/new"), "{text}");

        let metrics = Metrics::default();
        for index in 0..=MAX_CANARIES {
            metrics.load(&format!("test/web-{index}"), &report(1.0));
        }
        let text = metrics.encode().expect("exposition");
        let series = text
            .lines()
            .filter(|l| l.starts_with("serin_loadtester_load_latency_ms{") && l.contains("quantile=\"0.5\""))
            .count();
        assert_eq!(series, MAX_CANARIES, "one Canary's series dropped");
        assert!(!text.contains("canary=\"test/web-0\""), "the oldest went first");
    }
}

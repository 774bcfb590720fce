//! Call counts and latency per connector, step and outcome (contract §6), and the
//! state of each connector's circuit breaker, exported in the Prometheus text format. One mutex around a small map: a call takes it once, for
//! a few additions, which is far below the cost of the HTTP call it measures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::breaker::BreakerState;

/// Upper bounds of the latency histogram, in seconds: 1 ms to 30 s.
pub const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

#[derive(Debug, Clone, Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Per bucket (not cumulative); the +Inf bucket is `count`.
    buckets: [u64; BUCKETS.len()],
}

type Labels = (String, String, String);

/// Shared by every connector runner of the process; rendered by the metrics endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Labels, Series>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call. `outcome` is `continue`, `block`, `validationError` or
    /// `failed`; `step` the wire name.
    pub fn observe(&self, connector: &str, step: &str, outcome: &str, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = series
            .entry((connector.to_owned(), step.to_owned(), outcome.to_owned()))
            .or_default();
        s.count += 1;
        s.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// Calls counted so far with these labels.
    pub fn calls(&self, connector: &str, step: &str, outcome: &str) -> u64 {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series
            .get(&(connector.to_owned(), step.to_owned(), outcome.to_owned()))
            .map_or(0, |s| s.count)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        out.push_str("# HELP usher_connector_calls_total API connector calls, retries included in one call.\n");
        out.push_str("# TYPE usher_connector_calls_total counter\n");
        for ((connector, step, outcome), s) in &series {
            let _ = writeln!(
                out,
                "usher_connector_calls_total{{{}}} {}",
                labels(connector, step, outcome),
                s.count
            );
        }
        out.push_str("# HELP usher_connector_call_duration_seconds API connector call latency, from the first attempt's start to the last's end.\n");
        out.push_str("# TYPE usher_connector_call_duration_seconds histogram\n");
        for ((connector, step, outcome), s) in &series {
            let l = labels(connector, step, outcome);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "usher_connector_call_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "usher_connector_call_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "usher_connector_call_duration_seconds_sum{{{l}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "usher_connector_call_duration_seconds_count{{{l}}} {}",
                s.count
            );
        }
        out
    }
}

/// The value of `usher_connector_breaker_state`: 0 closed, 1 half-open, 2 open, so
/// that `> 0` means calls are being refused or rationed.
pub fn breaker_value(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

/// The breaker gauge, one series per connector of the current tenant. Breakers are
/// per process, so this is the state on the instance scraped.
pub fn render_breakers(states: &[(String, BreakerState)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP usher_connector_breaker_state API connector circuit breaker on this instance: 0 closed, 1 half-open (one trial call allowed), 2 open (calls refused).\n");
    out.push_str("# TYPE usher_connector_breaker_state gauge\n");
    for (connector, state) in states {
        let _ = writeln!(
            out,
            "usher_connector_breaker_state{{connector=\"{}\"}} {}",
            escape(connector),
            breaker_value(*state)
        );
    }
    out
}

fn labels(connector: &str, step: &str, outcome: &str) -> String {
    format!(
        "connector=\"{}\",step=\"{}\",outcome=\"{}\"",
        escape(connector),
        escape(step),
        escape(outcome)
    )
}

/// Label values escape backslash, double quote and line feed.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_breaker_gauge() {
        let text = render_breakers(&[
            ("a".into(), BreakerState::Closed),
            ("b\"".into(), BreakerState::Open),
            ("c".into(), BreakerState::HalfOpen),
        ]);
        assert!(text.contains("# TYPE usher_connector_breaker_state gauge\n"));
        assert!(text.contains("usher_connector_breaker_state{connector=\"a\"} 0\n"));
        assert!(text.contains("usher_connector_breaker_state{connector=\"b\\\"\"} 2\n"));
        assert!(text.contains("usher_connector_breaker_state{connector=\"c\"} 1\n"));
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.observe(
            "enrich",
            "PreTokenIssuance",
            "continue",
            Duration::from_millis(3),
        );
        m.observe(
            "enrich",
            "PreTokenIssuance",
            "continue",
            Duration::from_secs(40),
        );
        m.observe(
            "we\"ird\\\n",
            "PostAttributeCollection",
            "failed",
            Duration::from_millis(1),
        );
        let text = m.render_prometheus();
        assert!(text.contains(
            "usher_connector_calls_total{connector=\"enrich\",step=\"PreTokenIssuance\",outcome=\"continue\"} 2\n"
        ));
        assert!(text.contains("connector=\"we\\\"ird\\\\\\n\""));
        assert!(text.contains(
            "usher_connector_call_duration_seconds_bucket{connector=\"enrich\",step=\"PreTokenIssuance\",outcome=\"continue\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "usher_connector_call_duration_seconds_bucket{connector=\"enrich\",step=\"PreTokenIssuance\",outcome=\"continue\",le=\"30\"} 1\n"
        ));
        assert!(text.contains(
            "usher_connector_call_duration_seconds_bucket{connector=\"enrich\",step=\"PreTokenIssuance\",outcome=\"continue\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains(
            "usher_connector_call_duration_seconds_count{connector=\"enrich\",step=\"PreTokenIssuance\",outcome=\"continue\"} 2\n"
        ));
        assert!(text.contains("# TYPE usher_connector_calls_total counter\n"));
        assert!(text.contains("# TYPE usher_connector_call_duration_seconds histogram\n"));
        assert_eq!(m.calls("enrich", "PreTokenIssuance", "continue"), 2);
        assert_eq!(m.calls("enrich", "PreTokenIssuance", "failed"), 0);
        // Every line is a comment or `name{labels} value`.
        for line in text.lines() {
            assert!(
                line.starts_with('#')
                    || line
                        .rsplit_once(' ')
                        .is_some_and(|(_, v)| v.parse::<f64>().is_ok()),
                "{line}"
            );
        }
    }
}

//! What a chaos run found: per scenario, whether it was detected and how fast, rendered as
//! JSON, Markdown, a terminal table and Prometheus histograms.

use std::{collections::BTreeMap, fmt::Write as _};

use prometheus::{Encoder as _, HistogramOpts, HistogramVec, Registry, TextEncoder};
use serde::Serialize;

use super::catalog::Kind;

/// One run of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Which expected rule fired, if any did.
    pub rule: Option<String>,
    /// From the action's start to the alert's arrival at the sink, milliseconds.
    pub delivery_ms: Option<f64>,
    /// From the action's start to the kernel event that raised the alert, milliseconds.
    pub event_ms: Option<f64>,
    /// From the action's start to the alert leaving the agent's rule engine, milliseconds.
    pub engine_ms: Option<f64>,
    /// From the action's start to the alert's arrival at each other sink, milliseconds.
    pub sinks_ms: Vec<(String, f64)>,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Slowest.
    pub max: f64,
}

/// One scenario's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// `attack` or `fault`.
    pub kind: Kind,
    /// MITRE ATT&CK tactic.
    pub tactic: String,
    /// MITRE ATT&CK technique.
    pub technique: String,
    /// Rules of which any one counts as a detection.
    pub expected_rules: Vec<String>,
    /// Whether every run was detected.
    pub detected: bool,
    /// Runs made.
    pub runs: usize,
    /// Runs detected.
    pub detections: usize,
    /// The rules that fired.
    pub fired: Vec<String>,
    /// Action start to delivery at the sink, over detected runs.
    pub latency_ms: Latency,
    /// Action start to the kernel event the alert is about.
    pub event_latency_ms: Latency,
    /// Action start to the alert leaving the rule engine.
    pub engine_latency_ms: Latency,
    /// Action start to delivery at each further sink (the agent chaos starts also delivers
    /// over TLS, as sink `chaos-tls`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sink_latency_ms: BTreeMap<String, Latency>,
    /// A fault's own figures (`blind_window_ms`, `alerts_lost`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, f64>,
}

/// The whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Detected runs over all runs, 0.0 to 1.0.
    pub detection_rate: f64,
    /// Alerts raised while only the benign workload ran.
    pub false_positives: usize,
    /// Rules of those alerts.
    pub false_positive_rules: Vec<String>,
    /// Over the attacks' median latencies (action start to delivery).
    pub latency_ms: Latency,
    /// Over the attacks' median latencies from the action's start to the alert leaving the
    /// rule engine.
    pub engine_latency_ms: Latency,
    /// Per scenario, in catalog order.
    pub scenarios: Vec<ScenarioReport>,
    /// Vigil's version.
    pub version: &'static str,
}

/// Percentiles of a sample (nearest rank); zeros when empty.
pub fn latency(samples: &[f64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Latency {
        p50: rank(0.50),
        p95: rank(0.95),
        max: sorted[sorted.len() - 1],
    }
}

impl ScenarioReport {
    /// Summarises the runs of one scenario.
    pub fn new(
        name: &str,
        kind: Kind,
        tactic: &str,
        technique: &str,
        expected_rules: &[&str],
        runs: &[Run],
    ) -> ScenarioReport {
        let delivered: Vec<f64> = runs.iter().filter_map(|r| r.delivery_ms).collect();
        let events: Vec<f64> = runs.iter().filter_map(|r| r.event_ms).collect();
        let engine: Vec<f64> = runs.iter().filter_map(|r| r.engine_ms).collect();
        let mut by_sink: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (sink, ms) in runs.iter().flat_map(|r| &r.sinks_ms) {
            by_sink.entry(sink.clone()).or_default().push(*ms);
        }
        let detections = runs.iter().filter(|r| r.rule.is_some()).count();
        let mut fired: Vec<String> = runs.iter().filter_map(|r| r.rule.clone()).collect();
        fired.sort();
        fired.dedup();
        ScenarioReport {
            name: name.to_string(),
            kind,
            tactic: tactic.to_string(),
            technique: technique.to_string(),
            expected_rules: expected_rules.iter().map(|r| r.to_string()).collect(),
            detected: !runs.is_empty() && detections == runs.len(),
            runs: runs.len(),
            detections,
            fired,
            latency_ms: latency(&delivered),
            event_latency_ms: latency(&events),
            engine_latency_ms: latency(&engine),
            sink_latency_ms: by_sink
                .into_iter()
                .map(|(sink, samples)| (sink, latency(&samples)))
                .collect(),
            figures: BTreeMap::new(),
        }
    }
}

impl Report {
    /// Builds the totals from the scenarios and the false positives.
    pub fn new(scenarios: Vec<ScenarioReport>, false_positive_rules: Vec<String>) -> Report {
        let runs: usize = scenarios.iter().map(|s| s.runs).sum();
        let detections: usize = scenarios.iter().map(|s| s.detections).sum();
        // The attacks' detection latency; faults report their own figures.
        let all: Vec<f64> = scenarios
            .iter()
            .filter(|s| s.detections > 0 && s.kind == Kind::Attack)
            .map(|s| s.latency_ms.p50)
            .collect();
        let engine: Vec<f64> = scenarios
            .iter()
            .filter(|s| s.detections > 0 && s.kind == Kind::Attack)
            .map(|s| s.engine_latency_ms.p50)
            .collect();
        Report {
            detection_rate: if runs == 0 {
                0.0
            } else {
                detections as f64 / runs as f64
            },
            false_positives: false_positive_rules.len(),
            false_positive_rules,
            latency_ms: latency(&all),
            engine_latency_ms: latency(&engine),
            scenarios,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<40} {:<22} {:<10} {:>8} {:>10} {:>9} {:>9} {:>9}",
            "scenario",
            "tactic",
            "technique",
            "detected",
            "engine p50",
            "p50 ms",
            "p95 ms",
            "max ms"
        );
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<40} {:<22} {:<10} {:>8} {:>10.1} {:>9.1} {:>9.1} {:>9.1}",
                s.name,
                s.tactic,
                s.technique,
                format!("{}/{}", s.detections, s.runs),
                s.engine_latency_ms.p50,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.max
            );
        }
        let _ = writeln!(
            out,
            "detection rate {:.1} % | false positives {} | rule engine p50 {:.1} ms | delivered p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            self.detection_rate * 100.0,
            self.false_positives,
            self.engine_latency_ms.p50,
            self.latency_ms.p50,
            self.latency_ms.p95,
            self.latency_ms.max
        );
        out
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Vigil detection report\n");
        let _ = writeln!(
            out,
            "Detection rate **{:.1} %**, false positives **{}**. From the action's start to the \
             alert leaving the rule engine: p50 {:.1} ms, p95 {:.1} ms; to delivery at the sink: \
             p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (Vigil {}).\n",
            self.detection_rate * 100.0,
            self.false_positives,
            self.engine_latency_ms.p50,
            self.engine_latency_ms.p95,
            self.latency_ms.p50,
            self.latency_ms.p95,
            self.latency_ms.max,
            self.version
        );
        let _ = writeln!(
            out,
            "| scenario | tactic | technique | detected | rule | engine p50 ms | p50 ms | p95 ms | max ms |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
        );
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}/{} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.name,
                s.tactic,
                s.technique,
                s.detections,
                s.runs,
                if s.fired.is_empty() {
                    "**none**".to_string()
                } else {
                    s.fired.join(", ")
                },
                s.engine_latency_ms.p50,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.max
            );
        }
        for s in self.scenarios.iter().filter(|s| !s.figures.is_empty()) {
            let figures: Vec<String> = s
                .figures
                .iter()
                .map(|(name, value)| format!("{name} {value:.1}"))
                .collect();
            let _ = writeln!(out, "\n**{}**: {}", s.name, figures.join(", "));
        }
        if !self.false_positive_rules.is_empty() {
            let _ = writeln!(
                out,
                "\nFalse positives: {}",
                self.false_positive_rules.join(", ")
            );
        }
        out
    }

    /// Detection latencies as Prometheus histograms (text exposition format, for a node
    /// exporter's textfile collector).
    pub fn prometheus(&self, runs: &[(String, Vec<Run>)]) -> Result<String, prometheus::Error> {
        let registry = Registry::new_custom(Some("vigil_chaos".into()), None)?;
        let buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "detection_latency_seconds",
                "From a chaos action's start to its alert's delivery",
            )
            .buckets(buckets.clone()),
            &["scenario"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let engine = HistogramVec::new(
            HistogramOpts::new(
                "engine_latency_seconds",
                "From a chaos action's start to its alert leaving the rule engine",
            )
            .buckets(buckets),
            &["scenario"],
        )?;
        registry.register(Box::new(engine.clone()))?;
        let missed = prometheus::IntCounterVec::new(
            prometheus::Opts::new("missed_total", "Chaos runs no expected rule detected"),
            &["scenario"],
        )?;
        registry.register(Box::new(missed.clone()))?;
        let rate = prometheus::Gauge::new("detection_rate", "Detected runs over all runs")?;
        registry.register(Box::new(rate.clone()))?;
        rate.set(self.detection_rate);
        for (scenario, runs) in runs {
            for run in runs {
                if let Some(ms) = run.engine_ms {
                    engine.with_label_values(&[scenario]).observe(ms / 1e3);
                }
                match run.delivery_ms {
                    Some(ms) => latency.with_label_values(&[scenario]).observe(ms / 1e3),
                    None => missed.with_label_values(&[scenario]).inc(),
                }
            }
        }
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ms: Option<f64>) -> Run {
        Run {
            rule: ms.map(|_| "Rule".to_string()),
            delivery_ms: ms,
            event_ms: ms.map(|m| m / 2.0),
            engine_ms: ms.map(|m| m * 0.75),
            sinks_ms: ms
                .map(|m| vec![("tls".to_string(), m + 1.0)])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = latency(&samples);
        assert_eq!((l.p50, l.p95, l.max), (50.0, 95.0, 100.0));
        assert_eq!(latency(&[]), Latency::default());
        assert_eq!(latency(&[7.0]).p95, 7.0);
    }

    #[test]
    fn rates_count_runs_and_json_has_the_documented_shape() {
        let detected = ScenarioReport::new(
            "a",
            Kind::Attack,
            "execution",
            "T1059",
            &["Rule"],
            &[run(Some(10.0)), run(Some(30.0))],
        );
        let missed = ScenarioReport::new(
            "b",
            Kind::Attack,
            "discovery",
            "T1083",
            &["Other"],
            &[run(Some(5.0)), run(None)],
        );
        assert!(detected.detected && !missed.detected);
        let report = Report::new(vec![detected, missed], vec!["Noise".into()]);
        assert_eq!(report.detection_rate, 0.75);
        assert_eq!(report.false_positives, 1);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["detection_rate"], 0.75);
        assert_eq!(json["scenarios"][0]["kind"], "attack");
        assert_eq!(json["scenarios"][0]["latency_ms"]["max"], 30.0);
        assert_eq!(json["scenarios"][1]["detected"], false);
        assert_eq!(json["scenarios"][1]["expected_rules"][0], "Other");
        assert!(
            report
                .markdown()
                .contains("| b | discovery | T1083 | 1/2 |")
        );
        assert!(report.table().contains("detection rate 75.0 %"));
        let text = report
            .prometheus(&[
                ("a".into(), vec![run(Some(10.0))]),
                ("b".into(), vec![run(None)]),
            ])
            .unwrap();
        assert!(text.contains("vigil_chaos_detection_latency_seconds_count{scenario=\"a\"} 1"));
        assert!(text.contains("vigil_chaos_missed_total{scenario=\"b\"} 1"));
        assert!(text.contains("vigil_chaos_engine_latency_seconds_count{scenario=\"a\"} 1"));
        assert_eq!(json["scenarios"][0]["engine_latency_ms"]["max"], 22.5);
        assert_eq!(json["scenarios"][0]["sink_latency_ms"]["tls"]["max"], 31.0);
    }
}

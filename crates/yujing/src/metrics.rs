//! Every Prometheus metric of yujing (DESIGN §9), defined here and nowhere else, registered
//! in one [`prometheus::Registry`] that `/metrics` encodes.
//!
//! Names follow the house rules: prefix `yujing_`, base units, counters end in `_total`,
//! labels only from bounded sets (source, sector, reason, stage, outcome, severity,
//! mechanism, district code, topic, partition). The deploy/ alert rules and dashboards use
//! exactly these names; [`NAMES`] lists them.

use crate::engine::{BatchOutput, Stats};
use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use prometheus::{Registry, exponential_buckets};
use std::time::{Duration, SystemTime};
use yujing_model::{Level, Mechanism, Reason, Sector, SectorScope, Severity, Transition, TransitionKind};
use yujing_serve::Snapshot;

/// Every metric name, as exposed.
pub const NAMES: [&str; 20] = [
    "yujing_build_info",
    "yujing_reports_received_total",
    "yujing_reports_accepted_total",
    "yujing_reports_rejected_total",
    "yujing_reports_duplicate_total",
    "yujing_pipeline_records_total",
    "yujing_consumer_lag_messages",
    "yujing_batch_duration_seconds",
    "yujing_report_to_alert_seconds",
    "yujing_store_commit_duration_seconds",
    "yujing_alerts_open",
    "yujing_district_score",
    "yujing_city_score",
    "yujing_kafka_publish_failures_total",
    "yujing_dead_letters_total",
    "yujing_alertmanager_pushes_total",
    "yujing_alertmanager_push_failures_total",
    "yujing_last_batch_timestamp_seconds",
    "yujing_ready",
    "yujing_peer_records_total",
];

/// The pipeline stages of `yujing_pipeline_records_total`.
pub mod stage {
    /// Bytes to a validated report.
    pub const DECODE: &str = "decode";
    /// Dedupe and revisions.
    pub const LEDGER: &str = "ledger";
    /// Scoring of accepted reports.
    pub const SCORE: &str = "score";
    /// Alert transitions derived.
    pub const ALERT: &str = "alert";
    /// Inputs committed to the store.
    pub const STORE: &str = "store";
    /// Records published (Kafka topics, the API snapshot).
    pub const PUBLISH: &str = "publish";
}

/// The metrics, registered in [`Metrics::registry`].
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// `yujing_build_info{version}` = 1.
    pub build_info: IntGaugeVec,
    /// `yujing_reports_received_total{source}`: inputs read (`file` or `kafka`).
    pub reports_received: IntCounterVec,
    /// `yujing_reports_accepted_total{sector}`: reports applied to the ledger.
    pub reports_accepted: IntCounterVec,
    /// `yujing_reports_rejected_total{reason}`: inputs dead-lettered, by reason code.
    pub reports_rejected: IntCounterVec,
    /// `yujing_reports_duplicate_total`: exact repeats of a report id.
    pub reports_duplicate: IntCounter,
    /// `yujing_pipeline_records_total{stage,outcome}`.
    pub pipeline_records: IntCounterVec,
    /// `yujing_consumer_lag_messages{partition}` (`all`: the sum over assigned partitions).
    pub consumer_lag: IntGaugeVec,
    /// `yujing_batch_duration_seconds`: one micro-batch through the engine.
    pub batch_duration: Histogram,
    /// `yujing_report_to_alert_seconds`: a report's `submitted_at` to its alert transition.
    pub report_to_alert: Histogram,
    /// `yujing_store_commit_duration_seconds`: one store transaction.
    pub store_commit_duration: Histogram,
    /// `yujing_alerts_open{severity,mechanism}`: open and acknowledged alerts.
    pub alerts_open: IntGaugeVec,
    /// `yujing_district_score{district_code,sector}`: the latest complete period's score.
    pub district_score: GaugeVec,
    /// `yujing_city_score{sector}`: the latest complete period's score.
    pub city_score: GaugeVec,
    /// `yujing_kafka_publish_failures_total{topic}`.
    pub kafka_publish_failures: IntCounterVec,
    /// `yujing_dead_letters_total{reason}`: dead letters written or delivered.
    pub dead_letters: IntCounterVec,
    /// `yujing_alertmanager_pushes_total`.
    pub alertmanager_pushes: IntCounter,
    /// `yujing_alertmanager_push_failures_total`.
    pub alertmanager_push_failures: IntCounter,
    /// `yujing_last_batch_timestamp_seconds`: unix time of the last committed batch.
    pub last_batch_timestamp: Gauge,
    /// `yujing_ready`: 1 ready, 0 not.
    pub ready: IntGauge,
    /// `yujing_peer_records_total{outcome}`: records of the peers' scores and alerts topics
    /// read for the whole-city view, `applied` or `malformed` (skipped).
    pub peer_records: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> Result<T, prometheus::Error> {
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

/// Buckets from 1 ms to about 9 minutes.
fn seconds_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.5, 15).unwrap_or_default()
}

impl Metrics {
    /// Every metric, registered in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| reg(&r, IntCounterVec::new(Opts::new(name, help), labels)?);
        let hist = |name: &str, help: &str| {
            reg(&r, Histogram::with_opts(HistogramOpts::new(name, help).buckets(seconds_buckets()))?)
        };
        let m = Metrics {
            build_info: reg(
                &r,
                IntGaugeVec::new(Opts::new("yujing_build_info", "Always 1; the version is a label."), &["version"])?,
            )?,
            reports_received: counter("yujing_reports_received_total", "Inputs read, by source.", &["source"])?,
            reports_accepted: counter(
                "yujing_reports_accepted_total",
                "Reports applied to the ledger, by sector.",
                &["sector"],
            )?,
            reports_rejected: counter(
                "yujing_reports_rejected_total",
                "Inputs dead-lettered, by reason.",
                &["reason"],
            )?,
            reports_duplicate: reg(
                &r,
                IntCounter::new("yujing_reports_duplicate_total", "Exact repeats of a report id.")?,
            )?,
            pipeline_records: counter(
                "yujing_pipeline_records_total",
                "Records through each pipeline stage, by outcome.",
                &["stage", "outcome"],
            )?,
            consumer_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("yujing_consumer_lag_messages", "Kafka consumer lag in messages."),
                    &["partition"],
                )?,
            )?,
            batch_duration: hist("yujing_batch_duration_seconds", "One micro-batch through the engine.")?,
            report_to_alert: hist(
                "yujing_report_to_alert_seconds",
                "From a report's submitted_at to the alert transition it caused being published.",
            )?,
            store_commit_duration: hist("yujing_store_commit_duration_seconds", "One store transaction.")?,
            alerts_open: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("yujing_alerts_open", "Open and acknowledged alerts."),
                    &["severity", "mechanism"],
                )?,
            )?,
            district_score: reg(
                &r,
                GaugeVec::new(
                    Opts::new("yujing_district_score", "District risk score 0..100, latest complete period."),
                    &["district_code", "sector"],
                )?,
            )?,
            city_score: reg(
                &r,
                GaugeVec::new(
                    Opts::new("yujing_city_score", "City risk score 0..100, latest complete period."),
                    &["sector"],
                )?,
            )?,
            kafka_publish_failures: counter(
                "yujing_kafka_publish_failures_total",
                "Kafka publications that failed, by topic.",
                &["topic"],
            )?,
            dead_letters: counter(
                "yujing_dead_letters_total",
                "Dead letters written or delivered, by reason.",
                &["reason"],
            )?,
            alertmanager_pushes: reg(
                &r,
                IntCounter::new("yujing_alertmanager_pushes_total", "Pushes to Alertmanager.")?,
            )?,
            alertmanager_push_failures: reg(
                &r,
                IntCounter::new("yujing_alertmanager_push_failures_total", "Pushes to Alertmanager that failed.")?,
            )?,
            last_batch_timestamp: reg(
                &r,
                Gauge::new("yujing_last_batch_timestamp_seconds", "Unix time of the last committed batch.")?,
            )?,
            ready: reg(&r, IntGauge::new("yujing_ready", "1 when ready, 0 when not.")?)?,
            peer_records: counter(
                "yujing_peer_records_total",
                "Records of the peers' scores and alerts topics read, by outcome (applied, malformed).",
                &["outcome"],
            )?,
            registry: r,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Every bounded label value exists from the start, so rates and absent() work.
        for outcome in ["applied", "malformed"] {
            m.peer_records.with_label_values(&[outcome]);
        }
        for reason in Reason::ALL {
            m.reports_rejected.with_label_values(&[reason.as_str()]);
            m.dead_letters.with_label_values(&[reason.as_str()]);
        }
        for sector in Sector::ALL {
            m.reports_accepted.with_label_values(&[sector.as_str()]);
        }
        for severity in Severity::ALL {
            for mechanism in Mechanism::ALL {
                m.alerts_open.with_label_values(&[severity.as_str(), mechanism.as_str()]).set(0);
            }
        }
        Ok(m)
    }

    /// Counts one engine batch: `before` and `after` are the engine's stats around it.
    pub fn record_batch(&self, source: &str, before: &Stats, after: &Stats, out: &BatchOutput, elapsed: Duration) {
        let received = after.received - before.received;
        self.reports_received.with_label_values(&[source]).inc_by(received);
        for (sector, n) in &after.accepted_by_sector {
            let d = n - before.accepted_by_sector.get(sector).copied().unwrap_or(0);
            if d > 0 {
                self.reports_accepted.with_label_values(&[sector.as_str()]).inc_by(d);
            }
        }
        for (reason, n) in &after.rejected {
            let d = n - before.rejected.get(reason).copied().unwrap_or(0);
            if d > 0 {
                self.reports_rejected.with_label_values(&[reason.as_str()]).inc_by(d);
            }
        }
        for d in &out.dead_letters {
            self.dead_letters.with_label_values(&[d.reason.as_str()]).inc();
        }
        let duplicates = after.duplicates - before.duplicates;
        self.reports_duplicate.inc_by(duplicates);
        let accepted = after.accepted - before.accepted;
        let ledger_rejected = after.ledger_rejected - before.ledger_rejected;
        let rejected = after.rejected_total() - before.rejected_total();
        let decode_rejected = rejected - ledger_rejected;
        let records = |stage: &str, outcome: &str, n: u64| {
            if n > 0 {
                self.pipeline_records.with_label_values(&[stage, outcome]).inc_by(n);
            }
        };
        records(stage::DECODE, "ok", received - decode_rejected);
        records(stage::DECODE, "rejected", decode_rejected);
        records(stage::LEDGER, "ok", accepted + duplicates);
        records(stage::LEDGER, "rejected", ledger_rejected);
        records(stage::SCORE, "ok", accepted);
        records(stage::ALERT, "ok", out.transitions.len() as u64);
        self.batch_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a store commit of `records` inputs.
    pub fn record_store_commit(&self, elapsed: Duration, records: usize, ok: bool) {
        self.store_commit_duration.observe(elapsed.as_secs_f64());
        let outcome = if ok { "ok" } else { "failed" };
        self.pipeline_records.with_label_values(&[stage::STORE, outcome]).inc_by(records as u64);
    }

    /// Counts records published to a Kafka topic (or the snapshot, topic `api`).
    pub fn record_publish(&self, topic: &str, records: usize, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.pipeline_records.with_label_values(&[stage::PUBLISH, outcome]).inc_by(records as u64);
        if !ok {
            self.kafka_publish_failures.with_label_values(&[topic]).inc();
        }
    }

    /// Counts records of the peers' topics: applied and malformed (skipped).
    pub fn record_peer_records(&self, applied: usize, malformed: usize) {
        self.peer_records.with_label_values(&["applied"]).inc_by(applied as u64);
        self.peer_records.with_label_values(&["malformed"]).inc_by(malformed as u64);
    }

    /// Marks a batch committed now.
    pub fn record_committed(&self) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.last_batch_timestamp.set(now.as_secs_f64());
    }

    /// Observes the end-to-end latency of the transitions just published: from the event
    /// time of the change (the submission that crossed the line) to now. Only meaningful
    /// live; replays of old reports would observe their age.
    pub fn observe_report_to_alert(&self, transitions: &[Transition]) {
        let now = chrono::Utc::now();
        for t in transitions.iter().filter(|t| matches!(t.kind, TransitionKind::Opened | TransitionKind::Escalated)) {
            let secs = (now - t.alert.updated_at.to_utc()).num_milliseconds() as f64 / 1000.0;
            if secs >= 0.0 {
                self.report_to_alert.observe(secs);
            }
        }
    }

    /// Sets the consumer lag (the sum over assigned partitions, label `all`).
    pub fn set_consumer_lag(&self, lag: Option<u64>) {
        if let Some(lag) = lag {
            self.consumer_lag.with_label_values(&["all"]).set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
    }

    /// Brings the Alertmanager counters up to the feed's own totals (call after each batch
    /// with `AlertmanagerFeed::counters()`' values); counters never go down.
    pub fn sync_alertmanager(&self, pushes: u64, failures: u64) {
        self.alertmanager_pushes.inc_by(pushes.saturating_sub(self.alertmanager_pushes.get()));
        self.alertmanager_push_failures.inc_by(failures.saturating_sub(self.alertmanager_push_failures.get()));
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Refreshes the gauges that describe the state: open alerts by severity and mechanism,
    /// and district and city scores of the snapshot's default period.
    pub fn refresh(&self, snap: &Snapshot) {
        let mut open = std::collections::BTreeMap::new();
        for a in snap.alerts().filter(|a| a.state.is_active()) {
            *open.entry((a.severity, a.mechanism)).or_insert(0i64) += 1;
        }
        for severity in Severity::ALL {
            for mechanism in Mechanism::ALL {
                let n = open.get(&(severity, mechanism)).copied().unwrap_or(0);
                self.alerts_open.with_label_values(&[severity.as_str(), mechanism.as_str()]).set(n);
            }
        }
        let Some(p) = snap.default_period() else { return };
        for scope in SectorScope::EVERY {
            for a in snap.aggregates_at(Level::District, scope, p) {
                self.district_score.with_label_values(&[a.entity_id.as_str(), scope.as_str()]).set(a.score);
            }
            if let Some(a) = snap.aggregate(Level::City, yujing_model::CITY_CODE, scope, p) {
                self.city_score.with_label_values(&[scope.as_str()]).set(a.score);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_registered_once_and_follows_the_rules() {
        let m = Metrics::new().unwrap();
        m.reports_duplicate.inc();
        m.batch_duration.observe(0.1);
        let families = m.registry.gather();
        let mut names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        names.sort();
        let mut expected = NAMES.to_vec();
        expected.sort();
        // Vectors without any child yet are not gathered.
        for n in &names {
            assert!(expected.contains(n), "{n} is not in NAMES");
        }
        for n in NAMES {
            assert!(n.starts_with("yujing_"), "{n}");
            let counter = families.iter().find(|f| f.name() == n).map(|f| f.get_field_type());
            if counter == Some(prometheus::proto::MetricType::COUNTER) {
                assert!(n.ends_with("_total"), "{n}");
            }
        }
        assert!(names.contains(&"yujing_build_info") && names.contains(&"yujing_alerts_open"));
    }

    #[test]
    fn alertmanager_counters_follow_the_feed_totals() {
        let m = Metrics::new().unwrap();
        m.sync_alertmanager(3, 1);
        m.sync_alertmanager(5, 1);
        m.sync_alertmanager(4, 0);
        assert_eq!((m.alertmanager_pushes.get(), m.alertmanager_push_failures.get()), (5, 1));
    }
}

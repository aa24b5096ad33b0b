//! yujing's configuration: an embedded default, a file, and `YUJING__` environment overrides.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};
use yujing_score::ScoreConfig;

/// The embedded defaults (without the `[score]` section, which the scoring crate supplies).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The prefix of environment overrides; `__` separates the path.
pub const ENV_PREFIX: &str = "YUJING__";

/// Reading reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Reports per micro-batch.
    pub batch_size: usize,
    /// Larger inputs are dead-lettered as `too_large`.
    pub max_report_bytes: usize,
    /// While a backlog is read (`yujing run` behind its topic, `yujing replay --store`),
    /// scores and alerts are brought up to date at most this often, e.g. "5s", and never
    /// for longer than was spent ingesting since (see [`crate::pace`]); "0s" settles every
    /// batch. A caught-up service settles every batch.
    #[serde(with = "humantime_serde")]
    pub settle_interval: Duration,
}

/// The ledger's time rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// How long after a period ends its report is due, e.g. "15days".
    #[serde(with = "humantime_serde")]
    pub report_deadline: Duration,
    /// Subtracted from the latest `submitted_at` to give the watermark, e.g. "2h".
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
}

/// Alert rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A rule pack file replacing the embedded default pack; empty for the default.
    pub rules: PathBuf,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Reading reports.
    pub ingest: IngestConfig,
    /// The ledger's time rules.
    pub ledger: LedgerConfig,
    /// Scoring cutoffs, weights, grades and trend.
    pub score: ScoreConfig,
    /// Alert rules.
    pub alerts: AlertsConfig,
    /// Kafka topics and consumer settings of `yujing run`.
    pub kafka: crate::service::KafkaConfig,
    /// The durable store of `yujing run`.
    pub store: crate::service::StoreSection,
    /// The whole-city view of `yujing run`: reading the other instances' scores and alerts.
    pub peers: crate::peers::PeersConfig,
    /// HTTP: the API, the web page, health and /metrics.
    pub serve: ServeConfig,
    /// Pushing alerts to Alertmanager (`yujing run`).
    pub alertmanager: yujing_alert::AlertmanagerConfig,
    /// The probability model fitted by `yujing calibrate`; absent until calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<crate::backtest::probability::ProbabilityConfig>,
}

/// HTTP settings (`[serve]`): listen addresses, limits and the API's tokens.
pub use yujing_serve::ServeConfig;

/// A configuration problem, located where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or a value of the wrong shape.
    #[error("{origin}{}: {key}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file (or `environment`).
        origin: String,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The dotted key path, when known.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The default configuration as a TOML table (file defaults plus the scoring defaults).
pub fn default_table() -> Table {
    let mut t: Table = toml::from_str(DEFAULT_TOML).expect("embedded default config is valid TOML");
    let score: Table = toml::from_str(yujing_score::DEFAULT_TOML).expect("embedded score defaults are valid TOML");
    t.insert("score".into(), Value::Table(score));
    t
}

/// Merges `over` into `base`, key by key; tables merge, everything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Applies `YUJING__A__B=value` overrides. Values parse as TOML when they can (numbers,
/// booleans, arrays), else they are strings.
fn apply_env(table: &mut Table, vars: impl Iterator<Item = (String, String)>) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                origin: "environment".into(),
                line: None,
                key: name.clone(),
                message: "empty key segment".into(),
            });
        }
        let value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(Value::String(raw));
        let mut cur = &mut *table;
        for k in &keys[..keys.len() - 1] {
            let entry = cur.entry(k.clone()).or_insert_with(|| Value::Table(Table::new()));
            cur = match entry {
                Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin: "environment".into(),
                        line: None,
                        key: name.clone(),
                        message: format!("{k} is not a section"),
                    });
                }
            };
        }
        cur.insert(keys[keys.len() - 1].clone(), value);
    }
    Ok(())
}

/// The 1-based line of a dotted key path in a TOML source, if the source sets it.
fn line_of(source: &str, path: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(source).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    for seg in path.split('.') {
        let next = match seg.parse::<usize>() {
            Ok(i) => item.get(i),
            Err(_) => item.get(seg),
        };
        match next {
            Some(n) => {
                item = n;
                span = n.span().or(span);
            }
            None => break,
        }
    }
    span.map(|s| source[..s.start].matches('\n').count() + 1)
}

fn parse_file(path: &Path) -> Result<(String, Table), ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    let table: Table = toml::from_str(&source).map_err(|e| ConfigError::Invalid {
        origin: path.display().to_string(),
        line: e.span().map(|s| source[..s.start].matches('\n').count() + 1),
        key: String::new(),
        message: e.message().to_string(),
    })?;
    Ok((source, table))
}

impl Config {
    /// Loads the defaults, then `file` if given, then the `YUJING__` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = default_table();
        let mut located = None;
        if let Some(path) = file {
            let (source, user) = parse_file(path)?;
            merge(&mut table, user);
            located = Some((path.display().to_string(), source));
        }
        apply_env(&mut table, env)?;
        let locate = |mut key: String, message: String| {
            // serde names the table of an unknown field; point at the field itself.
            if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
                key = if key.is_empty() || key == "." { field.to_string() } else { format!("{key}.{field}") };
            }
            let (origin, line) = match &located {
                Some((origin, source)) => (origin.clone(), line_of(source, &key)),
                None => ("config".to_string(), None),
            };
            ConfigError::Invalid { origin, line, key, message }
        };
        let config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            locate(key, e.into_inner().message().to_string())
        })?;
        config.score.validate().map_err(|e| match e {
            yujing_score::Error::Config { path, message } => locate(path, message),
            other => locate("score".into(), other.to_string()),
        })?;
        if let Some(p) = &config.probability {
            p.validate().map_err(|e| locate("probability".into(), e.to_string()))?;
        }
        if config.alertmanager.enabled {
            config.alertmanager.build().map_err(|e| match e {
                yujing_alert::Error::AlertmanagerConfig { field, reason } => {
                    locate(format!("alertmanager.{field}"), reason)
                }
                other => locate("alertmanager".into(), other.to_string()),
            })?;
        }
        if config.ingest.batch_size == 0 {
            return Err(locate("ingest.batch_size".into(), "must be at least 1".into()));
        }
        Ok(config)
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(None, std::iter::empty()).unwrap();
        assert_eq!(c.ledger.report_deadline, Duration::from_secs(15 * 86400));
        assert_eq!(c.ingest.batch_size, 16384);
    }

    #[test]
    fn file_then_environment_override() {
        let f = file("[ingest]\nbatch_size = 10\n\n[score.grades]\nred = 95.0\n");
        let env = [("YUJING__INGEST__BATCH_SIZE".to_string(), "20".to_string()), ("OTHER".into(), "x".into())];
        let c = Config::load_with_env(Some(f.path()), env.into_iter()).unwrap();
        assert_eq!(c.ingest.batch_size, 20);
        assert_eq!(c.score.grades.red, 95.0);
        assert_eq!(c.score.grades.orange, 75.0, "untouched keys keep their defaults");
        let env = [("YUJING__LEDGER__REPORT_DEADLINE".to_string(), "20days".to_string())];
        let c = Config::load_with_env(None, env.into_iter()).unwrap();
        assert_eq!(c.ledger.report_deadline, Duration::from_secs(20 * 86400));
    }

    #[test]
    fn errors_name_the_line() {
        let f = file("[ingest]\nbatch_size = 10\nbatch_sise = 3\n");
        let e = Config::load_with_env(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("batch_sise"), "{e}");
        let f = file("[ledger]\nreport_deadline = \"soon\"\n");
        let e = Config::load_with_env(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("ledger.report_deadline"), "{e}");
        let f = file("\n\n[score.indicators.bank.npl_ratio]\nsafe = 0.05\ncritical = 0.05\nweight = 1.0\n");
        let e = Config::load_with_env(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("score.indicators.bank.npl_ratio"), "{e}");
        let f = file("[ingest\n");
        let e = Config::load_with_env(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains(":1"), "{e}");
    }
}

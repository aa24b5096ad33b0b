//! The yujing binary's library half: configuration, the fixture generator and the wiring
//! of the pipeline (source → ledger → scoring → rules → sinks).
//!
//! ```no_run
//! use yujing::config::Config;
//! use yujing::replay::{ReplayOptions, load_rules, replay};
//! let config = Config::load(None)?;
//! let opts = ReplayOptions { files: vec!["fixtures/sample/reports-2020.jsonl".into()], ..Default::default() };
//! let done = replay(&config, load_rules(&config)?, &opts)?;
//! println!("{} alerts", done.engine.alerts().count());
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod alertmanager;
pub mod backtest;
pub mod config;
pub mod demo;
pub mod durable;
pub mod engine;
pub mod fixtures;
pub mod forward;
pub mod metrics;
pub mod outbox;
pub mod output;
pub mod pace;
pub mod peers;
pub mod publishing;
pub mod replay;
pub mod report;
pub mod serve;
pub mod service;
pub mod stress;
#[cfg(test)]
mod testing;
pub mod writer;

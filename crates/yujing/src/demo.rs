//! `yujing demo`: the sample reports through the whole pipeline, served on 127.0.0.1 — the
//! web page, the API and `/metrics` — until Ctrl-C. With `--no-serve`, the one-shot
//! replay that prints the risk table and exits.

use crate::config::Config;
use crate::engine::Engine;
use crate::fixtures::{FixtureSpec, generate, write_dir};
use crate::metrics::Metrics;
use crate::replay::{ReplayOptions, jsonl_files, load_rules, replay};
use crate::report::{Style, risk_table, summary};
use crate::serve::{ApiLink, bind, link, serve};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use yujing_ingest::FileSourceConfig;
use yujing_serve::{Role, TokenConfig, hash_token};

/// The demo's fixed tokens: for the demo only, printed at start.
pub const DEMO_TOKENS: [(&str, &str, &str); 3] = [
    ("demo-regulator", "regulator", "yujing-demo-regulator"),
    ("demo-analyst", "analyst", "yujing-demo-analyst"),
    ("demo-wanzhou", "district:500101", "yujing-demo-500101"),
];

/// Reports per batch when paced and no batch size is given: about one month of the sample.
const PACED_BATCH: usize = 300;

/// What `yujing demo` does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Directory of JSONL reports; generated there when it holds none.
    pub sample: PathBuf,
    /// Configuration file.
    pub config: Option<PathBuf>,
    /// Serve (else print the table and exit).
    pub serve: bool,
    /// The API's address (overrides serve.listen).
    pub listen: Option<String>,
    /// The metrics address (overrides serve.metrics_listen).
    pub metrics_listen: Option<String>,
    /// Pause between batches, so the map fills in as if live.
    pub pace: Option<Duration>,
    /// Reports per batch (default: the config's, or about a month's when paced).
    pub batch_size: Option<usize>,
}

/// The sample's report files, generating them when the directory holds none.
pub fn sample_files(sample: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let mut dir = sample.to_path_buf();
    let mut files = if dir.is_dir() { jsonl_files(&dir)? } else { Vec::new() };
    if files.is_empty() {
        if sample == Path::new("fixtures/sample") && !sample.exists() {
            dir = std::env::temp_dir().join("yujing-demo-sample");
        }
        eprintln!("generating the sample reports into {} …", dir.display());
        let set = generate(&FixtureSpec::default());
        write_dir(&set, &dir, None).with_context(|| format!("writing {}", dir.display()))?;
        files = jsonl_files(&dir)?;
    }
    Ok((dir, files))
}

/// Runs the demo.
pub fn demo(opts: &DemoOptions) -> Result<()> {
    let mut config = Config::load(opts.config.as_deref())?;
    let (dir, files) = sample_files(&opts.sample)?;
    if !opts.serve {
        let rules = load_rules(&config)?;
        eprintln!("replaying {} files from {} …", files.len(), dir.display());
        let ropts = ReplayOptions { files, progress: std::io::stderr().is_terminal(), ..Default::default() };
        let r = replay(&config, rules, &ropts)?;
        let style = Style::detect();
        eprint!("{}", summary(&r, style));
        println!();
        print!("{}", risk_table(&r.engine, style));
        return Ok(());
    }
    if let Some(l) = &opts.listen {
        config.serve.listen = l.clone();
    }
    if let Some(l) = &opts.metrics_listen {
        config.serve.metrics_listen = l.clone();
    }
    for (name, role, token) in DEMO_TOKENS {
        let role: Role = role.parse().map_err(anyhow::Error::msg)?;
        config.serve.tokens.push(TokenConfig { name: name.into(), role, sha256: hash_token(token) });
    }
    if let Some(n) = opts.batch_size.or(opts.pace.map(|_| PACED_BATCH)) {
        config.ingest.batch_size = n.max(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve_demo(config, files, opts.pace))
}

async fn serve_demo(config: Config, files: Vec<PathBuf>, pace: Option<Duration>) -> Result<()> {
    let rules = load_rules(&config)?;
    let metrics = Arc::new(Metrics::new()?);
    let ready = Arc::new(AtomicBool::new(false));
    let (mut link, snapshots, actions) = link(&config, metrics.clone(), ready.clone());
    let stress = link.enable_stress(&config, &rules);
    let app = config.serve.build_with_stress(snapshots, Some(actions), Some(stress), ready.clone())?;
    let (api, metrics_listener) = bind(&config.serve.listen, &config.serve.metrics_listen).await?;
    let (a, m) = (api.local_addr()?, metrics_listener.local_addr()?);
    println!("yujing demo · 渝警演示");
    println!("  web page   http://{a}/");
    println!("  API        http://{a}/api/v1/  (described at http://{a}/api/v1/openapi.json)");
    println!("  metrics    http://{m}/metrics");
    println!("  tokens (demo only; send as Authorization: Bearer TOKEN):");
    for (name, role, token) in DEMO_TOKENS {
        println!("    {token:<24} {role:<16} ({name})");
    }
    println!("  e.g. curl -H 'Authorization: Bearer {}' http://{a}/api/v1/riskmap", DEMO_TOKENS[0].2);
    println!("Ctrl-C stops.");
    let server = tokio::spawn(serve(api, app, metrics_listener, metrics.registry.clone()));
    let mut engine = Engine::new(&config, rules);
    let pipeline = pipeline(&config, files, pace, &mut engine, &mut link, &ready);
    tokio::select! {
        r = pipeline => r,
        r = server => r.context("HTTP server")?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopped");
            Ok(())
        }
    }
}

/// Replays the files batch by batch (paced), publishing a snapshot after each and applying
/// people's actions between batches; then keeps applying actions.
async fn pipeline(
    config: &Config,
    files: Vec<PathBuf>,
    pace: Option<Duration>,
    engine: &mut Engine,
    link: &mut ApiLink,
    ready: &AtomicBool,
) -> Result<()> {
    let started = Instant::now();
    let mut source =
        FileSourceConfig { paths: files, batch_size: config.ingest.batch_size, ..Default::default() }.build()?;
    link.publish(engine, config);
    ready.store(true, Ordering::Relaxed);
    loop {
        let step = tokio::task::block_in_place(|| -> Result<Option<usize>> {
            let Some(batch) = source.next_batch()? else { return Ok(None) };
            let before = engine.stats().clone();
            let t = Instant::now();
            let out = engine.process(&batch)?;
            link.metrics.record_batch("file", &before, engine.stats(), &out, t.elapsed());
            link.metrics.record_committed();
            link.publish(engine, config);
            Ok(Some(batch.len()))
        })?;
        if step.is_none() {
            break;
        }
        link.drain(engine, None);
        if let Some(pace) = pace {
            let until = tokio::time::Instant::now() + pace;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    more = link.next(engine, None) => if !more {
                        return Ok(());
                    },
                }
            }
        }
    }
    let st = engine.stats();
    let open = engine.alerts().filter(|a| a.state.is_active()).count();
    eprintln!(
        "replayed {} inputs ({} accepted) in {:.1}s; {} alerts open. Serving until Ctrl-C.",
        st.received,
        st.accepted,
        started.elapsed().as_secs_f64(),
        open
    );
    while link.next(engine, None).await {}
    Ok(())
}

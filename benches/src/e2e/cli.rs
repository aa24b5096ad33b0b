//! The release `yujing` binary as the harness drives it: the fixture generator, `replay`,
//! and `run` as a child process whose progress is read from its store's checkpoints and
//! whose memory is read from `/proc`.

use super::broker::free_port;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `yujing` binary next to this harness (`target/release/yujing`), built first with
/// `$CARGO build --release -p yujing` when the harness runs under `cargo run`.
pub fn binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let dir = std::env::current_exe()?.parent().context("the harness's directory")?.to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
        let profile = if dir.ends_with("release") { "--release" } else { "--profile=dev" };
        eprintln!("building yujing ({profile})");
        let ok = Command::new(cargo)
            .current_dir(root)
            .args(["build", "-p", "yujing", profile])
            .status()
            .context("running cargo build")?
            .success();
        if !ok {
            bail!("cargo build -p yujing failed");
        }
    }
    let bin = dir.join("yujing");
    if !bin.is_file() {
        bail!("{} is missing: build it with `cargo build --release -p yujing`, or pass --yujing PATH", bin.display());
    }
    Ok(bin)
}

/// Runs `yujing` with arguments to completion; fails with its stderr.
pub fn run_to_end(bin: &Path, args: &[&str], extra: &[&Path]) -> Result<Duration> {
    let t0 = Instant::now();
    let out = Command::new(bin).args(args).args(extra).stdin(Stdio::null()).output()?;
    let took = t0.elapsed();
    if !out.status.success() {
        bail!("yujing {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

/// A `yujing run` child; killed when dropped unless stopped.
pub struct Service {
    child: Option<Child>,
    store: PathBuf,
    source: String,
}

impl Service {
    /// Starts `yujing run` on `topic` with a fresh store and its own group.
    pub fn start(
        bin: &Path,
        config: &Path,
        brokers: &str,
        topic: &str,
        (store, group): (&Path, &str),
        log: &Path,
    ) -> Result<Service> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(["--brokers", brokers, "--topic", topic, "--group", group, "--instance-id", group])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()?))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", free_port()?))
            .arg("--store")
            .arg(store)
            .env("RUST_LOG", std::env::var("YUJING_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting yujing run")?;
        Ok(Service { child: Some(child), store: store.to_path_buf(), source: format!("kafka:{topic}") })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Messages of the topic the store has committed (the sum of the next offsets).
    pub fn committed(&self) -> i64 {
        yujing_store::Store::open_read_only(&self.store)
            .ok()
            .and_then(|s| s.checkpoints(&self.source).ok())
            .map_or(0, |c| c.iter().map(|c| c.next_offset).sum())
    }

    /// Fails when the child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            bail!("yujing run exited early ({status}); see its log");
        }
        Ok(())
    }

    /// Institution-periods held in the store.
    pub fn reports_held(&self) -> Result<i64> {
        Ok(yujing_store::Store::open_read_only(&self.store)?.report_count()?)
    }

    /// Stops the child with SIGTERM and waits for it.
    pub fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().context("running")?;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    eprintln!("yujing run exited with {status}");
                }
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                bail!("yujing run did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Memory of a process from `/proc/PID/status`: (peak resident `VmHWM`, resident `VmRSS`),
/// in bytes.
pub fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
            .with_context(|| format!("{key} missing from /proc/{pid}/status"))
    };
    Ok((kb("VmHWM:")?, kb("VmRSS:")?))
}

//! The tansu broker (Kafka-compatible) as a child process on a free port of 127.0.0.1,
//! keeping its data in memory or in SQLite under a temporary directory; killed when dropped. The same start-up as the
//! Kafka tests (`crates/yujing-ingest/tests/common/broker.rs`), without the install: the
//! harness tells how to get tansu instead of building it for ten minutes.

use anyhow::{Context, Result, bail};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW: &str = "the e2e harness needs the tansu broker: run .ci/run once (it installs tansu 0.6.0 into \
                   $HOME/.cache/yujing/tansu), or install it with `cargo install tansu --version 0.6.0 --features \
                   dynostore,libsql --locked --root $HOME/.cache/yujing/tansu`, or point YUJING_TANSU at a tansu binary";

/// The tansu binary: `$YUJING_TANSU`, else `$HOME/.cache/yujing/tansu/bin/tansu`, else
/// `tansu` on the `PATH`.
pub fn tansu_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("YUJING_TANSU") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("YUJING_TANSU={} is not a file; {HOW}", p.display());
        }
        return Ok(p);
    }
    let cached = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/yujing/tansu/bin/tansu"));
    if let Some(p) = cached.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("tansu")).find(|p| p.is_file()).context(HOW)
}

/// A free TCP port of 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running broker.
pub struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker (logs and SQLite data under `dir`) and waits until it accepts
    /// connections. `storage` is tansu's `--storage-engine`: `memory://tansu/` or
    /// `sqlite://data/tansu.db`.
    pub fn start(dir: &Path, storage: &str) -> Result<Broker> {
        let bin = tansu_binary()?;
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("tansu.log"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .current_dir(dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", storage])
            .env("RUST_LOG", std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let mut broker = Broker { bin, dir: dir.to_path_buf(), port, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = broker.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("tansu exited ({status}) before accepting connections; see {}", dir.join("tansu.log").display());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                bail!("tansu did not listen on 127.0.0.1:{port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with the tansu command line.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let out = Command::new(&self.bin)
            .current_dir(&self.dir)
            .args(["topic", "create", name, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "tansu topic create {name} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! A real Kafka-compatible broker for tests: `tansu`, started as a child process on a free
//! port of 127.0.0.1 and killed when the handle is dropped (also when a test panics).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "cargo install tansu --version 0.6.0 --features dynostore,libsql --locked \
                       --root $HOME/.cache/yujing/tansu";

/// How the broker keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the broker stops.
    Memory,
    /// In SQLite under the broker's temporary directory: kept across restarts.
    Sqlite,
}

/// A running tansu broker.
pub struct Broker {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    storage: Storage,
    child: Option<Child>,
    starts: u32,
}

/// The tansu binary: `$YUJING_TANSU`, else `$HOME/.cache/yujing/tansu/bin/tansu`, else
/// `tansu` on the `PATH`; when there is none, it is installed into
/// `$HOME/.cache/yujing/tansu` first (once; about ten minutes on two cores), so that
/// `cargo test --workspace` works on a fresh machine.
pub fn tansu_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| find_tansu().unwrap_or_else(install_tansu)).clone()
}

fn cache_root() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/yujing/tansu"))
}

fn find_tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("YUJING_TANSU") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "YUJING_TANSU={} is not a file", p.display());
        return Some(p);
    }
    if let Some(p) = cache_root().map(|r| r.join("bin/tansu")).filter(|p| p.is_file()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("tansu")).find(|p| p.is_file())
}

fn install_tansu() -> PathBuf {
    let root =
        cache_root().unwrap_or_else(|| panic!("no HOME to install tansu under; install it with:\n    {INSTALL}"));
    eprintln!("the Kafka tests need the tansu broker; installing it into {} (once, about ten minutes)", root.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "tansu", "--version", "0.6.0", "--features", "dynostore,libsql", "--locked", "--root"])
        .arg(&root)
        // Its own target directory: the running `cargo test` holds ours.
        .env_remove("CARGO_TARGET_DIR")
        .status();
    let bin = root.join("bin/tansu");
    match status {
        Ok(s) if s.success() && bin.is_file() => bin,
        other => panic!("installing tansu failed ({other:?}); install it by hand with:\n    {INSTALL}"),
    }
}

/// A port on 127.0.0.1 that is free now, for a child process to listen on.
///
/// Taken below Linux's ephemeral range (32768–60999): a port the OS hands out for `:0` can
/// be taken as the local end of an outgoing connection (the Kafka clients open many) before
/// the child binds it, and the child then failed with "Address already in use". Each test
/// binary starts at its own offset and counts up, so tests running at once do not meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % 600 * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + ((offset + n) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Broker {
    /// Starts a broker keeping its data in memory.
    pub fn start() -> Broker {
        Broker::start_with(Storage::Memory)
    }

    /// Starts a broker with the given storage, and waits until it accepts connections.
    pub fn start_with(storage: Storage) -> Broker {
        let mut broker = Broker {
            bin: tansu_binary(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            port: free_port(),
            storage,
            child: None,
            starts: 0,
        };
        if storage == Storage::Sqlite {
            std::fs::create_dir_all(broker.dir.path().join("data")).unwrap();
        }
        broker.spawn();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("tansu-{start}.log"))
    }

    /// The end of the broker's current log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).unwrap();
        let storage = match self.storage {
            Storage::Memory => "memory://tansu/".to_string(),
            Storage::Sqlite => "sqlite://data/tansu.db".to_string(),
        };
        let child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", &storage])
            .env("RUST_LOG", std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_until_listening(Duration::from_secs(30));
    }

    fn wait_until_listening(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited ({status}) before accepting connections:\n{}", self.log_tail());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within {within:?}:\n{}",
                self.addr(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a topic with the tansu command line.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args(["topic", "create", name, "--partitions", &partitions.to_string()])
            .args(["--broker", &self.url()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "tansu topic create {name} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the broker (like a crash) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port, with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    /// Stops the broker; with `YUJING_TEST_BROKER_LOGS=DIR`, its logs are copied into `DIR`
    /// first (the broker's own directory is removed), to look into a failed test.
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = std::env::var_os("YUJING_TEST_BROKER_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            for start in 1..=self.starts {
                let to = Path::new(&dir).join(format!("tansu-{}-{start}.log", self.port));
                let _ = std::fs::copy(self.log_path(start), to);
            }
        }
    }
}

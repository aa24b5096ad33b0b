//! The write-ahead log's checkpoints on a thread and connection of their own.
//!
//! SQLite checkpoints the WAL in the connection whose commit took it past a threshold
//! (1,000 pages): that commit also copies the pages into the database and syncs it, and
//! the batch behind it waits. `yujing run`'s writer hands the work to a [`Checkpointer`]
//! instead: a passive checkpoint runs beside the writer's commits, not inside one. The
//! writer still checkpoints itself past a much higher threshold, a bound on the WAL should
//! the checkpointer fall behind.

use crate::{Error, Result};
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the checkpointer lets commits gather once one wakes it.
const GATHER: Duration = Duration::from_millis(200);

/// Pages in the WAL past which the writer checkpoints in its own commit, the checkpointer
/// having fallen behind. SQLite's default, 1,000 pages (16 MB), still put a checkpoint in
/// the writer's commits: in the e2e latency phase, commit p99 13 and 18 ms against 17 ms
/// without the checkpointer; at 8,000, 9 and 9 ms against 19 and 21 ms. A backlog's WAL
/// peaked at 214 MB with 1,000 pages, 264 MB with 8,000 and 397 MB without the
/// checkpointer (it starts over only once fully checkpointed, and readers hold it).
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 8_000;

/// Bytes to which the WAL file is cut back when it starts over (it is otherwise left at the
/// largest size it reached).
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// The checkpointing thread; dropping it finishes a checkpoint already asked for and joins
/// the thread.
pub(super) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, with a connection of its own to the database at `path`.
    pub(super) fn spawn(path: &Path, busy_timeout: Duration) -> Result<Checkpointer> {
        let sql = |source| Error::Sqlite { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(busy_timeout).map_err(sql)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let at = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&conn, &at, &woken))
            .map_err(|source| Error::Thread { path: path.to_path_buf(), source })?;
        Ok(Checkpointer { wake: Some(wake), thread: Some(thread) })
    }

    /// Asks for a checkpoint soon (after a commit); never blocks.
    pub(super) fn wake(&self) {
        if let Some(w) = &self.wake {
            // Full: a checkpoint is already asked for.
            let _ = w.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the store's checkpointing thread panicked");
        }
    }
}

/// Checkpoints once commits have gathered after each wake-up (at once when the store closes
/// meanwhile), until the store closes.
fn run(conn: &Connection, path: &Path, woken: &mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        let until = Instant::now() + GATHER;
        let closing = loop {
            match woken.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break false,
                Err(RecvTimeoutError::Disconnected) => break true,
            }
        };
        checkpoint(conn, path);
        if closing {
            return;
        }
    }
}

fn checkpoint(conn: &Connection, path: &Path) {
    let started = Instant::now();
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((busy, wal_pages, checkpointed)) => tracing::trace!(
            busy,
            wal_pages,
            checkpointed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL checkpointed"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "checkpointing the WAL failed; the writer's own checkpoints still bound it"
        ),
    }
}

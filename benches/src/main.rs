//! `yujing-bench`: yujing's end-to-end throughput, latency and memory harness.
//!
//! ```sh
//! cargo run --release -p yujing-bench -- e2e          # about 5 minutes on 2 cores
//! cargo run --release -p yujing-bench -- e2e --quick  # about 1 minute
//! ```
//!
//! It starts a tansu broker on 127.0.0.1, generates reports with `yujing fixtures`, measures
//! a bare rdkafka consumer, `yujing run`, `yujing replay`, report → alert latency at a
//! steady rate and the service's peak memory, prints one table and writes the figures as
//! JSON under `benches/results/`.

mod e2e;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "yujing's end-to-end benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput of a bare consumer, `yujing run` and `yujing replay`; report → alert
    /// latency; peak memory of `yujing run`.
    E2e(e2e::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::E2e(opts) => e2e::main(opts),
    }
}

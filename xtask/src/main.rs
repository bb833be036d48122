//! `cargo xtask`: Vigil's developer tasks.
//!
//! The eBPF half of Vigil needs a toolchain a plain `cargo build` cannot install by itself
//! (nightly with `rust-src`, bpf-linker built against the system LLVM), so every task that builds
//! starts by running the idempotent [`bootstrap`](bootstrap::bootstrap) step.

mod bench;
mod bootstrap;
mod peers;
mod privilege;
mod shell;
mod tasks;
mod workspace;

use std::{ffi::OsString, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::workspace::Workspace;

/// Developer tasks for Vigil (run as `cargo xtask <TASK>`).
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain and test tools, skipping what is present.
    ///
    /// Installs the nightly toolchain with rust-src, the Debian packages (LLVM 22 for
    /// bpf-linker, and the test tools: iproute2, procps, python3, rsyslog, ...; apt needs
    /// root), bpf-linker 0.13, and the ECS and OCSF schema validators the format tests use
    /// (npm's @elastic/ecs and a Python venv, under the target directory).
    Bootstrap,
    /// Bootstrap, then build the agent (`cargo build -p vigil`).
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Bootstrap, build the agent in release mode and run `vigil run ARGS` (needs root).
    Run {
        /// Arguments for `vigil run`, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Bootstrap, run the unit tests, then the eBPF integration tests (those need root).
    Test {
        /// Arguments for the test binaries (e.g. a name filter or `--nocapture`), after `--`.
        #[arg(last = true, value_name = "TEST_ARGS")]
        args: Vec<OsString>,
    },
    /// Check formatting, and run clippy on the host crates and on the eBPF crate.
    Lint,
    /// Bootstrap, then run the criterion benchmarks, the kernel benches (load, egress cost) and
    /// the side-by-side suite against auditd and bpftrace (root); writes BENCHMARKS.md and
    /// <target>/bench/bench.json.
    ///
    /// Also installs the peers (Debian's auditd and bpftrace) and the mix workload's tools.
    /// The full run takes about ten minutes on two cores.
    Bench {
        /// Smoke-test mode: criterion --quick, short kernel benches, small workloads run once,
        /// 1,000 held processes; the report goes to <target>/bench/ only.
        #[arg(long, env = "VIGIL_BENCH_QUICK")]
        quick: bool,
        /// Run only this part (repeatable); the report then goes to <target>/bench/ only.
        #[arg(long, value_enum, value_name = "PART")]
        only: Vec<bench::Part>,
        /// Arguments for the criterion binaries (e.g. a benchmark filter), after `--`.
        #[arg(last = true, value_name = "BENCH_ARGS")]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Printed by hand rather than returned from main: anyhow's Debug output would add a
            // backtrace whenever RUST_BACKTRACE is set, burying the one line that matters.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    let ws = Workspace::locate()?;
    match task {
        Task::Bootstrap => bootstrap::bootstrap(&ws),
        Task::Build { release } => tasks::build(&ws, release),
        Task::Run { args } => tasks::run(&ws, &args),
        Task::Test { args } => tasks::test(&ws, &args),
        Task::Lint => tasks::lint(&ws),
        Task::Bench { quick, only, args } => bench::bench(
            &ws,
            &bench::Options {
                quick,
                only,
                criterion_args: args,
            },
        ),
    }
}

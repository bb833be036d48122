//! The tasks behind the subcommands other than `bootstrap` and `bench`.

use std::ffi::OsString;

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap::{self, NIGHTLY},
    privilege::{self, EBPF_NEEDS_ROOT},
    shell,
    workspace::Workspace,
};

/// The agent's package (lib + the `vigil` binary).
pub const AGENT_PACKAGE: &str = "vigil";
/// The eBPF crate: it only compiles for the BPF target, so host-side `--workspace` runs leave it
/// out and lint checks it separately.
const EBPF_PACKAGE: &str = "agent-ebpf";
const EBPF_TARGET: &str = "bpfel-unknown-none";
/// The tests that load real eBPF programs: they need root and share kernel state, hence run
/// one at a time.
pub const INTEGRATION_TESTS_PACKAGE: &str = "vigil-integration-tests";

/// Bootstraps, then builds the agent.
pub fn build(ws: &Workspace, release: bool) -> Result<()> {
    bootstrap::bootstrap(ws)?;
    let mut cmd = ws.cargo();
    cmd.arg("build");
    if release {
        cmd.arg("--release");
    }
    shell::run(cmd.args(["-p", AGENT_PACKAGE]))
}

/// Bootstraps, builds the agent in release mode and replaces this process with `vigil run ARGS`.
/// The current directory is kept, so relative paths in ARGS mean what they say.
pub fn run(ws: &Workspace, args: &[OsString]) -> Result<()> {
    // Checked first, so nobody waits for a release build only to be refused.
    if !privilege::is_root() {
        bail!(EBPF_NEEDS_ROOT);
    }
    bootstrap::bootstrap(ws)?;
    shell::run(ws.cargo().args(["build", "--release", "-p", AGENT_PACKAGE]))?;
    let binary = ws.target_dir().join("release").join(AGENT_PACKAGE);
    if !binary.is_file() {
        bail!(
            "the build succeeded but {} does not exist (is a target directory configured \
             elsewhere?)",
            binary.display()
        );
    }
    let mut cmd = std::process::Command::new(&binary);
    cmd.arg("run").args(args);
    Err(shell::exec(&mut cmd))
}

/// Bootstraps, runs the unit tests, then the integration tests (root only, one thread).
pub fn test(ws: &Workspace, args: &[OsString]) -> Result<()> {
    bootstrap::bootstrap(ws)?;
    let mut unit = ws.cargo();
    unit.args(["test", "--workspace"])
        .args(["--exclude", EBPF_PACKAGE])
        .args(["--exclude", INTEGRATION_TESTS_PACKAGE]);
    if !args.is_empty() {
        unit.arg("--").args(args);
    }
    shell::run(&mut unit)?;
    if !privilege::is_root() {
        bail!(
            "unit tests passed, but the integration tests cannot run: {EBPF_NEEDS_ROOT}; \
             re-run `cargo xtask test` as root"
        );
    }
    // The CLI tests run the `vigil` binary, which `cargo test` of another package does not build.
    shell::run(ws.cargo().args(["build", "-p", AGENT_PACKAGE]))?;
    shell::run(
        ws.cargo()
            // The schema tests run validators whose dependencies bootstrap installed there.
            .env(bootstrap::SCHEMA_TOOLS_ENV, bootstrap::schema_tools_dir(ws))
            .args(["test", "-p", INTEGRATION_TESTS_PACKAGE])
            .args(["--", "--test-threads=1"])
            .args(args),
    )
}

/// Runs every check even after one fails, then fails listing those that did, so one lint run
/// reports all the work left.
pub fn lint(ws: &Workspace) -> Result<()> {
    bootstrap::bootstrap(ws)?;
    eprintln!("lint: checking the lint tools");
    bootstrap::ensure_component(ws, None, "rustfmt").context("installing rustfmt")?;
    bootstrap::ensure_component(ws, None, "clippy").context("installing clippy")?;
    bootstrap::ensure_component(ws, Some(NIGHTLY), "clippy")
        .context("installing clippy for nightly")?;

    let mut fmt = ws.cargo();
    fmt.args(["fmt", "--all", "--check"]);

    let mut host_clippy = ws.cargo();
    host_clippy
        .args([
            "clippy",
            "--workspace",
            "--exclude",
            EBPF_PACKAGE,
            "--all-targets",
        ])
        .args(["--", "-D", "warnings"]);

    // `+nightly` is a rustup proxy feature and CARGO points at a toolchain's own cargo, so go
    // through rustup. build-std needs nightly; panic=abort keeps the eBPF panic handler from
    // clashing with std's when clippy also builds test harnesses.
    let mut ebpf_clippy = ws.command("rustup");
    ebpf_clippy
        .args(["run", NIGHTLY, "cargo", "clippy", "-p", EBPF_PACKAGE])
        .args(["--target", EBPF_TARGET, "-Z", "build-std=core"])
        .args([
            "--",
            "-D",
            "warnings",
            "-C",
            "panic=abort",
            "-Zpanic_abort_tests",
        ]);

    let failed: Vec<String> = [fmt, host_clippy, ebpf_clippy]
        .iter_mut()
        .filter_map(|cmd| shell::run(cmd).err())
        .map(|err| err.to_string())
        .collect();
    if !failed.is_empty() {
        bail!("lint failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

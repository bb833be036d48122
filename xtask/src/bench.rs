//! `cargo xtask bench`: the criterion micro-benchmarks, the kernel benches, and the side-by-side
//! suite against the peers ([`crate::peers`]), reported in BENCHMARKS.md and JSON.

use std::{collections::BTreeMap, ffi::OsString, fs, path::PathBuf, time::SystemTime};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use crate::{
    bootstrap,
    peers::{self, Inputs, Settings, report},
    privilege::{self, EBPF_NEEDS_ROOT},
    shell,
    tasks::{AGENT_PACKAGE, INTEGRATION_TESTS_PACKAGE},
    workspace::Workspace,
};

/// Where the Falco rules live unless `VIGIL_FALCO_RULES_DIR` says otherwise (as in the tests):
/// the shared checkout next to the repository.
const FALCO_RULES_ENV: &str = "VIGIL_FALCO_RULES_DIR";
const FALCO_RULES_FILE: &str = "falco_rules.yaml";

/// A part of the benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The criterion micro-benchmarks in agent/benches (decode, enrich, rules, delivery).
    Criterion,
    /// The kernel benches: tests/load.rs and tests/egress_cost.rs (root).
    Kernel,
    /// The side-by-side suite: workloads under no observer, bpftrace, Vigil and auditd (root).
    Peers,
}

/// What `cargo xtask bench` was asked for.
pub struct Options {
    /// Smoke-test sizes: criterion's --quick, short kernel benches, small workloads, one run.
    pub quick: bool,
    /// Only these parts (all when empty).
    pub only: Vec<Part>,
    /// Arguments for the criterion binaries.
    pub criterion_args: Vec<OsString>,
}

impl Options {
    fn wants(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Runs the requested parts, then writes the report: BENCHMARKS.md at the repository root
/// after a full run of every part, else `<target>/bench/BENCHMARKS.md`; the JSON always goes
/// to `<target>/bench/bench.json` (`bench-quick.json` in quick mode).
pub fn bench(ws: &Workspace, options: &Options) -> Result<()> {
    let date = report::now();
    let load_start = report::loadavg();
    bootstrap::bootstrap(ws)?;
    let needs_root = options.wants(Part::Kernel) || options.wants(Part::Peers);
    if options.wants(Part::Peers) {
        bootstrap::bench_packages(ws)?;
    }
    let started = SystemTime::now();
    if options.wants(Part::Criterion) {
        criterion(ws, options)?;
    }
    if needs_root && !privilege::is_root() {
        bail!(
            "the kernel benches and the side-by-side suite cannot run: {EBPF_NEEDS_ROOT}; \
             re-run `cargo xtask bench` as root (or `--only criterion`)"
        );
    }
    let kernel_benches = if options.wants(Part::Kernel) {
        kernel(ws, options.quick)?
    } else {
        Vec::new()
    };
    let measurements = if options.wants(Part::Peers) {
        let inputs = build_inputs(ws)?;
        let settings = Settings::new(options.quick)?;
        eprintln!(
            "bench: side-by-side suite, {} round(s) of every workload under every observer{}",
            settings.reps,
            if settings.quick { " (quick mode)" } else { "" }
        );
        Some(peers::run(&inputs, &settings)?)
    } else {
        None
    };

    let out_dir = ws.target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let suffix = if options.quick { "-quick" } else { "" };
    let json_path = out_dir.join(format!("bench{suffix}.json"));
    let ctx = report::Context {
        date,
        machine: report::machine(),
        versions: versions(ws),
        loadavg: (load_start, report::loadavg()),
        criterion: report::criterion_figures(&ws.target_dir().join("criterion"), started),
        kernel_benches,
    };
    let json = report::to_json(measurements.as_ref(), &ctx);
    let text = serde_json::to_string_pretty(&json).context("encoding the JSON report")?;
    fs::write(&json_path, text + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let complete = options.only.is_empty() && !options.quick;
    let md_path = if complete {
        ws.root.join("BENCHMARKS.md")
    } else {
        out_dir.join(format!("BENCHMARKS{suffix}.md"))
    };
    fs::write(&md_path, report::to_markdown(measurements.as_ref(), &ctx))
        .with_context(|| format!("writing {}", md_path.display()))?;
    eprintln!(
        "bench: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    Ok(())
}

/// criterion's timing when no arguments are given: half its defaults (3 s warm-up, 5 s of
/// samples), which keeps the whole `cargo xtask bench` near ten minutes on two cores while the
/// estimates stay within a few percent.
const CRITERION_DEFAULTS: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];

/// The criterion targets of the agent (the lib's own test harness rejects criterion's
/// options, hence `--bench '*'`).
fn criterion(ws: &Workspace, options: &Options) -> Result<()> {
    let mut cmd = ws.cargo();
    cmd.args(["bench", "-p", AGENT_PACKAGE, "--bench", "*", "--"]);
    if options.quick {
        cmd.arg("--quick");
    } else if options.criterion_args.is_empty() {
        cmd.args(CRITERION_DEFAULTS);
    }
    cmd.args(&options.criterion_args);
    shell::run(&mut cmd)
}

/// The load bench (real probes under openat+close workers: sustained rate, kernel drops) and
/// the egress cost bench; their stdout, by name.
fn kernel(ws: &Workspace, quick: bool) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut load = ws.cargo();
    load.args(["bench", "-p", INTEGRATION_TESTS_PACKAGE, "--bench", "load"]);
    if quick {
        load.env("VIGIL_LOAD_SECONDS", "2");
    }
    out.push(("load".to_owned(), shell::run_tee(&mut load)?));
    // The egress hook's cost per connect(), detached vs attached, small vs 10,000-entry lists.
    let mut egress = ws.cargo();
    egress.args([
        "bench",
        "-p",
        INTEGRATION_TESTS_PACKAGE,
        "--bench",
        "egress_cost",
    ]);
    out.push(("egress_cost".to_owned(), shell::run_tee(&mut egress)?));
    Ok(out)
}

/// Builds the release agent and workload, and finds the rules.
fn build_inputs(ws: &Workspace) -> Result<Inputs> {
    shell::run(ws.cargo().args(["build", "--release", "-p", AGENT_PACKAGE]))?;
    shell::run(ws.cargo().args([
        "build",
        "--release",
        "-p",
        "xtask",
        "--bin",
        "bench-workload",
    ]))?;
    let release = ws.target_dir().join("release");
    let vigil = release.join(AGENT_PACKAGE);
    let workload = release.join("bench-workload");
    for binary in [&vigil, &workload] {
        if !binary.is_file() {
            bail!(
                "the build succeeded but {} does not exist (is a target directory configured \
                 elsewhere?)",
                binary.display()
            );
        }
    }
    let falco_dir = std::env::var_os(FALCO_RULES_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.root.join("..").join("shared").join("falco-rules"));
    let falco_rules = falco_dir.join(FALCO_RULES_FILE);
    if !falco_rules.is_file() {
        bail!(
            "the stable Falco rules are missing: looked for {} (set {FALCO_RULES_ENV} to the \
             directory holding {FALCO_RULES_FILE})",
            falco_rules.display()
        );
    }
    Ok(Inputs {
        vigil,
        workload,
        bundled_rules: ws.root.join("rules"),
        falco_rules: falco_rules
            .canonicalize()
            .with_context(|| format!("resolving {}", falco_rules.display()))?,
    })
}

/// Versions of what the report is about; a tool that is missing is left out.
fn versions(ws: &Workspace) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    let first_line = |cmd: &mut std::process::Command| -> Option<String> {
        let out = shell::probe(cmd).ok()??;
        let text = if out.stdout.is_empty() {
            out.stderr
        } else {
            out.stdout
        };
        Some(
            String::from_utf8_lossy(&text)
                .lines()
                .next()?
                .trim()
                .to_owned(),
        )
    };
    let vigil = ws.target_dir().join("release").join(AGENT_PACKAGE);
    if vigil.is_file()
        && let Some(version) = first_line(ws.command(&vigil).arg("--version"))
    {
        versions.insert("vigil".to_owned(), version);
    }
    if let Some(commit) = first_line(ws.command("git").args(["rev-parse", "--short", "HEAD"])) {
        let dirty = shell::probe(ws.command("git").args(["status", "--porcelain"]))
            .ok()
            .flatten()
            .is_some_and(|out| !out.stdout.is_empty());
        let note = if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        };
        versions.insert("commit".to_owned(), format!("{commit}{note}"));
    }
    for (name, program, args) in [
        ("auditd", "auditctl", &["-v"][..]),
        ("bpftrace", "bpftrace", &["--version"][..]),
        ("gcc", "gcc", &["-dumpfullversion"][..]),
    ] {
        if let Some(version) = first_line(ws.command(program).args(args)) {
            versions.insert(name.to_owned(), version);
        }
    }
    versions
}

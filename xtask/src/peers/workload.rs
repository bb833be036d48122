//! The workloads, run as `bench-workload` child processes (xtask/src/bin/bench-workload.rs).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// One workload of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// openat+read+close, loopback connects, a fork+exec every 100 rounds.
    SyscallStorm,
    /// fork+exec of /bin/true.
    ExecStorm,
    /// Loopback TCP connects.
    ConnectStorm,
    /// Unpack a generated C source tree and build it with make and gcc.
    Mix,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 4] = [
        Workload::SyscallStorm,
        Workload::ExecStorm,
        Workload::ConnectStorm,
        Workload::Mix,
    ];

    /// The name used in the report and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::SyscallStorm => "syscall-storm",
            Workload::ExecStorm => "exec-storm",
            Workload::ConnectStorm => "connect-storm",
            Workload::Mix => "mix",
        }
    }

    /// What one run does, at `scale`.
    pub fn description(self, scale: &Scale) -> String {
        match self {
            Workload::SyscallStorm => format!(
                "{} rounds of openat+read+close of a small file and a loopback TCP connect \
                 (socket, connect, accept, close both ends); every 100 rounds a fork+exec of \
                 /bin/true and an open of the marker file",
                scale.storm_rounds
            ),
            Workload::ExecStorm => format!(
                "{} fork+exec of /bin/true, each waited for; the marker file is opened every 10",
                scale.execs
            ),
            Workload::ConnectStorm => format!(
                "{} loopback TCP connects (socket, connect, accept, close both ends); the marker \
                 file is opened every 100",
                scale.connects
            ),
            Workload::Mix => format!(
                "unpack a generated tree of {} C files (tar -xzf) and build it (make -j2, \
                 gcc -O2); the marker file is opened before and after",
                scale.mix_files + 1
            ),
        }
    }
}

/// How much work one run of each workload does.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Rounds of the syscall storm.
    pub storm_rounds: u64,
    /// Execs of the exec storm.
    pub execs: u64,
    /// Connects of the connect storm.
    pub connects: u64,
    /// C files of the mix's source tree (plus main.c).
    pub mix_files: u32,
}

impl Scale {
    /// The full benchmark: each run takes about a second with no observer on the 2-core VM it
    /// was tuned on (several when other builds share the machine).
    pub const FULL: Scale = Scale {
        storm_rounds: 24_000,
        execs: 800,
        connects: 24_000,
        mix_files: 16,
    };
    /// The smoke test.
    pub const QUICK: Scale = Scale {
        storm_rounds: 3_000,
        execs: 100,
        connects: 3_000,
        mix_files: 4,
    };

    /// As JSON.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "storm_rounds": self.storm_rounds,
            "execs": self.execs,
            "connects": self.connects,
            "mix_files": self.mix_files + 1,
        })
    }
}

/// The result line of one run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Wall time of the work, seconds.
    pub elapsed_s: f64,
    /// How many times the marker file was opened.
    pub markers: u64,
    /// Workload-specific counts (`rounds`, `execs`, `connects`).
    pub counts: BTreeMap<String, u64>,
}

/// Runs workloads in a scratch directory.
pub struct Runner {
    binary: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    marker: PathBuf,
    tarball: PathBuf,
    scale: Scale,
    runs: u64,
}

impl Runner {
    /// Writes the data and marker files and the mix's tarball into `dir`.
    pub fn prepare(binary: &Path, dir: &Path, scale: Scale) -> Result<Runner> {
        let data = dir.join("data.txt");
        fs::write(&data, "vigil benchmark data file\n".repeat(4))
            .with_context(|| format!("writing {}", data.display()))?;
        let marker = dir.join("vigil-bench-marker");
        fs::write(&marker, "marker\n").with_context(|| format!("writing {}", marker.display()))?;
        let out = output(
            Command::new(binary)
                .arg("prepare-mix")
                .arg("--dir")
                .arg(dir)
                .arg("--files")
                .arg(scale.mix_files.to_string()),
        )?;
        let tarball = out
            .trim()
            .strip_prefix("tarball=")
            .map(PathBuf::from)
            .context("prepare-mix printed no tarball")?;
        Ok(Runner {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            data,
            marker,
            tarball,
            scale,
            runs: 0,
        })
    }

    /// The file whose opening the marker rule alerts on.
    pub fn marker(&self) -> &Path {
        &self.marker
    }

    /// Runs `workload` once.
    pub fn run(&mut self, workload: Workload) -> Result<Run> {
        self.runs += 1;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(workload.name());
        let mut unpacked = None;
        match workload {
            Workload::SyscallStorm => {
                cmd.arg("--rounds")
                    .arg(self.scale.storm_rounds.to_string())
                    .arg("--data")
                    .arg(&self.data);
            }
            Workload::ExecStorm => {
                cmd.arg("--count").arg(self.scale.execs.to_string());
            }
            Workload::ConnectStorm => {
                cmd.arg("--count").arg(self.scale.connects.to_string());
            }
            Workload::Mix => {
                let into = self.dir.join(format!("mix-{}", self.runs));
                fs::create_dir(&into).with_context(|| format!("creating {}", into.display()))?;
                cmd.arg("--tarball")
                    .arg(&self.tarball)
                    .arg("--into")
                    .arg(&into);
                unpacked = Some(into);
            }
        }
        cmd.arg("--marker").arg(&self.marker);
        let line = output(&mut cmd);
        if let Some(into) = unpacked {
            // Below the benchmark's own mkdtemp directory.
            fs::remove_dir_all(&into).with_context(|| format!("removing {}", into.display()))?;
        }
        parse_run(&line?)
    }
}

/// Runs `cmd` and returns its stdout; fails with its stderr unless it succeeds.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = crate::shell::describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `elapsed_ns=N markers=N key=N ...`.
fn parse_run(line: &str) -> Result<Run> {
    let mut run = Run::default();
    let mut elapsed = None;
    for pair in line.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("bad workload output {line:?}"))?;
        let value: u64 = value
            .parse()
            .with_context(|| format!("bad workload output {line:?}"))?;
        match key {
            "elapsed_ns" => elapsed = Some(value),
            "markers" => run.markers = value,
            _ => {
                run.counts.insert(key.to_owned(), value);
            }
        }
    }
    run.elapsed_s = elapsed.with_context(|| format!("no elapsed_ns in {line:?}"))? as f64 / 1e9;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lines() {
        let run =
            parse_run("elapsed_ns=1500000000 markers=30 rounds=3000 execs=30\n").expect("parses");
        assert_eq!(run.elapsed_s, 1.5);
        assert_eq!(run.markers, 30);
        assert_eq!(run.counts["execs"], 30);
        assert!(parse_run("markers=1").is_err());
        assert!(parse_run("elapsed_ns=x").is_err());
    }
}

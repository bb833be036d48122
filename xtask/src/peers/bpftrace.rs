//! bpftrace as the attach-only floor: two tracepoints, openat enter and exit, each bumping an
//! in-kernel counter. Nothing reaches userspace until bpftrace exits and prints the counts, so
//! this is about the least any eBPF tool attached to openat can cost.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{audit::which, vigil::signal};

/// The program. The interval probe says `ready` once, a second after it is attached (probes
/// are attached in order, so the tracepoints are in place by then); it never touches the
/// openat path.
const PROGRAM: &str = "tracepoint:syscalls:sys_enter_openat { @enter = count(); } \
                       tracepoint:syscalls:sys_exit_openat { @exit = count(); } \
                       interval:s:1 /@ready == 0/ { @ready = 1; printf(\"ready\\n\"); }";

/// Why bpftrace cannot be measured here, if it cannot.
pub fn unavailable() -> Option<String> {
    which("bpftrace")
        .is_none()
        .then(|| "bpftrace not installed (Debian package `bpftrace`)".to_owned())
}

/// A running bpftrace.
pub struct Bpftrace {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// What bpftrace counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// `@enter`: openat entries.
    pub enter: u64,
    /// `@exit`: openat exits.
    pub exit: u64,
}

impl Bpftrace {
    /// Starts bpftrace and waits until its probes are attached.
    pub fn start() -> Result<Bpftrace> {
        let binary = which("bpftrace").context("bpftrace is not installed")?;
        let mut child = Command::new(binary)
            .args(["-e", PROGRAM])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting bpftrace")?;
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let bpftrace = Bpftrace { child, lines };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match bpftrace
                .lines
                .recv_timeout(left.max(Duration::from_millis(1)))
            {
                Ok(line) if line.trim() == "ready" => return Ok(bpftrace),
                Ok(line) => seen.push(line),
                Err(_) => bail!(
                    "bpftrace did not attach within 60 s; it printed:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// bpftrace's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops bpftrace with SIGINT and returns what it counted.
    pub fn stop(mut self) -> Result<Counts> {
        signal(self.child.id(), libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().context("polling bpftrace")?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("bpftrace did not exit within 20 s of SIGINT; killed it");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reader threads end with the pipes; collect what they read.
        let mut counts = Counts::default();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            parse_count(&line, &mut counts);
        }
        Ok(counts)
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGINT);
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `@enter: N` and `@exit: N` lines.
fn parse_count(line: &str, counts: &mut Counts) {
    let Some((name, value)) = line.split_once(':') else {
        return;
    };
    let Ok(value) = value.trim().parse() else {
        return;
    };
    match name.trim() {
        "@enter" => counts.enter = value,
        "@exit" => counts.exit = value,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_bpftrace_output() {
        let mut counts = Counts::default();
        for line in [
            "Attaching 3 probes...",
            "ready",
            "",
            "@enter: 52896",
            "@exit: 53218",
        ] {
            parse_count(line, &mut counts);
        }
        assert_eq!(
            counts,
            Counts {
                enter: 52896,
                exit: 53218
            }
        );
    }
}

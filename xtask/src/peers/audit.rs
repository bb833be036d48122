//! Debian's auditd as an observer: the daemon (started here, in the foreground, with Debian's
//! own auditd.conf except that it logs into the benchmark's directory) plus syscall rules on
//! open/openat/openat2, execve/execveat and connect, the events Vigil's rules are about.
//!
//! Everything is put back afterwards: the rules (found by their key) are deleted, the backlog
//! settings and the kernel's `enabled` flag restored, and the daemon stopped.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{sys, vigil::signal};

/// The key of the benchmark's audit rules, so they and only they are deleted afterwards.
const KEY: &str = "vigil-bench";
/// The syscalls audited: what Vigil's file, exec and network rules look at.
const SYSCALLS: &[&str] = &["open", "openat", "openat2", "execve", "execveat", "connect"];
/// The backlog settings Debian's /etc/audit/rules.d/audit.rules loads at boot.
const BACKLOG_LIMIT: &str = "8192";
const BACKLOG_WAIT_TIME: &str = "60000";

/// Why auditd cannot be measured here, if it cannot.
pub fn unavailable() -> Option<String> {
    if which("auditd").is_none() || which("auditctl").is_none() {
        return Some("auditd/auditctl not installed (Debian package `auditd`)".to_owned());
    }
    let foreign = sys::pids_named("auditd");
    if !foreign.is_empty() {
        return Some(format!(
            "an auditd the benchmark did not start is running (pid {foreign:?}); it owns the \
             audit rules, so stop it (`service auditd stop`) to measure auditd"
        ));
    }
    match status() {
        Ok(status) if status.get("enabled").map(String::as_str) == Some("2") => {
            Some("the audit configuration is locked (enabled 2) until reboot".to_owned())
        }
        Ok(_) => None,
        Err(err) => Some(format!("auditctl -s failed: {err:#}")),
    }
}

/// A running auditd with the benchmark's rules loaded.
pub struct Auditd {
    child: Child,
    /// `auditctl -s` before the benchmark touched anything.
    before: BTreeMap<String, String>,
    restored: bool,
}

impl Auditd {
    /// Starts auditd with its logs in `dir`, then loads the rules.
    pub fn start(dir: &Path) -> Result<Auditd> {
        let before = status()?;
        let existing = auditctl(&["-l"])?;
        if !existing.trim().starts_with("No rules") {
            eprintln!(
                "bench: warning: audit rules are already loaded; they stay and add to auditd's \
                 cost:\n{existing}"
            );
        }
        fs::create_dir_all(dir.join("log")).context("creating auditd's log directory")?;
        let conf = dir.join("auditd.conf");
        let system = fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_default();
        fs::write(
            &conf,
            auditd_conf(&system, &dir.join("log").join("audit.log")),
        )
        .with_context(|| format!("writing {}", conf.display()))?;
        // auditd refuses a configuration others can write.
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o640))
            .context("chmod auditd.conf")?;
        let out = fs::File::create(dir.join("auditd.out")).context("auditd output file")?;
        let binary = which("auditd").context("auditd is not installed")?;
        let child = Command::new(binary)
            .args(["-n", "-s", "enable", "-c"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("auditd output file")?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("starting auditd")?;
        let mut auditd = Auditd {
            child,
            before,
            restored: false,
        };
        auditd.wait_registered(dir)?;
        auditctl(&["-b", BACKLOG_LIMIT])?;
        auditctl(&["--backlog_wait_time", BACKLOG_WAIT_TIME])?;
        let mut rule = vec!["-a", "always,exit", "-F", "arch=b64"];
        for syscall in SYSCALLS {
            rule.extend(["-S", syscall]);
        }
        rule.extend(["-k", KEY]);
        auditctl(&rule)?;
        Ok(auditd)
    }

    fn wait_registered(&mut self, dir: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let pid = self.child.id().to_string();
        loop {
            if let Some(status) = self.child.try_wait().context("polling auditd")? {
                let out = fs::read_to_string(dir.join("auditd.out")).unwrap_or_default();
                bail!("auditd exited during start-up ({status}):\n{out}");
            }
            if status()?.get("pid") == Some(&pid) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("auditd did not register with the kernel within 15 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// auditd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Records the kernel could not queue for auditd so far (`lost`).
    pub fn lost() -> Result<u64> {
        status()?
            .get("lost")
            .and_then(|lost| lost.parse().ok())
            .context("auditctl -s shows no `lost`")
    }

    /// Deletes the rules, restores the settings and stops the daemon.
    pub fn stop(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        let mut errors = Vec::new();
        let mut attempt = |args: &[&str]| {
            if let Err(err) = auditctl(args) {
                errors.push(format!("{err:#}"));
            }
        };
        attempt(&["-D", "-k", KEY]);
        for (key, flag) in [
            ("backlog_limit", "-b"),
            ("backlog_wait_time", "--backlog_wait_time"),
        ] {
            if let Some(value) = self.before.get(key) {
                attempt(&[flag, value]);
            }
        }
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                errors.push("auditd did not stop within 10 s of SIGTERM; killed it".to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // auditd switched auditing on; put the flag back as it was.
        if let Some(enabled) = self.before.get("enabled") {
            let mut attempt = |args: &[&str]| {
                if let Err(err) = auditctl(args) {
                    errors.push(format!("{err:#}"));
                }
            };
            attempt(&["-e", enabled]);
        }
        let left = auditctl(&["-l"]).unwrap_or_default();
        if left.contains(KEY) {
            errors.push(format!(
                "audit rules with key {KEY} are still loaded:\n{left}"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("restoring the audit configuration: {}", errors.join("; "))
        }
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Err(err) = self.restore() {
            eprintln!("bench: {err:#}");
        }
    }
}

/// Debian's auditd.conf with the log file moved to `log`.
fn auditd_conf(system: &str, log: &Path) -> String {
    let mut lines: Vec<String> = system
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            !matches!(key, "log_file" | "log_group")
        })
        .map(str::to_owned)
        .collect();
    lines.push(format!("log_file = {}", log.display()));
    lines.push("log_group = root".to_owned());
    lines.join("\n") + "\n"
}

/// Runs auditctl; its stdout, or an error with its stderr.
fn auditctl(args: &[&str]) -> Result<String> {
    let binary = which("auditctl").unwrap_or_else(|| "auditctl".into());
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running auditctl")?;
    if !output.status.success() {
        bail!(
            "auditctl {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `auditctl -s` as key/value pairs.
fn status() -> Result<BTreeMap<String, String>> {
    Ok(parse_status(&auditctl(&["-s"])?))
}

fn parse_status(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        let text = "enabled 1\nfailure 1\npid 4242\nbacklog_limit 8192\nlost 7\n\
                    loginuid_immutable 0 unlocked\n";
        let status = parse_status(text);
        assert_eq!(status["pid"], "4242");
        assert_eq!(status["lost"], "7");
        assert_eq!(status["loginuid_immutable"], "0");
    }

    #[test]
    fn conf_keeps_debian_settings_but_moves_the_log() {
        let system =
            "log_file = /var/log/audit/audit.log\nlog_group = adm\nflush = INCREMENTAL_ASYNC\n";
        let conf = auditd_conf(system, Path::new("/tmp/b/log/audit.log"));
        assert!(conf.contains("flush = INCREMENTAL_ASYNC"));
        assert!(conf.contains("log_file = /tmp/b/log/audit.log"));
        assert!(!conf.contains("/var/log/audit"));
        assert!(!conf.contains("adm"));
    }
}

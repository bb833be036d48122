//! Reading process facts from a procfs root.
//!
//! Everything here treats `/proc` as hostile input: a process can exit (and
//! its pid be reused) between any two reads, and fields like `comm` are
//! chosen by the process itself. A vanished process is reported as
//! [`ProcfsError::Gone`], never as a panic or a half-filled snapshot.
//!
//! The procfs root is a parameter (normally `/proc`) so tests can point it at
//! a fixture directory.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat, readlinkat};
use nix::sys::stat::Mode;

/// Errors from reading procfs.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// The process exited (or never existed); a normal outcome when racing
    /// with process exit.
    #[error("process {pid} is gone")]
    Gone {
        /// The pid that was looked up.
        pid: u32,
    },
    /// The process exists but has no such file descriptor (it was closed).
    #[error("process {pid} has no fd {fd}")]
    NoSuchFd {
        /// The pid that was looked up.
        pid: u32,
        /// The descriptor that was looked up.
        fd: i32,
    },
    /// An I/O error other than the process vanishing.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A procfs file did not have the expected format.
    #[error("malformed {path}: {reason}")]
    Malformed {
        /// The file being parsed.
        path: PathBuf,
        /// What was wrong with it.
        reason: &'static str,
    },
}

/// A point-in-time view of one process, as read from procfs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcSnapshot {
    /// Process id in the procfs root's pid namespace.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name (at most 15 bytes, chosen by the process).
    pub comm: String,
    /// Target of `exe`, without any " (deleted)" suffix; `None` for kernel
    /// threads, zombies, or when access is denied.
    pub exepath: Option<String>,
    /// Whether the executable was unlinked after the process started it.
    pub exe_deleted: bool,
    /// Arguments from `cmdline`, split on NUL.
    pub argv: Vec<String>,
    /// Target of `cwd`; `None` when unreadable.
    pub cwd: Option<String>,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Audit login uid; `None` when unset or unsupported.
    pub loginuid: Option<u32>,
    /// Controlling terminal device number (`tty_nr`), 0 when none.
    pub tty: u32,
    /// Session id.
    pub sid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Pid inside the process's own (innermost) pid namespace.
    pub vpid: u32,
    /// Start time in nanoseconds since boot.
    pub start_boot_ns: u64,
    /// The cgroup v2 path, from the `0::` line of `cgroup`.
    pub cgroup_path: Option<String>,
    /// The container any line of `cgroup` names (the v2 line first, then the v1 hierarchies):
    /// on a hybrid host a container may be placed in v1 hierarchies only.
    pub cgroup_container: Option<super::container::ContainerRef>,
    /// Effective capability set.
    pub cap_effective: u64,
    /// Permitted capability set.
    pub cap_permitted: u64,
    /// Inheritable capability set.
    pub cap_inheritable: u64,
}

/// Suffix the kernel appends to links and cgroup paths whose target was
/// removed.
const DELETED_SUFFIX: &str = " (deleted)";

/// `loginuid` value meaning "never set" (`(uid_t)-1`).
const LOGINUID_UNSET: u32 = u32::MAX;

/// An open `/proc/<pid>` directory.
///
/// Every read goes through this descriptor (`openat`/`readlinkat`) rather
/// than a path, so once the process is reaped reads fail instead of quietly
/// returning facts about a new process that reused the pid.
pub(crate) struct PidDir {
    pid: u32,
    path: PathBuf,
    fd: OwnedFd,
}

impl PidDir {
    /// Opens `<proc_root>/<pid>`; a missing directory is [`ProcfsError::Gone`].
    pub(crate) fn open(proc_root: &Path, pid: u32) -> Result<Self, ProcfsError> {
        let path = proc_root.join(pid.to_string());
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match open(&path, flags, Mode::empty()) {
            Ok(fd) => Ok(Self { pid, path, fd }),
            Err(Errno::ENOENT | Errno::ESRCH) => Err(ProcfsError::Gone { pid }),
            Err(e) => Err(ProcfsError::Io {
                path,
                source: e.into(),
            }),
        }
    }

    /// Path of `name` inside this directory, for error context.
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a file the kernel always provides for a live process; its
    /// absence means the process is gone.
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, ProcfsError> {
        match self.try_read(name) {
            Ok(bytes) => Ok(bytes),
            Err(Errno::ENOENT | Errno::ESRCH) => Err(ProcfsError::Gone { pid: self.pid }),
            Err(e) => Err(self.io_error(name, e)),
        }
    }

    /// Reads a file that may legitimately be absent or unreadable (kernel
    /// threads, missing kernel features, no ptrace access).
    pub(crate) fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>, ProcfsError> {
        match self.try_read(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => self.optional_error(name, e),
        }
    }

    /// Reads a symlink that may legitimately be absent or unreadable.
    pub(crate) fn readlink_optional(&self, name: &str) -> Result<Option<OsString>, ProcfsError> {
        match readlinkat(&self.fd, name) {
            Ok(target) => Ok(Some(target)),
            Err(e) => self.optional_error(name, e),
        }
    }

    /// Reads a symlink that must exist while the process is alive.
    pub(crate) fn readlink(&self, name: &str) -> Result<OsString, ProcfsError> {
        readlinkat(&self.fd, name).map_err(|e| match e {
            Errno::ESRCH => ProcfsError::Gone { pid: self.pid },
            other => self.io_error(name, other),
        })
    }

    /// Whether the process still has a procfs entry (zombies count as alive).
    pub(crate) fn is_alive(&self) -> bool {
        !matches!(
            openat(
                &self.fd,
                "stat",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty()
            ),
            Err(Errno::ENOENT | Errno::ESRCH)
        )
    }

    fn try_read(&self, name: &str) -> Result<Vec<u8>, Errno> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut buf = Vec::new();
        File::from(fd)
            .read_to_end(&mut buf)
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        Ok(buf)
    }

    fn optional_error<T>(&self, name: &str, e: Errno) -> Result<Option<T>, ProcfsError> {
        match e {
            // ESRCH is the kernel saying the task itself is gone, not that
            // this one file is unavailable.
            Errno::ESRCH => Err(ProcfsError::Gone { pid: self.pid }),
            Errno::ENOENT | Errno::EACCES | Errno::EPERM => Ok(None),
            other => Err(self.io_error(name, other)),
        }
    }

    fn io_error(&self, name: &str, e: Errno) -> ProcfsError {
        ProcfsError::Io {
            path: self.path_of(name),
            source: e.into(),
        }
    }
}

/// Fields of `/proc/<pid>/stat` that the snapshot needs.
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    pid: u32,
    comm: String,
    ppid: u32,
    pgrp: u32,
    session: u32,
    tty_nr: u32,
    starttime_ticks: u64,
}

/// Parses `/proc/<pid>/stat`.
///
/// `comm` may itself contain spaces and ')' (a process picks its own name),
/// so the command ends at the LAST ')' in the line.
fn parse_stat(text: &str) -> Result<StatFields, &'static str> {
    let open = text.find('(').ok_or("no '(' before comm")?;
    let close = text.rfind(')').ok_or("no ')' after comm")?;
    if close < open {
        return Err("')' before '('");
    }
    let pid = text[..open]
        .trim()
        .parse::<u32>()
        .map_err(|_| "unparsable pid")?;
    let comm = text[open + 1..close].to_owned();
    // Index 0 here is field 3 (state) in proc(5) numbering.
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied().ok_or("too few fields");
    let ppid = field(4)?.parse::<u32>().map_err(|_| "unparsable ppid")?;
    let pgrp = field(5)?.parse::<u32>().map_err(|_| "unparsable pgrp")?;
    let session = field(6)?.parse::<u32>().map_err(|_| "unparsable session")?;
    // The kernel prints tty_nr as a signed int although it is an encoded
    // dev_t; reinterpret the bits rather than reject large majors.
    let tty_nr = field(7)?.parse::<i32>().map_err(|_| "unparsable tty_nr")? as u32;
    let starttime_ticks = field(22)?
        .parse::<u64>()
        .map_err(|_| "unparsable starttime")?;
    Ok(StatFields {
        pid,
        comm,
        ppid,
        pgrp,
        session,
        tty_nr,
        starttime_ticks,
    })
}

/// Fields of `/proc/<pid>/status` that the snapshot needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct StatusFields {
    uid: u32,
    euid: u32,
    gid: u32,
    egid: u32,
    /// Innermost namespace pid; `None` on kernels without `NSpid` (< 4.1).
    nspid: Option<u32>,
    cap_inh: u64,
    cap_prm: u64,
    cap_eff: u64,
}

/// Parses `/proc/<pid>/status`.
fn parse_status(text: &str) -> Result<StatusFields, &'static str> {
    let mut out = StatusFields::default();
    let (mut have_uid, mut have_gid) = (false, false);
    let (mut have_inh, mut have_prm, mut have_eff) = (false, false, false);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Uid" => {
                (out.uid, out.euid) = real_and_effective(value).ok_or("malformed Uid line")?;
                have_uid = true;
            }
            "Gid" => {
                (out.gid, out.egid) = real_and_effective(value).ok_or("malformed Gid line")?;
                have_gid = true;
            }
            "NSpid" => {
                let last = value.split_ascii_whitespace().last();
                out.nspid = Some(
                    last.and_then(|v| v.parse().ok())
                        .ok_or("malformed NSpid line")?,
                );
            }
            "CapInh" => {
                out.cap_inh = parse_hex_u64(value).ok_or("malformed CapInh line")?;
                have_inh = true;
            }
            "CapPrm" => {
                out.cap_prm = parse_hex_u64(value).ok_or("malformed CapPrm line")?;
                have_prm = true;
            }
            "CapEff" => {
                out.cap_eff = parse_hex_u64(value).ok_or("malformed CapEff line")?;
                have_eff = true;
            }
            _ => {}
        }
    }
    if !have_uid {
        return Err("no Uid line");
    }
    if !have_gid {
        return Err("no Gid line");
    }
    // Reporting an unknown capability set as "no capabilities" would hide
    // exactly what a security agent is meant to show, so these are required.
    if !(have_inh && have_prm && have_eff) {
        return Err("missing CapInh/CapPrm/CapEff line");
    }
    Ok(out)
}

/// Parses the "real effective saved fs" id quadruple of a Uid/Gid line.
fn real_and_effective(value: &str) -> Option<(u32, u32)> {
    let mut ids = value.split_ascii_whitespace().map(str::parse::<u32>);
    let real = ids.next()?.ok()?;
    let effective = ids.next()?.ok()?;
    Some((real, effective))
}

fn parse_hex_u64(value: &str) -> Option<u64> {
    u64::from_str_radix(value.trim(), 16).ok()
}

/// Parses `loginuid`, mapping the "unset" sentinel to `None`.
fn parse_loginuid(text: &str) -> Result<Option<u32>, &'static str> {
    let value = text
        .trim()
        .parse::<u32>()
        .map_err(|_| "unparsable loginuid")?;
    Ok((value != LOGINUID_UNSET).then_some(value))
}

/// Finds the cgroup v2 path (the `0::` line) in `/proc/<pid>/cgroup`.
fn parse_cgroup_v2(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    // The kernel marks a process whose cgroup was removed; the path is still
    // the one the process lives in.
    Some(path.strip_suffix(DELETED_SUFFIX).unwrap_or(path).to_owned())
}

/// Splits `cmdline` into arguments.
fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    // The terminating NUL would otherwise produce a phantom empty argument;
    // interior empty arguments are real and kept.
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Splits an `exe` link target into path and "was deleted" flag.
fn split_deleted(target: &str) -> (String, bool) {
    match target.strip_suffix(DELETED_SUFFIX) {
        Some(path) => (path.to_owned(), true),
        None => (target.to_owned(), false),
    }
}

/// Clock ticks per second used by `stat`'s time fields.
fn clock_ticks_per_sec() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK);
        // USER_HZ is 100 on every mainstream architecture; sysconf only fails
        // on exotic libcs, where a plausible value beats refusing to run.
        hz.ok()
            .flatten()
            .and_then(|hz| u64::try_from(hz).ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100)
    })
}

fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn malformed(dir: &PidDir, name: &str, reason: &'static str) -> ProcfsError {
    ProcfsError::Malformed {
        path: dir.path_of(name),
        reason,
    }
}

/// Reads a snapshot of process `pid` from `proc_root` (normally `/proc`).
///
/// Files that are legitimately unavailable (`exe`/`cwd` of kernel threads,
/// `loginuid` without audit, anything denied by ptrace checks) become `None`.
/// If the process exits while being read, the result is
/// [`ProcfsError::Gone`] rather than a partial snapshot.
pub fn read_process(proc_root: &Path, pid: u32) -> Result<ProcSnapshot, ProcfsError> {
    let dir = PidDir::open(proc_root, pid)?;

    let stat_text = lossy(&dir.read("stat")?);
    let stat = parse_stat(&stat_text).map_err(|r| malformed(&dir, "stat", r))?;
    if stat.pid != pid {
        return Err(malformed(
            &dir,
            "stat",
            "pid field does not match directory",
        ));
    }
    let status_text = lossy(&dir.read("status")?);
    let status = parse_status(&status_text).map_err(|r| malformed(&dir, "status", r))?;

    let argv = dir
        .read_optional("cmdline")?
        .map(|b| parse_cmdline(&b))
        .unwrap_or_default();
    let exe = dir.readlink_optional("exe")?;
    let (exepath, exe_deleted) = match exe {
        Some(target) => {
            let (path, deleted) = split_deleted(&target.to_string_lossy());
            (Some(path), deleted)
        }
        None => (None, false),
    };
    let cwd = dir
        .readlink_optional("cwd")?
        .map(|t| t.to_string_lossy().into_owned());
    let loginuid = match dir.read_optional("loginuid")? {
        Some(bytes) => {
            parse_loginuid(&lossy(&bytes)).map_err(|r| malformed(&dir, "loginuid", r))?
        }
        None => None,
    };
    let cgroup_text = dir.read_optional("cgroup")?.map(|b| lossy(&b));
    let cgroup_path = cgroup_text.as_deref().and_then(parse_cgroup_v2);
    let cgroup_container = cgroup_text
        .as_deref()
        .and_then(super::container::container_from_proc_cgroup);

    // A missing optional file is ambiguous: a kernel thread has no exe, but
    // neither does a process reaped halfway through this function. If the
    // process outlived every read above, all of them describe it.
    if !dir.is_alive() {
        return Err(ProcfsError::Gone { pid });
    }

    Ok(ProcSnapshot {
        pid,
        ppid: stat.ppid,
        comm: stat.comm,
        exepath,
        exe_deleted,
        argv,
        cwd,
        uid: status.uid,
        gid: status.gid,
        euid: status.euid,
        egid: status.egid,
        loginuid,
        tty: stat.tty_nr,
        sid: stat.session,
        pgid: stat.pgrp,
        vpid: status.nspid.unwrap_or(pid),
        start_boot_ns: ticks_to_ns(stat.starttime_ticks, clock_ticks_per_sec()),
        cgroup_path,
        cgroup_container,
        cap_effective: status.cap_eff,
        cap_permitted: status.cap_prm,
        cap_inheritable: status.cap_inh,
    })
}

/// The cgroup v2 path of process `pid` (the `0::` line of `/proc/<pid>/cgroup`), relative to
/// the cgroup2 mount as the reader's cgroup namespace sees it; `None` when the process is gone
/// or has no v2 line.
pub fn read_cgroup_path(proc_root: &Path, pid: u32) -> Option<String> {
    let bytes = PidDir::open(proc_root, pid)
        .ok()?
        .read_optional("cgroup")
        .ok()??;
    parse_cgroup_v2(&lossy(&bytes))
}

/// Lists the pids (numeric directories) under `proc_root`, ascending.
pub fn list_pids(proc_root: &Path) -> Result<Vec<u32>, ProcfsError> {
    let io_err = |source| ProcfsError::Io {
        path: proc_root.to_path_buf(),
        source,
    };
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(proc_root).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        // Leading '+' or zeros would parse as numbers but are never pid
        // directories; only canonical decimal names count.
        let bytes = name.as_bytes();
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) || bytes[0] == b'0' {
            continue;
        }
        if let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Reads what file descriptor `fd` of process `pid` refers to, e.g.
/// `/etc/passwd`, `socket:[12345]`, `pipe:[77]` or `anon_inode:[eventfd]`.
pub fn read_fd_target(proc_root: &Path, pid: u32, fd: i32) -> Result<String, ProcfsError> {
    let dir = PidDir::open(proc_root, pid)?;
    let name = format!("fd/{fd}");
    match dir.readlink(&name) {
        Ok(target) => Ok(target.to_string_lossy().into_owned()),
        // ENOENT is either "fd closed" or "process reaped"; only the latter
        // makes the pid directory disappear.
        Err(ProcfsError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            if dir.is_alive() {
                Err(ProcfsError::NoSuchFd { pid, fd })
            } else {
                Err(ProcfsError::Gone { pid })
            }
        }
        Err(e) => Err(e),
    }
}

/// Extracts the inode number from a `socket:[12345]` fd target.
pub fn socket_inode(target: &str) -> Option<u64> {
    let digits = target.strip_prefix("socket:[")?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    const STAT_SIMPLE: &str = "4242 (bash) S 4000 4242 4242 34816 4300 4194560 2000 \
        9000 0 3 5 2 20 7 20 0 1 0 52759 9658368 1290 18446744073709551615 1 1 0 0 0 0 \
        65536 3686404 1266761467 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    const STATUS: &str = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        Ngid:\t0\nPid:\t4242\nPPid:\t4000\nTracerPid:\t0\nUid:\t1000\t1001\t1002\t1003\n\
        Gid:\t2000\t2001\t2002\t2003\nFDSize:\t256\nGroups:\t27 1000 \nNStgid:\t4242\t17\n\
        NSpid:\t4242\t17\nNSpgid:\t4242\t17\nNSsid:\t4242\t17\nCapInh:\t0000000000000000\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t0\n";

    /// Builds a fake `/proc/<pid>` directory.
    struct Fixture {
        root: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                root: tempfile::tempdir().unwrap(),
            }
        }

        fn pid_dir(&self, pid: u32) -> PathBuf {
            let dir = self.root.path().join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            dir
        }

        fn write(&self, pid: u32, name: &str, contents: &[u8]) {
            fs::write(self.pid_dir(pid).join(name), contents).unwrap();
        }

        fn link(&self, pid: u32, name: &str, target: &str) {
            symlink(target, self.pid_dir(pid).join(name)).unwrap();
        }

        /// A complete, ordinary user process.
        fn full(&self, pid: u32) {
            self.write(
                pid,
                "stat",
                STAT_SIMPLE
                    .replace("4242 (", &format!("{pid} ("))
                    .as_bytes(),
            );
            self.write(pid, "status", STATUS.as_bytes());
            self.write(pid, "cmdline", b"bash\0-c\0echo hi there\0");
            self.write(pid, "loginuid", b"1000");
            self.write(
                pid,
                "cgroup",
                b"1:name=systemd:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n",
            );
            self.link(pid, "exe", "/usr/bin/bash");
            self.link(pid, "cwd", "/home/me");
        }

        fn path(&self) -> &Path {
            self.root.path()
        }
    }

    #[test]
    fn stat_simple() {
        let s = parse_stat(STAT_SIMPLE).unwrap();
        assert_eq!(
            s,
            StatFields {
                pid: 4242,
                comm: "bash".into(),
                ppid: 4000,
                pgrp: 4242,
                session: 4242,
                tty_nr: 34816,
                starttime_ticks: 52759,
            }
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let line = STAT_SIMPLE.replace("(bash)", "(a) S 1 (b) c)");
        let s = parse_stat(&line).unwrap();
        assert_eq!(s.comm, "a) S 1 (b) c");
        assert_eq!(s.ppid, 4000);
        assert_eq!(s.starttime_ticks, 52759);
    }

    #[test]
    fn stat_empty_comm_and_negative_tty() {
        let line = STAT_SIMPLE
            .replace("(bash)", "()")
            .replace(" 34816 ", " -1 ");
        let s = parse_stat(&line).unwrap();
        assert_eq!(s.comm, "");
        assert_eq!(s.tty_nr, u32::MAX);
    }

    #[test]
    fn stat_rejects_garbage() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("12 bash S 1").is_err());
        assert!(parse_stat("12 (bash) S 1 2 3").is_err(), "truncated");
        assert!(parse_stat(") 12 (bash").is_err());
        assert!(parse_stat(&STAT_SIMPLE.replace(" 52759 ", " x ")).is_err());
        assert!(parse_stat(&STAT_SIMPLE.replace("4242 (", "abc (")).is_err());
    }

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!((s.uid, s.euid, s.gid, s.egid), (1000, 1001, 2000, 2001));
        assert_eq!(s.nspid, Some(17));
        assert_eq!(s.cap_inh, 0);
        assert_eq!(s.cap_prm, 0xa80425fb);
        assert_eq!(s.cap_eff, 0x1fffeffffff);
    }

    #[test]
    fn status_without_nspid_is_fine_but_missing_ids_or_caps_are_not() {
        let no_nspid: String = STATUS
            .lines()
            .filter(|l| !l.starts_with("NSpid"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_status(&no_nspid).unwrap().nspid, None);
        for key in ["Uid:", "Gid:", "CapEff:", "CapPrm:", "CapInh:"] {
            let text: String = STATUS
                .lines()
                .filter(|l| !l.starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(parse_status(&text).is_err(), "{key} missing must fail");
        }
        assert!(parse_status(&STATUS.replace("Uid:\t1000", "Uid:\tx")).is_err());
        assert!(parse_status(&STATUS.replace("CapEff:\t000001", "CapEff:\tzz")).is_err());
    }

    #[test]
    fn cmdline_splitting() {
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"ls\0-l\0"), vec!["ls", "-l"]);
        assert_eq!(parse_cmdline(b"a\0\0b\0"), vec!["a", "", "b"]);
        // setproctitle-style rewrites drop the NULs entirely.
        assert_eq!(
            parse_cmdline(b"nginx: worker process"),
            vec!["nginx: worker process"]
        );
        assert_eq!(parse_cmdline(b"\xff\0"), vec!["\u{fffd}"]);
    }

    #[test]
    fn loginuid_and_cgroup_parsing() {
        assert_eq!(parse_loginuid("1000"), Ok(Some(1000)));
        assert_eq!(parse_loginuid("4294967295"), Ok(None));
        assert!(parse_loginuid("-1").is_err());
        assert_eq!(parse_cgroup_v2("0::/\n"), Some("/".into()));
        assert_eq!(
            parse_cgroup_v2("0::/system.slice/foo.service (deleted)\n"),
            Some("/system.slice/foo.service".into())
        );
        assert_eq!(parse_cgroup_v2("3:cpu:/x\n"), None);
        assert_eq!(parse_cgroup_v2("10::/x\n"), None, "only hierarchy 0 is v2");
    }

    #[test]
    fn ticks_conversion() {
        assert_eq!(ticks_to_ns(52759, 100), 527_590_000_000);
        assert_eq!(ticks_to_ns(3, 300), 10_000_000);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn read_process_from_fixture() {
        let fx = Fixture::new();
        fx.full(4242);
        let p = read_process(fx.path(), 4242).unwrap();
        let hz = clock_ticks_per_sec();
        assert_eq!(
            p,
            ProcSnapshot {
                pid: 4242,
                ppid: 4000,
                comm: "bash".into(),
                exepath: Some("/usr/bin/bash".into()),
                exe_deleted: false,
                argv: vec!["bash".into(), "-c".into(), "echo hi there".into()],
                cwd: Some("/home/me".into()),
                uid: 1000,
                gid: 2000,
                euid: 1001,
                egid: 2001,
                loginuid: Some(1000),
                tty: 34816,
                sid: 4242,
                pgid: 4242,
                vpid: 17,
                start_boot_ns: ticks_to_ns(52759, hz),
                cgroup_path: Some("/user.slice/user-1000.slice/session-3.scope".into()),
                cgroup_container: None,
                cap_effective: 0x1fffeffffff,
                cap_permitted: 0xa80425fb,
                cap_inheritable: 0,
            }
        );
    }

    #[test]
    fn read_process_deleted_exe() {
        let fx = Fixture::new();
        fx.full(7);
        fs::remove_file(fx.path().join("7/exe")).unwrap();
        fx.link(7, "exe", "/tmp/x (deleted)");
        let p = read_process(fx.path(), 7).unwrap();
        assert_eq!(p.exepath.as_deref(), Some("/tmp/x"));
        assert!(p.exe_deleted);
    }

    #[test]
    fn read_process_kernel_thread_like() {
        // Kernel threads: no exe, empty cmdline, no loginuid file.
        let fx = Fixture::new();
        fx.write(
            2,
            "stat",
            STAT_SIMPLE
                .replace("4242 (bash)", "2 (kthreadd)")
                .as_bytes(),
        );
        fx.write(
            2,
            "status",
            STATUS.replace("NSpid:\t4242\t17", "NSpid:\t2").as_bytes(),
        );
        fx.write(2, "cmdline", b"");
        fx.write(2, "cgroup", b"0::/\n");
        fx.link(2, "cwd", "/");
        let p = read_process(fx.path(), 2).unwrap();
        assert_eq!(p.exepath, None);
        assert!(!p.exe_deleted);
        assert!(p.argv.is_empty());
        assert_eq!(p.loginuid, None);
        assert_eq!(p.vpid, 2);
        assert_eq!(p.cgroup_path.as_deref(), Some("/"));
    }

    #[test]
    fn read_process_missing_and_malformed() {
        let fx = Fixture::new();
        assert!(matches!(
            read_process(fx.path(), 99),
            Err(ProcfsError::Gone { pid: 99 })
        ));

        fx.full(5);
        fx.write(5, "loginuid", b"4294967295\n");
        assert_eq!(read_process(fx.path(), 5).unwrap().loginuid, None);

        fx.write(5, "status", b"Name:\tx\n");
        match read_process(fx.path(), 5) {
            Err(ProcfsError::Malformed { path, .. }) => assert!(path.ends_with("5/status")),
            other => panic!("expected Malformed, got {other:?}"),
        }

        fx.full(6);
        fx.write(6, "stat", STAT_SIMPLE.as_bytes());
        assert!(
            matches!(
                read_process(fx.path(), 6),
                Err(ProcfsError::Malformed { .. })
            ),
            "stat for a different pid must be rejected"
        );

        fx.full(8);
        fx.write(8, "loginuid", b"garbage");
        assert!(matches!(
            read_process(fx.path(), 8),
            Err(ProcfsError::Malformed { .. })
        ));
    }

    #[test]
    fn list_pids_only_numeric_dirs() {
        let fx = Fixture::new();
        for pid in [300, 1, 42] {
            fx.pid_dir(pid);
        }
        for name in ["self", "sys", "12abc", "007", "0"] {
            fs::create_dir(fx.path().join(name)).unwrap();
        }
        fs::write(fx.path().join("uptime"), "1 2").unwrap();
        assert_eq!(list_pids(fx.path()).unwrap(), vec![1, 42, 300]);
        assert!(matches!(
            list_pids(&fx.path().join("nope")),
            Err(ProcfsError::Io { .. })
        ));
    }

    #[test]
    fn fd_targets_from_fixture() {
        let fx = Fixture::new();
        fx.full(10);
        fx.link(10, "fd/3", "socket:[12345]");
        fx.link(10, "fd/4", "pipe:[77]");
        fx.link(10, "fd/5", "anon_inode:[eventfd]");
        assert_eq!(read_fd_target(fx.path(), 10, 3).unwrap(), "socket:[12345]");
        assert_eq!(read_fd_target(fx.path(), 10, 4).unwrap(), "pipe:[77]");
        assert_eq!(
            read_fd_target(fx.path(), 10, 5).unwrap(),
            "anon_inode:[eventfd]"
        );
        assert!(matches!(
            read_fd_target(fx.path(), 10, 9),
            Err(ProcfsError::NoSuchFd { pid: 10, fd: 9 })
        ));
        assert!(matches!(
            read_fd_target(fx.path(), 11, 0),
            Err(ProcfsError::Gone { pid: 11 })
        ));
    }

    #[test]
    fn socket_inode_parsing() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("socket:[0]"), Some(0));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[]"), None);
        assert_eq!(socket_inode("socket:[+5]"), None);
        assert_eq!(socket_inode("socket:[12a]"), None);
        assert_eq!(socket_inode("socket:[99999999999999999999999]"), None);
        assert_eq!(socket_inode("/tmp/socket:[1]"), None);
    }

    #[test]
    fn real_proc_self() {
        let proc = Path::new("/proc");
        let pid = std::process::id();
        let p = read_process(proc, pid).unwrap();
        assert_eq!(p.pid, pid);
        assert_eq!(p.ppid, nix::unistd::getppid().as_raw() as u32);
        assert_eq!(p.uid, nix::unistd::getuid().as_raw());
        assert_eq!(p.euid, nix::unistd::geteuid().as_raw());
        assert_eq!(p.sid, nix::unistd::getsid(None).unwrap().as_raw() as u32);
        assert_eq!(p.pgid, nix::unistd::getpgrp().as_raw() as u32);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(p.exepath.as_deref(), exe.to_str());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(p.cwd.as_deref(), cwd.to_str());
        let args: Vec<String> = std::env::args().collect();
        assert_eq!(p.argv, args);
        assert!(p.start_boot_ns > 0);
        let v2 = fs::read_to_string("/proc/self/cgroup")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("0::"));
        assert_eq!(p.cgroup_path.is_some(), v2);
        assert!(list_pids(proc).unwrap().contains(&pid));
    }

    #[test]
    fn real_fd_target() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let target = read_fd_target(
            Path::new("/proc"),
            std::process::id(),
            file.as_file().as_raw_fd(),
        )
        .unwrap();
        assert_eq!(Path::new(&target), file.path());
    }

    #[test]
    fn real_process_that_exits_is_gone() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let proc = Path::new("/proc");
        let dir = PidDir::open(proc, pid).unwrap();
        assert_eq!(read_process(proc, pid).unwrap().pid, pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!dir.is_alive());
        assert!(matches!(dir.read("status"), Err(ProcfsError::Gone { .. })));
        assert!(matches!(
            read_process(proc, pid),
            Err(ProcfsError::Gone { .. })
        ));
        assert!(matches!(
            read_fd_target(proc, pid, 0),
            Err(ProcfsError::Gone { .. })
        ));
    }

    #[test]
    fn real_nonexistent_pid_is_gone() {
        // pid_max can never exceed 2^22, so this pid cannot exist.
        assert!(matches!(
            read_process(Path::new("/proc"), 4_000_000_000),
            Err(ProcfsError::Gone { pid: 4_000_000_000 })
        ));
    }
}

/// The environment of `pid` (`/proc/<pid>/environ`), one `NAME=value` entry per element.
pub fn read_environ(proc_root: &Path, pid: u32) -> Result<Vec<String>, ProcfsError> {
    let bytes = PidDir::open(proc_root, pid)?.read("environ")?;
    Ok(bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect())
}

/// Change and modification times (ns since the epoch) of the executable `pid` runs, read
/// through `/proc/<pid>/exe` so a replaced or deleted file still reports the running image.
pub fn exe_times(proc_root: &Path, pid: u32) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(proc_root.join(pid.to_string()).join("exe")).ok()?;
    let ns = |secs: i64, nsecs: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsecs);
    Some((
        ns(meta.ctime(), meta.ctime_nsec()),
        ns(meta.mtime(), meta.mtime_nsec()),
    ))
}

#[cfg(test)]
mod environ_tests {
    use super::*;

    #[test]
    fn reads_own_environment_and_exe_times() {
        let env = read_environ(Path::new("/proc"), std::process::id()).unwrap();
        assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
        let (ctime, mtime) = exe_times(Path::new("/proc"), std::process::id()).unwrap();
        assert!(ctime > 1_500_000_000_000_000_000 && mtime > 1_500_000_000_000_000_000);
        assert!(matches!(
            read_environ(Path::new("/proc"), u32::MAX - 1),
            Err(ProcfsError::Gone { .. })
        ));
    }
}

/// The overlayfs upper directory of `pid`'s root filesystem, when the process runs on an
/// overlay root (a container), read from `/proc/<pid>/mountinfo`.
pub fn root_overlay_upperdir(proc_root: &Path, pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("mountinfo")).ok()?;
    overlay_upperdir_of_root(&text)
}

fn overlay_upperdir_of_root(mountinfo: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    // The last mount on "/" wins: later lines stack on earlier ones.
    let root = mountinfo
        .lines()
        .rfind(|line| line.split_whitespace().nth(4) == Some("/"))?;
    let (_, after) = root.split_once(" - ")?;
    let mut fields = after.split_whitespace();
    if fields.next()? != "overlay" {
        return None;
    }
    let options = fields.nth(1)?;
    let upper = options
        .split(',')
        .find_map(|o| o.strip_prefix("upperdir="))?;
    Some(PathBuf::from(std::ffi::OsString::from_vec(
        crate::host::mounts::unescape(upper),
    )))
}

#[cfg(test)]
mod overlay_tests {
    use super::*;

    #[test]
    fn finds_the_upperdir_of_an_overlay_root() {
        let mountinfo = "\
1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw
2 1 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/w
3 2 0:51 / /proc rw - proc proc rw
";
        assert_eq!(
            overlay_upperdir_of_root(mountinfo),
            Some(PathBuf::from("/var/lib/docker/overlay2/abc/diff"))
        );
        assert_eq!(
            overlay_upperdir_of_root("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"),
            None
        );
        assert_eq!(
            overlay_upperdir_of_root(
                "1 0 0:50 / / rw - overlay overlay rw,upperdir=/a\\040b/diff,workdir=/w\n"
            ),
            Some(PathBuf::from("/a b/diff"))
        );
    }
}

//! Enrichment: applies each decoded event to the process and fd state, then attaches what the
//! state knows (process, ancestors, fd, user names, container) to the event.

use std::{num::NonZeroUsize, path::PathBuf, sync::Arc};

use crate::{
    clock::BootClock,
    events::{
        Event, EventKind, ParamValue, SyscallEvent,
        sockaddr::SockAddr,
        syscalls::{OPENS, Syscall},
    },
    state::{
        cgroups::CgroupResolver,
        container_meta::{ContainerMeta, ContainerMetaCache, RuntimeRoots},
        fd::{self, FdInfo, FdType},
        intern::empty_list,
        paths,
        process::{ProcessEntry, ProcessInfo, ProcessTable, Strings},
        users::UserDb,
    },
};

const AT_FDCWD: i32 = -100;
const EINPROGRESS: i64 = -(libc::EINPROGRESS as i64);

/// Where state comes from and how much of it to keep.
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// The procfs root (normally `/proc`).
    pub proc_root: PathBuf,
    /// The cgroup v2 mount.
    pub cgroup_root: PathBuf,
    /// Most processes tracked.
    pub max_processes: NonZeroUsize,
    /// Read each process's environment at exec (`proc.env`); off unless a rule needs it.
    pub capture_env: bool,
    /// Where container runtimes keep their state (metadata of containers).
    pub runtime_roots: RuntimeRoots,
}

/// The fd an event is about, as the state knows it after the event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventFd {
    /// The fd number.
    pub num: i32,
    /// What it refers to, if known.
    pub info: Option<FdInfo>,
}

impl EventFd {
    /// The file name without its directory (Falco's `fd.filename`). None for a failed open,
    /// whose fd (-1) names only the path it tried: libsinsp does not recover the name there.
    pub fn filename(&self) -> Option<&str> {
        if self.num < 0 {
            return None;
        }
        self.info.as_ref()?.filename()
    }
}

/// An event with the state attached.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Enriched {
    /// Sequence number, from 1.
    pub num: u64,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The decoded event.
    pub event: Event,
    /// The process, as it is after the event.
    pub process: Arc<ProcessInfo>,
    /// Its parent, grandparent, ... as far as known.
    pub ancestors: Vec<Arc<ProcessInfo>>,
    /// The fd the event is about.
    pub fd: Option<EventFd>,
    /// Name of the process's uid.
    pub user_name: Option<Arc<str>>,
    /// Name of the process's gid.
    pub group_name: Option<Arc<str>>,
    /// Name of the process's login uid.
    pub login_name: Option<Arc<str>>,
    /// What the container runtime says about the process's container.
    pub container_meta: Option<Arc<ContainerMeta>>,
}

/// Owns the state and enriches events in arrival order.
pub struct Enricher {
    capture_env: bool,
    processes: ProcessTable,
    cgroups: CgroupResolver,
    users: UserDb,
    containers: ContainerMetaCache,
    clock: BootClock,
    next_num: u64,
}

impl Enricher {
    /// An enricher with empty state.
    pub fn new(config: StateConfig) -> Enricher {
        Enricher {
            capture_env: config.capture_env,
            processes: ProcessTable::new(config.proc_root, config.max_processes),
            cgroups: CgroupResolver::new(config.cgroup_root),
            users: UserDb::new(),
            containers: ContainerMetaCache::new(config.runtime_roots, 4096),
            clock: BootClock::now(),
            next_num: 1,
        }
    }

    /// Loads every running process from /proc; returns how many.
    pub fn seed(&mut self) -> usize {
        self.processes.seed(&mut self.cgroups, self.capture_env)
    }

    /// Number of processes tracked.
    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    /// `(pid, ppid)` of every tracked process.
    pub fn parent_links(&self) -> Vec<(u32, u32)> {
        self.processes.parent_links()
    }

    /// The facts of `pid`, if tracked.
    pub fn process(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.processes.peek(pid)
    }

    /// Applies `event` to the state and returns it enriched.
    pub fn enrich(&mut self, event: Event) -> Enriched {
        let num = self.next_num;
        self.next_num += 1;
        let time_ns = self.clock.to_unix_ns(event.task.ts_boot_ns);
        let task = &event.task;
        let mut fd = None;
        let process = match &event.kind {
            EventKind::Fork {
                child_pid,
                child_ppid,
            } => {
                self.processes
                    .fork(task, *child_pid, *child_ppid, &mut self.cgroups);
                Arc::clone(&self.processes.entry(task, &mut self.cgroups).info)
            }
            EventKind::Exec { filename, .. } => {
                let root = self.processes.proc_root().to_path_buf();
                let (entry, strings) = self.processes.entry_and_strings(task, &mut self.cgroups);
                apply_exec(entry, strings, &root, task.pid, filename, self.capture_env);
                Arc::clone(&entry.info)
            }
            EventKind::Exit => {
                let info = Arc::clone(&self.processes.entry(task, &mut self.cgroups).info);
                self.processes.remove(task.pid);
                info
            }
            EventKind::Egress(_) | EventKind::Dns(_) => {
                Arc::clone(&self.processes.entry(task, &mut self.cgroups).info)
            }
            EventKind::Syscall(call) => {
                let root = self.processes.proc_root().to_path_buf();
                let (entry, strings) = self.processes.entry_and_strings(task, &mut self.cgroups);
                fd = apply_syscall(entry, strings, &root, task.pid, call);
                Arc::clone(&entry.info)
            }
        };
        let ancestors = self.processes.ancestors(&process);
        let user_name = self.users.user_name(process.uid);
        let group_name = self.users.group_name(process.gid);
        let login_name = process.loginuid.and_then(|uid| self.users.user_name(uid));
        let container_meta = process
            .container
            .as_ref()
            .and_then(|container| self.containers.get(container));
        Enriched {
            num,
            time_ns,
            event,
            process,
            ancestors,
            fd,
            user_name,
            group_name,
            login_name,
            container_meta,
        }
    }
}

fn apply_exec(
    entry: &mut ProcessEntry,
    strings: &mut Strings,
    proc_root: &std::path::Path,
    pid: u32,
    filename: &str,
    capture_env: bool,
) {
    let fresh = crate::state::procfs::read_process(proc_root, pid).ok();
    // Executing an fd (fexecve, execveat with AT_EMPTY_PATH) names it /dev/fd/N or
    // /proc/self/fd/N: the fd table knows what it is even when /proc is already gone.
    let executed_fd = fd_in_path(filename)
        .and_then(|fd| entry.fds.get(fd))
        .map(|info| (info.kind, info.name.clone()));
    let info = entry.info_mut();
    match fresh {
        Some(snapshot) => {
            info.exepath = strings.text(snapshot.exepath.as_deref().unwrap_or(filename));
            info.caps.effective = snapshot.cap_effective;
            info.caps.permitted = snapshot.cap_permitted;
            info.caps.inheritable = snapshot.cap_inheritable;
            info.euid = snapshot.euid;
            info.egid = snapshot.egid;
            // A login or `docker exec -t` may have given the process a terminal or session
            // since we first saw it.
            info.tty = snapshot.tty;
            info.sid = snapshot.sid;
            info.pgid = snapshot.pgid;
            info.loginuid = snapshot.loginuid;
            if let Some(cwd) = snapshot.cwd {
                info.cwd = strings.text(&cwd);
            }
            // On a hybrid host a v1-only runtime moves processes between v1 cgroups, which
            // the v2 cgroup id never shows: an exec is when a container's process starts.
            if snapshot.cgroup_container.is_some() {
                info.container = snapshot.cgroup_container;
            }
            // Until the execve record brings argv, /proc's is the best we have.
            let mut argv = snapshot.argv;
            if !argv.is_empty() {
                info.exe = strings.text(&argv.remove(0));
                info.args = strings.list(argv);
            }
        }
        None => match &executed_fd {
            Some((FdType::Memfd, name)) => {
                info.exepath = strings.text(&format!("/{} (deleted)", name));
            }
            Some((_, name)) if name.starts_with('/') => info.exepath = strings.text(name),
            _ => info.exepath = strings.text(&paths::resolve(&info.cwd, filename)),
        },
    }
    info.exe_from_memfd =
        info.exepath.starts_with("/memfd:") || matches!(executed_fd, Some((FdType::Memfd, _)));
    info.exe_ctime_ns = None;
    info.exe_mtime_ns = None;
    info.env = empty_list();
    crate::state::process::attach_exe_details(info, proc_root, capture_env);
    entry.fds.close_on_exec();
}

/// The fd number in `/dev/fd/N` or `/proc/self/fd/N`.
fn fd_in_path(path: &str) -> Option<i32> {
    path.strip_prefix("/dev/fd/")
        .or_else(|| path.strip_prefix("/proc/self/fd/"))
        .and_then(|n| n.parse().ok())
}

/// Updates the fd table and process facts for a completed syscall; returns the event's fd.
fn apply_syscall(
    entry: &mut ProcessEntry,
    strings: &mut Strings,
    proc_root: &std::path::Path,
    pid: u32,
    call: &SyscallEvent,
) -> Option<EventFd> {
    let event_fd = event_fd_number(call);
    // Make sure the fds this call reads exist in the table, even if opened before we started.
    for param in call.spec.params {
        if param.kind == crate::events::syscalls::Kind::Fd
            && param.source != crate::events::syscalls::Source::Ret
            && let ParamValue::Num(raw) = call.value(param)
        {
            ensure_fd(entry, proc_root, pid, raw as i32);
        }
    }
    let mut closed = None;
    if call.succeeded() || (call.spec.syscall == Syscall::Connect && call.ret == EINPROGRESS) {
        closed = apply_success(entry, strings, call);
    } else if OPENS.contains(&call.spec.syscall) {
        // A failed open still names the file it tried, as Falco's does: no fd (-1), the path.
        return Some(EventFd {
            num: -1,
            info: Some(file_opened(entry, call)),
        });
    }
    let num = event_fd?;
    let info = closed.or_else(|| entry.fds.get(num).cloned());
    Some(EventFd { num, info })
}

fn ensure_fd(entry: &mut ProcessEntry, proc_root: &std::path::Path, pid: u32, fd: i32) {
    if fd < 0 || entry.fds.get(fd).is_some() {
        return;
    }
    let info = fd::resolve_from_procfs(proc_root, pid, fd)
        .unwrap_or_else(|| FdInfo::other(FdType::Unknown, String::new()));
    entry.fds.insert(fd, info);
}

/// The fd an event is about: Falco's `fd.num`, the parameter called `fd`.
fn event_fd_number(call: &SyscallEvent) -> Option<i32> {
    let param = call.spec.param("fd")?;
    match call.value(param) {
        ParamValue::Num(raw) => {
            let fd = raw as i64;
            (fd >= 0).then_some(fd as i32)
        }
        _ => None,
    }
}

fn str_param<'a>(call: &'a SyscallEvent, name: &str) -> &'a str {
    match call.param(name) {
        Some(ParamValue::Str(value)) => value,
        _ => "",
    }
}

fn num_param(call: &SyscallEvent, name: &str) -> u64 {
    match call.param(name) {
        Some(ParamValue::Num(value)) => value,
        _ => 0,
    }
}

/// The directory a path argument is relative to.
fn base_dir(entry: &ProcessEntry, dirfd: Option<i32>) -> &str {
    match dirfd {
        Some(fd) if fd != AT_FDCWD => entry
            .fds
            .get(fd)
            .map_or(entry.info.cwd.as_str(), |info| info.name.as_str()),
        _ => entry.info.cwd.as_str(),
    }
}

fn resolved(entry: &ProcessEntry, call: &SyscallEvent, name: &str) -> String {
    let raw = str_param(call, name);
    let dirfd = match call.spec.param(name).map(|p| p.kind) {
        Some(crate::events::syscalls::Kind::Path { dirfd: Some(arg) }) => {
            Some(call.arg_fd(usize::from(arg)))
        }
        _ => None,
    };
    paths::resolve(base_dir(entry, dirfd), raw)
}

/// The file an open names: its resolved path, the path as passed, the open flags.
fn file_opened(entry: &ProcessEntry, call: &SyscallEvent) -> FdInfo {
    let flags = if call.spec.syscall == Syscall::Creat {
        (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64
    } else {
        num_param(call, "flags")
    };
    let path = resolved(entry, call, "name");
    let raw = str_param(call, "name").to_string();
    FdInfo::file(path, raw, flags)
}

/// Applies a successful call; returns the fd info a `close` removed.
fn apply_success(
    entry: &mut ProcessEntry,
    strings: &mut Strings,
    call: &SyscallEvent,
) -> Option<FdInfo> {
    let ret = call.ret;
    let new_fd = ret as i32;
    match call.spec.syscall {
        Syscall::Open | Syscall::Openat | Syscall::Openat2 | Syscall::Creat => {
            let info = file_opened(entry, call);
            entry.fds.insert(new_fd, info);
        }
        Syscall::Socket => {
            let sock_type = num_param(call, "type");
            let cloexec = sock_type & libc::SOCK_CLOEXEC as u64 != 0;
            let info = FdInfo::socket(num_param(call, "domain"), sock_type, cloexec);
            entry.fds.insert(new_fd, info);
        }
        Syscall::Connect | Syscall::Bind => {
            let fd = call.arg_fd(0);
            let is_connect = call.spec.syscall == Syscall::Connect;
            if let (Some(info), Some(addr)) = (entry.fds.get_mut(fd), call.sockaddr.as_ref()) {
                set_endpoint(info, addr, is_connect);
                if let (Some(local), Some(socket)) = (call.local_address(), info.socket.as_mut()) {
                    socket.local = Some(local);
                    info.refresh_socket_name();
                }
            }
        }
        Syscall::Listen => {
            if let Some(socket) = entry
                .fds
                .get_mut(call.arg_fd(0))
                .and_then(|info| info.socket.as_mut())
            {
                socket.is_server = true;
            }
        }
        Syscall::Accept | Syscall::Accept4 => {
            let listener = entry.fds.get(call.arg_fd(0)).cloned();
            let flags = num_param(call, "flags");
            let mut info = listener.unwrap_or_else(|| {
                FdInfo::socket(libc::AF_INET as u64, libc::SOCK_STREAM as u64, false)
            });
            info.cloexec = flags & libc::SOCK_CLOEXEC as u64 != 0;
            if let Some(socket) = info.socket.as_mut() {
                socket.is_server = true;
                socket.remote = match &call.sockaddr {
                    Some(SockAddr::Inet(addr)) => Some(*addr),
                    _ => None,
                };
            }
            info.refresh_socket_name();
            entry.fds.insert(new_fd, info);
        }
        Syscall::Dup => entry.fds.duplicate(call.arg_fd(0), new_fd, false),
        // dup2 of an fd onto itself changes nothing (and must not clear close-on-exec).
        Syscall::Dup2 if call.arg_fd(0) == new_fd => {}
        Syscall::Dup2 => entry.fds.duplicate(call.arg_fd(0), new_fd, false),
        Syscall::Dup3 => {
            let cloexec = call.args[2] & libc::O_CLOEXEC as u64 != 0;
            entry.fds.duplicate(call.arg_fd(0), new_fd, cloexec);
        }
        Syscall::Fcntl => match call.args[1] as i32 {
            libc::F_DUPFD => entry.fds.duplicate(call.arg_fd(0), new_fd, false),
            libc::F_DUPFD_CLOEXEC => entry.fds.duplicate(call.arg_fd(0), new_fd, true),
            libc::F_SETFD => {
                if let Some(info) = entry.fds.get_mut(call.arg_fd(0)) {
                    info.cloexec = call.args[2] & libc::FD_CLOEXEC as u64 != 0;
                }
            }
            _ => {}
        },
        Syscall::Close => return entry.fds.remove(call.arg_fd(0)),
        Syscall::MemfdCreate => {
            let name = format!("memfd:{}", str_param(call, "name"));
            let cloexec = call.args[1] & libc::MFD_CLOEXEC as u64 != 0;
            let mut info = FdInfo::other(FdType::Memfd, name);
            info.cloexec = cloexec;
            entry.fds.insert(new_fd, info);
        }
        Syscall::Chdir => {
            let path = resolved(entry, call, "path");
            entry.info_mut().cwd = strings.text(&path);
        }
        Syscall::Fchdir => {
            if let Some(path) = entry
                .fds
                .get(call.arg_fd(0))
                .map(|info| strings.text(&info.name))
            {
                entry.info_mut().cwd = path;
            }
        }
        Syscall::Execve | Syscall::Execveat => {
            let info = entry.info_mut();
            let mut argv = call.argv.iter();
            if let Some(first) = argv.next() {
                info.exe = strings.text(first);
            }
            info.args = strings.list(argv.cloned().collect());
        }
        _ => {}
    }
    None
}

fn set_endpoint(info: &mut FdInfo, addr: &SockAddr, is_connect: bool) {
    let Some(socket) = info.socket.as_mut() else {
        return;
    };
    match addr {
        SockAddr::Inet(addr) if is_connect => socket.remote = Some(*addr),
        SockAddr::Inet(addr) => socket.local = Some(*addr),
        SockAddr::Unix(path) => socket.unix_path = Some(path.clone()),
        _ => {}
    }
    info.refresh_socket_name();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        decode::decode,
        synth::{RecordBuilder, inet_sockaddr},
    };

    fn enricher() -> Enricher {
        crate::testing::detached_enricher()
    }

    fn run(enricher: &mut Enricher, record: RecordBuilder) -> Enriched {
        enricher.enrich(decode(&record.build()).unwrap())
    }

    #[test]
    fn open_resolves_relative_paths_against_cwd_and_dirfd() {
        let mut e = enricher();
        run(
            &mut e,
            RecordBuilder::new(Syscall::Chdir, 50, 0).string(0, "/etc"),
        );
        let opened = run(
            &mut e,
            RecordBuilder::new(Syscall::Openat, 50, 3)
                .arg(0, AT_FDCWD as i64 as u64)
                .string(0, "ssh/../hostname"),
        );
        let fd = opened.fd.unwrap();
        assert_eq!(fd.num, 3);
        let info = fd.info.unwrap();
        assert_eq!(info.name, "/etc/hostname");
        assert_eq!(info.nameraw, "ssh/../hostname");
        assert_eq!(info.kind.typechar(), 'f');

        run(
            &mut e,
            RecordBuilder::new(Syscall::Openat, 50, 4)
                .arg(0, AT_FDCWD as i64 as u64)
                .arg(2, libc::O_DIRECTORY as u64)
                .string(0, "/var/log"),
        );
        let relative = run(
            &mut e,
            RecordBuilder::new(Syscall::Openat, 50, 5)
                .arg(0, 4)
                .string(0, "syslog"),
        );
        assert_eq!(relative.fd.unwrap().info.unwrap().name, "/var/log/syslog");
    }

    #[test]
    fn socket_connect_dup2_close() {
        let mut e = enricher();
        run(
            &mut e,
            RecordBuilder::new(Syscall::Socket, 60, 3)
                .arg(0, libc::AF_INET as u64)
                .arg(1, libc::SOCK_STREAM as u64),
        );
        let connected = run(
            &mut e,
            RecordBuilder::new(Syscall::Connect, 60, 0)
                .arg(0, 3)
                .sockaddr(&inet_sockaddr([127, 0, 0, 1], 4444)),
        );
        let info = connected.fd.unwrap().info.unwrap();
        assert_eq!(info.name, "0.0.0.0:0->127.0.0.1:4444");
        assert_eq!(
            info.socket.unwrap().server(),
            Some("127.0.0.1:4444".parse().unwrap())
        );

        let duped = run(
            &mut e,
            RecordBuilder::new(Syscall::Dup2, 60, 1).arg(0, 3).arg(1, 1),
        );
        let fd = duped.fd.unwrap();
        assert_eq!(fd.num, 1);
        assert_eq!(fd.info.unwrap().kind, FdType::Ipv4);

        let closed = run(&mut e, RecordBuilder::new(Syscall::Close, 60, 0).arg(0, 3));
        assert_eq!(closed.fd.unwrap().info.unwrap().kind, FdType::Ipv4);
        let again = run(&mut e, RecordBuilder::new(Syscall::Close, 60, 0).arg(0, 3));
        assert_eq!(
            again.fd.unwrap().info.unwrap().kind,
            FdType::Unknown,
            "a closed fd is forgotten"
        );
    }

    #[test]
    fn exec_of_a_memfd_is_fileless_even_when_proc_is_gone() {
        let mut e = enricher();
        run(
            &mut e,
            RecordBuilder::new(Syscall::MemfdCreate, 90, 4).string(0, "payload"),
        );
        let exec = e.enrich(
            decode(&crate::events::synth::exec(
                90,
                "payload",
                "/proc/self/fd/4",
            ))
            .unwrap(),
        );
        assert!(exec.process.exe_from_memfd);
        assert_eq!(exec.process.exepath, "/memfd:payload (deleted)");
        assert_eq!(fd_in_path("/dev/fd/7"), Some(7));
        assert_eq!(fd_in_path("/usr/bin/true"), None);
    }

    #[test]
    fn failed_calls_do_not_change_state() {
        let mut e = enricher();
        run(
            &mut e,
            RecordBuilder::new(Syscall::Chdir, 70, 0).string(0, "/srv"),
        );
        // A failed open names the file it tried (fd -1), as Falco's does, and opens nothing.
        let failed = run(
            &mut e,
            RecordBuilder::new(Syscall::Openat, 70, -(libc::ENOENT as i64))
                .arg(0, AT_FDCWD as i64 as u64)
                .string(0, "nope"),
        );
        let fd = failed.fd.expect("the file a failed open tried");
        assert_eq!(fd.num, -1);
        let info = fd.info.expect("file info");
        assert_eq!((info.name.as_str(), info.kind), ("/srv/nope", FdType::File));
        assert_eq!(info.nameraw, "nope");
        let socket = run(
            &mut e,
            RecordBuilder::new(Syscall::Socket, 70, -(libc::EMFILE as i64))
                .arg(0, libc::AF_INET as u64)
                .arg(1, libc::SOCK_STREAM as u64),
        );
        assert!(socket.fd.is_none());
        let failed_chdir = run(
            &mut e,
            RecordBuilder::new(Syscall::Chdir, 70, -(libc::ENOENT as i64)).string(0, "/gone"),
        );
        assert_eq!(&*failed_chdir.process.cwd, "/srv");
    }

    #[test]
    fn execve_sets_exe_and_args_and_fork_links_parent() {
        let mut e = enricher();
        let fork = crate::events::Event {
            task: crate::events::Task {
                ts_boot_ns: 1,
                pid: 80,
                tid: 80,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                comm: "bash".into(),
            },
            flags: 0,
            kind: EventKind::Fork {
                child_pid: 81,
                child_ppid: 80,
            },
        };
        e.enrich(fork);
        let exec = run(
            &mut e,
            RecordBuilder::new(Syscall::Execve, 81, 0)
                .string(0, "/bin/cat")
                .argv(&["cat", "/etc/hostname"]),
        );
        assert_eq!(exec.process.exe, "cat");
        assert_eq!(exec.process.args, vec!["/etc/hostname"]);
        assert_eq!(exec.process.cmdline(), "test /etc/hostname");
        assert_eq!(exec.process.ppid, 1, "the record's ppid wins");
        assert!(exec.num > 1);
    }
}

//! Per-process file descriptor tables: what each fd refers to, kept by open/socket/connect/
//! accept/dup/close events and filled lazily from /proc for fds that predate the agent.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
};

use super::{
    procfs,
    procnet::{self, L4Proto, SocketEntry},
};

/// What kind of object an fd refers to, with Falco's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FdType {
    /// A regular file (or device).
    File,
    /// A directory.
    Directory,
    /// An IPv4 socket.
    Ipv4,
    /// An IPv6 socket.
    Ipv6,
    /// A unix socket.
    Unix,
    /// A netlink socket.
    Netlink,
    /// A pipe or FIFO.
    Pipe,
    /// An eventfd.
    Event,
    /// A signalfd.
    Signalfd,
    /// An epoll instance.
    Eventpoll,
    /// An inotify instance.
    Inotify,
    /// A timerfd.
    Timerfd,
    /// A BPF map, program or link.
    Bpf,
    /// A userfaultfd.
    Userfaultfd,
    /// An io_uring instance.
    IoUring,
    /// A memfd.
    Memfd,
    /// A pidfd.
    Pidfd,
    /// Something else, or not known.
    Unknown,
}

impl FdType {
    /// Falco's `fd.type`.
    pub fn name(self) -> &'static str {
        match self {
            FdType::File => "file",
            FdType::Directory => "directory",
            FdType::Ipv4 => "ipv4",
            FdType::Ipv6 => "ipv6",
            FdType::Unix => "unix",
            FdType::Netlink => "netlink",
            FdType::Pipe => "pipe",
            FdType::Event => "event",
            FdType::Signalfd => "signalfd",
            FdType::Eventpoll => "eventpoll",
            FdType::Inotify => "inotify",
            FdType::Timerfd => "timerfd",
            FdType::Bpf => "bpf",
            FdType::Userfaultfd => "userfaultfd",
            FdType::IoUring => "io_uring",
            FdType::Memfd => "memfd",
            FdType::Pidfd => "pidfd",
            FdType::Unknown => "unknown",
        }
    }

    /// Falco's `fd.typechar`.
    pub fn typechar(self) -> char {
        match self {
            FdType::File => 'f',
            FdType::Directory => 'd',
            FdType::Ipv4 => '4',
            FdType::Ipv6 => '6',
            FdType::Unix => 'u',
            FdType::Netlink => 'n',
            FdType::Pipe => 'p',
            FdType::Event => 'e',
            FdType::Signalfd => 's',
            FdType::Eventpoll => 'l',
            FdType::Inotify => 'i',
            FdType::Timerfd => 't',
            FdType::Bpf => 'b',
            FdType::Userfaultfd => 'u',
            FdType::IoUring => 'r',
            FdType::Memfd => 'm',
            FdType::Pidfd => 'P',
            FdType::Unknown => 'o',
        }
    }

    /// Whether this is an IPv4 or IPv6 socket.
    pub fn is_inet(self) -> bool {
        matches!(self, FdType::Ipv4 | FdType::Ipv6)
    }
}

/// The endpoints of a socket, as far as they are known.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketInfo {
    /// Transport protocol.
    pub proto: Option<L4Proto>,
    /// Local address (the bound or client side).
    pub local: Option<SocketAddr>,
    /// Remote address (the peer).
    pub remote: Option<SocketAddr>,
    /// Whether the local side is the server (accepted or listening).
    pub is_server: bool,
    /// The path of a unix socket.
    pub unix_path: Option<String>,
}

impl SocketInfo {
    /// The client endpoint (Falco's `fd.cip`/`fd.cport`).
    pub fn client(&self) -> Option<SocketAddr> {
        if self.is_server {
            self.remote
        } else {
            self.local
        }
    }

    /// The server endpoint (Falco's `fd.sip`/`fd.sport`).
    pub fn server(&self) -> Option<SocketAddr> {
        if self.is_server {
            self.local
        } else {
            self.remote
        }
    }
}

/// What one fd refers to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FdInfo {
    /// Object type.
    pub kind: FdType,
    /// Falco's `fd.name`: the absolute path, or `client:port->server:port` for sockets.
    pub name: String,
    /// The path as the process passed it (Falco's `fd.nameraw`).
    pub nameraw: String,
    /// Open flags for files.
    pub open_flags: u64,
    /// Closed on exec.
    pub cloexec: bool,
    /// Endpoints, for sockets.
    pub socket: Option<SocketInfo>,
}

impl FdInfo {
    /// A file or directory opened at `path` (already resolved) as `raw`.
    pub fn file(path: String, raw: String, open_flags: u64) -> FdInfo {
        let kind = if open_flags & libc::O_DIRECTORY as u64 != 0 {
            FdType::Directory
        } else {
            FdType::File
        };
        FdInfo {
            kind,
            name: path,
            nameraw: raw,
            open_flags,
            cloexec: open_flags & libc::O_CLOEXEC as u64 != 0,
            socket: None,
        }
    }

    /// An object with a type and a name only.
    pub fn other(kind: FdType, name: String) -> FdInfo {
        FdInfo {
            kind,
            nameraw: name.clone(),
            name,
            open_flags: 0,
            cloexec: false,
            socket: None,
        }
    }

    /// A new socket from `socket(domain, type, proto)`.
    pub fn socket(domain: u64, sock_type: u64, cloexec: bool) -> FdInfo {
        let kind = match domain as i32 {
            libc::AF_INET => FdType::Ipv4,
            libc::AF_INET6 => FdType::Ipv6,
            libc::AF_UNIX => FdType::Unix,
            libc::AF_NETLINK => FdType::Netlink,
            _ => FdType::Unknown,
        };
        let base_type = (sock_type as i32) & 0xf;
        let proto = match (kind, base_type) {
            (FdType::Unix, _) => Some(L4Proto::Unix),
            (_, libc::SOCK_STREAM) => Some(L4Proto::Tcp),
            (_, libc::SOCK_DGRAM) => Some(L4Proto::Udp),
            (_, libc::SOCK_RAW) => Some(L4Proto::Raw),
            _ => None,
        };
        let mut info = FdInfo {
            kind,
            name: String::new(),
            nameraw: String::new(),
            open_flags: 0,
            cloexec,
            socket: Some(SocketInfo {
                proto,
                ..SocketInfo::default()
            }),
        };
        info.refresh_socket_name();
        info
    }

    /// Recomputes `name` from the socket endpoints.
    pub fn refresh_socket_name(&mut self) {
        let Some(socket) = &self.socket else {
            return;
        };
        self.name = if self.kind == FdType::Unix {
            socket.unix_path.clone().unwrap_or_default()
        } else if self.kind.is_inet() {
            match (socket.client(), socket.server()) {
                (None, None) => String::new(),
                (client, server) => format!(
                    "{}->{}",
                    render_endpoint(client, self.kind),
                    render_endpoint(server, self.kind)
                ),
            }
        } else {
            String::new()
        };
        self.nameraw = self.name.clone();
    }

    /// The directory part of a file's name (Falco's `fd.directory`).
    pub fn directory(&self) -> Option<&str> {
        if !matches!(self.kind, FdType::File | FdType::Directory) {
            return None;
        }
        if self.kind == FdType::Directory {
            return Some(&self.name);
        }
        Some(match self.name.rfind('/') {
            Some(0) => "/",
            Some(index) => &self.name[..index],
            None => "",
        })
    }

    /// The last component of a file's name (Falco's `fd.filename`).
    pub fn filename(&self) -> Option<&str> {
        if self.kind != FdType::File {
            return None;
        }
        Some(self.name.rsplit('/').next().unwrap_or(&self.name))
    }
}

fn render_endpoint(endpoint: Option<SocketAddr>, kind: FdType) -> String {
    match endpoint {
        Some(addr) => addr.to_string(),
        // Unknown side: show the unspecified address of the socket's family, as Falco does
        // before a socket is bound.
        None if kind == FdType::Ipv6 => "[::]:0".into(),
        None => "0.0.0.0:0".into(),
    }
}

/// Fds of one process, bounded.
///
/// Copy-on-write: fork gives the child the parent's table, and most children (workers, sleeping
/// helpers) never open or close anything the agent sees, so the copy shares the parent's map
/// until one side changes it. Entries are shared too, so the first change copies only the map,
/// not every fd's names. A process whose fds were never seen holds no map at all.
#[derive(Clone, Debug, Default)]
pub struct FdTable {
    fds: Option<Arc<HashMap<i32, Arc<FdInfo>>>>,
}

impl FdTable {
    /// Most fds tracked per process; beyond it a new fd replaces an arbitrary old entry, which
    /// keeps memory bounded for processes with huge fd counts.
    pub const MAX_FDS: usize = 4096;

    /// The map, to change: a private copy if another table still shares it.
    fn map_mut(&mut self) -> &mut HashMap<i32, Arc<FdInfo>> {
        Arc::make_mut(self.fds.get_or_insert_with(Default::default))
    }

    /// The fd `fd`, if known.
    pub fn get(&self, fd: i32) -> Option<&FdInfo> {
        self.fds.as_ref()?.get(&fd).map(|info| &**info)
    }

    /// The fd `fd`, mutable.
    pub fn get_mut(&mut self, fd: i32) -> Option<&mut FdInfo> {
        // Do not copy a shared map just to find nothing.
        self.get(fd)?;
        self.map_mut().get_mut(&fd).map(Arc::make_mut)
    }

    /// Records `fd` (replacing what it was).
    pub fn insert(&mut self, fd: i32, info: FdInfo) {
        self.insert_shared(fd, Arc::new(info));
    }

    fn insert_shared(&mut self, fd: i32, info: Arc<FdInfo>) {
        if fd < 0 {
            return;
        }
        let fds = self.map_mut();
        if fds.len() >= Self::MAX_FDS
            && !fds.contains_key(&fd)
            && let Some(&victim) = fds.keys().next()
        {
            fds.remove(&victim);
        }
        fds.insert(fd, info);
    }

    /// Forgets `fd`, returning what it was.
    pub fn remove(&mut self, fd: i32) -> Option<FdInfo> {
        // Unknown fd: leave a shared map shared.
        self.get(fd)?;
        // The emptied map is kept: a process that opens and closes one file in a loop would
        // otherwise allocate a map on every open.
        self.map_mut().remove(&fd).map(Arc::unwrap_or_clone)
    }

    /// Copies `old` to `new` (dup family); the copy's close-on-exec flag is `cloexec`.
    pub fn duplicate(&mut self, old: i32, new: i32, cloexec: bool) {
        let Some(fds) = &self.fds else {
            return;
        };
        match fds.get(&old) {
            // Same flag: the copy shares the entry.
            Some(info) if info.cloexec == cloexec => {
                let info = Arc::clone(info);
                self.insert_shared(new, info);
            }
            Some(info) => {
                let mut info = FdInfo::clone(info);
                info.cloexec = cloexec;
                self.insert(new, info);
            }
            None => {
                self.remove(new);
            }
        }
    }

    /// Drops close-on-exec fds, as a successful exec does.
    pub fn close_on_exec(&mut self) {
        let Some(fds) = &self.fds else {
            return;
        };
        if !fds.values().any(|info| info.cloexec) {
            // Nothing to drop: keep sharing the map.
            return;
        }
        self.map_mut().retain(|_, info| !info.cloexec);
    }

    /// Number of fds tracked.
    pub fn len(&self) -> usize {
        self.fds.as_ref().map_or(0, |fds| fds.len())
    }

    /// Whether no fd is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads what fd `fd` of `pid` refers to from procfs, for fds that predate the agent.
pub fn resolve_from_procfs(proc_root: &Path, pid: u32, fd: i32) -> Option<FdInfo> {
    let target = procfs::read_fd_target(proc_root, pid, fd).ok()?;
    if let Some(inode) = procfs::socket_inode(&target) {
        return Some(socket_from_procnet(proc_root, pid, inode));
    }
    if target.starts_with("pipe:") {
        return Some(FdInfo::other(FdType::Pipe, target));
    }
    if let Some(anon) = target.strip_prefix("anon_inode:") {
        let kind = match anon.trim_matches(|c| c == '[' || c == ']') {
            "eventfd" => FdType::Event,
            "signalfd" => FdType::Signalfd,
            "eventpoll" => FdType::Eventpoll,
            "inotify" => FdType::Inotify,
            "timerfd" => FdType::Timerfd,
            "userfaultfd" => FdType::Userfaultfd,
            "[io_uring]" | "io_uring" => FdType::IoUring,
            "[pidfd]" | "pidfd" => FdType::Pidfd,
            name if name.starts_with("bpf") => FdType::Bpf,
            _ => FdType::Unknown,
        };
        return Some(FdInfo::other(kind, target));
    }
    if target.starts_with("/memfd:") {
        return Some(FdInfo::other(FdType::Memfd, target));
    }
    if target.starts_with('/') {
        let is_dir = std::fs::metadata(&target).is_ok_and(|m| m.is_dir());
        let flags = if is_dir { libc::O_DIRECTORY as u64 } else { 0 };
        return Some(FdInfo::file(target.clone(), target, flags));
    }
    Some(FdInfo::other(FdType::Unknown, target))
}

fn socket_from_procnet(proc_root: &Path, pid: u32, inode: u64) -> FdInfo {
    match procnet::find_socket(proc_root, pid, inode) {
        Ok(Some(SocketEntry::Inet {
            proto,
            local,
            remote,
        })) => {
            let kind = match local.ip() {
                IpAddr::V4(_) => FdType::Ipv4,
                IpAddr::V6(_) => FdType::Ipv6,
            };
            let listening = remote.port() == 0 && remote.ip().is_unspecified();
            let mut info = FdInfo {
                kind,
                name: String::new(),
                nameraw: String::new(),
                open_flags: 0,
                cloexec: false,
                socket: Some(SocketInfo {
                    proto: Some(proto),
                    local: Some(local),
                    remote: (!listening).then_some(remote),
                    is_server: listening,
                    unix_path: None,
                }),
            };
            info.refresh_socket_name();
            info
        }
        Ok(Some(SocketEntry::Unix { path })) => {
            let mut info = FdInfo::socket(libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, false);
            if let Some(socket) = info.socket.as_mut() {
                socket.unix_path = path;
            }
            info.refresh_socket_name();
            info
        }
        _ => FdInfo::other(FdType::Unknown, format!("socket:[{inode}]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_follow_falco() {
        let mut info = FdInfo::socket(libc::AF_INET as u64, libc::SOCK_STREAM as u64, false);
        assert_eq!(info.kind.typechar(), '4');
        assert_eq!(info.name, "");
        let socket = info.socket.as_mut().unwrap();
        socket.remote = Some("127.0.0.1:8080".parse().unwrap());
        info.refresh_socket_name();
        assert_eq!(info.name, "0.0.0.0:0->127.0.0.1:8080");
        let socket = info.socket.as_mut().unwrap();
        socket.local = Some("127.0.0.1:40000".parse().unwrap());
        info.refresh_socket_name();
        assert_eq!(info.name, "127.0.0.1:40000->127.0.0.1:8080");

        let mut server = info.clone();
        let socket = server.socket.as_mut().unwrap();
        socket.is_server = true;
        socket.local = Some("127.0.0.1:8080".parse().unwrap());
        socket.remote = Some("127.0.0.1:40000".parse().unwrap());
        server.refresh_socket_name();
        assert_eq!(server.name, "127.0.0.1:40000->127.0.0.1:8080");
    }

    #[test]
    fn file_parts() {
        let info = FdInfo::file("/etc/ssh/sshd_config".into(), "sshd_config".into(), 0);
        assert_eq!(info.directory(), Some("/etc/ssh"));
        assert_eq!(info.filename(), Some("sshd_config"));
        let root = FdInfo::file("/vmlinuz".into(), "/vmlinuz".into(), 0);
        assert_eq!(root.directory(), Some("/"));
        let dir = FdInfo::file("/tmp".into(), "/tmp".into(), libc::O_DIRECTORY as u64);
        assert_eq!(dir.kind, FdType::Directory);
        assert_eq!(dir.filename(), None);
    }

    #[test]
    fn dup_close_and_exec() {
        let mut table = FdTable::default();
        table.insert(
            3,
            FdInfo::file("/a".into(), "/a".into(), libc::O_CLOEXEC as u64),
        );
        table.insert(4, FdInfo::file("/b".into(), "/b".into(), 0));
        table.duplicate(4, 1, false);
        assert_eq!(table.get(1).map(|f| f.name.as_str()), Some("/b"));
        table.duplicate(99, 1, false);
        assert!(
            table.get(1).is_none(),
            "dup of an unknown fd must not keep a stale entry"
        );
        table.close_on_exec();
        assert!(table.get(3).is_none());
        assert!(table.get(4).is_some());
        assert!(table.remove(4).is_some());
        assert!(table.is_empty());
    }

    #[test]
    fn copies_share_until_changed() {
        let mut parent = FdTable::default();
        parent.insert(0, FdInfo::file("/dev/null".into(), "/dev/null".into(), 0));
        parent.insert(
            1,
            FdInfo::file("/a".into(), "/a".into(), libc::O_CLOEXEC as u64),
        );
        let mut child = parent.clone();
        // Changes to the copy (close, rename, exec) leave the original alone, and the other way
        // round.
        assert!(child.remove(0).is_some());
        if let Some(info) = child.get_mut(1) {
            info.name = "/b".into();
        }
        child.close_on_exec();
        assert!(child.is_empty());
        assert_eq!(parent.get(0).map(|f| f.name.as_str()), Some("/dev/null"));
        assert_eq!(parent.get(1).map(|f| f.name.as_str()), Some("/a"));
        parent.insert(2, FdInfo::other(FdType::Pipe, "pipe:[1]".into()));
        assert!(child.get(2).is_none());
        // Unknown fds change nothing.
        assert!(child.get_mut(7).is_none());
        assert!(child.remove(7).is_none());
        child.duplicate(7, 8, false);
        assert!(child.is_empty());
        assert_eq!(parent.len(), 3);
    }

    #[test]
    fn table_is_bounded() {
        let mut table = FdTable::default();
        for fd in 0..(FdTable::MAX_FDS as i32 + 100) {
            table.insert(fd, FdInfo::other(FdType::Pipe, "pipe".into()));
        }
        assert_eq!(table.len(), FdTable::MAX_FDS);
    }

    #[test]
    fn resolves_real_fds_from_procfs() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        let info =
            resolve_from_procfs(Path::new("/proc"), std::process::id(), file.as_raw_fd()).unwrap();
        assert_eq!(info.kind, FdType::File);
        assert!(info.name.ends_with("/status"), "{}", info.name);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let info =
            resolve_from_procfs(Path::new("/proc"), std::process::id(), listener.as_raw_fd())
                .unwrap();
        assert_eq!(info.kind, FdType::Ipv4);
        let socket = info.socket.unwrap();
        assert_eq!(socket.local.map(|a| a.port()), Some(port));
        assert!(socket.is_server);
    }
}

//! The process table: what Vigil knows about each live process, seeded from /proc at start-up and
//! kept current by fork, exec and exit events. Bounded: when full, the least recently active
//! process is evicted (and reloaded from /proc if it shows up again).

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::Arc,
};

use lru::LruCache;

use super::{
    cgroups::CgroupResolver,
    container::{ContainerRef, container_from_cgroup},
    fd::FdTable,
    intern::{Interner, SharedList, SharedStr, empty_list},
    procfs::{self, ProcSnapshot},
};
use crate::events::Task;

/// Capability sets of a thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

/// Everything known about one process. Shared with events as an `Arc` snapshot; updates copy on
/// write, so an event keeps describing the process as it was when the event happened.
///
/// The texts are shared ([`SharedStr`], [`SharedList`]): a copy (fork, copy-on-write) shares
/// them, and the process table interns them, so thousands of processes of one program hold one
/// copy of its path, arguments and working directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process id inside its pid namespace.
    pub vpid: u32,
    /// Session id.
    pub sid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Task name (`proc.name`).
    pub comm: SharedStr,
    /// First argument of the command line (`proc.exe`).
    pub exe: SharedStr,
    /// Full path of the executable (`proc.exepath`).
    pub exepath: SharedStr,
    /// Arguments after the first (`proc.args`).
    pub args: SharedList,
    /// Working directory.
    pub cwd: SharedStr,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Audit login uid, `None` when unset.
    pub loginuid: Option<u32>,
    /// Controlling terminal (`tty_nr`), 0 when none.
    pub tty: u32,
    /// Start time on the boot clock, in nanoseconds.
    pub start_boot_ns: u64,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// cgroup v2 path.
    pub cgroup_path: Option<Arc<str>>,
    /// The container the process runs in, if any.
    pub container: Option<ContainerRef>,
    /// Capabilities.
    pub caps: Capabilities,
    /// The executable is a memfd (fileless execution).
    pub exe_from_memfd: bool,
    /// Change time of the executable, ns since the epoch.
    pub exe_ctime_ns: Option<i64>,
    /// Modification time of the executable, ns since the epoch.
    pub exe_mtime_ns: Option<i64>,
    /// The executable lives in the upper (writable) layer of the process's overlay root: it was
    /// added or changed after the container started.
    pub exe_upper_layer: bool,
    /// Environment (`NAME=value`), captured at exec when a rule needs it.
    pub env: Arc<[String]>,
}

impl ProcessInfo {
    /// Falco's `proc.cmdline`: the name followed by the arguments.
    pub fn cmdline(&self) -> String {
        let mut line = self.comm.to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }

    /// Falco's `proc.args`: the arguments joined by spaces.
    pub fn args_line(&self) -> String {
        self.args.join(" ")
    }

    fn from_snapshot(snapshot: ProcSnapshot, strings: &mut Strings) -> ProcessInfo {
        let mut argv = snapshot.argv;
        let exe = if argv.is_empty() {
            SharedStr::default()
        } else {
            strings.text(&argv.remove(0))
        };
        let exepath = snapshot
            .exepath
            .map_or_else(SharedStr::default, |path| strings.text(&path));
        ProcessInfo {
            pid: snapshot.pid,
            ppid: snapshot.ppid,
            vpid: snapshot.vpid,
            sid: snapshot.sid,
            pgid: snapshot.pgid,
            comm: strings.text(&snapshot.comm),
            exe,
            exe_from_memfd: exepath.starts_with("/memfd:"),
            exe_ctime_ns: None,
            exe_mtime_ns: None,
            exe_upper_layer: false,
            env: empty_list(),
            exepath,
            args: strings.list(argv),
            cwd: snapshot
                .cwd
                .map_or_else(SharedStr::default, |cwd| strings.text(&cwd)),
            uid: snapshot.uid,
            gid: snapshot.gid,
            euid: snapshot.euid,
            egid: snapshot.egid,
            loginuid: snapshot.loginuid,
            tty: snapshot.tty,
            start_boot_ns: snapshot.start_boot_ns,
            cgroup_id: 0,
            cgroup_path: snapshot.cgroup_path.map(|path| strings.text(&path).into()),
            container: snapshot.cgroup_container,
            caps: Capabilities {
                effective: snapshot.cap_effective,
                permitted: snapshot.cap_permitted,
                inheritable: snapshot.cap_inheritable,
            },
        }
    }

    fn from_task(task: &Task, strings: &mut Strings) -> ProcessInfo {
        let comm = strings.text(&task.comm);
        ProcessInfo {
            pid: task.pid,
            ppid: task.ppid,
            vpid: task.pid,
            exe: comm.clone(),
            comm,
            env: empty_list(),
            uid: task.uid,
            gid: task.gid,
            euid: task.uid,
            egid: task.gid,
            ..ProcessInfo::default()
        }
    }
}

/// The interners of the process table: texts (names, paths) and argument lists.
#[derive(Debug, Default)]
pub struct Strings {
    texts: Interner<str>,
    lists: Interner<[String]>,
}

impl Strings {
    /// The shared copy of `text`.
    pub fn text(&mut self, text: &str) -> SharedStr {
        self.texts.intern(text)
    }

    /// The shared copy of the list `items`.
    pub fn list(&mut self, items: Vec<String>) -> SharedList {
        self.lists.intern_list(items)
    }
}

/// A process and its fds.
#[derive(Clone, Debug)]
pub struct ProcessEntry {
    /// Process facts, shared with events.
    pub info: Arc<ProcessInfo>,
    /// Open file descriptors.
    pub fds: FdTable,
}

impl ProcessEntry {
    /// Mutable access to the facts (copies them if an event still holds the old snapshot).
    pub fn info_mut(&mut self) -> &mut ProcessInfo {
        Arc::make_mut(&mut self.info)
    }
}

/// Deepest ancestor chain walked (guards against cycles from pid reuse).
pub const MAX_ANCESTORS: usize = 16;

/// All known processes.
pub struct ProcessTable {
    /// Unbounded as far as the cache knows: the table evicts by itself at `capacity`. A bounded
    /// `LruCache` allocates its whole index up front (16 bytes a slot, two slots a process at the
    /// default 65,536), which the pages of a mostly empty table then pay for as entries land
    /// all over it; this way the index grows with the processes actually tracked.
    entries: LruCache<u32, ProcessEntry>,
    capacity: NonZeroUsize,
    strings: Strings,
    proc_root: PathBuf,
}

impl ProcessTable {
    /// An empty table holding at most `capacity` processes, reading /proc at `proc_root`.
    pub fn new(proc_root: impl Into<PathBuf>, capacity: NonZeroUsize) -> ProcessTable {
        ProcessTable {
            entries: LruCache::unbounded(),
            capacity,
            strings: Strings::default(),
            proc_root: proc_root.into(),
        }
    }

    /// The procfs root this table reads.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Makes room for `pid` if it is new and the table is full, evicting the least recently
    /// active process.
    fn make_room_for(&mut self, pid: u32) {
        if self.entries.len() >= self.capacity.get() && !self.entries.contains(&pid) {
            self.entries.pop_lru();
        }
    }

    /// Records `entry` as `pid` (replacing what it was), evicting if the table is full.
    fn put(&mut self, pid: u32, entry: ProcessEntry) {
        self.make_room_for(pid);
        self.entries.put(pid, entry);
    }

    /// Loads every process in /proc; returns how many were loaded. Processes that vanish while
    /// being read are skipped.
    pub fn seed(&mut self, cgroups: &mut CgroupResolver, capture_env: bool) -> usize {
        let Ok(pids) = procfs::list_pids(&self.proc_root) else {
            return 0;
        };
        let mut loaded = 0;
        for pid in pids {
            if let Ok(snapshot) = procfs::read_process(&self.proc_root, pid) {
                let mut info = ProcessInfo::from_snapshot(snapshot, &mut self.strings);
                attach_cgroup_from_path(&mut info, cgroups);
                attach_exe_details(&mut info, &self.proc_root, capture_env);
                self.put(
                    pid,
                    ProcessEntry {
                        info: Arc::new(info),
                        fds: FdTable::default(),
                    },
                );
                loaded += 1;
            }
        }
        loaded
    }

    /// The entry of the task's process, loaded from /proc (or made from the task itself when the
    /// process is already gone) if it is not known yet, and refreshed with what the task says.
    pub fn entry(&mut self, task: &Task, cgroups: &mut CgroupResolver) -> &mut ProcessEntry {
        self.entry_and_strings(task, cgroups).0
    }

    /// [`ProcessTable::entry`], with the table's interners for the texts an update brings
    /// (exec).
    pub fn entry_and_strings(
        &mut self,
        task: &Task,
        cgroups: &mut CgroupResolver,
    ) -> (&mut ProcessEntry, &mut Strings) {
        self.make_room_for(task.pid);
        let ProcessTable {
            entries,
            strings,
            proc_root,
            ..
        } = self;
        let entry = entries.get_or_insert_mut(task.pid, || {
            let info = match procfs::read_process(proc_root, task.pid) {
                Ok(snapshot) => ProcessInfo::from_snapshot(snapshot, strings),
                Err(_) => ProcessInfo::from_task(task, strings),
            };
            ProcessEntry {
                info: Arc::new(info),
                fds: FdTable::default(),
            }
        });
        refresh_from_task(entry, task, cgroups, proc_root, strings);
        (entry, strings)
    }

    /// The facts of `pid`, without loading or promoting it.
    pub fn peek(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.entries.peek(&pid).map(|entry| &entry.info)
    }

    /// Records a new process `child_pid` forked by the task's process: it inherits the parent's
    /// facts and fds, as fork does.
    pub fn fork(
        &mut self,
        parent: &Task,
        child_pid: u32,
        child_ppid: u32,
        cgroups: &mut CgroupResolver,
    ) {
        let parent_entry = self.entry(parent, cgroups);
        let mut child = ProcessEntry {
            info: Arc::clone(&parent_entry.info),
            fds: parent_entry.fds.clone(),
        };
        let info = child.info_mut();
        info.pid = child_pid;
        info.vpid = child_pid;
        info.ppid = child_ppid;
        info.start_boot_ns = parent.ts_boot_ns;
        self.put(child_pid, child);
    }

    /// Forgets `pid`.
    pub fn remove(&mut self, pid: u32) -> Option<ProcessEntry> {
        self.entries.pop(&pid)
    }

    /// The parent, grandparent, ... of `info`, nearest first, as far as they are known.
    pub fn ancestors(&self, info: &ProcessInfo) -> Vec<Arc<ProcessInfo>> {
        // Most chains are a handful deep: one allocation, no regrowth.
        let mut chain = Vec::with_capacity(8);
        let mut pid = info.ppid;
        let mut previous = info.pid;
        while pid != 0 && pid != previous && chain.len() < MAX_ANCESTORS {
            let Some(parent) = self.peek(pid) else {
                break;
            };
            chain.push(Arc::clone(parent));
            previous = pid;
            pid = parent.ppid;
        }
        chain
    }

    /// `(pid, ppid)` of every tracked process.
    pub fn parent_links(&self) -> Vec<(u32, u32)> {
        self.entries
            .iter()
            .map(|(&pid, entry)| (pid, entry.info.ppid))
            .collect()
    }

    /// Number of processes tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn refresh_from_task(
    entry: &mut ProcessEntry,
    task: &Task,
    cgroups: &mut CgroupResolver,
    proc_root: &Path,
    strings: &mut Strings,
) {
    let info = &entry.info;
    // The resolver rate-limits its walks of the cgroup tree, so the lookup made when the process
    // entered its cgroup may have missed. Without a retry the process (and every child it forks
    // later, which inherit its facts) would stay "on the host" for the rest of its life.
    // Retrying is cheap: the resolver answers from its caches, and for an id it cannot find it
    // walks at most once per negative TTL (1 s) whatever the event rate.
    let retried =
        (info.cgroup_path.is_none() && task.cgroup_id != 0 && info.cgroup_id == task.cgroup_id)
            .then(|| cgroups.resolve(task.cgroup_id))
            .flatten();
    let stale = info.uid != task.uid
        || info.gid != task.gid
        || info.comm != task.comm
        || info.cgroup_id != task.cgroup_id
        || (task.ppid != 0 && info.ppid != task.ppid)
        || retried.is_some();
    if !stale {
        return;
    }
    let info = entry.info_mut();
    info.uid = task.uid;
    info.gid = task.gid;
    if info.comm != task.comm {
        info.comm = strings.text(&task.comm);
    }
    if task.ppid != 0 {
        info.ppid = task.ppid;
    }
    if info.cgroup_id != task.cgroup_id {
        info.cgroup_id = task.cgroup_id;
        info.cgroup_path = cgroups
            .resolve(task.cgroup_id)
            .or_else(|| cgroup_from_procfs(proc_root, task.pid, task.cgroup_id, cgroups));
        info.container = container_of(info.cgroup_path.as_deref(), info.container.take());
    } else if let Some(path) = retried {
        info.container = container_from_cgroup(&path);
        info.cgroup_path = Some(path);
    }
}

/// The path of cgroup `id` as `/proc/<pid>/cgroup` names it, when the process is still in that
/// cgroup: what the agent needs when a rate-limited walk could not answer for a process that
/// just moved (a container's first process). One small read per move, never per event.
fn cgroup_from_procfs(
    proc_root: &Path,
    pid: u32,
    id: u64,
    cgroups: &mut CgroupResolver,
) -> Option<Arc<str>> {
    let path = procfs::read_cgroup_path(proc_root, pid)?;
    // The process may have moved again since the event: only a path that is still this
    // cgroup's directory is an answer.
    if cgroups.id_of(&path) != Some(id) {
        return None;
    }
    cgroups.insert(id, &path);
    cgroups.resolve(id)
}

/// Reads what only /proc knows about the running image: the executable's times and, when rules
/// need it, the environment.
pub fn attach_exe_details(info: &mut ProcessInfo, proc_root: &Path, capture_env: bool) {
    if let Some((ctime, mtime)) = procfs::exe_times(proc_root, info.pid) {
        info.exe_ctime_ns = Some(ctime);
        info.exe_mtime_ns = Some(mtime);
    }
    // Only containers run on an overlay root; host processes skip the mountinfo read.
    info.exe_upper_layer = info.container.is_some()
        && procfs::root_overlay_upperdir(proc_root, info.pid).is_some_and(|upper| {
            let relative = info.exepath.trim_start_matches('/');
            !relative.is_empty() && upper.join(relative).exists()
        });
    if capture_env && let Ok(env) = procfs::read_environ(proc_root, info.pid) {
        info.env = Arc::from(env);
    }
}

fn attach_cgroup_from_path(info: &mut ProcessInfo, cgroups: &mut CgroupResolver) {
    let Some(path) = info.cgroup_path.clone() else {
        return;
    };
    if let Some(id) = cgroups.id_of(&path) {
        info.cgroup_id = id;
        cgroups.insert(id, &path);
    }
    info.container = container_of(Some(&path), info.container.take());
}

/// The container of a process in cgroup v2 `path`. A process at the v2 root of a hybrid host
/// (cgroup v1 and v2 side by side) may still be a container's, placed by a v1-only runtime:
/// then the container `/proc/<pid>/cgroup` named in a v1 hierarchy (`v1`) stands.
fn container_of(path: Option<&str>, v1: Option<ContainerRef>) -> Option<ContainerRef> {
    match path {
        Some(path) => container_from_cgroup(path).or(if path == "/" { v1 } else { None }),
        None => v1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_container_stands_only_at_the_v2_root() {
        let id = "4c2b1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
        let v1 = crate::state::container::container_from_proc_cgroup(&format!(
            "5:memory:/kubepods/burstable/pod0f5c3a2e-1b4d-4e6f-8a9b-0c1d2e3f4a5b/{id}\n0::/\n"
        ));
        assert!(v1.is_some(), "the v1 line names the container");
        // Hybrid host, the process at the v2 root: the v1 answer stands.
        assert_eq!(container_of(Some("/"), v1.clone()), v1);
        // Anywhere else in v2, the v2 path decides (a host service is no container).
        assert_eq!(
            container_of(Some("/system.slice/cron.service"), v1.clone()),
            None
        );
        // No v2 line at all: only v1 says anything.
        assert_eq!(container_of(None, v1.clone()), v1);
    }

    fn task(pid: u32, ppid: u32, comm: &str) -> Task {
        Task {
            ts_boot_ns: 5,
            pid,
            tid: pid,
            ppid,
            uid: 1000,
            gid: 1000,
            cgroup_id: 0,
            comm: comm.into(),
        }
    }

    fn table(capacity: usize) -> (ProcessTable, CgroupResolver) {
        // A procfs root without processes: everything comes from events.
        let empty = std::env::temp_dir().join("vigil-empty-procfs");
        let _ = std::fs::create_dir_all(&empty);
        (
            ProcessTable::new(empty.clone(), NonZeroUsize::new(capacity).unwrap()),
            CgroupResolver::new(empty),
        )
    }

    #[test]
    fn fork_inherits_and_ancestors_walk_up() {
        let (mut table, mut cgroups) = table(16);
        let init = task(1, 0, "init");
        table.entry(&init, &mut cgroups).info_mut().cwd = "/".into();
        table.fork(&init, 10, 1, &mut cgroups);
        let shell = task(10, 1, "bash");
        table.entry(&shell, &mut cgroups);
        table.fork(&shell, 11, 10, &mut cgroups);
        let child = table
            .entry(&task(11, 10, "bash"), &mut cgroups)
            .info
            .clone();
        assert_eq!(child.cwd, "/", "fork inherits the cwd");
        assert_eq!(child.start_boot_ns, 5);
        let names: Vec<_> = table
            .ancestors(&child)
            .iter()
            .map(|p| p.comm.clone())
            .collect();
        assert_eq!(names, vec!["bash", "init"]);
    }

    #[test]
    fn forked_children_share_what_they_inherit() {
        let (mut table, mut cgroups) = table(16);
        let parent = task(30, 1, "worker");
        let entry = table.entry(&parent, &mut cgroups);
        entry.info_mut().cwd = "/srv".into();
        entry.info_mut().args = vec!["--serve".to_string()].into();
        entry.fds.insert(
            3,
            crate::state::fd::FdInfo::file("/srv/log".into(), "log".into(), 0),
        );
        table.fork(&parent, 31, 30, &mut cgroups);
        let parent = table.peek(30).unwrap().clone();
        let child = table.peek(31).unwrap().clone();
        assert_eq!((child.pid, child.ppid), (31, 30));
        // Same texts, one copy of each: a child costs its own facts only.
        assert!(SharedStr::ptr_eq(&child.cwd, &parent.cwd));
        assert!(SharedStr::ptr_eq(&child.comm, &parent.comm));
        assert!(SharedList::ptr_eq(&child.args, &parent.args));
        // The child's fds start as the parent's; changing them leaves the parent's alone.
        let child_task = task(31, 30, "worker");
        let entry = table.entry(&child_task, &mut cgroups);
        assert_eq!(entry.fds.get(3).map(|f| f.name.as_str()), Some("/srv/log"));
        assert!(entry.fds.remove(3).is_some());
        assert!(table.entry(&child_task, &mut cgroups).fds.is_empty());
        assert!(
            table
                .entry(&task(30, 1, "worker"), &mut cgroups)
                .fds
                .get(3)
                .is_some()
        );
    }

    #[test]
    fn processes_loaded_from_procfs_share_equal_texts() {
        let procfs = tempfile::tempdir().unwrap();
        for pid in [70, 71] {
            let dir = procfs.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("stat"),
                format!(
                    "{pid} (sleep) S 1 {pid} {pid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0"
                ),
            )
            .unwrap();
            std::fs::write(
                dir.join("status"),
                format!(
                    "Name:\tsleep\nPid:\t{pid}\nPPid:\t1\nUid:\t0\t0\t0\t0\n\
                     Gid:\t0\t0\t0\t0\nNSpid:\t{pid}\nCapInh:\t0000000000000000\n\
                     CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
                ),
            )
            .unwrap();
            std::fs::write(dir.join("cmdline"), "sleep\x00600\x00").unwrap();
        }
        let mut table = ProcessTable::new(procfs.path(), NonZeroUsize::new(16).unwrap());
        let mut cgroups = CgroupResolver::new(procfs.path().join("no-cgroup"));
        let a = table
            .entry(&task(70, 1, "sleep"), &mut cgroups)
            .info
            .clone();
        let b = table
            .entry(&task(71, 1, "sleep"), &mut cgroups)
            .info
            .clone();
        assert_eq!(a.exe, "sleep");
        assert_eq!(a.args, ["600"]);
        assert!(SharedStr::ptr_eq(&a.exe, &b.exe));
        assert!(SharedList::ptr_eq(&a.args, &b.args));
    }

    #[test]
    fn snapshots_do_not_change_under_events() {
        let (mut table, mut cgroups) = table(16);
        let snapshot = table.entry(&task(5, 1, "old"), &mut cgroups).info.clone();
        table.entry(&task(5, 1, "new"), &mut cgroups);
        assert_eq!(snapshot.comm, "old");
        assert_eq!(table.peek(5).unwrap().comm, "new");
    }

    #[test]
    fn ancestors_stop_on_cycles() {
        let (mut table, mut cgroups) = table(16);
        table.entry(&task(20, 21, "a"), &mut cgroups);
        table.entry(&task(21, 20, "b"), &mut cgroups);
        let a = table.peek(20).unwrap().clone();
        assert!(table.ancestors(&a).len() <= MAX_ANCESTORS);
    }

    #[test]
    fn table_is_bounded() {
        let (mut table, mut cgroups) = table(8);
        for pid in 100..200 {
            table.entry(&task(pid, 1, "x"), &mut cgroups);
        }
        assert_eq!(table.len(), 8);
        assert!(table.peek(199).is_some());
        assert!(table.peek(100).is_none());
    }

    /// A cgroup mount with one docker scope, created after the resolver's only allowed walk,
    /// and a procfs root; returns (mount, procfs, resolver, scope id, scope path).
    fn late_container() -> (
        tempfile::TempDir,
        tempfile::TempDir,
        CgroupResolver,
        u64,
        String,
    ) {
        use std::os::unix::fs::MetadataExt as _;
        let mount = tempfile::tempdir().unwrap();
        let procfs = tempfile::tempdir().unwrap();
        // Walks at most once a minute, misses forgotten at once: the state right after some
        // other cgroup's lookup used the walk.
        let mut cgroups = CgroupResolver::with_limits(
            mount.path().to_path_buf(),
            std::time::Duration::from_secs(60),
            std::time::Duration::ZERO,
            1000,
        );
        let root = std::fs::metadata(mount.path()).unwrap().ino();
        assert_eq!(cgroups.resolve(root).as_deref(), Some("/"));
        let path = format!("/vigil.slice/docker-{}.scope", "ab".repeat(32));
        let dir = mount.path().join(&path[1..]);
        std::fs::create_dir_all(&dir).unwrap();
        let id = std::fs::metadata(&dir).unwrap().ino();
        (mount, procfs, cgroups, id, path)
    }

    fn in_cgroup(mut task: Task, id: u64) -> Task {
        task.cgroup_id = id;
        task
    }

    #[test]
    fn first_event_in_a_new_cgroup_resolves_despite_the_rate_limit() {
        let (_mount, procfs, mut cgroups, id, path) = late_container();
        let root = cgroups.id_of("/").unwrap();
        let mut table = ProcessTable::new(procfs.path(), NonZeroUsize::new(16).unwrap());
        let shell = task(42, 1, "sh");
        table.entry(&in_cgroup(shell.clone(), root), &mut cgroups);
        // `echo $$ > cgroup.procs`: the next event comes from the new cgroup, which no walk
        // has seen and none is allowed to look for; /proc says where the process is.
        std::fs::create_dir_all(procfs.path().join("42")).unwrap();
        std::fs::write(procfs.path().join("42/cgroup"), format!("0::{path}\n")).unwrap();
        let info = table
            .entry(&in_cgroup(shell.clone(), id), &mut cgroups)
            .info
            .clone();
        assert_eq!(info.cgroup_path.as_deref(), Some(path.as_str()));
        assert_eq!(
            info.container.as_ref().map(|c| c.short_id()),
            Some("abababababab")
        );
        assert_eq!(cgroups.scan_count(), 1, "no walk was needed");
        // Children forked later inherit the container.
        table.fork(&in_cgroup(shell, id), 43, 42, &mut cgroups);
        assert!(table.peek(43).unwrap().container.is_some());
    }

    #[test]
    fn a_missed_cgroup_lookup_is_retried_on_later_events() {
        let (_mount, procfs, mut cgroups, id, path) = late_container();
        let mut table = ProcessTable::new(procfs.path(), NonZeroUsize::new(16).unwrap());
        // Neither a walk nor /proc can answer (the process is not in this procfs).
        let shell = in_cgroup(task(42, 1, "sh"), id);
        let first = table.entry(&shell, &mut cgroups).info.clone();
        assert_eq!(first.container, None);
        // Another process of the container teaches the resolver the path.
        std::fs::create_dir_all(procfs.path().join("50")).unwrap();
        std::fs::write(procfs.path().join("50/cgroup"), format!("0::{path}\n")).unwrap();
        table.entry(&in_cgroup(task(50, 1, "sh"), id), &mut cgroups);
        // The first process is in the container from its next event on, and stays there.
        for _ in 0..2 {
            let info = table.entry(&shell, &mut cgroups).info.clone();
            assert_eq!(info.cgroup_path.as_deref(), Some(path.as_str()));
            assert!(info.container.is_some());
        }
        assert_eq!(cgroups.scan_count(), 1);
    }

    #[test]
    fn a_process_that_moved_again_is_not_given_a_stale_path() {
        let (_mount, procfs, mut cgroups, id, _path) = late_container();
        let mut table = ProcessTable::new(procfs.path(), NonZeroUsize::new(16).unwrap());
        // By the time the event is handled the process is back in the root cgroup.
        std::fs::create_dir_all(procfs.path().join("42")).unwrap();
        std::fs::write(procfs.path().join("42/cgroup"), "0::/\n").unwrap();
        let info = table
            .entry(&in_cgroup(task(42, 1, "sh"), id), &mut cgroups)
            .info
            .clone();
        assert_eq!(info.cgroup_path, None);
        assert_eq!(info.container, None);
    }

    #[test]
    fn seeds_from_the_real_procfs() {
        let mut table = ProcessTable::new("/proc", NonZeroUsize::new(65536).unwrap());
        let mut cgroups = CgroupResolver::new(PathBuf::from("/nonexistent"));
        assert!(table.seed(&mut cgroups, true) > 1);
        let me = table.peek(std::process::id()).expect("own process seeded");
        assert!(!me.exepath.is_empty());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.exe_mtime_ns.is_some());
        assert!(me.env.iter().any(|e| e.starts_with("PATH=")));
    }
}

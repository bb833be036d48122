//! Event type names, and which event types a condition can match.
//!
//! Every rule is indexed by the event types its condition can match, so an event is only
//! evaluated against rules that could fire on it.

use std::collections::BTreeSet;

use super::condition::ast::{Check, Expr, Op, Operand, Rhs};

/// Linux syscall names (x86_64 plus generic ones): valid `evt.type` values.
pub static SYSCALL_NAMES: &[&str] = &[
    "_sysctl",
    "accept",
    "accept4",
    "access",
    "acct",
    "add_key",
    "adjtimex",
    "afs_syscall",
    "alarm",
    "arch_prctl",
    "bind",
    "bpf",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clock_settime",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "create_module",
    "delete_module",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_init",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "file_getattr",
    "file_setattr",
    "finit_module",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsconfig",
    "fsetxattr",
    "fsmount",
    "fsopen",
    "fspick",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_kernel_syms",
    "get_mempolicy",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getpmsg",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "getxattrat",
    "init_module",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "ioperm",
    "iopl",
    "ioprio_get",
    "ioprio_set",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lookup_dcookie",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "mbind",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "migrate_pages",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "nfsservctl",
    "open",
    "open_by_handle_at",
    "open_tree",
    "open_tree_attr",
    "openat",
    "openat2",
    "pause",
    "perf_event_open",
    "personality",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pivot_root",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_madvise",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "ptrace",
    "putpmsg",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "reboot",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "request_key",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "security",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "send",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setdomainname",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "sethostname",
    "setitimer",
    "setns",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "settimeofday",
    "setuid",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statmount",
    "statx",
    "swapoff",
    "swapon",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysfs",
    "sysinfo",
    "syslog",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "tuxcall",
    "umask",
    "umount2",
    "uname",
    "unlink",
    "unlinkat",
    "unshare",
    "uretprobe",
    "uselib",
    "userfaultfd",
    "ustat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vhangup",
    "vmsplice",
    "vserver",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// Falco's non-syscall event names, and Vigil's lifecycle events.
pub static OTHER_EVENT_NAMES: &[&str] = &[
    "procexit",
    "procfork",
    "procexec",
    "container",
    "signaldeliver",
    "switch",
    "pluginevent",
    "notification",
    "infra",
    "page_fault",
    "drop",
    "k8s",
    "mesos",
    "procinfo",
    "cpu_hotplug",
    "asyncevent",
];

/// Whether `name` is an event type Falco knows.
pub fn is_known(name: &str) -> bool {
    SYSCALL_NAMES.binary_search(&name).is_ok() || OTHER_EVENT_NAMES.contains(&name)
}

/// The event types a condition may match: a set, or everything except a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeSet {
    /// Only these types.
    Only(BTreeSet<String>),
    /// Every type but these (`Except(empty)` is every type).
    Except(BTreeSet<String>),
}

impl TypeSet {
    /// Every type.
    pub fn all() -> TypeSet {
        TypeSet::Except(BTreeSet::new())
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            TypeSet::Only(set) => set.contains(name),
            TypeSet::Except(set) => !set.contains(name),
        }
    }

    fn and(self, other: TypeSet) -> TypeSet {
        use TypeSet::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(a.intersection(&b).cloned().collect()),
            (Only(a), Except(b)) | (Except(b), Only(a)) => {
                Only(a.difference(&b).cloned().collect())
            }
            (Except(a), Except(b)) => Except(a.union(&b).cloned().collect()),
        }
    }

    fn or(self, other: TypeSet) -> TypeSet {
        use TypeSet::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(a.union(&b).cloned().collect()),
            (Only(a), Except(b)) | (Except(b), Only(a)) => {
                Except(b.difference(&a).cloned().collect())
            }
            (Except(a), Except(b)) => Except(a.intersection(&b).cloned().collect()),
        }
    }

    fn not(self) -> TypeSet {
        match self {
            TypeSet::Only(set) => TypeSet::Except(set),
            TypeSet::Except(set) => TypeSet::Only(set),
        }
    }
}

/// The event types `expr` can match (macros must be expanded already).
pub fn type_set(expr: &Expr) -> TypeSet {
    match expr {
        Expr::And(items, _) => items
            .iter()
            .map(type_set)
            .fold(TypeSet::all(), TypeSet::and),
        Expr::Or(items, _) => items
            .iter()
            .map(type_set)
            .fold(TypeSet::Only(BTreeSet::new()), TypeSet::or),
        // Negating an expression about other fields says nothing about the event type.
        Expr::Not(inner, _) if only_event_types(inner) => type_set(inner).not(),
        Expr::Not(..) | Expr::Macro(..) => TypeSet::all(),
        Expr::Check(check) => check_types(check).unwrap_or_else(TypeSet::all),
    }
}

fn is_evt_type(check: &Check) -> bool {
    matches!(&check.lhs, Operand::Field(field) if field.name == "evt.type" && field.arg.is_none())
}

fn only_event_types(expr: &Expr) -> bool {
    match expr {
        Expr::And(items, _) | Expr::Or(items, _) => items.iter().all(only_event_types),
        Expr::Not(inner, _) => only_event_types(inner),
        Expr::Macro(..) => false,
        Expr::Check(check) => check_types(check).is_some(),
    }
}

fn check_types(check: &Check) -> Option<TypeSet> {
    if !is_evt_type(check) || check.modifier.is_some() {
        return None;
    }
    let values: BTreeSet<String> = match &check.rhs {
        Rhs::Value(value) => [value.text.clone()].into(),
        Rhs::List(values, _) => values.iter().map(|v| v.text.clone()).collect(),
        _ => return None,
    };
    match check.op {
        Op::Eq | Op::In | Op::Intersects => Some(TypeSet::Only(values)),
        Op::Ne => Some(TypeSet::Except(values)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_for_binary_search() {
        assert!(SYSCALL_NAMES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_known("openat") && is_known("procexit") && is_known("userfaultfd"));
        assert!(!is_known("opnat"));
    }

    #[test]
    fn set_algebra() {
        let only = |names: &[&str]| TypeSet::Only(names.iter().map(|s| s.to_string()).collect());
        let except =
            |names: &[&str]| TypeSet::Except(names.iter().map(|s| s.to_string()).collect());
        assert_eq!(only(&["a", "b"]).and(only(&["b", "c"])), only(&["b"]));
        assert_eq!(only(&["a", "b"]).and(except(&["b"])), only(&["a"]));
        assert_eq!(only(&["a"]).or(except(&["a", "b"])), except(&["b"]));
        assert_eq!(except(&["a"]).or(except(&["a", "b"])), except(&["a"]));
        assert!(TypeSet::all().contains("anything"));
    }
}

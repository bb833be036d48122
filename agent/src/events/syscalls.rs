//! The syscalls Vigil traces: one table that says how the kernel side captures each call and how
//! userspace names and interprets its parameters (with Falco's parameter names, so that
//! `evt.arg.<name>` means what it means in Falco).

use agent_common::{NO_ARG, STR_SLOTS, SyscallRecipe, recipe_flags, sockaddr_mode};

/// Vigil's architecture-independent syscall identity (the record's `syscall_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[allow(missing_docs)] // each variant is the syscall of the same name
pub enum Syscall {
    Execve = 1,
    Execveat,
    Open,
    Openat,
    Openat2,
    Creat,
    Connect,
    Accept,
    Accept4,
    Bind,
    Listen,
    Socket,
    Dup,
    Dup2,
    Dup3,
    Close,
    Ptrace,
    Symlink,
    Symlinkat,
    Link,
    Linkat,
    Unlink,
    Unlinkat,
    Rename,
    Renameat,
    Renameat2,
    Mkdir,
    Mkdirat,
    Rmdir,
    Chmod,
    Fchmod,
    Fchmodat,
    Setuid,
    Setgid,
    Setreuid,
    Setregid,
    Setresuid,
    Setresgid,
    InitModule,
    FinitModule,
    MemfdCreate,
    Mount,
    Umount2,
    Setns,
    Unshare,
    Bpf,
    Sendto,
    Sendmsg,
    Chdir,
    Fchdir,
    Fcntl,
    Clone,
    Clone3,
    Userfaultfd,
    Recvfrom,
    Kill,
    Tkill,
    Tgkill,
}

/// Where a parameter's value comes from in a syscall record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The return value.
    Ret,
    /// Raw argument `n`.
    Arg(u8),
    /// Word `n` read through the recipe's `aux_arg`.
    Aux(u8),
    /// String slot `n`.
    Str(u8),
    /// The captured socket address.
    SockAddr,
    /// The captured argv.
    Argv,
    /// The captured I/O buffer.
    Buffer,
}

/// How a parameter's value is interpreted and rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A file descriptor (negative means an error or `AT_FDCWD`).
    Fd,
    /// A signed integer.
    Int,
    /// An unsigned integer.
    Uint,
    /// A process id.
    Pid,
    /// A user id.
    Uid,
    /// A group id.
    Gid,
    /// A filesystem path, resolved against the directory fd in argument `dirfd` (or the cwd).
    Path {
        /// Argument index of the directory fd, if the syscall takes one.
        dirfd: Option<u8>,
    },
    /// A string that is not resolved (a symlink's target, a name, module parameters).
    Str,
    /// `open` flags.
    OpenFlags,
    /// A file mode given to open/creat/mkdir, rendered in octal.
    Mode,
    /// A file mode given to chmod, rendered as `S_*` bits (rules match `S_ISUID`).
    ModeBits,
    /// A ptrace request.
    PtraceRequest,
    /// A socket address family.
    SocketFamily,
    /// A socket type with flags.
    SocketType,
    /// A socket protocol (family-dependent).
    SocketProto,
    /// `clone` flags (the low byte is the exit signal).
    CloneFlags,
    /// `unshare`/`setns`/`clone3` namespace flags (no exit signal in the low byte).
    NsFlags,
    /// `mount` flags.
    MountFlags,
    /// `umount2` flags.
    UmountFlags,
    /// `AT_*` flags.
    AtFlags,
    /// `renameat2` flags.
    RenameFlags,
    /// `memfd_create` flags.
    MemfdFlags,
    /// `dup3` flags.
    Dup3Flags,
    /// `accept4` flags.
    Accept4Flags,
    /// An `fcntl` command.
    FcntlCmd,
    /// A `bpf` command.
    BpfCmd,
    /// `finit_module` flags.
    FinitFlags,
    /// A socket address.
    SockAddr,
    /// An argument vector.
    Argv,
    /// Bytes transferred by an I/O call.
    Bytes,
}

/// One named parameter of a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// Falco's parameter name (`evt.arg.<name>`).
    pub name: &'static str,
    /// Where the value is in the record.
    pub source: Source,
    /// How to read and render it.
    pub kind: Kind,
}

/// Kernel-side capture instructions of one syscall (becomes a [`SyscallRecipe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Argument index per string slot, or `NO_ARG`.
    pub str_args: [u8; STR_SLOTS],
    /// A `sockaddr_mode` value, with the pointer and length argument indexes.
    pub sockaddr: (u8, u8, u8),
    /// Argument whose user struct's first three words are copied to `aux`.
    pub aux_arg: u8,
    /// Argument holding argv.
    pub argv_arg: u8,
    /// Argument pointing to an I/O buffer (captured only when rules read `evt.buffer`).
    pub buf_arg: u8,
    /// `recipe_flags` bits.
    pub flags: u8,
}

const NO_SOCKADDR: (u8, u8, u8) = (sockaddr_mode::NONE, NO_ARG, NO_ARG);

impl Capture {
    /// Capture nothing but the raw arguments and the return value.
    pub const ARGS: Capture = Capture {
        str_args: [NO_ARG; STR_SLOTS],
        sockaddr: NO_SOCKADDR,
        aux_arg: NO_ARG,
        argv_arg: NO_ARG,
        buf_arg: NO_ARG,
        flags: 0,
    };

    const fn strings(a: u8, b: u8, c: u8) -> Capture {
        Capture {
            str_args: [a, b, c],
            ..Capture::ARGS
        }
    }

    const fn sockaddr(mode: u8, ptr: u8, len: u8) -> Capture {
        Capture {
            sockaddr: (mode, ptr, len),
            ..Capture::ARGS
        }
    }
}

/// Everything Vigil knows about one traced syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallSpec {
    /// The syscall.
    pub syscall: Syscall,
    /// Its name, as `evt.type` shows it.
    pub name: &'static str,
    /// Kernel-side capture.
    pub capture: Capture,
    /// Parameters in Falco's order and naming.
    pub params: &'static [Param],
}

impl SyscallSpec {
    /// The recipe the kernel side needs for this syscall; I/O buffers are copied only with
    /// `capture_buffers`.
    pub fn recipe(&self, capture_buffers: bool) -> SyscallRecipe {
        let (mode, ptr, len) = self.capture.sockaddr;
        SyscallRecipe {
            id: self.syscall as u16,
            flags: self.capture.flags,
            sockaddr_mode: mode,
            sockaddr_arg: ptr,
            sockaddr_len_arg: len,
            aux_arg: self.capture.aux_arg,
            argv_arg: self.capture.argv_arg,
            str_args: self.capture.str_args,
            buf_arg: if capture_buffers {
                self.capture.buf_arg
            } else {
                NO_ARG
            },
            reserved: [0; 4],
        }
    }

    /// Whether the kernel reports this syscall as a record (clone and clone3 are only stashed,
    /// for the fork tracepoint to tell threads from processes).
    pub fn emits_records(&self) -> bool {
        self.capture.flags & recipe_flags::STASH_ONLY == 0
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The capture of a credentials change: its arguments, and the caller's identity from before
/// the call (the record's header has the one after it).
const CREDS_CHANGE: Capture = Capture {
    flags: recipe_flags::CREDS_AT_ENTRY,
    ..Capture::ARGS
};
/// The caller's real uid before a credentials change (Vigil's own parameter).
const OLD_UID: Param = p("olduid", Source::Aux(0), Kind::Uid);
/// The caller's real gid before a credentials change (Vigil's own parameter).
const OLD_GID: Param = p("oldgid", Source::Aux(1), Kind::Gid);

const fn p(name: &'static str, source: Source, kind: Kind) -> Param {
    Param { name, source, kind }
}

const RES: Param = p("res", Source::Ret, Kind::Int);
const FD_RES: Param = p("fd", Source::Ret, Kind::Fd);
const CWD: Option<u8> = None;

use Kind as K;
use Source as S;

/// Every traced syscall. Order is irrelevant; lookups go through [`spec`].
pub static SYSCALLS: &[SyscallSpec] = &[
    SyscallSpec {
        syscall: Syscall::Execve,
        name: "execve",
        capture: Capture {
            str_args: [0, NO_ARG, NO_ARG],
            argv_arg: 1,
            flags: recipe_flags::EXEC,
            ..Capture::ARGS
        },
        params: &[
            RES,
            p("filename", S::Str(0), K::Path { dirfd: CWD }),
            p("args", S::Argv, K::Argv),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Execveat,
        name: "execveat",
        capture: Capture {
            str_args: [1, NO_ARG, NO_ARG],
            argv_arg: 2,
            flags: recipe_flags::EXEC,
            ..Capture::ARGS
        },
        params: &[
            RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("pathname", S::Str(0), K::Path { dirfd: Some(0) }),
            p("args", S::Argv, K::Argv),
            p("flags", S::Arg(4), K::AtFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Open,
        name: "open",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            FD_RES,
            p("name", S::Str(0), K::Path { dirfd: CWD }),
            p("flags", S::Arg(1), K::OpenFlags),
            p("mode", S::Arg(2), K::Mode),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Openat,
        name: "openat",
        capture: Capture::strings(1, NO_ARG, NO_ARG),
        params: &[
            FD_RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("name", S::Str(0), K::Path { dirfd: Some(0) }),
            p("flags", S::Arg(2), K::OpenFlags),
            p("mode", S::Arg(3), K::Mode),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Openat2,
        name: "openat2",
        capture: Capture {
            str_args: [1, NO_ARG, NO_ARG],
            aux_arg: 2,
            ..Capture::ARGS
        },
        params: &[
            FD_RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("name", S::Str(0), K::Path { dirfd: Some(0) }),
            p("flags", S::Aux(0), K::OpenFlags),
            p("mode", S::Aux(1), K::Mode),
            p("resolve", S::Aux(2), K::Uint),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Creat,
        name: "creat",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            FD_RES,
            p("name", S::Str(0), K::Path { dirfd: CWD }),
            p("mode", S::Arg(1), K::Mode),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Connect,
        name: "connect",
        capture: Capture {
            sockaddr: (sockaddr_mode::PTR_AND_LEN, 1, 2),
            flags: recipe_flags::LOCAL_ADDRESS,
            ..Capture::ARGS
        },
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Accept,
        name: "accept",
        capture: Capture::sockaddr(sockaddr_mode::PTR_AND_LEN_PTR, 1, 2),
        params: &[
            FD_RES,
            p("listenfd", S::Arg(0), K::Fd),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Accept4,
        name: "accept4",
        capture: Capture::sockaddr(sockaddr_mode::PTR_AND_LEN_PTR, 1, 2),
        params: &[
            FD_RES,
            p("listenfd", S::Arg(0), K::Fd),
            p("addr", S::SockAddr, K::SockAddr),
            p("flags", S::Arg(3), K::Accept4Flags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Bind,
        name: "bind",
        capture: Capture::sockaddr(sockaddr_mode::PTR_AND_LEN, 1, 2),
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Listen,
        name: "listen",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("backlog", S::Arg(1), K::Int),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Socket,
        name: "socket",
        capture: Capture::ARGS,
        params: &[
            FD_RES,
            p("domain", S::Arg(0), K::SocketFamily),
            p("type", S::Arg(1), K::SocketType),
            p("proto", S::Arg(2), K::SocketProto),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Dup,
        name: "dup",
        capture: Capture::ARGS,
        params: &[FD_RES, p("oldfd", S::Arg(0), K::Fd)],
    },
    SyscallSpec {
        syscall: Syscall::Dup2,
        name: "dup2",
        capture: Capture::ARGS,
        params: &[
            FD_RES,
            p("oldfd", S::Arg(0), K::Fd),
            p("newfd", S::Arg(1), K::Fd),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Dup3,
        name: "dup3",
        capture: Capture::ARGS,
        params: &[
            FD_RES,
            p("oldfd", S::Arg(0), K::Fd),
            p("newfd", S::Arg(1), K::Fd),
            p("flags", S::Arg(2), K::Dup3Flags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Close,
        name: "close",
        capture: Capture::ARGS,
        params: &[RES, p("fd", S::Arg(0), K::Fd)],
    },
    SyscallSpec {
        syscall: Syscall::Ptrace,
        name: "ptrace",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("request", S::Arg(0), K::PtraceRequest),
            p("pid", S::Arg(1), K::Pid),
            p("addr", S::Arg(2), K::Uint),
            p("data", S::Arg(3), K::Uint),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Symlink,
        name: "symlink",
        capture: Capture::strings(0, 1, NO_ARG),
        params: &[
            RES,
            p("target", S::Str(0), K::Str),
            p("linkpath", S::Str(1), K::Path { dirfd: CWD }),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Symlinkat,
        name: "symlinkat",
        capture: Capture::strings(0, 2, NO_ARG),
        params: &[
            RES,
            p("target", S::Str(0), K::Str),
            p("linkdirfd", S::Arg(1), K::Fd),
            p("linkpath", S::Str(1), K::Path { dirfd: Some(1) }),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Link,
        name: "link",
        capture: Capture::strings(0, 1, NO_ARG),
        params: &[
            RES,
            p("oldpath", S::Str(0), K::Path { dirfd: CWD }),
            p("newpath", S::Str(1), K::Path { dirfd: CWD }),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Linkat,
        name: "linkat",
        capture: Capture::strings(1, 3, NO_ARG),
        params: &[
            RES,
            p("olddir", S::Arg(0), K::Fd),
            p("oldpath", S::Str(0), K::Path { dirfd: Some(0) }),
            p("newdir", S::Arg(2), K::Fd),
            p("newpath", S::Str(1), K::Path { dirfd: Some(2) }),
            p("flags", S::Arg(4), K::AtFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Unlink,
        name: "unlink",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[RES, p("path", S::Str(0), K::Path { dirfd: CWD })],
    },
    SyscallSpec {
        syscall: Syscall::Unlinkat,
        name: "unlinkat",
        capture: Capture::strings(1, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("name", S::Str(0), K::Path { dirfd: Some(0) }),
            p("flags", S::Arg(2), K::AtFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Rename,
        name: "rename",
        capture: Capture::strings(0, 1, NO_ARG),
        params: &[
            RES,
            p("oldpath", S::Str(0), K::Path { dirfd: CWD }),
            p("newpath", S::Str(1), K::Path { dirfd: CWD }),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Renameat,
        name: "renameat",
        capture: Capture::strings(1, 3, NO_ARG),
        params: &[
            RES,
            p("olddirfd", S::Arg(0), K::Fd),
            p("oldpath", S::Str(0), K::Path { dirfd: Some(0) }),
            p("newdirfd", S::Arg(2), K::Fd),
            p("newpath", S::Str(1), K::Path { dirfd: Some(2) }),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Renameat2,
        name: "renameat2",
        capture: Capture::strings(1, 3, NO_ARG),
        params: &[
            RES,
            p("olddirfd", S::Arg(0), K::Fd),
            p("oldpath", S::Str(0), K::Path { dirfd: Some(0) }),
            p("newdirfd", S::Arg(2), K::Fd),
            p("newpath", S::Str(1), K::Path { dirfd: Some(2) }),
            p("flags", S::Arg(4), K::RenameFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Mkdir,
        name: "mkdir",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("path", S::Str(0), K::Path { dirfd: CWD }),
            p("mode", S::Arg(1), K::Mode),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Mkdirat,
        name: "mkdirat",
        capture: Capture::strings(1, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("path", S::Str(0), K::Path { dirfd: Some(0) }),
            p("mode", S::Arg(2), K::Mode),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Rmdir,
        name: "rmdir",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[RES, p("path", S::Str(0), K::Path { dirfd: CWD })],
    },
    SyscallSpec {
        syscall: Syscall::Chmod,
        name: "chmod",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("filename", S::Str(0), K::Path { dirfd: CWD }),
            p("mode", S::Arg(1), K::ModeBits),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Fchmod,
        name: "fchmod",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("mode", S::Arg(1), K::ModeBits),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Fchmodat,
        name: "fchmodat",
        capture: Capture::strings(1, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("dirfd", S::Arg(0), K::Fd),
            p("filename", S::Str(0), K::Path { dirfd: Some(0) }),
            p("mode", S::Arg(2), K::ModeBits),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Setuid,
        name: "setuid",
        capture: CREDS_CHANGE,
        params: &[RES, p("uid", S::Arg(0), K::Uid), OLD_UID, OLD_GID],
    },
    SyscallSpec {
        syscall: Syscall::Setgid,
        name: "setgid",
        capture: CREDS_CHANGE,
        params: &[RES, p("gid", S::Arg(0), K::Gid), OLD_UID, OLD_GID],
    },
    SyscallSpec {
        syscall: Syscall::Setreuid,
        name: "setreuid",
        capture: CREDS_CHANGE,
        params: &[
            RES,
            p("ruid", S::Arg(0), K::Uid),
            p("euid", S::Arg(1), K::Uid),
            OLD_UID,
            OLD_GID,
        ],
    },
    SyscallSpec {
        syscall: Syscall::Setregid,
        name: "setregid",
        capture: CREDS_CHANGE,
        params: &[
            RES,
            p("rgid", S::Arg(0), K::Gid),
            p("egid", S::Arg(1), K::Gid),
            OLD_UID,
            OLD_GID,
        ],
    },
    SyscallSpec {
        syscall: Syscall::Setresuid,
        name: "setresuid",
        capture: CREDS_CHANGE,
        params: &[
            RES,
            p("ruid", S::Arg(0), K::Uid),
            p("euid", S::Arg(1), K::Uid),
            p("suid", S::Arg(2), K::Uid),
            OLD_UID,
            OLD_GID,
        ],
    },
    SyscallSpec {
        syscall: Syscall::Setresgid,
        name: "setresgid",
        capture: CREDS_CHANGE,
        params: &[
            RES,
            p("rgid", S::Arg(0), K::Gid),
            p("egid", S::Arg(1), K::Gid),
            p("sgid", S::Arg(2), K::Gid),
            OLD_UID,
            OLD_GID,
        ],
    },
    SyscallSpec {
        syscall: Syscall::InitModule,
        name: "init_module",
        capture: Capture::strings(2, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("length", S::Arg(1), K::Uint),
            p("uargs", S::Str(0), K::Str),
        ],
    },
    SyscallSpec {
        syscall: Syscall::FinitModule,
        name: "finit_module",
        capture: Capture::strings(1, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("uargs", S::Str(0), K::Str),
            p("flags", S::Arg(2), K::FinitFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::MemfdCreate,
        name: "memfd_create",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            FD_RES,
            p("name", S::Str(0), K::Str),
            p("flags", S::Arg(1), K::MemfdFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Mount,
        name: "mount",
        capture: Capture::strings(0, 1, 2),
        params: &[
            RES,
            p("dev", S::Str(0), K::Str),
            p("dir", S::Str(1), K::Path { dirfd: CWD }),
            p("type", S::Str(2), K::Str),
            p("flags", S::Arg(3), K::MountFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Umount2,
        name: "umount2",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[
            RES,
            p("name", S::Str(0), K::Path { dirfd: CWD }),
            p("flags", S::Arg(1), K::UmountFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Setns,
        name: "setns",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("nstype", S::Arg(1), K::NsFlags),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Unshare,
        name: "unshare",
        capture: Capture::ARGS,
        params: &[RES, p("flags", S::Arg(0), K::NsFlags)],
    },
    SyscallSpec {
        syscall: Syscall::Bpf,
        name: "bpf",
        capture: Capture::ARGS,
        params: &[FD_RES, p("cmd", S::Arg(0), K::BpfCmd)],
    },
    SyscallSpec {
        syscall: Syscall::Sendto,
        name: "sendto",
        capture: Capture::sockaddr(sockaddr_mode::PTR_AND_LEN, 4, 5),
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("size", S::Arg(2), K::Uint),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Sendmsg,
        name: "sendmsg",
        capture: Capture::sockaddr(sockaddr_mode::MSGHDR, 1, NO_ARG),
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Chdir,
        name: "chdir",
        capture: Capture::strings(0, NO_ARG, NO_ARG),
        params: &[RES, p("path", S::Str(0), K::Path { dirfd: CWD })],
    },
    SyscallSpec {
        syscall: Syscall::Fchdir,
        name: "fchdir",
        capture: Capture::ARGS,
        params: &[RES, p("fd", S::Arg(0), K::Fd)],
    },
    SyscallSpec {
        syscall: Syscall::Fcntl,
        name: "fcntl",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("fd", S::Arg(0), K::Fd),
            p("cmd", S::Arg(1), K::FcntlCmd),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Clone,
        name: "clone",
        capture: Capture {
            flags: recipe_flags::STASH_ONLY | recipe_flags::CLONE_FLAGS_ARG0,
            ..Capture::ARGS
        },
        params: &[RES, p("flags", S::Arg(0), K::CloneFlags)],
    },
    SyscallSpec {
        syscall: Syscall::Clone3,
        name: "clone3",
        capture: Capture {
            aux_arg: 0,
            flags: recipe_flags::STASH_ONLY | recipe_flags::CLONE_FLAGS_AUX0,
            ..Capture::ARGS
        },
        params: &[RES, p("flags", S::Aux(0), K::NsFlags)],
    },
    SyscallSpec {
        syscall: Syscall::Userfaultfd,
        name: "userfaultfd",
        capture: Capture::ARGS,
        params: &[FD_RES, p("flags", S::Arg(0), K::Uint)],
    },
    SyscallSpec {
        syscall: Syscall::Recvfrom,
        name: "recvfrom",
        capture: Capture {
            sockaddr: (sockaddr_mode::PTR_AND_LEN_PTR, 4, 5),
            buf_arg: 1,
            ..Capture::ARGS
        },
        params: &[
            RES,
            p("data", S::Buffer, K::Bytes),
            p("fd", S::Arg(0), K::Fd),
            p("size", S::Arg(2), K::Uint),
            p("addr", S::SockAddr, K::SockAddr),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Kill,
        name: "kill",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("pid", S::Arg(0), K::Pid),
            p("sig", S::Arg(1), K::Int),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Tkill,
        name: "tkill",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("tid", S::Arg(0), K::Pid),
            p("sig", S::Arg(1), K::Int),
        ],
    },
    SyscallSpec {
        syscall: Syscall::Tgkill,
        name: "tgkill",
        capture: Capture::ARGS,
        params: &[
            RES,
            p("pid", S::Arg(0), K::Pid),
            p("tid", S::Arg(1), K::Pid),
            p("sig", S::Arg(2), K::Int),
        ],
    },
];

/// Syscalls traced only when a loaded rule needs them: they are frequent enough that tracing
/// them always would cost every workload.
pub const OPT_IN: &[Syscall] = &[Syscall::Recvfrom];

/// Syscalls the process state needs whatever the rules: an exec's path and argv, clone flags
/// (a thread or a process), the working directory (relative paths), and the calls that
/// signal or trace the agent itself (its self-observation).
pub const PROCESS_STATE: &[Syscall] = &[
    Syscall::Execve,
    Syscall::Execveat,
    Syscall::Clone,
    Syscall::Clone3,
    Syscall::Chdir,
    Syscall::Fchdir,
    Syscall::Kill,
    Syscall::Tkill,
    Syscall::Tgkill,
    Syscall::Ptrace,
];

/// Syscalls whose failed calls are always recorded: a connect in progress (`EINPROGRESS`) is
/// state, and a failed attempt to signal or trace the agent is still reported.
pub const KEEP_FAILED: &[Syscall] = &[
    Syscall::Connect,
    Syscall::Kill,
    Syscall::Tkill,
    Syscall::Tgkill,
    Syscall::Ptrace,
    Syscall::Clone,
    Syscall::Clone3,
];

/// Syscalls that open a file by path. Even a failed one describes the file it tried: Falco
/// gives its event `fd.num` -1 and the path in `fd.name`.
pub const OPENS: &[Syscall] = &[
    Syscall::Open,
    Syscall::Openat,
    Syscall::Openat2,
    Syscall::Creat,
];

/// Syscalls that keep the file descriptor table, which every `fd.*` field reads: what opens,
/// duplicates, addresses and closes descriptors.
pub const FD_STATE: &[Syscall] = &[
    Syscall::Open,
    Syscall::Openat,
    Syscall::Openat2,
    Syscall::Creat,
    Syscall::Socket,
    Syscall::Connect,
    Syscall::Accept,
    Syscall::Accept4,
    Syscall::Bind,
    Syscall::Dup,
    Syscall::Dup2,
    Syscall::Dup3,
    Syscall::Fcntl,
    Syscall::MemfdCreate,
    Syscall::Close,
];

/// The syscalls traced by default.
pub fn default_interest() -> impl Iterator<Item = Syscall> {
    SYSCALLS
        .iter()
        .map(|spec| spec.syscall)
        .filter(|syscall| !OPT_IN.contains(syscall))
}

/// The spec of `syscall`.
pub fn spec(syscall: Syscall) -> &'static SyscallSpec {
    // The table is ordered like the enum; the fallback search guards against a reordering.
    let index = syscall as usize - 1;
    match SYSCALLS.get(index) {
        Some(spec) if spec.syscall == syscall => spec,
        _ => SYSCALLS
            .iter()
            .find(|spec| spec.syscall == syscall)
            .unwrap_or(&SYSCALLS[0]),
    }
}

/// The spec of the syscall whose record id is `id`.
pub fn spec_by_id(id: u16) -> Option<&'static SyscallSpec> {
    let index = usize::from(id).checked_sub(1)?;
    SYSCALLS
        .get(index)
        .filter(|spec| spec.syscall as u16 == id)
        .or_else(|| SYSCALLS.iter().find(|spec| spec.syscall as u16 == id))
}

/// The spec of the syscall called `name` (as `evt.type` names it).
pub fn spec_by_name(name: &str) -> Option<&'static SyscallSpec> {
    SYSCALLS.iter().find(|spec| spec.name == name)
}

/// This architecture's number for `syscall`, or `None` where the architecture lacks it (arm64
/// has only the `*at` forms).
pub fn arch_number(syscall: Syscall) -> Option<i64> {
    use Syscall::*;
    let nr = match syscall {
        Execve => libc::SYS_execve,
        Execveat => libc::SYS_execveat,
        Openat => libc::SYS_openat,
        Openat2 => libc::SYS_openat2,
        Connect => libc::SYS_connect,
        Accept => libc::SYS_accept,
        Accept4 => libc::SYS_accept4,
        Bind => libc::SYS_bind,
        Listen => libc::SYS_listen,
        Socket => libc::SYS_socket,
        Dup => libc::SYS_dup,
        Dup3 => libc::SYS_dup3,
        Close => libc::SYS_close,
        Ptrace => libc::SYS_ptrace,
        Symlinkat => libc::SYS_symlinkat,
        Linkat => libc::SYS_linkat,
        Unlinkat => libc::SYS_unlinkat,
        Renameat => libc::SYS_renameat,
        Renameat2 => libc::SYS_renameat2,
        Mkdirat => libc::SYS_mkdirat,
        Fchmod => libc::SYS_fchmod,
        Fchmodat => libc::SYS_fchmodat,
        Setuid => libc::SYS_setuid,
        Setgid => libc::SYS_setgid,
        Setreuid => libc::SYS_setreuid,
        Setregid => libc::SYS_setregid,
        Setresuid => libc::SYS_setresuid,
        Setresgid => libc::SYS_setresgid,
        InitModule => libc::SYS_init_module,
        FinitModule => libc::SYS_finit_module,
        MemfdCreate => libc::SYS_memfd_create,
        Mount => libc::SYS_mount,
        Umount2 => libc::SYS_umount2,
        Setns => libc::SYS_setns,
        Unshare => libc::SYS_unshare,
        Bpf => libc::SYS_bpf,
        Sendto => libc::SYS_sendto,
        Sendmsg => libc::SYS_sendmsg,
        Chdir => libc::SYS_chdir,
        Fchdir => libc::SYS_fchdir,
        Fcntl => libc::SYS_fcntl,
        Clone => libc::SYS_clone,
        Clone3 => libc::SYS_clone3,
        Userfaultfd => libc::SYS_userfaultfd,
        Recvfrom => libc::SYS_recvfrom,
        Kill => libc::SYS_kill,
        Tkill => libc::SYS_tkill,
        Tgkill => libc::SYS_tgkill,
        Open | Creat | Dup2 | Symlink | Link | Unlink | Rename | Mkdir | Rmdir | Chmod => {
            return legacy_number(syscall);
        }
    };
    Some(nr)
}

#[cfg(target_arch = "x86_64")]
fn legacy_number(syscall: Syscall) -> Option<i64> {
    use Syscall::*;
    Some(match syscall {
        Open => libc::SYS_open,
        Creat => libc::SYS_creat,
        Dup2 => libc::SYS_dup2,
        Symlink => libc::SYS_symlink,
        Link => libc::SYS_link,
        Unlink => libc::SYS_unlink,
        Rename => libc::SYS_rename,
        Mkdir => libc::SYS_mkdir,
        Rmdir => libc::SYS_rmdir,
        Chmod => libc::SYS_chmod,
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn legacy_number(_syscall: Syscall) -> Option<i64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_ordered_like_the_enum() {
        for (index, spec) in SYSCALLS.iter().enumerate() {
            assert_eq!(
                spec.syscall as usize,
                index + 1,
                "{} is out of order",
                spec.name
            );
            assert_eq!(
                spec_by_id(spec.syscall as u16).map(|s| s.name),
                Some(spec.name)
            );
            assert_eq!(
                spec_by_name(spec.name).map(|s| s.syscall),
                Some(spec.syscall)
            );
        }
        assert!(spec_by_id(0).is_none());
        assert!(spec_by_id(SYSCALLS.len() as u16 + 1).is_none());
    }

    #[test]
    fn names_and_numbers_are_unique() {
        let names: HashSet<_> = SYSCALLS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SYSCALLS.len());
        let numbers: Vec<_> = SYSCALLS
            .iter()
            .filter_map(|s| arch_number(s.syscall))
            .collect();
        let unique: HashSet<_> = numbers.iter().collect();
        assert_eq!(unique.len(), numbers.len());
        assert!(
            numbers
                .iter()
                .all(|&nr| (0..agent_common::MAX_SYSCALL_NR as i64).contains(&nr))
        );
    }

    #[test]
    fn params_reference_captured_data() {
        for spec in SYSCALLS {
            let mut names = HashSet::new();
            for param in spec.params {
                assert!(
                    names.insert(param.name),
                    "{}: duplicate {}",
                    spec.name,
                    param.name
                );
                match param.source {
                    Source::Str(slot) => assert_ne!(
                        spec.capture.str_args[slot as usize], NO_ARG,
                        "{}.{} reads an uncaptured string slot",
                        spec.name, param.name
                    ),
                    Source::SockAddr => assert_ne!(spec.capture.sockaddr.0, sockaddr_mode::NONE),
                    Source::Argv => assert_ne!(spec.capture.argv_arg, NO_ARG),
                    Source::Buffer => assert_ne!(spec.capture.buf_arg, NO_ARG),
                    Source::Aux(_) => assert!(
                        spec.capture.aux_arg != NO_ARG
                            || spec.capture.flags & recipe_flags::CREDS_AT_ENTRY != 0,
                        "{}.{} reads an uncaptured aux word",
                        spec.name,
                        param.name
                    ),
                    Source::Arg(n) => assert!(n < 6),
                    Source::Ret => {}
                }
                if let Kind::Path { dirfd: Some(arg) } = param.kind {
                    assert!(
                        spec.params
                            .iter()
                            .any(|p| p.source == Source::Arg(arg) && p.kind == Kind::Fd),
                        "{}.{} resolves against an undeclared dirfd",
                        spec.name,
                        param.name
                    );
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers_match_the_kernel_abi() {
        assert_eq!(arch_number(Syscall::Openat), Some(257));
        assert_eq!(arch_number(Syscall::Execve), Some(59));
        assert_eq!(arch_number(Syscall::Connect), Some(42));
        assert_eq!(arch_number(Syscall::Dup2), Some(33));
    }

    #[test]
    fn recipes_carry_the_capture() {
        let recipe = spec(Syscall::Execve).recipe(false);
        assert_eq!(recipe.id, Syscall::Execve as u16);
        assert_eq!(recipe.argv_arg, 1);
        assert_ne!(recipe.flags & recipe_flags::EXEC, 0);
        assert!(!spec(Syscall::Clone).emits_records());
        assert!(spec(Syscall::Openat).emits_records());
        assert_eq!(spec(Syscall::Recvfrom).recipe(true).buf_arg, 1);
        assert_eq!(spec(Syscall::Recvfrom).recipe(false).buf_arg, NO_ARG);
        assert!(!default_interest().any(|s| s == Syscall::Recvfrom));
    }
}

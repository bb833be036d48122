//! Falco-compatible text renderings of raw syscall argument values.
//!
//! Falco rules compare string renderings rather than numbers
//! (`evt.arg.flags contains O_TRUNC`, `evt.res = ENOENT`,
//! `thread.cap_effective contains CAP_SYS_ADMIN`), so the agent must produce
//! the same names libsinsp does. Every function here is pure and takes the
//! value exactly as the syscall received it on x86_64 Linux (not libscap's
//! `PPM_*` re-encoding).
//!
//! Flag sets render as names joined by `|`; bits with no name are appended as
//! one hex number so a rule author can still see them. Enumerations render as
//! their name, or as the decimal number when unknown, which is also what
//! libsinsp falls back to.

/// Value/name pairs; for flag tables the value may span several bits.
type Table = [(u64, &'static str)];

/// Builds a table entry from a `libc` constant, naming it after the constant
/// so a name can never drift from its value.
///
/// The double cast is deliberate: `libc` types these constants as `c_int`,
/// `c_uint` or `c_ulong` depending on the constant and the C library, and
/// `CLONE_IO` is a negative `c_int`; going through `u32` zero-extends bit 31
/// instead of sign-extending it, and every constant used with it fits 32 bits.
macro_rules! c {
    ($name:ident) => {
        (libc::$name as u32 as u64, stringify!($name))
    };
}

/// Joins the names of the table entries whose bits are all set in `value`,
/// in table order, then any leftover bits as one hex number.
///
/// Each matched entry removes its bits, so composite entries listed before
/// their parts (`O_SYNC` before `O_DSYNC`) win and the parts are not repeated.
fn render_bits(value: u64, table: &Table, zero_text: &str) -> String {
    if value == 0 {
        return zero_text.to_owned();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut rest = value;
    for &(bits, name) in table {
        if bits != 0 && rest & bits == bits {
            parts.push(name.to_owned());
            rest &= !bits;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// Exact-match lookup for enumeration tables.
fn lookup(value: u64, table: &Table) -> Option<&'static str> {
    table
        .iter()
        .find(|&&(v, _)| v == value)
        .map(|&(_, name)| name)
}

/// Renders an enumeration value, falling back to decimal like libsinsp.
fn render_enum(value: u64, table: &Table) -> String {
    lookup(value, table).map_or_else(|| value.to_string(), str::to_owned)
}

/// Linux generic errno names (1..=133); aliases such as `EWOULDBLOCK`,
/// `EDEADLOCK` and `ENOTSUP` are omitted so each number has one name, the one
/// libsinsp prints.
const ERRNO_NAMES: &Table = &[
    c!(EPERM),
    c!(ENOENT),
    c!(ESRCH),
    c!(EINTR),
    c!(EIO),
    c!(ENXIO),
    c!(E2BIG),
    c!(ENOEXEC),
    c!(EBADF),
    c!(ECHILD),
    c!(EAGAIN),
    c!(ENOMEM),
    c!(EACCES),
    c!(EFAULT),
    c!(ENOTBLK),
    c!(EBUSY),
    c!(EEXIST),
    c!(EXDEV),
    c!(ENODEV),
    c!(ENOTDIR),
    c!(EISDIR),
    c!(EINVAL),
    c!(ENFILE),
    c!(EMFILE),
    c!(ENOTTY),
    c!(ETXTBSY),
    c!(EFBIG),
    c!(ENOSPC),
    c!(ESPIPE),
    c!(EROFS),
    c!(EMLINK),
    c!(EPIPE),
    c!(EDOM),
    c!(ERANGE),
    c!(EDEADLK),
    c!(ENAMETOOLONG),
    c!(ENOLCK),
    c!(ENOSYS),
    c!(ENOTEMPTY),
    c!(ELOOP),
    c!(ENOMSG),
    c!(EIDRM),
    c!(ECHRNG),
    c!(EL2NSYNC),
    c!(EL3HLT),
    c!(EL3RST),
    c!(ELNRNG),
    c!(EUNATCH),
    c!(ENOCSI),
    c!(EL2HLT),
    c!(EBADE),
    c!(EBADR),
    c!(EXFULL),
    c!(ENOANO),
    c!(EBADRQC),
    c!(EBADSLT),
    c!(EBFONT),
    c!(ENOSTR),
    c!(ENODATA),
    c!(ETIME),
    c!(ENOSR),
    c!(ENONET),
    c!(ENOPKG),
    c!(EREMOTE),
    c!(ENOLINK),
    c!(EADV),
    c!(ESRMNT),
    c!(ECOMM),
    c!(EPROTO),
    c!(EMULTIHOP),
    c!(EDOTDOT),
    c!(EBADMSG),
    c!(EOVERFLOW),
    c!(ENOTUNIQ),
    c!(EBADFD),
    c!(EREMCHG),
    c!(ELIBACC),
    c!(ELIBBAD),
    c!(ELIBSCN),
    c!(ELIBMAX),
    c!(ELIBEXEC),
    c!(EILSEQ),
    c!(ERESTART),
    c!(ESTRPIPE),
    c!(EUSERS),
    c!(ENOTSOCK),
    c!(EDESTADDRREQ),
    c!(EMSGSIZE),
    c!(EPROTOTYPE),
    c!(ENOPROTOOPT),
    c!(EPROTONOSUPPORT),
    c!(ESOCKTNOSUPPORT),
    c!(EOPNOTSUPP),
    c!(EPFNOSUPPORT),
    c!(EAFNOSUPPORT),
    c!(EADDRINUSE),
    c!(EADDRNOTAVAIL),
    c!(ENETDOWN),
    c!(ENETUNREACH),
    c!(ENETRESET),
    c!(ECONNABORTED),
    c!(ECONNRESET),
    c!(ENOBUFS),
    c!(EISCONN),
    c!(ENOTCONN),
    c!(ESHUTDOWN),
    c!(ETOOMANYREFS),
    c!(ETIMEDOUT),
    c!(ECONNREFUSED),
    c!(EHOSTDOWN),
    c!(EHOSTUNREACH),
    c!(EALREADY),
    c!(EINPROGRESS),
    c!(ESTALE),
    c!(EUCLEAN),
    c!(ENOTNAM),
    c!(ENAVAIL),
    c!(EISNAM),
    c!(EREMOTEIO),
    c!(EDQUOT),
    c!(ENOMEDIUM),
    c!(EMEDIUMTYPE),
    c!(ECANCELED),
    c!(ENOKEY),
    c!(EKEYEXPIRED),
    c!(EKEYREVOKED),
    c!(EKEYREJECTED),
    c!(EOWNERDEAD),
    c!(ENOTRECOVERABLE),
    c!(ERFKILL),
    c!(EHWPOISON),
];

/// Returns the symbolic name of a positive errno value, e.g. `2` → `"ENOENT"`.
pub fn errno_name(errno: i64) -> Option<&'static str> {
    lookup(u64::try_from(errno).ok()?, ERRNO_NAMES)
}

/// Renders a syscall return value as Falco's `evt.res`: `"SUCCESS"` for any
/// non-negative value, otherwise the errno name of `-ret`.
///
/// An unknown negative value renders as its own decimal text (`"-600"`),
/// which is what libsinsp shows when it has no name for it.
pub fn render_res(ret: i64) -> String {
    if ret >= 0 {
        return "SUCCESS".to_owned();
    }
    ret.checked_neg()
        .and_then(errno_name)
        .map_or_else(|| ret.to_string(), str::to_owned)
}

/// Mask of the two access-mode bits of `open(2)` flags.
const O_ACCMODE: u64 = libc::O_ACCMODE as u64;

/// The access modes are values of a two-bit field, not flags; `O_RDONLY` is 0.
const OPEN_ACCESS_MODES: &Table = &[c!(O_RDONLY), c!(O_WRONLY), c!(O_RDWR)];

/// Open flags other than the access mode, in ascending bit order.
///
/// `O_SYNC` and `O_TMPFILE` are multi-bit and must precede `O_DSYNC` and
/// `O_DIRECTORY`, whose bits they include. `O_LARGEFILE` and `FASYNC` are
/// literals because glibc's x86_64 `O_LARGEFILE` is 0 (the kernel still
/// receives 0o100000 from 32-bit callers) and `libc` lacks `FASYNC`.
const OPEN_FLAG_BITS: &Table = &[
    c!(O_CREAT),
    c!(O_EXCL),
    c!(O_NOCTTY),
    c!(O_TRUNC),
    c!(O_APPEND),
    c!(O_NONBLOCK),
    c!(O_SYNC),
    c!(O_DSYNC),
    (0o20000, "O_ASYNC"),
    c!(O_DIRECT),
    (0o100000, "O_LARGEFILE"),
    c!(O_TMPFILE),
    c!(O_DIRECTORY),
    c!(O_NOFOLLOW),
    c!(O_NOATIME),
    c!(O_CLOEXEC),
    c!(O_PATH),
];

/// Renders `open`/`openat`/`openat2`/`creat` flags, access mode first, e.g.
/// `0o1101` → `"O_WRONLY|O_CREAT|O_TRUNC"` and `0` → `"O_RDONLY"`.
///
/// The invalid access mode 3 renders as `0x3` in first position.
pub fn open_flags(flags: u64) -> String {
    let mode = flags & O_ACCMODE;
    let access =
        lookup(mode, OPEN_ACCESS_MODES).map_or_else(|| format!("{mode:#x}"), str::to_owned);
    let rest = render_bits(flags & !O_ACCMODE, OPEN_FLAG_BITS, "");
    if rest.is_empty() {
        access
    } else {
        format!("{access}|{rest}")
    }
}

/// Whether open flags request write access (`evt.is_open_write`): access mode
/// `O_WRONLY` or `O_RDWR`.
pub fn open_mode_is_write(flags: u64) -> bool {
    let mode = flags & O_ACCMODE;
    mode == libc::O_WRONLY as u64 || mode == libc::O_RDWR as u64
}

/// Whether open flags request read access (`evt.is_open_read`): access mode
/// `O_RDONLY` or `O_RDWR`.
///
/// Like libsinsp this looks only at the access mode, so an `O_PATH` open
/// counts as a read.
pub fn open_mode_is_read(flags: u64) -> bool {
    let mode = flags & O_ACCMODE;
    mode == libc::O_RDONLY as u64 || mode == libc::O_RDWR as u64
}

/// Renders a file mode in octal with a leading 0 (`0o644` → `"0644"`,
/// `0` → `"0"`), like libsinsp's raw `PT_MODE` text.
pub fn file_mode(mode: u64) -> String {
    if mode == 0 {
        "0".to_owned()
    } else {
        format!("0{mode:o}")
    }
}

/// Permission bits in ascending order, matching libsinsp's `chmod_mode` table.
const MODE_BITS: &Table = &[
    c!(S_IXOTH),
    c!(S_IWOTH),
    c!(S_IROTH),
    c!(S_IXGRP),
    c!(S_IWGRP),
    c!(S_IRGRP),
    c!(S_IXUSR),
    c!(S_IWUSR),
    c!(S_IRUSR),
    c!(S_ISVTX),
    c!(S_ISGID),
    c!(S_ISUID),
];

/// Renders a file mode symbolically, e.g. `0o4755` →
/// `"S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"`.
///
/// This is what Falco's `evt.arg.mode` yields for chmod-family events, and
/// rules test it with `contains "S_ISUID"` / `contains "S_IXUSR"`. File-type
/// bits (`S_IFMT`) are not permissions and appear as hex; 0 renders as `"0"`.
pub fn mode_bits(mode: u64) -> String {
    render_bits(mode, MODE_BITS, "0")
}

/// ptrace requests for x86_64; those missing from `libc` are literals taken
/// from `linux/ptrace.h` and `asm/ptrace-abi.h`.
const PTRACE_REQUESTS: &Table = &[
    c!(PTRACE_TRACEME),
    c!(PTRACE_PEEKTEXT),
    c!(PTRACE_PEEKDATA),
    (3, "PTRACE_PEEKUSR"),
    c!(PTRACE_POKETEXT),
    c!(PTRACE_POKEDATA),
    (6, "PTRACE_POKEUSR"),
    c!(PTRACE_CONT),
    c!(PTRACE_KILL),
    c!(PTRACE_SINGLESTEP),
    c!(PTRACE_GETREGS),
    c!(PTRACE_SETREGS),
    c!(PTRACE_GETFPREGS),
    c!(PTRACE_SETFPREGS),
    c!(PTRACE_ATTACH),
    c!(PTRACE_DETACH),
    c!(PTRACE_GETFPXREGS),
    c!(PTRACE_SETFPXREGS),
    c!(PTRACE_SYSCALL),
    (25, "PTRACE_GET_THREAD_AREA"),
    (26, "PTRACE_SET_THREAD_AREA"),
    (30, "PTRACE_ARCH_PRCTL"),
    c!(PTRACE_SYSEMU),
    c!(PTRACE_SYSEMU_SINGLESTEP),
    (33, "PTRACE_SINGLEBLOCK"),
    c!(PTRACE_SETOPTIONS),
    c!(PTRACE_GETEVENTMSG),
    c!(PTRACE_GETSIGINFO),
    c!(PTRACE_SETSIGINFO),
    c!(PTRACE_GETREGSET),
    c!(PTRACE_SETREGSET),
    c!(PTRACE_SEIZE),
    c!(PTRACE_INTERRUPT),
    c!(PTRACE_LISTEN),
    c!(PTRACE_PEEKSIGINFO),
    c!(PTRACE_GETSIGMASK),
    c!(PTRACE_SETSIGMASK),
    (0x420c, "PTRACE_SECCOMP_GET_FILTER"),
    (0x420d, "PTRACE_SECCOMP_GET_METADATA"),
    c!(PTRACE_GET_SYSCALL_INFO),
    c!(PTRACE_GET_RSEQ_CONFIGURATION),
    c!(PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG),
    c!(PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG),
    c!(PTRACE_SET_SYSCALL_INFO),
];

/// Renders a ptrace request, e.g. `16` → `"PTRACE_ATTACH"`; unknown requests
/// render as the decimal number.
pub fn ptrace_request(req: u64) -> String {
    render_enum(req, PTRACE_REQUESTS)
}

/// Address families; `AF_LOCAL` and `AF_ROUTE` are aliases of `AF_UNIX` and
/// `AF_NETLINK` and deliberately absent so lookups find the canonical names.
/// Literals are families `libc` lacks (`linux/socket.h`).
const SOCKET_FAMILIES: &Table = &[
    c!(AF_UNSPEC),
    c!(AF_UNIX),
    c!(AF_INET),
    c!(AF_AX25),
    c!(AF_IPX),
    c!(AF_APPLETALK),
    c!(AF_NETROM),
    c!(AF_BRIDGE),
    c!(AF_ATMPVC),
    c!(AF_X25),
    c!(AF_INET6),
    c!(AF_ROSE),
    c!(AF_DECnet),
    c!(AF_NETBEUI),
    c!(AF_SECURITY),
    c!(AF_KEY),
    c!(AF_NETLINK),
    c!(AF_PACKET),
    c!(AF_ASH),
    c!(AF_ECONET),
    c!(AF_ATMSVC),
    c!(AF_RDS),
    c!(AF_SNA),
    c!(AF_IRDA),
    c!(AF_PPPOX),
    c!(AF_WANPIPE),
    c!(AF_LLC),
    c!(AF_IB),
    c!(AF_MPLS),
    c!(AF_CAN),
    c!(AF_TIPC),
    c!(AF_BLUETOOTH),
    c!(AF_IUCV),
    c!(AF_RXRPC),
    c!(AF_ISDN),
    c!(AF_PHONET),
    c!(AF_IEEE802154),
    c!(AF_CAIF),
    c!(AF_ALG),
    c!(AF_NFC),
    c!(AF_VSOCK),
    (41, "AF_KCM"),
    (42, "AF_QIPCRTR"),
    (43, "AF_SMC"),
    c!(AF_XDP),
    (45, "AF_MCTP"),
];

/// Renders a socket address family, e.g. `17` → `"AF_PACKET"`; unknown
/// families render as the decimal number.
pub fn socket_family(af: u64) -> String {
    render_enum(af, SOCKET_FAMILIES)
}

/// The kernel's `SOCK_TYPE_MASK`: the low nibble is the type, the rest flags.
const SOCK_TYPE_MASK: u64 = 0xf;

/// Socket types (values of the low nibble). `SOCK_PACKET` is a literal
/// because `libc` deprecates it, yet old tools still create such sockets.
const SOCKET_TYPES: &Table = &[
    c!(SOCK_STREAM),
    c!(SOCK_DGRAM),
    c!(SOCK_RAW),
    c!(SOCK_RDM),
    c!(SOCK_SEQPACKET),
    c!(SOCK_DCCP),
    (10, "SOCK_PACKET"),
];

/// Flags `socket(2)` accepts ORed into the type.
const SOCKET_TYPE_FLAGS: &Table = &[c!(SOCK_NONBLOCK), c!(SOCK_CLOEXEC)];

/// Renders a `socket(2)` type with its flags, e.g. `0x80801` →
/// `"SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"`; an unknown type renders as its
/// decimal number.
pub fn socket_type(ty: u64) -> String {
    let base = render_enum(ty & SOCK_TYPE_MASK, SOCKET_TYPES);
    let flags = render_bits(ty & !SOCK_TYPE_MASK, SOCKET_TYPE_FLAGS, "");
    if flags.is_empty() {
        base
    } else {
        format!("{base}|{flags}")
    }
}

/// IP protocols for `AF_INET`/`AF_INET6` sockets. `IPPROTO_IP` (0) is absent
/// on purpose: 0 means "the default for the type", not a protocol.
/// Literals are protocols `libc` lacks (`linux/in.h`).
const IP_PROTOCOLS: &Table = &[
    c!(IPPROTO_ICMP),
    c!(IPPROTO_IGMP),
    c!(IPPROTO_IPIP),
    c!(IPPROTO_TCP),
    c!(IPPROTO_EGP),
    c!(IPPROTO_PUP),
    c!(IPPROTO_UDP),
    c!(IPPROTO_IDP),
    c!(IPPROTO_TP),
    c!(IPPROTO_DCCP),
    c!(IPPROTO_IPV6),
    c!(IPPROTO_RSVP),
    c!(IPPROTO_GRE),
    c!(IPPROTO_ESP),
    c!(IPPROTO_AH),
    c!(IPPROTO_ICMPV6),
    c!(IPPROTO_MTP),
    c!(IPPROTO_BEETPH),
    c!(IPPROTO_ENCAP),
    c!(IPPROTO_PIM),
    c!(IPPROTO_COMP),
    (115, "IPPROTO_L2TP"),
    c!(IPPROTO_SCTP),
    c!(IPPROTO_UDPLITE),
    c!(IPPROTO_MPLS),
    c!(IPPROTO_ETHERNET),
    c!(IPPROTO_RAW),
    c!(IPPROTO_MPTCP),
];

/// Netlink protocols. Unlike IP, 0 is a real protocol (`NETLINK_ROUTE`).
/// `NETLINK_SMC` is a literal because `libc` lacks it.
const NETLINK_PROTOCOLS: &Table = &[
    c!(NETLINK_ROUTE),
    c!(NETLINK_UNUSED),
    c!(NETLINK_USERSOCK),
    c!(NETLINK_FIREWALL),
    c!(NETLINK_SOCK_DIAG),
    c!(NETLINK_NFLOG),
    c!(NETLINK_XFRM),
    c!(NETLINK_SELINUX),
    c!(NETLINK_ISCSI),
    c!(NETLINK_AUDIT),
    c!(NETLINK_FIB_LOOKUP),
    c!(NETLINK_CONNECTOR),
    c!(NETLINK_NETFILTER),
    c!(NETLINK_IP6_FW),
    c!(NETLINK_DNRTMSG),
    c!(NETLINK_KOBJECT_UEVENT),
    c!(NETLINK_GENERIC),
    c!(NETLINK_SCSITRANSPORT),
    c!(NETLINK_ECRYPTFS),
    c!(NETLINK_RDMA),
    c!(NETLINK_CRYPTO),
    (22, "NETLINK_SMC"),
];

/// Renders a `socket(2)` protocol in the context of its family: `IPPROTO_*`
/// names for `AF_INET`/`AF_INET6`, `NETLINK_*` names for `AF_NETLINK`
/// (where 0 is `"NETLINK_ROUTE"`), the decimal number otherwise (including
/// IP protocol 0 and `AF_PACKET` ethertypes, which are in network byte order).
pub fn socket_proto(family: u64, proto: u64) -> String {
    let table: &Table = match i32::try_from(family) {
        Ok(libc::AF_INET | libc::AF_INET6) => IP_PROTOCOLS,
        Ok(libc::AF_NETLINK) => NETLINK_PROTOCOLS,
        _ => &[],
    };
    render_enum(proto, table)
}

/// Capability names indexed by bit number (`linux/capability.h`); `libc`
/// has no capability constants.
const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Bits of a capability mask that have a name in [`CAPABILITY_NAMES`].
const KNOWN_CAPABILITIES: u64 = (1 << CAPABILITY_NAMES.len()) - 1;

/// Yields the names of the capabilities set in `mask`, in bit order; bits
/// above `CAP_CHECKPOINT_RESTORE` are skipped.
pub fn capability_names(mask: u64) -> impl Iterator<Item = &'static str> {
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(move |&(bit, _)| mask >> bit & 1 == 1)
        .map(|(_, &name)| name)
}

/// Renders a capability mask as Falco's `thread.cap_*` fields do: names in
/// bit order separated by single spaces, `""` for an empty mask, e.g.
/// `0b11` → `"CAP_CHOWN CAP_DAC_OVERRIDE"`.
///
/// Bits newer than this table are appended as one hex word rather than
/// dropped, so a kernel with new capabilities is visible in output.
pub fn capabilities(mask: u64) -> String {
    let mut words: Vec<String> = capability_names(mask).map(str::to_owned).collect();
    let unknown = mask & !KNOWN_CAPABILITIES;
    if unknown != 0 {
        words.push(format!("{unknown:#x}"));
    }
    words.join(" ")
}

/// The exit-signal byte of `clone(2)` flags.
const CSIGNAL: u64 = libc::CSIGNAL as u64;

/// `CLONE_*` flags in ascending bit order. `CLONE_NEWTIME` shares the
/// exit-signal byte, so only [`unshare_flags`] can see it. The clone3-only
/// flags above bit 31 are literals because `libc` declares them with an
/// overflowing 32-bit type.
const CLONE_FLAG_BITS: &Table = &[
    c!(CLONE_NEWTIME),
    c!(CLONE_VM),
    c!(CLONE_FS),
    c!(CLONE_FILES),
    c!(CLONE_SIGHAND),
    c!(CLONE_PIDFD),
    c!(CLONE_PTRACE),
    c!(CLONE_VFORK),
    c!(CLONE_PARENT),
    c!(CLONE_THREAD),
    c!(CLONE_NEWNS),
    c!(CLONE_SYSVSEM),
    c!(CLONE_SETTLS),
    c!(CLONE_PARENT_SETTID),
    c!(CLONE_CHILD_CLEARTID),
    c!(CLONE_DETACHED),
    c!(CLONE_UNTRACED),
    c!(CLONE_CHILD_SETTID),
    c!(CLONE_NEWCGROUP),
    c!(CLONE_NEWUTS),
    c!(CLONE_NEWIPC),
    c!(CLONE_NEWUSER),
    c!(CLONE_NEWPID),
    c!(CLONE_NEWNET),
    c!(CLONE_IO),
    (0x1_0000_0000, "CLONE_CLEAR_SIGHAND"),
    (0x2_0000_0000, "CLONE_INTO_CGROUP"),
];

/// Renders `clone(2)`/`clone3(2)` flags, e.g. `0x1200011` →
/// `"CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"`; the low byte (exit signal)
/// is ignored and no flags renders as `"0"`.
pub fn clone_flags(flags: u64) -> String {
    render_bits(flags & !CSIGNAL, CLONE_FLAG_BITS, "0")
}

/// Renders `unshare(2)` flags, a `setns(2)` nstype or `clone3(2)` flags with
/// the `CLONE_*` names. Unlike [`clone_flags`] the low byte is kept, because
/// in these calls it carries `CLONE_NEWTIME` rather than an exit signal;
/// 0 renders as `"0"`.
pub fn unshare_flags(flags: u64) -> String {
    render_bits(flags, CLONE_FLAG_BITS, "0")
}

/// Upper half of legacy `mount(2)` flags that may hold the `MS_MGC_VAL` magic.
const MS_MGC_MSK: u64 = c!(MS_MGC_MSK).0;
/// The legacy magic value the kernel strips before looking at the flags.
const MS_MGC_VAL: u64 = c!(MS_MGC_VAL).0;

/// `MS_*` flags in ascending bit order, including the kernel-internal ones
/// above `MS_LAZYTIME` so a stray bit still has a name.
const MOUNT_FLAG_BITS: &Table = &[
    c!(MS_RDONLY),
    c!(MS_NOSUID),
    c!(MS_NODEV),
    c!(MS_NOEXEC),
    c!(MS_SYNCHRONOUS),
    c!(MS_REMOUNT),
    c!(MS_MANDLOCK),
    c!(MS_DIRSYNC),
    c!(MS_NOSYMFOLLOW),
    c!(MS_NOATIME),
    c!(MS_NODIRATIME),
    c!(MS_BIND),
    c!(MS_MOVE),
    c!(MS_REC),
    c!(MS_SILENT),
    c!(MS_POSIXACL),
    c!(MS_UNBINDABLE),
    c!(MS_PRIVATE),
    c!(MS_SLAVE),
    c!(MS_SHARED),
    c!(MS_RELATIME),
    c!(MS_KERNMOUNT),
    c!(MS_I_VERSION),
    c!(MS_STRICTATIME),
    c!(MS_LAZYTIME),
    (1 << 26, "MS_SUBMOUNT"),
    (1 << 27, "MS_NOREMOTELOCK"),
    (1 << 28, "MS_NOSEC"),
    (1 << 29, "MS_BORN"),
    c!(MS_ACTIVE),
    c!(MS_NOUSER),
];

/// Renders `mount(2)` flags, e.g. `0x1021` → `"MS_RDONLY|MS_REMOUNT|MS_BIND"`.
///
/// When the upper 16 bits are the legacy `MS_MGC_VAL` magic they are dropped,
/// as the kernel does, since they are not flags; 0 renders as `"0"`.
pub fn mount_flags(flags: u64) -> String {
    let flags = if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags & !MS_MGC_MSK
    } else {
        flags
    };
    render_bits(flags, MOUNT_FLAG_BITS, "0")
}

/// `umount2(2)` flags.
const UMOUNT_FLAG_BITS: &Table = &[
    c!(MNT_FORCE),
    c!(MNT_DETACH),
    c!(MNT_EXPIRE),
    c!(UMOUNT_NOFOLLOW),
];

/// Renders `umount2(2)` flags, e.g. `2` → `"MNT_DETACH"`; 0 renders as `"0"`.
pub fn umount_flags(flags: u64) -> String {
    render_bits(flags, UMOUNT_FLAG_BITS, "0")
}

/// `AT_*` flags of the `*at` syscalls. 0x200 is named `AT_REMOVEDIR` because
/// the callers are linkat/unlinkat/fchmodat, not faccessat (`AT_EACCESS`).
const AT_FLAG_BITS: &Table = &[
    c!(AT_SYMLINK_NOFOLLOW),
    c!(AT_REMOVEDIR),
    c!(AT_SYMLINK_FOLLOW),
    c!(AT_NO_AUTOMOUNT),
    c!(AT_EMPTY_PATH),
];

/// Renders `*at` syscall flags, e.g. `0x200` → `"AT_REMOVEDIR"`; 0 renders
/// as `"0"`.
pub fn at_flags(flags: u64) -> String {
    render_bits(flags, AT_FLAG_BITS, "0")
}

/// `renameat2(2)` flags.
const RENAME_FLAG_BITS: &Table = &[
    c!(RENAME_NOREPLACE),
    c!(RENAME_EXCHANGE),
    c!(RENAME_WHITEOUT),
];

/// Renders `renameat2(2)` flags, e.g. `1` → `"RENAME_NOREPLACE"`; 0 renders
/// as `"0"`.
pub fn rename_flags(flags: u64) -> String {
    render_bits(flags, RENAME_FLAG_BITS, "0")
}

/// `memfd_create(2)` flags. The huge-page size field (bits 26..=31, used with
/// `MFD_HUGETLB`) is a number, not flags, and shows up as hex.
const MEMFD_FLAG_BITS: &Table = &[
    c!(MFD_CLOEXEC),
    c!(MFD_ALLOW_SEALING),
    c!(MFD_HUGETLB),
    c!(MFD_NOEXEC_SEAL),
    c!(MFD_EXEC),
];

/// Renders `memfd_create(2)` flags, e.g. `3` →
/// `"MFD_CLOEXEC|MFD_ALLOW_SEALING"`; 0 renders as `"0"`.
pub fn memfd_flags(flags: u64) -> String {
    render_bits(flags, MEMFD_FLAG_BITS, "0")
}

/// The only flag `dup3(2)` accepts.
const DUP3_FLAG_BITS: &Table = &[c!(O_CLOEXEC)];

/// Renders `dup3(2)` flags: `"O_CLOEXEC"`, or `"0"` for none.
pub fn dup3_flags(flags: u64) -> String {
    render_bits(flags, DUP3_FLAG_BITS, "0")
}

/// Renders `accept4(2)` flags, e.g. `0o2004000` →
/// `"SOCK_NONBLOCK|SOCK_CLOEXEC"`; 0 renders as `"0"`.
///
/// Kept apart from [`dup3_flags`] because accept4 also takes
/// `SOCK_NONBLOCK`, which `O_CLOEXEC` naming would show as hex.
pub fn accept4_flags(flags: u64) -> String {
    render_bits(flags, SOCKET_TYPE_FLAGS, "0")
}

/// `fcntl(2)` commands for x86_64 (where the `*64` lock commands equal the
/// plain ones). Literals are commands `libc` lacks (`linux/fcntl.h`,
/// `asm-generic/fcntl.h`).
const FCNTL_COMMANDS: &Table = &[
    c!(F_DUPFD),
    c!(F_GETFD),
    c!(F_SETFD),
    c!(F_GETFL),
    c!(F_SETFL),
    c!(F_GETLK),
    c!(F_SETLK),
    c!(F_SETLKW),
    c!(F_SETOWN),
    c!(F_GETOWN),
    (10, "F_SETSIG"),
    (11, "F_GETSIG"),
    (15, "F_SETOWN_EX"),
    (16, "F_GETOWN_EX"),
    (17, "F_GETOWNER_UIDS"),
    c!(F_OFD_GETLK),
    c!(F_OFD_SETLK),
    c!(F_OFD_SETLKW),
    c!(F_SETLEASE),
    c!(F_GETLEASE),
    c!(F_NOTIFY),
    (1027, "F_DUPFD_QUERY"),
    (1028, "F_CREATED_QUERY"),
    c!(F_CANCELLK),
    c!(F_DUPFD_CLOEXEC),
    c!(F_SETPIPE_SZ),
    c!(F_GETPIPE_SZ),
    c!(F_ADD_SEALS),
    c!(F_GET_SEALS),
    (1035, "F_GET_RW_HINT"),
    (1036, "F_SET_RW_HINT"),
    (1037, "F_GET_FILE_RW_HINT"),
    (1038, "F_SET_FILE_RW_HINT"),
];

/// Renders an `fcntl(2)` command, e.g. `1030` → `"F_DUPFD_CLOEXEC"`; unknown
/// commands render as the decimal number.
pub fn fcntl_cmd(cmd: u64) -> String {
    render_enum(cmd, FCNTL_COMMANDS)
}

/// `enum bpf_cmd` from `linux/bpf.h`, indexed by value; `libc` has no BPF
/// constants. Value 10 also has the alias `BPF_PROG_RUN`; the original name
/// is kept.
const BPF_COMMANDS: [&str; 37] = [
    "BPF_MAP_CREATE",
    "BPF_MAP_LOOKUP_ELEM",
    "BPF_MAP_UPDATE_ELEM",
    "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY",
    "BPF_PROG_LOAD",
    "BPF_OBJ_PIN",
    "BPF_OBJ_GET",
    "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH",
    "BPF_PROG_TEST_RUN",
    "BPF_PROG_GET_NEXT_ID",
    "BPF_MAP_GET_NEXT_ID",
    "BPF_PROG_GET_FD_BY_ID",
    "BPF_MAP_GET_FD_BY_ID",
    "BPF_OBJ_GET_INFO_BY_FD",
    "BPF_PROG_QUERY",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_BTF_LOAD",
    "BPF_BTF_GET_FD_BY_ID",
    "BPF_TASK_FD_QUERY",
    "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
    "BPF_MAP_FREEZE",
    "BPF_BTF_GET_NEXT_ID",
    "BPF_MAP_LOOKUP_BATCH",
    "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
    "BPF_MAP_UPDATE_BATCH",
    "BPF_MAP_DELETE_BATCH",
    "BPF_LINK_CREATE",
    "BPF_LINK_UPDATE",
    "BPF_LINK_GET_FD_BY_ID",
    "BPF_LINK_GET_NEXT_ID",
    "BPF_ENABLE_STATS",
    "BPF_ITER_CREATE",
    "BPF_LINK_DETACH",
    "BPF_PROG_BIND_MAP",
    "BPF_TOKEN_CREATE",
];

/// Renders a `bpf(2)` command, e.g. `5` → `"BPF_PROG_LOAD"`; unknown commands
/// render as the decimal number.
pub fn bpf_cmd(cmd: u64) -> String {
    usize::try_from(cmd)
        .ok()
        .and_then(|i| BPF_COMMANDS.get(i))
        .map_or_else(|| cmd.to_string(), |&name| name.to_owned())
}

/// `finit_module(2)` flags; `MODULE_INIT_COMPRESSED_FILE` is a literal
/// because `libc` lacks it.
const FINIT_MODULE_FLAG_BITS: &Table = &[
    c!(MODULE_INIT_IGNORE_MODVERSIONS),
    c!(MODULE_INIT_IGNORE_VERMAGIC),
    (4, "MODULE_INIT_COMPRESSED_FILE"),
];

/// Renders `finit_module(2)` flags, e.g. `3` →
/// `"MODULE_INIT_IGNORE_MODVERSIONS|MODULE_INIT_IGNORE_VERMAGIC"`; 0 renders
/// as `"0"`.
pub fn finit_module_flags(flags: u64) -> String {
    render_bits(flags, FINIT_MODULE_FLAG_BITS, "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every enum table must map each value to one name and each name to one
    /// value, or lookups would silently depend on table order.
    fn assert_unique(table: &Table) {
        let values: HashSet<u64> = table.iter().map(|&(v, _)| v).collect();
        let names: HashSet<&str> = table.iter().map(|&(_, n)| n).collect();
        assert_eq!(values.len(), table.len(), "duplicate value in table");
        assert_eq!(names.len(), table.len(), "duplicate name in table");
    }

    #[test]
    fn tables_have_unique_entries() {
        for table in [
            ERRNO_NAMES,
            OPEN_ACCESS_MODES,
            OPEN_FLAG_BITS,
            MODE_BITS,
            PTRACE_REQUESTS,
            SOCKET_FAMILIES,
            SOCKET_TYPES,
            SOCKET_TYPE_FLAGS,
            IP_PROTOCOLS,
            NETLINK_PROTOCOLS,
            CLONE_FLAG_BITS,
            MOUNT_FLAG_BITS,
            UMOUNT_FLAG_BITS,
            AT_FLAG_BITS,
            RENAME_FLAG_BITS,
            MEMFD_FLAG_BITS,
            DUP3_FLAG_BITS,
            FCNTL_COMMANDS,
            FINIT_MODULE_FLAG_BITS,
        ] {
            assert_unique(table);
        }
        let bpf: HashSet<&str> = BPF_COMMANDS.iter().copied().collect();
        assert_eq!(bpf.len(), BPF_COMMANDS.len());
        let caps: HashSet<&str> = CAPABILITY_NAMES.iter().copied().collect();
        assert_eq!(caps.len(), CAPABILITY_NAMES.len());
    }

    #[test]
    fn flag_tables_have_no_zero_entries() {
        for table in [
            OPEN_FLAG_BITS,
            MODE_BITS,
            SOCKET_TYPE_FLAGS,
            CLONE_FLAG_BITS,
            MOUNT_FLAG_BITS,
            UMOUNT_FLAG_BITS,
            AT_FLAG_BITS,
            RENAME_FLAG_BITS,
            MEMFD_FLAG_BITS,
            DUP3_FLAG_BITS,
            FINIT_MODULE_FLAG_BITS,
        ] {
            assert!(table.iter().all(|&(bits, _)| bits != 0));
        }
    }

    #[test]
    fn render_bits_joins_known_and_appends_unknown() {
        let table: &Table = &[(0b110, "BOTH"), (0b010, "TWO"), (0b001, "ONE")];
        assert_eq!(render_bits(0, table, "none"), "none");
        assert_eq!(render_bits(0b001, table, "none"), "ONE");
        assert_eq!(render_bits(0b111, table, ""), "BOTH|ONE");
        assert_eq!(render_bits(0b011, table, ""), "TWO|ONE");
        assert_eq!(render_bits(0b1_0001, table, ""), "ONE|0x10");
        assert_eq!(render_bits(0b1_0000, table, ""), "0x10");
    }

    #[test]
    fn errno_names_cover_the_generic_linux_set() {
        // asm-generic/errno-base.h and errno.h leave 41 and 58 unassigned.
        for errno in 1..=133_i64 {
            assert_eq!(
                errno_name(errno).is_some(),
                errno != 41 && errno != 58,
                "errno {errno}"
            );
        }
        assert_eq!(ERRNO_NAMES.len(), 131);
    }

    #[test]
    fn errno_name_known_values() {
        let cases = [
            (1, "EPERM"),
            (2, "ENOENT"),
            (11, "EAGAIN"),
            (13, "EACCES"),
            (17, "EEXIST"),
            (22, "EINVAL"),
            (35, "EDEADLK"),
            (95, "EOPNOTSUPP"),
            (111, "ECONNREFUSED"),
            (115, "EINPROGRESS"),
            (133, "EHWPOISON"),
        ];
        for (errno, name) in cases {
            assert_eq!(errno_name(errno), Some(name));
        }
        for errno in [0, -2, 41, 58, 134, 512, i64::MAX, i64::MIN] {
            assert_eq!(errno_name(errno), None, "errno {errno}");
        }
    }

    #[test]
    fn render_res_matches_falco() {
        assert_eq!(render_res(0), "SUCCESS");
        assert_eq!(render_res(3), "SUCCESS");
        assert_eq!(render_res(i64::MAX), "SUCCESS");
        assert_eq!(render_res(-2), "ENOENT");
        assert_eq!(render_res(-13), "EACCES");
        assert_eq!(render_res(-115), "EINPROGRESS");
        assert!(render_res(-1).starts_with('E'));
        assert_eq!(render_res(-41), "-41");
        assert_eq!(render_res(-600), "-600");
        assert_eq!(render_res(i64::MIN), i64::MIN.to_string());
    }

    #[test]
    fn open_flags_access_modes() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o1), "O_WRONLY");
        assert_eq!(open_flags(0o2), "O_RDWR");
        assert_eq!(open_flags(0o3), "0x3");
    }

    #[test]
    fn open_flags_single_bits() {
        let cases = [
            (0o100, "O_CREAT"),
            (0o200, "O_EXCL"),
            (0o400, "O_NOCTTY"),
            (0o1000, "O_TRUNC"),
            (0o2000, "O_APPEND"),
            (0o4000, "O_NONBLOCK"),
            (0o10000, "O_DSYNC"),
            (0o20000, "O_ASYNC"),
            (0o40000, "O_DIRECT"),
            (0o100000, "O_LARGEFILE"),
            (0o200000, "O_DIRECTORY"),
            (0o400000, "O_NOFOLLOW"),
            (0o1000000, "O_NOATIME"),
            (0o2000000, "O_CLOEXEC"),
            (0o10000000, "O_PATH"),
        ];
        for (bits, name) in cases {
            assert_eq!(open_flags(bits), format!("O_RDONLY|{name}"));
        }
    }

    #[test]
    fn open_flags_combinations() {
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(open_flags(0o2101), "O_WRONLY|O_CREAT|O_APPEND");
        assert_eq!(open_flags(0o302), "O_RDWR|O_CREAT|O_EXCL");
        // opendir(3): O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY.
        assert_eq!(
            open_flags(0o2204000),
            "O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC"
        );
        assert!(open_flags(0o1101).contains("O_TRUNC"));
        assert!(!open_flags(0o101).contains("O_TRUNC"));
    }

    #[test]
    fn open_flags_multi_bit_entries() {
        // O_SYNC is __O_SYNC|O_DSYNC and O_TMPFILE is __O_TMPFILE|O_DIRECTORY.
        assert_eq!(open_flags(0o4010001), "O_WRONLY|O_SYNC");
        assert_eq!(open_flags(0o4000000), "O_RDONLY|0x100000");
        assert_eq!(open_flags(0o20200002), "O_RDWR|O_TMPFILE");
        assert_eq!(open_flags(0o20000002), "O_RDWR|0x400000");
    }

    #[test]
    fn open_flags_unknown_bits() {
        assert_eq!(open_flags(0x8000_0040), "O_RDONLY|O_CREAT|0x80000000");
        assert_eq!(open_flags(1 << 40), "O_RDONLY|0x10000000000");
    }

    #[test]
    fn open_mode_read_write() {
        let cases = [
            (0o0, true, false),
            (0o1, false, true),
            (0o2, true, true),
            (0o3, false, false),
            (0o1101, false, true),
            (0o10000000, true, false),
        ];
        for (flags, read, write) in cases {
            assert_eq!(open_mode_is_read(flags), read, "{flags:o}");
            assert_eq!(open_mode_is_write(flags), write, "{flags:o}");
        }
    }

    #[test]
    fn file_mode_is_octal() {
        assert_eq!(file_mode(0), "0");
        assert_eq!(file_mode(0o644), "0644");
        assert_eq!(file_mode(0o4755), "04755");
        assert_eq!(file_mode(0o7), "07");
        assert_eq!(file_mode(0o100644), "0100644");
    }

    #[test]
    fn mode_bits_symbolic() {
        assert_eq!(mode_bits(0), "0");
        assert_eq!(mode_bits(0o400), "S_IRUSR");
        assert_eq!(mode_bits(0o644), "S_IROTH|S_IRGRP|S_IWUSR|S_IRUSR");
        assert_eq!(
            mode_bits(0o4755),
            "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
        );
        assert_eq!(mode_bits(0o3000), "S_ISVTX|S_ISGID");
        assert_eq!(mode_bits(0o100600), "S_IWUSR|S_IRUSR|0x8000");
        assert!(mode_bits(0o2711).contains("S_ISGID"));
        assert!(!mode_bits(0o644).contains("S_IXUSR"));
    }

    #[test]
    fn ptrace_requests_from_headers() {
        let cases = [
            (0, "PTRACE_TRACEME"),
            (1, "PTRACE_PEEKTEXT"),
            (2, "PTRACE_PEEKDATA"),
            (3, "PTRACE_PEEKUSR"),
            (4, "PTRACE_POKETEXT"),
            (5, "PTRACE_POKEDATA"),
            (6, "PTRACE_POKEUSR"),
            (7, "PTRACE_CONT"),
            (8, "PTRACE_KILL"),
            (9, "PTRACE_SINGLESTEP"),
            (12, "PTRACE_GETREGS"),
            (13, "PTRACE_SETREGS"),
            (14, "PTRACE_GETFPREGS"),
            (15, "PTRACE_SETFPREGS"),
            (16, "PTRACE_ATTACH"),
            (17, "PTRACE_DETACH"),
            (18, "PTRACE_GETFPXREGS"),
            (19, "PTRACE_SETFPXREGS"),
            (24, "PTRACE_SYSCALL"),
            (30, "PTRACE_ARCH_PRCTL"),
            (31, "PTRACE_SYSEMU"),
            (0x4200, "PTRACE_SETOPTIONS"),
            (0x4201, "PTRACE_GETEVENTMSG"),
            (0x4202, "PTRACE_GETSIGINFO"),
            (0x4203, "PTRACE_SETSIGINFO"),
            (0x4204, "PTRACE_GETREGSET"),
            (0x4205, "PTRACE_SETREGSET"),
            (0x4206, "PTRACE_SEIZE"),
            (0x4207, "PTRACE_INTERRUPT"),
            (0x4208, "PTRACE_LISTEN"),
            (0x4209, "PTRACE_PEEKSIGINFO"),
            (0x420a, "PTRACE_GETSIGMASK"),
            (0x420b, "PTRACE_SETSIGMASK"),
            (0x420c, "PTRACE_SECCOMP_GET_FILTER"),
            (0x420d, "PTRACE_SECCOMP_GET_METADATA"),
            (0x420e, "PTRACE_GET_SYSCALL_INFO"),
            (0x4212, "PTRACE_SET_SYSCALL_INFO"),
        ];
        for (req, name) in cases {
            assert_eq!(ptrace_request(req), name);
        }
        assert_eq!(ptrace_request(10), "10");
        assert_eq!(ptrace_request(0x4300), "17152");
        assert_eq!(ptrace_request(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn socket_families_from_headers() {
        let cases = [
            (0, "AF_UNSPEC"),
            (1, "AF_UNIX"),
            (2, "AF_INET"),
            (10, "AF_INET6"),
            (16, "AF_NETLINK"),
            (17, "AF_PACKET"),
            (29, "AF_CAN"),
            (31, "AF_BLUETOOTH"),
            (38, "AF_ALG"),
            (40, "AF_VSOCK"),
            (41, "AF_KCM"),
            (44, "AF_XDP"),
            (45, "AF_MCTP"),
        ];
        for (af, name) in cases {
            assert_eq!(socket_family(af), name);
        }
        assert_eq!(socket_family(46), "46");
        assert!(socket_family(17).contains("AF_PACKET"));
    }

    #[test]
    fn socket_types_with_flags() {
        assert_eq!(socket_type(1), "SOCK_STREAM");
        assert_eq!(socket_type(2), "SOCK_DGRAM");
        assert_eq!(socket_type(3), "SOCK_RAW");
        assert_eq!(socket_type(4), "SOCK_RDM");
        assert_eq!(socket_type(5), "SOCK_SEQPACKET");
        assert_eq!(socket_type(10), "SOCK_PACKET");
        assert_eq!(
            socket_type(0o2004001),
            "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"
        );
        assert_eq!(socket_type(0o2000002), "SOCK_DGRAM|SOCK_CLOEXEC");
        assert_eq!(socket_type(0), "0");
        assert_eq!(socket_type(7), "7");
        assert_eq!(socket_type(0x10_0001), "SOCK_STREAM|0x100000");
    }

    #[test]
    fn socket_protocols_by_family() {
        let inet = [
            (1, "IPPROTO_ICMP"),
            (6, "IPPROTO_TCP"),
            (17, "IPPROTO_UDP"),
            (58, "IPPROTO_ICMPV6"),
            (132, "IPPROTO_SCTP"),
            (255, "IPPROTO_RAW"),
            (262, "IPPROTO_MPTCP"),
        ];
        for (proto, name) in inet {
            assert_eq!(socket_proto(2, proto), name);
            assert_eq!(socket_proto(10, proto), name);
        }
        assert_eq!(socket_proto(2, 0), "0");
        assert_eq!(socket_proto(2, 999), "999");
        let netlink = [
            (0, "NETLINK_ROUTE"),
            (4, "NETLINK_SOCK_DIAG"),
            (9, "NETLINK_AUDIT"),
            (12, "NETLINK_NETFILTER"),
            (15, "NETLINK_KOBJECT_UEVENT"),
            (16, "NETLINK_GENERIC"),
            (22, "NETLINK_SMC"),
        ];
        for (proto, name) in netlink {
            assert_eq!(socket_proto(16, proto), name);
        }
        assert_eq!(socket_proto(16, 23), "23");
        // AF_PACKET carries htons(ETH_P_ALL); other families are numeric.
        assert_eq!(socket_proto(17, 0x300), "768");
        assert_eq!(socket_proto(1, 0), "0");
        assert_eq!(socket_proto(1, 6), "6");
        assert_eq!(socket_proto(u64::MAX, 6), "6");
    }

    #[test]
    fn capabilities_from_headers() {
        let cases = [
            (0, "CAP_CHOWN"),
            (1, "CAP_DAC_OVERRIDE"),
            (2, "CAP_DAC_READ_SEARCH"),
            (12, "CAP_NET_ADMIN"),
            (16, "CAP_SYS_MODULE"),
            (17, "CAP_SYS_RAWIO"),
            (19, "CAP_SYS_PTRACE"),
            (21, "CAP_SYS_ADMIN"),
            (22, "CAP_SYS_BOOT"),
            (34, "CAP_SYSLOG"),
            (38, "CAP_PERFMON"),
            (39, "CAP_BPF"),
            (40, "CAP_CHECKPOINT_RESTORE"),
        ];
        for (bit, name) in cases {
            assert_eq!(capabilities(1 << bit), name);
        }
    }

    #[test]
    fn capabilities_joined_with_spaces() {
        assert_eq!(capabilities(0), "");
        assert_eq!(capabilities(0b11), "CAP_CHOWN CAP_DAC_OVERRIDE");
        // Docker's default set.
        assert_eq!(
            capabilities(0xa804_25fb),
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL \
             CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_NET_BIND_SERVICE \
             CAP_NET_RAW CAP_SYS_CHROOT CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP"
        );
        let full = capabilities(0x1ff_ffff_ffff);
        assert_eq!(full.split(' ').count(), 41);
        assert!(full.contains("CAP_SYS_ADMIN"));
        assert_eq!(capabilities(1 << 41), "0x20000000000");
        assert_eq!(
            capabilities((1 << 41) | (1 << 21)),
            "CAP_SYS_ADMIN 0x20000000000"
        );
    }

    #[test]
    fn capability_names_iterates_in_bit_order() {
        assert_eq!(capability_names(0).count(), 0);
        assert_eq!(
            capability_names((1 << 39) | (1 << 21) | 1).collect::<Vec<_>>(),
            ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF"]
        );
        assert_eq!(capability_names(u64::MAX).count(), 41);
    }

    #[test]
    fn clone_flags_ignore_exit_signal() {
        // glibc fork(): CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD.
        assert_eq!(
            clone_flags(0x0120_0011),
            "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"
        );
        // glibc pthread_create().
        assert_eq!(
            clone_flags(0x003d_0f00),
            "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|\
             CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"
        );
        assert_eq!(clone_flags(0x4111), "CLONE_VM|CLONE_VFORK");
        assert_eq!(clone_flags(0x11), "0");
        assert_eq!(clone_flags(0), "0");
        assert_eq!(clone_flags(0x80), "0");
    }

    #[test]
    fn clone_flags_namespaces_and_high_bits() {
        assert_eq!(clone_flags(0x1002_0000), "CLONE_NEWNS|CLONE_NEWUSER");
        assert_eq!(
            clone_flags(0x7e02_0000),
            "CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|\
             CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET"
        );
        assert_eq!(clone_flags(0x1000), "CLONE_PIDFD");
        assert_eq!(clone_flags(0x8000_0000), "CLONE_IO");
        assert_eq!(clone_flags(0x0040_0000), "CLONE_DETACHED");
        assert_eq!(clone_flags(0x0080_0000), "CLONE_UNTRACED");
        assert_eq!(
            clone_flags(0x3_0000_0000),
            "CLONE_CLEAR_SIGHAND|CLONE_INTO_CGROUP"
        );
        assert_eq!(clone_flags(0x4_0000_0100), "CLONE_VM|0x400000000");
    }

    #[test]
    fn unshare_flags_keep_low_byte() {
        assert_eq!(unshare_flags(0), "0");
        assert_eq!(unshare_flags(0x80), "CLONE_NEWTIME");
        assert_eq!(unshare_flags(0x4000_0000), "CLONE_NEWNET");
        assert_eq!(unshare_flags(0x1002_0000), "CLONE_NEWNS|CLONE_NEWUSER");
        assert_eq!(unshare_flags(0x1), "0x1");
        // clone3 flags carry no exit signal.
        assert_eq!(
            unshare_flags(0x0120_0080),
            "CLONE_NEWTIME|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"
        );
    }

    #[test]
    fn mount_flags_from_headers() {
        let cases = [
            (1, "MS_RDONLY"),
            (2, "MS_NOSUID"),
            (4, "MS_NODEV"),
            (8, "MS_NOEXEC"),
            (16, "MS_SYNCHRONOUS"),
            (32, "MS_REMOUNT"),
            (64, "MS_MANDLOCK"),
            (128, "MS_DIRSYNC"),
            (256, "MS_NOSYMFOLLOW"),
            (1024, "MS_NOATIME"),
            (2048, "MS_NODIRATIME"),
            (4096, "MS_BIND"),
            (8192, "MS_MOVE"),
            (16384, "MS_REC"),
            (32768, "MS_SILENT"),
            (1 << 16, "MS_POSIXACL"),
            (1 << 17, "MS_UNBINDABLE"),
            (1 << 18, "MS_PRIVATE"),
            (1 << 19, "MS_SLAVE"),
            (1 << 20, "MS_SHARED"),
            (1 << 21, "MS_RELATIME"),
            (1 << 22, "MS_KERNMOUNT"),
            (1 << 23, "MS_I_VERSION"),
            (1 << 24, "MS_STRICTATIME"),
            (1 << 25, "MS_LAZYTIME"),
            (1 << 31, "MS_NOUSER"),
        ];
        for (bits, name) in cases {
            assert_eq!(mount_flags(bits), name);
        }
    }

    #[test]
    fn mount_flags_combinations_and_magic() {
        assert_eq!(mount_flags(0), "0");
        assert_eq!(mount_flags(0x1021), "MS_RDONLY|MS_REMOUNT|MS_BIND");
        assert_eq!(mount_flags(0x5000), "MS_BIND|MS_REC");
        assert_eq!(mount_flags(0x4_4000), "MS_REC|MS_PRIVATE");
        assert_eq!(mount_flags(0xc0ed_0000), "0");
        assert_eq!(mount_flags(0xc0ed_0001), "MS_RDONLY");
        assert_eq!(mount_flags(0x200), "0x200");
        assert_eq!(mount_flags((1 << 32) | 1), "MS_RDONLY|0x100000000");
    }

    #[test]
    fn umount_flags_from_headers() {
        assert_eq!(umount_flags(0), "0");
        assert_eq!(umount_flags(1), "MNT_FORCE");
        assert_eq!(umount_flags(2), "MNT_DETACH");
        assert_eq!(umount_flags(4), "MNT_EXPIRE");
        assert_eq!(umount_flags(8), "UMOUNT_NOFOLLOW");
        assert_eq!(umount_flags(0xa), "MNT_DETACH|UMOUNT_NOFOLLOW");
        assert_eq!(umount_flags(0x11), "MNT_FORCE|0x10");
    }

    #[test]
    fn at_flags_from_headers() {
        assert_eq!(at_flags(0), "0");
        assert_eq!(at_flags(0x100), "AT_SYMLINK_NOFOLLOW");
        assert_eq!(at_flags(0x200), "AT_REMOVEDIR");
        assert_eq!(at_flags(0x400), "AT_SYMLINK_FOLLOW");
        assert_eq!(at_flags(0x800), "AT_NO_AUTOMOUNT");
        assert_eq!(at_flags(0x1000), "AT_EMPTY_PATH");
        assert_eq!(at_flags(0x1400), "AT_SYMLINK_FOLLOW|AT_EMPTY_PATH");
        assert_eq!(at_flags(0x1), "0x1");
    }

    #[test]
    fn rename_flags_from_headers() {
        assert_eq!(rename_flags(0), "0");
        assert_eq!(rename_flags(1), "RENAME_NOREPLACE");
        assert_eq!(rename_flags(2), "RENAME_EXCHANGE");
        assert_eq!(rename_flags(4), "RENAME_WHITEOUT");
        assert_eq!(rename_flags(5), "RENAME_NOREPLACE|RENAME_WHITEOUT");
        assert_eq!(rename_flags(8), "0x8");
    }

    #[test]
    fn memfd_flags_from_headers() {
        assert_eq!(memfd_flags(0), "0");
        assert_eq!(memfd_flags(1), "MFD_CLOEXEC");
        assert_eq!(memfd_flags(3), "MFD_CLOEXEC|MFD_ALLOW_SEALING");
        assert_eq!(memfd_flags(8), "MFD_NOEXEC_SEAL");
        assert_eq!(memfd_flags(0x10), "MFD_EXEC");
        // MFD_HUGE_2MB is 21 << MFD_HUGE_SHIFT (26).
        assert_eq!(memfd_flags(4 | (21 << 26)), "MFD_HUGETLB|0x54000000");
    }

    #[test]
    fn dup3_flags_from_headers() {
        assert_eq!(dup3_flags(0), "0");
        assert_eq!(dup3_flags(0o2000000), "O_CLOEXEC");
        assert_eq!(dup3_flags(0o2000001), "O_CLOEXEC|0x1");
    }

    #[test]
    fn accept4_flags_from_headers() {
        assert_eq!(accept4_flags(0), "0");
        assert_eq!(accept4_flags(0o4000), "SOCK_NONBLOCK");
        assert_eq!(accept4_flags(0o2000000), "SOCK_CLOEXEC");
        assert_eq!(accept4_flags(0o2004000), "SOCK_NONBLOCK|SOCK_CLOEXEC");
        assert_eq!(accept4_flags(0o2004001), "SOCK_NONBLOCK|SOCK_CLOEXEC|0x1");
    }

    #[test]
    fn fcntl_commands_from_headers() {
        let cases = [
            (0, "F_DUPFD"),
            (1, "F_GETFD"),
            (2, "F_SETFD"),
            (3, "F_GETFL"),
            (4, "F_SETFL"),
            (5, "F_GETLK"),
            (6, "F_SETLK"),
            (7, "F_SETLKW"),
            (8, "F_SETOWN"),
            (9, "F_GETOWN"),
            (10, "F_SETSIG"),
            (11, "F_GETSIG"),
            (15, "F_SETOWN_EX"),
            (36, "F_OFD_GETLK"),
            (37, "F_OFD_SETLK"),
            (38, "F_OFD_SETLKW"),
            (1024, "F_SETLEASE"),
            (1025, "F_GETLEASE"),
            (1026, "F_NOTIFY"),
            (1030, "F_DUPFD_CLOEXEC"),
            (1031, "F_SETPIPE_SZ"),
            (1032, "F_GETPIPE_SZ"),
            (1033, "F_ADD_SEALS"),
            (1034, "F_GET_SEALS"),
        ];
        for (cmd, name) in cases {
            assert_eq!(fcntl_cmd(cmd), name);
        }
        assert_eq!(fcntl_cmd(12), "12");
        assert_eq!(fcntl_cmd(2000), "2000");
    }

    #[test]
    fn bpf_commands_follow_enum_order() {
        let cases = [
            (0, "BPF_MAP_CREATE"),
            (1, "BPF_MAP_LOOKUP_ELEM"),
            (5, "BPF_PROG_LOAD"),
            (6, "BPF_OBJ_PIN"),
            (7, "BPF_OBJ_GET"),
            (8, "BPF_PROG_ATTACH"),
            (9, "BPF_PROG_DETACH"),
            (10, "BPF_PROG_TEST_RUN"),
            (17, "BPF_RAW_TRACEPOINT_OPEN"),
            (18, "BPF_BTF_LOAD"),
            (28, "BPF_LINK_CREATE"),
            (35, "BPF_PROG_BIND_MAP"),
            (36, "BPF_TOKEN_CREATE"),
        ];
        for (cmd, name) in cases {
            assert_eq!(bpf_cmd(cmd), name);
        }
        assert_eq!(bpf_cmd(37), "37");
        assert_eq!(bpf_cmd(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn finit_module_flags_from_headers() {
        assert_eq!(finit_module_flags(0), "0");
        assert_eq!(finit_module_flags(1), "MODULE_INIT_IGNORE_MODVERSIONS");
        assert_eq!(finit_module_flags(2), "MODULE_INIT_IGNORE_VERMAGIC");
        assert_eq!(finit_module_flags(4), "MODULE_INIT_COMPRESSED_FILE");
        assert_eq!(
            finit_module_flags(3),
            "MODULE_INIT_IGNORE_MODVERSIONS|MODULE_INIT_IGNORE_VERMAGIC"
        );
        assert_eq!(finit_module_flags(9), "MODULE_INIT_IGNORE_MODVERSIONS|0x8");
    }
}

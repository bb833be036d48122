//! Record layouts shared by Vigil's eBPF programs and its userspace agent.
//!
//! Every type here is `#[repr(C)]` and plain old data: the kernel side writes it into the ring
//! buffer or reads it from a map, and the user side decodes it. Userspace never trusts a length
//! found in a record; see the agent's `decode` module.
#![no_std]

/// Length of a task's `comm`, as in the kernel.
pub const COMM_LEN: usize = 16;
/// Syscall numbers at or above this are never traced (the interest map has this many slots).
pub const MAX_SYSCALL_NR: u32 = 512;
/// Longest string read from user memory per slot, terminating NUL included (PATH_MAX).
pub const STR_MAX: usize = 4096;
/// String slots per syscall record (mount needs three: source, target, fstype).
pub const STR_SLOTS: usize = 3;
/// Most argv entries captured for an exec.
pub const ARGV_MAX_ARGS: usize = 64;
/// Most bytes of argv (NUL-separated) captured for an exec.
pub const ARGV_MAX_BYTES: usize = 4096;
/// Most bytes of an I/O buffer captured (Falco's default snaplen).
pub const BUF_MAX: usize = 80;
/// Most bytes of a socket address captured (`sockaddr_un` is 110).
pub const SOCKADDR_MAX: usize = 128;
/// Bytes of variable data that may follow a record's fixed part.
pub const DATA_CAP: usize = STR_SLOTS * STR_MAX + ARGV_MAX_BYTES;
/// Marks an unused argument index in a [`SyscallRecipe`].
pub const NO_ARG: u8 = 0xff;
/// Marks a tracepoint field that this kernel does not have, in a [`TracepointLayout`].
pub const NO_FIELD: u16 = 0xffff;

/// What a record describes; the first byte of every record.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A completed syscall: [`SyscallRecord`] followed by its strings.
    Syscall = 1,
    /// A new process (never a thread): [`ForkRecord`].
    Fork = 2,
    /// A successful exec: [`ExecRecord`] followed by the filename.
    Exec = 3,
    /// A thread or process exit: [`ExitRecord`].
    Exit = 4,
    /// An egress connection the policy does not allow: [`EgressRecord`].
    Egress = 5,
    /// A DNS response a workload received: [`DnsRecord`].
    Dns = 6,
}

impl RecordKind {
    /// Maps the wire byte back to a kind.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Syscall),
            2 => Some(Self::Fork),
            3 => Some(Self::Exec),
            4 => Some(Self::Exit),
            5 => Some(Self::Egress),
            6 => Some(Self::Dns),
            _ => None,
        }
    }
}

/// Bits of [`RecordHeader::flags`].
pub mod record_flags {
    /// String slot 0 hit [`super::STR_MAX`] (slot `n` is `STR0_TRUNCATED << n`).
    pub const STR0_TRUNCATED: u8 = 1 << 0;
    /// argv had more than [`super::ARGV_MAX_ARGS`] entries or [`super::ARGV_MAX_BYTES`] bytes.
    pub const ARGV_TRUNCATED: u8 = 1 << 3;
    /// The socket address was longer than [`super::SOCKADDR_MAX`].
    pub const SOCKADDR_TRUNCATED: u8 = 1 << 4;
    /// A read of user memory failed (unmapped or paged-out pointer); the field is empty.
    pub const USER_READ_FAILED: u8 = 1 << 5;
}

/// The fixed start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// A [`RecordKind`] byte.
    pub kind: u8,
    /// [`record_flags`] bits.
    pub flags: u8,
    /// The Vigil syscall id (not the architecture's number) for syscall records, else 0.
    pub syscall_id: u16,
    /// Reserved, zero.
    pub reserved: u32,
    /// `bpf_ktime_get_boot_ns` when the record was made.
    pub ts_ns: u64,
    /// Thread group id (the process id userspace sees).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id as tracked by the kernel side, 0 if unknown.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Reserved, zero.
    pub reserved2: u32,
    /// cgroup v2 id (the inode number of the cgroup's directory).
    pub cgroup_id: u64,
    /// Task name, NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// A completed syscall. Followed by `str_len[0..3]` bytes of strings, then `argv_len` bytes of
/// NUL-separated argv, then `buf_len` bytes of I/O buffer, in that order and without padding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallRecord {
    /// Common header; `kind` is [`RecordKind::Syscall`].
    pub header: RecordHeader,
    /// The syscall's return value.
    pub ret: i64,
    /// Raw syscall arguments as passed.
    pub args: [u64; 6],
    /// Extra words read from user memory, as the recipe's `aux_arg` asks (openat2's `open_how`,
    /// clone3's `clone_args`).
    pub aux: [u64; 3],
    /// Length of each string slot, terminating NUL excluded.
    pub str_len: [u16; STR_SLOTS],
    /// Length of the argv area.
    pub argv_len: u16,
    /// Number of argv entries captured.
    pub argc: u16,
    /// Length of the socket address in `sockaddr`.
    pub sockaddr_len: u16,
    /// Length of the I/O buffer captured after argv (at most [`BUF_MAX`]).
    pub buf_len: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// The socket address, as the kernel or the caller laid it out.
    pub sockaddr: [u8; SOCKADDR_MAX],
}

/// A new process. Threads are filtered in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    /// Common header, describing the parent; `kind` is [`RecordKind::Fork`].
    pub header: RecordHeader,
    /// The new process's id.
    pub child_pid: u32,
    /// The new process's parent (differs from the caller with `CLONE_PARENT`).
    pub child_ppid: u32,
}

/// A successful exec. Followed by `filename_len` bytes of the filename the kernel resolved.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    /// Common header, describing the process after the exec; `kind` is [`RecordKind::Exec`].
    pub header: RecordHeader,
    /// The thread id that called exec (a non-leader thread takes over the leader's id).
    pub old_tid: u32,
    /// Length of the filename that follows.
    pub filename_len: u16,
    /// Reserved, zero.
    pub reserved: u16,
}

/// A thread exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    /// Common header; `kind` is [`RecordKind::Exit`].
    pub header: RecordHeader,
    /// 1 when the whole thread group is gone, 0 when not, 2 when the kernel does not say.
    pub group_dead: u8,
    /// Reserved, zero.
    pub reserved: [u8; 7],
}

/// How a syscall passes a socket address.
pub mod sockaddr_mode {
    /// No socket address.
    pub const NONE: u8 = 0;
    /// A pointer argument and a length argument (connect, bind, sendto).
    pub const PTR_AND_LEN: u8 = 1;
    /// A pointer argument and a pointer to the length, filled by the kernel (accept).
    pub const PTR_AND_LEN_PTR: u8 = 2;
    /// A `struct msghdr` pointer whose `msg_name`/`msg_namelen` hold it (sendmsg).
    pub const MSGHDR: u8 = 3;
}

/// Bits of [`SyscallRecipe::flags`].
pub mod recipe_flags {
    /// Keep the arguments for the fork tracepoint, but emit no record of the syscall.
    pub const STASH_ONLY: u8 = 1 << 0;
    /// The syscall is an exec: capture strings and argv at entry, before memory is replaced.
    pub const EXEC: u8 = 1 << 1;
    /// The syscall creates a task: `args[0]` holds clone flags (clone).
    pub const CLONE_FLAGS_ARG0: u8 = 1 << 2;
    /// The syscall creates a task: `aux[0]` holds clone flags (clone3).
    pub const CLONE_FLAGS_AUX0: u8 = 1 << 3;
    /// A TCP connect: `aux` receives the local address the kernel chose, as
    /// `[family << 16 | port, address bytes 0..8, address bytes 8..16]`.
    pub const LOCAL_ADDRESS: u8 = 1 << 4;
    /// No rule can match a failed call and the state ignores it: a call that fails is counted
    /// in `SKIPPED` instead of recorded.
    pub const SKIP_FAILED: u8 = 1 << 5;
    /// A credentials change: `aux` receives the caller's uid and gid from before the call, as
    /// `[uid, gid, 0]` (the record's header has them after it).
    pub const CREDS_AT_ENTRY: u8 = 1 << 6;
}

/// Indexes of the per-CPU counters of records the kernel side left out on purpose.
pub mod skip_reason {
    /// A failed call of a syscall recorded with [`super::recipe_flags::SKIP_FAILED`].
    pub const FAILED_CALL: u32 = 0;
    /// Number of counters.
    pub const COUNT: u32 = 1;
}

/// How the kernel side captures one syscall: the value of the interest map, indexed by the
/// architecture's syscall number. An all-zero recipe (`id == 0`) means "not wanted".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecipe {
    /// Vigil's syscall id, stable across architectures; 0 switches the syscall off.
    pub id: u16,
    /// [`recipe_flags`] bits.
    pub flags: u8,
    /// A [`sockaddr_mode`] value.
    pub sockaddr_mode: u8,
    /// Argument holding the socket address pointer (or the msghdr pointer).
    pub sockaddr_arg: u8,
    /// Argument holding the address length (or a pointer to it).
    pub sockaddr_len_arg: u8,
    /// Argument pointing to a user struct whose first three words go to `aux`.
    pub aux_arg: u8,
    /// Argument holding the argv pointer (execs only).
    pub argv_arg: u8,
    /// Arguments holding user strings, one per slot.
    pub str_args: [u8; STR_SLOTS],
    /// Argument pointing to an I/O buffer whose first bytes (up to the return value and
    /// [`BUF_MAX`]) are captured.
    pub buf_arg: u8,
    /// Reserved, zero.
    pub reserved: [u8; 4],
}

/// Offsets of tracepoint fields the programs read, taken from tracefs `format` files at load
/// time because they differ between kernel versions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointLayout {
    /// `sched_process_fork`: `child_pid`.
    pub fork_child_pid: u16,
    /// `sched_process_exec`: `__data_loc filename`.
    pub exec_filename: u16,
    /// `sched_process_exec`: `old_pid`.
    pub exec_old_pid: u16,
    /// `sched_process_exit`: `group_dead`, or [`NO_FIELD`].
    pub exit_group_dead: u16,
    /// `sock:inet_sock_set_state`: `skaddr` (the socket's address, as an identity).
    pub sock_skaddr: u16,
    /// `sock:inet_sock_set_state`: `oldstate`.
    pub sock_oldstate: u16,
    /// `sock:inet_sock_set_state`: `newstate`.
    pub sock_newstate: u16,
    /// `sock:inet_sock_set_state`: `sport` (host byte order).
    pub sock_sport: u16,
    /// `sock:inet_sock_set_state`: `family`.
    pub sock_family: u16,
    /// `sock:inet_sock_set_state`: `saddr` (4 bytes, network order).
    pub sock_saddr: u16,
    /// `sock:inet_sock_set_state`: `saddr_v6` (16 bytes).
    pub sock_saddr_v6: u16,
}

/// Run-time settings of the probes: the single entry of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Field offsets of the sched tracepoints.
    pub layout: TracepointLayout,
    /// Events of this thread group are not reported (the agent itself), 0 for none.
    pub ignored_tgid: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// A CPU wakes the reader at most once per this many ns (boot clock); records in
    /// between are committed without a wakeup and found by the reader's follow-up poll, which
    /// comes at most [`READER_POLL_FACTOR`] intervals after a read that found records. 0 wakes
    /// the reader for every record the kernel deems worth it (its adaptive default).
    pub wakeup_interval_ns: u64,
    /// Bytes a CPU may commit without waking the reader, however recent its last wakeup (its
    /// share of a quarter of the ring).
    pub wakeup_bytes: u64,
}

/// The reader polls again this many wakeup intervals after a read that found records, so a
/// record committed without a wakeup waits about that long. At least one: until that poll the
/// reader tells the kernel side it need not be woken, and by then the CPU that woke it last
/// must be allowed to wake it again.
pub const READER_POLL_FACTOR: u32 = 2;

/// Indexes of the per-CPU drop counters.
pub mod drop_reason {
    /// The ring buffer had no room for a record.
    pub const RINGBUF_FULL: u32 = 0;
    /// The pending-syscall map could not take an entry, so a syscall went unreported.
    pub const PENDING_FULL: u32 = 1;
    /// The pending-exec map could not take an entry, so an exec went unreported.
    pub const EXEC_PENDING_FULL: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 3;
}

/// Arguments of a syscall in flight, kept from entry to exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    /// The architecture's syscall number, to pair entry with exit.
    pub nr: u64,
    /// Raw arguments.
    pub args: [u64; 6],
    /// Words read through `aux_arg` at entry.
    pub aux: [u64; 3],
}

/// The strings and argv of an exec, captured at entry: the exit cannot read them any more once
/// the new image replaced the caller's memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecCapture {
    /// [`record_flags`] raised during capture.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Length of the filename in `data[..filename_len]`.
    pub filename_len: u16,
    /// Length of the argv area in `data[STR_MAX..STR_MAX + argv_len]`.
    pub argv_len: u16,
    /// Number of argv entries captured.
    pub argc: u16,
    /// Filename slot then argv area.
    pub data: [u8; STR_MAX + ARGV_MAX_BYTES],
}

/// Size of the per-CPU buffer in which the kernel side assembles a syscall record.
pub const SCRATCH_SIZE: usize = core::mem::size_of::<SyscallRecord>() + DATA_CAP;

// Per-CPU map values are limited to 32 KiB by the kernel.
const _: () = assert!(SCRATCH_SIZE <= 32 * 1024);
const _: () = assert!(3 * (STR_MAX - 1) + BUF_MAX <= DATA_CAP);

/// The per-CPU assembly buffer's value type.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Scratch {
    /// Raw bytes of the record being assembled.
    pub bytes: [u8; SCRATCH_SIZE],
}

/// Most egress policies (the kernel selects them with a 64-bit mask).
pub const EGRESS_MAX_POLICIES: u32 = 64;
/// Most port rules that apply to one destination prefix of one policy.
pub const EGRESS_MAX_PORT_RULES: usize = 16;
/// Deepest cgroup level whose policies apply to the processes below it.
pub const EGRESS_MAX_CGROUP_DEPTH: u32 = 16;
/// No default policy, in [`EgressConfig::default_policy`].
pub const EGRESS_NO_POLICY: u32 = u32::MAX;
/// Policy sets the kernel maps hold at once: the one in use, and the one a reload prepares.
/// Keys carry `generation * EGRESS_MAX_POLICIES + index` as their policy; mask values hold one
/// mask per generation; `EGRESS_ACTIVE` names the generation in use.
pub const EGRESS_GENERATIONS: usize = 2;

/// The policy number keys carry: the policy's index within its generation's set.
#[inline(always)]
pub const fn egress_policy_key(generation: u32, index: u32) -> u32 {
    (generation & 1) * EGRESS_MAX_POLICIES + index
}

/// Which policies exist and how they select workloads; the one value of `EGRESS_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressConfig {
    /// Bit `i` set: policy `i` exists.
    pub active: u64,
    /// Policies that enforce (deny) rather than monitor.
    pub enforce: u64,
    /// Policies that do not constrain the cgroup (they match in every cgroup).
    pub cgroup_free: u64,
    /// Policies that do not constrain the process name.
    pub comm_free: u64,
    /// The policy of workloads no policy selects, or [`EGRESS_NO_POLICY`].
    pub default_policy: u32,
    /// The agent's own process, never restricted (its sinks must always get through).
    pub exempt_tgid: u32,
}

/// One allowed port range for a protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressPortRule {
    /// First port allowed.
    pub lo: u16,
    /// Last port allowed.
    pub hi: u16,
    /// `IPPROTO_TCP`, `IPPROTO_UDP`, or 0 for both.
    pub protocol: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// What an allowlist prefix allows: the port rules of the prefix and of every shorter prefix of
/// the same policy that contains it (userspace merges them, since the trie returns only the
/// longest match).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressPorts {
    /// Rules in use.
    pub len: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The rules; the first `len` count.
    pub rules: [EgressPortRule; EGRESS_MAX_PORT_RULES],
}

/// Key data of the IPv4 allowlist trie: the policy index (big endian, always matched in full)
/// then the address.
pub type EgressKey4 = [u8; 8];
/// Key data of the IPv6 allowlist trie.
pub type EgressKey6 = [u8; 20];

/// An egress connection the policy does not allow, as the kernel side reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EgressRecord {
    /// Common header; `kind` is [`RecordKind::Egress`].
    pub header: RecordHeader,
    /// The destination, IPv4 in the first four bytes; network byte order.
    pub addr: [u8; 16],
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Destination port.
    pub port: u16,
    /// The policy that decided.
    pub policy: u32,
    /// `IPPROTO_TCP`, `IPPROTO_UDP` or the socket's protocol.
    pub protocol: u8,
    /// 1: the kernel refused the call (enforce); 0: it was let through (monitor).
    pub blocked: u8,
    /// 0: `connect`; 1: `sendmsg`.
    pub hook: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Reserved, zero.
    pub reserved2: u32,
}

/// Most bytes of a DNS response captured (the classic UDP DNS limit).
pub const DNS_CAPTURE_MAX: usize = 512;
/// Most addresses learned from one DNS response.
pub const EGRESS_MAX_DNS_ADDRESSES: usize = 8;
/// Most policies that learn from one DNS response.
pub const EGRESS_MAX_DNS_POLICIES: usize = 2;
/// Most labels of a DNS name the kernel side matches.
pub const DNS_MAX_LABELS: usize = 16;
/// Seconds an address learned from DNS stays allowed beyond its TTL, so a connection made
/// right as the record expires is not refused.
pub const EGRESS_DNS_GRACE_SECONDS: u64 = 5;

/// Key of the host-name maps: the hash of a name (see [`dns_fold`]), whether it is a wildcard
/// (`*.name`: any name below it), and the policy (`EGRESS_NO_POLICY` in `EGRESS_NAMES`, whose
/// value is the mask of policies with a rule for the name).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EgressNameKey {
    /// Hash of the name's labels.
    pub hash: u64,
    /// The policy, or `EGRESS_NO_POLICY`.
    pub policy: u32,
    /// 1 for `*.name`, 0 for the exact name.
    pub wildcard: u32,
}

/// Key of the addresses learned from DNS answers, per policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressHostKey {
    /// The policy whose host rule matched the name.
    pub policy: u32,
    /// 1 for IPv4 (the first four bytes of `addr`), 0 for IPv6.
    pub v4: u32,
    /// The address, network byte order.
    pub addr: [u8; 16],
}

/// An address learned from a DNS answer: allowed, with the ports of the host rule `rule` names
/// (its key in `EGRESS_NAME_PORTS`), until it expires.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressLearned {
    /// Boot-clock time after which the address is no longer allowed.
    pub expires_boot_ns: u64,
    /// The host rule that matched the name.
    pub rule: EgressNameKey,
}

/// A DNS response a workload received, for userspace's name cache.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsRecord {
    /// Common header (of whatever task the packet arrived in the context of); `kind` is
    /// [`RecordKind::Dns`].
    pub header: RecordHeader,
    /// Bytes of `data` captured.
    pub len: u16,
    /// Reserved, zero.
    pub reserved: [u8; 6],
    /// The DNS message from its header on.
    pub data: [u8; DNS_CAPTURE_MAX],
}

/// The FNV-1a offset basis a label hash starts from.
pub const DNS_HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Adds one byte of a label to its hash (ASCII case-insensitive, as DNS names are).
///
/// Lowercases with arithmetic instead of a comparison, so the kernel side's hashing loop has
/// no branch for the verifier to follow.
#[inline(always)]
pub fn dns_hash_byte(hash: u64, byte: u8) -> u64 {
    let b = u64::from(byte);
    // Bit 8 of b + 191 is set from 'A' (65) up, bit 8 of b + 165 from '[' (91) up.
    let upper = ((b + 191) >> 8) ^ ((b + 165) >> 8);
    (hash ^ (b | (upper << 5))).wrapping_mul(0x0000_0100_0000_01b3)
}

/// Folds a label's hash into the hash of the labels to its right, so every suffix of a name
/// (`example.com`, `payments.example.com`, ...) has a hash computed in one pass from the right.
#[inline(always)]
pub fn dns_fold(suffix: u64, label: u64) -> u64 {
    (suffix ^ label)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(31)
}

/// The hash of a dotted name (`payments.example.com`, no `*.`), as the kernel side computes it
/// from a DNS question.
pub fn dns_name_hash(name: &str) -> u64 {
    name.trim_end_matches('.')
        .rsplit('.')
        .fold(0, |suffix, label| {
            dns_fold(suffix, label.bytes().fold(DNS_HASH_START, dns_hash_byte))
        })
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C) plain data with no padding-dependent invariants; any bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::SyscallRecipe {}
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::PendingCall {}
    unsafe impl aya::Pod for super::EgressConfig {}
    unsafe impl aya::Pod for super::EgressPorts {}
    unsafe impl aya::Pod for super::EgressNameKey {}
    unsafe impl aya::Pod for super::EgressHostKey {}
    unsafe impl aya::Pod for super::EgressLearned {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_stable() {
        assert_eq!(size_of::<RecordHeader>(), 64);
        assert_eq!(
            size_of::<SyscallRecord>(),
            64 + 8 + 48 + 24 + 16 + SOCKADDR_MAX
        );
        assert_eq!(size_of::<ForkRecord>(), 72);
        assert_eq!(size_of::<ExecRecord>(), 72);
        assert_eq!(size_of::<ExitRecord>(), 72);
        assert_eq!(size_of::<SyscallRecipe>(), 16);
        assert_eq!(size_of::<EgressRecord>(), 64 + 16 + 16);
        assert_eq!(size_of::<EgressPorts>(), 8 + 8 * EGRESS_MAX_PORT_RULES);
        assert_eq!(size_of::<EgressConfig>(), 40);
        assert_eq!(size_of::<EgressNameKey>(), 16);
        assert_eq!(size_of::<EgressHostKey>(), 24);
        assert_eq!(size_of::<DnsRecord>(), 64 + 8 + DNS_CAPTURE_MAX);
    }

    #[test]
    fn hashing_lowercases_ascii_only() {
        for byte in 0..=u8::MAX {
            assert_eq!(
                dns_hash_byte(DNS_HASH_START, byte),
                (DNS_HASH_START ^ u64::from(byte.to_ascii_lowercase()))
                    .wrapping_mul(0x0000_0100_0000_01b3),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn name_hashes_fold_from_the_right_and_ignore_case() {
        assert_eq!(
            dns_name_hash("Payments.Example.COM."),
            dns_name_hash("payments.example.com")
        );
        let com = dns_fold(
            0,
            b"com"
                .iter()
                .fold(DNS_HASH_START, |h, &b| dns_hash_byte(h, b)),
        );
        let example = dns_fold(
            com,
            b"example"
                .iter()
                .fold(DNS_HASH_START, |h, &b| dns_hash_byte(h, b)),
        );
        assert_eq!(dns_name_hash("example.com"), example);
        assert_ne!(dns_name_hash("example.com"), dns_name_hash("com.example"));
    }

    #[test]
    fn record_kind_round_trips() {
        for kind in [
            RecordKind::Syscall,
            RecordKind::Fork,
            RecordKind::Exec,
            RecordKind::Exit,
            RecordKind::Egress,
            RecordKind::Dns,
        ] {
            assert_eq!(RecordKind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(RecordKind::from_u8(0), None);
        assert_eq!(RecordKind::from_u8(7), None);
    }
}

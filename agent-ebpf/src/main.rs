//! Vigil's kernel side: five tracepoint programs that turn process lifecycle and selected syscalls
//! into records on one ring buffer.
//!
//! Only stable ABI is used: tracepoint arguments, `bpf_get_current_*` helpers and reads of user
//! memory. Which syscalls are captured, and how their arguments are read, is decided by userspace
//! through the `SYSCALL_INTEREST` map, so this code knows no syscall numbers.
#![no_std]
#![no_main]

mod dns;
mod egress;

use core::{
    ffi::c_void,
    mem::size_of,
    ptr::{addr_of, addr_of_mut},
};

use agent_common::{
    ARGV_MAX_ARGS, ARGV_MAX_BYTES, BUF_MAX, DATA_CAP, ExecCapture, ExecRecord, ExitRecord,
    ForkRecord, MAX_SYSCALL_NR, NO_FIELD, PendingCall, ProbeConfig, RecordHeader, RecordKind,
    SCRATCH_SIZE, SOCKADDR_MAX, STR_MAX, STR_SLOTS, Scratch, SyscallRecipe, SyscallRecord,
    drop_reason, recipe_flags, record_flags, skip_reason, sockaddr_mode,
};
use aya_ebpf::{
    EbpfContext,
    bindings::bpf_sock_ops,
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str,
    },
    macros::{map, raw_tracepoint, sock_ops, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, ring_buf::RingBufEntry},
    programs::{RawTracePointContext, SockOpsContext, TracePointContext},
};

const BPF_F_NO_PREALLOC: u32 = 1;
const CLONE_PARENT: u64 = 0x0000_8000;
const CLONE_THREAD: u64 = 0x0001_0000;

/// Offsets in `raw_syscalls:sys_enter` / `sys_exit`; unchanged since 3.x and checked by the
/// loader against tracefs before attaching.
const RAW_ID_OFFSET: usize = 8;
const RAW_ARGS_OFFSET: usize = 16;
const RAW_RET_OFFSET: usize = 16;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

#[map]
static SYSCALL_INTEREST: Array<SyscallRecipe> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

#[map]
static CONFIG: Array<ProbeConfig> = Array::with_max_entries(1, 0);

/// Syscalls in flight, by thread. A plain (preallocated) hash: an LRU map costs a locked list
/// operation on every insert and delete, twice per traced call. Entries leave at the call's
/// exit, when the thread exits, or move when a thread's exec takes over the leader's id; a
/// full map is counted (`pending_map_full`), never silent.
#[map]
static PENDING: HashMap<u32, PendingCall> = HashMap::with_max_entries(16384, 0);

#[map]
static EXEC_PENDING: HashMap<u32, ExecCapture> = HashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

#[map]
static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(65536, 0);

/// Local address of a TCP connect that completed, by the thread that called connect.
#[map]
static CONNECT_LOCAL: LruHashMap<u32, [u64; 3]> = LruHashMap::with_max_entries(4096, 0);

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_reason::COUNT, 0);

/// Per CPU: when it last woke the ring buffer's reader (the boot clock of that record) and the
/// bytes it committed since without waking it.
#[map]
static WAKEUP_STATE: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Until when (boot clock, ns) records need not wake the reader: it reads the ring again at
/// this time or later, and finds every record committed before. It moves this forward at
/// every read that found records, and lets it lapse when records stop coming.
#[map]
static READER_POLLS_UNTIL: Array<u64> = Array::with_max_entries(1, 0);

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// How a record is committed: whether it wakes the reader. Waking costs an interrupt (an
/// inter-processor one, which in a virtual machine is an exit to the hypervisor) and a context
/// switch, which under a syscall storm costs the workload more than everything else the probes
/// do. So a record wakes the reader only when the reader is not polling anyway (it announces
/// in `READER_POLLS_UNTIL` when it will look again) and this CPU has not woken it within the
/// interval, or when this CPU has committed its share of a quarter of the ring since it last
/// did. The reader polls again shortly after every read that found records, which picks up the
/// records committed in between. Everything decided here is cheap: the record's own
/// timestamp, no clock read, and no look at the ring's positions, whose cache line the reader
/// writes all the time.
struct Wakeup {
    flags: u64,
    now: u64,
    size: u64,
}

impl Wakeup {
    /// For a record of `size` bytes stamped `now` (its header's boot-clock time).
    #[inline(always)]
    fn decide(now: u64, size: u64) -> Wakeup {
        let adaptive = Wakeup {
            flags: 0,
            now: 0,
            size: 0,
        };
        let Some(config) = config() else {
            return adaptive;
        };
        if config.wakeup_interval_ns == 0 {
            return adaptive;
        }
        let Some(state) = WAKEUP_STATE.get(0) else {
            return adaptive;
        };
        let [last, bytes] = *state;
        let polling = READER_POLLS_UNTIL.get(0).is_some_and(|&until| now < until);
        let flags = if bytes + size >= config.wakeup_bytes
            || (!polling && now.wrapping_sub(last) >= config.wakeup_interval_ns)
        {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        Wakeup { flags, now, size }
    }

    /// Notes that the record went into the ring: only a record that is there (and so woke the
    /// reader) starts a new interval.
    #[inline(always)]
    fn committed(&self) {
        if self.now == 0 {
            return;
        }
        if let Some(state) = WAKEUP_STATE.get_ptr_mut(0) {
            // SAFETY: per-CPU slot, no concurrent writer on this CPU.
            unsafe {
                if self.flags == BPF_RB_FORCE_WAKEUP {
                    *state = [self.now, 0];
                } else {
                    (*state)[1] += self.size;
                }
            }
        }
    }
}

/// Copies a record stamped `now` into the ring buffer, counting it as dropped when there is no
/// room.
#[inline(always)]
fn emit(bytes: &[u8], now: u64) {
    let wakeup = Wakeup::decide(now, bytes.len() as u64);
    if EVENTS.output::<[u8]>(bytes, wakeup.flags).is_err() {
        count_drop(drop_reason::RINGBUF_FULL);
    } else {
        wakeup.committed();
    }
}

/// Commits a record reserved in the ring buffer and stamped `now` (its header's time).
#[inline(always)]
pub(crate) fn submit<T>(entry: RingBufEntry<T>, now: u64) {
    let wakeup = Wakeup::decide(now, size_of::<T>() as u64);
    entry.submit(wakeup.flags);
    wakeup.committed();
}

/// Records left out on purpose, by [`skip_reason`], so every class is accounted for.
#[map]
static SKIPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(skip_reason::COUNT, 0);

#[inline(always)]
fn count_skip(reason: u32) {
    if let Some(counter) = SKIPPED.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn count_drop(reason: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn config() -> Option<&'static ProbeConfig> {
    CONFIG.get(0)
}

#[inline(always)]
fn pick(args: &[u64; 6], index: u8) -> Option<u64> {
    match index {
        0 => Some(args[0]),
        1 => Some(args[1]),
        2 => Some(args[2]),
        3 => Some(args[3]),
        4 => Some(args[4]),
        5 => Some(args[5]),
        _ => None,
    }
}

#[inline(always)]
unsafe fn fill_header(header: *mut RecordHeader, kind: RecordKind, syscall_id: u16) {
    unsafe {
        let pid_tgid = bpf_get_current_pid_tgid();
        let uid_gid = bpf_get_current_uid_gid();
        let pid = (pid_tgid >> 32) as u32;
        (*header).kind = kind as u8;
        (*header).flags = 0;
        (*header).syscall_id = syscall_id;
        (*header).reserved = 0;
        (*header).ts_ns = bpf_ktime_get_boot_ns();
        (*header).pid = pid;
        (*header).tid = pid_tgid as u32;
        (*header).ppid = PARENTS.get(pid).copied().unwrap_or(0);
        (*header).uid = uid_gid as u32;
        (*header).gid = (uid_gid >> 32) as u32;
        (*header).reserved2 = 0;
        (*header).cgroup_id = bpf_get_current_cgroup_id();
        bpf_get_current_comm(
            addr_of_mut!((*header).comm).cast(),
            agent_common::COMM_LEN as u32,
        );
    }
}

/// Reads a NUL-terminated user string into `dst`; returns its length without the NUL and
/// whether it was cut at `max`.
#[inline(always)]
unsafe fn read_user_str(dst: *mut u8, max: usize, src: u64, flags: &mut u8) -> (usize, bool) {
    if src == 0 {
        return (0, false);
    }
    let copied = unsafe { bpf_probe_read_user_str(dst.cast(), max as u32, src as *const c_void) };
    if copied <= 0 {
        *flags |= record_flags::USER_READ_FAILED;
        return (0, false);
    }
    let copied = copied as usize;
    (copied - 1, copied >= max)
}

/// Zero as a value the compiler cannot see through. BPF has no inline `memset`: a run of
/// fields set to the constant zero is merged into a call to compiler_builtins' `memset`, which
/// stores one byte per iteration and cost more than the rest of a record together. Fields set
/// from this value are stored one by one.
#[inline(always)]
fn opaque_zero() -> u64 {
    let zero = 0u64;
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&zero) }
}

/// A call with its number and arguments and no aux words yet, built without a `memset`.
#[inline(always)]
fn pending_call(nr: i64, args: [u64; 6]) -> PendingCall {
    let zero = opaque_zero();
    PendingCall {
        nr: nr as u64,
        args,
        aux: [zero, zero, zero],
    }
}

/// Copies three words one by one (a plain copy becomes a byte-at-a-time `memcpy` call).
#[inline(always)]
unsafe fn copy_words(dst: *mut [u64; 3], src: &[u64; 3]) {
    let dst = dst.cast::<u64>();
    for (i, word) in src.iter().enumerate() {
        // SAFETY: `dst` points to three words.
        unsafe { core::ptr::write_volatile(dst.add(i), *word) };
    }
}

#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    let raw = ctx.as_ptr().cast::<u8>();
    // SAFETY: offsets checked against this kernel's tracepoint format at load time.
    let nr = unsafe { *(raw.add(RAW_ID_OFFSET).cast::<i64>()) };
    unsafe {
        on_sys_enter(nr, false, || {
            // Word by word: the context is read with loads, never through a `memcpy` call.
            let arg = |i: usize| *raw.add(RAW_ARGS_OFFSET).cast::<u64>().add(i);
            [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)]
        })
    };
    0
}

/// Offsets in the x86_64 `struct pt_regs` (the ptrace register layout, part of the ABI):
/// `r10`, `r9`, `r8`, `ax`, `cx`, `dx`, `si`, `di` and `orig_ax` (the syscall number) are
/// contiguous words from `r10` on.
const REGS_R10_OFFSET: u64 = 56;
const REGS_R10_TO_DI_WORDS: usize = 8;
const REGS_R10_TO_ORIG_AX_WORDS: usize = 9;

/// The same as `sys_enter`, as a raw tracepoint: no copy of the arguments into a trace buffer
/// for every syscall of every task, which is most of what a classic tracepoint costs.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_raw(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let nr: i64 = ctx.arg(1);
    // SAFETY: `regs` is the task's saved registers; reads of kernel memory are checked.
    unsafe {
        on_sys_enter(nr, true, || {
            read_regs_words::<REGS_R10_TO_DI_WORDS>(regs)
                .map_or([opaque_zero(); 6], |words| args_of(&words))
        })
    };
    0
}

/// Reads `N` words of a task's saved registers from `r10` on, in one read, into memory left
/// uninitialised (zeroing it first would be a `memset` call: see `opaque_zero`). The kernel
/// leaves them as they were at entry until the call returns.
#[inline(always)]
unsafe fn read_regs_words<const N: usize>(regs: u64) -> Option<[u64; N]> {
    let mut words = core::mem::MaybeUninit::<[u64; N]>::uninit();
    // SAFETY: on success the helper wrote every byte of `words`.
    unsafe {
        let failed = bpf_probe_read_kernel(
            words.as_mut_ptr().cast(),
            (N * size_of::<u64>()) as u32,
            (regs + REGS_R10_OFFSET) as *const c_void,
        ) != 0;
        (!failed).then(|| words.assume_init())
    }
}

/// A syscall's six arguments (x86_64: di, si, dx, r10, r8, r9) from the words of
/// [`read_regs_words`].
#[inline(always)]
fn args_of(words: &[u64]) -> [u64; 6] {
    [words[7], words[6], words[5], words[0], words[2], words[1]]
}

/// Whether a syscall must be seen at entry, not only at exit: an exec's strings and argv are
/// gone once it succeeds, the fork program needs a clone's flags while the call is in
/// progress, the connect-state program needs to know a connect is in progress, and a
/// credentials change is reported with the identity it changed from.
#[inline(always)]
fn needs_entry(recipe: &SyscallRecipe) -> bool {
    recipe.flags
        & (recipe_flags::EXEC
            | recipe_flags::STASH_ONLY
            | recipe_flags::LOCAL_ADDRESS
            | recipe_flags::CREDS_AT_ENTRY)
        != 0
}

/// Whether `tgid` is the agent's, whose own calls are not reported.
#[inline(always)]
fn ignored(tgid: u32) -> bool {
    config().is_some_and(|config| config.ignored_tgid != 0 && config.ignored_tgid == tgid)
}

/// A syscall's entry: keeps its arguments for the exit. `exit_reads_registers` is set by the
/// raw programs, whose exit reads the arguments itself: then only the calls that
/// [`needs_entry`] are kept, which spares the map insert and delete of every other call.
#[inline(always)]
unsafe fn on_sys_enter(nr: i64, exit_reads_registers: bool, read_args: impl FnOnce() -> [u64; 6]) {
    if nr < 0 || nr >= MAX_SYSCALL_NR as i64 {
        return;
    }
    let recipe = match SYSCALL_INTEREST.get(nr as u32) {
        Some(recipe) if recipe.id != 0 => *recipe,
        _ => return,
    };
    if exit_reads_registers && !needs_entry(&recipe) {
        return;
    }
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    // The agent's own calls are skipped, except clone flags: the fork program still needs them
    // to tell the agent's new threads from new processes.
    if recipe.flags & recipe_flags::STASH_ONLY == 0 && ignored((pid_tgid >> 32) as u32) {
        return;
    }
    let tid = pid_tgid as u32;
    let mut call = pending_call(nr, read_args());
    unsafe { read_aux(&recipe, &mut call) };
    if recipe.flags & recipe_flags::CREDS_AT_ENTRY != 0 {
        // SAFETY: a helper without arguments.
        let uid_gid = unsafe { bpf_get_current_uid_gid() };
        call.aux = [uid_gid & 0xffff_ffff, uid_gid >> 32, 0];
    }
    if recipe.flags & recipe_flags::EXEC != 0 {
        unsafe { capture_exec(&recipe, &call.args, tid) };
    }
    if recipe.flags & recipe_flags::LOCAL_ADDRESS != 0 {
        // An address left by a TCP fast open (sendto) is not this connect's.
        let _ = CONNECT_LOCAL.remove(tid);
    }
    if PENDING.insert(tid, call, 0).is_err() {
        count_drop(drop_reason::PENDING_FULL);
    }
}

/// Copies the first words of the user struct the recipe's `aux_arg` points to.
#[inline(always)]
unsafe fn read_aux(recipe: &SyscallRecipe, call: &mut PendingCall) {
    if let Some(ptr) = pick(&call.args, recipe.aux_arg)
        && ptr != 0
    {
        unsafe {
            bpf_probe_read_user(
                addr_of_mut!(call.aux).cast(),
                size_of::<[u64; 3]>() as u32,
                ptr as *const c_void,
            );
        }
    }
}

/// Copies an exec's filename and argv while the caller's memory still exists.
#[inline(always)]
unsafe fn capture_exec(recipe: &SyscallRecipe, args: &[u64; 6], tid: u32) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let capture = scratch.cast::<ExecCapture>();
    unsafe {
        let data = addr_of_mut!((*capture).data).cast::<u8>();
        let mut flags = 0u8;
        let filename = pick(args, recipe.str_args[0]).unwrap_or(0);
        let (filename_len, cut) = read_user_str(data, STR_MAX, filename, &mut flags);
        if cut {
            flags |= record_flags::STR0_TRUNCATED;
        }

        let argv = pick(args, recipe.argv_arg).unwrap_or(0);
        let argv_area = data.add(STR_MAX);
        let mut used: usize = 0;
        let mut argc: u16 = 0;
        if argv != 0 {
            for i in 0..=ARGV_MAX_ARGS {
                let mut arg: u64 = 0;
                let slot = (argv + (i * 8) as u64) as *const c_void;
                if bpf_probe_read_user(addr_of_mut!(arg).cast(), 8, slot) != 0 {
                    flags |= record_flags::USER_READ_FAILED;
                    break;
                }
                if arg == 0 {
                    break;
                }
                if i == ARGV_MAX_ARGS || used >= ARGV_MAX_BYTES {
                    flags |= record_flags::ARGV_TRUNCATED;
                    break;
                }
                let offset = used & (ARGV_MAX_BYTES - 1);
                let room = ARGV_MAX_BYTES - offset;
                let copied = bpf_probe_read_user_str(
                    argv_area.add(offset).cast(),
                    room as u32,
                    arg as *const c_void,
                );
                if copied <= 0 {
                    flags |= record_flags::USER_READ_FAILED;
                    break;
                }
                used = offset + copied as usize;
                argc += 1;
                if copied as usize >= room {
                    flags |= record_flags::ARGV_TRUNCATED;
                    break;
                }
            }
        }
        (*capture).flags = flags;
        (*capture).reserved = 0;
        (*capture).filename_len = filename_len as u16;
        (*capture).argv_len = used as u16;
        (*capture).argc = argc;
        // By reference: an 8 KiB value must never be copied onto the 512-byte BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        if EXEC_PENDING.insert(tid, &*capture, 0).is_err() {
            count_drop(drop_reason::EXEC_PENDING_FULL);
        }
    }
}

#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let raw = ctx.as_ptr().cast::<u8>();
    // SAFETY: offsets checked against this kernel's tracepoint format at load time.
    unsafe {
        let nr = *(raw.add(RAW_ID_OFFSET).cast::<i64>());
        let ret = *(raw.add(RAW_RET_OFFSET).cast::<i64>());
        on_sys_exit(nr, ret, None);
    }
    0
}

/// The same as `sys_exit`, as a raw tracepoint (see `sys_enter_raw`).
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_raw(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    // The number and the arguments in one read: most calls that get this far are traced.
    // SAFETY: `regs` is the task's saved registers; reads of kernel memory are checked.
    unsafe {
        if let Some(words) = read_regs_words::<REGS_R10_TO_ORIG_AX_WORDS>(regs) {
            on_sys_exit(words[8] as i64, ret, Some(args_of(&words)));
        }
    }
    0
}

/// A syscall's exit: one record of the completed call. With `regs_args` (the raw programs,
/// from the saved registers), calls that do not [`needs_entry`] take their arguments from
/// there.
#[inline(always)]
unsafe fn on_sys_exit(nr: i64, ret: i64, regs_args: Option<[u64; 6]>) {
    if nr < 0 || nr >= MAX_SYSCALL_NR as i64 {
        return;
    }
    let recipe = match SYSCALL_INTEREST.get(nr as u32) {
        Some(recipe) if recipe.id != 0 => *recipe,
        _ => return,
    };
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    let tid = pid_tgid as u32;
    // The raw exit reads the arguments itself unless the call was stashed at entry.
    let regs_args = regs_args.filter(|_| !needs_entry(&recipe));
    if ret < 0 && recipe.flags & recipe_flags::SKIP_FAILED != 0 {
        if regs_args.is_none() {
            let _ = PENDING.remove(tid);
        }
        if recipe.flags & recipe_flags::EXEC != 0 {
            let _ = EXEC_PENDING.remove(tid);
        }
        if !ignored((pid_tgid >> 32) as u32) {
            count_skip(skip_reason::FAILED_CALL);
        }
        return;
    }
    let call = match regs_args {
        Some(args) => {
            if ignored((pid_tgid >> 32) as u32) {
                return;
            }
            let mut call = pending_call(nr, args);
            unsafe { read_aux(&recipe, &mut call) };
            call
        }
        None => {
            let Some(call) = (unsafe { PENDING.get(tid) }).copied() else {
                return;
            };
            let _ = PENDING.remove(tid);
            call
        }
    };
    if call.nr != nr as u64 || recipe.flags & recipe_flags::STASH_ONLY != 0 {
        return;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        let record = scratch.cast::<SyscallRecord>();
        fill_header(
            addr_of_mut!((*record).header),
            RecordKind::Syscall,
            recipe.id,
        );
        (*record).ret = ret;
        (*record).args = call.args;
        copy_words(addr_of_mut!((*record).aux), &call.aux);
        // One by one, not as a `memset` call (see `opaque_zero`).
        let zero = opaque_zero() as u16;
        for slot in 0..STR_SLOTS {
            (*record).str_len[slot] = zero;
        }
        (*record).argv_len = zero;
        (*record).argc = zero;
        (*record).sockaddr_len = zero;
        (*record).buf_len = zero;
        (*record).reserved = zero;
        let data = scratch.cast::<u8>().add(size_of::<SyscallRecord>());
        let mut flags = 0u8;
        let used = if recipe.flags & recipe_flags::EXEC != 0 {
            copy_exec_capture(record, data, tid, &mut flags)
        } else {
            read_strings(&recipe, &call.args, record, data, &mut flags)
        };
        read_sockaddr(&recipe, &call.args, ret, record, &mut flags);
        if recipe.flags & recipe_flags::LOCAL_ADDRESS != 0
            && let Some(local) = CONNECT_LOCAL.get(tid).copied()
        {
            copy_words(addr_of_mut!((*record).aux), &local);
            let _ = CONNECT_LOCAL.remove(tid);
        }
        let used = used + read_buffer(&recipe, &call.args, ret, record, data, used, &mut flags);
        (*record).header.flags = flags;

        let total = size_of::<SyscallRecord>() + used;
        if total > SCRATCH_SIZE {
            return;
        }
        emit(
            core::slice::from_raw_parts(scratch.cast::<u8>(), total),
            (*record).header.ts_ns,
        );
    }
}

/// Reads the recipe's string arguments back to back into `data`; returns the bytes used.
#[inline(always)]
unsafe fn read_strings(
    recipe: &SyscallRecipe,
    args: &[u64; 6],
    record: *mut SyscallRecord,
    data: *mut u8,
    flags: &mut u8,
) -> usize {
    let mut used: usize = 0;
    for slot in 0..STR_SLOTS {
        let Some(src) = pick(args, recipe.str_args[slot]) else {
            continue;
        };
        // Two strings of at most STR_MAX - 1 bytes fit below 2 * STR_MAX; the mask proves it.
        let offset = used & (2 * STR_MAX - 1);
        let (len, cut) = unsafe { read_user_str(data.add(offset), STR_MAX, src, flags) };
        if cut {
            *flags |= record_flags::STR0_TRUNCATED << slot;
        }
        unsafe { (*record).str_len[slot] = len as u16 };
        used = offset + len;
    }
    used
}

/// Copies the first bytes an I/O call transferred (its return value says how many) after the
/// strings; returns the bytes used.
#[inline(always)]
unsafe fn read_buffer(
    recipe: &SyscallRecipe,
    args: &[u64; 6],
    ret: i64,
    record: *mut SyscallRecord,
    data: *mut u8,
    used: usize,
    flags: &mut u8,
) -> usize {
    let Some(buffer) = pick(args, recipe.buf_arg) else {
        return 0;
    };
    if buffer == 0 || ret <= 0 || used > DATA_CAP - BUF_MAX {
        return 0;
    }
    let len = if ret as u64 > BUF_MAX as u64 {
        BUF_MAX
    } else {
        ret as usize
    };
    // The mask restates the bound for the verifier.
    let len = len & (2 * BUF_MAX - 1);
    if len > BUF_MAX {
        return 0;
    }
    unsafe {
        if bpf_probe_read_user(data.add(used).cast(), len as u32, buffer as *const c_void) != 0 {
            *flags |= record_flags::USER_READ_FAILED;
            return 0;
        }
        (*record).buf_len = len as u16;
    }
    len
}

/// Moves the exec capture taken at entry into the record; returns the bytes used.
#[inline(always)]
unsafe fn copy_exec_capture(
    record: *mut SyscallRecord,
    data: *mut u8,
    tid: u32,
    flags: &mut u8,
) -> usize {
    let Some(capture) = EXEC_PENDING.get_ptr(tid) else {
        return 0;
    };
    unsafe {
        let filename_len = ((*capture).filename_len as usize) & (STR_MAX - 1);
        let argv_len = ((*capture).argv_len as usize) & (2 * ARGV_MAX_BYTES - 1);
        if argv_len > ARGV_MAX_BYTES {
            let _ = EXEC_PENDING.remove(tid);
            return 0;
        }
        let source = addr_of_mut!((*capture.cast_mut()).data).cast::<u8>();
        bpf_probe_read_kernel(data.cast(), filename_len as u32, source.cast());
        bpf_probe_read_kernel(
            data.add(filename_len).cast(),
            argv_len as u32,
            source.add(STR_MAX).cast(),
        );
        *flags |= (*capture).flags;
        (*record).str_len[0] = filename_len as u16;
        (*record).argv_len = argv_len as u16;
        (*record).argc = (*capture).argc;
        let _ = EXEC_PENDING.remove(tid);
        filename_len + argv_len
    }
}

#[inline(always)]
unsafe fn read_sockaddr(
    recipe: &SyscallRecipe,
    args: &[u64; 6],
    ret: i64,
    record: *mut SyscallRecord,
    flags: &mut u8,
) {
    let (addr, len) = unsafe {
        match recipe.sockaddr_mode {
            sockaddr_mode::PTR_AND_LEN => (
                pick(args, recipe.sockaddr_arg).unwrap_or(0),
                pick(args, recipe.sockaddr_len_arg).unwrap_or(0) as u32,
            ),
            sockaddr_mode::PTR_AND_LEN_PTR => {
                // The kernel fills the peer address only on success.
                let len_ptr = pick(args, recipe.sockaddr_len_arg).unwrap_or(0);
                if ret < 0 || len_ptr == 0 {
                    return;
                }
                let mut len: u32 = 0;
                bpf_probe_read_user(addr_of_mut!(len).cast(), 4, len_ptr as *const c_void);
                (pick(args, recipe.sockaddr_arg).unwrap_or(0), len)
            }
            sockaddr_mode::MSGHDR => {
                let header = pick(args, recipe.sockaddr_arg).unwrap_or(0);
                if header == 0 {
                    return;
                }
                // struct user_msghdr { void *msg_name; int msg_namelen; ... }
                let mut name: u64 = 0;
                let mut len: u32 = 0;
                bpf_probe_read_user(addr_of_mut!(name).cast(), 8, header as *const c_void);
                bpf_probe_read_user(addr_of_mut!(len).cast(), 4, (header + 8) as *const c_void);
                (name, len)
            }
            _ => return,
        }
    };
    if addr == 0 || len == 0 {
        return;
    }
    let mut take = len as usize;
    if take > SOCKADDR_MAX {
        take = SOCKADDR_MAX;
        *flags |= record_flags::SOCKADDR_TRUNCATED;
    }
    unsafe {
        if bpf_probe_read_user(
            addr_of_mut!((*record).sockaddr).cast(),
            take as u32,
            addr as *const c_void,
        ) != 0
        {
            *flags |= record_flags::USER_READ_FAILED;
            return;
        }
        (*record).sockaddr_len = take as u16;
    }
}

/// Reads a 4-byte tracepoint field at an offset learned from tracefs.
#[inline(always)]
unsafe fn read_field_u32(ctx: &TracePointContext, offset: u16) -> Option<u32> {
    let mut value: u32 = 0;
    unsafe { read_field(ctx, offset, addr_of_mut!(value).cast(), 4) }.then_some(value)
}

/// Reads `size` bytes of a tracepoint field at an offset learned from tracefs.
#[inline(always)]
unsafe fn read_field(ctx: &TracePointContext, offset: u16, dst: *mut u8, size: u32) -> bool {
    if offset == NO_FIELD {
        return false;
    }
    let source = (ctx.as_ptr() as u64 + offset as u64) as *const c_void;
    unsafe { bpf_probe_read_kernel(dst.cast(), size, source) == 0 }
}

const TCP_ESTABLISHED: u32 = 1;
const TCP_SYN_SENT: u32 = 2;

/// Sockets connecting right now, by socket address, and the thread that called connect.
#[map]
static CONNECTING: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // SAFETY: field offsets come from this kernel's tracepoint format.
    unsafe { on_sock_state(&ctx) };
    0
}

/// Finds the local address of a TCP connect: SYN_SENT is entered in the connecting thread (but
/// before the kernel picks the port), ESTABLISHED is reached with the port chosen (but maybe in
/// softirq context): the socket's address links the two.
#[inline(always)]
unsafe fn on_sock_state(ctx: &TracePointContext) {
    let Some(config) = config() else {
        return;
    };
    let layout = &config.layout;
    let Some(newstate) = (unsafe { read_field_u32(ctx, layout.sock_newstate) }) else {
        return;
    };
    let mut socket: u64 = 0;
    if !unsafe { read_field(ctx, layout.sock_skaddr, addr_of_mut!(socket).cast(), 8) } {
        return;
    }
    if newstate == TCP_SYN_SENT {
        let tid = unsafe { bpf_get_current_pid_tgid() } as u32;
        let _ = CONNECTING.insert(socket, tid, 0);
        return;
    }
    if newstate != TCP_ESTABLISHED
        || unsafe { read_field_u32(ctx, layout.sock_oldstate) } != Some(TCP_SYN_SENT)
    {
        return;
    }
    let Some(tid) = (unsafe { CONNECTING.get(socket) }).copied() else {
        return;
    };
    let _ = CONNECTING.remove(socket);
    // Only a connect still in progress takes the address: after a non-blocking connect
    // returned, it would be misattributed to the thread's next connect.
    let in_connect = unsafe { PENDING.get(tid) }.is_some_and(|call| {
        call.nr < MAX_SYSCALL_NR as u64
            && SYSCALL_INTEREST
                .get(call.nr as u32)
                .is_some_and(|recipe| recipe.flags & recipe_flags::LOCAL_ADDRESS != 0)
    });
    if !in_connect {
        return;
    }
    let mut port: u16 = 0;
    let mut family: u16 = 0;
    let mut address = [0u64; 2];
    unsafe {
        if !read_field(ctx, layout.sock_sport, addr_of_mut!(port).cast(), 2)
            || !read_field(ctx, layout.sock_family, addr_of_mut!(family).cast(), 2)
        {
            return;
        }
        let (field, size) = if family == AF_INET6 {
            (layout.sock_saddr_v6, 16)
        } else {
            (layout.sock_saddr, 4)
        };
        if !read_field(ctx, field, addr_of_mut!(address).cast(), size) {
            return;
        }
    }
    let local = [
        ((family as u64) << 16) | port as u64,
        address[0],
        address[1],
    ];
    let _ = CONNECT_LOCAL.insert(tid, local, 0);
}

const AF_INET6: u16 = 10;
const BPF_SOCK_OPS_TCP_CONNECT_CB: u32 = 3;

/// The local address of an active TCP open, from the cgroup `sock_ops` hook: the kernel calls
/// it in the connecting thread, once the local port is chosen and before the SYN leaves, so it
/// sees non-blocking connects too. Where it can be attached it replaces
/// `inet_sock_set_state`, a classic tracepoint that runs for every state change of every TCP
/// socket on the host.
#[sock_ops]
pub fn tcp_connect_local(ctx: SockOpsContext) -> u32 {
    if ctx.op() != BPF_SOCK_OPS_TCP_CONNECT_CB {
        return 1;
    }
    let family = ctx.family();
    let address: [u64; 2] = if family == AF_INET6 as u32 {
        let ops = ctx.as_ptr().cast::<bpf_sock_ops>();
        // One 4-byte load per word: the kernel refuses wider loads of the context, which the
        // compiler would otherwise merge these into.
        // SAFETY: `ops` is the program's context; the verifier checks every access.
        let ip: [u32; 4] = unsafe {
            [
                core::ptr::read_volatile(addr_of!((*ops).local_ip6[0])),
                core::ptr::read_volatile(addr_of!((*ops).local_ip6[1])),
                core::ptr::read_volatile(addr_of!((*ops).local_ip6[2])),
                core::ptr::read_volatile(addr_of!((*ops).local_ip6[3])),
            ]
        };
        [
            u64::from(ip[0]) | (u64::from(ip[1]) << 32),
            u64::from(ip[2]) | (u64::from(ip[3]) << 32),
        ]
    } else {
        // In network order as stored: its bytes are the address's, like the tracepoint's.
        [u64::from(ctx.local_ip4()), 0]
    };
    // SAFETY: a helper without arguments.
    let tid = unsafe { bpf_get_current_pid_tgid() } as u32;
    let local = [
        (u64::from(family) << 16) | u64::from(ctx.local_port() & 0xffff),
        address[0],
        address[1],
    ];
    let _ = CONNECT_LOCAL.insert(tid, local, 0);
    1
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: field offsets come from this kernel's tracepoint format.
    unsafe { on_fork(&ctx) };
    0
}

#[inline(always)]
unsafe fn on_fork(ctx: &TracePointContext) {
    let Some(config) = config() else {
        return;
    };
    let Some(child) = (unsafe { read_field_u32(ctx, config.layout.fork_child_pid) }) else {
        return;
    };
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    let caller_tgid = (pid_tgid >> 32) as u32;
    let mut clone_flags: u64 = 0;
    if let Some(call) = unsafe { PENDING.get(pid_tgid as u32) }
        && call.nr < MAX_SYSCALL_NR as u64
        && let Some(recipe) = SYSCALL_INTEREST.get(call.nr as u32)
    {
        if recipe.flags & recipe_flags::CLONE_FLAGS_ARG0 != 0 {
            clone_flags = call.args[0];
        } else if recipe.flags & recipe_flags::CLONE_FLAGS_AUX0 != 0 {
            clone_flags = call.aux[0];
        }
    }
    if clone_flags & CLONE_THREAD != 0 {
        return;
    }
    let parent = if clone_flags & CLONE_PARENT != 0 {
        unsafe { PARENTS.get(caller_tgid) }.copied().unwrap_or(0)
    } else {
        caller_tgid
    };
    let _ = PARENTS.insert(child, parent, 0);

    let Some(mut entry) = EVENTS.reserve::<ForkRecord>(0) else {
        count_drop(drop_reason::RINGBUF_FULL);
        return;
    };
    let record = entry.as_mut_ptr();
    unsafe {
        fill_header(addr_of_mut!((*record).header), RecordKind::Fork, 0);
        (*record).child_pid = child;
        (*record).child_ppid = parent;
    }
    // SAFETY: the header was just filled.
    submit(entry, unsafe { (*record).header.ts_ns });
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // SAFETY: field offsets come from this kernel's tracepoint format.
    unsafe { on_exec(&ctx) };
    0
}

#[inline(always)]
unsafe fn on_exec(ctx: &TracePointContext) {
    let Some(config) = config() else {
        return;
    };
    let tid = unsafe { bpf_get_current_pid_tgid() } as u32;
    let old_tid = unsafe { read_field_u32(ctx, config.layout.exec_old_pid) }.unwrap_or(tid);
    if old_tid != tid {
        // A non-leader thread called exec and took over the leader's id: its syscall exit will
        // be seen under the new id.
        if let Some(call) = unsafe { PENDING.get(old_tid) }.copied() {
            let _ = PENDING.insert(tid, call, 0);
            let _ = PENDING.remove(old_tid);
        }
        if let Some(capture) = EXEC_PENDING.get_ptr(old_tid) {
            // By reference: the 8 KiB capture must not be copied onto the BPF stack.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let _ = EXEC_PENDING.insert(tid, unsafe { &*capture }, 0);
            let _ = EXEC_PENDING.remove(old_tid);
        }
    }

    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        let record = scratch.cast::<ExecRecord>();
        fill_header(addr_of_mut!((*record).header), RecordKind::Exec, 0);
        (*record).old_tid = old_tid;
        (*record).filename_len = 0;
        (*record).reserved = 0;
        let mut used = 0usize;
        if let Some(loc) = read_field_u32(ctx, config.layout.exec_filename) {
            let data = scratch.cast::<u8>().add(size_of::<ExecRecord>());
            let source = (ctx.as_ptr() as u64 + (loc & 0xffff) as u64) as *const c_void;
            let copied = bpf_probe_read_kernel_str(data.cast(), STR_MAX as u32, source);
            if copied > 0 {
                used = (copied as usize - 1) & (STR_MAX - 1);
                (*record).filename_len = used as u16;
            }
        }
        let total = size_of::<ExecRecord>() + used;
        if total > SCRATCH_SIZE {
            return;
        }
        emit(
            core::slice::from_raw_parts(scratch.cast::<u8>(), total),
            (*record).header.ts_ns,
        );
    }
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: field offsets come from this kernel's tracepoint format.
    unsafe { on_exit(&ctx) };
    0
}

#[inline(always)]
unsafe fn on_exit(ctx: &TracePointContext) {
    let Some(config) = config() else {
        return;
    };
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    let _ = PENDING.remove(tid);
    let _ = EXEC_PENDING.remove(tid);
    let _ = CONNECT_LOCAL.remove(tid);

    let group_dead = match unsafe { read_field_u32(ctx, config.layout.exit_group_dead) } {
        Some(value) => (value & 0xff != 0) as u8,
        None => 2,
    };
    let process_gone = group_dead == 1 || (group_dead == 2 && tid == tgid);
    if !process_gone {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count_drop(drop_reason::RINGBUF_FULL);
        return;
    };
    let record = entry.as_mut_ptr();
    unsafe {
        fill_header(addr_of_mut!((*record).header), RecordKind::Exit, 0);
        (*record).group_dead = group_dead;
        (*record).reserved = [0; 7];
    }
    // SAFETY: the header was just filled.
    submit(entry, unsafe { (*record).header.ts_ns });
    // The header above still needed the parent; forget it only now.
    let _ = PARENTS.remove(tgid);
}

const _: () = assert!(DATA_CAP >= 2 * STR_MAX + STR_MAX);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

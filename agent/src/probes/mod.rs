//! Loading, configuring and attaching Vigil's eBPF programs: the thin layer between the kernel
//! and the rest of the agent.

pub mod egress;
pub mod integrity;
pub mod layout;
pub mod poll_schedule;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agent_common::{
    MAX_SYSCALL_NR, ProbeConfig, SyscallRecipe, drop_reason, recipe_flags, skip_reason,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, ProgramError, RawTracePoint, SockOps, TracePoint},
};
use thiserror::Error;

use crate::{
    events::syscalls::{self, Syscall},
    host::mounts::{self, MountError},
};
pub use poll_schedule::PollSchedule;

/// The compiled eBPF object, embedded at build time.
static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil-probes"));

/// The lifecycle programs and the tracepoints they attach to, in attach order.
pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

/// Where the local address of a TCP connect comes from: a cgroup `sock_ops` program called
/// once per active open in the connecting thread...
pub const CONNECT_LOCAL_SOCK_OPS: &str = "tcp_connect_local";

/// ...or, without a cgroup v2 root to attach it to, this tracepoint (program, category, name),
/// which runs for every state change of every TCP socket and sees blocking connects only.
pub const CONNECT_LOCAL_TRACEPOINT: (&str, &str, &str) =
    ("inet_sock_set_state", "sock", "inet_sock_set_state");

/// The syscall programs as raw tracepoints (program, tracepoint): they run for every syscall
/// of every task, and a raw tracepoint costs a fraction of a classic one there, which first
/// copies the arguments into a trace buffer. They read the arguments from the saved
/// registers, whose layout is x86_64's ptrace ABI.
pub const RAW_SYSCALL_PROGRAMS: [(&str, &str); 2] =
    [("sys_enter_raw", "sys_enter"), ("sys_exit_raw", "sys_exit")];

/// The same as classic tracepoints (program, category, name), for other architectures and
/// kernels that refuse raw tracepoints.
pub const CLASSIC_SYSCALL_PROGRAMS: [(&str, &str, &str); 2] = [
    ("sys_enter", "raw_syscalls", "sys_enter"),
    ("sys_exit", "raw_syscalls", "sys_exit"),
];

/// Why the probes could not be started.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The binary was built with `AYA_BUILD_SKIP`.
    #[error(
        "this vigil binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild it after `cargo xtask bootstrap`"
    )]
    NotBuilt,
    /// tracefs is missing and could not be mounted.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A tracepoint format does not match.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// The kernel refused the object.
    #[error("loading the eBPF programs failed: {source}{hint}")]
    Load {
        /// The loader's error.
        #[source]
        source: Box<aya::EbpfError>,
        /// What to do about it.
        hint: &'static str,
    },
    /// A program could not be loaded or attached.
    #[error("attaching {program} to {target} failed: {reason}{hint}")]
    Attach {
        /// The program.
        program: &'static str,
        /// What it attaches to: `category/name` of a tracepoint, or a cgroup.
        target: String,
        /// The loader's error with its causes (the system call's error among them).
        reason: String,
        /// The loader's error.
        #[source]
        source: Box<ProgramError>,
        /// What to do about it.
        hint: &'static str,
    },
    /// A map is missing from the object or an update failed.
    #[error("eBPF map {map}: {reason}")]
    Map {
        /// The map.
        map: &'static str,
        /// What went wrong.
        reason: String,
    },
}

const PERMISSION_HINT: &str = " (vigil needs root, or CAP_BPF + CAP_PERFMON + CAP_SYS_RESOURCE)";

fn hint_for(message: &str) -> &'static str {
    if message.contains("Operation not permitted") || message.contains("EPERM") {
        PERMISSION_HINT
    } else {
        ""
    }
}

/// Turns a loader error about `program` (attached to `target`) into a [`ProbeError`].
fn attach_error(program: &'static str, target: String) -> impl Fn(ProgramError) -> ProbeError {
    move |source: ProgramError| {
        let hint = hint_for(&format!("{source:?}"));
        let mut reason = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(error) = cause {
            reason.push_str(": ");
            reason.push_str(&error.to_string());
            cause = error.source();
        }
        ProbeError::Attach {
            program,
            target: target.clone(),
            reason,
            source: Box::new(source),
            hint,
        }
    }
}

fn map_error(map: &'static str) -> impl Fn(MapError) -> ProbeError {
    move |error| ProbeError::Map {
        map,
        reason: error.to_string(),
    }
}

/// Settings for loading the probes.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// Leave this process's own syscalls out (the agent's reads of /proc would otherwise feed
    /// back into its event stream).
    pub ignore_self: bool,
    /// Where tracefs is, or should be mounted.
    pub tracefs: PathBuf,
    /// The syscalls to trace (clone and clone3 are always added).
    pub syscalls: Vec<Syscall>,
    /// Copy the first bytes of I/O buffers (only when a rule reads `evt.buffer`).
    pub capture_buffers: bool,
    /// Syscalls whose failed calls are counted in the kernel instead of recorded.
    pub skip_failed: Vec<Syscall>,
    /// Attach the egress programs to this cgroup v2 root (only when egress policies exist).
    pub egress_cgroup_root: Option<PathBuf>,
    /// Pin the egress links in bpffs, so enforcement outlives this process.
    pub egress_pin: bool,
    /// The cgroup v2 root, for the `sock_ops` program that learns connects' local addresses
    /// (without it, a tracepoint does).
    pub cgroup_root: Option<PathBuf>,
    /// Under load, each CPU wakes the ring buffer's reader at most once per this interval;
    /// the reader polls on a [`PollSchedule`] after every read that found records. Zero wakes
    /// the reader for every record (the kernel's adaptive default).
    pub wakeup_interval: Duration,
    /// Trace syscalls through raw tracepoints where the architecture allows it (x86_64);
    /// off, or when the kernel refuses them, the classic `raw_syscalls` tracepoints are used.
    pub raw_syscall_tracepoints: bool,
}

impl ProbeOptions {
    /// When the reader must look at the ring without a wakeup, so records committed without
    /// one are not left waiting; `None` when every record wakes it.
    pub fn poll_schedule(&self) -> Option<PollSchedule> {
        PollSchedule::new(self.wakeup_interval)
    }
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            ring_buffer_bytes: 16 * 1024 * 1024,
            ignore_self: true,
            tracefs: PathBuf::from("/sys/kernel/tracing"),
            syscalls: syscalls::default_interest().collect(),
            capture_buffers: false,
            skip_failed: Vec::new(),
            egress_cgroup_root: None,
            egress_pin: false,
            cgroup_root: None,
            wakeup_interval: DEFAULT_WAKEUP_INTERVAL,
            raw_syscall_tracepoints: true,
        }
    }
}

/// At most a thousand wakeups a second per CPU: under a syscall storm that is a few percent of
/// the records, and it adds at most two milliseconds to when a record is read.
pub const DEFAULT_WAKEUP_INTERVAL: Duration = Duration::from_millis(1);

/// The loaded and attached programs. Dropping this detaches them.
pub struct Probes {
    ebpf: Ebpf,
    attached: Vec<&'static str>,
    egress_attached: bool,
    /// What `SYSCALL_INTEREST` holds, by syscall number (empty before the first write).
    interest: Vec<SyscallRecipe>,
}

impl Probes {
    /// Loads the programs, configures them for this kernel, and attaches every one of them.
    pub fn load(options: &ProbeOptions) -> Result<Probes, ProbeError> {
        if PROBES_OBJECT.is_empty() {
            return Err(ProbeError::NotBuilt);
        }
        raise_memlock_limit();
        let tracefs = mounts::ensure_mounted("tracefs", &options.tracefs)?;
        let layout = layout::read_layout(&tracefs)?;

        let ring_bytes = ring_buffer_size(options.ring_buffer_bytes);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", ring_bytes)
            .load(PROBES_OBJECT)
            .map_err(|source| {
                let hint = hint_for(&format!("{source:?}"));
                ProbeError::Load {
                    source: Box::new(source),
                    hint,
                }
            })?;

        let config = ProbeConfig {
            layout,
            ignored_tgid: if options.ignore_self {
                std::process::id()
            } else {
                0
            },
            reserved: 0,
            wakeup_interval_ns: u64::try_from(options.wakeup_interval.as_nanos())
                .unwrap_or(u64::MAX),
            // Each CPU's share of a quarter of the ring: the reader is woken well before
            // records would be dropped, however recently it was woken.
            wakeup_bytes: u64::from(ring_bytes / 4)
                / aya::util::nr_cpus().map_or(1, |cpus| cpus.max(1)) as u64,
        };
        let mut config_map: Array<&mut MapData, ProbeConfig> = Array::try_from(
            ebpf.map_mut("CONFIG")
                .ok_or_else(|| missing_map("CONFIG"))?,
        )
        .map_err(map_error("CONFIG"))?;
        config_map.set(0, config, 0).map_err(map_error("CONFIG"))?;

        let mut probes = Probes {
            ebpf,
            attached: Vec::new(),
            egress_attached: false,
            interest: Vec::new(),
        };
        probes.set_interest(
            options.syscalls.iter().copied(),
            options.capture_buffers,
            &options.skip_failed,
        )?;
        probes.attach_all(
            &tracefs,
            options.cgroup_root.as_deref(),
            options.raw_syscall_tracepoints,
        )?;
        if let Some(cgroup_root) = &options.egress_cgroup_root {
            probes.attach_egress(cgroup_root, options.egress_pin)?;
        }
        Ok(probes)
    }

    fn attach_all(
        &mut self,
        tracefs: &Path,
        cgroup_root: Option<&Path>,
        raw_syscalls: bool,
    ) -> Result<(), ProbeError> {
        for &(program, category, name) in PROGRAMS {
            self.attach_tracepoint(program, category, name)?;
            tracing::debug!(program, tracefs = %tracefs.display(), "attached");
        }
        let sock_ops = match cgroup_root {
            Some(root) => self.attach_sock_ops(root).map_err(|error| {
                // Expected without CAP_NET_ADMIN: a supported fallback, not a fault.
                tracing::info!(
                    error = %error,
                    "the cgroup sock_ops hook is refused; connects' local addresses come from a tracepoint that costs every TCP socket more"
                )
            }),
            None => Err(()),
        };
        if sock_ops.is_err() {
            let (program, category, name) = CONNECT_LOCAL_TRACEPOINT;
            self.attach_tracepoint(program, category, name)?;
        }
        if raw_syscalls && cfg!(target_arch = "x86_64") {
            match self.attach_raw_syscalls() {
                Ok(()) => return Ok(()),
                Err(error) => tracing::warn!(
                    error = %error,
                    "raw tracepoints are refused; syscalls are traced through classic tracepoints, which cost more per syscall"
                ),
            }
        }
        for (program, category, name) in CLASSIC_SYSCALL_PROGRAMS {
            self.attach_tracepoint(program, category, name)?;
        }
        Ok(())
    }

    fn attach_tracepoint(
        &mut self,
        program: &'static str,
        category: &str,
        name: &str,
    ) -> Result<(), ProbeError> {
        let attach_error = attach_error(program, format!("tracepoint {category}/{name}"));
        let prog: &mut TracePoint = self.program(program, &attach_error)?;
        prog.load().map_err(&attach_error)?;
        prog.attach(category, name).map_err(&attach_error)?;
        self.attached.push(program);
        Ok(())
    }

    /// Attaches the `sock_ops` program to the cgroup v2 root, next to any other program there.
    fn attach_sock_ops(&mut self, cgroup_root: &Path) -> Result<(), ProbeError> {
        let program = CONNECT_LOCAL_SOCK_OPS;
        let attach_error = attach_error(program, format!("cgroup {}", cgroup_root.display()));
        let cgroup = open_cgroup(cgroup_root)?;
        let prog: &mut SockOps = self.program(program, &attach_error)?;
        prog.load().map_err(&attach_error)?;
        // A link (the mode only matters for the legacy attach): it coexists with any other
        // program on the root, such as a CNI's.
        prog.attach(&cgroup, CgroupAttachMode::Single)
            .map_err(&attach_error)?;
        self.attached.push(program);
        Ok(())
    }

    /// Attaches both raw syscall programs, or neither.
    fn attach_raw_syscalls(&mut self) -> Result<(), ProbeError> {
        for (program, tracepoint) in RAW_SYSCALL_PROGRAMS {
            let attach_error = attach_error(program, format!("raw tracepoint {tracepoint}"));
            let attached = self
                .program::<RawTracePoint>(program, &attach_error)
                .and_then(|prog| {
                    prog.load().map_err(&attach_error)?;
                    prog.attach(tracepoint).map_err(&attach_error)
                });
            if let Err(error) = attached {
                for (program, _) in RAW_SYSCALL_PROGRAMS {
                    if let Some(prog) = self.ebpf.program_mut(program)
                        && let Ok(prog) = <&mut RawTracePoint>::try_from(prog)
                    {
                        // Unloading also detaches: nothing of the raw pair stays behind.
                        let _ = prog.unload();
                    }
                }
                self.attached
                    .retain(|name| !RAW_SYSCALL_PROGRAMS.iter().any(|(raw, _)| raw == name));
                return Err(error);
            }
            self.attached.push(program);
        }
        Ok(())
    }

    /// The loaded object's program `name`, as its type `T`.
    fn program<'a, T>(
        &'a mut self,
        name: &'static str,
        attach_error: &impl Fn(ProgramError) -> ProbeError,
    ) -> Result<&'a mut T, ProbeError>
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| ProbeError::Map {
                map: "programs",
                reason: format!("program {name} is missing from the object"),
            })?
            .try_into()
            .map_err(&attach_error)
    }

    /// The attached programs' names and kernel ids (for [`integrity::LinkIntegrity`]); a
    /// program whose id cannot be read is left out.
    pub fn program_ids(&self) -> Vec<(String, u32)> {
        self.attached
            .iter()
            .filter_map(|&name| {
                let info = self.ebpf.program(name)?.info().ok()?;
                Some((name.to_string(), info.id()))
            })
            .collect()
    }

    /// Names of the attached programs.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    /// Whether every program is attached (the syscall pair as raw or as classic tracepoints).
    pub fn all_attached(&self) -> bool {
        let syscalls = RAW_SYSCALL_PROGRAMS
            .iter()
            .all(|(program, _)| self.attached.contains(program))
            || CLASSIC_SYSCALL_PROGRAMS
                .iter()
                .all(|(program, _, _)| self.attached.contains(program));
        let connect_local = self.attached.contains(&CONNECT_LOCAL_SOCK_OPS)
            || self.attached.contains(&CONNECT_LOCAL_TRACEPOINT.0);
        syscalls
            && connect_local
            && PROGRAMS
                .iter()
                .all(|(program, _, _)| self.attached.contains(program))
    }

    /// Captures exactly `wanted` (clone and clone3 are always kept: the fork program needs their
    /// flags to tell threads from processes). Syscalls this architecture lacks are skipped.
    ///
    /// May be called again while the programs run (a rules reload): only the entries that
    /// change are written, so a syscall traced before and after is never seen switched off or
    /// half-written in between.
    ///
    /// Failed calls of the syscalls in `skip_failed` are counted in the kernel instead of
    /// recorded (no rule can match them and the state ignores them).
    pub fn set_interest(
        &mut self,
        wanted: impl IntoIterator<Item = Syscall>,
        capture_buffers: bool,
        skip_failed: &[Syscall],
    ) -> Result<(), ProbeError> {
        let mut recipes = vec![SyscallRecipe::default(); MAX_SYSCALL_NR as usize];
        let always = [Syscall::Clone, Syscall::Clone3];
        for syscall in wanted.into_iter().chain(always) {
            let Some(nr) = syscalls::arch_number(syscall) else {
                continue;
            };
            if let Some(slot) = usize::try_from(nr).ok().and_then(|i| recipes.get_mut(i)) {
                *slot = syscalls::spec(syscall).recipe(capture_buffers);
                if skip_failed.contains(&syscall) {
                    slot.flags |= recipe_flags::SKIP_FAILED;
                }
            }
        }
        let mut interest: Array<&mut MapData, SyscallRecipe> = Array::try_from(
            self.ebpf
                .map_mut("SYSCALL_INTEREST")
                .ok_or_else(|| missing_map("SYSCALL_INTEREST"))?,
        )
        .map_err(map_error("SYSCALL_INTEREST"))?;
        for (nr, recipe) in recipes.iter().enumerate() {
            if self.interest.get(nr) == Some(recipe) {
                continue;
            }
            interest
                .set(nr as u32, *recipe, 0)
                .map_err(map_error("SYSCALL_INTEREST"))?;
        }
        self.interest = recipes;
        Ok(())
    }

    /// How many syscalls the kernel side traces now.
    pub fn traced_syscalls(&self) -> usize {
        self.interest.iter().filter(|recipe| recipe.id != 0).count()
    }

    /// Tells the kernel side the parents of processes that existed before it was attached.
    pub fn seed_parents(
        &mut self,
        parents: impl IntoIterator<Item = (u32, u32)>,
    ) -> Result<(), ProbeError> {
        let mut map: HashMap<&mut MapData, u32, u32> = HashMap::try_from(
            self.ebpf
                .map_mut("PARENTS")
                .ok_or_else(|| missing_map("PARENTS"))?,
        )
        .map_err(map_error("PARENTS"))?;
        for (pid, ppid) in parents {
            // A full map evicts old entries by itself; an error here only loses a ppid.
            let _ = map.insert(pid, ppid, 0);
        }
        Ok(())
    }

    /// Takes the map where the reader says until when it polls without being woken.
    pub fn take_reader_state(&mut self) -> Result<ReaderPolls, ProbeError> {
        Ok(ReaderPolls {
            map: self.take_typed_map("READER_POLLS_UNTIL")?,
            until: 0,
        })
    }

    /// Takes the ring buffer out, for the reader task.
    pub fn take_ring_buffer(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        self.take_typed_map("EVENTS")
    }

    /// Takes the drop counters out, for the metrics poller.
    pub fn take_drop_counters(&mut self) -> Result<DropCounters, ProbeError> {
        Ok(DropCounters {
            map: self.take_typed_map("DROPS")?,
            skipped: self.take_typed_map("SKIPPED")?,
        })
    }

    /// Takes map `name` out of the object, as a `T`, for a task that owns it from now on.
    fn take_typed_map<T>(&mut self, name: &'static str) -> Result<T, ProbeError>
    where
        T: TryFrom<aya::maps::Map, Error = MapError>,
    {
        let map = self.ebpf.take_map(name).ok_or_else(|| missing_map(name))?;
        T::try_from(map).map_err(map_error(name))
    }
}

/// Opens the cgroup v2 root that cgroup programs attach to.
fn open_cgroup(cgroup_root: &Path) -> Result<std::fs::File, ProbeError> {
    std::fs::File::open(cgroup_root).map_err(|error| ProbeError::Map {
        map: "cgroup",
        reason: format!(
            "opening the cgroup v2 root {}: {error}",
            cgroup_root.display()
        ),
    })
}

fn missing_map(map: &'static str) -> ProbeError {
    ProbeError::Map {
        map,
        reason: "missing from the eBPF object".into(),
    }
}

/// Tells the kernel side until when the ring buffer's reader polls without being woken.
pub struct ReaderPolls {
    map: Array<MapData, u64>,
    until: u64,
}

impl ReaderPolls {
    /// The reader polls again at the latest at `until` (boot clock, ns); records committed
    /// before then need not wake it. Writes only when the value changes.
    pub fn set(&mut self, until: u64) -> Result<(), ProbeError> {
        if until == self.until {
            return Ok(());
        }
        self.map
            .set(0, until, 0)
            .map_err(map_error("READER_POLLS_UNTIL"))?;
        self.until = until;
        Ok(())
    }
}

/// Records the kernel side could not deliver, by reason, and those it left out on purpose,
/// summed over CPUs.
pub struct DropCounters {
    map: PerCpuArray<MapData, u64>,
    skipped: PerCpuArray<MapData, u64>,
}

/// Names of the reasons records are left out on purpose, by counter index.
pub const SKIP_REASONS: [&str; skip_reason::COUNT as usize] = ["failed_call"];

/// Names of the drop reasons, by counter index.
pub const DROP_REASONS: [&str; drop_reason::COUNT as usize] =
    ["ring_buffer_full", "pending_map_full", "exec_map_full"];

impl DropCounters {
    /// Current totals, indexed like [`DROP_REASONS`].
    pub fn read(&self) -> Result<[u64; drop_reason::COUNT as usize], ProbeError> {
        per_cpu_totals(&self.map, "DROPS")
    }

    /// Current totals of records left out on purpose, indexed like [`SKIP_REASONS`].
    pub fn read_skipped(&self) -> Result<[u64; skip_reason::COUNT as usize], ProbeError> {
        per_cpu_totals(&self.skipped, "SKIPPED")
    }
}

/// The first `N` counters of a per-CPU array, each summed over CPUs.
fn per_cpu_totals<const N: usize>(
    map: &PerCpuArray<MapData, u64>,
    name: &'static str,
) -> Result<[u64; N], ProbeError> {
    let mut totals = [0u64; N];
    for (index, total) in totals.iter_mut().enumerate() {
        let values = map.get(&(index as u32), 0).map_err(map_error(name))?;
        *total = values.iter().sum();
    }
    Ok(totals)
}

/// Rounds a requested ring buffer size to what the kernel accepts: a power of two of at least
/// one page.
pub fn ring_buffer_size(requested: u32) -> u32 {
    let page = 4096u32;
    requested
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31)
}

fn raise_memlock_limit() {
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it.
    use nix::sys::resource::{Resource, setrlimit};
    if let Err(error) = setrlimit(
        Resource::RLIMIT_MEMLOCK,
        nix::sys::resource::RLIM_INFINITY,
        nix::sys::resource::RLIM_INFINITY,
    ) {
        tracing::debug!(%error, "could not raise RLIMIT_MEMLOCK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_sizes_are_powers_of_two() {
        assert_eq!(ring_buffer_size(0), 4096);
        assert_eq!(ring_buffer_size(5000), 8192);
        assert_eq!(ring_buffer_size(16 << 20), 16 << 20);
    }
}

//! Privilege checks for tasks that load eBPF programs or install system packages.

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The reason given whenever a task refuses to load eBPF programs without root.
pub const EBPF_NEEDS_ROOT: &str =
    "vigil loads eBPF programs: run as root (or with CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE)";

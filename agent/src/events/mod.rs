//! Decoded kernel events: what a ring-buffer record says, validated, before any state is added.

pub mod args;
pub mod decode;
pub mod render;
pub mod sockaddr;
pub mod synth;
pub mod syscalls;

use agent_common::STR_SLOTS;

use self::{
    sockaddr::SockAddr,
    syscalls::{Param, Source, SyscallSpec},
};

/// Facts every record carries about the task that caused it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Kernel boot-clock time of the record, in nanoseconds.
    pub ts_boot_ns: u64,
    /// Process id (thread group id).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id as the kernel side knew it, 0 when unknown.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Task name.
    pub comm: String,
}

/// What happened.
// Nearly every event is a syscall: boxing that variant would cost an allocation per event to
// save space only on the rare lifecycle events.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A syscall completed.
    Syscall(SyscallEvent),
    /// A process was created.
    Fork {
        /// The new process.
        child_pid: u32,
        /// Its parent.
        child_ppid: u32,
    },
    /// A process replaced its image.
    Exec {
        /// The thread that called exec (differs from `tid` when a non-leader thread did).
        old_tid: u32,
        /// The filename the kernel executed.
        filename: String,
    },
    /// A process ended (its last thread, or its leader when the kernel does not say).
    Exit,
    /// An outbound connection or send that the egress policy does not allow.
    Egress(EgressDecision),
    /// A DNS response a workload received (the task fields are whoever the kernel was running
    /// when the packet arrived, not the receiver).
    Dns(Vec<u8>),
}

/// The kernel's decision on a connection its egress policy does not allow.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EgressDecision {
    /// Destination address.
    pub addr: std::net::IpAddr,
    /// Destination port.
    pub port: u16,
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Index of the policy that decided.
    pub policy: u32,
    /// Whether the call was refused (enforce) or let through (monitor).
    pub blocked: bool,
    /// `connect` or `sendmsg`.
    pub hook: EgressHook,
}

/// Which call an egress decision was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressHook {
    /// `connect` (TCP, or UDP connect).
    Connect,
    /// `sendmsg`/`sendto` on an unconnected UDP socket.
    Sendmsg,
}

impl EgressHook {
    /// The syscall family the decision belongs to (`connect` or `sendto`).
    pub fn syscall(self) -> &'static str {
        match self {
            EgressHook::Connect => "connect",
            EgressHook::Sendmsg => "sendto",
        }
    }
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// The task that caused it.
    pub task: Task,
    /// `record_flags` bits: truncations and failed reads.
    pub flags: u8,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The name `evt.type` shows.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            EventKind::Syscall(call) => call.spec.name,
            EventKind::Fork { .. } => "procfork",
            EventKind::Exec { .. } => "procexec",
            EventKind::Exit => "procexit",
            EventKind::Egress(_) => "egress",
            EventKind::Dns(_) => "dns",
        }
    }

    /// The syscall part, if this is a syscall.
    pub fn syscall(&self) -> Option<&SyscallEvent> {
        match &self.kind {
            EventKind::Syscall(call) => Some(call),
            _ => None,
        }
    }
}

/// A completed syscall with everything the kernel captured.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyscallEvent {
    /// Which syscall, and how to read its parameters.
    #[serde(with = "spec_by_name")]
    pub spec: &'static SyscallSpec,
    /// Return value.
    pub ret: i64,
    /// Raw arguments.
    pub args: [u64; 6],
    /// Words read from a user struct (openat2's `open_how`).
    pub aux: [u64; 3],
    /// Captured strings, by slot.
    pub strings: [String; STR_SLOTS],
    /// Captured argv (execs).
    pub argv: Vec<String>,
    /// Captured socket address.
    pub sockaddr: Option<SockAddr>,
    /// The first bytes of an I/O buffer, when captured.
    #[serde(default)]
    pub buffer: Vec<u8>,
}

/// A parameter's value, borrowed from its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamValue<'a> {
    /// A numeric value (arguments are raw 64-bit words; `Kind` says how to read them).
    Num(u64),
    /// A string.
    Str(&'a str),
    /// A socket address, if one was captured.
    SockAddr(Option<&'a SockAddr>),
    /// An argument vector.
    Argv(&'a [String]),
    /// Raw bytes.
    Bytes(&'a [u8]),
}

impl SyscallEvent {
    /// Whether the call succeeded.
    pub fn succeeded(&self) -> bool {
        self.ret >= 0
    }

    /// The value of `param`.
    pub fn value(&self, param: &Param) -> ParamValue<'_> {
        match param.source {
            Source::Ret => ParamValue::Num(self.ret as u64),
            Source::Arg(n) => ParamValue::Num(self.args.get(usize::from(n)).copied().unwrap_or(0)),
            Source::Aux(n) => ParamValue::Num(self.aux.get(usize::from(n)).copied().unwrap_or(0)),
            Source::Str(slot) => ParamValue::Str(
                self.strings
                    .get(usize::from(slot))
                    .map_or("", String::as_str),
            ),
            Source::SockAddr => ParamValue::SockAddr(self.sockaddr.as_ref()),
            Source::Argv => ParamValue::Argv(&self.argv),
            Source::Buffer => ParamValue::Bytes(&self.buffer),
        }
    }

    /// The value of the parameter called `name`.
    pub fn param(&self, name: &str) -> Option<ParamValue<'_>> {
        self.spec.param(name).map(|param| self.value(param))
    }

    /// The local address the kernel chose for a TCP connect, if the kernel side saw it.
    pub fn local_address(&self) -> Option<std::net::SocketAddr> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
        if self.spec.capture.flags & agent_common::recipe_flags::LOCAL_ADDRESS == 0 {
            return None;
        }
        let family = (self.aux[0] >> 16) as i32;
        let port = self.aux[0] as u16;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.aux[1].to_ne_bytes());
        bytes[8..].copy_from_slice(&self.aux[2].to_ne_bytes());
        let ip = match family {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(bytes)),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// Raw argument `n` as a file descriptor.
    pub fn arg_fd(&self, n: usize) -> i32 {
        self.args.get(n).copied().unwrap_or(u64::MAX) as i32
    }
}

/// Serialises a syscall spec as its name, so recorded events can be read back.
mod spec_by_name {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    use super::{SyscallSpec, syscalls};

    pub fn serialize<S: Serializer>(
        spec: &&'static SyscallSpec,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        out.serialize_str(spec.name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<&'static SyscallSpec, D::Error> {
        let name = String::deserialize(input)?;
        syscalls::spec_by_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown syscall {name}")))
    }
}

//! Synthetic ring-buffer records laid out exactly as the kernel side writes them: for
//! benchmarks, tests and tools that exercise the decoder and state without loading eBPF.

use std::mem::size_of;

use agent_common::{
    COMM_LEN, ExecRecord, ExitRecord, ForkRecord, RecordHeader, RecordKind, SOCKADDR_MAX,
    STR_SLOTS, SyscallRecord,
};

use super::syscalls::Syscall;

/// Record types whose bytes can be viewed directly: `repr(C)`, integers and byte arrays only,
/// with explicit reserved fields and so no padding.
pub trait Record: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for agent_common::SyscallRecord {}
    impl Sealed for agent_common::ForkRecord {}
    impl Sealed for agent_common::ExecRecord {}
    impl Sealed for agent_common::ExitRecord {}
}

impl Record for SyscallRecord {}
impl Record for ForkRecord {}
impl Record for ExecRecord {}
impl Record for ExitRecord {}

/// The bytes of a record, as the ring buffer would deliver them.
pub fn as_bytes<T: Record>(value: &T) -> Vec<u8> {
    // SAFETY: `Record` types are padding-free plain data, so every byte is initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// A header for process `pid` (thread `pid`, parent 1, root, cgroup 1) named `comm`.
pub fn header(kind: RecordKind, pid: u32, comm: &str) -> RecordHeader {
    let mut name = [0u8; COMM_LEN];
    let len = comm.len().min(COMM_LEN - 1);
    name[..len].copy_from_slice(&comm.as_bytes()[..len]);
    RecordHeader {
        kind: kind as u8,
        flags: 0,
        syscall_id: 0,
        reserved: 0,
        ts_ns: 1_000,
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        gid: 0,
        reserved2: 0,
        cgroup_id: 1,
        comm: name,
    }
}

/// A fork record: `parent` created `child`.
pub fn fork(parent: u32, child: u32, comm: &str) -> Vec<u8> {
    as_bytes(&ForkRecord {
        header: header(RecordKind::Fork, parent, comm),
        child_pid: child,
        child_ppid: parent,
    })
}

/// An exec record: `pid` now runs `filename`.
pub fn exec(pid: u32, comm: &str, filename: &str) -> Vec<u8> {
    let mut bytes = as_bytes(&ExecRecord {
        header: header(RecordKind::Exec, pid, comm),
        old_tid: pid,
        filename_len: filename.len() as u16,
        reserved: 0,
    });
    bytes.extend_from_slice(filename.as_bytes());
    bytes
}

/// An exit record of process `pid`.
pub fn exit(pid: u32, comm: &str) -> Vec<u8> {
    as_bytes(&ExitRecord {
        header: header(RecordKind::Exit, pid, comm),
        group_dead: 1,
        reserved: [0; 7],
    })
}

/// An IPv4 `sockaddr_in` as user memory holds it.
pub fn inet_sockaddr(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut raw = (libc::AF_INET as u16).to_ne_bytes().to_vec();
    raw.extend_from_slice(&port.to_be_bytes());
    raw.extend_from_slice(&ip);
    raw.extend_from_slice(&[0; 8]);
    raw
}

/// Builds a syscall record field by field.
pub struct RecordBuilder {
    record: SyscallRecord,
    data: Vec<u8>,
}

impl RecordBuilder {
    /// A record of `syscall` by process `pid` (named "test") that returned `ret`.
    pub fn new(syscall: Syscall, pid: u32, ret: i64) -> Self {
        let mut header = header(RecordKind::Syscall, pid, "test");
        header.syscall_id = syscall as u16;
        RecordBuilder {
            record: SyscallRecord {
                header,
                ret,
                args: [0; 6],
                aux: [0; 3],
                str_len: [0; STR_SLOTS],
                argv_len: 0,
                argc: 0,
                sockaddr_len: 0,
                buf_len: 0,
                reserved: 0,
                sockaddr: [0; SOCKADDR_MAX],
            },
            data: Vec::new(),
        }
    }

    /// Sets the task name.
    pub fn comm(mut self, comm: &str) -> Self {
        let kind = RecordKind::Syscall;
        let id = self.record.header.syscall_id;
        self.record.header = RecordHeader {
            syscall_id: id,
            ..header(kind, self.record.header.pid, comm)
        };
        self
    }

    /// Sets raw argument `index`.
    pub fn arg(mut self, index: usize, value: u64) -> Self {
        if let Some(slot) = self.record.args.get_mut(index) {
            *slot = value;
        }
        self
    }

    /// Appends string slot `slot` (slots must be added in order).
    pub fn string(mut self, slot: usize, value: &str) -> Self {
        if let Some(len) = self.record.str_len.get_mut(slot) {
            *len = value.len() as u16;
            self.data.extend_from_slice(value.as_bytes());
        }
        self
    }

    /// Appends argv (after every string slot).
    pub fn argv(mut self, args: &[&str]) -> Self {
        for arg in args {
            self.data.extend_from_slice(arg.as_bytes());
            self.data.push(0);
        }
        self.record.argc = args.len() as u16;
        self.record.argv_len = args.iter().map(|a| a.len() + 1).sum::<usize>() as u16;
        self
    }

    /// Appends a captured I/O buffer (after argv).
    pub fn buffer(mut self, bytes: &[u8]) -> Self {
        self.record.buf_len = bytes.len() as u16;
        self.data.extend_from_slice(bytes);
        self
    }

    /// Sets the captured socket address.
    pub fn sockaddr(mut self, raw: &[u8]) -> Self {
        let len = raw.len().min(SOCKADDR_MAX);
        self.record.sockaddr[..len].copy_from_slice(&raw[..len]);
        self.record.sockaddr_len = len as u16;
        self
    }

    /// The record's bytes.
    pub fn build(self) -> Vec<u8> {
        let mut bytes = as_bytes(&self.record);
        bytes.extend_from_slice(&self.data);
        bytes
    }
}

//! Ring-buffer bytes to [`Event`]s. Every length in a record is checked against the bytes that
//! actually arrived: a corrupt or truncated record is an error, never a panic or an overread.

use std::mem::size_of;

use agent_common::{
    ExecRecord, ExitRecord, ForkRecord, RecordHeader, RecordKind, SOCKADDR_MAX, STR_SLOTS,
    SyscallRecord,
};
use thiserror::Error;

use super::{Event, EventKind, SyscallEvent, Task, sockaddr::SockAddr, syscalls};

/// Why a record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the record's fixed part.
    #[error("{kind} record is {len} bytes, shorter than its {need}-byte fixed part")]
    TooShort {
        /// The record kind, or "unknown".
        kind: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// The kind byte is not one we know.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The syscall id is not in the table.
    #[error("unknown syscall id {0}")]
    UnknownSyscall(u16),
    /// A length field points past the end of the record.
    #[error("{field} claims {claimed} bytes but only {available} remain")]
    LengthOverflow {
        /// Which length field.
        field: &'static str,
        /// What it claimed.
        claimed: usize,
        /// What was left.
        available: usize,
    },
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: RecordHeader = read_fixed(bytes, "unknown")?;
    let kind = RecordKind::from_u8(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    let task = task(&header);
    let kind = match kind {
        RecordKind::Syscall => EventKind::Syscall(decode_syscall(bytes)?),
        RecordKind::Fork => {
            let record: ForkRecord = read_fixed(bytes, "fork")?;
            EventKind::Fork {
                child_pid: record.child_pid,
                child_ppid: record.child_ppid,
            }
        }
        RecordKind::Exec => {
            let record: ExecRecord = read_fixed(bytes, "exec")?;
            let mut tail = Tail::new(&bytes[size_of::<ExecRecord>()..]);
            EventKind::Exec {
                old_tid: record.old_tid,
                filename: tail.string("filename", record.filename_len.into())?,
            }
        }
        RecordKind::Exit => {
            let _: ExitRecord = read_fixed(bytes, "exit")?;
            EventKind::Exit
        }
    };
    Ok(Event {
        task,
        flags: header.flags,
        kind,
    })
}

fn decode_syscall(bytes: &[u8]) -> Result<SyscallEvent, DecodeError> {
    let record: SyscallRecord = read_fixed(bytes, "syscall")?;
    let spec = syscalls::spec_by_id(record.header.syscall_id)
        .ok_or(DecodeError::UnknownSyscall(record.header.syscall_id))?;
    let mut tail = Tail::new(&bytes[size_of::<SyscallRecord>()..]);
    let mut strings: [String; STR_SLOTS] = Default::default();
    for (slot, len) in strings.iter_mut().zip(record.str_len) {
        *slot = tail.string("string", len.into())?;
    }
    let argv_area = tail.take("argv", record.argv_len.into())?;
    let argv = split_argv(argv_area, record.argc.into());
    let sockaddr_len = usize::from(record.sockaddr_len);
    if sockaddr_len > SOCKADDR_MAX {
        return Err(DecodeError::LengthOverflow {
            field: "sockaddr",
            claimed: sockaddr_len,
            available: SOCKADDR_MAX,
        });
    }
    let sockaddr = (sockaddr_len > 0)
        .then(|| SockAddr::parse(&record.sockaddr[..sockaddr_len]))
        .flatten();
    Ok(SyscallEvent {
        spec,
        ret: record.ret,
        args: record.args,
        aux: record.aux,
        strings,
        argv,
        sockaddr,
    })
}

fn task(header: &RecordHeader) -> Task {
    let comm_end = header
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(header.comm.len());
    Task {
        ts_boot_ns: header.ts_ns,
        pid: header.pid,
        tid: header.tid,
        ppid: header.ppid,
        uid: header.uid,
        gid: header.gid,
        cgroup_id: header.cgroup_id,
        comm: String::from_utf8_lossy(&header.comm[..comm_end]).into_owned(),
    }
}

/// Copies a plain-data record out of possibly unaligned bytes after checking the length.
fn read_fixed<T: Copy>(bytes: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::TooShort {
            kind,
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: the length is checked above, T is a repr(C) record of integers and byte arrays
    // (every bit pattern is valid), and read_unaligned has no alignment requirement.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The variable part of a record, consumed front to back.
struct Tail<'a> {
    rest: &'a [u8],
}

impl<'a> Tail<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Tail { rest }
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.rest.len() {
            return Err(DecodeError::LengthOverflow {
                field,
                claimed: len,
                available: self.rest.len(),
            });
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn string(&mut self, field: &'static str, len: usize) -> Result<String, DecodeError> {
        let bytes = self.take(field, len)?;
        // A string can hold a NUL only if the kernel side misreported its length; cut there.
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }
}

fn split_argv(area: &[u8], argc: usize) -> Vec<String> {
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    if area.is_empty() && argc == 0 {
        return Vec::new();
    }
    area.split(|&b| b == 0)
        .take(argc.max(1))
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::syscalls::Syscall;
    use agent_common::COMM_LEN;

    /// Builds raw records the way the kernel side lays them out.
    pub(crate) struct RecordBuilder {
        record: SyscallRecord,
        data: Vec<u8>,
    }

    pub(crate) fn header(kind: RecordKind, pid: u32, comm: &str) -> RecordHeader {
        let mut name = [0u8; COMM_LEN];
        name[..comm.len()].copy_from_slice(comm.as_bytes());
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

    pub(crate) fn as_bytes<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) plain-data value as bytes.
        unsafe {
            std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()).to_vec()
        }
    }

    impl RecordBuilder {
        pub(crate) fn new(syscall: Syscall, pid: u32, ret: i64) -> Self {
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
                    reserved: [0; 2],
                    sockaddr: [0; SOCKADDR_MAX],
                },
                data: Vec::new(),
            }
        }

        pub(crate) fn arg(mut self, index: usize, value: u64) -> Self {
            self.record.args[index] = value;
            self
        }

        pub(crate) fn string(mut self, slot: usize, value: &str) -> Self {
            self.record.str_len[slot] = value.len() as u16;
            self.data.extend_from_slice(value.as_bytes());
            self
        }

        pub(crate) fn argv(mut self, args: &[&str]) -> Self {
            for arg in args {
                self.data.extend_from_slice(arg.as_bytes());
                self.data.push(0);
            }
            self.record.argc = args.len() as u16;
            self.record.argv_len = args.iter().map(|a| a.len() + 1).sum::<usize>() as u16;
            self
        }

        pub(crate) fn sockaddr(mut self, raw: &[u8]) -> Self {
            self.record.sockaddr[..raw.len()].copy_from_slice(raw);
            self.record.sockaddr_len = raw.len() as u16;
            self
        }

        pub(crate) fn build(self) -> Vec<u8> {
            let mut bytes = as_bytes(&self.record);
            bytes.extend_from_slice(&self.data);
            bytes
        }
    }

    pub(crate) fn inet_sockaddr(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut raw = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        raw.extend_from_slice(&port.to_be_bytes());
        raw.extend_from_slice(&ip);
        raw.extend_from_slice(&[0; 8]);
        raw
    }

    #[test]
    fn decodes_an_openat() {
        let bytes = RecordBuilder::new(Syscall::Openat, 42, 3)
            .arg(0, (-100i64) as u64)
            .arg(2, libc::O_RDONLY as u64)
            .string(0, "/etc/hostname")
            .build();
        let event = decode(&bytes).unwrap();
        assert_eq!(event.task.pid, 42);
        assert_eq!(event.task.comm, "test");
        assert_eq!(event.type_name(), "openat");
        let call = event.syscall().unwrap();
        assert_eq!(call.ret, 3);
        assert_eq!(
            call.param("name"),
            Some(super::super::ParamValue::Str("/etc/hostname"))
        );
        assert_eq!(call.arg_fd(0), -100);
    }

    #[test]
    fn decodes_execve_argv_and_strings_in_order() {
        let bytes = RecordBuilder::new(Syscall::Execve, 7, 0)
            .string(0, "/bin/cat")
            .argv(&["cat", "/etc/hostname", ""])
            .build();
        let event = decode(&bytes).unwrap();
        let call = event.syscall().unwrap();
        assert_eq!(call.strings[0], "/bin/cat");
        assert_eq!(call.argv, vec!["cat", "/etc/hostname", ""]);
    }

    #[test]
    fn decodes_a_connect_address() {
        let bytes = RecordBuilder::new(Syscall::Connect, 7, 0)
            .arg(0, 3)
            .sockaddr(&inet_sockaddr([127, 0, 0, 1], 8080))
            .build();
        let event = decode(&bytes).unwrap();
        assert_eq!(
            event.syscall().unwrap().sockaddr,
            Some(SockAddr::Inet("127.0.0.1:8080".parse().unwrap()))
        );
    }

    #[test]
    fn decodes_lifecycle_records() {
        let fork = ForkRecord {
            header: header(RecordKind::Fork, 10, "bash"),
            child_pid: 11,
            child_ppid: 10,
        };
        assert_eq!(
            decode(&as_bytes(&fork)).unwrap().kind,
            EventKind::Fork {
                child_pid: 11,
                child_ppid: 10
            }
        );
        let exec = ExecRecord {
            header: header(RecordKind::Exec, 11, "cat"),
            old_tid: 11,
            filename_len: 8,
            reserved: 0,
        };
        let mut bytes = as_bytes(&exec);
        bytes.extend_from_slice(b"/bin/cat");
        assert_eq!(
            decode(&bytes).unwrap().kind,
            EventKind::Exec {
                old_tid: 11,
                filename: "/bin/cat".into()
            }
        );
    }

    #[test]
    fn rejects_short_records() {
        assert!(matches!(
            decode(&[1, 0, 0]),
            Err(DecodeError::TooShort { .. })
        ));
        let bytes = RecordBuilder::new(Syscall::Close, 1, 0).build();
        assert!(matches!(
            decode(&bytes[..100]),
            Err(DecodeError::TooShort {
                kind: "syscall",
                ..
            })
        ));
    }

    #[test]
    fn rejects_lengths_past_the_end() {
        let mut bytes = RecordBuilder::new(Syscall::Openat, 1, 3)
            .string(0, "/etc")
            .build();
        bytes.truncate(bytes.len() - 2);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::LengthOverflow {
                field: "string",
                claimed: 4,
                available: 2
            })
        );
        let mut oversized = RecordBuilder::new(Syscall::Connect, 1, 0).build();
        let offset = std::mem::offset_of!(SyscallRecord, sockaddr_len);
        oversized[offset..offset + 2].copy_from_slice(&500u16.to_ne_bytes());
        assert!(matches!(
            decode(&oversized),
            Err(DecodeError::LengthOverflow {
                field: "sockaddr",
                ..
            })
        ));
    }

    #[test]
    fn rejects_unknown_kinds_and_syscalls() {
        let mut bytes = RecordBuilder::new(Syscall::Close, 1, 0).build();
        bytes[0] = 99;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(99)));
        let mut bytes = RecordBuilder::new(Syscall::Close, 1, 0).build();
        let offset = std::mem::offset_of!(RecordHeader, syscall_id);
        bytes[offset..offset + 2].copy_from_slice(&999u16.to_ne_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownSyscall(999)));
    }

    #[test]
    fn survives_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix and every single-byte corruption of a valid
        // record must decode or fail cleanly.
        let valid = RecordBuilder::new(Syscall::Execve, 9, 0)
            .string(0, "/bin/sh")
            .argv(&["sh", "-c", "true"])
            .build();
        for len in 0..valid.len() {
            let _ = decode(&valid[..len]);
        }
        for index in 0..valid.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut corrupt = valid.clone();
                corrupt[index] = value;
                let _ = decode(&corrupt);
            }
        }
    }
}

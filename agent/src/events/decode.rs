//! Ring-buffer bytes to [`Event`]s. Every length in a record is checked against the bytes that
//! actually arrived: a corrupt or truncated record is an error, never a panic or an overread.

use std::mem::size_of;

use agent_common::{
    DNS_CAPTURE_MAX, DnsRecord, EgressRecord, ExecRecord, ExitRecord, ForkRecord, RecordHeader,
    RecordKind, SOCKADDR_MAX, STR_SLOTS, SyscallRecord,
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
    /// An egress record names an address family other than IPv4 or IPv6.
    #[error("egress record with address family {0}")]
    UnknownFamily(u16),
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
        RecordKind::Egress => EventKind::Egress(decode_egress(bytes)?),
        RecordKind::Dns => {
            let record: DnsRecord = read_fixed(bytes, "dns")?;
            let len = usize::from(record.len);
            if len > DNS_CAPTURE_MAX {
                return Err(DecodeError::LengthOverflow {
                    field: "dns",
                    claimed: len,
                    available: DNS_CAPTURE_MAX,
                });
            }
            EventKind::Dns(record.data[..len].to_vec())
        }
    };
    Ok(Event {
        task,
        flags: header.flags,
        kind,
    })
}

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

fn decode_egress(bytes: &[u8]) -> Result<super::EgressDecision, DecodeError> {
    let record: EgressRecord = read_fixed(bytes, "egress")?;
    let addr = match record.family {
        AF_INET => {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(&record.addr[..4]);
            std::net::IpAddr::from(octets)
        }
        AF_INET6 => std::net::IpAddr::from(record.addr),
        family => return Err(DecodeError::UnknownFamily(family)),
    };
    Ok(super::EgressDecision {
        addr,
        port: record.port,
        protocol: record.protocol,
        policy: record.policy,
        blocked: record.blocked != 0,
        hook: if record.hook == 1 {
            super::EgressHook::Sendmsg
        } else {
            super::EgressHook::Connect
        },
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
    let buffer = tail.take("buffer", record.buf_len.into())?.to_vec();
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
        buffer,
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
mod tests {
    use super::*;
    use crate::events::{
        synth::{RecordBuilder, as_bytes, header, inet_sockaddr},
        syscalls::Syscall,
    };

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
    fn decodes_an_io_buffer_after_the_strings() {
        let bytes = RecordBuilder::new(Syscall::Recvfrom, 7, 4)
            .arg(0, 3)
            .buffer(&[0xca, 0xfe, 0xba, 0xbe])
            .build();
        let event = decode(&bytes).unwrap();
        assert_eq!(
            event.syscall().unwrap().buffer,
            vec![0xca, 0xfe, 0xba, 0xbe]
        );
        let mut short = bytes.clone();
        short.pop();
        assert!(matches!(
            decode(&short),
            Err(DecodeError::LengthOverflow {
                field: "buffer",
                ..
            })
        ));
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

//! Finding a socket by inode in `/proc/<pid>/net/*`.
//!
//! When the agent first sees a process that already holds sockets (it was
//! started before the agent), the only record of what a socket fd points at
//! is the per-network-namespace tables under `/proc/<pid>/net`. Reading them
//! through the pid (rather than `/proc/net`) picks the right namespace for
//! containerised processes.
//!
//! The tables are kernel-formatted but may still be truncated or change under
//! us; lines that do not parse are skipped unless they are the one we want.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::state::procfs::{PidDir, ProcfsError};

/// Transport protocol of a socket, as Falco's `fd.l4proto` renders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Raw IP socket.
    Raw,
    /// Unix domain socket.
    Unix,
}

impl L4Proto {
    /// The lowercase name used in rule output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Raw => "raw",
            Self::Unix => "unix",
        }
    }
}

/// A socket found in the procfs network tables.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SocketEntry {
    /// An IPv4 or IPv6 socket. Unconnected sockets have an unspecified
    /// remote address with port 0. IPv4-mapped IPv6 addresses are reported
    /// as IPv4, as Falco does.
    Inet {
        /// Transport protocol.
        proto: L4Proto,
        /// Local address and port (for raw sockets the "port" is the IP
        /// protocol number).
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
    },
    /// A Unix domain socket.
    Unix {
        /// Bound path; abstract names start with '@'. `None` when unbound.
        path: Option<String>,
    },
}

/// The inet tables in lookup order (most common first).
const INET_TABLES: [(&str, L4Proto); 6] = [
    ("net/tcp", L4Proto::Tcp),
    ("net/tcp6", L4Proto::Tcp),
    ("net/udp", L4Proto::Udp),
    ("net/udp6", L4Proto::Udp),
    ("net/raw", L4Proto::Raw),
    ("net/raw6", L4Proto::Raw),
];

const UNIX_TABLE: &str = "net/unix";

/// Looks up the socket with `inode` in the network namespace of `pid`.
///
/// Returns `Ok(None)` when no table lists the inode (e.g. netlink or packet
/// sockets, or a socket closed meanwhile). Tables missing from the kernel
/// (no IPv6) are skipped; a process that exits during the lookup yields
/// [`ProcfsError::Gone`].
pub fn find_socket(
    proc_root: &Path,
    pid: u32,
    inode: u64,
) -> Result<Option<SocketEntry>, ProcfsError> {
    let dir = PidDir::open(proc_root, pid)?;
    let mut any_missing = false;
    for (name, proto) in INET_TABLES {
        let Some(bytes) = dir.read_optional(name)? else {
            any_missing = true;
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(entry) =
            find_inet(&text, proto, inode).map_err(|reason| ProcfsError::Malformed {
                path: dir.path_of(name),
                reason,
            })?
        {
            return Ok(Some(entry));
        }
    }
    match dir.read_optional(UNIX_TABLE)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if let Some(entry) = find_unix(&text, inode) {
                return Ok(Some(entry));
            }
        }
        None => any_missing = true,
    }
    // Tables vanish both when a protocol is compiled out and when the
    // process is reaped mid-lookup; only the latter is an error.
    if any_missing && !dir.is_alive() {
        return Err(ProcfsError::Gone { pid });
    }
    Ok(None)
}

/// Searches one `tcp`/`udp`/`raw` (v4 or v6) table for `inode`.
///
/// Only the matching line is fully parsed, so garbage elsewhere in the table
/// cannot fail a lookup for a healthy socket.
fn find_inet(text: &str, proto: L4Proto, inode: u64) -> Result<Option<SocketEntry>, &'static str> {
    // Inode 0 marks TIME_WAIT and request sockets that no fd can point at;
    // matching it would return an arbitrary unrelated connection.
    if inode == 0 {
        return Ok(None);
    }
    // Columns: sl local remote st tx:rx tr:when retrnsmt uid timeout inode ...
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().take(10).collect();
        let Some(line_inode) = fields.get(9).and_then(|f| f.parse::<u64>().ok()) else {
            continue;
        };
        if line_inode != inode {
            continue;
        }
        let local = parse_hex_socket_addr(fields[1]).ok_or("unparsable local address")?;
        let remote = parse_hex_socket_addr(fields[2]).ok_or("unparsable remote address")?;
        return Ok(Some(SocketEntry::Inet {
            proto,
            local,
            remote,
        }));
    }
    Ok(None)
}

/// Searches `/proc/<pid>/net/unix` for `inode`.
fn find_unix(text: &str, inode: u64) -> Option<SocketEntry> {
    if inode == 0 {
        return None;
    }
    // Columns: Num RefCount Protocol Flags Type St Inode [Path]
    for line in text.lines().skip(1) {
        let Some((fields, rest)) = split_leading_fields::<7>(line) else {
            continue;
        };
        if fields[6].parse::<u64>().ok() != Some(inode) {
            continue;
        }
        // The kernel writes exactly one space before the path, and the path
        // itself may contain spaces, so it is the raw remainder of the line.
        let path = rest.strip_prefix(' ').filter(|p| !p.is_empty());
        return Some(SocketEntry::Unix {
            path: path.map(str::to_owned),
        });
    }
    None
}

/// Splits off the first `N` space-separated fields, returning them and the
/// unsplit remainder (starting at the separator after field `N`).
fn split_leading_fields<const N: usize>(line: &str) -> Option<([&str; N], &str)> {
    let mut fields = [""; N];
    let mut rest = line.trim_start_matches(' ');
    for slot in &mut fields {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        *slot = &rest[..end];
        rest = &rest[end..];
    }
    Some((fields, rest))
}

/// Decodes `ADDR:PORT` as printed by the kernel's inet tables.
///
/// The address words are `%08X` of the raw (network-order) 32-bit words as
/// the host reads them, so re-serialising each with native endianness yields
/// the original bytes; the port was converted with ntohs first.
fn parse_hex_socket_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = parse_hex_exact::<4>(port).and_then(|p| u16::try_from(p).ok())?;
    let ip = match addr.len() {
        8 => {
            let word = u32::try_from(parse_hex_exact::<8>(addr)?).ok()?;
            IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word =
                    u32::try_from(parse_hex_exact::<8>(addr.get(i * 8..i * 8 + 8)?)?).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses exactly `N` hex digits (no sign, no prefix).
fn parse_hex_exact<const N: usize>(s: &str) -> Option<u64> {
    if s.len() != N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::procfs::{read_fd_target, socket_inode};
    use std::fs;
    use std::os::fd::AsRawFd;

    // Captured from /proc/net/* on an x86_64 host (hence little-endian only).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12714 1 00000000606c5bb1 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1521 1 000000004ee249b9 100 0 0 10 0
   2: 0100007F:891A 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 12715 2 00000000db306757 20 0 0 10 -1
   4: 0100007F:B4FE 0100007F:1F90 06 00000000:00000000 03:00001662 00000000     0        0 0 3 00000000c5903c82
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12717 1 00000000c04c181c 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 0000000000000000FFFF00000100007F:8538 01 00000000:00000000 00:00000000 00000000     0        0 12261 1 000000005b6a30fe 20 0 0 10 -1
   2: B80D0120000000000000000001000000:0050 B80D01200000000000000000FF000000:C000 01 00000000:00000000 00:00000000 00000000     0        0 555 1 000000005b6a30fe 20 0 0 10 -1
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 8297: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12718 2 0000000095ba8b17 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
13598: 00000000000000000000000001000000:14EA 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12719 2 000000000c5c60f2 0
";
    const RAW: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  14: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12722 2 000000002167c072 0
";
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
00000000147d008c: 00000003 00000000 00000000 0001 03 12031
000000003bd6b16f: 00000002 00000000 00010000 0001 01 12720 /tmp/vigil fixture.sock
00000000280b5b01: 00000002 00000000 00000000 0001 01 12721 @vigil-abstract
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn inet(proto: L4Proto, local: &str, remote: &str) -> Option<SocketEntry> {
        Some(SocketEntry::Inet {
            proto,
            local: addr(local),
            remote: addr(remote),
        })
    }

    #[test]
    fn proto_names() {
        let names: Vec<_> = [L4Proto::Tcp, L4Proto::Udp, L4Proto::Raw, L4Proto::Unix]
            .iter()
            .map(L4Proto::as_str)
            .collect();
        assert_eq!(names, ["tcp", "udp", "raw", "unix"]);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_ipv4_tables() {
        let t = L4Proto::Tcp;
        assert_eq!(
            find_inet(TCP, t, 12714),
            Ok(inet(t, "127.0.0.1:8080", "0.0.0.0:0"))
        );
        assert_eq!(
            find_inet(TCP, t, 1521),
            Ok(inet(t, "0.0.0.0:2024", "0.0.0.0:0"))
        );
        assert_eq!(
            find_inet(TCP, t, 12715),
            Ok(inet(t, "127.0.0.1:35098", "127.0.0.1:8080"))
        );
        assert_eq!(find_inet(TCP, t, 4), Ok(None));
        assert_eq!(
            find_inet(UDP, L4Proto::Udp, 12718),
            Ok(inet(L4Proto::Udp, "127.0.0.53:53", "0.0.0.0:0"))
        );
        assert_eq!(
            find_inet(RAW, L4Proto::Raw, 12722),
            Ok(inet(L4Proto::Raw, "0.0.0.0:1", "0.0.0.0:0"))
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_ipv6_tables() {
        let t = L4Proto::Tcp;
        assert_eq!(
            find_inet(TCP6, t, 12717),
            Ok(inet(t, "[::1]:8443", "[::]:0"))
        );
        assert_eq!(
            find_inet(TCP6, t, 12261),
            Ok(inet(t, "127.0.0.1:8081", "127.0.0.1:34104")),
            "v4-mapped addresses are reported as IPv4"
        );
        assert_eq!(
            find_inet(TCP6, t, 555),
            Ok(inet(t, "[2001:db8::1]:80", "[2001:db8::ff]:49152"))
        );
        assert_eq!(
            find_inet(UDP6, L4Proto::Udp, 12719),
            Ok(inet(L4Proto::Udp, "[::1]:5354", "[::]:0"))
        );
    }

    #[test]
    fn inode_zero_and_header_never_match() {
        // The TIME_WAIT line has inode 0; the header has "inode" in column 9.
        assert_eq!(find_inet(TCP, L4Proto::Tcp, 0), Ok(None));
        assert_eq!(find_unix("Num\nffff: 1 0 0 1 1 0 /x\n", 0), None);
    }

    #[test]
    fn malformed_matching_line_is_an_error_other_lines_are_skipped() {
        let text = "header\n garbage\n0: ZZZZ:1F90 00000000:0000 0A x x x 0 0 77 1\n\
                    1: 0100007F:1F90 00000000:0000 0A x x x 0 0 78 1\n";
        assert!(find_inet(text, L4Proto::Tcp, 77).is_err());
        assert!(find_inet(text, L4Proto::Tcp, 78).unwrap().is_some());
    }

    #[test]
    fn hex_address_edge_cases() {
        assert_eq!(parse_hex_socket_addr("0100007F:1F9"), None, "short port");
        assert_eq!(parse_hex_socket_addr("0100007F1F90"), None, "no colon");
        assert_eq!(
            parse_hex_socket_addr("100007F:1F90"),
            None,
            "7-digit address"
        );
        assert_eq!(parse_hex_socket_addr("+100007F:1F90"), None);
        // 32 bytes but not 32 characters: must not slice inside a character.
        let odd = format!("{}\u{fffd}{}:0050", "0".repeat(14), "0".repeat(15));
        assert_eq!(odd.split_once(':').unwrap().0.len(), 32);
        assert_eq!(parse_hex_socket_addr(&odd), None);
        assert_eq!(parse_hex_socket_addr("0100007F:+F90"), None);
        assert_eq!(
            parse_hex_socket_addr("0100007f:ffff").map(|a| a.port()),
            Some(65535)
        );
    }

    #[test]
    fn unix_table() {
        assert_eq!(
            find_unix(UNIX, 12720),
            Some(SocketEntry::Unix {
                path: Some("/tmp/vigil fixture.sock".into())
            })
        );
        assert_eq!(
            find_unix(UNIX, 12721),
            Some(SocketEntry::Unix {
                path: Some("@vigil-abstract".into())
            })
        );
        assert_eq!(
            find_unix(UNIX, 12031),
            Some(SocketEntry::Unix { path: None })
        );
        assert_eq!(find_unix(UNIX, 1), None);
        assert_eq!(find_unix("Num\nffff: 1 2\n", 2), None, "short line");
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn find_socket_over_fixture_tree() {
        let fx = tempfile::tempdir().unwrap();
        let net = fx.path().join("77/net");
        fs::create_dir_all(&net).unwrap();
        fs::write(fx.path().join("77/stat"), "77 (x) S 1").unwrap();
        fs::write(net.join("tcp"), TCP).unwrap();
        fs::write(net.join("udp6"), UDP6).unwrap();
        fs::write(net.join("unix"), UNIX).unwrap();
        // tcp6, udp, raw, raw6 missing, as on a kernel without them.
        assert_eq!(
            find_socket(fx.path(), 77, 12715).unwrap(),
            inet(L4Proto::Tcp, "127.0.0.1:35098", "127.0.0.1:8080")
        );
        assert_eq!(
            find_socket(fx.path(), 77, 12719).unwrap(),
            inet(L4Proto::Udp, "[::1]:5354", "[::]:0")
        );
        assert_eq!(
            find_socket(fx.path(), 77, 12721).unwrap(),
            Some(SocketEntry::Unix {
                path: Some("@vigil-abstract".into())
            })
        );
        assert_eq!(find_socket(fx.path(), 77, 999).unwrap(), None);
        assert_eq!(find_socket(fx.path(), 77, 0).unwrap(), None);
        assert!(matches!(
            find_socket(fx.path(), 78, 1),
            Err(ProcfsError::Gone { pid: 78 })
        ));
    }

    fn self_socket(fd: i32) -> Option<SocketEntry> {
        let proc = Path::new("/proc");
        let pid = std::process::id();
        let target = read_fd_target(proc, pid, fd).unwrap();
        let inode = socket_inode(&target).unwrap();
        find_socket(proc, pid, inode).unwrap()
    }

    #[test]
    fn real_tcp_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(
            self_socket(listener.as_raw_fd()),
            Some(SocketEntry::Inet {
                proto: L4Proto::Tcp,
                local,
                remote: addr("0.0.0.0:0"),
            })
        );

        let client = std::net::TcpStream::connect(local).unwrap();
        assert_eq!(
            self_socket(client.as_raw_fd()),
            Some(SocketEntry::Inet {
                proto: L4Proto::Tcp,
                local: client.local_addr().unwrap(),
                remote: local,
            })
        );
    }

    #[test]
    fn real_udp_and_ipv6() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            self_socket(udp.as_raw_fd()),
            Some(SocketEntry::Inet {
                proto: L4Proto::Udp,
                local: udp.local_addr().unwrap(),
                remote: addr("0.0.0.0:0"),
            })
        );
        // Hosts with IPv6 disabled cannot bind ::1; that is not a failure of
        // this module.
        if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
            assert_eq!(
                self_socket(v6.as_raw_fd()),
                Some(SocketEntry::Inet {
                    proto: L4Proto::Tcp,
                    local: v6.local_addr().unwrap(),
                    remote: addr("[::]:0"),
                })
            );
        }
    }

    #[test]
    fn real_unix_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            self_socket(listener.as_raw_fd()),
            Some(SocketEntry::Unix {
                path: Some(path.to_str().unwrap().to_owned())
            })
        );
    }
}

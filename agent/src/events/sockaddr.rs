//! Socket addresses as captured from user memory (`struct sockaddr_*`, native byte order for the
//! family, network byte order for ports and IPv4/IPv6 addresses).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A decoded socket address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SockAddr {
    /// `AF_INET` or `AF_INET6`.
    Inet(SocketAddr),
    /// `AF_UNIX`: a filesystem path, an abstract name (shown with a leading `@`), or unnamed.
    Unix(String),
    /// `AF_NETLINK`: the port id.
    Netlink(u32),
    /// Another family, kept by number.
    Other(u16),
}

impl SockAddr {
    /// Parses a captured address; `None` when it is too short for its family.
    pub fn parse(bytes: &[u8]) -> Option<SockAddr> {
        let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
        match i32::from(family) {
            libc::AF_INET => {
                let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
                let octets: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
                Some(SockAddr::Inet(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(octets)),
                    port,
                )))
            }
            libc::AF_INET6 => {
                let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
                let octets: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
                Some(SockAddr::Inet(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(octets)),
                    port,
                )))
            }
            libc::AF_UNIX => {
                let path = bytes.get(2..).unwrap_or_default();
                Some(SockAddr::Unix(unix_path(path)))
            }
            libc::AF_NETLINK => {
                let pid: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
                Some(SockAddr::Netlink(u32::from_ne_bytes(pid)))
            }
            _ => Some(SockAddr::Other(family)),
        }
    }

    /// Falco's rendering of the address on its own (`1.2.3.4:80`, `[::1]:80`, a unix path).
    pub fn render(&self) -> String {
        match self {
            SockAddr::Inet(addr) => addr.to_string(),
            SockAddr::Unix(path) => path.clone(),
            SockAddr::Netlink(pid) => format!("netlink:{pid}"),
            SockAddr::Other(family) => format!("family:{family}"),
        }
    }
}

fn unix_path(raw: &[u8]) -> String {
    match raw.split_first() {
        None => String::new(),
        // Abstract sockets start with a NUL and may contain NULs; `@` is the usual notation.
        Some((0, rest)) => {
            let end = rest.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            format!("@{}", String::from_utf8_lossy(&rest[..end]))
        }
        Some(_) => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(af: i32) -> [u8; 2] {
        (af as u16).to_ne_bytes()
    }

    #[test]
    fn parses_ipv4() {
        let mut raw = family(libc::AF_INET).to_vec();
        raw.extend_from_slice(&8080u16.to_be_bytes());
        raw.extend_from_slice(&[127, 0, 0, 1]);
        raw.extend_from_slice(&[0; 8]);
        let addr = SockAddr::parse(&raw).unwrap();
        assert_eq!(addr, SockAddr::Inet("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(addr.render(), "127.0.0.1:8080");
    }

    #[test]
    fn parses_ipv6() {
        let mut raw = family(libc::AF_INET6).to_vec();
        raw.extend_from_slice(&443u16.to_be_bytes());
        raw.extend_from_slice(&[0; 4]); // flowinfo
        raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        raw.extend_from_slice(&[0; 4]); // scope id
        assert_eq!(
            SockAddr::parse(&raw).unwrap().render(),
            "[::1]:443".to_string()
        );
    }

    #[test]
    fn parses_unix_paths() {
        let mut raw = family(libc::AF_UNIX).to_vec();
        raw.extend_from_slice(b"/run/docker.sock\0\0\0");
        assert_eq!(
            SockAddr::parse(&raw),
            Some(SockAddr::Unix("/run/docker.sock".into()))
        );
        let mut abstract_name = family(libc::AF_UNIX).to_vec();
        abstract_name.extend_from_slice(b"\0hidden");
        assert_eq!(
            SockAddr::parse(&abstract_name),
            Some(SockAddr::Unix("@hidden".into()))
        );
    }

    #[test]
    fn rejects_truncated_addresses() {
        assert_eq!(SockAddr::parse(&[]), None);
        assert_eq!(SockAddr::parse(&[2]), None);
        let mut short = family(libc::AF_INET).to_vec();
        short.extend_from_slice(&[0, 80, 127]);
        assert_eq!(SockAddr::parse(&short), None);
        assert_eq!(
            SockAddr::parse(&family(libc::AF_PACKET)),
            Some(SockAddr::Other(libc::AF_PACKET as u16))
        );
    }
}

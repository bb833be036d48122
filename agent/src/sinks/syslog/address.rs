//! `udp://host:port`, `tcp://host:port` and `tls://host:port` receiver addresses.

use std::{fmt, net::Ipv6Addr};

/// How messages travel to the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// RFC 5426: one datagram per message.
    Udp,
    /// RFC 6587: octet-counted messages over a plain TCP connection.
    Tcp,
    /// RFC 5425: octet-counted messages over TLS.
    Tls,
}

impl Protocol {
    fn scheme(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        }
    }

    /// The port an address without one uses: 514 is the traditional syslog port for UDP and
    /// plain TCP, 6514 the IANA port of syslog over TLS (RFC 5425).
    fn default_port(self) -> u16 {
        match self {
            Protocol::Udp | Protocol::Tcp => 514,
            Protocol::Tls => 6514,
        }
    }
}

/// A parsed receiver address. The host is kept as written (a name is resolved at every
/// connection, so a receiver that moves is followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Address {
    pub(super) protocol: Protocol,
    /// A DNS name, an IPv4 address or an IPv6 address without its brackets.
    pub(super) host: String,
    pub(super) port: u16,
}

impl Address {
    /// Parses `scheme://host[:port]`; the error says what is wrong, for the caller to put in
    /// context.
    pub(super) fn parse(text: &str) -> Result<Address, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            "expected udp://, tcp:// or tls:// followed by host:port, as in tcp://siem.example:514"
                .to_string()
        })?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Protocol::Udp,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            other => {
                return Err(format!(
                    "unknown scheme `{other}`: use udp://, tcp:// or tls://"
                ));
            }
        };
        if let Some(bad) = rest.chars().find(|c| matches!(c, '/' | '?' | '#' | '@')) {
            return Err(format!(
                "unexpected `{bad}`: a syslog address is only scheme://host:port"
            ));
        }
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            None => protocol.default_port(),
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| format!("invalid port `{port}`: expected 1 to 65535"))?,
        };
        Ok(Address {
            protocol,
            host: host.to_string(),
            port,
        })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`, checking the host's characters.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "missing `]` after the IPv6 address".to_string())?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("unexpected `{after}` after the IPv6 address: expected `:port`")
            })?),
        };
        return Ok((host, port));
    }
    let (host, port) = match text.split_once(':') {
        Some((_, after)) if after.contains(':') => {
            return Err("an IPv6 address needs brackets, as in tcp://[::1]:514".to_string());
        }
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    // Host names and IPv4 addresses: letters, digits, dots, hyphens (and underscores, which
    // some internal DNS zones use).
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("invalid character `{bad}` in host `{host}`"));
    }
    Ok((host, port))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.protocol.scheme();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    fn error(text: &str) -> String {
        Address::parse(text).unwrap_err()
    }

    #[test]
    fn parses_each_protocol() {
        let udp = parse("udp://127.0.0.1:5140");
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!((udp.host.as_str(), udp.port), ("127.0.0.1", 5140));
        assert_eq!(parse("tcp://siem.example:601").protocol, Protocol::Tcp);
        assert_eq!(parse("TLS://siem.example:6514").protocol, Protocol::Tls);
    }

    #[test]
    fn defaults_the_port_by_protocol() {
        assert_eq!(parse("udp://siem.example").port, 514);
        assert_eq!(parse("tcp://siem.example").port, 514);
        assert_eq!(parse("tls://siem.example").port, 6514);
        assert_eq!(parse("tls://[::1]").port, 6514);
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let address = parse("tcp://[::1]:6514");
        assert_eq!((address.host.as_str(), address.port), ("::1", 6514));
        assert_eq!(address.to_string(), "tcp://[::1]:6514");
    }

    #[test]
    fn describes_itself_normalised() {
        assert_eq!(
            parse("TCP://127.0.0.1:6514").to_string(),
            "tcp://127.0.0.1:6514"
        );
        assert_eq!(
            parse("tls://siem.example").to_string(),
            "tls://siem.example:6514"
        );
    }

    #[test]
    fn explains_what_is_wrong() {
        assert!(error("127.0.0.1:514").contains("expected udp://, tcp:// or tls://"));
        assert!(error("http://siem.example").contains("unknown scheme `http`"));
        assert!(error("tcp://:514").contains("missing host"));
        assert!(error("tcp://siem.example:0").contains("invalid port `0`"));
        assert!(error("tcp://siem.example:70000").contains("invalid port `70000`"));
        assert!(error("tcp://siem.example:").contains("invalid port ``"));
        assert!(error("tcp://::1:514").contains("needs brackets"));
        assert!(error("tcp://[::1:514").contains("missing `]`"));
        assert!(error("tcp://[nope]:514").contains("not an IPv6 address"));
        assert!(error("tcp://[::1]514").contains("expected `:port`"));
        assert!(error("tcp://siem.example:514/path").contains("unexpected `/`"));
        assert!(error("tcp://user@siem.example").contains("unexpected `@`"));
        assert!(error("tcp://siem example:514").contains("invalid character ` `"));
    }
}

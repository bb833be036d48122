//! Destination port ranges and transport protocols.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of destination ports, `lo..=hi`, with `1 <= lo <= hi`.
///
/// Parsed from `"443"` (a single port) or `"8000-8080"`. Port 0 is refused: it is not a
/// port anything can be reached on, so allowing it would only hide a typo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// The first port of the range.
    pub lo: u16,
    /// The last port of the range (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Every port, 1-65535.
    pub const ALL: PortRange = PortRange { lo: 1, hi: 65535 };

    /// The range holding just `port`.
    pub fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Why a port or port range failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// Neither a decimal number nor two joined by `-`.
    #[error("`{0}` is not a port: expected a number 1-65535 or a range such as `8000-8080`")]
    NotAPort(String),
    /// Port 0.
    #[error("port 0 cannot be connected to: ports are 1-65535")]
    Zero,
    /// A number above 65535.
    #[error("port {0} is out of range: ports are 1-65535")]
    OutOfRange(String),
    /// `hi-lo` with `hi > lo`.
    #[error("range `{lo}-{hi}` is reversed; write `{hi}-{lo}`")]
    Reversed {
        /// The first number as written (the larger one).
        lo: u16,
        /// The second number as written (the smaller one).
        hi: u16,
    },
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_a_port = || PortRangeError::NotAPort(s.to_owned());
        let Some((lo, hi)) = s.split_once('-') else {
            return port(s, not_a_port).map(PortRange::single);
        };
        let (lo, hi) = (port(lo, not_a_port)?, port(hi, not_a_port)?);
        if lo > hi {
            return Err(PortRangeError::Reversed { lo, hi });
        }
        Ok(PortRange { lo, hi })
    }
}

/// One port number: decimal digits only, so that `+443`, `0x1bb` or `443.0` (all of which
/// YAML or `u16::from_str` might otherwise let through) are refused rather than guessed at.
fn port(s: &str, not_a_port: impl Fn() -> PortRangeError) -> Result<u16, PortRangeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_port());
    }
    // Any digit string too long for u32 is out of range all the same.
    match s.parse::<u32>().map(u16::try_from) {
        Ok(Ok(0)) => Err(PortRangeError::Zero),
        Ok(Ok(port)) => Ok(port),
        _ => Err(PortRangeError::OutOfRange(s.to_owned())),
    }
}

/// The transport protocol a rule allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP and UDP.
    #[default]
    Any,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
}

impl Protocol {
    /// The name used in policy files: `any`, `tcp` or `udp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Any => "any",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Whether a rule with this protocol allows traffic of `other` (`Tcp` or `Udp`).
    pub fn allows(&self, other: Protocol) -> bool {
        *self == Protocol::Any || *self == other
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name other than `tcp`, `udp` or `any`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}`: expected `tcp`, `udp` or `any`")]
pub struct ProtocolError(pub String);

impl FromStr for Protocol {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Protocol::Any),
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(ProtocolError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Result<PortRange, String> {
        s.parse::<PortRange>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_single_ports_and_ranges() {
        assert_eq!(range("443"), Ok(PortRange::single(443)));
        assert_eq!(range("1"), Ok(PortRange::single(1)));
        assert_eq!(range("65535"), Ok(PortRange::single(65535)));
        assert_eq!(range("8000-8080"), Ok(PortRange { lo: 8000, hi: 8080 }));
        assert_eq!(range("53-53"), Ok(PortRange::single(53)));
        assert_eq!(range("1-65535"), Ok(PortRange::ALL));
        assert_eq!(range("0443"), Ok(PortRange::single(443)));
    }

    #[test]
    fn refuses_bad_ports() {
        let not_a_port = |s: &str| {
            format!("`{s}` is not a port: expected a number 1-65535 or a range such as `8000-8080`")
        };
        for s in [
            "", "http", "+443", "-1", "0x1bb", "443.0", " 443", "80-", "-80", "1-2-3", "80 - 90",
        ] {
            assert_eq!(range(s), Err(not_a_port(s)), "{s:?}");
        }
        let zero = "port 0 cannot be connected to: ports are 1-65535";
        assert_eq!(range("0"), Err(zero.to_owned()));
        assert_eq!(range("0-10"), Err(zero.to_owned()));
        assert_eq!(
            range("65536"),
            Err("port 65536 is out of range: ports are 1-65535".to_owned())
        );
        assert_eq!(
            range("1-99999999999999999999"),
            Err("port 99999999999999999999 is out of range: ports are 1-65535".to_owned())
        );
        assert_eq!(
            range("8080-8000"),
            Err("range `8080-8000` is reversed; write `8000-8080`".to_owned())
        );
    }

    #[test]
    fn contains_is_inclusive() {
        let r = PortRange { lo: 8000, hi: 8080 };
        assert!(!r.contains(7999));
        assert!(r.contains(8000));
        assert!(r.contains(8042));
        assert!(r.contains(8080));
        assert!(!r.contains(8081));
        assert!(PortRange::single(443).contains(443));
        assert!(!PortRange::single(443).contains(444));
        assert!(PortRange::ALL.contains(65535));
        assert!(!PortRange::ALL.contains(0));
    }

    #[test]
    fn display_round_trips() {
        for s in ["443", "8000-8080", "1-65535"] {
            assert_eq!(range(s).map(|r| r.to_string()), Ok(s.to_owned()));
        }
    }

    #[test]
    fn protocols() {
        assert_eq!("tcp".parse(), Ok(Protocol::Tcp));
        assert_eq!("udp".parse(), Ok(Protocol::Udp));
        assert_eq!("any".parse(), Ok(Protocol::Any));
        assert_eq!(
            "TCP".parse::<Protocol>().map_err(|e| e.to_string()),
            Err("unknown protocol `TCP`: expected `tcp`, `udp` or `any`".to_owned())
        );
        assert!(Protocol::Any.allows(Protocol::Udp));
        assert!(Protocol::Tcp.allows(Protocol::Tcp));
        assert!(!Protocol::Tcp.allows(Protocol::Udp));
    }
}

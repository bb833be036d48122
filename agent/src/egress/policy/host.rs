//! DNS name patterns: `api.example.com` or `*.example.com`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The longest DNS name in its text form, without the trailing dot (RFC 1035 2.3.4).
const MAX_NAME_LEN: usize = 253;

/// The longest DNS label (RFC 1035 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A DNS name, exact or wildcard, that destinations are allowed by.
///
/// Stored lowercased and without a trailing dot. A wildcard has `*` as its whole leftmost
/// label and matches names with **one or more** labels in its place: `*.example.com`
/// matches `a.example.com` and `a.b.example.com`, but not `example.com` itself (allow that
/// with a second, exact rule when it is wanted).
///
/// Labels hold ASCII letters, digits, `-` and `_` (the latter for service names such as
/// `_sip._udp.example.com`); internationalized names are written in punycode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// The exact name, or the part below the `*.` for a wildcard.
    domain: String,
    wildcard: bool,
}

impl HostPattern {
    /// Whether this is a `*.` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact name, or for a wildcard the domain below `*.` (lowercase, no trailing
    /// dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` (as seen in a DNS query or answer) is allowed by this pattern.
    ///
    /// Comparison ignores ASCII case and a trailing dot. A name with an empty label in the
    /// part a wildcard stands for (`a..example.com`) does not match: no resolver produces
    /// one, so it can only be an attempt to slip past the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
        let domain = self.domain.as_bytes();
        if !self.wildcard {
            return name.eq_ignore_ascii_case(domain);
        }
        // At least one byte of label and the separating dot must precede the domain.
        let Some(split) = name.len().checked_sub(domain.len() + 1) else {
            return false;
        };
        // Byte-wise on purpose: `split` need not fall on a character boundary of a
        // (malformed, non-ASCII) name, and the comparison must not panic on one.
        let (labels, rest) = name.split_at(split);
        rest.first() == Some(&b'.')
            && rest[1..].eq_ignore_ascii_case(domain)
            && labels.split(|&b| b == b'.').all(|label| !label.is_empty())
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

/// Why a host pattern was refused. Each message quotes the host as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    /// The empty string (or a lone `.`).
    #[error("the host name is empty")]
    Empty,
    /// An IPv4 or IPv6 address, which DNS patterns never see.
    #[error("`{host}` is an IP address, not a host name; write it as `cidr: {addr}`")]
    IpAddress {
        /// The host as written.
        host: String,
        /// The address, for the suggested `cidr`.
        addr: IpAddr,
    },
    /// A URL (`https://…`).
    #[error("`{0}` is a URL; write only its host name")]
    Url(String),
    /// `name:port`.
    #[error("`{0}` includes a port; list ports under `ports`")]
    Port(String),
    /// Not ASCII.
    #[error("`{0}` is not ASCII; write internationalized names in their punycode form (`xn--…`)")]
    NotAscii(String),
    /// A character other than a letter, digit, `-`, `_` or the `.` between labels.
    #[error("`{host}` contains `{ch}`; labels hold only letters, digits, `-` and `_`")]
    BadChar {
        /// The host as written.
        host: String,
        /// The first offending character.
        ch: char,
    },
    /// Two dots in a row, or a leading dot.
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    /// A label over 63 characters.
    #[error("`{host}` has a label of {len} characters; at most 63 are allowed")]
    LabelTooLong {
        /// The host as written.
        host: String,
        /// The label's length.
        len: usize,
    },
    /// A name over 253 characters.
    #[error("`{host}` is {len} characters long; at most 253 are allowed")]
    TooLong {
        /// The host as written.
        host: String,
        /// Its length, without the trailing dot.
        len: usize,
    },
    /// `*` somewhere other than as the whole leftmost label.
    #[error(
        "`{0}` has a misplaced `*`: a wildcard is the whole leftmost label, as in `*.example.com`"
    )]
    MisplacedWildcard(String),
    /// `*` with nothing below it.
    #[error(
        "`{0}` would match every name; name a domain below the `*`, or allow addresses with `cidr`"
    )]
    BareWildcard(String),
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(host: &str) -> Result<Self, Self::Err> {
        let owned = || host.to_owned();
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.is_empty() {
            return Err(HostPatternError::Empty);
        }
        let bracketed = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(addr) = bracketed.parse::<IpAddr>() {
            return Err(HostPatternError::IpAddress {
                host: owned(),
                addr,
            });
        }
        if name.contains("://") {
            return Err(HostPatternError::Url(owned()));
        }
        if let Some((_, port)) = name.rsplit_once(':')
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(HostPatternError::Port(owned()));
        }
        if !name.is_ascii() {
            return Err(HostPatternError::NotAscii(owned()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(HostPatternError::TooLong {
                host: owned(),
                len: name.len(),
            });
        }
        let (wildcard, domain) = match name.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None if name == "*" => return Err(HostPatternError::BareWildcard(owned())),
            None => (false, name),
        };
        for label in domain.split('.') {
            if label.is_empty() {
                return Err(HostPatternError::EmptyLabel(owned()));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(HostPatternError::LabelTooLong {
                    host: owned(),
                    len: label.len(),
                });
            }
            if let Some(ch) = label
                .chars()
                .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                return Err(if ch == '*' {
                    HostPatternError::MisplacedWildcard(owned())
                } else {
                    HostPatternError::BadChar { host: owned(), ch }
                });
            }
        }
        Ok(HostPattern {
            domain: domain.to_ascii_lowercase(),
            wildcard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    fn error(s: &str) -> String {
        s.parse::<HostPattern>().unwrap_err().to_string()
    }

    #[test]
    fn wildcard_matches_one_or_more_labels_below() {
        let p = pattern("*.example.com");
        assert!(p.is_wildcard());
        assert_eq!(p.domain(), "example.com");
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(p.matches("A.Example.COM."));
        assert!(p.matches("_sip._udp.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("example.com."));
        assert!(!p.matches("aexample.com"));
        assert!(!p.matches(".example.com"));
        assert!(!p.matches("a..example.com"));
        assert!(!p.matches("a.example.com.evil.net"));
        assert!(!p.matches("a.example.co"));
        assert!(!p.matches(""));
        assert!(
            !p.matches("é.example.com.x"),
            "non-ASCII input must not panic"
        );
        assert!(p.matches("é.example.com"));
    }

    #[test]
    fn exact_matches_only_itself() {
        let p = pattern("API.Example.com.");
        assert!(!p.is_wildcard());
        assert_eq!(p.domain(), "api.example.com");
        assert!(p.matches("api.example.com"));
        assert!(p.matches("api.example.com."));
        assert!(p.matches("API.EXAMPLE.COM"));
        assert!(!p.matches("x.api.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("api.example.co"));
    }

    #[test]
    fn normalizes_and_displays() {
        assert_eq!(
            pattern("*.Payments.Example.com.").to_string(),
            "*.payments.example.com"
        );
        assert_eq!(pattern("localhost").to_string(), "localhost");
        assert_eq!(pattern("*.com").to_string(), "*.com");
        let longest_label = "a".repeat(63);
        assert_eq!(pattern(&longest_label).domain(), longest_label);
        let longest_name = [
            &*"a".repeat(63),
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest_name.len(), 253);
        assert_eq!(pattern(&format!("{longest_name}.")).domain(), longest_name);
    }

    #[test]
    fn refuses_malformed_names() {
        assert_eq!(error(""), "the host name is empty");
        assert_eq!(error("."), "the host name is empty");
        assert_eq!(
            error("10.1.2.3"),
            "`10.1.2.3` is an IP address, not a host name; write it as `cidr: 10.1.2.3`"
        );
        assert_eq!(
            error("[2001:db8::1]"),
            "`[2001:db8::1]` is an IP address, not a host name; write it as `cidr: 2001:db8::1`"
        );
        assert_eq!(
            error("https://example.com/x"),
            "`https://example.com/x` is a URL; write only its host name"
        );
        assert_eq!(
            error("example.com:443"),
            "`example.com:443` includes a port; list ports under `ports`"
        );
        assert_eq!(
            error("bücher.de"),
            "`bücher.de` is not ASCII; write internationalized names in their punycode form (`xn--…`)"
        );
        assert_eq!(
            error("a b.com"),
            "`a b.com` contains ` `; labels hold only letters, digits, `-` and `_`"
        );
        assert_eq!(error("a..com"), "`a..com` has an empty label");
        assert_eq!(error(".a.com"), "`.a.com` has an empty label");
        assert_eq!(
            error(&format!("{}.com", "a".repeat(64))),
            format!(
                "`{}.com` has a label of 64 characters; at most 63 are allowed",
                "a".repeat(64)
            )
        );
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert_eq!(
            error(&long),
            format!("`{long}` is 308 characters long; at most 253 are allowed")
        );
        let misplaced =
            "has a misplaced `*`: a wildcard is the whole leftmost label, as in `*.example.com`";
        for host in [
            "a.*.com",
            "*a.example.com",
            "a*.example.com",
            "*.*.example.com",
            "**.com",
        ] {
            assert_eq!(error(host), format!("`{host}` {misplaced}"));
        }
        assert_eq!(
            error("*"),
            "`*` would match every name; name a domain below the `*`, or allow addresses with `cidr`"
        );
        assert_eq!(
            error("*."),
            "`*.` would match every name; name a domain below the `*`, or allow addresses with `cidr`"
        );
    }
}

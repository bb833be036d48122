//! The `x.y.z` versions of `required_engine_version` and `required_plugin_versions`.

use std::fmt;

/// The engine version Vigil claims for `required_engine_version` checks: the Falco engine
/// version whose rule-loading behaviour it implements.
pub const ENGINE_VERSION: Version = Version {
    major: 0,
    minor: 63,
    patch: 0,
};

/// A semantic version (pre-release and build suffixes are ignored, as libsinsp does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// Parses `x.y.z` (anything after the patch number is ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let patch = digits.parse().ok()?;
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// Whether something of this version provides what `required` asks for: same major,
    /// and not older.
    pub fn satisfies(self, required: Version) -> bool {
        self.major == required.major && self >= required
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

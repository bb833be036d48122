//! Egress policy files: parsing, validation and the in-memory model.
//!
//! A policy file is a YAML list of policies. Several files (or directories of them) load
//! in order into one [`PolicySet`]:
//!
//! ```yaml
//! - policy: web-frontend
//!   mode: enforce            # monitor | enforce (default monitor)
//!   match:                   # which workloads; every key given must hold
//!     container.image.repository: registry.example/web
//!     k8s.ns.name: shop
//!     proc.name: [nginx, node]     # a value or a list (any of)
//!   allow:
//!     - cidr: 10.20.0.0/16
//!       ports: [5432]
//!     - host: "*.payments.example.com"
//!       ports: [443, "8000-8080"]  # absent: every port
//!       protocol: tcp              # tcp | udp | any (default any)
//!     - cidr: "2001:db8::/32"
//! - default:                 # at most one across all files
//!     mode: monitor
//!     allow: []
//! ```
//!
//! # Semantics
//!
//! - A policy's `match` selects workloads: every key given must hold, and a key given a
//!   list holds when any of its values does. A policy without `match` (or with `match: {}`)
//!   selects every workload.
//! - `allow` is required: `allow: []` denies everything. Loopback is always allowed and is
//!   never listed.
//! - The `default` policy applies to workloads no policy selects. It takes no `match`, and
//!   its name is `default` (which is therefore not available to named policies).
//! - At most [`MAX_POLICIES`] (64) policies load, the default included.
//! - Policies keep their load order: files in the order given (a directory's `*.yaml` and
//!   `*.yml` files by name), and policies in file order.
//!
//! # Match keys
//!
//! | key | value |
//! |---|---|
//! | `container.id` | 12 or 64 hex characters; stored as the 12-character short id, so either form matches the container |
//! | `container.name` | the runtime's container name |
//! | `container.image.repository` | the image without tag or digest: `registry.example/web`, not `registry.example/web:1.2` |
//! | `k8s.ns.name`, `k8s.pod.name` | Kubernetes namespace and pod name |
//! | `proc.name` | the process name as the kernel keeps it (`comm`), at most 15 bytes |
//! | `cgroup` | a cgroup v2 path relative to the cgroup root (`system.slice/nginx.service`); selects that cgroup and every cgroup below it |
//!
//! A `proc.name` longer than 15 bytes is refused, not truncated: the kernel only ever sees
//! the first 15 bytes, so a truncated name would silently select every process sharing
//! that prefix. The error names the 15-byte form to write instead.
//!
//! # Errors
//!
//! Loading does not stop at the first problem: every file is read and every problem is
//! reported as a [`PolicyError`] with the file, line and column (1-based) of the offending
//! YAML node. Unknown keys are errors everywhere, so a misspelt key cannot silently widen
//! or narrow a policy.

mod host;
mod parse;
mod ports;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use host::{HostPattern, HostPatternError};
pub use ports::{PortRange, PortRangeError, Protocol, ProtocolError};

/// The most policies a [`PolicySet`] may hold, the default policy included: the kernel
/// gives each policy one bit of a 64-bit mask.
pub const MAX_POLICIES: usize = 64;

/// Every egress policy in force: the named policies and the optional default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// The named policies, in load order (names unique; with the default, at most
    /// [`MAX_POLICIES`]).
    pub policies: Vec<Policy>,
    /// The policy for workloads no named policy selects; its name is `default` and its
    /// matcher is empty.
    pub default: Option<Policy>,
}

impl PolicySet {
    /// No policies: nothing is selected and nothing is restricted.
    pub fn empty() -> PolicySet {
        PolicySet::default()
    }

    /// Loads policy files in order into one set.
    ///
    /// A path naming a directory loads the directory's `*.yaml` and `*.yml` files in name
    /// order. Subdirectories and names starting with `.` are skipped: the latter covers
    /// editor lock files and the `..data` links Kubernetes uses to swap mounted
    /// ConfigMaps atomically (the files themselves are reached through their top-level
    /// links, which are followed).
    ///
    /// On failure, returns every problem of every file, each file's in position order. A
    /// file or directory that cannot be read is reported at line 0, column 0.
    pub fn load(paths: &[PathBuf]) -> Result<PolicySet, Vec<PolicyError>> {
        let mut loader = parse::Loader::default();
        for path in paths {
            match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => match policy_files(path) {
                    Ok(files) => files.iter().for_each(|file| load_file(&mut loader, file)),
                    Err(e) => loader.unreadable(path, format!("cannot list directory: {e}")),
                },
                Ok(_) => load_file(&mut loader, path),
                Err(e) => loader.unreadable(path, format!("cannot read: {e}")),
            }
        }
        loader.finish()
    }

    /// Parses one policy file's text; `file` is only used to locate errors and policies.
    pub fn parse(text: &str, file: &Path) -> Result<PolicySet, Vec<PolicyError>> {
        let mut loader = parse::Loader::default();
        loader.add(text, file);
        loader.finish()
    }

    /// The named policy called `name` (`default` finds the default policy).
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .chain(&self.default)
            .find(|p| p.name == name)
    }
}

fn load_file(loader: &mut parse::Loader, file: &Path) {
    match fs::read_to_string(file) {
        Ok(text) => loader.add(&text, file),
        Err(e) => loader.unreadable(file, format!("cannot read: {e}")),
    }
}

/// A directory's policy files, in name order.
fn policy_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // metadata() follows symlinks, as ConfigMap mounts need; a dangling link is kept
        // so that reading it reports the problem.
        let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_yaml && !name.starts_with('.') && !is_dir {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// One egress policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The name, unique in its set (`default` for the default policy).
    pub name: String,
    /// Whether violations are blocked or only reported.
    pub mode: Mode,
    /// The workloads the policy applies to.
    pub matcher: WorkloadMatch,
    /// The destinations allowed besides loopback; empty allows nothing else.
    pub allow: Vec<AllowRule>,
    /// Where the policy is defined (its `policy` or `default` key).
    pub at: Location,
}

/// What happens to traffic a policy does not allow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub enum Mode {
    /// Report it and let it through.
    #[default]
    Monitor,
    /// Block it (and report it).
    Enforce,
}

impl Mode {
    /// The name used in policy files: `monitor` or `enforce`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which workloads a policy selects.
///
/// Each field lists the accepted values of one key; a workload is selected when, for every
/// non-empty field, it has one of the values. An empty field does not constrain. Values are
/// normalized as described in the [module documentation](self#match-keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadMatch {
    /// `container.id`: 12-character lowercase short ids.
    pub container_id: Vec<String>,
    /// `container.name`.
    pub container_name: Vec<String>,
    /// `container.image.repository` (no tag, no digest).
    pub container_image_repository: Vec<String>,
    /// `k8s.ns.name`.
    pub k8s_ns_name: Vec<String>,
    /// `k8s.pod.name`.
    pub k8s_pod_name: Vec<String>,
    /// `proc.name`: at most 15 bytes, as the kernel's `comm`.
    pub proc_name: Vec<String>,
    /// `cgroup`: paths relative to the cgroup v2 root, without leading or trailing `/`;
    /// each selects its cgroup and every cgroup below it.
    pub cgroup: Vec<String>,
}

impl WorkloadMatch {
    /// Whether nothing is constrained, so every workload is selected.
    pub fn is_empty(&self) -> bool {
        self.container_id.is_empty()
            && self.cgroup.is_empty()
            && self.proc_name.is_empty()
            && !self.needs_container_metadata()
    }

    /// Whether deciding requires metadata only a container runtime or Kubernetes provides
    /// (names, images, namespaces, pods), as opposed to what the kernel and the cgroup path
    /// tell (`container.id`, `proc.name`, `cgroup`).
    pub fn needs_container_metadata(&self) -> bool {
        !(self.container_name.is_empty()
            && self.container_image_repository.is_empty()
            && self.k8s_ns_name.is_empty()
            && self.k8s_pod_name.is_empty())
    }
}

/// One allowed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// The addresses or names allowed.
    pub destination: Destination,
    /// The ports allowed, as written; empty allows every port.
    pub ports: Vec<PortRange>,
    /// The transport protocol allowed.
    pub protocol: Protocol,
    /// Where the rule is written.
    pub at: Location,
}

impl AllowRule {
    /// Whether `port` is allowed by the rule's ports.
    pub fn allows_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.iter().any(|r| r.contains(port))
    }
}

/// Where an allowed destination is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An IPv4 or IPv6 network (never with host bits set; a bare address is a /32 or /128).
    Cidr(IpNet),
    /// A DNS name or wildcard.
    Host(HostPattern),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Cidr(net) => write!(f, "{net}"),
            Destination::Host(host) => write!(f, "{host}"),
        }
    }
}

/// A position in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as given to [`PolicySet::load`] (joined to its directory if found in one).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A problem in a policy file, at the offending YAML node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct PolicyError {
    /// The file, as given to [`PolicySet::load`].
    pub file: PathBuf,
    /// 1-based line; 0 when the file itself could not be read.
    pub line: u32,
    /// 1-based column in characters; 0 when the file itself could not be read.
    pub column: u32,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

//! From the positioned YAML tree to [`PolicySet`], collecting every error on the way.
//!
//! Each check reports and carries on with what it could read, so that one run shows every
//! problem; the partial set built meanwhile is discarded if anything was reported.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::{
    AllowRule, Destination, HostPattern, Location, MAX_POLICIES, Mode, Policy, PolicyError,
    PolicySet, PortRange, Protocol, WorkloadMatch,
};
use crate::rules::condition::ast::Pos;
use crate::rules::loader::yaml::{self, Node, Value};

/// The kernel's `TASK_COMM_LEN` (16) less the terminating NUL.
const COMM_LEN: usize = 15;

/// Policy names end up in metrics labels, logs and alert fields; keeping them to a
/// DNS-label-like alphabet keeps them safe in all of those.
const MAX_NAME_LEN: usize = 63;

/// The name of the default policy, reserved for it.
const DEFAULT_NAME: &str = "default";

const POLICY_KEYS: &[&str] = &["policy", "mode", "match", "allow"];
/// `match` is accepted here only to refuse it with a better message than "unknown key".
const DEFAULT_KEYS: &[&str] = &["mode", "match", "allow"];
const MATCH_KEYS: &[&str] = &[
    "container.id",
    "container.name",
    "container.image.repository",
    "k8s.ns.name",
    "k8s.pod.name",
    "proc.name",
    "cgroup",
];
const RULE_KEYS: &[&str] = &["cidr", "host", "ports", "protocol"];

/// Accumulates policy files into one set; state spanning files (names, the default, the
/// policy count) lives here.
#[derive(Default)]
pub(super) struct Loader {
    set: PolicySet,
    /// Where each policy name was first defined.
    defined: HashMap<String, Location>,
    default_at: Option<Location>,
    /// Policies seen (named ones, valid or not, and the first default), so that the limit is
    /// reported at the right one.
    seen: usize,
    errors: Vec<PolicyError>,
}

impl Loader {
    /// Records that `file` could not be read at all.
    pub(super) fn unreadable(&mut self, file: &Path, message: String) {
        self.errors.push(PolicyError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
        });
    }

    /// Adds the policies of one file.
    pub(super) fn add(&mut self, text: &str, path: &Path) {
        let mut file = File {
            path,
            errors: Vec::new(),
        };
        match yaml::parse(text, 0) {
            Ok(docs) => {
                for doc in docs.iter().flatten() {
                    self.document(&mut file, doc);
                }
            }
            Err(e) => file.error(e.pos, e.message),
        }
        // Checks nest (a policy's name is checked after its keys), so the order found is not
        // quite file order; readers expect file order.
        file.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.append(&mut file.errors);
    }

    /// The set, or every error reported.
    pub(super) fn finish(self) -> Result<PolicySet, Vec<PolicyError>> {
        if self.errors.is_empty() {
            Ok(self.set)
        } else {
            Err(self.errors)
        }
    }

    fn document(&mut self, file: &mut File<'_>, doc: &Node) {
        if doc.is_null() {
            return;
        }
        let Some(items) = doc.seq() else {
            let hint = if doc.get("policy").is_some() || doc.get(DEFAULT_NAME).is_some() {
                "; start each policy with `- `"
            } else {
                ""
            };
            file.error(
                doc.pos,
                format!("expected a list of policies, found {}{hint}", describe(doc)),
            );
            return;
        };
        for item in items {
            self.item(file, item);
        }
    }

    fn item(&mut self, file: &mut File<'_>, item: &Node) {
        let Some(entries) = item.map() else {
            file.error(
                item.pos,
                format!(
                    "expected a policy (`policy: <name>` and its settings) or `default:`, found {}",
                    describe(item)
                ),
            );
            return;
        };
        match (item.entry("policy"), item.entry(DEFAULT_NAME)) {
            (Some(_), Some((key, _))) => file.error(
                key.pos,
                "an item is either a named `policy` or the `default`, not both",
            ),
            (Some((key, name)), None) => self.policy_item(file, item, key, name),
            (None, Some((key, body))) => self.default_item(file, entries, key, body),
            (None, None) => {
                let found = entries
                    .first()
                    .map_or_else(|| "an empty mapping".to_owned(), |(k, _)| describe(k));
                file.error(
                    item.pos,
                    format!(
                        "expected `policy: <name>` or `default:` to start an item, found {found}"
                    ),
                );
            }
        }
    }

    fn policy_item(&mut self, file: &mut File<'_>, item: &Node, key: &Node, name_node: &Node) {
        let name = policy_name(file, name_node);
        let this = name
            .as_ref()
            .map_or_else(|| "this policy".to_owned(), |n| format!("policy `{n}`"));
        self.count(file, key, &this);
        let at = file.location(key.pos);
        if let Some(name) = &name {
            match self.defined.get(name) {
                Some(first) => file.error(
                    name_node.pos,
                    format!("policy `{name}` is already defined at {first}"),
                ),
                None => {
                    self.defined.insert(name.clone(), at.clone());
                }
            }
        }
        let Some(fields) = fields(file, item, "a policy", POLICY_KEYS) else {
            return;
        };
        let what = name
            .as_ref()
            .map_or_else(|| "the policy".to_owned(), |n| format!("policy `{n}`"));
        let (mode, matcher, allow) = body(file, item, &fields, &what);
        self.set.policies.push(Policy {
            name: name.unwrap_or_default(),
            mode,
            matcher,
            allow,
            at,
        });
    }

    fn default_item(
        &mut self,
        file: &mut File<'_>,
        entries: &[(Node, Node)],
        key: &Node,
        body_node: &Node,
    ) {
        for (other, _) in entries {
            if !std::ptr::eq(other, key) {
                let message = match other.text() {
                    Some(DEFAULT_NAME) => "duplicate key `default`".to_owned(),
                    _ => format!(
                        "unexpected {} beside `default`; the default policy's settings go \
                         under `default:`",
                        describe(other)
                    ),
                };
                file.error(other.pos, message);
            }
        }
        let at = file.location(key.pos);
        match &self.default_at {
            Some(first) => file.error(
                key.pos,
                format!("a default policy is already defined at {first}"),
            ),
            None => {
                self.default_at = Some(at.clone());
                self.count(file, key, "the default policy");
            }
        }
        let Some(fields) = fields(file, body_node, "the default policy", DEFAULT_KEYS) else {
            return;
        };
        if let Some((match_key, _)) = fields.entry("match") {
            file.error(
                match_key.pos,
                "the default policy applies to the workloads no policy matches; it takes no \
                 `match`",
            );
        }
        let (mode, _, allow) = body(file, body_node, &fields, "the default policy");
        self.set.default = Some(Policy {
            name: DEFAULT_NAME.to_owned(),
            mode,
            matcher: WorkloadMatch::default(),
            allow,
            at,
        });
    }

    /// Counts one more policy, reporting the first one over the limit.
    fn count(&mut self, file: &mut File<'_>, key: &Node, this: &str) {
        self.seen += 1;
        if self.seen == MAX_POLICIES + 1 {
            file.error(
                key.pos,
                format!(
                    "too many policies: {this} is number {}, but the kernel tracks the policies \
                     a workload matches in a {MAX_POLICIES}-bit mask, so at most {MAX_POLICIES} \
                     are allowed, the default policy included",
                    self.seen
                ),
            );
        }
    }
}

/// One file being read: where errors go, and the path they name.
struct File<'a> {
    path: &'a Path,
    errors: Vec<PolicyError>,
}

impl File<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.path.to_owned(),
            line: pos.line,
            column: pos.col,
            message: message.into(),
        });
    }

    fn location(&self, pos: Pos) -> Location {
        Location {
            file: self.path.to_owned(),
            line: pos.line,
            column: pos.col,
        }
    }
}

/// The known entries of a mapping whose keys have been checked.
struct Fields<'n> {
    entries: Vec<(&'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.text() == Some(key))
            .copied()
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, v)| v)
    }
}

/// Checks that `node` is a mapping whose keys are all in `allowed`, each once; returns the
/// entries that passed, or `None` if `node` is not a mapping.
fn fields<'n>(
    file: &mut File<'_>,
    node: &'n Node,
    what: &str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let Some(map) = node.map() else {
        file.error(
            node.pos,
            format!("expected a mapping for {what}, found {}", describe(node)),
        );
        return None;
    };
    let mut entries: Vec<(&Node, &Node)> = Vec::with_capacity(map.len());
    for (key_node, value) in map {
        let Some(key) = key_node.text() else {
            file.error(
                key_node.pos,
                format!("expected a key name, found {}", describe(key_node)),
            );
            continue;
        };
        if let Some((first, _)) = entries.iter().find(|(k, _)| k.text() == Some(key)) {
            file.error(
                key_node.pos,
                format!(
                    "duplicate key `{key}` (first at line {}, column {})",
                    first.pos.line, first.pos.col
                ),
            );
        } else if allowed.contains(&key) {
            entries.push((key_node, value));
        } else {
            file.error(
                key_node.pos,
                format!(
                    "unknown key `{key}` in {what}; expected {}",
                    one_of(allowed)
                ),
            );
        }
    }
    Some(Fields { entries })
}

/// The settings shared by named and default policies.
fn body(
    file: &mut File<'_>,
    node: &Node,
    fields: &Fields<'_>,
    what: &str,
) -> (Mode, WorkloadMatch, Vec<AllowRule>) {
    let mode = fields.get("mode").map_or(Mode::Monitor, |v| mode(file, v));
    let matcher = fields
        .get("match")
        .map(|v| matcher(file, v))
        .unwrap_or_default();
    // Required rather than defaulting to "nothing": an enforcing policy that silently
    // denies everything because its list went missing would be a nasty surprise.
    let allow = match fields.get("allow") {
        Some(v) => allow_list(file, v),
        None => {
            file.error(
                node.pos,
                format!(
                    "{what} has no `allow` list; write `allow: []` to allow nothing but loopback"
                ),
            );
            Vec::new()
        }
    };
    (mode, matcher, allow)
}

fn policy_name(file: &mut File<'_>, node: &Node) -> Option<String> {
    let name = scalar(file, node, "a policy name")?;
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name == DEFAULT_NAME {
        file.error(
            node.pos,
            "`default` is reserved for the default policy; write it as `- default:`, or choose \
             another name",
        );
        None
    } else if !valid {
        file.error(
            node.pos,
            format!(
                "invalid policy name `{name}`: use 1-{MAX_NAME_LEN} letters, digits, `-`, `_` \
                 and `.`"
            ),
        );
        None
    } else {
        Some(name.to_owned())
    }
}

fn mode(file: &mut File<'_>, node: &Node) -> Mode {
    match scalar(file, node, "`monitor` or `enforce`") {
        Some("monitor") | None => Mode::Monitor,
        Some("enforce") => Mode::Enforce,
        Some(other) => {
            file.error(
                node.pos,
                format!("unknown mode `{other}`: expected `monitor` or `enforce`"),
            );
            Mode::Monitor
        }
    }
}

/// A value checker for one match key: the normalized value, or why it is refused.
type Check = fn(&str) -> Result<String, String>;

fn matcher(file: &mut File<'_>, node: &Node) -> WorkloadMatch {
    let mut m = WorkloadMatch::default();
    let Some(fields) = fields(file, node, "`match`", MATCH_KEYS) else {
        return m;
    };
    for (key_node, value) in fields.entries {
        let key = key_node.text().unwrap_or_default();
        let (values, check): (&mut Vec<String>, Check) = match key {
            "container.id" => (&mut m.container_id, container_id),
            "container.name" => (&mut m.container_name, name),
            "container.image.repository" => (&mut m.container_image_repository, repository),
            "k8s.ns.name" => (&mut m.k8s_ns_name, name),
            "k8s.pod.name" => (&mut m.k8s_pod_name, name),
            "proc.name" => (&mut m.proc_name, proc_name),
            _ => (&mut m.cgroup, cgroup),
        };
        let items = match value.seq() {
            Some([]) => {
                // An empty field means "unconstrained" in the model, the opposite of what an
                // empty "any of" list says; refuse rather than pick one.
                file.error(
                    value.pos,
                    format!(
                        "an empty list selects no workload; remove `{key}` to leave it \
                         unconstrained"
                    ),
                );
                continue;
            }
            Some(items) => items,
            None => std::slice::from_ref(value),
        };
        for item in items {
            let Some(text) = scalar(file, item, "a value") else {
                continue;
            };
            match check(text) {
                Ok(v) => values.push(v),
                Err(message) => file.error(item.pos, message),
            }
        }
    }
    m
}

fn container_id(s: &str) -> Result<String, String> {
    if matches!(s.len(), 12 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s[..12].to_ascii_lowercase())
    } else {
        Err(format!(
            "`{s}` is not a container id: expected 12 or 64 hex characters"
        ))
    }
}

fn name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the value is empty".to_owned())
    } else if s.trim() != s {
        Err(format!("`{s}` starts or ends with whitespace"))
    } else {
        Ok(s.to_owned())
    }
}

fn repository(s: &str) -> Result<String, String> {
    let s = name(s)?;
    // A registry host may carry a port (`registry:5000/web`), so only a colon in the last
    // path component is a tag.
    let (dir, last) = s.rsplit_once('/').map_or(("", s.as_str()), |(d, l)| (d, l));
    let bare = |image: &str| {
        if dir.is_empty() {
            image.to_owned()
        } else {
            format!("{dir}/{image}")
        }
    };
    if let Some((image, _)) = last.split_once('@') {
        let image = image.split_once(':').map_or(image, |(i, _)| i);
        return Err(format!(
            "`{s}` includes a digest; `container.image.repository` is the image name alone: \
             `{}`",
            bare(image)
        ));
    }
    if let Some((image, _)) = last.split_once(':') {
        return Err(format!(
            "`{s}` includes a tag; `container.image.repository` is the image name alone: `{}`",
            bare(image)
        ));
    }
    Ok(s)
}

fn proc_name(s: &str) -> Result<String, String> {
    let s = name(s)?;
    if s.starts_with('/') {
        let base = s
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        return Err(format!(
            "`{s}` is a path; `proc.name` is the process name the kernel keeps (`comm`), such \
             as `{}`",
            truncate_comm(base)
        ));
    }
    if s.len() > COMM_LEN {
        return Err(format!(
            "`{s}` is {} bytes long, but the kernel keeps only the first {COMM_LEN} bytes of a \
             process name (`comm`); write `{}`, knowing that it also selects any other process \
             whose name starts with it",
            s.len(),
            truncate_comm(&s)
        ));
    }
    Ok(s)
}

/// `s` cut to what the kernel keeps of a process name (on a character boundary, so that the
/// suggestion is printable).
fn truncate_comm(s: &str) -> &str {
    let end = (0..=COMM_LEN.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}

fn cgroup(s: &str) -> Result<String, String> {
    let path = s.trim_matches('/');
    if path.is_empty() {
        return Err(format!(
            "`{s}` is the cgroup root, which holds every process; remove `cgroup` to leave it \
             unconstrained"
        ));
    }
    if let Some(rel) = path.strip_prefix("sys/fs/cgroup/") {
        return Err(format!(
            "`{s}` includes the cgroup mount point; write the path below it: `{rel}`"
        ));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(format!("`{s}` has an empty path component")),
            "." | ".." => {
                return Err(format!(
                    "`{s}` contains `{component}`; write the path from the cgroup root"
                ));
            }
            c if c.chars().any(char::is_control) => {
                return Err(format!("`{s}` contains a control character"));
            }
            _ => {}
        }
    }
    Ok(path.to_owned())
}

fn allow_list(file: &mut File<'_>, node: &Node) -> Vec<AllowRule> {
    let Some(items) = node.seq() else {
        file.error(
            node.pos,
            format!(
                "expected a list of allowed destinations (`allow: []` for none), found {}",
                describe(node)
            ),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| allow_rule(file, item))
        .collect()
}

fn allow_rule(file: &mut File<'_>, node: &Node) -> Option<AllowRule> {
    let fields = fields(file, node, "an `allow` rule", RULE_KEYS)?;
    let destination = match (fields.entry("cidr"), fields.entry("host")) {
        (Some(_), Some((key, _))) => {
            file.error(
                key.pos,
                "a rule allows either a `cidr` or a `host`, not both; write two rules",
            );
            None
        }
        (Some((_, v)), None) => cidr(file, v).map(Destination::Cidr),
        (None, Some((_, v))) => host(file, v).map(Destination::Host),
        (None, None) => {
            file.error(node.pos, "an `allow` rule needs a `cidr` or a `host`");
            None
        }
    };
    let ports = fields
        .get("ports")
        .map(|v| ports(file, v))
        .unwrap_or_default();
    let protocol = fields
        .get("protocol")
        .and_then(|v| protocol(file, v))
        .unwrap_or_default();
    Some(AllowRule {
        destination: destination?,
        ports,
        protocol,
        at: file.location(node.pos),
    })
}

fn cidr(file: &mut File<'_>, node: &Node) -> Option<IpNet> {
    let text = scalar(file, node, "a CIDR such as `10.0.0.0/8`")?;
    parse_cidr(text).map_err(|e| file.error(node.pos, e)).ok()
}

/// A network, or a bare address as its /32 or /128; host bits must be clear, since a
/// network written with them is more likely a typo than a request for the rounded network.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return if net.addr() == net.network() {
            Ok(net)
        } else {
            Err(format!(
                "`{s}` has host bits set; did you mean `{}`?",
                net.trunc()
            ))
        };
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    if let Some((addr, len)) = s.split_once('/')
        && let Ok(addr) = addr.parse::<IpAddr>()
    {
        let (version, max) = if addr.is_ipv4() { (4, 32) } else { (6, 128) };
        return Err(format!(
            "`{s}` has an invalid prefix length `/{len}`: expected 0-{max} for an IPv{version} \
             address"
        ));
    }
    if s.bytes().any(|b| b.is_ascii_alphabetic()) && s.parse::<HostPattern>().is_ok() {
        return Err(format!(
            "`{s}` is a host name, not a CIDR; write it as `host: {s}`"
        ));
    }
    Err(format!(
        "`{s}` is not a CIDR: expected an address or address/prefix, such as `10.0.0.0/8` or \
         `2001:db8::/32`"
    ))
}

fn host(file: &mut File<'_>, node: &Node) -> Option<HostPattern> {
    let text = scalar(file, node, "a host name such as `api.example.com`")?;
    text.parse()
        .map_err(|e: super::HostPatternError| file.error(node.pos, e.to_string()))
        .ok()
}

fn ports(file: &mut File<'_>, node: &Node) -> Vec<PortRange> {
    let items = match node.seq() {
        Some([]) => {
            file.error(
                node.pos,
                "an empty `ports` list allows no port; remove `ports` to allow every port",
            );
            return Vec::new();
        }
        Some(items) => items,
        None => std::slice::from_ref(node),
    };
    items
        .iter()
        .filter_map(|item| {
            let text = scalar(file, item, "a port or a range such as `8000-8080`")?;
            text.parse::<PortRange>()
                .map_err(|e| file.error(item.pos, e.to_string()))
                .ok()
        })
        .collect()
}

fn protocol(file: &mut File<'_>, node: &Node) -> Option<Protocol> {
    let text = scalar(file, node, "`tcp`, `udp` or `any`")?;
    text.parse::<Protocol>()
        .map_err(|e| file.error(node.pos, e.to_string()))
        .ok()
}

/// The text of a non-null scalar, or an error saying `expected` was wanted.
fn scalar<'n>(file: &mut File<'_>, node: &'n Node, expected: &str) -> Option<&'n str> {
    let text = node.text();
    if text.is_none() {
        file.error(
            node.pos,
            format!("expected {expected}, found {}", describe(node)),
        );
    }
    text
}

/// A node's shape for error messages; long or multi-line text is cut so that the message
/// stays one readable line.
fn describe(node: &Node) -> String {
    const MAX_CHARS: usize = 40;
    match &node.value {
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
        Value::Scalar(_) if node.is_null() => "nothing".to_owned(),
        Value::Scalar(s) => {
            let line = s.text.lines().next().unwrap_or_default();
            let cut: String = line.chars().take(MAX_CHARS).collect();
            let more = if cut.len() < s.text.len() { "…" } else { "" };
            format!("`{cut}{more}`")
        }
    }
}

/// `a`, `a` or `b`, `a`, `b` or `c`...
fn one_of(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

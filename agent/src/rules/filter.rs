//! Compiled conditions and their evaluation. Everything that can be prepared at load time is:
//! string sets, globs, regexes, networks and numbers are built once, so evaluating a check is
//! extraction plus one comparison.

use std::{borrow::Cow, collections::HashSet, net::IpAddr};

use globset::GlobMatcher;
use ipnet::IpNet;
use memchr::memmem;
use regex::Regex;

use super::{
    condition::ast::{Modifier, Op, Transformer},
    fields::{self, FieldArg, FieldDef, Value},
};
use crate::enrich::Enriched;

/// A compiled condition.
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// A comparison.
    Check(Box<CompiledCheck>),
}

impl Filter {
    /// Calls `visit` with every field the condition reads.
    pub fn visit_fields(&self, visit: &mut impl FnMut(&'static FieldDef)) {
        match self {
            Filter::And(items) | Filter::Or(items) => {
                items.iter().for_each(|item| item.visit_fields(visit));
            }
            Filter::Not(inner) => inner.visit_fields(visit),
            Filter::Check(check) => {
                check.lhs.visit_fields(visit);
                if let Matcher::Dynamic(_, rhs) = &check.matcher {
                    rhs.visit_fields(visit);
                }
            }
        }
    }

    /// Evaluates the condition for `event`, short-circuiting left to right.
    pub fn matches(&self, event: &Enriched) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(event)),
            Filter::Or(any) => any.iter().any(|f| f.matches(event)),
            Filter::Not(inner) => !inner.matches(event),
            Filter::Check(check) => check.matches(event),
        }
    }
}

/// A value source: a field, or a transformer over one.
pub enum Operand {
    /// A field with its argument.
    Field(&'static FieldDef, FieldArg),
    /// A transformer applied to an operand.
    Transform(Transformer, Box<Operand>),
}

impl Operand {
    /// Calls `visit` with every field the operand reads.
    pub fn visit_fields(&self, visit: &mut impl FnMut(&'static FieldDef)) {
        match self {
            Operand::Field(def, _) => visit(def),
            Operand::Transform(_, inner) => inner.visit_fields(visit),
        }
    }

    /// Every value of the operand for `event` (empty when it cannot be extracted).
    pub fn values<'a>(&self, event: &'a Enriched) -> Vec<Value<'a>> {
        match self {
            Operand::Field(def, arg) => fields::extract(def, arg, event),
            Operand::Transform(func, inner) => inner
                .values(event)
                .into_iter()
                .filter_map(|value| transform(*func, value))
                .collect(),
        }
    }

    /// The first value, for outputs and `val()`.
    pub fn value<'a>(&self, event: &'a Enriched) -> Option<Value<'a>> {
        match self {
            Operand::Field(def, arg) => fields::extract_one(def, arg, event),
            Operand::Transform(func, inner) => transform(*func, inner.value(event)?),
        }
    }
}

fn transform(func: Transformer, value: Value<'_>) -> Option<Value<'_>> {
    let text = match &value {
        Value::Str(text) => text.as_ref(),
        _ if func == Transformer::Val => return Some(value),
        _ => return None,
    };
    Some(match func {
        Transformer::ToLower => Value::Str(Cow::Owned(text.to_lowercase())),
        Transformer::ToUpper => Value::Str(Cow::Owned(text.to_uppercase())),
        Transformer::Basename => Value::Str(Cow::Owned(
            text.rsplit('/').next().unwrap_or(text).to_string(),
        )),
        Transformer::Len => Value::Int(text.chars().count() as i64),
        Transformer::B64 => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?;
            Value::Str(Cow::Owned(String::from_utf8_lossy(&decoded).into_owned()))
        }
        Transformer::Val => value,
        // Rejected at compile time: the multi-argument transformers are not evaluated.
        Transformer::Join | Transformer::Concat | Transformer::Getopt => return None,
    })
}

/// A check: extract, then compare.
pub struct CompiledCheck {
    /// Left-hand side.
    pub lhs: Operand,
    /// The comparison.
    pub matcher: Matcher,
}

impl CompiledCheck {
    fn matches(&self, event: &Enriched) -> bool {
        let values = self.lhs.values(event);
        // A value that cannot be extracted makes the check false for every operator, `!=`
        // included, as in Falco.
        if values.is_empty() {
            return false;
        }
        match &self.matcher {
            Matcher::Exists => true,
            Matcher::Dynamic(op, rhs) => {
                let Some(right) = rhs.value(event) else {
                    return false;
                };
                values.iter().any(|left| compare_dynamic(*op, left, &right))
            }
            matcher => values.iter().any(|value| matcher.test(value)),
        }
    }
}

/// A prepared comparison against constants.
pub enum Matcher {
    /// `exists`.
    Exists,
    /// A string comparison (boxed: globs and regexes are large).
    Str(Box<StrTest>),
    /// Several string tests combined by a modifier.
    Modified(Modifier, Vec<StrTest>),
    /// A numeric comparison.
    Int(Op, i64),
    /// Numeric set membership.
    IntIn(Vec<i64>),
    /// Boolean equality (`negate` for `!=`).
    Bool {
        /// The constant.
        value: bool,
        /// `!=` rather than `=`.
        negate: bool,
    },
    /// Address or network membership (`negate` for `!=`).
    Net {
        /// Networks (a plain address is a /32 or /128).
        nets: Vec<IpNet>,
        /// `!=` rather than `=`/`in`.
        negate: bool,
    },
    /// Byte-string comparison.
    Bytes(Op, Vec<u8>),
    /// Comparison with another operand (`val(...)` or a transformer).
    Dynamic(Op, Box<Operand>),
}

impl Matcher {
    pub(crate) fn test(&self, value: &Value<'_>) -> bool {
        match (self, value) {
            (Matcher::Str(test), Value::Str(text)) => test.test(text),
            (Matcher::Modified(modifier, tests), Value::Str(text)) => {
                let hits = tests.iter().filter(|t| t.test(text)).count();
                match modifier {
                    Modifier::AnyOf => hits > 0,
                    Modifier::AllOf => hits == tests.len(),
                    Modifier::OneOf => hits == 1,
                }
            }
            (Matcher::Int(op, constant), Value::Int(number)) => compare_ord(*op, number, constant),
            (Matcher::IntIn(set), Value::Int(number)) => set.contains(number),
            (Matcher::Bool { value, negate }, Value::Bool(flag)) => (flag == value) != *negate,
            (Matcher::Net { nets, negate }, Value::Ip(ip)) => {
                nets.iter().any(|net| net.contains(ip)) != *negate
            }
            (Matcher::Bytes(op, needle), Value::Bytes(bytes)) => match op {
                Op::BContains | Op::Contains => memmem::find(bytes, needle).is_some(),
                Op::BStartsWith | Op::StartsWith => bytes.starts_with(needle),
                Op::EndsWith => bytes.ends_with(needle),
                Op::Eq => bytes.as_ref() == needle.as_slice(),
                Op::Ne => bytes.as_ref() != needle.as_slice(),
                _ => false,
            },
            // A string test against a number or an address compares the rendering.
            (Matcher::Str(test), other) => test.test(&other.render()),
            _ => false,
        }
    }
}

fn compare_ord<T: Ord>(op: Op, left: T, right: T) -> bool {
    match op {
        Op::Eq | Op::In | Op::Intersects => left == right,
        Op::Ne => left != right,
        Op::Lt => left < right,
        Op::Le => left <= right,
        Op::Gt => left > right,
        Op::Ge => left >= right,
        _ => false,
    }
}

fn compare_dynamic(op: Op, left: &Value<'_>, right: &Value<'_>) -> bool {
    match (left, right) {
        (Value::Int(a), Value::Int(b)) => compare_ord(op, a, b),
        (Value::Bool(a), Value::Bool(b)) => compare_ord(op, a, b),
        (Value::Ip(a), Value::Ip(b)) => compare_ord(op, a, b),
        (left, right) => {
            let (a, b) = (left.render(), right.render());
            match op {
                Op::Contains => a.contains(&b),
                Op::IContains => a.to_lowercase().contains(&b.to_lowercase()),
                Op::StartsWith => a.starts_with(&b),
                Op::EndsWith => a.ends_with(&b),
                _ => compare_ord(op, a.as_str(), b.as_str()),
            }
        }
    }
}

/// One prepared string comparison.
pub enum StrTest {
    /// `=`.
    Eq(String),
    /// `!=`.
    Ne(String),
    /// `<`, `<=`, `>`, `>=` (byte-wise, like strcmp).
    Ord(Op, String),
    /// `contains`.
    Contains(memmem::Finder<'static>),
    /// `icontains` (needle lower-cased).
    IContains(String),
    /// `startswith`.
    StartsWith(String),
    /// `endswith`.
    EndsWith(String),
    /// `glob`/`iglob`.
    Glob(GlobMatcher),
    /// `regex`, fully anchored.
    Regex(Regex),
    /// `in`/`intersects` over a small list.
    InList(Vec<String>),
    /// `in`/`intersects` over a large list.
    InSet(HashSet<String>),
    /// `pmatch`: the value is a path under one of the prefixes.
    PMatch(Vec<PathPrefix>),
}

impl StrTest {
    /// Whether `text` passes.
    pub fn test(&self, text: &str) -> bool {
        match self {
            StrTest::Eq(constant) => text == constant,
            StrTest::Ne(constant) => text != constant,
            StrTest::Ord(op, constant) => compare_ord(*op, text, constant.as_str()),
            StrTest::Contains(finder) => finder.find(text.as_bytes()).is_some(),
            StrTest::IContains(needle) => text.to_lowercase().contains(needle.as_str()),
            StrTest::StartsWith(prefix) => text.starts_with(prefix.as_str()),
            StrTest::EndsWith(suffix) => text.ends_with(suffix.as_str()),
            StrTest::Glob(glob) => glob.is_match(text),
            StrTest::Regex(regex) => regex.is_match(text),
            StrTest::InList(list) => list.iter().any(|item| item == text),
            StrTest::InSet(set) => set.contains(text),
            StrTest::PMatch(prefixes) => prefixes.iter().any(|prefix| prefix.matches(text)),
        }
    }
}

/// A `pmatch` entry: path components, each a literal or a glob that does not cross `/`.
pub struct PathPrefix {
    components: Vec<Component>,
}

enum Component {
    Literal(String),
    Glob(GlobMatcher),
}

impl PathPrefix {
    /// Prepares a prefix such as `/etc` or `/home/*/.ssh`.
    pub fn new(prefix: &str) -> Result<PathPrefix, globset::Error> {
        let mut components = Vec::new();
        for part in prefix.split('/').filter(|p| !p.is_empty()) {
            if part.contains(['*', '?', '[']) {
                let glob = globset::GlobBuilder::new(part)
                    .literal_separator(true)
                    .build()?
                    .compile_matcher();
                components.push(Component::Glob(glob));
            } else {
                components.push(Component::Literal(part.to_string()));
            }
        }
        Ok(PathPrefix { components })
    }

    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        self.components.iter().all(|component| match parts.next() {
            Some(part) => match component {
                Component::Literal(literal) => literal == part,
                Component::Glob(glob) => glob.is_match(part),
            },
            None => false,
        })
    }
}

/// Whether `ip` is in a network given as text (an address or CIDR).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmatch_is_component_wise() {
        let prefix = PathPrefix::new("/etc/ssh").unwrap();
        assert!(prefix.matches("/etc/ssh/sshd_config"));
        assert!(prefix.matches("/etc/ssh"));
        assert!(!prefix.matches("/etc/sshd"));
        let globbed = PathPrefix::new("/home/*/.ssh").unwrap();
        assert!(globbed.matches("/home/alice/.ssh/authorized_keys"));
        assert!(!globbed.matches("/home/alice/bob/.ssh"));
    }

    #[test]
    fn string_tests() {
        assert!(StrTest::Eq("bash".into()).test("bash"));
        assert!(StrTest::Ord(Op::Lt, "b".into()).test("a"));
        assert!(StrTest::IContains("shadow".into()).test("/etc/SHADOW"));
        assert!(StrTest::Contains(memmem::Finder::new("ssh").into_owned()).test("/etc/ssh/x"));
        let glob = globset::GlobBuilder::new("/proc/*/environ")
            .literal_separator(false)
            .build()
            .unwrap()
            .compile_matcher();
        assert!(
            StrTest::Glob(glob).test("/proc/1/2/environ"),
            "* crosses / like fnmatch"
        );
    }

    #[test]
    fn networks() {
        let nets = vec![parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()];
        let matcher = Matcher::Net {
            nets,
            negate: false,
        };
        assert!(matcher.test(&Value::Ip("10.1.2.3".parse().unwrap())));
        assert!(matcher.test(&Value::Ip("::1".parse().unwrap())));
        assert!(!matcher.test(&Value::Ip("11.0.0.1".parse().unwrap())));
        assert!(parse_net("not-an-ip").is_none());
    }
}

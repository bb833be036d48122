//! Condition syntax trees to [`Filter`]s: fields resolved, operator/type compatibility checked
//! and constants prepared, all at load time, with errors that point at the offending token.

use std::collections::HashSet;

use globset::GlobBuilder;
use memchr::memmem;
use regex::Regex;

use super::{
    condition::ast::{self, Check, Expr, Op, Pos, Rhs, Transformer},
    evttypes,
    fields::{self, FieldError, FieldType},
    filter::{CompiledCheck, Filter, Matcher, Operand, PathPrefix, StrTest, parse_net},
};

/// Lists longer than this are matched through a hash set.
const SET_THRESHOLD: usize = 8;

/// A condition that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
    /// The error is an unknown or unsupported field or event type (what
    /// `skip-if-unknown-filter` downgrades to a warning).
    pub unknown_filter: bool,
}

impl CompileError {
    fn at(pos: Pos, message: impl Into<String>) -> CompileError {
        CompileError {
            message: message.into(),
            pos,
            unknown_filter: false,
        }
    }

    fn unknown(pos: Pos, message: impl Into<String>) -> CompileError {
        CompileError {
            unknown_filter: true,
            ..CompileError::at(pos, message)
        }
    }
}

/// Compiles a macro-expanded condition.
pub fn compile(expr: &Expr) -> Result<Filter, CompileError> {
    match expr {
        Expr::And(items, _) => Ok(Filter::And(
            items.iter().map(compile).collect::<Result<_, _>>()?,
        )),
        Expr::Or(items, _) => Ok(Filter::Or(
            items.iter().map(compile).collect::<Result<_, _>>()?,
        )),
        Expr::Not(inner, _) => Ok(Filter::Not(Box::new(compile(inner)?))),
        Expr::Macro(name, pos) => Err(CompileError::at(
            *pos,
            format!("Undefined macro '{name}' used in filter."),
        )),
        Expr::Check(check) => compile_check(check).map(|c| Filter::Check(Box::new(c))),
    }
}

/// Compiles an operand (a field or a transformer) and returns its type.
pub fn compile_operand(
    operand: &ast::Operand,
) -> Result<(Operand, FieldType, String), CompileError> {
    match operand {
        ast::Operand::Field(field) => {
            let (def, arg) =
                fields::lookup(&field.name, field.arg.as_deref()).map_err(|error| {
                    let message = error.to_string();
                    match error {
                        FieldError::BadArg { .. } => CompileError::at(field.pos, message),
                        _ => CompileError::unknown(field.pos, message),
                    }
                })?;
            let name = match &field.arg {
                Some(arg) => format!("{}[{arg}]", field.name),
                None => field.name.clone(),
            };
            Ok((Operand::Field(def, arg), def.ty, name))
        }
        ast::Operand::Transform {
            func, args, pos, ..
        } => {
            let [ast::TransformArg::Operand(inner)] = args.as_slice() else {
                return Err(CompileError::at(
                    *pos,
                    format!("transformer {func:?} with these arguments is not supported"),
                ));
            };
            let (inner, ty, name) = compile_operand(inner)?;
            let out = match func {
                Transformer::ToLower
                | Transformer::ToUpper
                | Transformer::Basename
                | Transformer::B64 => FieldType::Str,
                Transformer::Len => FieldType::Int,
                Transformer::Val => ty,
                Transformer::Join | Transformer::Concat | Transformer::Getopt => {
                    return Err(CompileError::at(
                        *pos,
                        format!("transformer {func:?} is not supported yet"),
                    ));
                }
            };
            if *func != Transformer::Val && ty != FieldType::Str {
                return Err(CompileError::at(
                    *pos,
                    format!("transformer {func:?} needs a string field, '{name}' is not one"),
                ));
            }
            Ok((Operand::Transform(*func, Box::new(inner)), out, name))
        }
    }
}

fn supported(ty: FieldType, op: Op) -> bool {
    use Op::*;
    match ty {
        FieldType::Int => matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | Intersects | Exists),
        FieldType::Bool | FieldType::Ip | FieldType::IpNet => {
            matches!(op, Eq | Ne | In | Intersects | Exists)
        }
        FieldType::Str => !matches!(op, BContains | BStartsWith),
        FieldType::Bytes => matches!(
            op,
            Eq | Ne
                | Contains
                | In
                | Exists
                | StartsWith
                | EndsWith
                | Intersects
                | BContains
                | BStartsWith
        ),
    }
}

fn compile_check(check: &Check) -> Result<CompiledCheck, CompileError> {
    let (lhs, ty, name) = compile_operand(&check.lhs)?;
    if !supported(ty, check.op) {
        return Err(CompileError::at(
            check.pos,
            format!(
                "'{}' operator not supported for {} field '{name}'",
                check.op.as_str(),
                ty.name()
            ),
        ));
    }
    if is_event_type(&check.lhs) {
        validate_event_types(check)?;
    }
    if name.ends_with("ip.name") {
        // Only the names rules mention are ever resolved.
        for value in constants(&check.rhs) {
            super::dns::global().watch(&value.text);
        }
    }
    let matcher = match (&check.rhs, check.op) {
        (Rhs::None, Op::Exists) => Matcher::Exists,
        (Rhs::None, _) => return Err(CompileError::at(check.pos, "missing value")),
        (Rhs::Operand(rhs), op) => {
            if matches!(op, Op::PMatch | Op::Regex) || ty == FieldType::IpNet {
                return Err(CompileError::at(
                    check.pos,
                    format!("'{}' cannot compare with another field", op.as_str()),
                ));
            }
            let (rhs, _, _) = compile_operand(rhs)?;
            Matcher::Dynamic(op, Box::new(rhs))
        }
        (Rhs::ListName(list, pos), _) => {
            return Err(CompileError::at(*pos, format!("unknown list '{list}'")));
        }
        (rhs, op) => {
            let values = constants(rhs);
            match check.modifier {
                Some(modifier) => {
                    if ty != FieldType::Str {
                        return Err(CompileError::at(
                            check.pos,
                            format!("modifiers apply to string fields, '{name}' is not one"),
                        ));
                    }
                    let tests = values
                        .iter()
                        .map(|v| str_test(op, std::slice::from_ref(v), check.pos))
                        .collect::<Result<_, _>>()?;
                    Matcher::Modified(modifier, tests)
                }
                None => typed_matcher(ty, op, &values, &name, check.pos)?,
            }
        }
    };
    Ok(CompiledCheck { lhs, matcher })
}

fn is_event_type(operand: &ast::Operand) -> bool {
    matches!(operand, ast::Operand::Field(f) if f.name == "evt.type" && f.arg.is_none())
}

fn validate_event_types(check: &Check) -> Result<(), CompileError> {
    for value in constants(&check.rhs) {
        if !evttypes::is_known(&value.text) {
            return Err(CompileError::unknown(
                value.pos,
                format!("unknown event type {}", value.text),
            ));
        }
    }
    Ok(())
}

fn constants(rhs: &Rhs) -> Vec<ast::Value> {
    match rhs {
        Rhs::Value(value) => vec![value.clone()],
        Rhs::List(values, _) => values.clone(),
        _ => Vec::new(),
    }
}

fn typed_matcher(
    ty: FieldType,
    op: Op,
    values: &[ast::Value],
    name: &str,
    pos: Pos,
) -> Result<Matcher, CompileError> {
    let single = || {
        values
            .first()
            .ok_or_else(|| CompileError::at(pos, "missing value"))
    };
    Ok(match ty {
        FieldType::Str => Matcher::Str(Box::new(str_test(op, values, pos)?)),
        FieldType::Int => {
            let numbers = values
                .iter()
                .map(|v| parse_int(&v.text).ok_or_else(|| not_a(v, "number", name)))
                .collect::<Result<Vec<_>, _>>()?;
            match op {
                Op::In | Op::Intersects => Matcher::IntIn(numbers),
                _ => Matcher::Int(
                    op,
                    numbers
                        .first()
                        .copied()
                        .ok_or_else(|| CompileError::at(pos, "missing value"))?,
                ),
            }
        }
        FieldType::Bool => {
            let value = single()?;
            let flag = match value.text.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(not_a(value, "boolean (true or false)", name)),
            };
            Matcher::Bool {
                value: flag,
                negate: op == Op::Ne,
            }
        }
        FieldType::Ip | FieldType::IpNet => {
            let nets = values
                .iter()
                .map(|v| parse_net(&v.text).ok_or_else(|| not_a(v, "IP address or network", name)))
                .collect::<Result<Vec<_>, _>>()?;
            Matcher::Net {
                nets,
                negate: op == Op::Ne,
            }
        }
        FieldType::Bytes => {
            let value = single()?;
            let bytes = if matches!(op, Op::BContains | Op::BStartsWith) {
                decode_hex(&value.text).ok_or_else(|| not_a(value, "hex string", name))?
            } else {
                value.text.as_bytes().to_vec()
            };
            Matcher::Bytes(op, bytes)
        }
    })
}

fn not_a(value: &ast::Value, what: &str, field: &str) -> CompileError {
    CompileError::at(
        value.pos,
        format!("'{}' is not a valid {what} for field '{field}'", value.text),
    )
}

fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f as i64))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn str_test(op: Op, values: &[ast::Value], pos: Pos) -> Result<StrTest, CompileError> {
    let first = || {
        values
            .first()
            .map(|v| v.text.clone())
            .ok_or_else(|| CompileError::at(pos, "missing value"))
    };
    Ok(match op {
        Op::Eq => StrTest::Eq(first()?),
        Op::Ne => StrTest::Ne(first()?),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => StrTest::Ord(op, first()?),
        Op::Contains => StrTest::Contains(memmem::Finder::new(first()?.as_bytes()).into_owned()),
        Op::IContains => StrTest::IContains(first()?.to_lowercase()),
        Op::StartsWith => StrTest::StartsWith(first()?),
        Op::EndsWith => StrTest::EndsWith(first()?),
        Op::Glob | Op::IGlob => {
            let pattern = first()?;
            let glob = GlobBuilder::new(&pattern)
                // fnmatch(3) without FNM_PATHNAME: `*` crosses `/`.
                .literal_separator(false)
                .case_insensitive(op == Op::IGlob)
                .build()
                .map_err(|e| CompileError::at(pos, format!("invalid glob '{pattern}': {e}")))?;
            StrTest::Glob(glob.compile_matcher())
        }
        Op::Regex => {
            let pattern = first()?;
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                CompileError::at(pos, format!("invalid regex pattern '{pattern}': {e}"))
            })?;
            StrTest::Regex(regex)
        }
        Op::In | Op::Intersects => {
            let items: Vec<String> = values.iter().map(|v| v.text.clone()).collect();
            if items.len() > SET_THRESHOLD {
                StrTest::InSet(items.into_iter().collect::<HashSet<_>>())
            } else {
                StrTest::InList(items)
            }
        }
        Op::PMatch => StrTest::PMatch(
            values
                .iter()
                .map(|v| {
                    PathPrefix::new(&v.text).map_err(|e| {
                        CompileError::at(v.pos, format!("invalid pmatch path '{}': {e}", v.text))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Op::BContains | Op::BStartsWith | Op::Exists => {
            return Err(CompileError::at(
                pos,
                format!("'{}' is not a string comparison", op.as_str()),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        enrich::Enriched,
        events::{decode::decode, synth::RecordBuilder, syscalls::Syscall},
        rules::condition::parser::parse,
    };

    fn event(record: RecordBuilder) -> Enriched {
        crate::testing::detached_enricher().enrich(decode(&record.build()).unwrap())
    }

    fn open_shadow() -> Enriched {
        event(
            RecordBuilder::new(Syscall::Openat, 42, 3)
                .comm("cat")
                .arg(0, -100i64 as u64)
                .arg(2, (libc::O_RDONLY | libc::O_CLOEXEC) as u64)
                .string(0, "/etc/shadow"),
        )
    }

    fn check(condition: &str, event: &Enriched) -> bool {
        let expr = parse(condition).unwrap_or_else(|e| panic!("{condition}: {e:?}"));
        compile(&expr)
            .unwrap_or_else(|e| panic!("{condition}: {e:?}"))
            .matches(event)
    }

    #[test]
    fn evaluates_falco_style_conditions() {
        let e = open_shadow();
        for (condition, expected) in [
            ("evt.type = openat", true),
            ("evt.type in (open, openat, openat2)", true),
            ("evt.type != openat", false),
            ("fd.name = /etc/shadow", true),
            ("fd.name startswith /etc and fd.directory = /etc", true),
            ("fd.filename in (shadow, passwd)", true),
            ("fd.name pmatch (/etc)", true),
            ("fd.name pmatch (/usr)", false),
            ("fd.name glob '/e*/sha?ow'", true),
            ("fd.name regex '/etc/(shadow|gshadow)'", true),
            ("fd.name regex 'etc'", false),
            ("fd.name contains shad and fd.name icontains SHADOW", true),
            ("evt.arg.flags contains O_RDONLY", true),
            (
                "evt.is_open_read = true and evt.is_open_write = false",
                true,
            ),
            ("fd.num >= 0 and fd.num < 4", true),
            ("fd.num in (1, 2, 3)", true),
            ("evt.res = SUCCESS and evt.rawres = 3", true),
            ("proc.name = cat and not proc.name in (bash, sh)", true),
            ("fd.typechar = f and fd.type = file", true),
            ("fd.name startswith anyof (/usr, /etc)", true),
            ("fd.name startswith allof (/usr, /etc)", false),
            ("fd.name startswith oneof (/e, /etc)", false),
            ("tolower(proc.name) = cat", true),
            ("proc.name = val(proc.name)", true),
            ("container.id = host", true),
            // Missing values make every comparison false, `!=` included.
            ("fd.sip != 1.2.3.4", false),
            ("not fd.sip exists", true),
            ("proc.pname exists", false),
        ] {
            assert_eq!(check(condition, &e), expected, "{condition}");
        }
    }

    #[test]
    fn a_failed_open_names_the_file_it_tried_as_falco_does() {
        let e = event(
            RecordBuilder::new(Syscall::Openat, 42, -(libc::ENOENT as i64))
                .comm("cat")
                .arg(0, -100i64 as u64)
                .string(0, "/etc/../etc/missing"),
        );
        for (condition, expected) in [
            // Falco's `open_file_failed` macro.
            (
                "evt.type in (open,openat,openat2) and fd.typechar='f' and fd.num=-1 \
                 and evt.res startswith E",
                true,
            ),
            ("fd.num >= 0", false),
            ("fd.name = /etc/missing and fd.directory = /etc", true),
            ("fd.nameraw glob '*../*'", true),
            // Falco does not recover the file name of a failed open.
            ("fd.filename exists", false),
            ("fd.sip exists", false),
        ] {
            assert_eq!(check(condition, &e), expected, "{condition}");
        }
    }

    #[test]
    fn buffers_compare_as_bytes() {
        let e = event(
            RecordBuilder::new(Syscall::Recvfrom, 7, 8)
                .arg(0, 3)
                .buffer(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0x34]),
        );
        assert!(check("evt.buffer bcontains cafebabe", &e));
        assert!(check("evt.buffer bstartswith cafe", &e));
        assert!(!check("evt.buffer bcontains deadbeef", &e));
        assert!(!check("evt.buffer bcontains cafebabe", &open_shadow()));
    }

    #[test]
    fn sockets_compare_against_networks() {
        let e = event(
            RecordBuilder::new(Syscall::Socket, 7, 3)
                .arg(0, libc::AF_INET as u64)
                .arg(1, libc::SOCK_STREAM as u64),
        );
        assert!(check("evt.type = socket and evt.arg.domain = AF_INET", &e));
    }

    #[test]
    fn rejects_bad_conditions_at_their_position() {
        for (condition, message, col) in [
            ("proc.nosuch = x", "unknown field 'proc.nosuch'", 1),
            (
                "proc.name = x and evt.type = opnat",
                "unknown event type opnat",
                30,
            ),
            ("fd.num = abc", "not a valid number", 10),
            (
                "proc.name bcontains 00",
                "'bcontains' operator not supported",
                1,
            ),
            ("fd.name regex '('", "invalid regex pattern", 1),
            ("evt.arg.nosuch = 1", "unknown event argument", 1),
            ("evt.is_open_read = maybe", "not a valid boolean", 20),
        ] {
            let expr = parse(condition).unwrap();
            let Err(error) = compile(&expr) else {
                panic!("{condition} compiled");
            };
            assert!(
                error.message.contains(message),
                "{condition}: {}",
                error.message
            );
            assert_eq!(error.pos.col, col, "{condition}: {}", error.message);
        }
    }
}

//! Loader tests: a corpus of broken rules files with exact diagnostics, feature tests, and
//! the real falcosecurity/rules files.

mod errors;
mod features;
mod real_files;
mod units;

use super::{Diagnostic, LoadResult, Severity, Source, load};
use crate::rules::condition::ast::{Expr, Operand, Rhs, Value};

/// Loads one file called `test.yaml`.
fn load_one(text: &str) -> LoadResult {
    load(&[source("test.yaml", text)])
}

fn source(name: &str, text: &str) -> Source {
    Source {
        name: name.to_string(),
        text: text.to_string(),
    }
}

/// The only diagnostic with `code`, checked for severity, line, column and item.
#[track_caller]
fn expect(
    result: &LoadResult,
    severity: Severity,
    code: &str,
    line: u32,
    column: u32,
    item: Option<&str>,
) -> Diagnostic {
    let found: Vec<&Diagnostic> = result
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {code}, got: {:#?}",
        result.diagnostics
    );
    let d = found[0];
    assert_eq!(
        (d.severity, d.line, d.column, d.item.as_deref()),
        (severity, line, column, item),
        "{d}"
    );
    d.clone()
}

/// Asserts the result has exactly one error and returns it, checked like [`expect`].
#[track_caller]
fn only_error(
    result: &LoadResult,
    code: &str,
    line: u32,
    column: u32,
    item: Option<&str>,
) -> Diagnostic {
    let errors: Vec<&Diagnostic> = result.errors().collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error: {:#?}",
        result.diagnostics
    );
    expect(result, Severity::Error, code, line, column, item)
}

/// Asserts the result has no diagnostics at all.
#[track_caller]
fn clean(result: &LoadResult) {
    assert!(
        result.diagnostics.is_empty(),
        "unexpected diagnostics: {:#?}",
        result.diagnostics
    );
}

/// The rule called `name`.
#[track_caller]
fn rule<'r>(result: &'r LoadResult, name: &str) -> &'r super::Rule {
    result
        .rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name}: {:#?}", result.diagnostics))
}

/// Renders a condition compactly: n-ary nodes parenthesised, values quoted when they were.
fn show(expr: &Expr) -> String {
    match expr {
        Expr::And(children, _) => join(children, " and "),
        Expr::Or(children, _) => join(children, " or "),
        Expr::Not(child, _) => format!("not {}", show(child)),
        Expr::Macro(name, _) => format!("<macro {name}>"),
        Expr::Check(check) => {
            let lhs = match &check.lhs {
                Operand::Field(f) => match &f.arg {
                    Some(arg) => format!("{}[{arg}]", f.name),
                    None => f.name.clone(),
                },
                Operand::Transform { .. } => "<transform>".to_string(),
            };
            let rhs = match &check.rhs {
                Rhs::None => String::new(),
                Rhs::Value(v) => format!(" {}", value(v)),
                Rhs::List(values, _) => {
                    format!(
                        " ({})",
                        values.iter().map(value).collect::<Vec<_>>().join(", ")
                    )
                }
                Rhs::ListName(name, _) => format!(" {name}"),
                Rhs::Operand(_) => " <operand>".to_string(),
            };
            format!("{lhs} {}{rhs}", check.op.as_str())
        }
    }
}

fn join(children: &[Expr], sep: &str) -> String {
    let parts: Vec<String> = children.iter().map(show).collect();
    format!("({})", parts.join(sep))
}

fn value(v: &Value) -> String {
    if v.quoted {
        format!("\"{}\"", v.text)
    } else {
        v.text.clone()
    }
}

/// Whether any macro reference is left.
fn has_macro(expr: &Expr) -> bool {
    match expr {
        Expr::And(children, _) | Expr::Or(children, _) => children.iter().any(has_macro),
        Expr::Not(child, _) => has_macro(child),
        Expr::Macro(..) => true,
        Expr::Check(_) => false,
    }
}

/// A complete rule item with the given condition (block scalar, 4-space indent).
fn rule_item(name: &str, condition: &str) -> String {
    format!("- rule: {name}\n  desc: d\n  condition: {condition}\n  output: o\n  priority: INFO\n")
}

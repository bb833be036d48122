//! The maintained falcosecurity/rules files must load unchanged, standalone and together.

use std::path::PathBuf;

use super::{has_macro, rule, source};
use crate::rules::condition::ast::{Expr, Pos};
use crate::rules::loader::{LoadResult, Source, load};

const FILES: [(&str, usize); 3] = [
    ("falco_rules.yaml", 25),
    ("falco-incubating_rules.yaml", 31),
    ("falco-sandbox_rules.yaml", 37),
];

/// `$VIGIL_FALCO_RULES_DIR`, else the repository's `shared/falco-rules`. Missing files fail
/// the test: passing without having loaded them would prove nothing.
fn rules_dir() -> PathBuf {
    std::env::var_os("VIGIL_FALCO_RULES_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules"),
        PathBuf::from,
    )
}

fn read(name: &str) -> Source {
    let path = rules_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set VIGIL_FALCO_RULES_DIR to the directory holding the falcosecurity/rules files",
            path.display()
        )
    });
    source(&path.display().to_string(), &text)
}

#[track_caller]
fn assert_loaded(result: &LoadResult, rules: usize) {
    assert!(
        result.diagnostics.is_empty(),
        "diagnostics: {:#?}",
        result.diagnostics
    );
    assert_eq!(result.rules.len(), rules);
    assert_eq!(result.required_engine_version.as_deref(), Some("0.57.0"));
    for r in &result.rules {
        assert!(!has_macro(&r.condition), "macro left in rule '{}'", r.name);
    }
}

#[test]
fn each_file_loads_standalone() {
    for (name, rules) in FILES {
        let result = load(&[read(name)]);
        assert_loaded(&result, rules);
    }
}

#[test]
fn all_files_load_together() {
    let sources: Vec<Source> = FILES.iter().map(|(name, _)| read(name)).collect();
    let result = load(&sources);
    assert_loaded(&result, FILES.iter().map(|(_, n)| n).sum());
    assert_eq!(
        result.rules.iter().filter(|r| !r.enabled).count(),
        12,
        "sandbox disables 12 rules"
    );
}

#[test]
fn positions_point_into_the_files() {
    let file = read("falco_rules.yaml");
    let lines: Vec<&str> = file.text.lines().collect();
    let result = load(std::slice::from_ref(&file));
    let r = rule(&result, "Terminal shell in container");
    assert_eq!(
        lines[r.pos.line as usize - 1],
        "- rule: Terminal shell in container"
    );
    // The condition starts with `spawned_process`, whose body is `(evt.type in (...))`.
    let first = first_check(&r.condition);
    let line = lines[first.line as usize - 1];
    let col = first.col as usize - 1;
    assert!(
        line[col..].starts_with("evt.type in (execve, execveat)"),
        "{first:?}: {line}"
    );
    let macro_line = lines
        .iter()
        .position(|l| *l == "- macro: spawned_process")
        .map(|i| i + 2);
    assert_eq!(Some(first.line as usize), macro_line);
    let output_line = lines[r.output_pos.line as usize - 1];
    assert!(
        output_line[r.output_pos.col as usize - 1..].starts_with("A shell was spawned"),
        "{output_line}"
    );
}

fn first_check(expr: &Expr) -> Pos {
    match expr {
        Expr::And(children, _) | Expr::Or(children, _) => first_check(&children[0]),
        Expr::Not(child, _) => first_check(child),
        Expr::Macro(_, pos) => *pos,
        Expr::Check(check) => check.pos,
    }
}

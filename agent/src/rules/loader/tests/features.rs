//! What loads: lists, macros, overrides, exceptions, several files.

use super::{clean, expect, has_macro, load_one, rule, rule_item, show, source};
use crate::rules::condition::ast::{Expr, Pos, Rhs};
use crate::rules::loader::{Priority, Severity, codes, load};

fn list_values(expr: &Expr) -> Vec<(String, bool)> {
    match expr {
        Expr::Check(check) => match &check.rhs {
            Rhs::List(values, _) => values.iter().map(|v| (v.text.clone(), v.quoted)).collect(),
            other => panic!("not a list: {other:?}"),
        },
        other => panic!("not a check: {other:?}"),
    }
}

#[test]
fn nested_lists_are_expanded_and_substituted() {
    let text = format!(
        "- list: a\n  items: [x, \"y z\"]\n- list: b\n  items: [a, w]\n- list: c\n  items: [b, v, 7]\n{}",
        rule_item("r", "proc.name in (c)")
    );
    let result = load_one(&text);
    clean(&result);
    let values = list_values(&rule(&result, "r").condition);
    let expected = [
        ("x", false),
        ("y z", true),
        ("w", false),
        ("v", false),
        ("7", false),
    ];
    assert_eq!(values, expected.map(|(t, q)| (t.to_string(), q)));
}

#[test]
fn list_items_already_quoted_are_kept() {
    let text = format!(
        "- list: l\n  items: ['\"(systemd)\"', \"'a b'\", plain]\n{}",
        rule_item("r", "proc.name in (l)")
    );
    let result = load_one(&text);
    clean(&result);
    let values = list_values(&rule(&result, "r").condition);
    let expected = [("(systemd)", true), ("a b", true), ("plain", false)];
    assert_eq!(values, expected.map(|(t, q)| (t.to_string(), q)));
}

#[test]
fn empty_list_eats_a_comma() {
    let text = format!(
        "- list: empty\n  items: []\n{}{}{}",
        rule_item("left", "proc.name in (a1, empty)"),
        rule_item("right", "proc.name in (empty, a1)"),
        rule_item("alone", "proc.name in (empty)")
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(show(&rule(&result, "left").condition), "proc.name in (a1)");
    assert_eq!(show(&rule(&result, "right").condition), "proc.name in (a1)");
    assert_eq!(show(&rule(&result, "alone").condition), "proc.name in ()");
}

#[test]
fn list_names_are_only_substituted_when_delimited() {
    let text = format!(
        "- list: sh\n  items: [zsh]\n{}",
        rule_item(
            "r",
            "proc.name in (bash, sh) and proc.pname = sh_like and proc.args contains \"-sh\""
        )
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(proc.name in (bash, zsh) and proc.pname = sh_like and proc.args contains \"-sh\")"
    );
}

#[test]
fn substituted_values_point_at_the_list_name() {
    let text = format!(
        "- list: shells\n  items: [bash, zsh]\n{}",
        rule_item("r", "proc.name in (shells)")
    );
    let result = load_one(&text);
    let Expr::Check(check) = &rule(&result, "r").condition else {
        panic!("not a check");
    };
    let Rhs::List(values, _) = &check.rhs else {
        panic!("not a list");
    };
    // Line 5: `  condition: proc.name in (shells)`, the name starts at column 28.
    let at = Pos {
        source: 0,
        line: 5,
        col: 28,
    };
    assert!(values.iter().all(|v| v.pos == at), "{values:?}");
    assert_eq!(
        check.pos,
        Pos {
            source: 0,
            line: 5,
            col: 14
        }
    );
}

#[test]
fn macros_are_expanded_away() {
    let text = format!(
        "- macro: spawned\n  condition: evt.type in (execve, execveat)\n- macro: shell\n  condition: spawned and proc.name = bash\n{}",
        rule_item("r", "shell and not proc.pname = sshd")
    );
    let result = load_one(&text);
    clean(&result);
    let condition = &rule(&result, "r").condition;
    assert!(!has_macro(condition));
    assert_eq!(
        show(condition),
        "((evt.type in (execve, execveat) and proc.name = bash) and not proc.pname = sshd)"
    );
    // Expanded nodes keep their own positions: the macro body's line.
    let Expr::And(parts, _) = condition else {
        panic!("not an and");
    };
    let Expr::And(inner, _) = &parts[0] else {
        panic!("not an and");
    };
    assert_eq!(
        inner[0].pos(),
        Pos {
            source: 0,
            line: 2,
            col: 14
        }
    );
}

#[test]
fn rules_see_macros_defined_after_them() {
    let text = format!(
        "{}- macro: later\n  condition: evt.type = open\n",
        rule_item("r", "later")
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(show(&rule(&result, "r").condition), "evt.type = open");
}

#[test]
fn redefined_macro_keeps_its_slot_but_sees_newer_macros() {
    let text = format!(
        "- macro: a\n  condition: evt.type = open\n- macro: b\n  condition: proc.name = x\n\
         - macro: a\n  condition: b and evt.type = close\n{}",
        rule_item("r", "a")
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(result.macros, 2);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(proc.name = x and evt.type = close)"
    );
}

#[test]
fn list_override_append_and_replace() {
    let text = format!(
        "- list: a\n  items: [x]\n- list: a\n  items: [y]\n  override:\n    items: append\n\
         - list: b\n  items: [x]\n- list: b\n  items: [z]\n  override:\n    items: replace\n\
         - list: c\n  items: [x]\n- list: c\n  items: [w]\n  append: true\n{}",
        rule_item(
            "r",
            "proc.name in (a) or proc.name in (b) or proc.name in (c)"
        )
    );
    let result = load_one(&text);
    assert!(result.is_ok(), "{:#?}", result.diagnostics);
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_DEPRECATED_ITEM,
        15,
        3,
        Some("list 'c'"),
    );
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(proc.name in (x, y) or proc.name in (z) or proc.name in (x, w))"
    );
    assert_eq!(result.lists, 3);
}

#[test]
fn macro_override_append_and_replace() {
    let text = format!(
        "- macro: a\n  condition: evt.type = open\n- macro: a\n  condition: or evt.type = openat\n  override:\n    condition: append\n\
         - macro: b\n  condition: evt.type = open\n- macro: b\n  condition: proc.name = x\n  override:\n    condition: replace\n{}",
        rule_item("r", "a and b")
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "((evt.type = open or evt.type = openat) and proc.name = x)"
    );
}

#[test]
fn rule_override_append_and_replace() {
    let text = "- rule: r\n  desc: first\n  condition: evt.type = open\n  output: out\n  priority: INFO\n  tags: [b, a]\n\
         - rule: r\n  condition: and proc.name = x\n  output: \"%proc.name\"\n  tags: [c, a]\n  desc: second\n  priority: critical\n  enabled: false\n\
         \x20 override:\n    condition: append\n    output: append\n    tags: append\n    desc: replace\n    priority: replace\n    enabled: replace\n";
    let result = load_one(text);
    clean(&result);
    let r = rule(&result, "r");
    assert_eq!(show(&r.condition), "(evt.type = open and proc.name = x)");
    assert_eq!(r.output, "out %proc.name");
    assert_eq!(r.desc, "second");
    assert_eq!(r.priority, Priority::Critical);
    assert_eq!(r.tags, ["a", "b", "c"]);
    assert!(!r.enabled);
    // The appended part keeps its own file position.
    let Expr::And(parts, _) = &r.condition else {
        panic!("not an and");
    };
    assert_eq!(
        parts[1].pos(),
        Pos {
            source: 0,
            line: 8,
            col: 18
        }
    );
}

#[test]
fn deprecated_rule_append_and_standalone_enabled() {
    let text = format!(
        "{}- rule: r\n  condition: and proc.name = x\n  append: true\n- rule: r\n  enabled: false\n",
        rule_item("r", "evt.type = open")
    );
    let result = load_one(&text);
    assert!(result.is_ok(), "{:#?}", result.diagnostics);
    assert_eq!(
        result
            .warnings()
            .filter(|d| d.code == codes::LOAD_DEPRECATED_ITEM)
            .count(),
        2
    );
    let r = rule(&result, "r");
    assert_eq!(show(&r.condition), "(evt.type = open and proc.name = x)");
    assert!(!r.enabled);
}

#[test]
fn enabled_toggles_and_disabled_rules_are_returned() {
    let text = format!(
        "{}- rule: off\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n  enabled: false\n\
         - rule: on\n  enabled: true\n  override:\n    enabled: replace\n- rule: off\n  enabled: true\n  override:\n    enabled: replace\n",
        rule_item("on", "evt.type = close")
    );
    let result = load_one(&text);
    clean(&result);
    assert!(rule(&result, "on").enabled);
    assert!(rule(&result, "off").enabled);
    let names: Vec<_> = result.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["on", "off"]);
}

#[test]
fn rule_defaults_and_flags() {
    let text = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: \"  text %proc.name  \"\n  priority: info\n\
                \x20 warn_evttypes: false\n  skip-if-unknown-filter: true\n  tags: [z, a, z]\n";
    let result = load_one(text);
    clean(&result);
    let r = rule(&result, "r");
    assert_eq!(r.output, "text %proc.name");
    assert_eq!(
        r.output_pos,
        Pos {
            source: 0,
            line: 4,
            col: 14
        }
    );
    assert_eq!(r.priority, Priority::Informational);
    assert_eq!(r.source, "syscall");
    assert!(!r.warn_evttypes && r.skip_if_unknown_filter && r.enabled);
    assert_eq!(r.tags, ["a", "z"]);
    assert_eq!(
        r.pos,
        Pos {
            source: 0,
            line: 1,
            col: 3
        }
    );
}

#[test]
fn exceptions_rewrite_the_condition() {
    let text = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n  exceptions:\n\
                \x20   - name: writer\n      fields: [proc.name, fd.directory]\n      comps: [=, in]\n      values:\n\
                \x20       - [my app, [/usr/local/bin, /opt]]\n        - [other, /tmp]\n\
                \x20   - name: parent\n      fields: proc.pname\n      values: [bash, \"my shell\"]\n\
                \x20   - name: unused\n      fields: proc.cwd\n";
    let result = load_one(text);
    clean(&result);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(evt.type = open and not ((proc.name = \"my app\" and fd.directory in (/usr/local/bin, /opt)) \
         or (proc.name = other and fd.directory in (/tmp))) and not proc.pname in (bash, \"my shell\"))"
    );
}

#[test]
fn exception_text_matches_falco() {
    use crate::rules::loader::exceptions::{Entry, Exception, apply};
    use crate::rules::loader::text::MappedText;
    let at = Pos::default();
    let item = |s: &str| Entry::Item(MappedText::synthetic(s, at));
    let list = |items: Vec<Entry>| Entry::List(items, at);
    let tuple = Exception {
        name: "t".into(),
        fields: Some(list(vec![item("proc.name"), item("fd.name")])),
        comps: Some(list(vec![item("="), item("pmatch")])),
        values: vec![
            list(vec![item("a b"), item("/tmp")]),
            list(vec![item("c"), list(vec![item("/x"), item("/y")])]),
        ],
        pos: at,
    };
    let single = Exception {
        name: "s".into(),
        fields: Some(item("proc.pname")),
        comps: Some(item("in")),
        values: vec![item("sshd"), item("'quoted already'")],
        pos: at,
    };
    let text = apply(
        &MappedText::synthetic("evt.type = open", at),
        &[tuple, single],
        at,
    );
    assert_eq!(
        text.map(|t| t.as_str().to_string()),
        Ok("(evt.type = open) and not (( proc.name = \"a b\" and  fd.name pmatch (/tmp)) or \
            ( proc.name = c and  fd.name pmatch (/x, /y))) and not (proc.pname in (sshd, 'quoted already'))"
            .to_string())
    );
}

#[test]
fn exceptions_append_values_and_new_exceptions() {
    let text = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n  exceptions:\n\
                \x20   - name: e\n      fields: proc.name\n      values: [a]\n\
                - rule: r\n  exceptions:\n    - name: e\n      values: [b]\n    - name: f\n      fields: [proc.pname]\n      values: [[c]]\n\
                \x20 override:\n    exceptions: append\n";
    let result = load_one(text);
    clean(&result);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(evt.type = open and not proc.name in (a, b) and not proc.pname = c)"
    );
}

#[test]
fn exception_appends_are_checked() {
    let base = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n  exceptions:\n\
                \x20   - name: e\n      fields: proc.name\n      values: [a]\n";
    let cases = [
        (
            "    - name: e\n      fields: proc.cwd\n      values: [b]\n",
            "Can not append exception fields to existing exception, only values",
        ),
        (
            "    - name: new\n      values: [b]\n",
            "Rule exception must have fields property with a list of fields",
        ),
        (
            "    - name: new\n      fields: proc.cwd\n",
            "Rule exception must have values property with a list of values",
        ),
    ];
    for (block, message) in cases {
        let text =
            format!("{base}- rule: r\n  exceptions:\n{block}  override:\n    exceptions: append\n");
        let result = load_one(&text);
        let errors: Vec<_> = result
            .errors()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(errors, vec![(12, 7, message)], "{block}");
    }
}

#[test]
fn later_files_override_earlier_ones() {
    let first = format!(
        "- list: l\n  items: [a]\n- macro: m\n  condition: proc.name in (l)\n{}",
        rule_item("r", "m")
    );
    let second = format!(
        "- list: l\n  items: [b]\n  override:\n    items: append\n- macro: m\n  condition: proc.pname in (l)\n{}",
        rule_item("r", "m and evt.type = open")
    );
    let result = load(&[source("first.yaml", &first), source("second.yaml", &second)]);
    clean(&result);
    let r = rule(&result, "r");
    assert_eq!(
        show(&r.condition),
        "(proc.pname in (a, b) and evt.type = open)"
    );
    assert_eq!(r.pos.source, 1);
    assert_eq!(result.source_name(1), Some("second.yaml"));
    assert_eq!((result.rules.len(), result.macros, result.lists), (1, 1, 1));
}

#[test]
fn diagnostics_from_later_files_name_their_file() {
    let result = load(&[
        source("a.yaml", &rule_item("r", "evt.type = open")),
        source("b.yaml", &rule_item("s", "nope")),
    ]);
    let d = expect(
        &result,
        Severity::Error,
        codes::LOAD_ERR_VALIDATE,
        3,
        14,
        Some("rule 's'"),
    );
    assert_eq!(d.file, "b.yaml");
    assert_eq!(d.snippet, "  condition: nope\n             ^");
}

#[test]
fn diagnostic_at_builds_from_an_ast_position() {
    let result = load_one(&rule_item("r", "evt.type = open and\tproc.nme = x"));
    let Expr::And(parts, _) = &rule(&result, "r").condition else {
        panic!("not an and");
    };
    let pos = parts[1].pos();
    let d = result.diagnostic_at(
        Severity::Error,
        codes::LOAD_ERR_COMPILE_CONDITION,
        "unknown field".into(),
        pos,
        None,
    );
    assert_eq!((d.file.as_str(), d.line, d.column), ("test.yaml", 3, 34));
    assert_eq!(
        d.snippet,
        "  condition: evt.type = open and\tproc.nme = x\n                                \t^"
    );
    assert_eq!(
        d.to_string(),
        "test.yaml:3:34: error LOAD_ERR_COMPILE_CONDITION: unknown field\n  condition: evt.type = open and\tproc.nme = x\n                                \t^"
    );
}

#[test]
fn items_are_classified_by_key_not_by_key_order() {
    let text = format!(
        "- condition: evt.type = open\n  macro: m\n{}",
        rule_item("r", "m")
    );
    let result = load_one(&text);
    clean(&result);
    assert_eq!(result.macros, 1);
}

#[test]
fn anchors_and_aliases_resolve() {
    let text = "- list: a\n  items: &shells [bash, zsh]\n- list: b\n  items: *shells\n- macro: m\n  condition: proc.name in (a) or proc.pname in (b)\n";
    let result = load_one(&format!("{text}{}", rule_item("r", "m")));
    clean(&result);
    assert_eq!(
        show(&rule(&result, "r").condition),
        "(proc.name in (bash, zsh) or proc.pname in (bash, zsh))"
    );
}

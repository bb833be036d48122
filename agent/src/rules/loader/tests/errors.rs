//! Broken rules files: each error (or warning) with its exact code, line, column and item.

use super::{clean, expect, load_one, only_error, rule_item};
use crate::rules::loader::{Severity, codes};

/// A valid rule `r` on lines 1-5, for tests that modify it.
const RULE_R: &str =
    "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n";

#[test]
fn yaml_syntax_error_is_reported_at_the_scanner_position() {
    let result = load_one("- rule: a\n  desc: b\n   output: c\n");
    let d = only_error(&result, codes::LOAD_ERR_YAML_PARSE, 3, 10, None);
    assert_eq!(d.message, "mapping values are not allowed in this context");
    assert_eq!(d.file, "test.yaml");
    assert_eq!(d.snippet, "   output: c\n         ^");
}

#[test]
fn unterminated_flow_sequence_is_a_yaml_error() {
    let result = load_one("- list: l\n  items: [a, b\n- macro: m\n  condition: x.y = 1\n");
    let d = only_error(&result, codes::LOAD_ERR_YAML_PARSE, 3, 8, None);
    assert!(d.message.contains("while parsing a flow sequence"), "{d}");
    assert_eq!(
        result.lists, 0,
        "a file with a syntax error is not loaded at all"
    );
}

#[test]
fn document_must_be_a_sequence() {
    let result = load_one("rule: x\ndesc: y\n");
    let d = only_error(&result, codes::LOAD_ERR_YAML_VALIDATE, 1, 1, None);
    assert_eq!(d.message, "Rules content is not yaml array of objects");

    let result = load_one("just some text\n");
    let d = only_error(&result, codes::LOAD_ERR_YAML_VALIDATE, 1, 1, None);
    assert_eq!(d.message, "Rules content is not yaml");
}

#[test]
fn later_documents_still_load_after_a_bad_one() {
    let result = load_one(
        "foo: bar\n---\n- list: a\n  items: [x]\n- macro: m\n  condition: proc.name in (a)\n",
    );
    only_error(&result, codes::LOAD_ERR_YAML_VALIDATE, 1, 1, None);
    assert_eq!((result.lists, result.macros), (1, 1));
}

#[test]
fn items_must_be_maps() {
    let result = load_one("- just a string\n- [a, b]\n- macro: m\n  condition: evt.type = open\n");
    let errors: Vec<_> = result
        .errors()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    let message = "Unexpected element type. Each element should be a yaml associative array.";
    assert_eq!(errors, vec![(1, 3, message), (2, 3, message)]);
    assert_eq!(result.macros, 1, "the valid item after them is still read");
}

#[test]
fn rule_without_output() {
    let text = "- rule: no output\n  desc: d\n  condition: evt.type = open\n  priority: INFO\n";
    let result = load_one(text);
    let d = only_error(
        &result,
        codes::LOAD_ERR_YAML_VALIDATE,
        1,
        3,
        Some("rule 'no output'"),
    );
    assert_eq!(d.message, "Item has no mapping for key 'output'");
    assert!(result.rules.is_empty());
}

#[test]
fn empty_rule_name() {
    let result = load_one(
        "- rule: \"\"\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n",
    );
    let d = only_error(&result, codes::LOAD_ERR_YAML_VALIDATE, 1, 9, Some("rule"));
    assert_eq!(d.message, "Value must be non-empty");

    let result = load_one(
        "- rule:\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n",
    );
    let d = only_error(&result, codes::LOAD_ERR_YAML_VALIDATE, 1, 3, Some("rule"));
    assert_eq!(d.message, "Mapping for key 'rule' is empty");
}

#[test]
fn invalid_priority() {
    let text =
        "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: LOUD\n";
    let d = only_error(
        &load_one(text),
        codes::LOAD_ERR_YAML_VALIDATE,
        5,
        13,
        Some("rule 'r'"),
    );
    assert_eq!(d.message, "Invalid priority");
}

#[test]
fn syntax_error_inside_a_folded_condition_points_at_the_file_token() {
    let text = "- rule: r\n  desc: d\n  condition: >\n    evt.type = open\n    and proc.name = bash )\n  output: o\n  priority: INFO\n";
    let result = load_one(text);
    let d = only_error(
        &result,
        codes::LOAD_ERR_COMPILE_CONDITION,
        5,
        26,
        Some("rule 'r'"),
    );
    assert!(
        d.message.starts_with("unexpected token after 'bash'"),
        "{d}"
    );
    assert_eq!(
        d.snippet,
        "    and proc.name = bash )\n                         ^"
    );
}

#[test]
fn syntax_error_positions_in_other_scalar_styles() {
    let cases = [
        // Literal block: more-indented lines keep their extra blanks.
        (
            "- macro: m\n  condition: |\n      evt.type = open and\n        proc.name = bash )\n",
            4,
            26,
        ),
        // Multi-line plain scalar.
        (
            "- macro: m\n  condition: evt.type = open\n    and proc.name = bash )\n",
            3,
            26,
        ),
        // Single-quoted, with a doubled quote.
        ("- macro: m\n  condition: 'proc.name = ''a b'' )'\n", 2, 35),
        // Double-quoted, with escapes.
        (
            "- macro: m\n  condition: \"proc.name = \\\"a\\tb\\\" )\"\n",
            2,
            36,
        ),
        // CRLF line breaks.
        (
            "- macro: m\r\n  condition: >\r\n    evt.type = open\r\n    and proc.name = bash )\r\n",
            4,
            26,
        ),
        // Chomping and indentation indicators on the block header.
        (
            "- macro: m\n  condition: >-2\n    evt.type = open and\n    proc.name = bash )\n",
            4,
            22,
        ),
    ];
    for (text, line, column) in cases {
        let result = load_one(text);
        let d = only_error(
            &result,
            codes::LOAD_ERR_COMPILE_CONDITION,
            line,
            column,
            Some("macro 'm'"),
        );
        assert!(d.message.starts_with("unexpected token after"), "{d}");
    }
}

#[test]
fn undefined_macro_in_a_rule() {
    let result = load_one(&rule_item("r", "evt.type = open and missing_macro"));
    let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 3, 34, Some("rule 'r'"));
    assert_eq!(d.message, "Undefined macro 'missing_macro' used in filter.");
}

#[test]
fn every_undefined_macro_of_an_item_is_reported() {
    let result = load_one(&rule_item(
        "r",
        "one_macro and evt.type = open and two_macro and one_macro",
    ));
    let messages: Vec<_> = result
        .errors()
        .map(|d| (d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        vec![
            (14, "Undefined macro 'one_macro' used in filter."),
            (48, "Undefined macro 'two_macro' used in filter.")
        ]
    );
}

#[test]
fn macro_self_reference_through_append_is_a_loop() {
    let text = format!(
        "- macro: a\n  condition: evt.type = open\n- macro: a\n  condition: or a\n  override:\n    condition: append\n{}",
        rule_item("r", "a")
    );
    let result = load_one(&text);
    let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 4, 17, Some("macro 'a'"));
    assert_eq!(d.message, "reference loop in macro 'a'");
    assert!(
        result.rules.is_empty(),
        "a rule using a broken macro is not loaded"
    );
}

#[test]
fn macro_loop_through_two_macros() {
    let text = format!(
        "- macro: a\n  condition: evt.type = open\n- macro: b\n  condition: a and proc.name = x\n\
         - macro: a\n  condition: or b\n  override:\n    condition: append\n{}",
        rule_item("r", "b")
    );
    let result = load_one(&text);
    let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 6, 17, Some("macro 'a'"));
    assert_eq!(d.message, "reference loop in macro 'b'");
}

#[test]
fn macro_cannot_use_a_macro_defined_after_it() {
    let text = format!(
        "- macro: first\n  condition: second and evt.type = open\n- macro: second\n  condition: proc.name = x\n{}",
        rule_item("r", "first")
    );
    let result = load_one(&text);
    let d = only_error(
        &result,
        codes::LOAD_ERR_VALIDATE,
        2,
        14,
        Some("macro 'first'"),
    );
    assert_eq!(d.message, "Undefined macro 'second' used in filter.");
}

#[test]
fn rejected_items_do_not_cascade() {
    // A macro without condition, and one that does not parse: rules using them are dropped
    // without further errors.
    let text = format!(
        "- macro: broken\n- macro: unparsable\n  condition: proc.name = (\n{}{}",
        rule_item("r1", "broken"),
        rule_item("r2", "unparsable")
    );
    let result = load_one(&text);
    let errors: Vec<_> = result.errors().map(|d| (d.code, d.line)).collect();
    assert_eq!(
        errors,
        vec![
            (codes::LOAD_ERR_YAML_VALIDATE, 1),
            (codes::LOAD_ERR_COMPILE_CONDITION, 3)
        ]
    );
    assert!(result.rules.is_empty());
}

#[test]
fn append_without_previous_item() {
    let cases = [
        (
            "- list: nope\n  items: [a]\n  override:\n    items: append\n",
            "list 'nope'",
            "List uses 'append' or 'override.items: append' but no list by that name already exists",
        ),
        (
            "- macro: nope\n  condition: or x.y = 1\n  override:\n    condition: append\n",
            "macro 'nope'",
            "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists",
        ),
        (
            "- rule: nope\n  condition: and x.y = 1\n  override:\n    condition: append\n",
            "rule 'nope'",
            "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists",
        ),
        (
            "- rule: nope\n  priority: ERROR\n  override:\n    priority: replace\n",
            "rule 'nope'",
            "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists",
        ),
        (
            "- rule: nope\n  enabled: false\n",
            "rule 'nope'",
            "Rule has 'enabled' key but no rule by that name already exists",
        ),
    ];
    for (text, item, message) in cases {
        let result = load_one(text);
        let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 1, 3, Some(item));
        assert_eq!(d.message, message);
    }
}

#[test]
fn deprecated_append_flag_without_previous_item() {
    let result = load_one("- list: nope\n  items: [a]\n  append: true\n");
    let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 1, 3, Some("list 'nope'"));
    assert!(d.message.starts_with("List uses 'append'"));
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_DEPRECATED_ITEM,
        1,
        3,
        Some("list 'nope'"),
    );
}

#[test]
fn override_keys_must_match_the_item_keys() {
    let unlisted = format!(
        "{RULE_R}- rule: r\n  condition: and proc.name = x\n  output: extra\n  override:\n    condition: append\n"
    );
    let result = load_one(&unlisted);
    let d = only_error(
        &result,
        codes::LOAD_ERR_YAML_VALIDATE,
        8,
        11,
        Some("rule 'r'"),
    );
    assert_eq!(
        d.message,
        "Unexpected key 'output': no corresponding entry under 'override' is defined."
    );
    assert_eq!(
        super::show(&super::rule(&result, "r").condition),
        "evt.type = open",
        "item rejected whole"
    );

    let missing = format!(
        "{RULE_R}- rule: r\n  condition: and proc.name = x\n  override:\n    condition: append\n    desc: append\n"
    );
    let d = only_error(
        &load_one(&missing),
        codes::LOAD_ERR_YAML_VALIDATE,
        6,
        3,
        Some("rule 'r'"),
    );
    assert_eq!(
        d.message,
        "An append override for 'desc' was specified but 'desc' is not defined"
    );

    let not_appendable =
        format!("{RULE_R}- rule: r\n  priority: ERROR\n  override:\n    priority: append\n");
    let d = only_error(
        &load_one(&not_appendable),
        codes::LOAD_ERR_YAML_VALIDATE,
        9,
        5,
        Some("rule 'r'"),
    );
    assert_eq!(
        d.message,
        "Key 'priority' cannot be appended to, use 'replace' instead"
    );

    let bad_op =
        format!("{RULE_R}- rule: r\n  condition: x.y = 1\n  override:\n    condition: prepend\n");
    let d = only_error(
        &load_one(&bad_op),
        codes::LOAD_ERR_YAML_VALIDATE,
        9,
        16,
        Some("rule 'r'"),
    );
    assert_eq!(
        d.message,
        "Invalid override operation for key 'condition': 'prepend'. Allowed values are: append replace"
    );

    let both = format!(
        "{RULE_R}- rule: r\n  condition: x.y = 1\n  append: true\n  override:\n    condition: append\n"
    );
    let d = only_error(
        &load_one(&both),
        codes::LOAD_ERR_YAML_VALIDATE,
        6,
        3,
        Some("rule 'r'"),
    );
    assert!(
        d.message
            .starts_with("Keys 'override' and 'append: true' cannot be used together")
    );

    let list_key =
        "- list: l\n  items: [a]\n- list: l\n  items: [b]\n  override:\n    condition: append\n";
    let d = only_error(
        &load_one(list_key),
        codes::LOAD_ERR_YAML_VALIDATE,
        6,
        5,
        Some("list 'l'"),
    );
    assert_eq!(
        d.message,
        "Key 'condition' cannot be appended to, use 'replace' instead"
    );
}

/// `RULE_R` with an `exceptions` block appended (lines 6 on).
fn with_exceptions(block: &str) -> String {
    format!("{RULE_R}  exceptions:\n{block}")
}

#[test]
fn exceptions_must_be_a_sequence_of_maps() {
    let result = load_one(&format!("{RULE_R}  exceptions: oops\n"));
    let d = only_error(
        &result,
        codes::LOAD_ERR_YAML_VALIDATE,
        6,
        15,
        Some("rule 'r'"),
    );
    assert_eq!(d.message, "Rule exceptions must be a sequence");

    let d = only_error(
        &load_one(&with_exceptions("    - oops\n")),
        codes::LOAD_ERR_YAML_VALIDATE,
        7,
        7,
        Some("rule 'r'"),
    );
    assert_eq!(d.message, "Rule exception must be a mapping");

    let d = only_error(
        &load_one(&with_exceptions("    - fields: proc.name\n")),
        codes::LOAD_ERR_YAML_VALIDATE,
        7,
        7,
        Some("rule 'r'"),
    );
    assert_eq!(d.message, "Item has no mapping for key 'name'");

    let d = only_error(
        &load_one(&with_exceptions(
            "    - name: e\n      fields: proc.name\n      values: oops\n",
        )),
        codes::LOAD_ERR_YAML_VALIDATE,
        9,
        15,
        Some("rule 'r'"),
    );
    assert_eq!(d.message, "Rule exception values must be a sequence");
}

#[test]
fn exception_fields_comps_values_must_agree() {
    let cases = [
        (
            "    - name: e\n      fields: [proc.name, proc.pname]\n      comps: [=]\n",
            "Fields and comps lists must have equal length",
        ),
        (
            "    - name: e\n      fields: proc.name\n      comps: =\n",
            "When fields is a single value, comps must be one of (in, pmatch, intersects)",
        ),
        (
            "    - name: e\n      fields: proc.name\n      comps: [in]\n",
            "Fields and comps must both be strings",
        ),
        (
            "    - name: e\n      fields: [proc.name]\n      comps: [~=]\n",
            "'~=' is not a supported comparison operator",
        ),
        (
            "    - name: e\n      fields: [proc.name, proc.pname]\n      values:\n        - [a]\n",
            "Fields and values lists must have equal length",
        ),
        (
            "    - name: e\n      fields: proc.name\n      values:\n        - [a, b]\n",
            "Expected values array to contain a list of strings",
        ),
    ];
    for (block, message) in cases {
        let result = load_one(&with_exceptions(block));
        let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 7, 7, Some("rule 'r'"));
        assert_eq!(d.message, message);
    }
}

#[test]
fn duplicate_exception_names_warn() {
    let block = "    - name: e\n      fields: proc.name\n      values: [a]\n    - name: e\n      fields: proc.pname\n      values: [b]\n";
    let result = load_one(&with_exceptions(block));
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_EXCEPTION_NAME_NOT_UNIQUE,
        10,
        7,
        Some("rule 'r'"),
    );
    assert!(result.is_ok());
}

#[test]
fn unknown_source_is_a_warning_and_the_rule_is_skipped() {
    let text = "- rule: audit\n  desc: d\n  condition: ka.verb = create\n  output: o\n  priority: INFO\n  source: k8s_audit\n";
    let result = load_one(text);
    let d = expect(
        &result,
        Severity::Warning,
        codes::LOAD_UNKNOWN_SOURCE,
        1,
        3,
        Some("rule 'audit'"),
    );
    assert_eq!(d.message, "Unknown source k8s_audit, skipping");
    assert!(result.is_ok());
    assert!(result.rules.is_empty());
}

#[test]
fn unknown_keys_and_items_are_warnings() {
    let text = "- macro: m\n  condition: evt.type = open\n  condtion: typo\n- foo: bar\n";
    let result = load_one(text);
    let d = expect(
        &result,
        Severity::Warning,
        codes::LOAD_UNKNOWN_KEY,
        3,
        3,
        Some("macro 'm'"),
    );
    assert!(d.message.contains("'condtion'"));
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_UNKNOWN_ITEM,
        4,
        3,
        None,
    );
    assert!(result.is_ok());
}

#[test]
fn engine_version_too_high() {
    let result = load_one("- required_engine_version: 0.99.0\n");
    let d = only_error(
        &result,
        codes::LOAD_ERR_VALIDATE,
        1,
        3,
        Some("required_engine_version"),
    );
    assert_eq!(
        d.message,
        "Rules require engine version 0.99.0, but engine version is 0.63.0"
    );

    let result = load_one("- required_engine_version: 70\n");
    let d = only_error(
        &result,
        codes::LOAD_ERR_VALIDATE,
        1,
        3,
        Some("required_engine_version"),
    );
    assert_eq!(
        d.message,
        "Rules require engine version 0.70.0, but engine version is 0.63.0"
    );

    let result = load_one("- required_engine_version: 1.0.0\n");
    only_error(
        &result,
        codes::LOAD_ERR_VALIDATE,
        1,
        3,
        Some("required_engine_version"),
    );

    let result = load_one("- required_engine_version: latest\n");
    let d = only_error(
        &result,
        codes::LOAD_ERR_YAML_VALIDATE,
        1,
        3,
        Some("required_engine_version"),
    );
    assert!(
        d.message
            .starts_with("Unable to parse engine version 'latest' as a semver string")
    );
}

#[test]
fn engine_version_accepted_keeps_the_highest() {
    let result = load_one(
        "- required_engine_version: 12\n- required_engine_version: 0.57.0\n- required_engine_version: 0.63.0\n",
    );
    clean(&result);
    assert_eq!(result.required_engine_version.as_deref(), Some("0.63.0"));
}

#[test]
fn plugin_requirements() {
    let ok = "- required_plugin_versions:\n    - name: container\n      version: 0.4.0\n";
    clean(&load_one(ok));

    let alternative = "- required_plugin_versions:\n    - name: k8saudit\n      version: 0.7.0\n      alternatives:\n        - name: container\n          version: 0.1.0\n";
    clean(&load_one(alternative));

    let missing = "- required_plugin_versions:\n    - name: k8saudit\n      version: 0.7.0\n      alternatives:\n        - name: k8saudit-eks\n          version: 0.4.0\n";
    let d = only_error(
        &load_one(missing),
        codes::LOAD_ERR_VALIDATE,
        2,
        7,
        Some("required_plugin_versions"),
    );
    assert_eq!(
        d.message,
        "Plugin requirement not satisfied, must load one of: k8saudit (>= 0.7.0), k8saudit-eks (>= 0.4.0)"
    );

    let bad_version = "- required_plugin_versions:\n    - name: container\n      version: new\n";
    let d = only_error(
        &load_one(bad_version),
        codes::LOAD_ERR_VALIDATE,
        2,
        7,
        Some("required_plugin_versions"),
    );
    assert_eq!(
        d.message,
        "Invalid required version 'new' for plugin 'container'"
    );

    let not_seq = "- required_plugin_versions: container\n";
    let d = only_error(
        &load_one(not_seq),
        codes::LOAD_ERR_YAML_VALIDATE,
        1,
        29,
        Some("required_plugin_versions"),
    );
    assert_eq!(
        d.message,
        "Value of required_plugin_versions must be a sequence"
    );
}

#[test]
fn two_errors_in_one_file_are_both_reported() {
    let text = format!(
        "- rule: a\n  desc: d\n  condition: evt.type = open\n  priority: INFO\n\
         - rule: b\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: LOUD\n{}",
        rule_item("c", "evt.type = close")
    );
    let result = load_one(&text);
    let errors: Vec<_> = result
        .errors()
        .map(|d| (d.line, d.column, d.item.as_deref(), d.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (
                1,
                3,
                Some("rule 'a'"),
                "Item has no mapping for key 'output'"
            ),
            (9, 13, Some("rule 'b'"), "Invalid priority"),
        ]
    );
    assert_eq!(result.rules.len(), 1);
    assert_eq!(result.rules[0].name, "c");
}

#[test]
fn value_type_errors() {
    let cases = [
        (
            "- list: l\n  items: oops\n",
            2,
            10,
            "Value is not a sequence",
        ),
        (
            "- list: l\n  items: [a, [b]]\n",
            2,
            14,
            "sequence value is not scalar",
        ),
        (
            "- macro: m\n  condition: [a]\n",
            2,
            14,
            "Value is not a scalar value",
        ),
        (
            "- macro: m\n  condition:\n",
            1,
            3,
            "Mapping for key 'condition' is empty",
        ),
        (
            "- rule: r\n  desc: d\n  condition: x.y = 1\n  output: o\n  priority: INFO\n  enabled: maybe\n",
            6,
            12,
            "Can't decode YAML scalar value",
        ),
    ];
    for (text, line, column, message) in cases {
        let result = load_one(text);
        let errors: Vec<_> = result.errors().collect();
        assert_eq!(errors.len(), 1, "{text}: {:#?}", result.diagnostics);
        assert_eq!(
            (errors[0].line, errors[0].column, errors[0].message.as_str()),
            (line, column, message)
        );
        assert_eq!(errors[0].code, codes::LOAD_ERR_YAML_VALIDATE);
    }
}

#[test]
fn invalid_names_warn() {
    let result =
        load_one("- list: \"bad list\"\n  items: [a]\n- macro: 9lives\n  condition: x.y = 1\n");
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_INVALID_LIST_NAME,
        1,
        3,
        Some("list 'bad list'"),
    );
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_INVALID_MACRO_NAME,
        3,
        3,
        Some("macro '9lives'"),
    );
}

#[test]
fn unused_macros_and_lists_warn() {
    let text = format!(
        "- list: used\n  items: [a]\n- list: unused\n  items: [b]\n- macro: m_used\n  condition: proc.name in (used)\n\
         - macro: m_unused\n  condition: evt.type = open\n{}",
        rule_item("r", "m_used")
    );
    let result = load_one(&text);
    expect(
        &result,
        Severity::Warning,
        codes::LOAD_UNUSED_LIST,
        3,
        3,
        Some("list 'unused'"),
    );
    let d = expect(
        &result,
        Severity::Warning,
        codes::LOAD_UNUSED_MACRO,
        7,
        3,
        Some("macro 'm_unused'"),
    );
    assert_eq!(d.message, "Macro not referred to by any other rule/macro");
    assert_eq!(result.warnings().count(), 2);
}

#[test]
fn redefining_a_rule_with_another_source_is_an_error() {
    let text = format!(
        "{RULE_R}- rule: r\n  desc: d\n  condition: x.y = 1\n  output: o\n  priority: INFO\n  source: aws_cloudtrail\n"
    );
    let result = load_one(&text);
    let d = only_error(&result, codes::LOAD_ERR_VALIDATE, 6, 3, Some("rule 'r'"));
    assert_eq!(
        d.message,
        "Rule has been re-defined with a different source"
    );
}

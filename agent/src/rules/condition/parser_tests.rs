//! Tests of the condition parser: table-driven grammar cases rendered as compact
//! s-expressions, exact error positions, and every condition of the Falco rules files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::ast::{Check, Expr, FieldRef, Op, Operand, Pos, Rhs, TransformArg, Value};
use super::parser::{MAX_DEPTH, ParseError, parse, parse_operand};

/// Renders an expression as an s-expression: `(and a b)`, `(= proc.name bash)`,
/// quoted values as Rust string literals, list names as `@name`, lists as `[a, "b"]`.
fn render(expr: &Expr) -> String {
    match expr {
        Expr::And(children, _) => render_children("and", children),
        Expr::Or(children, _) => render_children("or", children),
        Expr::Not(child, _) => format!("(not {})", render(child)),
        Expr::Macro(name, _) => name.clone(),
        Expr::Check(check) => render_check(check),
    }
}

fn render_children(name: &str, children: &[Expr]) -> String {
    let inner: Vec<String> = children.iter().map(render).collect();
    format!("({name} {})", inner.join(" "))
}

fn render_check(check: &Check) -> String {
    let mut op = check.op.as_str().to_owned();
    if let Some(modifier) = check.modifier {
        write!(op, ":{modifier:?}").unwrap();
    }
    let lhs = render_operand(&check.lhs);
    match &check.rhs {
        Rhs::None => format!("({op} {lhs})"),
        rhs => format!("({op} {lhs} {})", render_rhs(rhs)),
    }
}

fn render_rhs(rhs: &Rhs) -> String {
    match rhs {
        Rhs::None => String::new(),
        Rhs::Value(value) => render_value(value),
        Rhs::List(values, _) => render_list(values),
        Rhs::ListName(name, _) => format!("@{name}"),
        Rhs::Operand(operand) => render_operand(operand),
    }
}

fn render_value(value: &Value) -> String {
    if value.quoted {
        format!("{:?}", value.text)
    } else {
        value.text.clone()
    }
}

fn render_list(values: &[Value]) -> String {
    let inner: Vec<String> = values.iter().map(render_value).collect();
    format!("[{}]", inner.join(", "))
}

fn render_operand(operand: &Operand) -> String {
    match operand {
        Operand::Field(field) => render_field(field),
        Operand::Transform {
            func, args, arg, ..
        } => {
            let inner: Vec<String> = args.iter().map(render_targ).collect();
            format!("{func:?}({}){}", inner.join(", "), render_arg(arg))
        }
    }
}

fn render_targ(arg: &TransformArg) -> String {
    match arg {
        TransformArg::Operand(operand) => render_operand(operand),
        TransformArg::Literal(text, _) => format!("#{text:?}"),
        TransformArg::List(values, _) => render_list(values),
    }
}

fn render_field(field: &FieldRef) -> String {
    format!("{}{}", field.name, render_arg(&field.arg))
}

fn render_arg(arg: &Option<String>) -> String {
    arg.as_ref().map_or(String::new(), |a| format!("[{a}]"))
}

fn ok(text: &str) -> Expr {
    parse(text).unwrap_or_else(|e| panic!("{text:?} failed at {:?}: {e}", e.pos))
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(expr) => panic!("{text:?} parsed as {}", render(&expr)),
        Err(e) => e,
    }
}

fn at(line: u32, col: u32) -> Pos {
    Pos {
        source: 0,
        line,
        col,
    }
}

/// Asserts each condition renders as expected.
fn assert_renders(cases: &[(&str, &str)]) {
    for (text, expected) in cases {
        assert_eq!(render(&ok(text)), *expected, "condition {text:?}");
    }
}

/// Asserts each condition fails with a message containing the fragment, at line:col.
fn assert_errors(cases: &[(&str, &str, u32, u32)]) {
    for (text, fragment, line, col) in cases {
        let e = err(text);
        assert!(
            e.message.contains(fragment),
            "condition {text:?}: message {:?} lacks {fragment:?}",
            e.message
        );
        assert_eq!(e.pos, at(*line, *col), "condition {text:?}: {}", e.message);
    }
}

#[test]
fn every_operator() {
    assert_renders(&[
        ("a.b = x", "(= a.b x)"),
        ("a.b == x", "(= a.b x)"),
        ("a.b != x", "(!= a.b x)"),
        ("a.b < 1", "(< a.b 1)"),
        ("a.b <= 1", "(<= a.b 1)"),
        ("a.b > 1", "(> a.b 1)"),
        ("a.b >= 1", "(>= a.b 1)"),
        ("a.b contains x", "(contains a.b x)"),
        ("a.b icontains x", "(icontains a.b x)"),
        ("a.b bcontains cafe", "(bcontains a.b cafe)"),
        ("a.b startswith x", "(startswith a.b x)"),
        ("a.b bstartswith cafe", "(bstartswith a.b cafe)"),
        ("a.b endswith x", "(endswith a.b x)"),
        ("a.b glob /x/*", "(glob a.b /x/*)"),
        ("a.b iglob /X/*", "(iglob a.b /X/*)"),
        ("a.b regex '^a.*$'", "(regex a.b \"^a.*$\")"),
        ("a.b in (x, y)", "(in a.b [x, y])"),
        ("a.b intersects (x)", "(intersects a.b [x])"),
        (
            "a.b pmatch (/usr/bin, /tmp)",
            "(pmatch a.b [/usr/bin, /tmp])",
        ),
        ("a.b exists", "(exists a.b)"),
    ]);
}

#[test]
fn operators_without_blanks() {
    assert_renders(&[
        ("fd.num>=0", "(>= fd.num 0)"),
        ("fd.num<0", "(< fd.num 0)"),
        ("proc.name=bash", "(= proc.name bash)"),
        ("proc.name!=bash", "(!= proc.name bash)"),
        ("proc.name==bash", "(= proc.name bash)"),
        ("proc.name=\"a b\"", "(= proc.name \"a b\")"),
        ("proc.name in(a,b)", "(in proc.name [a, b])"),
        ("proc.name pmatch(/a)", "(pmatch proc.name [/a])"),
        ("evt.type\tin\n(open)", "(in evt.type [open])"),
        ("proc.name contains\tx", "(contains proc.name x)"),
        ("proc.name contains\nx", "(contains proc.name x)"),
    ]);
}

#[test]
fn precedence_and_flattening() {
    assert_renders(&[
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("a and b and c", "(and a b c)"),
        ("a or b or c or d", "(or a b c d)"),
        ("not a and b", "(and (not a) b)"),
        ("not a or b", "(or (not a) b)"),
        ("a and not b or c", "(or (and a (not b)) c)"),
        ("(a or b) and c", "(and (or a b) c)"),
        ("a and (b and c)", "(and a b c)"),
        ("(a and b) and (c and d)", "(and a b c d)"),
        ("a or (b or c)", "(or a b c)"),
        ("a and (b or c) and d", "(and a (or b c) d)"),
        ("((a))", "a"),
        ("( a )", "a"),
        ("  a  ", "a"),
        ("a and(b)", "(and a b)"),
        ("a or(b)", "(or a b)"),
        ("a and(b or c)", "(and a (or b c))"),
        ("(a)and(b)", "(and a b)"),
        ("(a)or b", "(or a b)"),
        ("a.b in (x)and c", "(and (in a.b [x]) c)"),
        ("a.b = 'x'or c", "(or (= a.b \"x\") c)"),
        ("a\nand\nb", "(and a b)"),
        ("a\r\nor\tb", "(or a b)"),
        ("a\u{8}and\u{8}b", "(and a b)"),
    ]);
}

#[test]
fn not_toggles() {
    assert_renders(&[
        ("not a", "(not a)"),
        ("not not a", "a"),
        ("not not not a", "(not a)"),
        ("not(a)", "(not a)"),
        ("not (a)", "(not a)"),
        ("not not(a)", "a"),
        ("not(not(a))", "(not (not a))"),
        ("not a.b exists", "(not (exists a.b))"),
        ("not\na", "(not a)"),
        ("not  \t a and b", "(and (not a) b)"),
        ("not (a and b)", "(not (and a b))"),
        ("notify", "notify"),
        ("nota.b = 1", "(= nota.b 1)"),
        ("a and not(b)", "(and a (not b))"),
    ]);
}

#[test]
fn macros_versus_fields() {
    assert_renders(&[
        ("spawned_process", "spawned_process"),
        ("a1_b2", "a1_b2"),
        ("andy and orc", "(and andy orc)"),
        ("never_true or nota", "(or never_true nota)"),
        ("proc.name exists", "(exists proc.name)"),
        (
            "evt.arg.flags contains O_TRUNC",
            "(contains evt.arg.flags O_TRUNC)",
        ),
        ("evt.rawarg.res < 0", "(< evt.rawarg.res 0)"),
        ("k8s.ns.name = kube-system", "(= k8s.ns.name kube-system)"),
        ("a.b_c.d9 exists", "(exists a.b_c.d9)"),
        ("a.b existsand m", "(and (exists a.b) m)"),
        ("a.b exists and m", "(and (exists a.b) m)"),
        ("a.b exists or(m)", "(or (exists a.b) m)"),
    ]);
}

#[test]
fn field_arguments() {
    assert_renders(&[
        ("proc.aname[2] = bash", "(= proc.aname[2] bash)"),
        ("proc.env[HOME] exists", "(exists proc.env[HOME])"),
        (
            "container.mount.dest[/lib/modules] exists",
            "(exists container.mount.dest[/lib/modules])",
        ),
        ("proc.env['MY VAR'] = x", "(= proc.env[MY VAR] x)"),
        ("proc.env[\"a]b\"] = x", "(= proc.env[a]b] x)"),
        ("evt.arg[0] = x", "(= evt.arg[0] x)"),
        ("proc.args[a=b,c] = x", "(= proc.args[a=b,c] x)"),
        ("fd.types[0] in (file)", "(in fd.types[0] [file])"),
    ]);
    let expr = ok("proc.aname[2]=x");
    let Expr::Check(check) = expr else {
        panic!("not a check")
    };
    let Operand::Field(field) = check.lhs else {
        panic!("not a field")
    };
    assert_eq!(field.name, "proc.aname");
    assert_eq!(field.arg.as_deref(), Some("2"));
}

#[test]
fn list_values() {
    assert_renders(&[
        ("a.b in ()", "(in a.b [])"),
        ("a.b in ( )", "(in a.b [])"),
        ("a.b in (x)", "(in a.b [x])"),
        ("a.b in (x, \"y z\", 'w')", "(in a.b [x, \"y z\", \"w\"])"),
        ("a.b in ( x ,y\n, z )", "(in a.b [x, y, z])"),
        ("a.b in (\"a'b\", 'c\"d')", "(in a.b [\"a'b\", \"c\\\"d\"])"),
        (
            "proc.pname in (runc:[0:PARENT], runc:[1:CHILD], runc)",
            "(in proc.pname [runc:[0:PARENT], runc:[1:CHILD], runc])",
        ),
        ("a.b in (shell_binaries)", "(in a.b [shell_binaries])"),
        ("a.b in my_list", "(in a.b @my_list)"),
        ("a.b intersects my_list", "(intersects a.b @my_list)"),
        ("a.b in (\"\")", "(in a.b [\"\"])"),
        ("a.b in (-1, 0x10, 1.5)", "(in a.b [-1, 0x10, 1.5])"),
        ("a.b in (*, !, a/b*c)", "(in a.b [*, !, a/b*c])"),
    ]);
    let Expr::Check(check) = ok("a.b in (x, 'y')") else {
        panic!("not a check")
    };
    let Rhs::List(values, pos) = check.rhs else {
        panic!("not a list")
    };
    assert_eq!(pos, at(1, 8));
    assert!(!values[0].quoted);
    assert!(values[1].quoted);
    assert_eq!(values[1].pos, at(1, 12));
}

#[test]
fn string_values() {
    assert_renders(&[
        ("a.b = runc:[0:PARENT]", "(= a.b runc:[0:PARENT])"),
        ("a.b glob /proc/*/environ", "(glob a.b /proc/*/environ)"),
        ("a.b = *", "(= a.b *)"),
        ("a.b = !", "(= a.b !)"),
        ("a.b = 5", "(= a.b 5)"),
        ("a.b = proc.pname", "(= a.b proc.pname)"),
        ("a.b = 'proc.pname'", "(= a.b \"proc.pname\")"),
        ("a.b = ''", "(= a.b \"\")"),
        ("a.b = \"\"", "(= a.b \"\")"),
        ("a.b = tolower", "(= a.b tolower)"),
        ("a.b = val", "(= a.b val)"),
        ("a.b = and", "(= a.b and)"),
        ("a.b = x[y]", "(= a.b x[y])"),
        ("a.b = café", "(= a.b café)"),
        ("a.b = -", "(= a.b -)"),
        ("a.b endswith \\", "(endswith a.b \\)"),
        ("(a.b = x)", "(= a.b x)"),
        ("a.b = x\u{8}y", "(= a.b x\u{8}y)"),
    ]);
}

#[test]
fn numbers_after_ordering_operators() {
    assert_renders(&[
        ("a.b >= 0", "(>= a.b 0)"),
        ("a.b >= -1", "(>= a.b -1)"),
        ("a.b >= +1", "(>= a.b +1)"),
        ("a.b > 0x1F", "(> a.b 0x1F)"),
        ("a.b > 0XaB", "(> a.b 0XaB)"),
        ("a.b < 1.5", "(< a.b 1.5)"),
        ("a.b < 1.", "(< a.b 1.)"),
        ("a.b < 2.5e+10", "(< a.b 2.5e+10)"),
        ("a.b < 2E-3", "(< a.b 2E-3)"),
        ("a.b <= 007", "(<= a.b 007)"),
        ("a.b > 5and c", "(and (> a.b 5) c)"),
        ("a.b > len(c.d)", "(> a.b Len(c.d))"),
        ("a.b > val(c.d)", "(> a.b Val(c.d))"),
    ]);
    assert_errors(&[
        ("a.b >= x", "expected a number value after '>='", 1, 8),
        ("a.b < 'x'", "expected a number value after '<'", 1, 7),
        ("a.b >", "expected a number value after '>'", 1, 6),
        ("a.b > .5", "expected a number value", 1, 7),
        ("a.b > 1e5", "unexpected token after '1'", 1, 8),
        ("a.b > 0xZZ", "unexpected token after '0'", 1, 8),
    ]);
}

#[test]
fn modifiers() {
    assert_renders(&[
        (
            "a.b startswith oneof (x, y)",
            "(startswith:OneOf a.b [x, y])",
        ),
        ("a.b contains anyof (x)", "(contains:AnyOf a.b [x])"),
        ("a.b endswith allof ()", "(endswith:AllOf a.b [])"),
        ("a.b = oneof my_list", "(=:OneOf a.b @my_list)"),
        ("a.b = anyof(x)", "(=:AnyOf a.b [x])"),
        ("a.b glob allof\n(x)", "(glob:AllOf a.b [x])"),
        // Not followed by a list or a non-keyword identifier: the word is the value.
        ("a.b = oneof", "(= a.b oneof)"),
        ("a.b = oneof and c", "(and (= a.b oneof) c)"),
        ("a.b = oneof or c", "(or (= a.b oneof) c)"),
        ("(a.b = oneof)", "(= a.b oneof)"),
        ("a.b = oneof:x", "(= a.b oneof:x)"),
        ("a.b = oneofx", "(= a.b oneofx)"),
        ("a.b = 'oneof'", "(= a.b \"oneof\")"),
        // Modifiers only follow string operators.
        ("a.b in (oneof)", "(in a.b [oneof])"),
    ]);
    assert_errors(&[
        ("a.b = oneof (x,)", "expected a value", 1, 16),
        ("a.b in oneof (x)", "unexpected token after 'oneof'", 1, 14),
    ]);
}

#[test]
fn val_and_transformers() {
    assert_renders(&[
        (
            "proc.name = val(proc.pname)",
            "(= proc.name Val(proc.pname))",
        ),
        (
            "proc.name = val( proc.pname )",
            "(= proc.name Val(proc.pname))",
        ),
        (
            "proc.name in val(proc.pname)",
            "(in proc.name Val(proc.pname))",
        ),
        (
            "proc.name = val(proc.aname[2])",
            "(= proc.name Val(proc.aname[2]))",
        ),
        (
            "tolower(proc.name) = tolower(proc.pname)",
            "(= ToLower(proc.name) ToLower(proc.pname))",
        ),
        ("toupper(proc.name) = BASH", "(= ToUpper(proc.name) BASH)"),
        ("b64(proc.name) contains x", "(contains B64(proc.name) x)"),
        (
            "basename(proc.exepath) = sh",
            "(= Basename(proc.exepath) sh)",
        ),
        ("len(proc.args) > 10", "(> Len(proc.args) 10)"),
        (
            "tolower(b64(proc.env[HOME])) exists",
            "(exists ToLower(B64(proc.env[HOME])))",
        ),
        (
            "tolower( toupper( proc.name ) ) = x",
            "(= ToLower(ToUpper(proc.name)) x)",
        ),
        (
            "join(',', proc.args, (a, 'b c')) = x",
            "(= Join(#\",\", proc.args, [a, \"b c\"]) x)",
        ),
        (
            "concat(proc.name, \"-\", 3) = x",
            "(= Concat(proc.name, #\"-\", #\"3\") x)",
        ),
        (
            "getopt(proc.args, \"abc:\")[c] = x",
            "(= Getopt(proc.args, #\"abc:\")[c] x)",
        ),
        ("a.b in tolower(c.d)", "(in a.b ToLower(c.d))"),
        ("a.b intersects len(c.d)", "(intersects a.b Len(c.d))"),
        ("len(a.b)>=0x1", "(>= Len(a.b) 0x1)"),
    ]);
    assert_errors(&[
        (
            "a.b = val(x)",
            "expected a field within 'val' transformer",
            1,
            11,
        ),
        (
            "a.b = val(c.d",
            "expected ')' closing the transformer",
            1,
            14,
        ),
        (
            "a.b = val(c.d e)",
            "expected ')' closing the transformer",
            1,
            15,
        ),
        (
            "tolower(x) = y",
            "expected a field or a nested valid transformer",
            1,
            9,
        ),
        (
            "tolower('x') = y",
            "expected a field or a nested valid transformer",
            1,
            9,
        ),
        (
            "tolower() = y",
            "expected a field or a nested valid transformer",
            1,
            9,
        ),
        (
            "tolower(a.b, c.d) = y",
            "expected ')' closing the transformer",
            1,
            12,
        ),
        (
            "tolower(a.b = y",
            "expected ')' closing the transformer",
            1,
            13,
        ),
        (
            "join(a.b,) = y",
            "expected a field, a nested transformer",
            1,
            10,
        ),
        ("join(a.b c.d) = y", "expected ',' or ')'", 1, 10),
        ("tolower(a.b)", "expected an operator after ')'", 1, 13),
        (
            "a.b = tolower(x)",
            "expected a field or a nested valid transformer",
            1,
            15,
        ),
        ("val(a.b) = x", "unexpected token after 'val'", 1, 4),
        (
            "a.b = tolower (c.d)",
            "unexpected token after 'tolower'",
            1,
            15,
        ),
    ]);
}

#[test]
fn escapes() {
    let cases: &[(&str, &str)] = &[
        (r#""a\bb""#, "a\u{8}b"),
        (r#""a\fb""#, "a\u{c}b"),
        (r#""a\nb""#, "a\nb"),
        (r#""a\rb""#, "a\rb"),
        (r#""a\tb""#, "a\tb"),
        (r#""a\\b""#, "a\\b"),
        (r#""a\/b""#, "a/b"),
        (r#""a\"b""#, "a\"b"),
        (r"'a\'b'", "a'b"),
        (r#""a\ b""#, "a\\b"),
        (r#""\ ""#, "\\"),
        (r#""\x41\x7f""#, "A\u{7f}"),
        (r#""\x4a""#, "J"),
        (r#""a\\""#, "a\\"),
        ("'a\"b'", "a\"b"),
        ("\"a'b\"", "a'b"),
        ("\"line\nbreak\"", "line\nbreak"),
        ("\"ünï\"", "ünï"),
    ];
    for (quoted, expected) in cases {
        let text = format!("a.b = {quoted}");
        let Expr::Check(check) = ok(&text) else {
            panic!("not a check")
        };
        let Rhs::Value(value) = check.rhs else {
            panic!("not a value")
        };
        assert_eq!(value.text, *expected, "{text:?}");
        assert!(value.quoted);
    }
    assert_errors(&[
        (r#"a.b = "a\qb""#, "invalid escape sequence '\\q'", 1, 9),
        (r#"a.b = "\u0041""#, "invalid escape sequence '\\u'", 1, 8),
        (
            r#"a.b = '\"'"#,
            "invalid escape sequence '\\\"' in a '-quoted",
            1,
            8,
        ),
        (
            r#"a.b = "\'""#,
            "invalid escape sequence '\\'' in a \"-quoted",
            1,
            8,
        ),
        (r#"a.b = "\x4""#, "expected two hex digits", 1, 8),
        (r#"a.b = "\xg0""#, "expected two hex digits", 1, 8),
        (r#"a.b = "\x+f""#, "expected two hex digits", 1, 8),
        (r#"a.b = "\x80""#, "only \\x00-\\x7f", 1, 8),
        (r#"a.b = "abc"#, "unterminated string", 1, 7),
        (r#"a.b = 'abc"#, "unterminated string", 1, 7),
        (r#"a.b = "abc\""#, "unterminated string", 1, 7),
        (r#"a.b = "abc\"#, "unterminated string", 1, 7),
        ("a.b in (x, \"y)", "unterminated string", 1, 12),
        ("a.b = x and c.d = \"\n\n", "unterminated string", 1, 19),
        ("a.b = \"x\ny\\z\"", "invalid escape sequence '\\z'", 2, 2),
        (
            "proc.env[\"a\\qb\"] = x",
            "invalid escape sequence '\\q'",
            1,
            12,
        ),
    ]);
}

#[test]
fn keyword_rejections() {
    assert_errors(&[
        ("a andb", "expected blank or '(' after 'and'", 1, 6),
        ("a orb", "expected blank or '(' after 'or'", 1, 5),
        (
            "a not b",
            "unexpected token after 'a', expecting 'or', 'and'",
            1,
            3,
        ),
        ("a and", "expected blank or '(' after 'and'", 1, 6),
        (
            "a or ",
            "expected a '(' token, a field check, or an identifier",
            1,
            6,
        ),
        ("a and not", "found 'not'", 1, 7),
        ("a and and b", "found 'and'", 1, 7),
        ("or", "found 'or'", 1, 1),
        ("a order", "expected blank or '(' after 'or'", 1, 5),
        (
            "a b",
            "unexpected token after 'a', expecting 'or', 'and'",
            1,
            3,
        ),
        (
            "a.b = x y",
            "unexpected token after 'x', expecting 'or', 'and'",
            1,
            9,
        ),
        (
            "a.b = 'x' y",
            "unexpected token after ''x'', expecting 'or', 'and'",
            1,
            11,
        ),
        (
            "a.b in (x) y",
            "unexpected token after ')', expecting 'or', 'and'",
            1,
            12,
        ),
        // libsinsp: a parenthesised `or` operand ends the `or` chain.
        ("a or(b) and c", "unexpected token after ')'", 1, 9),
        ("a.b existsfoo", "unexpected token after 'exists'", 1, 11),
        ("a )", "unexpected token after 'a'", 1, 3),
        ("a\u{c}and b", "unexpected token after 'a'", 1, 2),
    ]);
}

#[test]
fn operator_errors() {
    assert_errors(&[
        (
            "proc.name",
            "expected an operator after 'proc.name', one of 'exists'",
            1,
            10,
        ),
        (
            "proc.name   ",
            "expected an operator after 'proc.name'",
            1,
            13,
        ),
        (
            "proc.name foo x",
            "unknown operator 'foo', expecting one of",
            1,
            11,
        ),
        ("proc.name ~ x", "unknown operator '~'", 1, 11),
        ("proc.name inx", "unknown operator 'inx'", 1, 11),
        (
            "proc.name contains",
            "expected a blank after 'contains'",
            1,
            19,
        ),
        (
            "proc.name contains\"x\"",
            "expected a blank after 'contains'",
            1,
            19,
        ),
        ("proc.name glob(x)", "expected a blank after 'glob'", 1, 15),
        ("proc.name =", "expected a value after '='", 1, 12),
        ("proc.name = = x", "expected a value after '='", 1, 13),
        ("proc.name = (x)", "expected a value after '='", 1, 13),
        (
            "proc.name contains ",
            "expected a value after 'contains'",
            1,
            20,
        ),
        ("proc.name in", "expected a list, an identifier", 1, 13),
        ("proc.name in 'x'", "expected a list, an identifier", 1, 14),
        ("proc.name in (x", "expected ',' or ')'", 1, 16),
        ("proc.name in (x y)", "expected ',' or ')'", 1, 17),
        ("proc.name in (x,)", "expected a value", 1, 17),
        ("proc.name in (,x)", "expected a value", 1, 15),
        ("proc.name in (x,,y)", "expected a value", 1, 17),
        ("proc.name in ((x))", "expected a value", 1, 15),
        ("proc.name in ('a''b')", "expected ',' or ')'", 1, 18),
        ("proc.name[", "expected a valid field argument", 1, 11),
        ("proc.name[]", "expected a valid field argument", 1, 11),
        ("proc.name[x", "expected ']'", 1, 12),
        ("proc.name[x y] = z", "expected ']'", 1, 12),
        ("proc.name [x] = z", "unknown operator '['", 1, 11),
    ]);
}

#[test]
fn structural_errors() {
    assert_errors(&[
        ("", "filter input string is empty", 1, 1),
        (
            "   ",
            "expected a '(' token, a field check, or an identifier",
            1,
            4,
        ),
        ("(a", "expected ')'", 1, 3),
        ("(a b)", "expected ')'", 1, 4),
        ("((a)", "expected ')'", 1, 5),
        (
            "()",
            "expected a '(' token, a field check, or an identifier",
            1,
            2,
        ),
        ("not", "found 'not'", 1, 1),
        ("not(a", "expected ')'", 1, 6),
        ("a.", "unexpected token after 'a'", 1, 2),
        (
            "1 = x",
            "expected a '(' token, a field check, or an identifier",
            1,
            1,
        ),
        (
            "-a",
            "expected a '(' token, a field check, or an identifier",
            1,
            1,
        ),
        ("my-macro", "unexpected token after 'my'", 1, 3),
    ]);
}

#[test]
fn positions() {
    let expr = ok("  a.b = x and\n  (not m or c.d exists)");
    let Expr::And(children, pos) = &expr else {
        panic!("not and")
    };
    assert_eq!(*pos, at(1, 3));
    assert_eq!(children[0].pos(), at(1, 3));
    let Expr::Check(check) = &children[0] else {
        panic!("not check")
    };
    let Rhs::Value(value) = &check.rhs else {
        panic!("not value")
    };
    assert_eq!(value.pos, at(1, 9));
    let Expr::Or(inner, or_pos) = &children[1] else {
        panic!("not or")
    };
    assert_eq!(*or_pos, at(2, 4));
    assert_eq!(inner[0].pos(), at(2, 4));
    let Expr::Not(macro_ref, _) = &inner[0] else {
        panic!("not not")
    };
    assert_eq!(**macro_ref, Expr::Macro("m".into(), at(2, 8)));
    assert_eq!(inner[1].pos(), at(2, 13));
}

#[test]
fn positions_count_chars_and_line_breaks() {
    assert_errors(&[
        ("a.b = 'é' y", "unexpected token", 1, 11),
        ("a.b = é y", "unexpected token after 'é'", 1, 9),
        (
            "spawned_process\n  and proc.name in (a, b)\n  and fd.num >= x",
            "expected a number value after '>='",
            3,
            17,
        ),
        ("a and\r\nb c", "unexpected token after 'b'", 2, 3),
        (
            "proc.name = bash and\n    fd.name in (a, b",
            "expected ',' or ')'",
            2,
            21,
        ),
        (
            "proc.name = bash and\n\tfd.nam",
            "expected an operator",
            2,
            8,
        ),
        ("a and\rb c", "unexpected token after 'b'", 2, 3),
        (
            "a.b = \"x\ny\" z",
            "unexpected token after '\"x\ny\"'",
            2,
            4,
        ),
        ("a and\n\n  (b\n  c)", "expected ')'", 4, 3),
    ]);
    let Expr::And(children, _) = ok("a.b = x\nand\nc.d[ü] = 'v'") else {
        panic!("not and")
    };
    let Expr::Check(check) = &children[1] else {
        panic!("not check")
    };
    assert_eq!(check.pos, at(3, 1));
    let Rhs::Value(value) = &check.rhs else {
        panic!("not value")
    };
    assert_eq!(value.pos, at(3, 10));
}

#[test]
fn transformer_and_val_positions() {
    let Expr::Check(check) = ok("a.b = val(c.d)") else {
        panic!("not check")
    };
    let Rhs::Operand(Operand::Transform { args, pos, .. }) = check.rhs else {
        panic!("not transform")
    };
    assert_eq!(pos, at(1, 7));
    assert_eq!(
        args[0],
        TransformArg::Operand(field_op("c.d", None, at(1, 11)))
    );
    let Expr::Check(check) = ok(" tolower( b64(x.y) ) exists") else {
        panic!("not check")
    };
    assert_eq!(check.pos, at(1, 2));
    assert_eq!(check.op, Op::Exists);
    let Operand::Transform { args, .. } = check.lhs else {
        panic!("not transform")
    };
    assert_eq!(targ_pos(&args[0]), at(1, 11));
    let (Operand::Transform { args, .. }, _) = parse_operand("join(',' ,x.y, (a))").unwrap() else {
        panic!("not transform")
    };
    let positions: Vec<Pos> = args.iter().map(targ_pos).collect();
    assert_eq!(positions, [at(1, 6), at(1, 11), at(1, 16)]);
}

fn field_op(name: &str, arg: Option<&str>, pos: Pos) -> Operand {
    Operand::Field(FieldRef {
        name: name.into(),
        arg: arg.map(Into::into),
        pos,
    })
}

fn targ_pos(arg: &TransformArg) -> Pos {
    match arg {
        TransformArg::Operand(operand) => operand.pos(),
        TransformArg::Literal(_, pos) | TransformArg::List(_, pos) => *pos,
    }
}

#[test]
fn deep_nesting_errors_instead_of_overflowing() {
    let shallow = format!("{}a{}", "(".repeat(150), ")".repeat(150));
    assert_eq!(ok(&shallow), Expr::Macro("a".into(), at(1, 151)));
    let nots = format!("{}a{}", "not(".repeat(150), ")".repeat(150));
    ok(&nots);
    let transforms = format!("{}a.b{} exists", "tolower(".repeat(100), ")".repeat(100));
    ok(&transforms);
    let many_nots = format!("{}a", "not ".repeat(100_000));
    assert_eq!(ok(&many_nots), Expr::Macro("a".into(), at(1, 400_001)));
    let limit = format!("exceeded max depth limit of {MAX_DEPTH}");
    for depth in [250, 1000, 100_000] {
        let deep = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(err(&deep).message, limit, "depth {depth}");
        let deep_not = format!("{}a{}", "not(".repeat(depth), ")".repeat(depth));
        assert_eq!(err(&deep_not).message, limit, "not depth {depth}");
        let deep_transform = format!(
            "{}a.b{} exists",
            "tolower(".repeat(depth),
            ")".repeat(depth)
        );
        assert_eq!(
            err(&deep_transform).message,
            limit,
            "transform depth {depth}"
        );
        let deep_rhs = format!("x.y = {}a.b{}", "tolower(".repeat(depth), ")".repeat(depth));
        assert_eq!(err(&deep_rhs).message, limit, "rhs depth {depth}");
    }
    let long_chain = vec!["a"; 50_000].join(" and ");
    let Expr::And(children, _) = ok(&long_chain) else {
        panic!("not and")
    };
    assert_eq!(children.len(), 50_000);
}

#[test]
fn value_quoted_flag() {
    for (text, quoted) in [
        ("a.b = x", false),
        ("a.b = 'x'", true),
        ("a.b = \"x\"", true),
    ] {
        let Expr::Check(check) = ok(text) else {
            panic!("not check")
        };
        let Rhs::Value(value) = check.rhs else {
            panic!("not value")
        };
        assert_eq!(value.quoted, quoted, "{text}");
        assert_eq!(value.text, "x");
        assert_eq!(value.pos, at(1, 7));
    }
}

#[test]
fn operand_prefixes_for_output_strings() {
    let cases: &[(&str, &str, usize)] = &[
        ("proc.name", "proc.name", 9),
        ("proc.name rest", "proc.name", 9),
        ("proc.aname[2] parent", "proc.aname[2]", 13),
        ("evt.arg.flags)", "evt.arg.flags", 13),
        ("proc.name.", "proc.name", 9),
        ("proc.name,x", "proc.name", 9),
        ("fd.name:%fd.num", "fd.name", 7),
        ("proc.env['HOME'] x", "proc.env[HOME]", 16),
        ("tolower(proc.name) x", "ToLower(proc.name)", 18),
        ("tolower( proc.name )", "ToLower(proc.name)", 20),
        (
            "getopt(proc.args, 'x:')[x]!",
            "Getopt(proc.args, #\"x:\")[x]",
            26,
        ),
        ("k8s.pod.name", "k8s.pod.name", 12),
        ("user.name\u{e9}", "user.name", 9),
    ];
    for (text, expected, consumed) in cases {
        let (operand, len) =
            parse_operand(text).unwrap_or_else(|e| panic!("{text:?}: {e} at {:?}", e.pos));
        assert_eq!(render_operand(&operand), *expected, "{text:?}");
        assert_eq!(len, *consumed, "{text:?}");
        assert_eq!(operand.pos(), at(1, 1));
    }
    let errors: &[(&str, &str, u32, u32)] = &[
        ("", "expected a field or a field transformer", 1, 1),
        ("name", "expected a field or a field transformer", 1, 1),
        (
            " proc.name",
            "expected a field or a field transformer",
            1,
            1,
        ),
        (
            "val(proc.name)",
            "expected a field or a field transformer",
            1,
            1,
        ),
        ("proc.aname[2", "expected ']'", 1, 13),
        (
            "tolower(proc.name",
            "expected ')' closing the transformer",
            1,
            18,
        ),
    ];
    for (text, fragment, line, col) in errors {
        let e = parse_operand(text).expect_err(text);
        assert!(e.message.contains(fragment), "{text:?}: {}", e.message);
        assert_eq!(e.pos, at(*line, *col), "{text:?}");
    }
}

#[test]
fn error_display_is_the_message() {
    let e = err("a andb");
    assert_eq!(e.to_string(), "expected blank or '(' after 'and'");
}

// --- Every condition of the Falco rules files -------------------------------------------

/// One `condition:` value from a rules file.
struct Condition {
    file: String,
    line: usize,
    text: String,
}

/// Where the rules files live: `$VIGIL_FALCO_RULES_DIR`, else `shared/falco-rules` beside
/// the repository checkout.
fn rules_dir() -> PathBuf {
    match std::env::var_os("VIGIL_FALCO_RULES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules"),
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Extracts conditions with a line reader: `condition: text` (a plain scalar, possibly
/// continued on more-indented lines), or a block (`condition: >`, `condition: |`, bare
/// `condition:`) of more-indented lines. Folded and plain scalars join lines with a space like
/// YAML does; literal blocks keep the newlines.
fn extract_conditions(file: &str, source: &str) -> Vec<Condition> {
    let lines: Vec<&str> = source.lines().collect();
    let mut conditions = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed.strip_prefix("condition:") else {
            continue;
        };
        let value = value.trim();
        assert!(
            !value.starts_with('"') && !value.starts_with('\''),
            "{file}:{}: quoted YAML scalars are not handled by this reader",
            index + 1
        );
        let block = block_lines(&lines[index + 1..], indent_of(line));
        let text = if value.starts_with('|') {
            block.join("\n")
        } else if value.is_empty() || value.starts_with('>') {
            block.join(" ")
        } else {
            std::iter::once(value)
                .chain(block)
                .collect::<Vec<_>>()
                .join(" ")
        };
        conditions.push(Condition {
            file: file.to_owned(),
            line: index + 1,
            text,
        });
    }
    conditions
}

fn block_lines<'a>(lines: &[&'a str], key_indent: usize) -> Vec<&'a str> {
    lines
        .iter()
        .take_while(|l| l.trim().is_empty() || indent_of(l) > key_indent)
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(|l| l.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

#[test]
fn every_falco_rules_condition_parses() {
    let dir = rules_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "Falco rules directory {} is missing ({e}); set VIGIL_FALCO_RULES_DIR",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.yaml rules files in {}",
        dir.display()
    );

    let mut conditions = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).expect("readable rules file");
        let name = path.display().to_string();
        let found = extract_conditions(&name, &source);
        assert!(!found.is_empty(), "no conditions found in {name}");
        conditions.extend(found);
    }
    let failures: Vec<String> = conditions
        .iter()
        .filter_map(|c| {
            parse(&c.text).err().map(|e| {
                format!(
                    "{}:{}: {} at {}:{} in {:?}",
                    c.file, c.line, e, e.pos.line, e.pos.col, c.text
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} conditions failed:\n{}",
        failures.len(),
        conditions.len(),
        failures.join("\n")
    );
    assert!(
        conditions.len() >= 100,
        "only {} conditions found in {}",
        conditions.len(),
        dir.display()
    );
}

#[test]
fn condition_reader_handles_all_layouts() {
    let yaml = "- macro: a\n  condition: x.y = 1\n\n- rule: b\n  condition: >\n    m\n    and n\n\n  output: o\n- macro: c\n  condition:\n    (p\n     or q)\n- macro: d\n  condition: |\n    r\n    and s\n- macro: e\n  condition: (t or\n    u)\n  output: x\n";
    let found = extract_conditions("t.yaml", yaml);
    let texts: Vec<&str> = found.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        ["x.y = 1", "m and n", "(p or q)", "r\nand s", "(t or u)"]
    );
    assert_eq!(found[1].line, 5);
}

//! The syntax tree of a Falco condition, as the parser produces it and the rules loader
//! rewrites it (macro expansion). Positions point into rules files once the loader has mapped
//! them; straight from the parser they are relative to the condition text (`source` 0).

/// A position: 1-based line and column in a source the loader knows by index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    /// Index of the source (rules file) in the loader's source table; 0 straight from the
    /// parser.
    pub source: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// All must hold (n-ary, flattened).
    And(Vec<Expr>, Pos),
    /// One must hold (n-ary, flattened).
    Or(Vec<Expr>, Pos),
    /// Negation.
    Not(Box<Expr>, Pos),
    /// A reference to a macro, by name (resolved away by the loader).
    Macro(String, Pos),
    /// A comparison.
    Check(Check),
}

impl Expr {
    /// Where the expression starts.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::And(_, pos) | Expr::Or(_, pos) | Expr::Not(_, pos) | Expr::Macro(_, pos) => *pos,
            Expr::Check(check) => check.pos,
        }
    }
}

/// `lhs op rhs`, or `lhs exists`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The left-hand side: a field or a transformer over fields.
    pub lhs: Operand,
    /// The operator.
    pub op: Op,
    /// `oneof`/`anyof`/`allof`, applied to a string operator with a list right-hand side.
    pub modifier: Option<Modifier>,
    /// The right-hand side.
    pub rhs: Rhs,
    /// Where the check starts (its left-hand side).
    pub pos: Pos,
}

/// A value-producing operand.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A field, with its optional `[arg]`.
    Field(FieldRef),
    /// A transformer applied to operands, e.g. `tolower(proc.name)`, with an optional `[arg]`
    /// after the closing parenthesis.
    Transform {
        /// Which transformer.
        func: Transformer,
        /// Its arguments.
        args: Vec<TransformArg>,
        /// An index or key after the call (`getopt(...)[x]`).
        arg: Option<String>,
        /// Where it starts.
        pos: Pos,
    },
}

impl Operand {
    /// Where the operand starts.
    pub fn pos(&self) -> Pos {
        match self {
            Operand::Field(field) => field.pos,
            Operand::Transform { pos, .. } => *pos,
        }
    }
}

/// An argument of a transformer.
#[derive(Clone, Debug, PartialEq)]
pub enum TransformArg {
    /// A field or nested transformer.
    Operand(Operand),
    /// A number or quoted string literal (already unescaped).
    Literal(String, Pos),
    /// A parenthesised list of literals.
    List(Vec<Value>, Pos),
}

/// A field reference such as `proc.aname[2]`, `evt.arg.flags` or `proc.env[HOME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRef {
    /// The dotted name as written, without the bracketed argument (`evt.arg.flags`,
    /// `proc.aname`).
    pub name: String,
    /// The bracketed argument, unquoted (`2`, `HOME`, `/lib/modules`).
    pub arg: Option<String>,
    /// Where the field starts.
    pub pos: Pos,
}

/// Transformers of the libsinsp grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transformer {
    /// `tolower(x)`.
    ToLower,
    /// `toupper(x)`.
    ToUpper,
    /// `b64(x)`: base64 decode.
    B64,
    /// `basename(x)`.
    Basename,
    /// `len(x)`.
    Len,
    /// `join(sep, list...)`.
    Join,
    /// `concat(a, b, ...)`.
    Concat,
    /// `getopt(args, opts)`.
    Getopt,
    /// `val(field)`: the field's value, as a right-hand side.
    Val,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `icontains`.
    IContains,
    /// `bcontains` (hex right-hand side).
    BContains,
    /// `startswith`.
    StartsWith,
    /// `bstartswith` (hex right-hand side).
    BStartsWith,
    /// `endswith`.
    EndsWith,
    /// `glob` (fnmatch, `*` crosses `/`).
    Glob,
    /// `iglob`.
    IGlob,
    /// `regex` (fully anchored).
    Regex,
    /// `in`.
    In,
    /// `intersects`.
    Intersects,
    /// `pmatch`.
    PMatch,
    /// `exists`.
    Exists,
}

impl Op {
    /// The operator as written in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::PMatch => "pmatch",
            Op::Exists => "exists",
        }
    }
}

/// `oneof`, `anyof`, `allof`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modifier {
    /// Exactly one right-hand value matches.
    OneOf,
    /// At least one matches.
    AnyOf,
    /// All match.
    AllOf,
}

/// A literal value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The text, unquoted and unescaped.
    pub text: String,
    /// Whether it was quoted in the source (a quoted `proc.pname` is a string, not a field).
    pub quoted: bool,
    /// Where it starts.
    pub pos: Pos,
}

/// The right-hand side of a check.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// Nothing (`exists`).
    None,
    /// A single value.
    Value(Value),
    /// A parenthesised list (possibly empty).
    List(Vec<Value>, Pos),
    /// A bare identifier where a list was expected (a list name left after substitution).
    ListName(String, Pos),
    /// Another field or a transformer: `val(proc.pname)`, `tolower(proc.pname)`.
    Operand(Operand),
}

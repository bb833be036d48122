//! Hand-written recursive-descent parser for the Falco condition language.
//!
//! The grammar is the one libsinsp's `filter/parser.cpp` implements (see
//! `shared/docs/falco-compat.md` §2), quirks included, because Vigil must accept exactly the
//! rules Falco accepts: keywords are matched by prefix (`a andb` is rejected while `and(` is
//! accepted), `exists` needs nothing after it (`x.y existsand m`), values after string
//! operators are strings even when they look like numbers, each `not` toggles, and
//! `a or(b) and c` is rejected because a parenthesised operand of `or` ends the `or` chain.
//!
//! Where this parser departs from libsinsp it only turns nonsense libsinsp would accept into an
//! error: `and`/`or`/`not` are not taken as macro names, list operators must end at a word
//! boundary (libsinsp reads `x.y inabc` as `x.y in abc`), and single-operand transformers
//! (`tolower`, `toupper`, `b64`, `basename`, `len`) take exactly one field or transformer.
//! Two string details follow the documented grammar rather than libsinsp's lexer: a quote
//! after an escaped backslash closes the string (`"a\\"`), and `\xHH` is accepted (ASCII only).
//!
//! Positions are 1-based line/column relative to the parsed text, with `source` 0; columns
//! count characters and `\n`, `\r\n` or a lone `\r` start a new line.

use super::ast::{
    Check, Expr, FieldRef, Modifier, Op, Operand, Pos, Rhs, TransformArg, Transformer, Value,
};

/// Maximum recursion depth of the parser, counted in nested parsing steps much like libsinsp's
/// depth guard (Falco's rule loader sets 1000), so hostile input errors out instead of
/// overflowing the stack. One level of parentheses costs five steps, as in libsinsp (about
/// 200 levels fit); one level of transformer nesting costs eight (about 120 levels fit).
pub const MAX_DEPTH: u32 = 1000;

/// Extra depth charged per transformer call: its frames are bigger than those of a
/// parenthesis level, and the budget is what keeps debug builds within a 2 MiB thread stack.
const TRANSFORMER_DEPTH_COST: u32 = 5;

/// A syntax error in a condition or an output-string operand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What went wrong, worded after libsinsp's messages.
    pub message: String,
    /// The offending character (1-based, relative to the parsed text, `source` 0).
    pub pos: Pos,
}

/// Parses a whole condition; the entire input must be consumed.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(text);
    if text.is_empty() {
        return Err(parser.error("filter input string is empty"));
    }
    let expr = parser.parse_or()?;
    parser.expect_end()?;
    Ok(*expr)
}

/// Parses the longest field-or-transformer prefix of `text` (as found after `%` in an output
/// string, e.g. `proc.aname[2]` or `tolower(proc.name)`) and returns it with the number of
/// bytes it spans. Leading blanks are not skipped: a `%` must be followed by the operand.
pub fn parse_operand(text: &str) -> Result<(Operand, usize), ParseError> {
    let mut parser = Parser::new(text);
    match parser.lhs_operand()? {
        Some(operand) => Ok((operand, parser.idx)),
        None => Err(parser.error("expected a field or a field transformer")),
    }
}

/// Every operator, in the order libsinsp lists them in its error message.
const OPERATOR_LIST: &str = "'exists', '<=', '<', '>=', '>', '==', '=', '!=', 'glob', 'iglob', \
     'contains', 'icontains', 'bcontains', 'startswith', 'bstartswith', 'endswith', 'regex', \
     'intersects', 'in', 'pmatch'";

/// Symbol operators; a longer symbol comes before its prefix so `<=` is not read as `<`.
const SYMBOL_OPS: [(&str, Op); 7] = [
    ("<=", Op::Le),
    ("<", Op::Lt),
    (">=", Op::Ge),
    (">", Op::Gt),
    ("==", Op::Eq),
    ("=", Op::Eq),
    ("!=", Op::Ne),
];

/// Word operators other than `exists`.
const WORD_OPS: [(&str, Op); 12] = [
    ("glob", Op::Glob),
    ("iglob", Op::IGlob),
    ("contains", Op::Contains),
    ("icontains", Op::IContains),
    ("bcontains", Op::BContains),
    ("startswith", Op::StartsWith),
    ("bstartswith", Op::BStartsWith),
    ("endswith", Op::EndsWith),
    ("regex", Op::Regex),
    ("intersects", Op::Intersects),
    ("in", Op::In),
    ("pmatch", Op::PMatch),
];

/// Transformers usable on either side of a check (`val` is right-hand side only).
const TRANSFORMERS: [(&str, Transformer); 8] = [
    ("tolower", Transformer::ToLower),
    ("toupper", Transformer::ToUpper),
    ("b64", Transformer::B64),
    ("basename", Transformer::Basename),
    ("len", Transformer::Len),
    ("join", Transformer::Join),
    ("concat", Transformer::Concat),
    ("getopt", Transformer::Getopt),
];

/// What an operator expects on its right-hand side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Unary,
    Num,
    Str,
    List,
}

fn op_kind(op: Op) -> OpKind {
    match op {
        Op::Exists => OpKind::Unary,
        Op::Lt | Op::Le | Op::Gt | Op::Ge => OpKind::Num,
        Op::In | Op::Intersects | Op::PMatch => OpKind::List,
        _ => OpKind::Str,
    }
}

/// A saved cursor: modifiers need lookahead past blanks, and string errors point back at
/// the opening quote.
#[derive(Clone, Copy)]
struct Mark {
    idx: usize,
    line: u32,
    col: u32,
    last: (usize, usize),
}

/// Cursor over the input plus the recursion budget.
struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the cursor.
    idx: usize,
    line: u32,
    col: u32,
    depth: u32,
    /// Byte range of the last token, quoted by "unexpected token after ..." like libsinsp.
    last: (usize, usize),
}

type Parsed<T> = Result<T, ParseError>;

// Cursor primitives.
impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            idx: 0,
            line: 1,
            col: 1,
            depth: 0,
            last: (0, 0),
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.idx..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn pos(&self) -> Pos {
        Pos {
            source: 0,
            line: self.line,
            col: self.col,
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        error_at(self.pos(), message)
    }

    fn last_token(&self) -> &'a str {
        &self.text[self.last.0..self.last.1]
    }

    fn mark(&self) -> Mark {
        Mark {
            idx: self.idx,
            line: self.line,
            col: self.col,
            last: self.last,
        }
    }

    fn reset(&mut self, mark: Mark) {
        self.idx = mark.idx;
        self.line = mark.line;
        self.col = mark.col;
        self.last = mark.last;
    }

    /// Moves the cursor `len` bytes forward, keeping line and column in step.
    fn advance(&mut self, len: usize) {
        let end = self.idx + len;
        for (offset, c) in self.text[self.idx..end].char_indices() {
            self.step(c, self.idx + offset);
        }
        self.idx = end;
    }

    fn step(&mut self, c: char, at: usize) {
        match c {
            // The '\n' of a CRLF pair counts the line break.
            '\r' if self.text.as_bytes().get(at + 1) == Some(&b'\n') => {}
            '\n' | '\r' => {
                self.line += 1;
                self.col = 1;
            }
            _ => self.col += 1,
        }
    }

    /// Consumes `len` bytes as a token and returns them.
    fn token(&mut self, len: usize) -> &'a str {
        let start = self.idx;
        self.advance(len);
        self.last = (start, self.idx);
        &self.text[start..self.idx]
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.rest().starts_with(literal);
        if found {
            self.token(literal.len());
        }
        found
    }

    /// Skips BLANKs (space, tab, backspace, CR, LF — not FF/VT, as in libsinsp) and tells
    /// whether there were any.
    fn skip_blanks(&mut self) -> bool {
        let len = self.rest().bytes().take_while(|b| is_blank(*b)).count();
        self.advance(len);
        len > 0
    }

    /// Takes one step of the depth budget. Every recursive function calls this first and
    /// [`Parser::leave`] on success; an error ends the whole parse, so error paths need not
    /// give the step back. (A wrapper taking a closure would be tidier but doubles the
    /// frames per level, and debug-build frames are what bounds the depth we can afford.)
    fn enter(&mut self) -> Parsed<()> {
        self.enter_by(1)
    }

    fn enter_by(&mut self, cost: u32) -> Parsed<()> {
        self.depth += cost;
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("exceeded max depth limit of {MAX_DEPTH}")));
        }
        Ok(())
    }

    /// Gives back a step of the depth budget, passing `value` through.
    fn leave<T>(&mut self, value: T) -> T {
        self.leave_by(1, value)
    }

    fn leave_by<T>(&mut self, cost: u32, value: T) -> T {
        self.depth -= cost;
        value
    }

    fn expect_end(&self) -> Parsed<()> {
        if self.idx == self.text.len() {
            return Ok(());
        }
        Err(self.error(format!(
            "unexpected token after '{}', expecting 'or', 'and'",
            self.last_token()
        )))
    }
}

// Boolean structure: or > and > not > check.
impl Parser<'_> {
    // The recursive functions below pass `Box<Expr>` around and keep their frames free of
    // message formatting: debug-build frames holding 160-byte `Expr` temporaries cost ~10 KiB
    // of stack per parenthesis level, too much for MAX_DEPTH on a 2 MiB thread.

    fn parse_or(&mut self) -> Parsed<Box<Expr>> {
        self.enter()?;
        self.skip_blanks();
        let pos = self.pos();
        let first = self.parse_and()?;
        let mut rest = Vec::new();
        self.skip_blanks();
        while self.eat("or") {
            let next = self.keyword_operand("or", Self::parse_and)?;
            splice(&mut rest, next, Connective::Or);
            self.skip_blanks();
        }
        Ok(self.leave(combine(first, rest, pos, Connective::Or)))
    }

    fn parse_and(&mut self) -> Parsed<Box<Expr>> {
        self.enter()?;
        self.skip_blanks();
        let pos = self.pos();
        let first = self.parse_not()?;
        let mut rest = Vec::new();
        self.skip_blanks();
        while self.eat("and") {
            let next = self.keyword_operand("and", Self::parse_not)?;
            splice(&mut rest, next, Connective::And);
            self.skip_blanks();
        }
        Ok(self.leave(combine(first, rest, pos, Connective::And)))
    }

    /// What follows `and`/`or`: a blank then the next operand, or directly a parenthesised
    /// expression (libsinsp matches the keyword as a prefix, so `andb` lands here).
    fn keyword_operand(
        &mut self,
        keyword: &'static str,
        operand: fn(&mut Self) -> Parsed<Box<Expr>>,
    ) -> Parsed<Box<Expr>> {
        if self.skip_blanks() {
            return operand(self);
        }
        if self.eat("(") {
            return self.group_rest();
        }
        Err(self.blank_expected(keyword))
    }

    fn parse_not(&mut self) -> Parsed<Box<Expr>> {
        self.enter()?;
        self.skip_blanks();
        let pos = self.pos();
        let mut negate = false;
        while self.eat_not_blank() {
            negate = !negate;
        }
        let child = if self.eat("not(") {
            negate = !negate;
            self.group_rest()?
        } else {
            self.check()?
        };
        let expr = if negate {
            Box::new(Expr::Not(child, pos))
        } else {
            child
        };
        Ok(self.leave(expr))
    }

    /// `not` followed by at least one blank.
    fn eat_not_blank(&mut self) -> bool {
        let bytes = self.rest().as_bytes();
        let found = bytes.starts_with(b"not") && bytes.get(3).is_some_and(|b| is_blank(*b));
        if found {
            self.token(3);
            self.skip_blanks();
        }
        found
    }

    fn check(&mut self) -> Parsed<Box<Expr>> {
        self.enter()?;
        self.skip_blanks();
        let expr = if self.eat("(") {
            self.group_rest()?
        } else if let Some(expr) = self.field_check()? {
            expr
        } else {
            self.macro_ref()?
        };
        Ok(self.leave(expr))
    }

    /// A check whose left-hand side is a field or transformer, if one starts here.
    fn field_check(&mut self) -> Parsed<Option<Box<Expr>>> {
        match self.lhs_operand()? {
            Some(lhs) => Ok(Some(Box::new(self.condition(lhs)?))),
            None => Ok(None),
        }
    }

    fn macro_ref(&mut self) -> Parsed<Box<Expr>> {
        let pos = self.pos();
        let len = identifier_len(self.rest());
        let word = &self.rest()[..len];
        if len == 0 || is_keyword(word) {
            let found = if len > 0 {
                format!(", found '{word}'")
            } else {
                String::new()
            };
            return Err(self.error(format!(
                "expected a '(' token, a field check, or an identifier{found}"
            )));
        }
        Ok(Box::new(Expr::Macro(self.token(len).to_owned(), pos)))
    }

    /// The rest of `( Expr )` after the opening parenthesis.
    fn group_rest(&mut self) -> Parsed<Box<Expr>> {
        self.enter()?;
        let expr = self.parse_or()?;
        if !self.eat(")") {
            return Err(self.error("expected ')'"));
        }
        Ok(self.leave(expr))
    }

    fn blank_expected(&self, keyword: &str) -> ParseError {
        self.error(format!("expected blank or '(' after '{keyword}'"))
    }
}

// Checks: `lhs op rhs`.
impl Parser<'_> {
    fn condition(&mut self, lhs: Operand) -> Parsed<Expr> {
        self.skip_blanks();
        let op = self.operator()?;
        let (modifier, rhs) = match op_kind(op) {
            OpKind::Unary => (None, Rhs::None),
            OpKind::Num => (None, self.num_rhs(op)?),
            OpKind::List => (None, self.list_rhs(true)?),
            OpKind::Str => match self.modifier() {
                Some(modifier) => (Some(modifier), self.list_rhs(false)?),
                None => (None, self.str_rhs(op)?),
            },
        };
        let pos = lhs.pos();
        Ok(Expr::Check(Check {
            lhs,
            op,
            modifier,
            rhs,
            pos,
        }))
    }

    fn operator(&mut self) -> Parsed<Op> {
        let rest = self.rest();
        // A prefix match, as in libsinsp: `existsand m` is `exists` then `and m`.
        if self.eat("exists") {
            return Ok(Op::Exists);
        }
        if let Some((symbol, op)) = SYMBOL_OPS.iter().find(|(s, _)| rest.starts_with(s)) {
            self.token(symbol.len());
            return Ok(*op);
        }
        let len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let word = &rest[..len];
        let Some((_, op)) = WORD_OPS.iter().find(|(w, _)| *w == word) else {
            return Err(self.unknown_operator(word));
        };
        // libsinsp spells string word operators with a trailing space ("contains ").
        let blank_after = rest.as_bytes().get(len).is_some_and(|b| is_blank(*b));
        if op_kind(*op) == OpKind::Str && !blank_after {
            self.token(len);
            return Err(self.error(format!("expected a blank after '{word}'")));
        }
        self.token(len);
        Ok(*op)
    }

    fn unknown_operator(&self, word: &str) -> ParseError {
        let message = match (word.is_empty(), self.peek()) {
            (false, _) => format!("unknown operator '{word}', expecting one of {OPERATOR_LIST}"),
            (true, Some(c)) => format!("unknown operator '{c}', expecting one of {OPERATOR_LIST}"),
            (true, None) => format!(
                "expected an operator after '{}', one of {OPERATOR_LIST}",
                self.last_token()
            ),
        };
        self.error(message)
    }

    /// `oneof`/`anyof`/`allof` after a string operator, taken only when a list or an
    /// identifier (other than a keyword) follows; otherwise the word is the value itself.
    fn modifier(&mut self) -> Option<Modifier> {
        let mark = self.mark();
        self.skip_blanks();
        let found = self.modifier_word();
        if found.is_none() {
            self.reset(mark);
        }
        found
    }

    fn modifier_word(&mut self) -> Option<Modifier> {
        let rest = self.rest();
        let len = identifier_len(rest);
        let modifier = match &rest[..len] {
            "oneof" => Modifier::OneOf,
            "anyof" => Modifier::AnyOf,
            "allof" => Modifier::AllOf,
            _ => return None,
        };
        // `oneof:x` or `oneof.x` would be one bare string, not a modifier.
        if !rest
            .as_bytes()
            .get(len)
            .is_some_and(|b| *b == b'(' || is_blank(*b))
        {
            return None;
        }
        self.token(len);
        self.skip_blanks();
        let next = self.rest();
        let ident = identifier_len(next);
        let list_follows = next.starts_with('(') || (ident > 0 && !is_keyword(&next[..ident]));
        list_follows.then_some(modifier)
    }

    fn num_rhs(&mut self, op: Op) -> Parsed<Rhs> {
        self.skip_blanks();
        if let Some(operand) = self.transformer_or_val()? {
            return Ok(Rhs::Operand(operand));
        }
        let pos = self.pos();
        let len = number_len(self.rest());
        if len == 0 {
            return Err(self.error(format!("expected a number value after '{}'", op.as_str())));
        }
        let text = self.token(len).to_owned();
        Ok(Rhs::Value(Value {
            text,
            quoted: false,
            pos,
        }))
    }

    fn str_rhs(&mut self, op: Op) -> Parsed<Rhs> {
        self.skip_blanks();
        if let Some(operand) = self.transformer_or_val()? {
            return Ok(Rhs::Operand(operand));
        }
        match self.value()? {
            Some(value) => Ok(Rhs::Value(value)),
            None => Err(self.error(format!("expected a value after '{}'", op.as_str()))),
        }
    }

    /// A list literal or a list name; list operators (not modifiers) also take an operand.
    fn list_rhs(&mut self, operand_allowed: bool) -> Parsed<Rhs> {
        self.skip_blanks();
        let pos = self.pos();
        if self.eat("(") {
            return Ok(Rhs::List(self.list_values()?, pos));
        }
        if operand_allowed && let Some(operand) = self.transformer_or_val()? {
            return Ok(Rhs::Operand(operand));
        }
        let len = identifier_len(self.rest());
        if len > 0 {
            return Ok(Rhs::ListName(self.token(len).to_owned(), pos));
        }
        Err(self.error(if operand_allowed {
            "expected a list, an identifier, or a field with a valid transformer"
        } else {
            "expected a list or an identifier after the modifier"
        }))
    }

    /// The values of a list literal, after its opening parenthesis; `()` is empty.
    fn list_values(&mut self) -> Parsed<Vec<Value>> {
        let mut values = Vec::new();
        self.skip_blanks();
        if self.eat(")") {
            return Ok(values);
        }
        loop {
            self.skip_blanks();
            match self.value()? {
                Some(value) => values.push(value),
                None => return Err(self.error("expected a value")),
            }
            self.skip_blanks();
            if self.eat(",") {
                continue;
            }
            if self.eat(")") {
                return Ok(values);
            }
            return Err(self.error("expected ',' or ')'"));
        }
    }

    /// A quoted or bare string.
    fn value(&mut self) -> Parsed<Option<Value>> {
        let pos = self.pos();
        if let Some(text) = self.quoted()? {
            return Ok(Some(Value {
                text,
                quoted: true,
                pos,
            }));
        }
        let len = prefix_len(self.rest(), is_bare_str_char);
        if len == 0 {
            return Ok(None);
        }
        let text = self.token(len).to_owned();
        Ok(Some(Value {
            text,
            quoted: false,
            pos,
        }))
    }
}

// Operands: fields, transformers, `val()`.
impl Parser<'_> {
    /// A field or a transformer (not `val`), as on the left of a check or after `%`.
    fn lhs_operand(&mut self) -> Parsed<Option<Operand>> {
        self.enter()?;
        let operand = match self.field()? {
            Some(field) => Some(Operand::Field(field)),
            None => self.transformer()?,
        };
        Ok(self.leave(operand))
    }

    fn field(&mut self) -> Parsed<Option<FieldRef>> {
        let len = field_name_len(self.rest());
        if len == 0 {
            return Ok(None);
        }
        let pos = self.pos();
        let name = self.token(len).to_owned();
        let arg = self.bracket_arg()?;
        Ok(Some(FieldRef { name, arg, pos }))
    }

    /// `[arg]` directly after a field name or a transformer call.
    fn bracket_arg(&mut self) -> Parsed<Option<String>> {
        if !self.eat("[") {
            return Ok(None);
        }
        let arg = match self.quoted()? {
            Some(text) => text,
            None => {
                let len = prefix_len(self.rest(), is_field_arg_char);
                if len == 0 {
                    return Err(self.error(
                        "expected a valid field argument: a quoted string or a bare string",
                    ));
                }
                self.token(len).to_owned()
            }
        };
        if !self.eat("]") {
            return Err(self.error("expected ']'"));
        }
        Ok(Some(arg))
    }

    fn transformer_or_val(&mut self) -> Parsed<Option<Operand>> {
        if self.rest().starts_with("val(") {
            return self.val().map(Some);
        }
        self.transformer()
    }

    fn val(&mut self) -> Parsed<Operand> {
        let pos = self.pos();
        self.token("val(".len());
        self.skip_blanks();
        let Some(field) = self.field()? else {
            return Err(self.error("expected a field within 'val' transformer"));
        };
        self.skip_blanks();
        if !self.eat(")") {
            return Err(self.error("expected ')' closing the transformer"));
        }
        Ok(Operand::Transform {
            func: Transformer::Val,
            args: vec![TransformArg::Operand(Operand::Field(field))],
            arg: None,
            pos,
        })
    }

    fn transformer(&mut self) -> Parsed<Option<Operand>> {
        let Some((func, name_len)) = transformer_call(self.rest()) else {
            return Ok(None);
        };
        self.enter_by(TRANSFORMER_DEPTH_COST)?;
        let pos = self.pos();
        self.token(name_len + 1);
        let args = self.transformer_args(func)?;
        let arg = self.bracket_arg()?;
        let operand = Operand::Transform {
            func,
            args,
            arg,
            pos,
        };
        Ok(self.leave_by(TRANSFORMER_DEPTH_COST, Some(operand)))
    }

    /// Arguments up to and including the closing parenthesis.
    fn transformer_args(&mut self, func: Transformer) -> Parsed<Vec<TransformArg>> {
        self.enter()?;
        let single = takes_single_operand(func);
        let mut args = Vec::new();
        loop {
            self.skip_blanks();
            let arg = self.transformer_arg(single)?;
            args.push(arg);
            self.skip_blanks();
            if !single && self.eat(",") {
                continue;
            }
            if self.eat(")") {
                return Ok(self.leave(args));
            }
            return Err(self.close_expected(single));
        }
    }

    fn transformer_arg(&mut self, operand_only: bool) -> Parsed<TransformArg> {
        self.enter()?;
        let arg = match self.lhs_operand()? {
            Some(operand) => TransformArg::Operand(operand),
            None if operand_only => return Err(self.operand_expected()),
            None => self.literal_arg()?,
        };
        Ok(self.leave(arg))
    }

    /// A number, quoted string or list argument of a multi-argument transformer.
    fn literal_arg(&mut self) -> Parsed<TransformArg> {
        let pos = self.pos();
        if let Some(text) = self.quoted()? {
            return Ok(TransformArg::Literal(text, pos));
        }
        let len = number_len(self.rest());
        if len > 0 {
            return Ok(TransformArg::Literal(self.token(len).to_owned(), pos));
        }
        if self.eat("(") {
            return Ok(TransformArg::List(self.list_values()?, pos));
        }
        Err(self
            .error("expected a field, a nested transformer, a number, a quoted string or a list"))
    }

    fn close_expected(&self, single: bool) -> ParseError {
        self.error(if single {
            "expected ')' closing the transformer"
        } else {
            "expected ',' or ')' closing the transformer"
        })
    }

    fn operand_expected(&self) -> ParseError {
        self.error("expected a field or a nested valid transformer")
    }
}

// Quoted strings.
impl Parser<'_> {
    /// A `'...'` or `"..."` string, unescaped; `None` if no quote is at the cursor.
    fn quoted(&mut self) -> Parsed<Option<String>> {
        let Some(delim) = self.peek().filter(|c| matches!(c, '"' | '\'')) else {
            return Ok(None);
        };
        let start = self.mark();
        self.advance(1);
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(error_at(pos_of(start), "unterminated string")),
                Some(c) if c == delim => break,
                Some('\\') => text.push(self.escape(delim, start)?),
                Some(c) => {
                    text.push(c);
                    self.advance(c.len_utf8());
                }
            }
        }
        self.advance(1);
        self.last = (start.idx, self.idx);
        Ok(Some(text))
    }

    /// One escape sequence, cursor on the backslash (escapes as in libsinsp's escaping.cpp).
    fn escape(&mut self, delim: char, start: Mark) -> Parsed<char> {
        let at = self.pos();
        self.advance(1);
        let Some(c) = self.peek() else {
            return Err(error_at(pos_of(start), "unterminated string"));
        };
        let decoded = match c {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            // `\ ` is a legacy spelling of a backslash still found in rules files.
            '\\' | ' ' => '\\',
            '/' => '/',
            '"' | '\'' if c == delim => c,
            '"' | '\'' => {
                return Err(error_at(
                    at,
                    format!("invalid escape sequence '\\{c}' in a {delim}-quoted string"),
                ));
            }
            'x' => return self.hex_escape(at),
            _ => return Err(error_at(at, format!("invalid escape sequence '\\{c}'"))),
        };
        self.advance(c.len_utf8());
        Ok(decoded)
    }

    /// `\xHH`, cursor on the `x`; only ASCII, since values are UTF-8 strings and a lone
    /// high byte would have no faithful representation.
    fn hex_escape(&mut self, at: Pos) -> Parsed<char> {
        let digits = self
            .rest()
            .get(1..3)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(byte) = digits.and_then(|d| u8::from_str_radix(d, 16).ok()) else {
            return Err(error_at(
                at,
                "invalid escape sequence '\\x': expected two hex digits",
            ));
        };
        if !byte.is_ascii() {
            return Err(error_at(
                at,
                format!("invalid escape sequence '\\x{byte:02x}': only \\x00-\\x7f are supported"),
            ));
        }
        self.advance(3);
        Ok(char::from(byte))
    }
}

/// `and` or `or` node kinds, for flattening.
#[derive(Clone, Copy)]
enum Connective {
    And,
    Or,
}

/// Builds an n-ary node from `first` and the already spliced `rest`, or returns `first` alone.
fn combine(first: Box<Expr>, rest: Vec<Expr>, pos: Pos, kind: Connective) -> Box<Expr> {
    if rest.is_empty() {
        return first;
    }
    let mut children = Vec::with_capacity(rest.len() + 1);
    splice(&mut children, first, kind);
    children.extend(rest);
    Box::new(match kind {
        Connective::And => Expr::And(children, pos),
        Connective::Or => Expr::Or(children, pos),
    })
}

/// Appends `child`, flattening a node of the same kind (from parentheses) into its children.
#[expect(
    clippy::boxed_local,
    reason = "unboxing here keeps `Expr` temporaries out of the recursive callers' frames"
)]
fn splice(children: &mut Vec<Expr>, child: Box<Expr>, kind: Connective) {
    match (kind, *child) {
        (Connective::And, Expr::And(inner, _)) | (Connective::Or, Expr::Or(inner, _)) => {
            children.extend(inner);
        }
        (_, other) => children.push(other),
    }
}

fn error_at(pos: Pos, message: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        pos,
    }
}

fn pos_of(mark: Mark) -> Pos {
    Pos {
        source: 0,
        line: mark.line,
        col: mark.col,
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "not")
}

fn takes_single_operand(func: Transformer) -> bool {
    matches!(
        func,
        Transformer::ToLower
            | Transformer::ToUpper
            | Transformer::B64
            | Transformer::Basename
            | Transformer::Len
    )
}

/// A transformer name directly followed by `(`, with the name's length.
fn transformer_call(text: &str) -> Option<(Transformer, usize)> {
    let len = identifier_len(text);
    if text.as_bytes().get(len) != Some(&b'(') {
        return None;
    }
    TRANSFORMERS
        .iter()
        .find(|(name, _)| *name == &text[..len])
        .map(|(_, func)| (*func, len))
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x08 | b'\r' | b'\n')
}

/// `[^()"' \t\n\r\f\v=,]`
fn is_bare_str_char(c: char) -> bool {
    !matches!(
        c,
        '(' | ')' | '"' | '\'' | ' ' | '\t' | '\n' | '\r' | '\u{c}' | '\u{b}' | '=' | ','
    )
}

/// `[^][\"' \t\n\r\f\v]`
fn is_field_arg_char(c: char) -> bool {
    !matches!(
        c,
        '[' | ']' | '"' | '\'' | ' ' | '\t' | '\n' | '\r' | '\u{c}' | '\u{b}'
    )
}

/// Byte length of the longest prefix whose characters satisfy `pred`.
fn prefix_len(text: &str, pred: fn(char) -> bool) -> usize {
    text.char_indices()
        .find(|(_, c)| !pred(*c))
        .map_or(text.len(), |(i, _)| i)
}

fn ascii_prefix_len(bytes: &[u8], pred: fn(&u8) -> bool) -> usize {
    bytes.iter().take_while(|b| pred(b)).count()
}

fn is_word_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'_'
}

/// `[a-zA-Z]+[a-zA-Z0-9_]*`, or 0.
fn identifier_len(text: &str) -> usize {
    match text.as_bytes().first() {
        Some(b) if b.is_ascii_alphabetic() => {
            1 + ascii_prefix_len(&text.as_bytes()[1..], is_word_byte)
        }
        _ => 0,
    }
}

/// `Identifier(\.Identifier)+`, or 0.
fn field_name_len(text: &str) -> usize {
    let mut len = identifier_len(text);
    if len == 0 {
        return 0;
    }
    let mut segments = 1;
    while text.as_bytes().get(len) == Some(&b'.') {
        let segment = identifier_len(&text[len + 1..]);
        if segment == 0 {
            break;
        }
        len += 1 + segment;
        segments += 1;
    }
    if segments > 1 { len } else { 0 }
}

/// `0[xX][0-9a-fA-F]+` or `[+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?`, or 0.
fn number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'X') {
        let digits = ascii_prefix_len(&bytes[2..], u8::is_ascii_hexdigit);
        if digits > 0 {
            return 2 + digits;
        }
    }
    let mut len = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let integer = ascii_prefix_len(&bytes[len..], u8::is_ascii_digit);
    if integer == 0 {
        return 0;
    }
    len += integer;
    if bytes.get(len) == Some(&b'.') {
        len += 1 + ascii_prefix_len(&bytes[len + 1..], u8::is_ascii_digit);
    }
    len + exponent_len(&bytes[len..])
}

/// `[eE][+-][0-9]+`, or 0.
fn exponent_len(bytes: &[u8]) -> usize {
    if bytes.len() < 3 || !matches!(bytes[0], b'e' | b'E') || !matches!(bytes[1], b'+' | b'-') {
        return 0;
    }
    match ascii_prefix_len(&bytes[2..], u8::is_ascii_digit) {
        0 => 0,
        digits => 2 + digits,
    }
}

//! A YAML tree whose every node knows where it starts in its file.
//!
//! Built from `libyaml-safer`'s event stream (a safe port of libyaml, which like Falco's yaml-cpp
//! accepts the real rules files' loosely indented flow sequences): a generic YAML value type
//! would drop positions, and the loader must point every diagnostic (and every condition
//! token) at file/line/column.

use std::collections::HashMap;

use libyaml_safer::{Error, Event, EventData, Mark, Parser, ScalarStyle};

use crate::rules::condition::ast::Pos;

/// How a scalar was written; mapping condition characters back to the file depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted, possibly spanning lines.
    Plain,
    /// `'...'`.
    SingleQuoted,
    /// `"..."`.
    DoubleQuoted,
    /// `|` block.
    Literal,
    /// `>` block.
    Folded,
}

/// A scalar's decoded text plus what is needed to find its characters in the file.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    /// The decoded value (quotes removed, escapes and line folding applied).
    pub(crate) text: String,
    /// How it was written.
    pub(crate) style: Style,
}

/// The shape of a node.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A scalar (also used for YAML nulls, see [`Node::is_null`]).
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

/// A YAML node with its start position.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// What it holds.
    pub(crate) value: Value,
    /// Where it starts (1-based line and column, in characters).
    pub(crate) pos: Pos,
}

impl Node {
    /// The scalar, if this is a non-null scalar.
    pub(crate) fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) if !self.is_null() => Some(s),
            _ => None,
        }
    }

    /// The scalar text, if this is a non-null scalar.
    pub(crate) fn text(&self) -> Option<&str> {
        self.scalar().map(|s| s.text.as_str())
    }

    /// The items, if this is a sequence.
    pub(crate) fn seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub(crate) fn map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// YAML null: an empty plain scalar or one of the core-schema null spellings. Quoted
    /// scalars are never null, as in yaml-cpp.
    pub(crate) fn is_null(&self) -> bool {
        match &self.value {
            Value::Scalar(s) => {
                s.style == Style::Plain
                    && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
            _ => false,
        }
    }

    /// The value under `key` in a mapping (the first one, if the key repeats).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value under `key` in a mapping.
    pub(crate) fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.map()?
            .iter()
            .find(|(k, _)| k.text() == Some(key))
            .map(|(k, v)| (k, v))
    }
}

/// A YAML syntax error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct SyntaxError {
    /// The scanner's or parser's message.
    pub(crate) message: String,
    /// Where it was detected.
    pub(crate) pos: Pos,
}

/// Parses every document of a YAML stream; `None` stands for an empty document.
pub(crate) fn parse(text: &str, source: u32) -> Result<Vec<Option<Node>>, SyntaxError> {
    let mut builder = Builder {
        source,
        ..Builder::default()
    };
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    loop {
        let event = parser.parse().map_err(|e| syntax_error(&e, source))?;
        if event.data == EventData::StreamEnd {
            return Ok(builder.docs);
        }
        builder.on_event(event);
    }
}

fn syntax_error(e: &Error, source: u32) -> SyntaxError {
    let mut message = e.problem().to_string();
    if let (Some(context), Some(mark)) = (e.context(), e.context_mark()) {
        let at = to_pos(mark, source);
        message = format!(
            "{message} {context} (started at line {}, column {})",
            at.line, at.col
        );
    }
    let pos = e.problem_mark().map_or(
        Pos {
            source,
            line: 1,
            col: 1,
        },
        |m| to_pos(m, source),
    );
    SyntaxError { message, pos }
}

fn to_pos(mark: Mark, source: u32) -> Pos {
    // libyaml marks are 0-based; diagnostics and the AST are 1-based.
    Pos {
        source,
        line: u32::try_from(mark.line + 1).unwrap_or(u32::MAX),
        col: u32::try_from(mark.column + 1).unwrap_or(u32::MAX),
    }
}

fn style(style: ScalarStyle) -> Style {
    match style {
        ScalarStyle::SingleQuoted => Style::SingleQuoted,
        ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        ScalarStyle::Literal => Style::Literal,
        ScalarStyle::Folded => Style::Folded,
        _ => Style::Plain,
    }
}

/// A container under construction.
enum Open {
    Seq(Vec<Node>, Pos, Option<String>),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, Option<String>),
}

#[derive(Default)]
struct Builder {
    source: u32,
    stack: Vec<Open>,
    docs: Vec<Option<Node>>,
    anchors: HashMap<String, Node>,
    in_doc: bool,
}

impl Builder {
    fn on_event(&mut self, event: Event) {
        let pos = to_pos(event.start_mark, self.source);
        match event.data {
            EventData::DocumentStart { .. } => self.in_doc = true,
            EventData::DocumentEnd { .. } => {
                if self.in_doc {
                    self.docs.push(None);
                    self.in_doc = false;
                }
            }
            EventData::Scalar {
                anchor,
                value,
                style: st,
                ..
            } => {
                let scalar = Scalar {
                    text: value,
                    style: style(st),
                };
                self.finish(
                    Node {
                        value: Value::Scalar(scalar),
                        pos,
                    },
                    anchor,
                );
            }
            EventData::SequenceStart { anchor, .. } => {
                self.stack.push(Open::Seq(Vec::new(), pos, anchor))
            }
            EventData::MappingStart { anchor, .. } => {
                self.stack.push(Open::Map(Vec::new(), None, pos, anchor))
            }
            EventData::SequenceEnd | EventData::MappingEnd => self.close(),
            EventData::Alias { anchor } => {
                // libyaml rejects undefined aliases; a null keeps the tree whole regardless.
                let node = self.anchors.get(&anchor).cloned().unwrap_or(Node {
                    value: Value::Scalar(Scalar {
                        text: String::new(),
                        style: Style::Plain,
                    }),
                    pos,
                });
                self.finish(node, None);
            }
            EventData::StreamStart { .. } | EventData::StreamEnd => {}
        }
    }

    fn finish(&mut self, node: Node, anchor: Option<String>) {
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, pending, ..)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            None => {
                self.docs.push(Some(node));
                self.in_doc = false;
            }
        }
    }

    fn close(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        let (node, anchor) = match open {
            Open::Seq(items, pos, anchor) => (
                Node {
                    value: Value::Seq(items),
                    pos,
                },
                anchor,
            ),
            Open::Map(entries, _, pos, anchor) => (
                Node {
                    value: Value::Map(entries),
                    pos,
                },
                anchor,
            ),
        };
        self.finish(node, anchor);
    }
}

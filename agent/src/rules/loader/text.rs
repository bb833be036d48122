//! Text whose every character remembers where in which file it came from.
//!
//! Conditions are not parsed as written: appends concatenate pieces from different items
//! (possibly different files), exceptions are compiled by rewriting the text, and lists are
//! substituted textually. Carrying a position per character through all of that is the
//! simplest way to report a parser error (or an AST node) at the file position of what the
//! user actually wrote.

use std::ops::Range;

use super::source::SourceFile;
use super::yaml::{Node, Style};
use crate::rules::condition::ast::Pos;

/// How many non-blank file characters the scalar mapper may skip to find the next decoded
/// character: enough for quote doubling, escapes (`\U0001F600`) and `\` line continuations.
const MAX_SKIP: usize = 12;

/// A string plus one origin per character (and one for the end of the text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MappedText {
    text: String,
    /// `pos[i]` is the origin of the `i`-th character; the last entry is the end position.
    pos: Vec<Pos>,
}

impl MappedText {
    /// Generated text: every character maps to `at`.
    pub(crate) fn synthetic(text: &str, at: Pos) -> Self {
        Self {
            text: text.to_string(),
            pos: vec![at; text.chars().count() + 1],
        }
    }

    /// A YAML scalar's decoded text, each character mapped to its place in the file.
    ///
    /// YAML decoding only removes quotes, escapes, indentation and folds line breaks, so the
    /// decoded characters appear in the file in order: walk both, skipping blanks freely and
    /// a few other characters at most. That handles plain, quoted and block scalars alike,
    /// on one line or many, without re-implementing YAML's folding rules.
    pub(crate) fn from_scalar(file: &SourceFile, node: &Node) -> Self {
        let Some(scalar) = node.scalar() else {
            return Self::synthetic("", node.pos);
        };
        let mut cursor = Cursor::new(file, node.pos);
        match scalar.style {
            Style::SingleQuoted | Style::DoubleQuoted => cursor.advance(file),
            // A block scalar starts at its `>`/`|` header; the text starts on the next line.
            Style::Literal | Style::Folded => cursor.next_line(file),
            Style::Plain => {}
        }
        let mut pos = Vec::with_capacity(scalar.text.len() + 1);
        let escapes = scalar.style == Style::DoubleQuoted;
        for c in scalar.text.chars() {
            if escapes {
                cursor.skip_continuations(file);
                if let Some(len) = cursor.escape_len(file) {
                    // An escape sequence decodes to exactly one character.
                    pos.push(cursor.pos);
                    (0..len).for_each(|_| cursor.advance(file));
                    continue;
                }
            }
            if c.is_whitespace() {
                pos.push(cursor.pos);
                if file.char_at(cursor.index).is_some_and(char::is_whitespace) {
                    cursor.advance(file);
                }
            } else {
                cursor.seek(file, c);
                pos.push(cursor.pos);
                cursor.advance(file);
            }
        }
        pos.push(cursor.pos);
        Self {
            text: scalar.text.clone(),
            pos,
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the first character (or the end, if empty) came from.
    pub(crate) fn start(&self) -> Pos {
        self.pos.first().copied().unwrap_or_default()
    }

    /// Appends another mapped text.
    pub(crate) fn append(&mut self, other: &MappedText) {
        self.pos.pop();
        self.text.push_str(&other.text);
        self.pos.extend_from_slice(&other.pos);
    }

    /// Appends generated text mapped to `at`.
    pub(crate) fn append_str(&mut self, text: &str, at: Pos) {
        self.append(&Self::synthetic(text, at));
    }

    /// `prefix + self + suffix`, the affixes mapped to `at`.
    pub(crate) fn wrapped(&self, prefix: &str, suffix: &str, at: Pos) -> Self {
        let mut out = Self::synthetic(prefix, at);
        out.append(self);
        out.append_str(suffix, at);
        out
    }

    /// Where the character at byte offset `byte` came from.
    pub(crate) fn pos_at_byte(&self, byte: usize) -> Pos {
        let idx = self.char_index(byte);
        self.pos.get(idx).copied().unwrap_or_default()
    }

    /// Replaces a byte range with another mapped text.
    pub(crate) fn replace_bytes(&mut self, range: Range<usize>, with: &MappedText) {
        let start = self.char_index(range.start);
        let end = self.char_index(range.end);
        self.text.replace_range(range, &with.text);
        let inserted = with.pos.len().saturating_sub(1);
        self.pos
            .splice(start..end, with.pos[..inserted].iter().copied());
    }

    /// A copy without leading and trailing whitespace.
    pub(crate) fn trimmed(&self) -> Self {
        let start_byte = self.text.len() - self.text.trim_start().len();
        let end_byte = self.text.trim_end().len().max(start_byte);
        let start = self.char_index(start_byte);
        let end = self.char_index(end_byte);
        let mut pos = self.pos[start..end].to_vec();
        pos.push(self.pos.get(end).copied().unwrap_or_default());
        Self {
            text: self.text[start_byte..end_byte].to_string(),
            pos,
        }
    }

    /// A function from positions relative to this text (1-based line and column, as the
    /// condition parser reports them) to file positions.
    pub(crate) fn locator(&self) -> impl Fn(Pos) -> Pos + '_ {
        // Line breaks as the parser counts them: `\n`, `\r\n` (once) or a lone `\r`.
        let chars: Vec<char> = self.text.chars().collect();
        let mut line_starts = vec![0usize];
        for (i, c) in chars.iter().enumerate() {
            let breaks = *c == '\n' || (*c == '\r' && chars.get(i + 1) != Some(&'\n'));
            if breaks {
                line_starts.push(i + 1);
            }
        }
        let len = self.pos.len().saturating_sub(1);
        move |p: Pos| {
            let line = usize::try_from(p.line.max(1)).unwrap_or(usize::MAX) - 1;
            let col = usize::try_from(p.col.max(1)).unwrap_or(usize::MAX) - 1;
            let start = line_starts.get(line).copied().unwrap_or(len);
            let line_end = line_starts.get(line + 1).map_or(len, |next| next - 1);
            let idx = start.saturating_add(col).min(line_end.max(start)).min(len);
            self.pos.get(idx).copied().unwrap_or_default()
        }
    }

    fn char_index(&self, byte: usize) -> usize {
        self.text
            .get(..byte)
            .map_or_else(|| self.text.chars().count(), |s| s.chars().count())
    }
}

/// A walk through a file's characters that keeps line and column up to date.
struct Cursor {
    index: usize,
    pos: Pos,
}

impl Cursor {
    fn new(file: &SourceFile, at: Pos) -> Self {
        Self {
            index: file.index_of(at.line, at.col),
            pos: at,
        }
    }

    fn advance(&mut self, file: &SourceFile) {
        let Some(c) = file.char_at(self.index) else {
            return;
        };
        self.index += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
    }

    /// The length of the double-quoted escape sequence at the cursor, if there is one.
    fn escape_len(&self, file: &SourceFile) -> Option<usize> {
        if file.char_at(self.index) != Some('\\') {
            return None;
        }
        match file.char_at(self.index + 1)? {
            '\n' | '\r' => None,
            'x' => Some(4),
            'u' => Some(6),
            'U' => Some(10),
            _ => Some(2),
        }
    }

    /// Skips `\` line continuations of double-quoted scalars (they decode to nothing).
    fn skip_continuations(&mut self, file: &SourceFile) {
        while file.char_at(self.index) == Some('\\')
            && matches!(file.char_at(self.index + 1), Some('\n' | '\r'))
        {
            self.advance(file);
            while matches!(file.char_at(self.index), Some('\n' | '\r' | ' ' | '\t')) {
                self.advance(file);
            }
        }
    }

    fn next_line(&mut self, file: &SourceFile) {
        while let Some(c) = file.char_at(self.index) {
            self.advance(file);
            if c == '\n' {
                return;
            }
        }
    }

    /// Moves onto the next occurrence of `c`, unless it is implausibly far away (then the
    /// cursor stays, which at worst makes one position approximate).
    fn seek(&mut self, file: &SourceFile, c: char) {
        let mut index = self.index;
        let mut skipped = 0;
        while let Some(here) = file.char_at(index) {
            if here == c {
                while self.index < index {
                    self.advance(file);
                }
                return;
            }
            if !here.is_whitespace() {
                skipped += 1;
                if skipped > MAX_SKIP {
                    return;
                }
            }
            index += 1;
        }
    }
}

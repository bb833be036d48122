//! The loader's source table: rules files by index, addressable by line and column.

use crate::rules::condition::ast::Pos;

/// One rules file, kept as characters because every column the loader reports counts
/// characters, not bytes.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    /// The file path as given.
    pub(crate) name: String,
    chars: Vec<char>,
    /// Character index at which each line starts (line 1 first).
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Indexes a file's text.
    pub(crate) fn new(name: &str, text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut line_starts = vec![0];
        line_starts.extend(
            chars
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == '\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            name: name.to_string(),
            chars,
            line_starts,
        }
    }

    /// The character at a file index.
    pub(crate) fn char_at(&self, index: usize) -> Option<char> {
        self.chars.get(index).copied()
    }

    /// The file index of a 1-based line and column (clamped to the file).
    pub(crate) fn index_of(&self, line: u32, col: u32) -> usize {
        let line = usize::try_from(line.max(1)).unwrap_or(usize::MAX);
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(self.chars.len());
        let col = usize::try_from(col.max(1)).unwrap_or(usize::MAX);
        start.saturating_add(col - 1).min(self.chars.len())
    }

    /// A line's text without its line break.
    pub(crate) fn line_text(&self, line: u32) -> Option<String> {
        let idx = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(idx)?;
        let end = self
            .line_starts
            .get(idx + 1)
            .map_or(self.chars.len(), |next| next - 1);
        let text: String = self.chars[start..end.max(start)].iter().collect();
        Some(text.trim_end_matches('\r').to_string())
    }

    /// The offending line plus a second line with a `^` under the column. Tabs are copied
    /// into the marker line so the caret lines up in a terminal.
    pub(crate) fn snippet(&self, pos: Pos) -> String {
        let Some(line) = self.line_text(pos.line) else {
            return String::new();
        };
        let before = usize::try_from(pos.col.saturating_sub(1)).unwrap_or(0);
        let pad: String = line
            .chars()
            .chain(std::iter::repeat(' '))
            .take(before)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{line}\n{pad}^")
    }
}

//! Load diagnostics: Falco's codes, the diagnostic type, and how one is built from a
//! position in the source table.

use std::fmt;

use super::source::SourceFile;
use crate::rules::condition::ast::Pos;

/// Falco's load-result codes (`falco_load_result.cpp`), as the strings Falco prints.
pub mod codes {
    /// A rules file could not be read.
    pub const LOAD_ERR_FILE_READ: &str = "LOAD_ERR_FILE_READ";
    /// The content is not valid YAML.
    pub const LOAD_ERR_YAML_PARSE: &str = "LOAD_ERR_YAML_PARSE";
    /// Valid YAML of the wrong shape (missing keys, wrong value types...).
    pub const LOAD_ERR_YAML_VALIDATE: &str = "LOAD_ERR_YAML_VALIDATE";
    /// A condition does not parse or compile.
    pub const LOAD_ERR_COMPILE_CONDITION: &str = "LOAD_ERR_COMPILE_CONDITION";
    /// An output string does not compile.
    pub const LOAD_ERR_COMPILE_OUTPUT: &str = "LOAD_ERR_COMPILE_OUTPUT";
    /// A semantically invalid item (undefined macro, append without a previous item...).
    pub const LOAD_ERR_VALIDATE: &str = "LOAD_ERR_VALIDATE";
    /// A rule's source is not one this engine knows; the rule is skipped.
    pub const LOAD_UNKNOWN_SOURCE: &str = "LOAD_UNKNOWN_SOURCE";
    /// A comparison with `<NA>` that may not do what it seems to.
    pub const LOAD_UNSAFE_NA_CHECK: &str = "LOAD_UNSAFE_NA_CHECK";
    /// A rule matches too many event types.
    pub const LOAD_NO_EVTTYPE: &str = "LOAD_NO_EVTTYPE";
    /// Unknown field tolerated by `skip-if-unknown-filter`; the rule is dropped.
    pub const LOAD_UNKNOWN_FILTER: &str = "LOAD_UNKNOWN_FILTER";
    /// A macro nothing refers to.
    pub const LOAD_UNUSED_MACRO: &str = "LOAD_UNUSED_MACRO";
    /// A list nothing refers to.
    pub const LOAD_UNUSED_LIST: &str = "LOAD_UNUSED_LIST";
    /// An unknown top-level item; ignored.
    pub const LOAD_UNKNOWN_ITEM: &str = "LOAD_UNKNOWN_ITEM";
    /// Deprecated syntax (`append: true`, standalone `enabled`, `%container.info`).
    pub const LOAD_DEPRECATED_ITEM: &str = "LOAD_DEPRECATED_ITEM";
    /// An appended exception without values.
    pub const LOAD_APPEND_NO_VALUES: &str = "LOAD_APPEND_NO_VALUES";
    /// Two exceptions of one rule share a name.
    pub const LOAD_EXCEPTION_NAME_NOT_UNIQUE: &str = "LOAD_EXCEPTION_NAME_NOT_UNIQUE";
    /// A macro name that is not an identifier.
    pub const LOAD_INVALID_MACRO_NAME: &str = "LOAD_INVALID_MACRO_NAME";
    /// A list name that would not survive textual substitution.
    pub const LOAD_INVALID_LIST_NAME: &str = "LOAD_INVALID_LIST_NAME";
    /// A compiler hint about a condition.
    pub const LOAD_COMPILE_CONDITION: &str = "LOAD_COMPILE_CONDITION";
    /// An unknown key inside a known item; ignored.
    pub const LOAD_UNKNOWN_KEY: &str = "LOAD_UNKNOWN_KEY";
}

/// How bad a diagnostic is (serialized as `"error"`/`"warning"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The content is rejected (the item is skipped; the load is not successful).
    Error,
    /// The content loads, but something deserves attention.
    Warning,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One error or warning, located in a rules file (serializable for `vigil rules validate`
/// reports).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Falco's code, e.g. `LOAD_ERR_VALIDATE` (see [`codes`]).
    pub code: &'static str,
    /// What is wrong, in Falco's words where Falco has words for it.
    pub message: String,
    /// The rules file path as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The item concerned, e.g. `rule 'Terminal shell in container'` or
    /// `macro 'spawned_process'`.
    pub item: Option<String>,
    /// The offending source line plus a second line with a `^` under the column.
    pub snippet: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} {}: {}",
            self.file,
            self.line,
            self.column,
            self.severity.as_str(),
            self.code,
            self.message
        )?;
        if let Some(item) = &self.item {
            write!(f, " (in {item})")?;
        }
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

/// Builds a diagnostic at `pos`, taking the file name and snippet from the source table.
pub(crate) fn build(
    files: &[SourceFile],
    severity: Severity,
    code: &'static str,
    message: String,
    pos: Pos,
    item: Option<String>,
) -> Diagnostic {
    let file = usize::try_from(pos.source).ok().and_then(|i| files.get(i));
    Diagnostic {
        severity,
        code,
        message,
        file: file.map(|f| f.name.clone()).unwrap_or_default(),
        line: pos.line,
        column: pos.col,
        item,
        snippet: file.map(|f| f.snippet(pos)).unwrap_or_default(),
    }
}

/// `kind 'name'`, the way diagnostics name items.
pub(crate) fn label(kind: &str, name: &str) -> String {
    format!("{kind} '{name}'")
}

/// A problem found while reading or checking one item: the item is skipped and the
/// problem reported against it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct Failure {
    /// Falco's code.
    pub(crate) code: &'static str,
    /// The message.
    pub(crate) message: String,
    /// Where.
    pub(crate) pos: Pos,
}

impl Failure {
    /// A structural problem (`LOAD_ERR_YAML_VALIDATE`).
    pub(crate) fn shape(message: impl Into<String>, pos: Pos) -> Self {
        Self {
            code: codes::LOAD_ERR_YAML_VALIDATE,
            message: message.into(),
            pos,
        }
    }

    /// A semantic problem (`LOAD_ERR_VALIDATE`).
    pub(crate) fn invalid(message: impl Into<String>, pos: Pos) -> Self {
        Self {
            code: codes::LOAD_ERR_VALIDATE,
            message: message.into(),
            pos,
        }
    }
}

/// Collects diagnostics for the source table they refer to.
pub(crate) struct Sink<'a> {
    files: &'a [SourceFile],
    /// What has been reported, in order.
    pub(crate) list: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    /// An empty sink.
    pub(crate) fn new(files: &'a [SourceFile]) -> Self {
        Self {
            files,
            list: Vec::new(),
        }
    }

    /// Reports an error.
    pub(crate) fn error(
        &mut self,
        code: &'static str,
        message: impl Into<String>,
        pos: Pos,
        item: Option<&str>,
    ) {
        self.push(Severity::Error, code, message.into(), pos, item);
    }

    /// Reports a warning.
    pub(crate) fn warning(
        &mut self,
        code: &'static str,
        message: impl Into<String>,
        pos: Pos,
        item: Option<&str>,
    ) {
        self.push(Severity::Warning, code, message.into(), pos, item);
    }

    /// Reports a failure as an error.
    pub(crate) fn failure(&mut self, failure: Failure, item: Option<&str>) {
        self.push(
            Severity::Error,
            failure.code,
            failure.message,
            failure.pos,
            item,
        );
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        pos: Pos,
        item: Option<&str>,
    ) {
        let diagnostic = build(
            self.files,
            severity,
            code,
            message,
            pos,
            item.map(str::to_string),
        );
        self.list.push(diagnostic);
    }
}

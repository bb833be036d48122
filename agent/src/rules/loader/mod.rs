//! The Falco rules-file loader: YAML in, rules with macro-expanded condition ASTs out.
//!
//! Follows Falco's rule loader (reader -> collector -> compiler) for everything up to the
//! condition AST: item classification and validation, define/append/override semantics,
//! macro visibility, textual list substitution, exception rewriting and macro expansion.
//! Field and operator checking (compiling the AST against the field table) is not done
//! here; [`LoadResult::diagnostic_at`] lets that stage report at the same file positions.
//!
//! Unlike Falco, loading does not stop at the first error: every item that can be checked
//! is, and each problem is reported with its file, line, column, item and source snippet.

mod collect;
mod decode;
mod diagnostics;
mod exceptions;
mod items;
mod priority;
mod remap;
mod resolve;
mod rule_item;
mod source;
mod substitute;
mod text;
mod version;
pub(crate) mod yaml;

#[cfg(test)]
mod tests;

pub use diagnostics::{Diagnostic, Severity, codes};
pub use priority::{InvalidPriority, Priority};
pub use version::{ENGINE_VERSION, Version};

use crate::rules::condition::ast::{Expr, Pos};
use collect::Collector;
use diagnostics::Sink;
use source::SourceFile;

/// A rules file to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file path as given (used in diagnostics).
    pub name: String,
    /// The file's content.
    pub text: String,
}

/// A loaded rule of the `syscall` source.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The rule name.
    pub name: String,
    /// The description (appends joined with a blank).
    pub desc: String,
    /// The condition with macros expanded, lists substituted and exceptions applied; every
    /// position points into the rules files.
    pub condition: Expr,
    /// The output format, trimmed (appends joined with a blank).
    pub output: String,
    /// Where the output text starts.
    pub output_pos: Pos,
    /// The priority.
    pub priority: Priority,
    /// The event source (always `syscall`: rules of other sources are skipped).
    pub source: String,
    /// Tags, sorted and de-duplicated (Falco keeps a set).
    pub tags: Vec<String>,
    /// Whether the rule is enabled.
    pub enabled: bool,
    /// `skip-if-unknown-filter`: unknown fields drop the rule with a warning instead of an
    /// error.
    pub skip_if_unknown_filter: bool,
    /// `warn_evttypes`: whether to warn when the rule matches too many event types.
    pub warn_evttypes: bool,
    /// Where the (latest) definition of the rule starts.
    pub pos: Pos,
}

/// The outcome of [`load`].
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// `syscall` rules in definition order, disabled ones included with `enabled = false`.
    pub rules: Vec<Rule>,
    /// How many macros were defined.
    pub macros: usize,
    /// How many lists were defined.
    pub lists: usize,
    /// The highest `required_engine_version` of the files, as `x.y.z`.
    pub required_engine_version: Option<String>,
    /// Errors and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// The source table: `Pos::source` indexes it.
    sources: Vec<SourceFile>,
}

impl LoadResult {
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Whether there were no errors.
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The file name of a source index.
    pub fn source_name(&self, source: u32) -> Option<&str> {
        let index = usize::try_from(source).ok()?;
        self.sources.get(index).map(|s| s.name.as_str())
    }

    /// Builds a diagnostic at an AST position (file name and snippet from the source
    /// table), for problems found after loading, such as unknown fields.
    pub fn diagnostic_at(
        &self,
        severity: Severity,
        code: &'static str,
        message: String,
        pos: Pos,
        item: Option<String>,
    ) -> Diagnostic {
        diagnostics::build(&self.sources, severity, code, message, pos, item)
    }
}

/// Loads rules files in order; later files override and extend earlier ones.
pub fn load(sources: &[Source]) -> LoadResult {
    let files: Vec<SourceFile> = sources
        .iter()
        .map(|s| SourceFile::new(&s.name, &s.text))
        .collect();
    let mut sink = Sink::new(&files);
    let mut collector = Collector::default();
    for (index, (source, file)) in sources.iter().zip(&files).enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        read_file(file, &source.text, index, &mut collector, &mut sink);
    }
    let rules = resolve::resolve(&collector, &mut sink);
    let diagnostics = sink.list;
    LoadResult {
        rules,
        macros: collector.macros.len(),
        lists: collector.lists.len(),
        required_engine_version: collector.engine_version.map(|v| v.to_string()),
        diagnostics,
        sources: files,
    }
}

/// Reads one file into the collector. A YAML syntax error rejects the whole file, as in
/// Falco: its content up to the error cannot be trusted to be what the author meant.
fn read_file(
    file: &SourceFile,
    text: &str,
    index: u32,
    collector: &mut Collector,
    sink: &mut Sink<'_>,
) {
    let docs = match yaml::parse(text, index) {
        Ok(docs) => docs,
        Err(e) => {
            sink.error(codes::LOAD_ERR_YAML_PARSE, e.message, e.pos, None);
            return;
        }
    };
    for doc in docs.iter().flatten().filter(|d| !d.is_null()) {
        items::read_document(file, doc, sink, &mut |item, sink| {
            collector.collect(item, sink)
        });
    }
}

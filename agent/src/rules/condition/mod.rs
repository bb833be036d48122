//! Falco's condition language: syntax tree and parser.

pub mod ast;
pub mod parser;
#[cfg(test)]
mod parser_tests;

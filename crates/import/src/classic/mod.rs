//! Classic tac_plus (Cisco's, Shrubbery's tac_plus-F, Facebook's fork):
//! tokenizer, parser, and translation with tac_plus's own evaluation rules.

pub mod lex;
pub mod parse;
mod translate;

pub use translate::translate;

//! tac_plus-ng (Marc Huber's event-driven servers): tokenizer, parser for the
//! subset `tacvs import` translates (devices, users, groups, profiles with
//! scripts, the ruleset), and translation by running the scripts with what is
//! known about each request.

pub mod lex;
pub mod parse;
mod translate;

pub use translate::translate;

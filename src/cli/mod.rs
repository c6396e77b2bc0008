//! The command line: clap's arguments, and the plain configuration made from them.
//!
//! The top layer, used by `main` only: nothing below it depends on clap.

pub mod args;
pub mod config;

//! Everything the user deals with: the command line, its configuration, and every line printed.

pub mod cli;
pub mod config;
pub mod dry_run;
pub mod json_report;
pub mod path_text;
pub mod progress;
pub mod report;

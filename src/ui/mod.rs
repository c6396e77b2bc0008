//! Everything the user deals with: the command line, its configuration, and every line printed.

pub mod json_report;
pub mod path_text;
pub mod progress;
pub mod report;

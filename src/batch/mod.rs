//! The batch: which inputs become which outputs, and converting them in parallel.
//!
//! Below the user interface, above the CSV writer and the durable output: it decides what to
//! convert, runs the conversions on a pool of threads, and merges their CSVs when asked.

pub mod common;
pub mod convert;
pub mod input;
pub mod merge;
pub mod pipeline;
pub mod plan;
pub mod run;
pub mod status;

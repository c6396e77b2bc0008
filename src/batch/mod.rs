//! The batch: which inputs become which outputs, and converting them in parallel.
//!
//! Below the command line, above the printer, the CSV writer and the durable output: it takes
//! a plain [`Config`] (never clap's arguments), decides what to convert, runs the conversions
//! on a pool of threads, and merges their CSVs when asked.

pub mod common;
pub mod convert;
pub mod dry_run;
pub mod input;
pub mod merge;
pub mod pipeline;
pub mod plan;
pub mod run;
pub mod status;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::csv::{Dialect, Shape};
use crate::ui::report::Verbosity;
use plan::shard::Shard;

/// Where the CSV of all inputs goes with `--merge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    File(PathBuf),
    Stdout,
}

/// Everything a batch run depends on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Paths, directories and glob patterns, in the order given; `-` is standard input.
    pub inputs: Vec<OsString>,
    /// Folder for all CSVs; `None` puts each CSV beside its input.
    pub out_dir: Option<PathBuf>,
    /// `--out -`: the CSV of the single input goes to standard output.
    pub stdout: bool,
    /// `--merge`: one CSV for all inputs.
    pub merge: Option<Merge>,
    /// `--keep-going`: write the merged CSV of the inputs that converted, even if some failed.
    pub keep_going: bool,
    /// Replace existing CSVs instead of skipping them.
    pub force: bool,
    /// Name a CSV `x.kml.csv` instead of `x.csv`.
    pub keep_extension: bool,
    /// Replace CSVs older than their input, skip the others.
    pub update: bool,
    /// Convert inputs that failed before and are unchanged since, instead of reporting them.
    pub retry_failed: bool,
    /// Only print what would be done.
    pub dry_run: bool,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// The columns asked for.
    pub shape: Shape,
    /// How the CSV is written.
    pub dialect: Dialect,
    /// `-j`: worker threads, at least 1; `None` for one per core (see [`Config::jobs`]).
    pub jobs: Option<usize>,
    /// Turn the first warning of a file into its failure.
    pub strict: bool,
    /// What to print.
    pub verbosity: Verbosity,
    /// `--shard K/N`: convert only this part of the inputs.
    pub shard: Option<Shard>,
    /// Colour `warning` and errors on stderr.
    pub color: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Config {
    /// Worker threads, at least 1: `-j`, or one per core. Asked only by runs that start
    /// workers: finding the cores takes a dozen system calls, which a run of one small file
    /// notices.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(common::cores).max(1)
    }
}

//! What the engine needs to know, decided once from the command line.
//!
//! The rest of the program takes a `&Config` and never sees clap, so tests and other front
//! ends can build one directly.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::Args;
use crate::shard::Shard;

/// How much is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Errors, warnings and the closing summary.
    Normal,
    /// Also a line for every file.
    Verbose,
}

/// Everything a batch run depends on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Paths, directories and glob patterns, in the order given.
    pub inputs: Vec<OsString>,
    /// Folder for all CSVs; `None` puts each CSV beside its input.
    pub out_dir: Option<PathBuf>,
    /// Replace existing CSVs instead of skipping them.
    pub force: bool,
    /// Worker threads, at least 1.
    pub jobs: usize,
    /// Turn the first warning of a file into its failure.
    pub strict: bool,
    /// What to print.
    pub verbosity: Verbosity,
    /// `--shard K/N`: convert only this part of the inputs.
    pub shard: Option<Shard>,
}

impl Config {
    /// Resolve defaults that depend on the machine.
    pub fn from_args(args: Args) -> Config {
        let jobs = args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let verbosity = if args.quiet {
            Verbosity::Quiet
        } else if args.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Config {
            inputs: args.inputs,
            out_dir: args.out,
            force: args.force,
            jobs: jobs.max(1),
            strict: args.strict,
            verbosity,
            shard: args.shard,
        }
    }
}

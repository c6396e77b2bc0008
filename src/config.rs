//! What the engine needs to know, decided once from the command line.
//!
//! The rest of the program takes a `&Config` and never sees clap, so tests and other front
//! ends can build one directly.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::{Args, ColorArg, RowsArg};
use crate::csv_out::{Dialect, RowKind, Shape};
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
    /// Replace CSVs older than their input, skip the others.
    pub update: bool,
    /// Only print what would be done.
    pub dry_run: bool,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// The columns asked for.
    pub shape: Shape,
    /// How the CSV is written.
    pub dialect: Dialect,
    /// Worker threads, at least 1.
    pub jobs: usize,
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
    /// Resolve defaults that depend on the machine and the terminal.
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
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match args.color {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => stderr_is_terminal && !no_color,
        };
        let is_dash = |p: &PathBuf| p.as_os_str() == "-";
        let (out_dir, stdout) = match args.out {
            Some(dir) if is_dash(&dir) => (None, true),
            other => (other, false),
        };
        let merge = args.merge.map(|file| {
            if is_dash(&file) {
                Merge::Stdout
            } else {
                Merge::File(file)
            }
        });
        let rows = match args.rows {
            RowsArg::Vertices => RowKind::Vertices,
            RowsArg::Features => RowKind::Features,
        };
        let shape = Shape {
            rows,
            attributes: args.attributes,
            source: merge.is_some(),
            select: args.columns,
        };
        let dialect = Dialect {
            delimiter: if args.tsv {
                b'\t'
            } else {
                args.delimiter.unwrap_or(b',')
            },
            header: !args.no_header,
            bom: args.bom,
            formula_guard: args.formula_guard,
        };
        Config {
            inputs: args.inputs,
            out_dir,
            stdout,
            merge,
            keep_going: args.keep_going,
            force: args.force,
            update: args.update,
            dry_run: args.dry_run,
            report: args.report,
            shape,
            dialect,
            jobs: jobs.max(1),
            strict: args.strict,
            verbosity,
            shard: args.shard,
            color,
            progress: stderr_is_terminal && verbosity > Verbosity::Quiet && !args.dry_run,
        }
    }
}

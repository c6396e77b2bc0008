//! The command line made into the plain [`Config`] the batch runs from: defaults that depend
//! on the machine and the terminal are resolved here, once.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::batch::{Config, Merge};
use crate::cli::args::{Args, ColorArg, NumbersArg, RowsArg};
use crate::csv::{Dialect, Numbers, RowKind, Shape};
use crate::ui::report::Verbosity;

impl Config {
    /// Resolve defaults that depend on the machine and the terminal.
    pub fn from_args(args: Args) -> Config {
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
            numbers: match args.numbers {
                NumbersArg::Canonical => Numbers::Canonical,
                NumbersArg::Verbatim => Numbers::Verbatim,
            },
        };
        Config {
            inputs: args.inputs,
            out_dir,
            stdout,
            merge,
            keep_going: args.keep_going,
            force: args.force,
            keep_extension: args.keep_extension,
            update: args.update,
            retry_failed: args.retry_failed,
            dry_run: args.dry_run,
            report: args.report,
            shape,
            dialect,
            jobs: args.jobs.map(|jobs| jobs.max(1)),
            strict: args.strict,
            verbosity,
            shard: args.shard,
            color,
            progress: stderr_is_terminal && verbosity > Verbosity::Quiet && !args.dry_run,
        }
    }
}

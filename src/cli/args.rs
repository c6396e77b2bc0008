//! The command line as the user typed it, and nothing more.
//!
//! Kept apart from [`crate::cli::config`] so that the help text can be read in one place and so that
//! no other module depends on clap: the engine works from a plain [`crate::batch::Config`].
//!
//! `kml2csv completions SHELL` and `kml2csv man` are subcommands, but converting stays the
//! command itself (`kml2csv FILE...`, no `convert` to type). Clap only takes the first word as a
//! subcommand; an input literally named `completions` or `man` is named `./completions`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::batch::plan::shard::Shard;

const EXIT_CODES: &str = "\
Exit status:
  0    every input was converted or skipped, or failed in an earlier run and is unchanged
       since (a warning; its record is NAME.csv.failed beside its CSV; --retry-failed tries
       it again); with --dry-run: none would be refused
  1    at least one input failed (all other inputs were still converted; a --merge CSV is
       written only with --keep-going), or an output folder or the --report file cannot be
       written (checked before any input is converted)
  2    usage error: bad option, invalid pattern, no input, two inputs with the same output
  130  interrupted by SIGINT (Ctrl-C); a second Ctrl-C ends at once
  143  terminated by SIGTERM

Each CSV is written to a temporary file in its output folder, synced to disk, and only then given
its name, so a CSV is never half-written. On Linux the temporary has no name (O_TMPFILE) and is
linked into place; elsewhere, and where an output is replaced (--force, --update), it is a hidden
`.kml2csv-*.tmp` renamed into place, and those a killed run left are removed by the next run.
An input named `completions` or `man` is written `./completions`, `./man`.";

const OUTPUT: &str = "Output";
const CSV: &str = "CSV format";
const RUN: &str = "Run";

/// Convert KML/KMZ files to CSV: one CSV per input, one row per vertex.
#[derive(Debug, Parser)]
#[command(
    name = "kml2csv",
    version,
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Commands"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Files, directories (their .kml/.kmz files) or glob patterns (`*`, `?`, `[..]`, `**`),
    /// expanded by kml2csv itself. An existing path is taken literally. `-` reads standard
    /// input (KML or KMZ).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<OsString>,

    /// Write the CSVs into DIR (created if missing) instead of beside each input. With a
    /// pattern, the folders below its fixed part are mirrored under DIR. `-` writes the CSV of
    /// a single input to standard output.
    // `--output` too, which is also what clap suggests for a typo such as `--ouput` (it
    // suggested `--update` before).
    #[arg(short, long, visible_alias = "output", value_name = "DIR", help_heading = OUTPUT)]
    pub out: Option<PathBuf>,

    /// Write one CSV for all inputs (`-`: standard output), with a leading `source` column,
    /// inputs in sorted order. Written only if every input converts, unless --keep-going.
    #[arg(long, value_name = "FILE", conflicts_with = "out", help_heading = OUTPUT)]
    pub merge: Option<PathBuf>,

    /// Name each CSV after its input with the extension kept (`x.kml.csv`, `x.kmz.csv`)
    /// instead of replaced (`x.csv`), so that `x.kml` and `x.kmz` in one folder get one each.
    #[arg(long, help_heading = OUTPUT)]
    pub keep_extension: bool,

    /// With --merge: write the merged CSV of the inputs that converted even when others
    /// failed; every failure is still reported and the status is 1. (A run with one CSV per
    /// input always goes on past a failed input.)
    #[arg(short = 'k', long, help_heading = OUTPUT)]
    pub keep_going: bool,

    /// Overwrite CSVs that already exist (they are skipped otherwise).
    #[arg(short, long, help_heading = OUTPUT)]
    pub force: bool,

    /// Reconvert a CSV that is older than its input, skip it when it is up to date (as make
    /// and `cp -u` do). A --merge CSV is up to date only while its inputs are exactly those it
    /// was made of, in the same sizes and dates (recorded in .NAME.kml2csv-inputs beside it).
    #[arg(short, long, help_heading = OUTPUT)]
    pub update: bool,

    /// Convert again the inputs that failed in an earlier run and have not changed since
    /// (recorded in NAME.csv.failed beside their CSV); otherwise they are reported as failed
    /// before, with a warning, and do not fail the run.
    #[arg(long, help_heading = OUTPUT)]
    pub retry_failed: bool,

    /// Print what would be converted, skipped or refused, and why, without writing anything.
    #[arg(short = 'n', long, help_heading = OUTPUT)]
    pub dry_run: bool,

    /// Write a JSON report of the run to FILE: every input's status, output, rows, warnings,
    /// error, bytes and duration, and the totals.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub report: Option<PathBuf>,

    /// One row per vertex (default) or one row per feature with its geometry as WKT
    /// (columns feature, name, wkt).
    #[arg(long, value_enum, value_name = "ROWS", default_value_t = RowsArg::Vertices, help_heading = CSV)]
    pub rows: RowsArg,

    /// Add the columns folder, description, timestamp, begin, end, style and one per
    /// ExtendedData field (`data.NAME` when NAME is a standard column).
    #[arg(short, long, help_heading = CSV)]
    pub attributes: bool,

    /// Write only these columns, in this order (comma-separated names from the header). With
    /// --attributes, other names are ExtendedData fields: empty where an input lacks them, and
    /// a warning when no input read has one.
    #[arg(long, value_name = "A,B,..", value_delimiter = ',', num_args = 1, help_heading = CSV)]
    pub columns: Option<Vec<String>>,

    /// Field delimiter: one ASCII character, or `\t` / `tab`.
    #[arg(short, long, value_name = "C", value_parser = parse_delimiter, help_heading = CSV)]
    pub delimiter: Option<u8>,

    /// Tab-separated values (same as `--delimiter tab`).
    #[arg(short, long, conflicts_with = "delimiter", help_heading = CSV)]
    pub tsv: bool,

    /// Leave out the header row.
    #[arg(long, help_heading = CSV)]
    pub no_header: bool,

    /// Start each CSV with a UTF-8 byte order mark, for Excel.
    #[arg(long, help_heading = CSV)]
    pub bom: bool,

    /// Prefix text fields that start with `=`, `+`, `-`, `@`, tab or CR with `'`, so that a
    /// spreadsheet shows them instead of running them as formulas. Never applied to the
    /// longitude, latitude, altitude, feature, part and vertex columns.
    #[arg(long, help_heading = CSV)]
    pub formula_guard: bool,

    /// How coordinates are written: `canonical` decimal text (no leading `+` or zeros, `.5` as
    /// `0.5`; the digits, trailing zeros and exponent as written), which every CSV reader
    /// types as a number, or `verbatim`, exactly as in the KML.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = NumbersArg::Canonical, help_heading = CSV)]
    pub numbers: NumbersArg,

    /// Number of files converted at the same time [default: number of cores].
    #[arg(short, long, value_name = "N", value_parser = parse_jobs, help_heading = RUN)]
    pub jobs: Option<usize>,

    /// Fail a file at its first warning instead of skipping the bad value.
    #[arg(long, help_heading = RUN)]
    pub strict: bool,

    /// Convert only shard K of N (0 <= K < N): the inputs whose path below the pattern's fixed
    /// part hashes into it. N runs with 0/N … N-1/N convert every input exactly once, on any
    /// number of machines, with the same split every time.
    #[arg(long, value_name = "K/N", help_heading = RUN, conflicts_with = "merge")]
    pub shard: Option<Shard>,

    /// Print errors only (no warnings, summary or progress bar).
    #[arg(short, long, conflicts_with = "verbose", help_heading = RUN)]
    pub quiet: bool,

    /// Print a line for every file: converted, skipped or failed.
    #[arg(short, long, help_heading = RUN)]
    pub verbose: bool,

    /// When to colour `warning` and errors on stderr; `auto`: on a terminal unless the
    /// NO_COLOR environment variable is set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorArg::Auto, help_heading = RUN)]
    pub color: ColorArg,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script (bash: `source <(kml2csv completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `kml2csv man > kml2csv.1`.
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowsArg {
    /// One row per vertex.
    Vertices,
    /// One row per feature, its geometry as WKT.
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NumbersArg {
    /// No leading `+` or zeros, `.5` as `0.5`; digits never changed.
    Canonical,
    /// Exactly as in the KML.
    Verbatim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl ColorArg {
    /// The `--color` among raw arguments, before they are parsed, so that clap's own help and
    /// error messages follow it too.
    pub fn from_raw_args(args: &[OsString]) -> ColorArg {
        let mut choice = ColorArg::Auto;
        let mut iter = args.iter().skip(1);
        while let Some(arg) = iter.next() {
            let value = match arg.to_str() {
                Some("--") => break,
                Some("--color") => iter.next().and_then(|v| v.to_str()),
                Some(other) => other.strip_prefix("--color="),
                None => None,
            };
            if let Some(parsed) = value.and_then(|v| ColorArg::from_str(v, false).ok()) {
                choice = parsed;
            }
        }
        choice
    }

    /// The same choice for clap's output.
    pub fn for_clap(self) -> clap::ColorChoice {
        match self {
            ColorArg::Auto => clap::ColorChoice::Auto,
            ColorArg::Always => clap::ColorChoice::Always,
            ColorArg::Never => clap::ColorChoice::Never,
        }
    }
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of threads")),
    }
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        _ => match text.as_bytes() {
            [b'"' | b'\n' | b'\r'] => Err(format!("{text:?} cannot be a delimiter")),
            [byte] if byte.is_ascii() => Ok(*byte),
            _ => Err(format!(
                "`{text}` is not one ASCII character (write `\\t` or `tab` for a tab)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter("é").is_err());
    }

    #[test]
    fn color_is_found_before_parsing() {
        let raw = |args: &[&str]| -> Vec<OsString> { args.iter().map(OsString::from).collect() };
        assert_eq!(
            ColorArg::from_raw_args(&raw(&["kml2csv", "--color", "never", "a"])),
            ColorArg::Never
        );
        assert_eq!(
            ColorArg::from_raw_args(&raw(&["kml2csv", "--color=always"])),
            ColorArg::Always
        );
        assert_eq!(
            ColorArg::from_raw_args(&raw(&["kml2csv", "--", "--color=always"])),
            ColorArg::Auto
        );
    }

    #[test]
    fn help_is_no_subcommand() {
        let args = Args::try_parse_from(["kml2csv", "help"]).unwrap();
        assert_eq!(args.inputs, ["help"]);
    }

    #[test]
    fn subcommands_only_as_the_first_word() {
        let args = Args::try_parse_from(["kml2csv", "completions", "bash"]).unwrap();
        assert!(matches!(args.command, Some(Command::Completions { .. })));
        let args = Args::try_parse_from(["kml2csv", "./completions"]).unwrap();
        assert!(args.command.is_none());
        let args = Args::try_parse_from(["kml2csv", "a.kml", "man"]).unwrap();
        assert!(args.command.is_none());
        assert_eq!(args.inputs, ["a.kml", "man"]);
    }
}

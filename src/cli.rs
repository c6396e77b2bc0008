//! The command line as the user typed it, and nothing more.
//!
//! Kept apart from [`crate::config`] so that the help text can be read in one place and so that
//! no other module depends on clap: the engine works from a plain [`crate::config::Config`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::shard::Shard;

const EXIT_CODES: &str = "\
Exit status:
  0    every input was converted or skipped
  1    at least one input failed (all other inputs were still converted)
  2    usage error: bad option, invalid pattern, no input, two inputs with the same output
  130  interrupted by SIGINT (Ctrl-C); a second Ctrl-C ends at once
  143  terminated by SIGTERM

Outputs are written to a temporary file `.kml2csv-*.tmp` in the output folder and renamed into
place when complete, so a CSV is never half-written. Temporaries left by a killed run are removed
by the next run.";

/// Convert KML/KMZ files to CSV: one CSV per input, one row per vertex.
#[derive(Debug, Parser)]
#[command(name = "kml2csv", version, after_help = EXIT_CODES)]
pub struct Args {
    /// Files, directories (their .kml/.kmz files) or glob patterns (`*`, `?`, `[..]`, `**`),
    /// expanded by kml2csv itself. An existing path is taken literally.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<OsString>,

    /// Write the CSVs into DIR (created if missing) instead of beside each input. With a
    /// pattern, the folders below its fixed part are mirrored under DIR.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Overwrite CSVs that already exist (they are skipped otherwise).
    #[arg(short, long)]
    pub force: bool,

    /// Number of files converted at the same time [default: number of cores].
    #[arg(short, long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,

    /// Fail a file at its first warning instead of skipping the bad value.
    #[arg(long)]
    pub strict: bool,

    /// Convert only shard K of N (0 <= K < N): the inputs whose path below the pattern's fixed
    /// part hashes into it. N runs with 0/N … N-1/N convert every input exactly once, on any
    /// number of machines, with the same split every time.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,

    /// Print errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print a line for every file: converted, skipped or failed.
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of threads")),
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
}

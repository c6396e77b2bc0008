//! The `kml2csv` command: parse the arguments, run the batch, exit with its status.

use std::process::ExitCode;

use clap::Parser;

use kml2csv::cli::Args;
use kml2csv::config::Config;
use kml2csv::{report, run};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // `--help` and `--version` end here too (on stdout, status 0). A closed pipe is not
            // worth a message.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let config = Config::from_args(args);
    match run::run(&config) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            report::message(format_args!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

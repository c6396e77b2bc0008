//! The `kml2csv` command: parse the arguments, run the batch, exit with its status.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use kml2csv::batch::run;
use kml2csv::batch::Config;
use kml2csv::cli::args::{Args, ColorArg, Command};
use kml2csv::ui::report;

fn main() -> ExitCode {
    let raw: Vec<_> = std::env::args_os().collect();
    let color = ColorArg::from_raw_args(&raw);
    let parsed = Args::command()
        .color(color.for_clap())
        .try_get_matches_from(&raw)
        .and_then(|matches| Args::from_arg_matches(&matches));
    let args = match parsed {
        Ok(args) => args,
        Err(e) => {
            // `--help` and `--version` end here too (on stdout, status 0). A closed pipe is not
            // worth a message.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Some(command) = &args.command {
        return shell_integration(command);
    }
    let config = Config::from_args(args);
    match run::run(&config) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            report::message(format_args!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `kml2csv completions SHELL` and `kml2csv man`: print to stdout.
fn shell_integration(command: &Command) -> ExitCode {
    let mut out = Vec::new();
    let mut cmd = Args::command();
    let rendered = match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "kml2csv", &mut out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(cmd).render(&mut out),
    };
    let written = rendered.and_then(|()| {
        let mut stdout = io::stdout().lock();
        stdout.write_all(&out).and_then(|()| stdout.flush())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            report::message(format_args!("cannot write: {e}"));
            ExitCode::FAILURE
        }
    }
}

//! `--dry-run`: what a run would do, and why, without writing anything.
//!
//! One line per input on standard output (it is the answer asked for, so it can be piped):
//! `convert INPUT -> OUTPUT (why)`, `skip INPUT -> OUTPUT (why)` or `refuse INPUT: why`. The
//! counts go to stderr; the exit status is 1 when an input would be refused before it is read
//! (missing, a pattern that matches nothing, an output in the way). Inputs are not read: one
//! that a real run would fail on for its content is listed as `convert`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::batch::plan::{Action, Plan};
use crate::batch::status::ExitStatus;
use crate::batch::Config;
use crate::ui::path_text::escaped;
use crate::ui::report;
use crate::ui::report::Verbosity;

#[derive(Default)]
struct Counts {
    convert: u64,
    skip: u64,
    refuse: u64,
}

/// Print the plan of a run with one CSV per input.
pub fn print(plan: &Plan, config: &Config) -> ExitStatus {
    let mut text = String::new();
    let mut counts = Counts::default();
    for item in &plan.items {
        let input = escaped(&item.input);
        let _ = match &item.action {
            Action::Convert { output, .. } => {
                counts.convert += 1;
                let why = if fs::symlink_metadata(output).is_err() {
                    "no CSV yet"
                } else if config.force {
                    "--force replaces the existing CSV"
                } else {
                    "the input is newer than the CSV"
                };
                writeln!(text, "convert {input} -> {} ({why})", escaped(output))
            }
            Action::Skip { output } => {
                counts.skip += 1;
                let why = if config.update {
                    "up to date"
                } else {
                    "already exists; --force overwrites it, --update if it is older than the input"
                };
                writeln!(text, "skip    {input} -> {} ({why})", escaped(output))
            }
            Action::Fail { message } => {
                counts.refuse += 1;
                writeln!(text, "refuse  {input}: {message}")
            }
            Action::FailedBefore { output, .. } => {
                counts.skip += 1;
                writeln!(
                    text,
                    "skip    {input} -> {} (failed before and unchanged since, see {}; \
                     --retry-failed tries it)",
                    escaped(output),
                    escaped(&crate::batch::plan::failed::path_for(output))
                )
            }
        };
    }
    end(&text, &counts, config.verbosity)
}

/// Print the plan of a merged (or standard-output) run into `target`: `target_state` is `Ok`
/// with an empty text to write it, `Ok(why)` to skip it, `Err(why)` when it is refused;
/// `inputs` are the inputs in order, each `Err(why)` when it would fail.
pub fn print_merge(
    target: &Path,
    target_state: &Result<String, String>,
    inputs: &[(PathBuf, Result<(), String>)],
) -> ExitStatus {
    let mut text = String::new();
    let mut counts = Counts::default();
    let shown = if target == Path::new("-") {
        "standard output".to_owned()
    } else {
        escaped(target).into_owned()
    };
    for (input, state) in inputs {
        let input = escaped(input);
        let _ = match (state, target_state) {
            (Err(message), _) => {
                counts.refuse += 1;
                writeln!(text, "refuse  {input}: {message}")
            }
            (Ok(()), Ok(why)) if why.is_empty() => {
                counts.convert += 1;
                writeln!(text, "convert {input} -> {shown}")
            }
            (Ok(()), Ok(why)) => {
                counts.skip += 1;
                writeln!(text, "skip    {input} -> {shown} ({why})")
            }
            (Ok(()), Err(_)) => {
                counts.refuse += 1;
                writeln!(text, "refuse  {input}: not merged into {shown}")
            }
        };
    }
    match target_state {
        Err(message) => {
            let _ = writeln!(text, "refuse  {shown}: {message}");
        }
        Ok(why) if why.is_empty() && counts.refuse > 0 => {
            let _ = writeln!(
                text,
                "refuse  {shown}: not written, {} {} would fail",
                counts.refuse,
                if counts.refuse == 1 {
                    "input"
                } else {
                    "inputs"
                }
            );
        }
        Ok(_) => {}
    }
    end(&text, &counts, Verbosity::Normal)
}

fn end(text: &str, counts: &Counts, verbosity: Verbosity) -> ExitStatus {
    let mut out = io::stdout().lock();
    // A closed pipe (`| head`) has seen what it wanted.
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            report::message(format_args!("cannot write: {e}"));
            return ExitStatus::Failure;
        }
    }
    if verbosity > Verbosity::Quiet {
        report::message(format_args!(
            "dry run: {} to convert, {} to skip, {} refused; nothing was written",
            counts.convert, counts.skip, counts.refuse
        ));
    }
    if counts.refuse > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}

//! Everything kml2csv tells the user, through one locked printer.
//!
//! Workers finish in whatever order the scheduler gives, but the messages come out in the order
//! the inputs were named: a file's lines are held back until every earlier input has been
//! reported, so two runs over the same inputs print the same text. All lines go to stderr,
//! start with `kml2csv: ` and name the file; a closed stderr is ignored (the conversions are
//! the point, not the chatter).

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::kml::{Position, Warnings};
use crate::ui::path_text::escaped;

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

/// Warnings printed per file; the rest are only counted.
pub const WARNINGS_SHOWN: usize = 20;

/// What became of one input, as far as the user is concerned.
#[derive(Debug)]
pub struct FileReport {
    pub input: PathBuf,
    pub status: Status,
    /// Every warning the reader raised, also for a file that failed later.
    pub warnings: Warnings,
}

#[derive(Debug)]
pub enum Status {
    Converted {
        output: PathBuf,
        rows: u64,
    },
    /// The output existed before the run and `--force` was not given.
    Skipped {
        output: PathBuf,
    },
    /// Another process created the output while we were converting; theirs was kept.
    ConvertedElsewhere {
        output: PathBuf,
    },
    Failed {
        position: Option<Position>,
        message: String,
    },
    /// Failed in an earlier run (as `record` says) and unchanged since: not tried again. A
    /// warning, not a failure of this run.
    FailedBefore {
        record: PathBuf,
        position: Option<Position>,
        message: String,
    },
    /// Stopped by a signal, or never started because of one.
    Interrupted,
}

/// Counts for the closing summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub converted: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Inputs that failed in an earlier run and are unchanged: not counted in `failed`.
    pub failed_before: u64,
    pub interrupted: u64,
    pub rows: u64,
    pub warnings: u64,
}

/// The one place that writes to stderr while workers run.
pub struct Reporter {
    verbosity: Verbosity,
    /// Keep every report for [`Reporter::take_reports`] (the JSON report).
    keep: bool,
    /// `--update`: a skipped output is up to date (rather than merely present).
    update: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Index of the next input to print.
    next: usize,
    /// Reports that arrived before an earlier input's, with the time the input took.
    waiting: BTreeMap<usize, (FileReport, Duration)>,
    totals: Totals,
    /// When the inputs being converted were started, by index.
    started: HashMap<usize, Instant>,
    /// The reports already printed, when kept.
    done: Vec<(FileReport, Duration)>,
}

impl Reporter {
    pub fn new(verbosity: Verbosity) -> Reporter {
        Reporter {
            verbosity,
            keep: false,
            update: false,
            state: Mutex::new(State::default()),
        }
    }

    /// Keep every report after printing it, for [`Reporter::take_reports`].
    pub fn keeping_reports(mut self) -> Reporter {
        self.keep = true;
        self
    }

    /// Outputs are skipped because they are up to date (`--update`).
    pub fn updating(mut self) -> Reporter {
        self.update = true;
        self
    }

    /// Every report so far with the time its input took, in input order (after
    /// [`Reporter::flush`]); empty unless kept.
    pub fn take_reports(&self) -> Vec<(FileReport, Duration)> {
        std::mem::take(&mut self.lock().done)
    }

    /// Input number `index` starts converting now: its report will say how long it took.
    pub fn started(&self, index: usize) {
        if self.keep {
            self.lock().started.insert(index, Instant::now());
        }
    }

    /// The report on input number `index` (0-based, command-line order). Printed as soon as all
    /// earlier inputs are reported.
    pub fn file(&self, index: usize, report: FileReport) {
        let mut guard = self.lock();
        let state = &mut *guard;
        count(&mut state.totals, &report);
        let elapsed = state
            .started
            .remove(&index)
            .map(|t| t.elapsed())
            .unwrap_or_default();
        state.waiting.insert(index, (report, elapsed));
        let mut text = String::new();
        while let Some((report, elapsed)) = state.waiting.remove(&state.next) {
            state.next += 1;
            self.render(&report, &mut text);
            if self.keep {
                state.done.push((report, elapsed));
            }
        }
        emit(&text);
        crate::ui::progress::file_done();
    }

    /// Print every report still held back (a run that was interrupted leaves gaps), in order.
    pub fn flush(&self) -> Totals {
        let mut state = self.lock();
        let mut text = String::new();
        for (report, elapsed) in std::mem::take(&mut state.waiting).into_values() {
            self.render(&report, &mut text);
            if self.keep {
                state.done.push((report, elapsed));
            }
        }
        emit(&text);
        state.totals
    }

    /// The closing line: counts and time; `signal` names the signal that stopped the run.
    pub fn summary(&self, totals: &Totals, elapsed: Duration, signal: Option<&str>) {
        let failed = format!("{} failed", totals.failed);
        let failed_before = if totals.failed_before > 0 {
            format!(
                ", {}",
                paint(
                    YELLOW,
                    &format!("{} failed before (unchanged)", totals.failed_before)
                )
            )
        } else {
            String::new()
        };
        let line = format!(
            "{} converted, {} skipped, {}{failed_before}; {} {}, {} {} in {:.2}s",
            totals.converted,
            totals.skipped,
            if totals.failed > 0 {
                paint(RED, &failed)
            } else {
                failed
            },
            totals.rows,
            plural(totals.rows, "row", "rows"),
            totals.warnings,
            plural(totals.warnings, "warning", "warnings"),
            elapsed.as_secs_f64(),
        );
        match signal {
            Some(signal) => message(format_args!(
                "interrupted by {signal}, {} not converted, no partial file left; {line}",
                totals.interrupted
            )),
            None if self.verbosity > Verbosity::Quiet => message(format_args!("{line}")),
            None => {}
        }
    }

    /// A remark about the run itself, shown with `--verbose`.
    pub fn note(&self, text: fmt::Arguments<'_>) {
        if self.verbosity >= Verbosity::Verbose {
            let _guard = self.lock();
            message(text);
        }
    }

    /// A problem that does not fail any input, shown unless `--quiet`.
    pub fn warn(&self, text: fmt::Arguments<'_>) {
        if self.verbosity > Verbosity::Quiet {
            let _guard = self.lock();
            message(format_args!("{}: {text}", paint(YELLOW, "warning")));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while printing cannot leave the counts half-updated in a way that matters more
        // than losing every later message.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn render(&self, report: &FileReport, text: &mut String) {
        let input = escaped(&report.input);
        let verbose = self.verbosity >= Verbosity::Verbose;
        if self.verbosity > Verbosity::Quiet {
            for warning in report.warnings.kept().iter().take(WARNINGS_SHOWN) {
                let _ = writeln!(
                    text,
                    "kml2csv: {input}{}: {}: {}",
                    At(warning.position),
                    paint(YELLOW, "warning"),
                    warning.message
                );
            }
            let shown = report.warnings.kept().len().min(WARNINGS_SHOWN) as u64;
            let hidden = report.warnings.total() - shown;
            if hidden > 0 {
                let _ = writeln!(
                    text,
                    "kml2csv: {input}: … and {hidden} more {}",
                    plural(hidden, "warning", "warnings")
                );
            }
        }
        let _ = match &report.status {
            Status::Failed { position, message } => writeln!(
                text,
                "kml2csv: {input}{}: {}",
                At(*position),
                paint(RED, message)
            ),
            Status::Converted { output, rows } if verbose => writeln!(
                text,
                "kml2csv: {input}: converted to {} ({rows} {})",
                escaped(output),
                plural(*rows, "row", "rows")
            ),
            Status::Skipped { output } if verbose && self.update => writeln!(
                text,
                "kml2csv: {input}: skipped, {} is up to date",
                escaped(output)
            ),
            Status::Skipped { output } if verbose => writeln!(
                text,
                "kml2csv: {input}: skipped, {} already exists (--force overwrites it)",
                escaped(output)
            ),
            Status::ConvertedElsewhere { output } if verbose => writeln!(
                text,
                "kml2csv: {input}: skipped, {} was converted by another run meanwhile",
                escaped(output)
            ),
            Status::FailedBefore {
                record,
                position,
                message,
            } if self.verbosity > Verbosity::Quiet => writeln!(
                text,
                "kml2csv: {input}{}: {}: failed before and unchanged since, not tried again \
                 (recorded in {}; --retry-failed tries it): {message}",
                At(*position),
                paint(YELLOW, "warning"),
                escaped(record)
            ),
            Status::Interrupted if verbose => writeln!(text, "kml2csv: {input}: interrupted"),
            _ => Ok(()),
        };
    }
}

fn count(totals: &mut Totals, report: &FileReport) {
    totals.warnings += report.warnings.total();
    match &report.status {
        Status::Converted { rows, .. } => {
            totals.converted += 1;
            totals.rows += rows;
        }
        Status::Skipped { .. } | Status::ConvertedElsewhere { .. } => totals.skipped += 1,
        Status::Failed { .. } => totals.failed += 1,
        Status::FailedBefore { .. } => totals.failed_before += 1,
        Status::Interrupted => totals.interrupted += 1,
    }
}

/// `:LINE:COL` after a path when the position is known.
struct At(Option<Position>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Print `kml2csv: TEXT` on its own line. For messages outside a batch (usage errors, the
/// top-level error); inside one, [`Reporter`] serialises the calls.
pub fn message(text: fmt::Arguments<'_>) {
    emit(&format!("kml2csv: {text}\n"));
}

/// `kml2csv: PATH: TEXT`.
pub fn path_message(path: &Path, text: fmt::Arguments<'_>) {
    message(format_args!("{}: {text}", escaped(path)));
}

fn emit(text: &str) {
    if text.is_empty() {
        return;
    }
    // Nothing sensible can be done about a closed or full stderr; the exit status still tells.
    crate::ui::progress::suspend(|| {
        let _ = io::stderr().lock().write_all(text.as_bytes());
    });
}

static COLOR: AtomicBool = AtomicBool::new(false);

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";

/// Colour `warning` and errors from now on (`--color`, `NO_COLOR`).
pub fn set_color(on: bool) {
    COLOR.store(on, Ordering::Relaxed);
}

/// `text` in `color` when colour is on.
fn paint(color: &str, text: &str) -> String {
    if COLOR.load(Ordering::Relaxed) {
        format!("{color}{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kml::Warning;

    fn failed(input: &str) -> FileReport {
        FileReport {
            input: input.into(),
            status: Status::Failed {
                position: Some(Position { line: 3, column: 7 }),
                message: "malformed XML: x".into(),
            },
            warnings: Warnings::default(),
        }
    }

    #[test]
    fn failure_line_has_path_and_position() {
        let reporter = Reporter::new(Verbosity::Normal);
        let mut text = String::new();
        reporter.render(&failed("a/x.kml"), &mut text);
        assert_eq!(text, "kml2csv: a/x.kml:3:7: malformed XML: x\n");
    }

    #[test]
    fn warnings_are_capped_but_counted() {
        let reporter = Reporter::new(Verbosity::Normal);
        let mut warnings = Warnings::default();
        for i in 0..25 {
            warnings.push(Warning {
                position: Some(Position { line: i, column: 1 }),
                message: "bad tuple".into(),
            });
        }
        let report = FileReport {
            input: "w.kml".into(),
            status: Status::Converted {
                output: "w.csv".into(),
                rows: 1,
            },
            warnings,
        };
        let mut text = String::new();
        reporter.render(&report, &mut text);
        assert_eq!(text.lines().count(), WARNINGS_SHOWN + 1);
        assert!(text.starts_with("kml2csv: w.kml:0:1: warning: bad tuple\n"));
        assert!(text.ends_with("kml2csv: w.kml: … and 5 more warnings\n"));
        reporter.file(0, report);
        assert_eq!(reporter.flush().warnings, 25);
    }

    #[test]
    fn reports_are_released_in_input_order() {
        let reporter = Reporter::new(Verbosity::Quiet);
        reporter.file(1, failed("b"));
        assert_eq!(reporter.lock().next, 0);
        reporter.file(0, failed("a"));
        assert_eq!(reporter.lock().next, 2);
        assert!(reporter.lock().waiting.is_empty());
    }
}

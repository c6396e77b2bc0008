//! The batch: plan, clean up after killed runs, convert in parallel, decide the exit status.
//!
//! A failure on one input is reported and the run goes on; the exit status is decided once, at
//! the end, from every input's outcome. SIGINT and SIGTERM stop the batch cleanly: no new file
//! is started, running conversions stop at their next write, their temporaries are removed.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::commit::{self, Pending};
use crate::config::Config;
use crate::convert::{self, Outcome, Settings};
use crate::input::{Input, STDIN};
use crate::kml::Warnings;
use crate::plan::{self, Action, Plan, Target};
use crate::report::{self, FileReport, Reporter, Status};
use crate::{dry_run, json_report, progress, stream, temp};

/// How the run ended; [`ExitStatus::code`] is the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every input was converted or skipped.
    Success,
    /// At least one input failed; the others were converted.
    Failure,
    /// The command line was wrong; nothing was converted.
    Usage,
    /// Stopped by this signal number.
    Signal(i32),
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            // The shell convention, 128 + signal: 130 for SIGINT, 143 for SIGTERM.
            ExitStatus::Signal(signal) => u8::try_from(128 + signal).unwrap_or(1),
        }
    }
}

/// The stop request shared with the signal handlers.
pub(crate) struct Stop {
    pub(crate) requested: Arc<AtomicBool>,
    /// The signal that asked, 0 for none.
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// First SIGINT/SIGTERM: set the flag and let the batch wind down. Second one: exit at once
    /// (the next run removes the temporaries that leaves).
    pub(crate) fn install() -> anyhow::Result<Stop> {
        let requested = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        #[cfg(windows)]
        console::install(&requested, &signal).context("cannot install the Ctrl-C handler")?;
        #[cfg(not(windows))]
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the conditional exit must see the flag before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, requested.clone())
                .and_then(|_| signal_hook::flag::register(sig, requested.clone()))
                .and_then(|_| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
                .context("cannot install the signal handlers")?;
        }
        Ok(Stop { requested, signal })
    }

    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            // The flag handler runs before the number is stored; a signal caught in between
            // still ends the run as interrupted.
            0 if self.requested.load(Ordering::SeqCst) => Some(SIGINT),
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT if cfg!(windows) => "Ctrl-C",
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Ctrl-C and Ctrl-Break on a Windows console, where signals do not reach a program: the same
/// stop as SIGINT (exit status 130), and a second one ends the process at once. Closing the
/// console, logging off and shutting down keep the system's default (the process ends; the
/// next run removes its temporaries).
#[cfg(windows)]
mod console {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use signal_hook::consts::SIGINT;
    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT,
    };
    use windows_sys::Win32::System::Threading::ExitProcess;

    /// The stop request of the latest run in this process; a handler cannot take arguments.
    type Request = (Arc<AtomicBool>, Arc<AtomicUsize>);
    static STOP: Mutex<Option<Request>> = Mutex::new(None);

    pub fn install(requested: &Arc<AtomicBool>, signal: &Arc<AtomicUsize>) -> std::io::Result<()> {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *STOP.lock().unwrap_or_else(|p| p.into_inner()) = Some((requested.clone(), signal.clone()));
        // SAFETY: `handler` is a valid handler for the life of the process.
        let installed =
            *INSTALLED.get_or_init(|| unsafe { SetConsoleCtrlHandler(Some(handler), 1) } != 0);
        if installed {
            Ok(())
        } else {
            Err(std::io::Error::other("SetConsoleCtrlHandler failed"))
        }
    }

    /// Runs on a thread of its own that the system starts for each event.
    unsafe extern "system" fn handler(event: u32) -> BOOL {
        if event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT {
            return 0;
        }
        let Some((requested, signal)) = STOP.lock().unwrap_or_else(|p| p.into_inner()).clone()
        else {
            return 0;
        };
        if requested.swap(true, Ordering::SeqCst) {
            // SAFETY: ends the process; the temporaries left are removed by the next run.
            unsafe { ExitProcess(128 + SIGINT as u32) };
        }
        signal.store(SIGINT as usize, Ordering::SeqCst);
        1
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use windows_sys::Win32::System::Console::CTRL_CLOSE_EVENT;

        #[test]
        fn ctrl_c_and_ctrl_break_request_the_stop_that_sigint_does() {
            let (requested, signal) = (Arc::new(AtomicBool::new(false)), Arc::default());
            install(&requested, &signal).unwrap();
            // Closing the console is left to the system.
            // SAFETY: called as the system would, on a thread of the process.
            assert_eq!(unsafe { handler(CTRL_CLOSE_EVENT) }, 0);
            assert!(!requested.load(Ordering::SeqCst));
            // A second event would end the test process, so one of each kind is not sent.
            // SAFETY: as above.
            assert_eq!(unsafe { handler(CTRL_BREAK_EVENT) }, 1);
            assert!(requested.load(Ordering::SeqCst));
            assert_eq!(signal.load(Ordering::SeqCst), SIGINT as usize);
            let stop = crate::run::Stop { requested, signal };
            assert_eq!(stop.signal(), Some(SIGINT));
            assert_eq!(crate::run::ExitStatus::Signal(SIGINT).code(), 130);
            assert_eq!(crate::run::signal_name(SIGINT), "Ctrl-C");
        }
    }
}

/// Convert everything `config` names. An `Err` is a failure of the run itself (no threads, no
/// output folder), not of an input.
pub fn run(config: &Config) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    report::set_color(config.color);
    if let Err(problem) = stream::check_usage(config) {
        report::message(format_args!("{problem}"));
        return Ok(ExitStatus::Usage);
    }
    if let (Some(path), false) = (&config.report, config.dry_run) {
        // Before any work: a report that cannot be written would otherwise only be found at
        // the end of a long batch.
        json_report::check_writable(path)
            .with_context(|| format!("{}: cannot write the report", path.display()))?;
    }
    let stop = Stop::install()?;
    let mut reporter = Reporter::new(config.verbosity);
    if config.report.is_some() {
        reporter = reporter.keeping_reports();
    }
    if config.update {
        reporter = reporter.updating();
    }
    if config.merge.is_some() || config.stdout || config.inputs.iter().any(|i| i == STDIN) {
        return stream::run(config, &stop, &reporter, started);
    }

    let target = Target {
        out_dir: config.out_dir.as_deref(),
        force: config.force,
        shard: config.shard,
        update: config.update,
    };
    let plan = match plan::build(
        &config.inputs,
        target,
        &extra_outputs(config),
        &stop.requested,
    ) {
        Ok(plan) => plan,
        Err(problems) => return Ok(refuse(&problems)),
    };
    if stop.signal().is_some() {
        return Ok(stream::finish(
            config, &stop, &reporter, started, true, false,
        ));
    }
    if config.dry_run {
        return Ok(dry_run::print(&plan, config));
    }

    if let Some(dir) = &config.out_dir {
        convert::create_dir_durably(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    remove_stale_temporaries(&plan, &reporter);

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .thread_name(|i| format!("kml2csv-worker-{i}"))
        .build()
        .context("cannot start the worker threads")?;
    let read = stream::read_options(config, &stop);
    if config.shape.selects_fields() {
        // `--columns` names ExtendedData fields: look for them in the inputs to convert, and
        // say so when none has one. Never an error: skipped inputs are not read, so the fields
        // a run sees depend on what is left to do (see: issue 13). Pipes are left out: a first
        // pass would consume them.
        let inputs: Vec<Input> = largest_first(&plan)
            .iter()
            .map(|(_, _, input, _)| Input::Path(input.to_path_buf()))
            .filter(Input::rereadable)
            .collect();
        if !inputs.is_empty() {
            let fields = stream::union_of_fields(&pool, &inputs, &read);
            stream::warn_fields_not_found(config, &reporter, &fields, inputs.len());
        }
    }
    let settings = Settings {
        // With --update a job exists only because its output is missing or stale.
        force: config.force || config.update,
        read: &read,
        stop: &stop.requested,
        two_threads: false,
        shape: &config.shape,
        layout: None,
        dialect: &config.dialect,
    };

    if config.progress {
        let bytes = plan
            .items
            .iter()
            .filter_map(|item| match &item.action {
                Action::Convert { size, .. } => Some(*size),
                _ => None,
            })
            .sum();
        progress::start(plan.items.len() as u64, bytes);
    }
    // Inputs that need no work are reported now; the reporter keeps command-line order.
    for (index, item) in plan.items.iter().enumerate() {
        let status = match &item.action {
            Action::Convert { .. } => continue,
            Action::Skip { output } => Status::Skipped {
                output: output.clone(),
            },
            Action::Fail { message } => Status::Failed {
                position: None,
                message: message.clone(),
            },
        };
        reporter.file(
            index,
            FileReport {
                input: item.input.clone(),
                status,
                warnings: Warnings::default(),
            },
        );
    }

    // Workers write temporaries; the committer makes them durable in groups and renames them
    // (see `commit`), then reports them.
    let quiet_panics = QuietPanics::install();
    std::thread::scope(|threads| -> anyhow::Result<()> {
        let reporter = &reporter;
        let committed = commit::start(
            threads,
            settings.stop,
            |(index, input): (usize, &Path), output, outcome| {
                reporter.file(index, file_report(input, &output, outcome));
            },
        )
        .context("cannot start the committer thread")?;
        let jobs = largest_first(&plan);
        let not_started = &AtomicUsize::new(jobs.len());
        let running_bytes = &AtomicU64::new(0);
        pool.scope_fifo(|scope| {
            for (index, size, input, output) in jobs {
                let committed = committed.clone();
                scope.spawn_fifo(move |_| {
                    reporter.started(index);
                    // Fewer files left to start than other workers, and what the others are
                    // still converting is less than half this file: a core would idle, so let
                    // this file use two (a big one gains ~1.4x). Not otherwise: the hand-over
                    // between the threads costs about a fifth more work, which is a loss
                    // while the cores are busy anyway (the last of four equal files, say). A
                    // small file is not worth a thread.
                    let waiting = not_started.fetch_sub(1, Ordering::Relaxed) - 1;
                    let others = running_bytes.fetch_add(size, Ordering::Relaxed);
                    let settings = Settings {
                        two_threads: waiting + 1 < config.jobs
                            && size >= TWO_THREADS_FROM
                            && others < size / 2,
                        ..settings
                    };
                    let _running = Running(running_bytes, size);
                    // Checked when planned, and again now: a folder below --out may have been
                    // replaced by a link since.
                    let link = config
                        .out_dir
                        .as_deref()
                        .and_then(|dir| plan::link_below(dir, output));
                    let outcome = if settings.stop.load(Ordering::Relaxed) {
                        Outcome::Interrupted
                    } else if let Some(message) = link {
                        Outcome::Failed {
                            position: None,
                            message,
                            warnings: Warnings::default(),
                        }
                    } else {
                        match write_one(input, output, settings) {
                            Ok(written) => {
                                let pending = Pending {
                                    tag: (index, input),
                                    output: output.to_path_buf(),
                                    written,
                                };
                                // Only fails if the committer is gone; then the temporary
                                // comes back and is removed with the error.
                                match committed.send(pending) {
                                    Ok(()) => return,
                                    Err(_) => failed_internally("the committer thread ended"),
                                }
                            }
                            Err(outcome) => outcome,
                        }
                    };
                    reporter.file(index, file_report(input, output, outcome));
                });
            }
        });
        Ok(())
    })?;
    drop(quiet_panics);
    progress::finish();

    Ok(stream::finish(
        config, &stop, &reporter, started, true, false,
    ))
}

/// The files a run writes besides the per-input CSVs: the merged CSV and the report, when they
/// are files.
pub(crate) fn extra_outputs(config: &Config) -> Vec<plan::Extra<'_>> {
    let mut extra = Vec::new();
    if let Some(crate::config::Merge::File(file)) = &config.merge {
        extra.push(plan::Extra {
            path: file,
            what: "the merged CSV (--merge)",
        });
    }
    if let Some(report) = config.report.as_deref().filter(|r| *r != Path::new("-")) {
        extra.push(plan::Extra {
            path: report,
            what: "the report (--report)",
        });
    }
    extra
}

/// Report the problems that stop a run before any work (a bad pattern, colliding outputs);
/// the exit status for them.
pub(crate) fn refuse(problems: &[plan::UsageError]) -> ExitStatus {
    for problem in problems {
        report::message(format_args!("{problem}"));
    }
    report::message(format_args!("nothing was converted"));
    ExitStatus::Usage
}

/// Takes a file's size back out of the bytes being converted when its job ends, however it
/// ends.
struct Running<'a>(&'a AtomicU64, u64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Inputs smaller than this are always read and written on one thread.
const TWO_THREADS_FROM: u64 = 4 << 20;

/// The jobs to convert, biggest input first, so that one large file does not start last and
/// keep a single core busy at the end. Ties keep command-line order.
fn largest_first(plan: &Plan) -> Vec<(usize, u64, &Path, &Path)> {
    let mut jobs: Vec<_> = plan
        .items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| match &item.action {
            Action::Convert { output, size } => {
                Some((*size, index, item.input.as_path(), output.as_path()))
            }
            _ => None,
        })
        .collect();
    jobs.sort_by_key(|&(size, index, ..)| (std::cmp::Reverse(size), index));
    jobs.into_iter()
        .map(|(size, index, input, output)| (index, size, input, output))
        .collect()
}

/// Write one input's temporary; a panic (a bug) fails this input by name instead of the whole
/// batch.
fn write_one(
    input: &Path,
    output: &Path,
    settings: Settings<'_>,
) -> Result<convert::Written, Outcome> {
    panic::catch_unwind(AssertUnwindSafe(|| convert::write(input, output, settings)))
        .unwrap_or_else(|payload| Err(failed_internally(panic_message(payload.as_ref()))))
}

fn failed_internally(what: &str) -> Outcome {
    Outcome::Failed {
        position: None,
        message: format!("internal error: {what} (this is a bug in kml2csv; please report it)"),
        warnings: Warnings::default(),
    }
}

fn file_report(input: &Path, output: &Path, outcome: Outcome) -> FileReport {
    let (status, warnings) = match outcome {
        Outcome::Converted { rows, warnings } => (
            Status::Converted {
                output: output.to_path_buf(),
                rows,
            },
            warnings,
        ),
        Outcome::ConvertedElsewhere { warnings } => (
            Status::ConvertedElsewhere {
                output: output.to_path_buf(),
            },
            warnings,
        ),
        Outcome::Failed {
            position,
            message,
            warnings,
        } => (Status::Failed { position, message }, warnings),
        Outcome::Interrupted => (Status::Interrupted, Warnings::default()),
    };
    FileReport {
        input: input.to_path_buf(),
        status,
        warnings,
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown panic"
    }
}

/// While workers run, a panic is reported as that input's failure, so the default hook's
/// `thread '…' panicked at` (and backtrace) must not reach the user. Restored afterwards.
pub(crate) struct QuietPanics;

impl QuietPanics {
    pub(crate) fn install() -> QuietPanics {
        panic::set_hook(Box::new(|_| {}));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let _ = panic::take_hook();
    }
}

/// Remove what killed runs left in the folders this run writes to. Never fails the run: a
/// leftover is harmless (hidden, never named `.csv`).
fn remove_stale_temporaries(plan: &Plan, reporter: &Reporter) {
    remove_stale_temporaries_in(plan.output_dirs(), reporter);
}

pub(crate) fn remove_stale_temporaries_in(dirs: Vec<std::path::PathBuf>, reporter: &Reporter) {
    for dir in dirs {
        match temp::remove_stale_temporaries(&dir) {
            Ok(0) => {}
            Ok(n) => reporter.note(format_args!(
                "{}: removed {n} temporary {} left by an interrupted run",
                dir.display(),
                if n == 1 { "file" } else { "files" }
            )),
            Err(e) => reporter.warn(format_args!(
                "{}: cannot remove temporary files left by an interrupted run: {e}",
                dir.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_inputs_are_scheduled_first() {
        use crate::plan::Item;
        let item = |name: &str, action| Item {
            input: name.into(),
            action,
        };
        let convert = |size| Action::Convert {
            output: "o.csv".into(),
            size,
        };
        let plan = Plan {
            items: vec![
                item("small", convert(1)),
                item("skipped", Action::Skip { output: "s".into() }),
                item("big", convert(100)),
                item("tie", convert(1)),
            ],
        };
        let order: Vec<usize> = largest_first(&plan).iter().map(|j| j.0).collect();
        assert_eq!(order, [2, 0, 3]);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Failure.code(), 1);
        assert_eq!(ExitStatus::Usage.code(), 2);
        assert_eq!(ExitStatus::Signal(SIGINT).code(), 130);
        assert_eq!(ExitStatus::Signal(SIGTERM).code(), 143);
    }
}

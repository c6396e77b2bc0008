//! The batch: plan, clean up after killed runs, convert in parallel, decide the exit status.
//!
//! A failure on one input is reported and the run goes on; the exit status is decided once, at
//! the end, from every input's outcome. SIGINT and SIGTERM stop the batch cleanly: no new file
//! is started, running conversions stop at their next write, their temporaries are removed.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;

use crate::batch::common;
use crate::batch::convert::{self, Done, Held, Settings};
use crate::batch::dry_run;
use crate::batch::input::{self, Input, STDIN};
use crate::batch::merge;
use crate::batch::plan::failed;
use crate::batch::plan::{self, Action, Plan, Target};
use crate::batch::status::{panic_message, ExitStatus, QuietPanics, Stop};
use crate::batch::Config;
use crate::kml::Warnings;
use crate::output::commit::{self, Outcome, Pending, Written};
use crate::output::durable::{self, parent_or_dot};
use crate::output::held;
use crate::output::pool::Pool;
use crate::output::temp;
use crate::ui::path_text::escaped;
use crate::ui::report::{self, FileReport, Reporter, Status};
use crate::ui::{json_report, progress};

/// Convert everything `config` names. An `Err` is a failure of the run itself (no threads, no
/// output folder), not of an input.
pub fn run(config: &Config) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    report::set_color(config.color);
    if let Err(problem) = common::check_usage(config) {
        report::message(format_args!("{problem}"));
        return Ok(ExitStatus::Usage);
    }
    if let (Some(path), false) = (&config.report, config.dry_run) {
        // Before any work: a report that cannot be written would otherwise only be found at
        // the end of a long batch.
        json_report::check_writable(path)
            .with_context(|| format!("{}: cannot write the report", escaped(path)))?;
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
        return merge::run(config, &stop, &reporter, started);
    }

    let target = Target {
        out_dir: config.out_dir.as_deref(),
        force: config.force,
        shard: config.shard,
        update: config.update,
        keep_extension: config.keep_extension,
    };
    let mut plan = match plan::build(
        &config.inputs,
        target,
        &common::extra_outputs(config),
        &stop.requested,
    ) {
        Ok(plan) => plan,
        Err(problems) => return Ok(common::refuse(&problems)),
    };
    if stop.signal().is_some() {
        return Ok(common::finish(
            config, &stop, &reporter, started, true, false,
        ));
    }
    // Inputs that failed in an earlier run and have not changed since are not tried again;
    // `recorded` are those to convert that still have a record of a failure.
    let recorded = failed::apply(&mut plan, config.strict, config.retry_failed);
    if config.dry_run {
        return Ok(dry_run::print(&plan, config));
    }

    if let Some(dir) = &config.out_dir {
        durable::create_dir_durably(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    remove_stale_temporaries(&plan, &reporter);

    let converting = plan
        .items
        .iter()
        .filter(|item| matches!(item.action, Action::Convert { .. }))
        .count();
    // One input (the Makefile recipe's one file per invocation) is converted here, on this
    // thread: a pool and a committer would cost more than the file.
    let pool = if converting > 1 {
        let workers = common::workers(config.jobs(), converting, &reporter);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("kml2csv-worker-{i}"))
            .build()
            .context("cannot start the worker threads")?;
        Some((pool, workers))
    } else {
        None
    };
    let read = common::read_options(config, &stop);
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
            let pool = pool.as_ref().map(|(pool, _)| pool);
            let fields = common::union_of_fields(pool, &inputs, &read);
            common::warn_fields_not_found(config, &reporter, &fields, inputs.len());
        }
    }
    let settings = Settings {
        // With --update a job exists only because its output is missing or stale.
        force: config.force || config.update,
        read: &read,
        stop: &stop.requested,
        two_threads: false,
        hold: false,
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
            Action::FailedBefore { output, record } => Status::FailedBefore {
                record: failed::path_for(output),
                position: record.position(),
                message: record.error.clone(),
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

    let quiet_panics = QuietPanics::install();
    let job = Job {
        config,
        plan: &plan,
        recorded: &recorded,
        reporter: &reporter,
    };
    match pool {
        Some((pool, workers)) => convert_in_parallel(&job, &pool, workers, converting, settings)?,
        None => {
            for (index, _, input, output) in largest_first(&plan) {
                let written = job
                    .write(index, input, output, settings)
                    .and_then(|done| done.into_written(output));
                let outcome = match written {
                    Ok(written) => {
                        let pending = Pending {
                            tag: (),
                            output: output.to_path_buf(),
                            written,
                        };
                        let mut done = commit::commit_group(vec![pending], settings.stop);
                        let outcome = done
                            .pop()
                            .map_or(Outcome::Interrupted, |(_, _, outcome)| outcome);
                        job.committed(index, input, output, &outcome);
                        outcome
                    }
                    Err(outcome) => outcome,
                };
                reporter.file(index, file_report(input, output, outcome));
            }
        }
    }
    drop(quiet_panics);
    progress::finish();

    Ok(common::finish(
        config, &stop, &reporter, started, true, false,
    ))
}

/// What every job of a run needs besides its input and output.
struct Job<'a> {
    config: &'a Config,
    plan: &'a Plan,
    /// The indices of the items to convert that have a record of an earlier failure.
    recorded: &'a [usize],
    reporter: &'a Reporter,
}

impl Job<'_> {
    /// Convert item `index` into its temporary; the outcome instead when it did not get that
    /// far (a failure caused by the input is recorded).
    fn write(
        &self,
        index: usize,
        input: &Path,
        output: &Path,
        settings: Settings<'_>,
    ) -> Result<Done, Outcome> {
        self.reporter.started(index);
        // Taken before reading, so that a failure is never recorded against a version of the
        // input that was not read; also what tells a file changed while it was read.
        let meta = std::fs::metadata(input).ok();
        let identity = meta.as_ref().and_then(failed::Identity::of_meta);
        let version = meta.as_ref().and_then(input::Identity::of_meta);
        // Checked when planned, and again now: a folder below --out may have been replaced by
        // a link since.
        let link = self
            .config
            .out_dir
            .as_deref()
            .and_then(|dir| plan::link_below(dir, output));
        if settings.stop.load(Ordering::Relaxed) {
            Err(Outcome::Interrupted)
        } else if let Some(message) = link {
            Err(Outcome::Failed {
                position: None,
                message,
                warnings: Warnings::default(),
                of_input: false,
            })
        } else {
            write_one(input, output, version, settings).inspect_err(|outcome| {
                record_failure(input, output, outcome, identity, self.config, self.reporter)
            })
        }
    }

    /// Item `index` is committed with `outcome`: a record of an earlier failure goes once the
    /// CSV is durable (a crash before leaves the record, which the next run finds stale).
    fn committed(&self, index: usize, input: &Path, output: &Path, outcome: &Outcome) {
        if matches!(outcome, Outcome::Converted { .. })
            && self.recorded.binary_search(&index).is_ok()
        {
            if let Err(e) = failed::remove(output) {
                self.reporter.warn(format_args!(
                    "{}: cannot remove {}: {e}",
                    escaped(input),
                    escaped(&failed::path_for(output))
                ));
            }
        }
    }
}

/// Convert the jobs of `job.plan` on `pool`'s `workers`: they write temporaries; the committer
/// makes them durable in groups and renames them (see `commit`), then reports them.
fn convert_in_parallel(
    job: &Job<'_>,
    pool: &rayon::ThreadPool,
    workers: usize,
    converting: usize,
    settings: Settings<'_>,
) -> anyhow::Result<()> {
    let reporter = job.reporter;
    std::thread::scope(|threads| -> anyhow::Result<()> {
        let committed = commit::start(
            threads,
            settings.stop,
            converting,
            |(index, input): (usize, &Path), output, outcome| {
                job.committed(index, input, &output, &outcome);
                reporter.file(index, file_report(input, &output, outcome));
            },
        )
        .context("cannot start the committer thread")?;
        // While a core idles (fewer workers than cores: `-j1` on two), a small file is
        // converted into memory and a writing thread puts it into its temporary, so that its
        // worker goes on with the next file meanwhile (see `output::held`). With every core
        // converting, that would only move work from one thread to another.
        let idle_cores = common::cores().saturating_sub(workers);
        let to_commit = committed.clone();
        let writer = Pool::new(
            threads,
            "kml2csv-write",
            idle_cores.min(workers),
            HELD_WAITING,
            move |(index, input, output, held): (usize, &Path, &Path, Held)| {
                let outcome = if settings.stop.load(Ordering::Relaxed) {
                    Outcome::Interrupted
                } else {
                    // As on a worker, a panic (a bug) fails this input by name.
                    let written = panic::catch_unwind(AssertUnwindSafe(|| held.write(output)))
                        .unwrap_or_else(|payload| {
                            Err(failed_internally(panic_message(payload.as_ref())))
                        });
                    match written {
                        Ok(written) => match hand_in(&to_commit, index, input, output, written) {
                            Ok(()) => return,
                            Err(outcome) => outcome,
                        },
                        Err(outcome) => outcome,
                    }
                };
                reporter.file(index, file_report(input, output, outcome));
            },
        );
        let jobs = largest_first(job.plan);
        let not_started = &AtomicUsize::new(jobs.len());
        let running_bytes = &AtomicU64::new(0);
        pool.scope_fifo(|scope| {
            for (index, size, input, output) in jobs {
                let (committed, writer) = (committed.clone(), writer.clone());
                scope.spawn_fifo(move |_| {
                    // Fewer files left to start than other workers, and what the others are
                    // still converting is less than half this file: a core would idle, so let
                    // this file use two (a big one gains ~1.4x). Not otherwise: the hand-over
                    // between the threads costs about a fifth more work, which is a loss
                    // while the cores are busy anyway (the last of four equal files, say). A
                    // small file is not worth a thread.
                    let waiting = not_started.fetch_sub(1, Ordering::Relaxed) - 1;
                    let others = running_bytes.fetch_add(size, Ordering::Relaxed);
                    let settings = Settings {
                        two_threads: waiting + 1 < workers
                            && size >= TWO_THREADS_FROM
                            && others < size / 2,
                        hold: idle_cores > 0 && size < HOLD_FROM,
                        ..settings
                    };
                    let _running = Running(running_bytes, size);
                    let outcome = match job.write(index, input, output, settings) {
                        Ok(Done::Held(held)) => {
                            writer.send((index, input, output, held));
                            return;
                        }
                        Ok(Done::Written(written)) => {
                            match hand_in(&committed, index, input, output, written) {
                                Ok(()) => return,
                                Err(outcome) => outcome,
                            }
                        }
                        Err(outcome) => outcome,
                    };
                    reporter.file(index, file_report(input, output, outcome));
                });
            }
        });
        Ok(())
    })
}

/// Hand a finished temporary to the committer; the outcome to report instead if it is gone
/// (only after a bug: then the temporary comes back and is removed).
fn hand_in<'scope, 'a: 'scope>(
    committed: &commit::Queue<'scope, '_, (usize, &'a Path)>,
    index: usize,
    input: &'a Path,
    output: &Path,
    written: Written,
) -> Result<(), Outcome> {
    let pending = Pending {
        tag: (index, input),
        output: output.to_path_buf(),
        written,
    };
    committed
        .send(pending)
        .map_err(|_| failed_internally("the committer thread ended"))
}

/// Inputs from this size on are converted straight into their temporaries, even while a core
/// idles: their CSVs would mostly outgrow [`held::HOLD_AT_MOST`] anyway.
const HOLD_FROM: u64 = held::HOLD_AT_MOST as u64;

/// Held CSVs that may wait for a writing thread; a worker waits beyond.
const HELD_WAITING: usize = 4;

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
    version: Option<input::Identity>,
    settings: Settings<'_>,
) -> Result<Done, Outcome> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        convert::write(input, output, version, settings)
    }))
    .unwrap_or_else(|payload| Err(failed_internally(panic_message(payload.as_ref()))))
}

/// Keep a record of a failure that the input's content caused, so that the next run does not
/// fail on it again while it is unchanged (see [`failed`]).
fn record_failure(
    input: &Path,
    output: &Path,
    outcome: &Outcome,
    identity: Option<failed::Identity>,
    config: &Config,
    reporter: &Reporter,
) {
    let (
        Outcome::Failed {
            position,
            message,
            of_input: true,
            ..
        },
        Some(identity),
    ) = (outcome, identity)
    else {
        return;
    };
    let record = identity.record(input, config.strict, *position, message);
    if let Err(e) = failed::write(output, &record) {
        reporter.warn(format_args!(
            "{}: cannot record its failure in {}: {e}",
            escaped(input),
            escaped(&failed::path_for(output))
        ));
    }
}

fn failed_internally(what: &str) -> Outcome {
    Outcome::Failed {
        position: None,
        message: format!("internal error: {what} (this is a bug in kml2csv; please report it)"),
        warnings: Warnings::default(),
        of_input: false,
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
            ..
        } => (Status::Failed { position, message }, warnings),
        Outcome::Interrupted => (Status::Interrupted, Warnings::default()),
    };
    FileReport {
        input: input.to_path_buf(),
        status,
        warnings,
    }
}

/// Remove what killed runs left in the folders this run writes to. Never fails the run: a
/// leftover is harmless (hidden, never named `.csv`). A run over one file (a Makefile's
/// recipe, one call per file) looks only for the leftovers of its own output and its record
/// of a failure: listing a folder that already holds thousands of CSVs would cost more than
/// the conversion, on every call.
fn remove_stale_temporaries(plan: &Plan, reporter: &Reporter) {
    match plan.items.as_slice() {
        [item] => {
            let Some(output) = item.action.output() else {
                return;
            };
            let removed = temp::remove_stale_temporary_of(output)
                .and_then(|n| Ok(n + temp::remove_stale_temporary_of(&failed::path_for(output))?));
            common::report_stale_removal(parent_or_dot(output), removed, reporter);
        }
        _ => common::remove_stale_temporaries_in(plan.output_dirs(), reporter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_inputs_are_scheduled_first() {
        use crate::batch::plan::Item;
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
}

//! Outputs that are not one file per input: one merged CSV (`--merge FILE`, `--merge -`), or
//! the CSV of a single input on standard output (`--out -`, or `-` read from standard input).
//!
//! A merged CSV is built like the per-file outputs are: every input is converted in parallel to
//! an anonymous temporary part, and once all of them succeeded the header and the parts are
//! joined, in the sorted order of the inputs, into a temporary file that is synced and renamed
//! into place. So a merged CSV that exists is complete, and has every input in it.
//!
//! Also home to what both kinds of run share with [`crate::run`]: usage checks, read options,
//! the first pass over ExtendedData field names, and the end of a run.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;

use crate::config::{Config, Merge, Verbosity};
use crate::convert::{self, Settings, WriteFailure};
use crate::csv_out::{self, Dialect, Layout};
use crate::input::{Input, STDIN};
use crate::json_report::{self, Ending};
use crate::kml::{ReadOptions, Warnings};
use crate::path_text::escaped;
use crate::plan::{self, parent_or_dot, Action};
use crate::report::{self, FileReport, Reporter, Status};
use crate::run::{self, ExitStatus, QuietPanics, Stop};
use crate::temp::{Published, Temp};
use crate::{dry_run, progress};

/// Mistakes in the combination of options, found before any input is touched.
pub(crate) fn check_usage(config: &Config) -> Result<(), String> {
    config.shape.check().map_err(|e| e.to_string())?;
    let stdin = config.inputs.iter().filter(|i| *i == STDIN).count();
    if stdin > 1 {
        return Err("`-` (standard input) can be named only once".into());
    }
    if stdin == 1 && config.merge.is_none() {
        if config.inputs.len() > 1 {
            return Err(
                "`-` (standard input) is converted to standard output, so it must be \
                        the only input; use --merge to combine it with files"
                    .into(),
            );
        }
        if let Some(dir) = &config.out_dir {
            return Err(format!(
                "`-` (standard input) is converted to standard output, not into {}; \
                 redirect it (`> file.csv`) or use --merge FILE",
                dir.display()
            ));
        }
    }
    let csv_on_stdout = config.stdout
        || config.merge == Some(Merge::Stdout)
        || (stdin == 1 && config.merge.is_none());
    if csv_on_stdout && config.report.as_deref() == Some(Path::new("-")) {
        return Err("--report - and the CSV cannot both go to standard output".into());
    }
    Ok(())
}

/// How inputs are read for `config`.
pub(crate) fn read_options(config: &Config, stop: &Stop) -> ReadOptions {
    ReadOptions {
        strict: config.strict,
        cancel: Some(stop.requested.clone()),
        attributes: config.shape.reads_attributes(),
        features: config.shape.rows == csv_out::RowKind::Features,
    }
}

/// The ExtendedData field names of all `inputs` (first pass, in parallel), in first-seen order
/// over the inputs in the order given. An input that cannot be read adds nothing here; its
/// conversion reports why.
pub(crate) fn union_of_fields(
    pool: &rayon::ThreadPool,
    inputs: &[Input],
    read: &ReadOptions,
) -> Vec<String> {
    let per_input: Vec<Vec<String>> = pool.install(|| {
        inputs
            .par_iter()
            .map(|input| input.fields(read).unwrap_or_default())
            .collect()
    });
    let mut union = Vec::new();
    for fields in &per_input {
        csv_out::union_fields(&mut union, fields);
    }
    union
}

/// Warn about the `--columns` names that none of the `read` inputs has as an ExtendedData field
/// (`fields`, their union): a typo, or fields that only other inputs have. Their columns are
/// written empty.
pub(crate) fn warn_fields_not_found(
    config: &Config,
    reporter: &Reporter,
    fields: &[String],
    read: usize,
) {
    let missing = config.shape.fields_not_found(fields);
    if missing.is_empty() {
        return;
    }
    let mut available: Vec<String> = config
        .shape
        .fixed_columns()
        .iter()
        .map(csv_out::Column::header)
        .collect();
    available.extend(fields.iter().map(|f| csv_out::data_header(f)));
    reporter.warn(format_args!(
        "--columns {}: no ExtendedData field of {} in the {read} {} read, so {} empty; \
         available: {}",
        missing.join(", "),
        if missing.len() == 1 {
            "that name"
        } else {
            "these names"
        },
        if read == 1 { "input" } else { "inputs" },
        if missing.len() == 1 {
            "its column is"
        } else {
            "their columns are"
        },
        available.join(", ")
    ));
}

/// End a run: print what is still held back and the summary (when `summary`), write the JSON
/// report, and decide the exit status. `failed` says the run failed beyond its inputs (a merged
/// CSV that could not be written).
pub(crate) fn finish(
    config: &Config,
    stop: &Stop,
    reporter: &Reporter,
    started: Instant,
    summary: bool,
    failed: bool,
) -> ExitStatus {
    let totals = reporter.flush();
    let signal = stop.signal();
    if summary || signal.is_some() {
        reporter.summary(&totals, started.elapsed(), signal.map(run::signal_name));
    }
    let mut status = match signal {
        Some(signal) => ExitStatus::Signal(signal),
        None if totals.failed > 0 || failed => ExitStatus::Failure,
        None => ExitStatus::Success,
    };
    if let Some(path) = &config.report {
        let reports = reporter.take_reports();
        let ending = Ending {
            exit_code: status.code(),
            outcome: match status {
                ExitStatus::Success => "success",
                ExitStatus::Failure => "failure",
                ExitStatus::Usage => "usage",
                ExitStatus::Signal(_) => "interrupted",
            },
            elapsed: started.elapsed(),
            totals,
            skip_reason: if config.update {
                "up to date"
            } else {
                "output exists"
            },
        };
        if let Err(e) = json_report::write(path, &reports, &ending) {
            report::message(format_args!(
                "{}: cannot write the report: {e}",
                path.display()
            ));
            if status == ExitStatus::Success {
                status = ExitStatus::Failure;
            }
        }
    }
    status
}

/// One input of a merged or standard-output run.
struct Job {
    /// The input as named or matched (`-` for standard input): the `source` column.
    label: PathBuf,
    /// The input, or why it cannot be converted.
    input: Result<Input, String>,
    size: u64,
}

/// What becomes of a `--merge FILE` that may already exist.
enum Target {
    Write,
    Skip(&'static str),
    Refuse(String),
}

/// A merged or standard-output run.
pub(crate) fn run(
    config: &Config,
    stop: &Stop,
    reporter: &Reporter,
    started: Instant,
) -> anyhow::Result<ExitStatus> {
    let paths: Vec<OsString> = config
        .inputs
        .iter()
        .filter(|i| *i != STDIN)
        .cloned()
        .collect();
    let has_stdin = paths.len() < config.inputs.len();
    // With no path among the inputs, this only checks the merged CSV against the report.
    let plan = match plan::build_inputs(&paths, &run::extra_outputs(config), &stop.requested) {
        Ok(plan) => plan,
        Err(problems) => return Ok(run::refuse(&problems)),
    };
    if stop.signal().is_some() {
        return Ok(finish(config, stop, reporter, started, true, false));
    }
    let mut jobs: Vec<Job> = plan
        .items
        .into_iter()
        .map(|item| match item.action {
            Action::Convert { size, .. } => Job {
                input: Ok(Input::Path(item.input.clone())),
                label: item.input,
                size,
            },
            Action::Skip { .. } => unreachable!("build_inputs decides no output"),
            Action::Fail { message } => Job {
                label: item.input,
                input: Err(message),
                size: 0,
            },
        })
        .collect();
    if has_stdin {
        jobs.push(Job {
            label: PathBuf::from(STDIN),
            input: Ok(Input::Stdin),
            size: 0,
        });
    }

    let merge = match &config.merge {
        Some(merge) => merge,
        None => {
            if jobs.len() != 1 {
                report::message(format_args!(
                    "--out - writes the CSV of one input to standard output, but {} inputs were \
                     found; use --merge - for one CSV of them all",
                    jobs.len()
                ));
                return Ok(ExitStatus::Usage);
            }
            return to_stdout(config, stop, reporter, started, jobs.remove(0));
        }
    };
    // Sorted, so that a merged CSV does not depend on the order of arguments or matches.
    jobs.sort_by(|a, b| a.label.cmp(&b.label));

    let target = match merge {
        Merge::File(file) => decide_target(file, config, &jobs),
        Merge::Stdout => Target::Write,
    };
    let shown = match merge {
        Merge::File(file) => file.clone(),
        Merge::Stdout => PathBuf::from(STDIN),
    };
    if config.dry_run {
        return Ok(dry_run::print_merge(
            &shown,
            &target_text(&target),
            &jobs_text(&jobs),
        ));
    }
    match target {
        Target::Write => {}
        Target::Skip(reason) => {
            report_all(reporter, &jobs, |_| Status::Skipped {
                output: shown.clone(),
            });
            reporter.note(format_args!("{}: skipped, {reason}", shown.display()));
            return Ok(finish(config, stop, reporter, started, true, false));
        }
        Target::Refuse(message) => {
            report_all(reporter, &jobs, |_| Status::Failed {
                position: None,
                message: format!("not merged: {message}"),
            });
            return Ok(finish(config, stop, reporter, started, true, false));
        }
    }

    let dir = match merge {
        Merge::File(file) => {
            let dir = parent_or_dot(file).to_path_buf();
            convert::create_dir_durably(&dir)
                .with_context(|| format!("cannot create output folder {}", dir.display()))?;
            // Found now rather than as the failure of every input, once all are converted.
            Temp::create(&dir, config.force || config.update).with_context(|| {
                format!("{}: cannot write into {}", file.display(), dir.display())
            })?;
            run::remove_stale_temporaries_in(vec![dir.clone()], reporter);
            Some(dir)
        }
        Merge::Stdout => None,
    };

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .thread_name(|i| format!("kml2csv-worker-{i}"))
        .build()
        .context("cannot start the worker threads")?;
    let read = read_options(config, stop);
    let layout = layout_for(config, reporter, &pool, &mut jobs, &read);
    let part_dialect = Dialect {
        header: false,
        bom: false,
        ..config.dialect
    };
    let settings = Settings {
        force: config.force || config.update,
        read: &read,
        stop: &stop.requested,
        shape: &config.shape,
        layout: Some(&layout),
        dialect: &part_dialect,
        two_threads: false,
    };

    if config.progress {
        progress::start(jobs.len() as u64, jobs.iter().map(|j| j.size).sum());
    }
    let parts: Vec<Mutex<Option<File>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let failed = AtomicU64::new(0);
    let quiet_panics = QuietPanics::install();
    pool.scope_fifo(|scope| {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].size));
        for index in order {
            let (job, parts, failed, dir, shown) = (&jobs[index], &parts, &failed, &dir, &shown);
            scope.spawn_fifo(move |_| {
                reporter.started(index);
                let (status, warnings, part) = if settings.stop.load(Ordering::Relaxed) {
                    (Status::Interrupted, Warnings::default(), None)
                } else {
                    convert_part(job, dir.as_deref(), shown, settings)
                };
                if matches!(status, Status::Failed { .. }) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                *parts[index].lock().unwrap_or_else(|p| p.into_inner()) = part;
                reporter.file(index, file_report(job, status, warnings));
            });
        }
    });
    drop(quiet_panics);
    progress::finish();

    let failed = failed.load(Ordering::Relaxed);
    if stop.signal().is_some() {
        return Ok(finish(config, stop, reporter, started, true, false));
    }
    if failed > 0 && !config.keep_going {
        reporter.flush();
        report::message(format_args!(
            "{}: not written: {failed} of {} {} failed (a merged CSV has all inputs or none)",
            shown.display(),
            jobs.len(),
            if jobs.len() == 1 { "input" } else { "inputs" }
        ));
        return Ok(finish(config, stop, reporter, started, true, false));
    }
    let parts: Vec<File> = parts
        .into_iter()
        .filter_map(|p| p.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let written = match merge {
        Merge::File(file) => join_into_file(file, &layout, &config.dialect, parts, config),
        Merge::Stdout => join_to_stdout(&layout, &config.dialect, parts),
    };
    match written {
        Ok(()) => {}
        Err(JoinError::Closed) => return Ok(ExitStatus::Success),
        Err(JoinError::Failed(message)) => {
            reporter.flush();
            report::message(format_args!("{}: {message}", shown.display()));
            return Ok(finish(config, stop, reporter, started, true, true));
        }
    }
    if failed > 0 {
        // The failures themselves were reported; the status says the batch is incomplete.
        reporter.flush();
        report::message(format_args!(
            "{}: written without the {failed} failed {} of {} (--keep-going)",
            shown.display(),
            if failed == 1 { "input" } else { "inputs" },
            jobs.len()
        ));
    }
    let summary = matches!(merge, Merge::File(_)) || config.verbosity >= Verbosity::Verbose;
    Ok(finish(config, stop, reporter, started, summary, false))
}

/// Decide the columns of the merged CSV (or the standard output): the union of the inputs'
/// ExtendedData fields when they matter. Standard input and pipes are kept in temporary files
/// then, since they are read twice.
fn layout_for(
    config: &Config,
    reporter: &Reporter,
    pool: &rayon::ThreadPool,
    jobs: &mut [Job],
    read: &ReadOptions,
) -> Layout {
    let shape = &config.shape;
    if !(shape.needs_fields() || shape.selects_fields()) {
        return shape.layout(&[]);
    }
    // Standard input and pipes are read twice: copy them first.
    for job in jobs.iter_mut() {
        if let Ok(input) = &job.input {
            if !input.rereadable() {
                job.input = input.spooled().map_err(|e| format!("cannot read: {e}"));
            }
        }
    }
    let inputs: Vec<Input> = jobs
        .iter()
        .filter_map(|j| j.input.as_ref().ok()?.spooled().ok())
        .collect();
    let fields = union_of_fields(pool, &inputs, read);
    if !inputs.is_empty() {
        warn_fields_not_found(config, reporter, &fields, inputs.len());
    }
    shape.layout(&fields)
}

fn decide_target(file: &Path, config: &Config, jobs: &[Job]) -> Target {
    match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Target::Write,
        Err(e) => Target::Refuse(format!("cannot check {}: {e}", file.display())),
        Ok(meta) if meta.file_type().is_symlink() => Target::Refuse(format!(
            "{} is a symbolic link; refusing to write through it (remove it first)",
            file.display()
        )),
        Ok(meta) if meta.is_dir() => Target::Refuse(format!(
            "{} is a directory; refusing to replace it",
            file.display()
        )),
        Ok(_) if config.force => Target::Write,
        Ok(meta) if config.update => {
            let stale = jobs.iter().any(|j| match &j.input {
                Ok(Input::Path(p)) => plan::is_older(&meta, p),
                // Standard input is always new.
                _ => true,
            });
            if stale {
                Target::Write
            } else {
                Target::Skip("up to date")
            }
        }
        Ok(_) => Target::Skip("already exists (--force overwrites it)"),
    }
}

fn target_text(target: &Target) -> Result<String, String> {
    match target {
        Target::Write => Ok(String::new()),
        Target::Skip(reason) => Ok((*reason).to_owned()),
        Target::Refuse(message) => Err(message.clone()),
    }
}

fn jobs_text(jobs: &[Job]) -> Vec<(PathBuf, Result<(), String>)> {
    jobs.iter()
        .map(|j| {
            (
                j.label.clone(),
                j.input.as_ref().map(|_| ()).map_err(String::clone),
            )
        })
        .collect()
}

fn report_all(reporter: &Reporter, jobs: &[Job], status: impl Fn(&Job) -> Status) {
    for (index, job) in jobs.iter().enumerate() {
        let status = match &job.input {
            Err(message) => Status::Failed {
                position: None,
                message: message.clone(),
            },
            Ok(_) => status(job),
        };
        reporter.file(index, file_report(job, status, Warnings::default()));
    }
}

fn file_report(job: &Job, status: Status, warnings: Warnings) -> FileReport {
    FileReport {
        input: job.label.clone(),
        status,
        warnings,
    }
}

/// Convert one input of a merged CSV into an anonymous temporary part (in `dir`, the merged
/// file's folder, or the system's temporary folder for standard output).
fn convert_part(
    job: &Job,
    dir: Option<&Path>,
    shown: &Path,
    settings: Settings<'_>,
) -> (Status, Warnings, Option<File>) {
    let input = match &job.input {
        Ok(input) => input,
        Err(message) => {
            let status = Status::Failed {
                position: None,
                message: message.clone(),
            };
            return (status, Warnings::default(), None);
        }
    };
    let part = match dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    };
    let part = match part {
        Ok(part) => part,
        Err(e) => {
            let status = Status::Failed {
                position: None,
                message: format!("cannot create a temporary file: {e}"),
            };
            return (status, Warnings::default(), None);
        }
    };
    let label = escaped(&job.label);
    let written = panic::catch_unwind(AssertUnwindSafe(|| {
        convert::write_csv(&part, input, &label, settings)
    }))
    .unwrap_or_else(|payload| {
        Err(WriteFailure::Failed {
            position: None,
            message: format!(
                "internal error: {} (this is a bug in kml2csv; please report it)",
                run::panic_message(payload.as_ref())
            ),
            warnings: Warnings::default(),
        })
    });
    match written {
        Ok((rows, warnings)) => (
            Status::Converted {
                output: shown.to_path_buf(),
                rows,
            },
            warnings,
            Some(part),
        ),
        Err(failure) => {
            let (status, warnings) = failure_status(failure);
            (status, warnings, None)
        }
    }
}

fn failure_status(failure: WriteFailure) -> (Status, Warnings) {
    match failure {
        WriteFailure::Interrupted => (Status::Interrupted, Warnings::default()),
        WriteFailure::Closed => (
            Status::Failed {
                position: None,
                message: "cannot write: the output was closed".into(),
            },
            Warnings::default(),
        ),
        WriteFailure::Failed {
            position,
            message,
            warnings,
        } => (Status::Failed { position, message }, warnings),
    }
}

enum JoinError {
    /// Standard output was closed: a quiet, successful end.
    Closed,
    Failed(String),
}

fn write_parts<W: Write>(
    out: &mut W,
    layout: &Layout,
    dialect: &Dialect,
    parts: Vec<File>,
) -> io::Result<()> {
    csv_out::write_header(out, layout, dialect)?;
    for mut part in parts {
        part.seek(SeekFrom::Start(0))?;
        io::copy(&mut part, out)?;
    }
    out.flush()
}

fn join_into_file(
    file: &Path,
    layout: &Layout,
    dialect: &Dialect,
    parts: Vec<File>,
    config: &Config,
) -> Result<(), JoinError> {
    let dir = parent_or_dot(file);
    let temp = Temp::create(dir, config.force || config.update).map_err(|e| {
        JoinError::Failed(format!(
            "cannot create a temporary file in {}: {e}",
            dir.display()
        ))
    })?;
    let cannot = |e: io::Error| JoinError::Failed(format!("cannot write: {e}"));
    let mut out = BufWriter::with_capacity(256 * 1024, crate::disk::WriteBack::new(temp.as_file()));
    write_parts(&mut out, layout, dialect, parts).map_err(cannot)?;
    drop(out);
    convert::sync_file(temp.as_file()).map_err(cannot)?;
    match temp.publish(file) {
        Ok(Published::Placed) => {}
        Ok(Published::AlreadyThere) => {
            return Err(JoinError::Failed(
                "another run created it meanwhile; kept theirs (--force overwrites it)".into(),
            ))
        }
        Err(message) => return Err(JoinError::Failed(message)),
    }
    convert::sync_dir(dir).map_err(|e| {
        JoinError::Failed(format!(
            "is complete but the rename may not survive a crash: cannot sync {}: {e}",
            dir.display()
        ))
    })
}

fn join_to_stdout(layout: &Layout, dialect: &Dialect, parts: Vec<File>) -> Result<(), JoinError> {
    let mut out = io::stdout().lock();
    match write_parts(&mut out, layout, dialect, parts) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(JoinError::Closed),
        Err(e) => Err(JoinError::Failed(format!("cannot write: {e}"))),
    }
}

/// `--out -` or `-`: the CSV of the one input on standard output, as it is converted.
fn to_stdout(
    config: &Config,
    stop: &Stop,
    reporter: &Reporter,
    started: Instant,
    mut job: Job,
) -> anyhow::Result<ExitStatus> {
    let summary = config.verbosity >= Verbosity::Verbose;
    if config.dry_run {
        return Ok(dry_run::print_merge(
            Path::new(STDIN),
            &Ok(String::new()),
            &jobs_text(std::slice::from_ref(&job)),
        ));
    }
    let read = read_options(config, stop);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("cannot start the worker threads")?;
    let layout = layout_for(
        config,
        reporter,
        &pool,
        std::slice::from_mut(&mut job),
        &read,
    );
    let settings = Settings {
        force: false,
        read: &read,
        stop: &stop.requested,
        shape: &config.shape,
        layout: Some(&layout),
        dialect: &config.dialect,
        // One input only: the second core would otherwise idle.
        two_threads: true,
    };
    let input = match &job.input {
        Ok(input) => input,
        Err(message) => {
            let status = Status::Failed {
                position: None,
                message: message.clone(),
            };
            reporter.file(0, file_report(&job, status, Warnings::default()));
            return Ok(finish(config, stop, reporter, started, summary, false));
        }
    };
    if config.progress {
        progress::start(1, job.size);
    }
    reporter.started(0);
    let written = convert::write_csv(io::stdout().lock(), input, "", settings).and_then(|done| {
        match io::stdout().lock().flush() {
            Ok(()) => Ok(done),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(WriteFailure::Closed),
            Err(e) => Err(WriteFailure::Failed {
                position: None,
                message: format!("cannot write: {e}"),
                warnings: done.1,
            }),
        }
    });
    progress::finish();
    let (status, warnings) = match written {
        Ok((rows, warnings)) => (
            Status::Converted {
                output: PathBuf::from(STDIN),
                rows,
            },
            warnings,
        ),
        // `| head` has all it wanted.
        Err(WriteFailure::Closed) => return Ok(ExitStatus::Success),
        Err(failure) => failure_status(failure),
    };
    reporter.file(0, file_report(&job, status, warnings));
    Ok(finish(config, stop, reporter, started, summary, false))
}

//! Outputs that are not one file per input: one merged CSV (`--merge FILE`, `--merge -`), or
//! the CSV of a single input on standard output (`--out -`, or `-` read from standard input).
//!
//! A merged CSV is built like the per-file outputs are: every input is converted in parallel to
//! a piece of an anonymous temporary file (one such file per worker, so that a merge of
//! thousands of inputs does not hold thousands of files open), and once all of them succeeded
//! the header and the pieces are joined, in the sorted order of the inputs, into a temporary
//! file that is synced and renamed into place. So a merged CSV that exists is complete, and has
//! every input in it.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use crate::batch::common::{self, finish, read_options, union_of_fields, warn_fields_not_found};
use crate::batch::convert::{self, Settings, WriteFailure};
use crate::batch::dry_run;
use crate::batch::input::{Identity, Input, STDIN};
use crate::batch::plan::{self, Action};
use crate::batch::status::{self, ExitStatus, QuietPanics, Stop};
use crate::batch::{Config, Merge};
use crate::csv::{self, Dialect, Layout};
use crate::kml::{ReadOptions, Warnings};
use crate::output::durable::{self, parent_or_dot};
use crate::output::temp::{Published, Temp};
use crate::ui::path_text::escaped;
use crate::ui::progress;
use crate::ui::report::Verbosity;
use crate::ui::report::{self, FileReport, Reporter, Status};

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
    let plan = match plan::build_inputs(&paths, &common::extra_outputs(config), &stop.requested) {
        Ok(plan) => plan,
        Err(problems) => return Ok(common::refuse(&problems)),
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
            Action::Skip { .. } | Action::FailedBefore { .. } => {
                unreachable!("build_inputs decides no output")
            }
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

    // The inputs as they are before any is read: what the merged CSV will be made of.
    let identities: Vec<Option<String>> = jobs.iter().map(Job::manifest_line).collect();
    let target = match merge {
        Merge::File(file) => decide_target(file, config, &jobs, &identities),
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
            durable::create_dir_durably(&dir)
                .with_context(|| format!("cannot create output folder {}", dir.display()))?;
            // Found now rather than as the failure of every input, once all are converted.
            Temp::create(&dir, config.force || config.update).with_context(|| {
                format!("{}: cannot write into {}", file.display(), dir.display())
            })?;
            common::remove_stale_temporaries_in(vec![dir.clone()], reporter);
            Some(dir)
        }
        Merge::Stdout => None,
    };

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(common::workers(config.jobs(), jobs.len(), reporter))
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
        hold: false,
    };

    if config.progress {
        progress::start(jobs.len() as u64, jobs.iter().map(|j| j.size).sum());
    }
    // One anonymous file per worker thread, each input a piece of one of them.
    let shelves: Vec<Mutex<Option<File>>> = (0..pool.current_num_threads())
        .map(|_| Mutex::new(None))
        .collect();
    let pieces: Vec<Mutex<Option<Piece>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let failed = AtomicU64::new(0);
    let quiet_panics = QuietPanics::install();
    pool.scope_fifo(|scope| {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].size));
        for index in order {
            let (job, shelves, pieces, failed, dir, shown) =
                (&jobs[index], &shelves, &pieces, &failed, &dir, &shown);
            scope.spawn_fifo(move |_| {
                reporter.started(index);
                let (status, warnings, piece) = if settings.stop.load(Ordering::Relaxed) {
                    (Status::Interrupted, Warnings::default(), None)
                } else {
                    // Only this worker thread uses its shelf; the lock is never contended.
                    let shelf = rayon::current_thread_index().unwrap_or(0) % shelves.len();
                    let mut file = shelves[shelf].lock().unwrap_or_else(|p| p.into_inner());
                    convert_part(job, &mut file, shelf, dir.as_deref(), shown, settings)
                };
                if matches!(status, Status::Failed { .. }) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                *pieces[index].lock().unwrap_or_else(|p| p.into_inner()) = piece;
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
    if failed > 0 && failed == jobs.len() as u64 {
        // --keep-going, but nothing to keep: a CSV of a header alone would pass for data.
        reporter.flush();
        report::message(format_args!(
            "{}: not written: every input failed",
            shown.display()
        ));
        return Ok(finish(config, stop, reporter, started, true, false));
    }
    let parts = Parts {
        shelves: shelves
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect(),
        pieces: pieces
            .into_iter()
            .filter_map(|p| p.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect(),
    };
    let written = match merge {
        Merge::File(file) => join_into_file(
            file,
            &layout,
            &config.dialect,
            parts,
            config,
            &stop.requested,
        ),
        Merge::Stdout => join_to_stdout(&layout, &config.dialect, parts, &stop.requested),
    };
    match written {
        Ok(()) => {
            if let Merge::File(file) = merge {
                // Failed inputs (--keep-going) count too: like the dates before, the record
                // lets them come back when they change, not at every run.
                let manifest: Option<String> = identities.iter().cloned().collect();
                // Recorded by --update runs only; any other run that writes the CSV removes
                // the record, which no longer describes it. Without a record the next
                // --update converts everything again.
                let manifest = manifest.filter(|_| config.update);
                if let Err(e) = write_manifest(file, manifest.as_deref()) {
                    reporter.warn(format_args!(
                        "{}: cannot record its inputs for --update: {e}",
                        escaped(&shown)
                    ));
                }
            }
        }
        Err(JoinError::Closed) => return Ok(ExitStatus::Success),
        // Nothing was published; the summary says the run was interrupted.
        Err(JoinError::Interrupted) => {
            return Ok(finish(config, stop, reporter, started, true, false))
        }
        // Like a per-file CSV that another run made meanwhile: theirs is kept, and the run has
        // not failed (see: issue 17, item 11).
        Err(JoinError::MadeMeanwhile) => {
            reporter.flush();
            reporter.warn(format_args!(
                "{}: not replaced: another run created it meanwhile; kept theirs (--force \
                 overwrites it)",
                escaped(&shown)
            ));
            return Ok(finish(config, stop, reporter, started, true, false));
        }
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
                job.input = input.spooled(read).map_err(|e| e.to_string());
            }
        }
    }
    let inputs: Vec<Input> = jobs
        .iter()
        .filter_map(|j| j.input.as_ref().ok()?.spooled(read).ok())
        .collect();
    let fields = union_of_fields(Some(pool), &inputs, read);
    if !inputs.is_empty() {
        warn_fields_not_found(config, reporter, &fields, inputs.len());
    }
    let layout = shape.layout(&fields);
    let data_columns = layout
        .columns
        .iter()
        .filter(|c| matches!(c, csv::Column::Data(_)))
        .count();
    if let Some(warning) = csv::many_fields_warning(data_columns) {
        reporter.warn(format_args!("{warning}"));
    }
    layout
}

impl Job {
    /// This input's line in a merged CSV's manifest; `None` for one without a version to
    /// compare (standard input, a pipe, a file that cannot be read).
    fn manifest_line(&self) -> Option<String> {
        match &self.input {
            Ok(Input::Path(path)) => Identity::of(path).map(|id| id.manifest_line(&self.label)),
            _ => None,
        }
    }
}

/// Where `--update` records the inputs a merged CSV was made of: a hidden file beside it.
fn manifest_path(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    parent_or_dot(file).join(format!(".{name}.kml2csv-inputs"))
}

/// Record `manifest` for the merged CSV `file`, or remove the record if there is none to
/// make (an input without a version): a missing record means "convert again".
fn write_manifest(file: &Path, manifest: Option<&str>) -> io::Result<()> {
    let path = manifest_path(file);
    let Some(manifest) = manifest else {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    let mut temp = tempfile::NamedTempFile::new_in(parent_or_dot(file))?;
    temp.write_all(manifest.as_bytes())?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether the merged CSV `file` (with metadata `meta`) was made of exactly these inputs, in
/// these versions, and is not older than any of them.
fn up_to_date(
    file: &Path,
    meta: &fs::Metadata,
    jobs: &[Job],
    identities: &[Option<String>],
) -> bool {
    let Some(current) = identities.iter().cloned().collect::<Option<String>>() else {
        return false;
    };
    let recorded = fs::read_to_string(manifest_path(file)).ok();
    recorded.as_deref() == Some(current.as_str())
        && jobs.iter().all(|j| match &j.input {
            Ok(Input::Path(p)) => !plan::is_older(meta, p),
            _ => false,
        })
}

fn decide_target(
    file: &Path,
    config: &Config,
    jobs: &[Job],
    identities: &[Option<String>],
) -> Target {
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
        // Up to date only if made of exactly these inputs as they are now: an input added
        // (whatever its date), removed, replaced or failed last time makes it stale, as does
        // standard input, which is always new.
        Ok(meta) if config.update => {
            if up_to_date(file, &meta, jobs, identities) {
                Target::Skip("up to date")
            } else {
                Target::Write
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
    shelf: &mut Option<File>,
    shelf_index: usize,
    dir: Option<&Path>,
    shown: &Path,
    settings: Settings<'_>,
) -> (Status, Warnings, Option<Piece>) {
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
    if shelf.is_none() {
        let made = match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        };
        match made {
            Ok(file) => *shelf = Some(file),
            Err(e) => {
                let status = Status::Failed {
                    position: None,
                    message: format!("cannot create a temporary file: {e}"),
                };
                return (status, Warnings::default(), None);
            }
        }
    }
    let Some(mut part) = shelf.as_ref() else {
        unreachable!("made above")
    };
    let start = match part.seek(SeekFrom::End(0)) {
        Ok(start) => start,
        Err(e) => {
            let status = Status::Failed {
                position: None,
                message: format!("cannot write a temporary file: {e}"),
            };
            return (status, Warnings::default(), None);
        }
    };
    let label = escaped(&job.label);
    let written = panic::catch_unwind(AssertUnwindSafe(|| {
        convert::write_csv(part, input, &label, settings)
    }))
    .unwrap_or_else(|payload| {
        Err(WriteFailure::Failed {
            position: None,
            message: format!(
                "internal error: {} (this is a bug in kml2csv; please report it)",
                status::panic_message(payload.as_ref())
            ),
            warnings: Warnings::default(),
            of_input: false,
        })
    });
    let end = written
        .as_ref()
        .ok()
        .map(|_| part.stream_position())
        .transpose();
    match (written, end) {
        (Ok((rows, warnings)), Ok(Some(end))) => (
            Status::Converted {
                output: shown.to_path_buf(),
                rows,
            },
            warnings,
            Some(Piece {
                shelf: shelf_index,
                start,
                len: end - start,
            }),
        ),
        (Ok((_, warnings)), Err(e)) => (
            Status::Failed {
                position: None,
                message: format!("cannot write a temporary file: {e}"),
            },
            warnings,
            None,
        ),
        (written, _) => {
            // The next piece starts where this one did; should that fail, it starts after the
            // unused bytes, which nothing refers to.
            let _ = part.set_len(start);
            let (status, warnings) = match written {
                Err(failure) => failure_status(failure),
                Ok((_, warnings)) => (Status::Interrupted, warnings),
            };
            (status, warnings, None)
        }
    }
}

/// Where one input's CSV rows lie: `len` bytes from `start` in the file of worker `shelf`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    shelf: usize,
    start: u64,
    len: u64,
}

/// The converted inputs, ready to be joined: the workers' files and the pieces of the inputs
/// that converted, in the order of the merged CSV.
struct Parts {
    shelves: Vec<Option<File>>,
    pieces: Vec<Piece>,
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
            ..
        } => (Status::Failed { position, message }, warnings),
    }
}

enum JoinError {
    /// Standard output was closed: a quiet, successful end.
    Closed,
    /// A stop was requested (SIGINT, SIGTERM): nothing was published.
    Interrupted,
    /// Another run created the merged CSV meanwhile; it was kept.
    MadeMeanwhile,
    Failed(String),
}

/// The header and the pieces, in order, into `out`. `Err(None)` when a stop was requested.
fn write_parts<W: Write>(
    out: &mut W,
    layout: &Layout,
    dialect: &Dialect,
    parts: Parts,
    stop: &AtomicBool,
) -> Result<(), Option<io::Error>> {
    csv::write_header(out, layout, dialect)?;
    // Copied a block at a time, so that a stop is answered within one block, not one part.
    let mut block = vec![0; 256 * 1024];
    for piece in parts.pieces {
        let Some(mut file) = parts.shelves[piece.shelf].as_ref() else {
            return Err(Some(io::Error::other(
                "a converted input's rows are missing",
            )));
        };
        file.seek(SeekFrom::Start(piece.start))?;
        let mut part = file.take(piece.len);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(None);
            }
            let n = match part.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Some(e)),
            };
            out.write_all(&block[..n])?;
        }
    }
    out.flush()?;
    Ok(())
}

fn join_into_file(
    file: &Path,
    layout: &Layout,
    dialect: &Dialect,
    parts: Parts,
    config: &Config,
    stop: &AtomicBool,
) -> Result<(), JoinError> {
    let dir = parent_or_dot(file);
    let temp = Temp::create(dir, config.force || config.update).map_err(|e| {
        JoinError::Failed(format!(
            "cannot create a temporary file in {}: {e}",
            dir.display()
        ))
    })?;
    let cannot = |e: Option<io::Error>| match e {
        Some(e) => JoinError::Failed(format!("cannot write: {e}")),
        None => JoinError::Interrupted,
    };
    let mut out = BufWriter::with_capacity(
        256 * 1024,
        crate::output::disk::WriteBack::new(temp.as_file()),
    );
    write_parts(&mut out, layout, dialect, parts, stop).map_err(cannot)?;
    drop(out);
    durable::sync_file(temp.as_file()).map_err(|e| cannot(Some(e)))?;
    // The last moment to stop: once named, the merged CSV is published. Dropping the
    // temporary removes it.
    if stop.load(Ordering::Relaxed) {
        return Err(JoinError::Interrupted);
    }
    match temp.publish(file) {
        Ok(Published::Placed) => {}
        Ok(Published::AlreadyThere) => return Err(JoinError::MadeMeanwhile),
        Err(message) => return Err(JoinError::Failed(message)),
    }
    durable::sync_dir(dir).map_err(|e| {
        JoinError::Failed(format!(
            "is complete but the rename may not survive a crash: cannot sync {}: {e}",
            dir.display()
        ))
    })
}

fn join_to_stdout(
    layout: &Layout,
    dialect: &Dialect,
    parts: Parts,
    stop: &AtomicBool,
) -> Result<(), JoinError> {
    let mut out = io::stdout().lock();
    match write_parts(&mut out, layout, dialect, parts, stop) {
        Ok(()) => Ok(()),
        Err(None) => Err(JoinError::Interrupted),
        Err(Some(e)) if e.kind() == io::ErrorKind::BrokenPipe => Err(JoinError::Closed),
        Err(Some(e)) => Err(JoinError::Failed(format!("cannot write: {e}"))),
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
        // One input only: a second core would otherwise idle, if the run may use one. `-j1`
        // (or a machine or allocation of one core) reads and writes on one thread, which
        // also costs less CPU time in all: the hand-over between the threads is work too.
        two_threads: config.jobs() > 1,
        hold: false,
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
                of_input: false,
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

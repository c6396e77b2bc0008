//! What both kinds of run share: checking the options, how inputs are read, the first pass
//! over ExtendedData field names, cleaning up after killed runs, and the end of a run.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use rayon::prelude::*;

use crate::batch::input::{Input, STDIN};
use crate::batch::plan;
use crate::batch::status::{signal_name, ExitStatus, Stop};
use crate::batch::{Config, Merge};
use crate::csv;
use crate::kml::ReadOptions;
use crate::output::{limits, temp};
use crate::ui::json_report::{self, Ending};
use crate::ui::report::{self, Reporter};

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
        features: config.shape.rows == csv::RowKind::Features,
        without_geometry: false,
    }
}

/// The ExtendedData field names of all `inputs` (first pass, in parallel on `pool`, or here
/// without one), in first-seen order over the inputs in the order given. An input that cannot
/// be read adds nothing here; its conversion reports why.
pub(crate) fn union_of_fields(
    pool: Option<&rayon::ThreadPool>,
    inputs: &[Input],
    read: &ReadOptions,
) -> Vec<String> {
    let fields = |input: &Input| input.fields(read).unwrap_or_default();
    let per_input: Vec<Vec<String>> = match pool {
        Some(pool) => pool.install(|| inputs.par_iter().map(fields).collect()),
        None => inputs.iter().map(fields).collect(),
    };
    let mut union = csv::FieldUnion::default();
    for fields in &per_input {
        union.add(fields);
    }
    union.into_fields()
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
        .map(csv::Column::header)
        .collect();
    available.extend(csv::field_headers(fields));
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
        reporter.summary(&totals, started.elapsed(), signal.map(signal_name));
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

/// The files a run writes besides the per-input CSVs: the merged CSV and the report, when they
/// are files.
pub(crate) fn extra_outputs(config: &Config) -> Vec<plan::Extra<'_>> {
    let mut extra = Vec::new();
    if let Some(Merge::File(file)) = &config.merge {
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

pub(crate) fn remove_stale_temporaries_in(dirs: Vec<PathBuf>, reporter: &Reporter) {
    for dir in dirs {
        report_stale_removal(&dir, temp::remove_stale_temporaries(&dir), reporter);
    }
}

/// Tell what removing the temporaries left in `dir` by killed runs came to.
pub(crate) fn report_stale_removal(dir: &Path, removed: io::Result<u64>, reporter: &Reporter) {
    match removed {
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

/// How many files to convert at once: `-j`, but no more than there are files, than
/// [`max_workers`] and than the open-file limit allows (see [`limits`]); a warning says so when
/// that cuts `-j` short. So `-j 100000` on one file starts one worker, not 100 000 threads.
pub(crate) fn workers(jobs: usize, files: usize, reporter: &Reporter) -> usize {
    let limits = limits::get();
    let most = max_workers().min(limits.workers);
    let workers = jobs.min(files).clamp(1, most.max(1));
    if workers < jobs.min(files) {
        let at_a_time = if workers == 1 { "file" } else { "files" };
        match limits.open_files {
            // Not "-j N": without -j, N is the number of cores, which the user never typed.
            Some(open) if limits.workers < max_workers() => reporter.warn(format_args!(
                "converting {workers} {at_a_time} at a time instead of {jobs}, as this process \
                 may only have {open} files open (ulimit -n)"
            )),
            _ => reporter.warn(format_args!(
                "-j {jobs}: converting {workers} {at_a_time} at a time, the most that helps on \
                 this machine"
            )),
        }
    }
    workers
}

/// The most workers worth starting: beyond a few per core they only wait for each other.
fn max_workers() -> usize {
    (8 * cores()).max(64)
}

/// The cores this process may use, asked once: the answer costs a dozen system calls (the
/// affinity mask, and the cgroup's CPU quota read from files).
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 15, item 3: `-j 100000` started threads for the whole run.
    #[test]
    fn workers_follow_the_files_not_the_flag() {
        let quiet = Reporter::new(crate::ui::report::Verbosity::Quiet);
        assert_eq!(workers(100_000, 1, &quiet), 1);
        assert_eq!(workers(4, 0, &quiet), 1);
        assert_eq!(workers(2, 5000, &quiet), 2);
        let capped = workers(100_000, 5000, &quiet);
        assert!(capped <= max_workers() && capped >= 1, "{capped}");
    }
}

//! The record of inputs that failed, so that a repeated batch converges.
//!
//! A file that is broken for good (truncated, not XML) would otherwise fail every run of a cron
//! job, a Makefile or a Kubernetes pod again: the same error mailed every quarter of an hour, a
//! pod retried until its back-off limit. When an input fails because of what it contains, its
//! failure is recorded beside the CSV it would have had, as `NAME.csv.failed`, with the input's
//! identity (size and modification time). A later run that finds the input unchanged reports
//! it as "failed before" (a warning, and in the JSON report) instead of failing again, unless
//! `--retry-failed`; a changed input is converted again, and its record goes once it converts.
//!
//! Failures that do not come from the input's content (it cannot be read, the disk is full,
//! Ctrl-C) are never recorded: they may go away without the input changing.
//!
//! Each record is its own small file, written like a CSV (temporary, `fsync`, `rename`,
//! folder `fsync`), so that shards and concurrent runs never read-modify-write a shared file,
//! and a crash leaves either the old record or the new one. A record is removed only after the
//! CSV that replaces it is durable.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::batch::plan::{Action, Plan};
use crate::kml::Position;
use crate::output::durable::{parent_or_dot, sync_dir, sync_file};
use crate::output::temp;

/// Appended to the output's name: `x.csv` → `x.csv.failed`.
pub const SUFFIX: &str = ".failed";

/// The format written in each record, for a later version to tell.
const FORMAT: u32 = 1;

/// Where the failure of the input whose CSV is `output` is recorded.
pub fn path_for(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// The contents of a `.failed` file (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `FORMAT`.
    pub format: u32,
    /// The input as the failed run named it; only its file name is compared.
    pub input: String,
    /// The input's size in bytes when it was read.
    pub size: u64,
    /// Its modification time then: seconds and nanoseconds since 1970.
    pub modified_seconds: u64,
    pub modified_nanoseconds: u32,
    /// It failed with `--strict` (a warning made fatal): without `--strict` it is tried again.
    pub strict: bool,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub error: String,
}

impl Record {
    pub fn position(&self) -> Option<Position> {
        Some(Position {
            line: self.line?,
            column: self.column?,
        })
    }
}

/// What identifies the contents of an input without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    size: u64,
    seconds: u64,
    nanoseconds: u32,
}

impl Identity {
    /// `None` when the input cannot be examined or its time is before 1970: such an input is
    /// never taken for unchanged.
    pub fn of(input: &Path) -> Option<Identity> {
        Identity::of_meta(&fs::metadata(input).ok()?)
    }

    /// [`Identity::of`] from the input's metadata, where the caller has it.
    pub fn of_meta(meta: &fs::Metadata) -> Option<Identity> {
        let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(Identity {
            size: meta.len(),
            seconds: modified.as_secs(),
            nanoseconds: modified.subsec_nanos(),
        })
    }

    /// The record of a failure of `input`, taken before it was read.
    pub fn record(
        self,
        input: &Path,
        strict: bool,
        position: Option<Position>,
        error: &str,
    ) -> Record {
        Record {
            format: FORMAT,
            input: input.to_string_lossy().into_owned(),
            size: self.size,
            modified_seconds: self.seconds,
            modified_nanoseconds: self.nanoseconds,
            strict,
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            error: error.to_owned(),
        }
    }

    fn matches(&self, record: &Record) -> bool {
        record.format == FORMAT
            && record.size == self.size
            && record.modified_seconds == self.seconds
            && record.modified_nanoseconds == self.nanoseconds
    }
}

/// What a record says about an input about to be converted.
#[derive(Debug)]
enum Lookup {
    None,
    /// The input failed before and has not changed since.
    Unchanged(Record),
    /// There is a record, but the input changed (or the record is unreadable, or the run is
    /// asked to retry): convert, and remove the record once the CSV is in place.
    Stale,
}

fn lookup(input: &Path, output: &Path, strict: bool) -> Lookup {
    let text = match fs::read(path_for(output)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::None,
        Err(_) => return Lookup::Stale,
    };
    let Ok(record) = serde_json::from_slice::<Record>(&text) else {
        return Lookup::Stale;
    };
    // The record holds the name as text (lossily, for a name that is not UTF-8), so compare
    // it as such.
    let lossy = |path: &Path| path.file_name().map(|n| n.to_string_lossy().into_owned());
    let same_name = lossy(Path::new(&record.input)) == lossy(input);
    let unchanged = same_name
        && Identity::of(input).is_some_and(|identity| identity.matches(&record))
        && (strict || !record.strict);
    if unchanged {
        Lookup::Unchanged(record)
    } else {
        Lookup::Stale
    }
}

/// Turn the conversions of inputs that failed before and are unchanged since into
/// [`Action::FailedBefore`] (all of them are converted with `retry`). Returns the indices of
/// the items still to convert that have a record: it goes once they convert.
pub fn apply(plan: &mut Plan, strict: bool, retry: bool) -> Vec<usize> {
    let mut stale = Vec::new();
    // The folder of the previous output, and whether it is missing. A first run's outputs go
    // into folders that do not exist yet and so hold no record: one `stat` per folder instead
    // of an `open` per output (2000 failed opens were a tenth of planning 2000 inputs).
    let mut folder: Option<(PathBuf, bool)> = None;
    for (index, item) in plan.items.iter_mut().enumerate() {
        let Action::Convert { output, .. } = &item.action else {
            continue;
        };
        let dir = parent_or_dot(output);
        let missing = match &folder {
            Some((last, missing)) if last == dir => *missing,
            _ => {
                let missing = fs::metadata(dir).is_err_and(|e| e.kind() == io::ErrorKind::NotFound);
                folder = Some((dir.to_path_buf(), missing));
                missing
            }
        };
        if missing {
            continue;
        }
        match lookup(&item.input, output, strict) {
            Lookup::None => {}
            Lookup::Unchanged(_) if retry || converted_since(output) => stale.push(index),
            Lookup::Unchanged(record) => {
                item.action = Action::FailedBefore {
                    output: output.clone(),
                    record,
                };
            }
            Lookup::Stale => stale.push(index),
        }
    }
    stale
}

/// Whether the CSV `output` (`--force`, `--update`) was written after its record: converted by a
/// run that crashed before removing the record, which no longer holds then. A CSV older than
/// the record is one the input had before it broke (with `--update`): it stays, and the record
/// holds. When the times cannot be compared, the input is tried again.
fn converted_since(output: &Path) -> bool {
    let Ok(csv) = fs::symlink_metadata(output) else {
        return false;
    };
    match (
        csv.modified(),
        fs::metadata(path_for(output)).and_then(|m| m.modified()),
    ) {
        (Ok(csv), Ok(record)) => csv > record,
        _ => true,
    }
}

/// Record the failure of the input whose CSV is `output`, durably and atomically (it replaces
/// an older record).
pub fn write(output: &Path, record: &Record) -> io::Result<()> {
    let dir = parent_or_dot(output);
    let mut text = serde_json::to_string_pretty(record).map_err(io::Error::other)?;
    text.push('\n');
    let record_path = path_for(output);
    let temp = temp::Temp::create_for(&record_path, true)?;
    let mut file = temp.as_file();
    file.write_all(text.as_bytes())?;
    sync_file(temp.as_file())?;
    temp.publish(&record_path).map_err(io::Error::other)?;
    sync_dir(dir)
}

/// Remove the record of the input whose CSV is `output`, now in place; a record already gone
/// (another run converted it too) is no error.
pub fn remove(output: &Path) -> io::Result<()> {
    match fs::remove_file(path_for(output)) {
        Ok(()) => sync_dir(parent_or_dot(output)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::plan::Item;

    fn plan_of(dir: &Path, names: &[&str]) -> Plan {
        Plan {
            items: names
                .iter()
                .map(|name| Item {
                    input: dir.join(format!("{name}.kml")),
                    action: Action::Convert {
                        output: dir.join(format!("{name}.csv")),
                        size: 1,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn a_record_stands_while_the_input_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("bad.kml");
        let output = dir.path().join("bad.csv");
        fs::write(&input, "<kml>").unwrap();
        fs::write(dir.path().join("good.kml"), "<kml/>").unwrap();
        let position = Some(Position { line: 1, column: 6 });
        let record = Identity::of(&input).unwrap().record(
            &input,
            false,
            position,
            "malformed XML: truncated",
        );
        write(&output, &record).unwrap();
        assert_eq!(
            crate::test_support::names(dir.path()),
            ["bad.csv.failed", "bad.kml", "good.kml"]
        );

        let mut plan = plan_of(dir.path(), &["bad", "good"]);
        assert!(apply(&mut plan, false, false).is_empty());
        match &plan.items[0].action {
            Action::FailedBefore { record: found, .. } => {
                assert_eq!(*found, record);
                assert_eq!(found.position(), position);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(plan.items[1].action, Action::Convert { .. }));

        // Asked to retry: converted, and the record is to go once it converts.
        let mut plan = plan_of(dir.path(), &["bad", "good"]);
        assert_eq!(apply(&mut plan, false, true), [0]);
        assert!(matches!(plan.items[0].action, Action::Convert { .. }));

        // A CSV older than the record (the input's before it broke, kept by --update): the
        // record holds. A CSV newer than it (a crash came between the CSV and the record's
        // removal): the CSV wins, and the input is converted again.
        let recorded = fs::metadata(path_for(&output)).unwrap().modified().unwrap();
        let csv = fs::File::create(&output).unwrap();
        csv.set_modified(recorded - std::time::Duration::from_secs(60))
            .unwrap();
        let mut plan = plan_of(dir.path(), &["bad"]);
        assert!(apply(&mut plan, false, false).is_empty());
        assert!(matches!(plan.items[0].action, Action::FailedBefore { .. }));
        csv.set_modified(recorded + std::time::Duration::from_secs(60))
            .unwrap();
        let mut plan = plan_of(dir.path(), &["bad"]);
        assert_eq!(apply(&mut plan, false, false), [0]);
        // Closed first: Windows removes an open file only once its last handle is closed.
        drop(csv);
        fs::remove_file(&output).unwrap();

        // Changed: converted again.
        fs::write(&input, "<kml><Placemark/>").unwrap();
        let mut plan = plan_of(dir.path(), &["bad"]);
        assert_eq!(apply(&mut plan, false, false), [0]);

        remove(&output).unwrap();
        remove(&output).unwrap();
        assert_eq!(
            crate::test_support::names(dir.path()),
            ["bad.kml", "good.kml"]
        );
    }

    #[test]
    fn records_are_found_beside_outputs_in_missing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("bad.kml");
        fs::write(&input, "<kml>").unwrap();
        let record = Identity::of(&input)
            .unwrap()
            .record(&input, false, None, "malformed XML");
        let output = |folder: &str| dir.path().join(folder).join("bad.csv");
        fs::create_dir(dir.path().join("kept")).unwrap();
        write(&output("kept"), &record).unwrap();
        // Outputs in a folder that does not exist, one that holds the record, the missing one
        // again, then the one with the record again: only the record's folder has a failure.
        let mut plan = Plan {
            items: ["new", "kept", "new", "kept"]
                .map(|folder| Item {
                    input: input.clone(),
                    action: Action::Convert {
                        output: output(folder),
                        size: 1,
                    },
                })
                .into(),
        };
        assert!(apply(&mut plan, false, false).is_empty());
        let failed_before: Vec<bool> = plan
            .items
            .iter()
            .map(|item| matches!(item.action, Action::FailedBefore { .. }))
            .collect();
        assert_eq!(failed_before, [false, true, false, true]);
    }

    #[test]
    fn a_strict_failure_binds_only_strict_runs() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("w.kml");
        fs::write(&input, "<kml/>").unwrap();
        let record =
            Identity::of(&input)
                .unwrap()
                .record(&input, true, None, "tuple skipped (--strict)");
        write(&dir.path().join("w.csv"), &record).unwrap();
        let mut plan = plan_of(dir.path(), &["w"]);
        assert_eq!(apply(&mut plan, false, false), [0]);
        let mut plan = plan_of(dir.path(), &["w"]);
        assert!(apply(&mut plan, true, false).is_empty());
        assert!(matches!(plan.items[0].action, Action::FailedBefore { .. }));
    }

    #[test]
    fn an_unreadable_record_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.kml"), "<kml/>").unwrap();
        fs::write(dir.path().join("x.csv.failed"), "not json").unwrap();
        let mut plan = plan_of(dir.path(), &["x"]);
        assert_eq!(apply(&mut plan, false, false), [0]);
    }
}

//! One job: read a KML/KMZ file, write its CSV to a temporary file, make it durable, rename it
//! into place.
//!
//! An output either does not exist or is whole: a crash, a full disk, a bad input, Ctrl-C or a
//! second run working on the same folders never leaves a half-written `.csv`. The CSV is
//! written to a [`Temp`] beside the output (or held in memory for another thread to write
//! there, see [`crate::output::held`]); making it durable and naming it is
//! [`crate::output::commit`]'s job, which does it for many files at once.

use std::cell::OnceCell;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::batch::input::{Identity, Input};
use crate::batch::pipeline;
use crate::csv::{Column, Dialect, Layout, RowWriter, Shape};
use crate::kml::{
    ErrorKind, Feature, Position, ReadOptions, Sink, Vertex, Vertices, Warning, Warnings,
};
use crate::output::commit::{self, Outcome, Pending, Written};
use crate::output::disk::WriteBack;
use crate::output::durable::{create_dir_durably, parent_or_dot};
use crate::output::held::{self, Holding};
use crate::output::temp::Temp;

/// How to convert.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Replace an existing output instead of leaving it alone.
    pub force: bool,
    pub read: &'a ReadOptions,
    /// Set when the run must stop; checked on every vertex and every buffer write.
    pub stop: &'a AtomicBool,
    /// The columns asked for.
    pub shape: &'a Shape,
    /// The columns of every output, when decided for all of them at once (a merged CSV);
    /// otherwise each output's come from its `shape` and its input's ExtendedData fields.
    pub layout: Option<&'a Layout>,
    pub dialect: &'a Dialect,
    /// Read the KML and write the CSV on two threads (see [`crate::batch::pipeline`]): worth it when
    /// a core would otherwise sit idle. Ignored for feature rows and attributes.
    pub two_threads: bool,
    /// Convert into memory and leave the temporary to the caller ([`Done::Held`]; see
    /// [`crate::output::held`]): worth it when a core would otherwise sit idle. A CSV that
    /// outgrows [`held::HOLD_AT_MOST`] is written to its temporary all the same.
    pub hold: bool,
}

/// A conversion that is complete.
#[derive(Debug)]
pub enum Done {
    /// In its temporary, ready for [`crate::output::commit`].
    Written(Written),
    /// In memory: [`Held::write`] puts it into its temporary.
    Held(Held),
}

impl Done {
    /// The conversion in its temporary, written there now if it was held.
    pub fn into_written(self, output: &Path) -> Result<Written, Outcome> {
        match self {
            Done::Written(written) => Ok(written),
            Done::Held(held) => held.write(output),
        }
    }
}

/// A CSV converted into memory (see [`Settings::hold`]).
#[derive(Debug)]
pub struct Held {
    bytes: Vec<u8>,
    rows: u64,
    warnings: Warnings,
    replace: bool,
}

impl Held {
    /// Write the CSV into a temporary for `output`, as [`write()`] would have; the outcome
    /// instead when that fails (nothing is left behind then).
    pub fn write(self, output: &Path) -> Result<Written, Outcome> {
        match held::write_held(&self.bytes, output, self.replace) {
            Ok(temp) => Ok(Written {
                temp,
                rows: self.rows,
                warnings: self.warnings,
            }),
            Err(e) => Err(outcome_of(write_error(&e, self.warnings))),
        }
    }
}

/// Where a conversion's CSV went.
enum Csv {
    Temp(Temp),
    Held(Vec<u8>),
}

/// Convert `input` into `output`, made durable and renamed into place on its own. A batch
/// instead calls [`write()`] and hands the temporaries to [`crate::output::commit`], which syncs many at
/// once.
pub fn convert(input: &Path, output: &Path, settings: Settings<'_>) -> Outcome {
    let written = write(input, output, Identity::of(input), settings)
        .and_then(|done| done.into_written(output));
    match written {
        Ok(written) => {
            let pending = Pending {
                tag: (),
                output: output.to_path_buf(),
                written,
            };
            let mut done = commit::commit_group(vec![pending], settings.stop);
            done.pop()
                .map_or(Outcome::Interrupted, |(_, _, outcome)| outcome)
        }
        Err(outcome) => outcome,
    }
}

/// Convert `input` into a temporary file in `output`'s folder (or into memory, see
/// [`Settings::hold`]); the outcome instead when that fails or is interrupted (nothing is left
/// behind then). `before`: the input's identity, taken by the caller just before (one `stat`
/// fewer per file).
pub fn write(
    input: &Path,
    output: &Path,
    mut before: Option<Identity>,
    settings: Settings<'_>,
) -> Result<Done, Outcome> {
    let dir = parent_or_dot(output);
    if let Err(e) = create_dir_durably(dir) {
        return Err(failed(format!(
            "cannot create folder {}: {e}",
            dir.display()
        )));
    }
    let path = input;
    let input = Input::Path(input.to_path_buf());
    let mut attempts = 0;
    let (csv, result) = loop {
        // A file replaced or rewritten while it is read gives a CSV of neither version, and
        // one dated after the new version, which `--update` would then take as up to date
        // for ever: read it again. Dropping `csv` removes what was written.
        let (csv, result) = if settings.hold {
            // Room for a CSV half as big again as its KML, as most are, so that it is seldom
            // moved as it grows.
            let room = before.as_ref().map_or(0, |kml| kml.size() + kml.size() / 2);
            let room = room.min(held::HOLD_AT_MOST as u64) as usize;
            let (mut bytes, spilled) = (Vec::with_capacity(room), OnceCell::new());
            let out = Holding::new(&mut bytes, &spilled, output, settings.force);
            let result = write_csv(out, &input, "", settings);
            match spilled.into_inner() {
                Some(temp) => (Csv::Temp(temp), result),
                None => (Csv::Held(bytes), result),
            }
        } else {
            let temp =
                held::create_temp(output, settings.force).map_err(|e| failed(e.to_string()))?;
            let result = write_csv(WriteBack::new(temp.as_file()), &input, "", settings);
            (Csv::Temp(temp), result)
        };
        let after = Identity::of(path);
        if matches!(result, Err(WriteFailure::Interrupted)) || after == before {
            break (csv, result);
        }
        before = after;
        attempts += 1;
        if attempts == CHANGED_ATTEMPTS {
            return Err(Outcome::Failed {
                position: None,
                message: format!(
                    "the file changed while it was read, {CHANGED_ATTEMPTS} times in a row; \
                     nothing was written (convert it again once it is complete)"
                ),
                warnings: Warnings::default(),
                // Not the content's fault: the next run must read it again.
                of_input: false,
            });
        }
    };
    // Dropping a temporary removes the partial file.
    let (rows, warnings) = result.map_err(outcome_of)?;
    Ok(match csv {
        Csv::Temp(temp) => Done::Written(Written {
            temp,
            rows,
            warnings,
        }),
        Csv::Held(bytes) => Done::Held(Held {
            bytes,
            rows,
            warnings,
            replace: settings.force,
        }),
    })
}

fn outcome_of(failure: WriteFailure) -> Outcome {
    match failure {
        WriteFailure::Interrupted => Outcome::Interrupted,
        WriteFailure::Closed => failed("cannot write: the output was closed".into()),
        WriteFailure::Failed {
            position,
            message,
            warnings,
            of_input,
        } => Outcome::Failed {
            position,
            message,
            warnings,
            of_input,
        },
    }
}

/// How many times a file that changes while it is read is read before it fails.
const CHANGED_ATTEMPTS: u32 = 3;

fn failed(message: String) -> Outcome {
    Outcome::Failed {
        position: None,
        message,
        warnings: Warnings::default(),
        of_input: false,
    }
}

/// Why [`write_csv`] gave up.
#[derive(Debug)]
pub enum WriteFailure {
    /// The run is stopping (a signal).
    Interrupted,
    /// The output is a pipe that was closed (`| head`): not an error of the input.
    Closed,
    Failed {
        position: Option<Position>,
        message: String,
        warnings: Warnings,
        /// As in [`Outcome::Failed`].
        of_input: bool,
    },
}

/// Read `input` and write its CSV to `out`; the rows and warnings on success. `source` fills
/// the `source` column, if there is one.
pub fn write_csv<W: Write>(
    out: W,
    input: &Input,
    source: &str,
    settings: Settings<'_>,
) -> Result<(u64, Warnings), WriteFailure> {
    // A first pass collects the ExtendedData field names: a pipe is copied to be read twice.
    let spooled;
    let input = match settings.layout {
        None if settings.shape.needs_fields() && !input.rereadable() => {
            spooled = input
                .spooled(settings.read)
                .map_err(|e| read_failure(&e.kind, e.position, Warnings::default()))?;
            &spooled
        }
        _ => input,
    };
    let layout = match settings.layout {
        Some(layout) => layout.clone(),
        None if settings.shape.needs_fields() => match input.fields(settings.read) {
            Ok(fields) => settings.shape.layout(&fields),
            Err(e) => return Err(read_failure(&e.kind, e.position, Warnings::default())),
        },
        None => settings.shape.layout(&[]),
    };
    let out = StopOnSignal {
        inner: out,
        stop: settings.stop,
    };
    let data_columns = layout
        .columns
        .iter()
        .filter(|c| matches!(c, Column::Data(_)))
        .count();
    let mut writer =
        RowWriter::with_layout(out, layout, settings.shape.rows, settings.dialect, source)
            .map_err(|e| write_error(&e, Warnings::default()))?;
    // A merged CSV's columns are warned about once, for the whole batch.
    if settings.layout.is_none() {
        if let Some(message) = crate::csv::many_fields_warning(data_columns) {
            writer.warning(Warning {
                position: None,
                message,
            });
        }
    }
    let sink = Guard {
        writer,
        stop: settings.stop,
    };
    let read = |sink: &mut dyn Sink| input.read(sink, settings.read);
    let plain_rows = !settings.read.features && !settings.read.attributes;
    let (result, sink) = if settings.two_threads && plain_rows {
        pipeline::read_on_two_threads(sink, read)
    } else {
        let mut sink = sink;
        (read(&mut sink), sink)
    };
    match result {
        Ok(_) => {
            let rows = sink.writer.rows();
            let (_, warnings) = sink
                .writer
                .finish()
                .map_err(|e| write_error(&e, Warnings::default()))?;
            Ok((rows, warnings))
        }
        Err(e) => {
            let warnings = sink.writer.warnings().clone();
            Err(read_failure(&e.kind, e.position, warnings))
        }
    }
}

fn read_failure(kind: &ErrorKind, position: Option<Position>, warnings: Warnings) -> WriteFailure {
    match kind {
        ErrorKind::Sink(io) => write_error(io, warnings),
        ErrorKind::Cancelled => WriteFailure::Interrupted,
        _ => WriteFailure::Failed {
            position,
            message: kind.to_string(),
            warnings,
            of_input: !matches!(kind, ErrorKind::Io(_)),
        },
    }
}

fn write_error(e: &io::Error, warnings: Warnings) -> WriteFailure {
    if is_stop(e) {
        WriteFailure::Interrupted
    } else if e.kind() == io::ErrorKind::BrokenPipe {
        WriteFailure::Closed
    } else {
        WriteFailure::Failed {
            position: None,
            message: if held::cannot_create(e) {
                e.to_string()
            } else {
                format!("cannot write: {e}{}", hint(e))
            },
            warnings,
            of_input: false,
        }
    }
}

/// What the user can do about a write error that needs explaining.
fn hint(e: &io::Error) -> &'static str {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EFBIG) {
        return ": the CSV outgrew the file-size limit (ulimit -f)";
    }
    let _ = e;
    ""
}

/// The error a write returns once the run must stop. Not `ErrorKind::Interrupted`: `write_all`
/// retries that one forever.
#[derive(Debug)]
struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped by a signal")
    }
}

impl std::error::Error for Stopped {}

fn stopped() -> io::Error {
    io::Error::other(Stopped)
}

fn is_stop(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

/// Fails every write once the stop flag is set, so that a big file stops within one buffer.
struct StopOnSignal<'a, W> {
    inner: W,
    stop: &'a AtomicBool,
}

impl<W: Write> Write for StopOnSignal<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Passes vertices on to the CSV writer and stops the reader once the stop flag is set, even
/// while the rows still fit in the writer's buffer.
struct Guard<'a, W: Write> {
    writer: RowWriter<W>,
    stop: &'a AtomicBool,
}

impl<W: Write> Sink for Guard<'_, W> {
    fn vertex(&mut self, vertex: &Vertex<'_>) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        self.writer.vertex(vertex)
    }

    fn vertices(&mut self, run: &Vertices<'_>) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        self.writer.vertices(run)
    }

    fn warning(&mut self, warning: Warning) {
        self.writer.warning(warning);
    }

    fn feature(&mut self, feature: &Feature<'_>) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        self.writer.feature(feature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::names;
    use std::fs;

    #[test]
    fn one_file_is_converted_durably_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.kml");
        fs::write(
            &input,
            "<kml><Placemark><name>A</name><Point><coordinates>1,2,3</coordinates></Point></Placemark></kml>",
        )
        .unwrap();
        let output = dir.path().join("out").join("a.csv");
        let outcome = with(false, |settings| convert(&input, &output, settings));
        assert!(
            matches!(outcome, Outcome::Converted { rows: 1, .. }),
            "{outcome:?}"
        );
        assert_eq!(
            fs::read_to_string(&output).unwrap(),
            "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when\n0,A,Point,0,,0,1,2,3,\n"
        );
        // Nothing but the output is left in its folder.
        assert_eq!(names(output.parent().unwrap()), ["a.csv"]);
    }

    /// Settings for a plain conversion, holding the CSV in memory or not.
    fn with<R>(hold: bool, then: impl FnOnce(Settings<'_>) -> R) -> R {
        let (read, stop, shape) = (
            ReadOptions::default(),
            AtomicBool::new(false),
            Shape::default(),
        );
        let dialect = Dialect::default();
        then(Settings {
            force: false,
            read: &read,
            stop: &stop,
            shape: &shape,
            layout: None,
            dialect: &dialect,
            two_threads: false,
            hold,
        })
    }

    fn line_kml(vertices: usize) -> String {
        let tuples = (0..vertices).map(|i| format!("{}.25,{i}.5,7 ", i % 180));
        let tuples: String = tuples.collect();
        format!(
            "<kml><Placemark><name>L</name><LineString><coordinates>{tuples}\
             </coordinates></LineString></Placemark></kml>"
        )
    }

    #[test]
    fn a_held_csv_is_the_same_as_one_written_on_the_spot_and_a_big_one_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        // The second's CSV outgrows what is held: it goes to its temporary half-way.
        for (name, vertices) in [("small", 10), ("big", 120_000)] {
            let input = dir.path().join(format!("{name}.kml"));
            fs::write(&input, line_kml(vertices)).unwrap();
            let direct = dir.path().join("direct").join(format!("{name}.csv"));
            let held = dir.path().join("held").join(format!("{name}.csv"));
            let outcome = with(false, |settings| convert(&input, &direct, settings));
            assert!(matches!(outcome, Outcome::Converted { .. }), "{outcome:?}");
            let done = with(true, |settings| {
                write(&input, &held, Identity::of(&input), settings).unwrap()
            });
            match (&done, name) {
                (Done::Held(h), "small") => assert!(!h.bytes.is_empty()),
                (Done::Written(_), "big") => {}
                _ => panic!("{name}: {done:?}"),
            }
            let written = done.into_written(&held).unwrap();
            assert_eq!(written.rows, vertices as u64);
            let pending = Pending {
                tag: (),
                output: held.clone(),
                written,
            };
            let outcome = commit::commit_group(vec![pending], &AtomicBool::new(false))
                .pop()
                .unwrap()
                .2;
            assert!(matches!(outcome, Outcome::Converted { .. }), "{outcome:?}");
            let csv = fs::read(&held).unwrap();
            assert!(csv.len() > if name == "big" { held::HOLD_AT_MOST } else { 0 });
            assert!(
                fs::read(&direct).unwrap() == csv,
                "{name}: not the same CSV"
            );
        }
        assert_eq!(names(&dir.path().join("held")), ["big.csv", "small.csv"]);
    }

    #[test]
    fn a_held_csv_whose_temporary_cannot_be_made_fails_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.kml");
        fs::write(&input, line_kml(3)).unwrap();
        let output = dir.path().join("out").join("a.csv");
        let done = with(true, |settings| {
            write(&input, &output, Identity::of(&input), settings).unwrap()
        });
        // The folder goes between the conversion and the writing thread's turn.
        fs::remove_dir(output.parent().unwrap()).unwrap();
        match done.into_written(&output) {
            Err(Outcome::Failed {
                message,
                of_input: false,
                ..
            }) => assert!(
                message.starts_with("cannot create a temporary file in "),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stop_error_is_recognised_and_not_retried() {
        let stop = AtomicBool::new(true);
        let mut out = StopOnSignal {
            inner: Vec::new(),
            stop: &stop,
        };
        let e = out.write_all(b"abc").unwrap_err();
        assert!(is_stop(&e));
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
    }
}

//! `--report FILE.json`: a machine-readable account of a run.
//!
//! For scripts and dashboards that would otherwise parse stderr: every input with its status,
//! output, rows, warnings (with positions), error, size and duration, and the totals. Written
//! like an output CSV (temporary file, sync, rename), so a reader never sees half of it.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::kml::Position;
use crate::output::durable::{self, parent_or_dot};
use crate::output::temp;
use crate::ui::path_text::escaped;
use crate::ui::report::{FileReport, Status, Totals};

#[derive(Serialize)]
struct Report<'a> {
    /// The exit status of the run.
    exit_code: u8,
    /// `success`, `failure`, `usage`, `interrupted`.
    outcome: &'a str,
    duration_seconds: f64,
    totals: TotalsJson,
    inputs: Vec<InputJson<'a>>,
}

#[derive(Serialize)]
struct TotalsJson {
    inputs: u64,
    converted: u64,
    skipped: u64,
    failed: u64,
    failed_before: u64,
    interrupted: u64,
    rows: u64,
    warnings: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct InputJson<'a> {
    input: String,
    /// `converted`, `skipped`, `failed` or `interrupted`.
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    output: Option<String>,
    /// The `.failed` file of an input that failed before.
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    rows: Option<u64>,
    bytes: Option<u64>,
    duration_seconds: f64,
    warnings: Vec<WarningJson<'a>>,
    /// All warnings, also those beyond the ones listed.
    warnings_total: u64,
    error: Option<WarningJson<'a>>,
}

#[derive(Serialize)]
struct WarningJson<'a> {
    line: Option<u64>,
    column: Option<u64>,
    message: &'a str,
}

fn located(position: Option<Position>, message: &str) -> WarningJson<'_> {
    WarningJson {
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        message,
    }
}

/// What the run as a whole came to.
pub struct Ending<'a> {
    pub exit_code: u8,
    pub outcome: &'a str,
    pub elapsed: Duration,
    pub totals: Totals,
    /// Why skipped inputs were skipped.
    pub skip_reason: &'a str,
}

/// The size of an input, if it is a file (not standard input).
fn size_of(input: &Path) -> Option<u64> {
    if input.as_os_str() == "-" {
        return None;
    }
    std::fs::metadata(input).ok().map(|m| m.len())
}

fn input_json<'a>(
    report: &'a FileReport,
    elapsed: Duration,
    skip_reason: &'a str,
) -> InputJson<'a> {
    let (status, reason, output, rows, error) = match &report.status {
        Status::Converted { output, rows } => ("converted", None, Some(output), Some(*rows), None),
        Status::Skipped { output } => ("skipped", Some(skip_reason), Some(output), None, None),
        Status::ConvertedElsewhere { output } => (
            "skipped",
            Some("converted by another run meanwhile"),
            Some(output),
            None,
            None,
        ),
        Status::Failed { position, message } => (
            "failed",
            None,
            None,
            None,
            Some(located(*position, message)),
        ),
        Status::FailedBefore {
            record: _,
            position,
            message,
        } => (
            "failed_before",
            Some("unchanged since it failed; --retry-failed tries it"),
            None,
            None,
            Some(located(*position, message)),
        ),
        Status::Interrupted => ("interrupted", None, None, None, None),
    };
    InputJson {
        input: escaped(&report.input).into_owned(),
        status,
        reason,
        output: output.map(|o| escaped(o).into_owned()),
        record: match &report.status {
            Status::FailedBefore { record, .. } => Some(escaped(record).into_owned()),
            _ => None,
        },
        rows,
        bytes: size_of(&report.input),
        duration_seconds: elapsed.as_secs_f64(),
        warnings: report
            .warnings
            .kept()
            .iter()
            .map(|w| located(w.position, &w.message))
            .collect(),
        warnings_total: report.warnings.total(),
        error,
    }
}

/// The report as JSON text; `reports` with the time each input took.
pub fn render(
    reports: &[(FileReport, Duration)],
    ending: &Ending<'_>,
) -> serde_json::Result<String> {
    let t = ending.totals;
    let inputs: Vec<InputJson<'_>> = reports
        .iter()
        .map(|(r, elapsed)| input_json(r, *elapsed, ending.skip_reason))
        .collect();
    let report = Report {
        exit_code: ending.exit_code,
        outcome: ending.outcome,
        duration_seconds: ending.elapsed.as_secs_f64(),
        totals: TotalsJson {
            inputs: reports.len() as u64,
            converted: t.converted,
            skipped: t.skipped,
            failed: t.failed,
            failed_before: t.failed_before,
            interrupted: t.interrupted,
            rows: t.rows,
            warnings: t.warnings,
            bytes: inputs
                .iter()
                .filter(|i| i.status == "converted")
                .filter_map(|i| i.bytes)
                .sum(),
        },
        inputs,
    };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}

/// Write the report to `path` atomically (`-`: standard output).
pub fn write(
    path: &Path,
    reports: &[(FileReport, Duration)],
    ending: &Ending<'_>,
) -> io::Result<()> {
    let text = render(reports, ending).map_err(io::Error::other)?;
    if path.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        return out.flush();
    }
    let dir = parent_or_dot(path);
    durable::create_dir_durably(dir)?;
    let mut temp = temp::create_named(dir)?;
    temp.write_all(text.as_bytes())?;
    durable::sync_file(temp.as_file())?;
    temp.persist(path).map_err(|e| e.error)?;
    durable::sync_dir(dir)
}

/// Check, before the run, that a report can be written to `path` (`-` always can): its folder
/// is created and a temporary file made in it, as [`write()`] will. `Err` says why not.
pub fn check_writable(path: &Path) -> io::Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    if path.is_dir() {
        return Err(io::Error::other("it is a directory"));
    }
    let dir = parent_or_dot(path);
    durable::create_dir_durably(dir)?;
    temp::create_named(dir).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kml::{Warning, Warnings};

    #[test]
    fn statuses_positions_and_totals() {
        let mut warnings = Warnings::default();
        warnings.push(Warning {
            position: Some(Position { line: 2, column: 5 }),
            message: "bad tuple".into(),
        });
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.kml");
        std::fs::write(&a, "0123456789").unwrap();
        let reports = [
            (
                FileReport {
                    input: a.clone(),
                    status: Status::Converted {
                        output: "a.csv".into(),
                        rows: 3,
                    },
                    warnings,
                },
                Duration::from_millis(5),
            ),
            (
                FileReport {
                    input: "-".into(),
                    status: Status::Failed {
                        position: None,
                        message: "cannot read".into(),
                    },
                    warnings: Warnings::default(),
                },
                Duration::ZERO,
            ),
        ];
        let ending = Ending {
            exit_code: 1,
            outcome: "failure",
            elapsed: Duration::from_secs(1),
            totals: Totals {
                converted: 1,
                failed: 1,
                rows: 3,
                warnings: 1,
                ..Totals::default()
            },
            skip_reason: "output exists",
        };
        let value: serde_json::Value =
            serde_json::from_str(&render(&reports, &ending).unwrap()).unwrap();
        assert_eq!(value["totals"]["inputs"], 2);
        assert_eq!(value["totals"]["bytes"], 10);
        assert_eq!(value["inputs"][0]["duration_seconds"], 0.005);
        assert_eq!(value["inputs"][1]["bytes"], serde_json::Value::Null);
        assert_eq!(value["inputs"][0]["status"], "converted");
        assert_eq!(value["inputs"][0]["warnings"][0]["line"], 2);
        assert_eq!(value["inputs"][1]["status"], "failed");
        assert_eq!(value["inputs"][1]["error"]["message"], "cannot read");
        assert_eq!(value["inputs"][1]["error"]["line"], serde_json::Value::Null);
    }
}

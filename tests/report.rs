//! The reliability report: what the crash, fault, attack and fuzz tests did in the last run,
//! written to `target/reliability-report.txt` and printed.
//!
//! The other tests add their figures with `common::record` (files under `target/tmp`);
//! `.ci/run` clears them before `cargo test`, writes the fuzz log's execution count to
//! `target/fuzz-executions.txt`, and runs this test last. Data lost must be zero.

mod common;

use std::fs;
use std::path::Path;

fn figure(dir: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(format!("{key}.txt"))).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .sum(),
    )
}

#[test]
fn reliability_report() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().unwrap_or(tmp);
    let dir = tmp.join("reliability");
    let show = |key: &str| figure(&dir, key).map_or("not run".to_owned(), |n| n.to_string());
    let fuzz = fs::read_to_string(target.join("fuzz-executions.txt"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "not run (the fuzz smoke run is in .ci/run)".to_owned());
    let data_lost = figure(&dir, "data_lost").unwrap_or(0);
    let report = format!(
        "kml2csv reliability report\n\
         kill trials (SIGKILL mid-run): {} run, {} survived; {} re-runs to completion\n\
         signal trials (SIGINT/SIGTERM): {} run, {} survived\n\
         overlapping-run scenarios (2 and 4 at once): {}\n\
         outputs checked for durability order under strace: {}\n\
         faults injected: {}, handled: {}\n\
         attack files tried: {}\n\
         fuzz executions in the last run: {fuzz}\n\
         data lost: {data_lost}\n",
        show("kill_trials"),
        show("kill_trials_survived"),
        show("kill_reruns_complete"),
        show("signal_trials"),
        show("signal_trials_survived"),
        show("overlap_scenarios"),
        show("durability_outputs_checked"),
        show("faults_injected"),
        show("faults_handled"),
        show("attack_files"),
    );
    let _ = fs::write(target.join("reliability-report.txt"), &report);
    println!("{report}");
    assert_eq!(data_lost, 0, "{report}");
}

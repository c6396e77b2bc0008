//! Issue 13: batches in the pipelines users run them in (cron, make, Kubernetes, `--merge`
//! into a pipe). A batch with one bad file must converge when it is run again, the failure
//! must stay visible, and what can be checked before the work starts is checked then.

mod common;
use common::StartRetrying;

use std::fs;
use std::path::Path;
#[cfg(unix)]
use std::process::Command;

use common::{points_kml, Run, TestEnv, HEADER, POINT_KML};

/// A KML cut off in the middle: it fails with a position whatever the options.
const TRUNCATED_KML: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>T</name><Point><coordinates>1,2"#;

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

fn assert_stderr_has(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "stderr lacks {text:?}\n{run}");
}

/// A folder nobody but root may write into.
#[cfg(unix)]
fn read_only_folder(env: &TestEnv, rel: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.mkdir(rel), fs::Permissions::from_mode(0o555)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. --merge with failed inputs

#[test]
fn a_merge_with_a_failed_input_is_not_written_unless_keep_going() {
    let env = TestEnv::new();
    env.write("in/a.kml", POINT_KML);
    env.write("in/b.kml", TRUNCATED_KML);
    env.write("in/c.kml", points_kml("c", 1));
    let run = env.run(&["in", "--merge", "all.csv"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "in/b.kml:1:");
    assert_stderr_has(&run, "all.csv: not written: 1 of 3 inputs failed");
    assert!(!env.exists("all.csv"));

    for flag in ["--keep-going", "-k"] {
        let run = env.run(&["in", "--merge", "all.csv", flag, "--force"]);
        assert_code(&run, 1);
        assert_stderr_has(&run, "in/b.kml:1:");
        assert_stderr_has(
            &run,
            "all.csv: written without the 1 failed input of 3 (--keep-going)",
        );
        assert_stderr_has(&run, "2 converted, 0 skipped, 1 failed");
        assert_eq!(
            env.read("all.csv"),
            format!(
                "source,{HEADER}in/a.kml,0,A,Point,0,,0,1,2,3,\nin/c.kml,0,c-0,Point,0,,0,0.5,-0.25,1,\n"
            )
        );
    }
}

/// The inputs of a merge share one temporary file per worker: rows that an input wrote before
/// it failed must not reach the merged CSV. (See: issue 17, item 3b: one file per input was
/// held open until the join.)
#[test]
fn rows_of_an_input_that_failed_half_way_stay_out_of_the_merge() {
    let env = TestEnv::new();
    env.write("in/a.kml", POINT_KML);
    let broken = points_kml("b", 50);
    env.write("in/b.kml", &broken[..broken.len() - 20]);
    env.write("in/c.kml", points_kml("c", 1));
    let run = env.run(&["-j", "1", "in", "--merge", "all.csv", "--keep-going"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "in/b.kml:");
    assert_eq!(
        env.read("all.csv"),
        format!(
            "source,{HEADER}in/a.kml,0,A,Point,0,,0,1,2,3,\nin/c.kml,0,c-0,Point,0,,0,0.5,-0.25,1,\n"
        )
    );
}

/// `--merge -` into a pipe: a failed merge writes not a byte to standard output (a reader
/// such as `psql -c "COPY … FROM STDIN"` would take an empty CSV for success); with
/// `--keep-going` the converted inputs are written and the status is still 1.
#[test]
fn a_failed_merge_to_stdout_writes_nothing_at_all() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", TRUNCATED_KML);
    for extra in [&[][..], &["-a"], &["-a", "--columns", "name,speed"]] {
        let run = env.run(&[&["a.kml", "b.kml", "--merge", "-"], extra].concat());
        assert_code(&run, 1);
        assert_eq!(run.stdout, "", "{run}");
        assert_stderr_has(&run, "b.kml:1:");
    }
    let run = env.run(&["a.kml", "b.kml", "--merge", "-", "--keep-going"]);
    assert_code(&run, 1);
    assert_eq!(
        run.stdout,
        format!("source,{HEADER}a.kml,0,A,Point,0,,0,1,2,3,\n")
    );
    // Nothing converted: not even a header, --keep-going or not.
    let run = env.run(&["b.kml", "--merge", "-", "--keep-going"]);
    assert_code(&run, 1);
    assert_eq!(run.stdout, "", "{run}");
    assert_stderr_has(&run, "-: not written: every input failed");
}

/// The README's psql lines, run as written with `wc -l` in place of psql: with the
/// `set -o pipefail` it puts beside them, the pipeline fails when kml2csv does, although the
/// reader of the pipe succeeds.
#[cfg(unix)]
#[test]
fn the_readme_merge_pipe_fails_with_pipefail() {
    let found = Command::new("bash").arg("--version").output_retrying();
    if !found.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "bash is missing on CI");
        eprintln!("SKIPPED: bash is not installed");
        return;
    }
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("### One CSV for the batch\n\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block opening the merge section");
    let psql = r#"psql -c "COPY points FROM STDIN CSV HEADER""#;
    let script: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("set -o pipefail") || l.contains(psql))
        .collect();
    assert_eq!(script.len(), 2, "pipefail before the psql line: {block}");
    let script = script.join("\n").replace(psql, "wc -l");
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kmz", TRUNCATED_KML);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kml2csv")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .current_dir(env.root())
        .env("PATH", path)
        .arg("-c")
        .arg(&script)
        .output_retrying()
        .unwrap();
    let run = common::run_of(out);
    assert_code(&run, 1);
    assert_eq!(run.stdout.trim(), "0", "nothing reached the reader: {run}");
    assert_stderr_has(&run, "b.kmz");
}

// ---------------------------------------------------------------------------------------------
// 7. What can be checked before the work starts

#[test]
fn a_report_path_that_is_a_folder_is_refused_before_any_conversion() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.mkdir("logs");
    let run = env.run(&["a.kml", "--report", "logs"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "logs: cannot write the report: it is a directory");
    assert!(!env.exists("a.csv"), "nothing converted: {run}");
    // Its folder is created when missing.
    let run = env.run(&["a.kml", "--report", "new/logs/run.json"]);
    assert_code(&run, 0);
    assert!(env.read("new/logs/run.json").contains("\"exit_code\": 0"));
}

#[cfg(unix)]
#[test]
fn an_unwritable_report_is_found_before_any_conversion() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    read_only_folder(&env, "logs");
    for args in [
        &["a.kml", "--report", "logs/run.json"][..],
        &["a.kml", "--report", "logs/new/run.json"],
        &["a.kml", "--merge", "all.csv", "--report", "logs/run.json"],
    ] {
        let run = env.run_unprivileged(args);
        assert_code(&run, 1);
        assert_stderr_has(&run, ": cannot write the report: Permission denied");
        assert!(!env.exists("a.csv") && !env.exists("all.csv"), "{run}");
    }
}

#[cfg(unix)]
#[test]
fn a_merge_into_a_read_only_folder_names_the_folder_not_the_inputs() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    read_only_folder(&env, "ro");
    let run = env.run_unprivileged(&["a.kml", "b.kml", "--merge", "ro/all.csv"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "ro/all.csv: cannot write into ro: Permission denied");
    assert!(!run.stderr.contains("inputs failed"), "{run}");
    assert!(!run.stderr.contains("a.kml"), "{run}");
}

/// What the README says of `--dry-run`: status 1 only for inputs refused before reading; a
/// truncated KML is not read, so it is listed as `convert` with status 0.
#[test]
fn a_dry_run_does_not_read_inputs_and_refuses_only_what_it_can_see() {
    let env = TestEnv::new();
    env.write("raw/a.kml", POINT_KML);
    env.write("raw/bad.kml", TRUNCATED_KML);
    let run = env.run(&["raw/a.kml", "raw/bad.kml", "--out", "proc", "--dry-run"]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        "convert raw/a.kml -> proc/a.csv (no CSV yet)\n\
         convert raw/bad.kml -> proc/bad.csv (no CSV yet)\n"
    );
    let run = env.run(&["raw/a.kml", "raw/missing.kml", "--out", "proc", "-n"]);
    assert_code(&run, 1);
    assert!(run.stdout.contains("refuse  raw/missing.kml: "), "{run}");
    assert!(!env.exists("proc"));
}

// ---------------------------------------------------------------------------------------------
// 3. Re-runs that converge: the record of failed inputs

/// A batch of two good inputs and a truncated one, in `raw/`.
fn batch_with_a_bad_file(env: &TestEnv) {
    env.write("raw/a.kml", POINT_KML);
    env.write("raw/b.kml", points_kml("b", 2));
    env.write("raw/bad.kml", TRUNCATED_KML);
}

/// Make `path`'s modification time differ from the one it has, as an edit a second later
/// would (file systems with coarse times could otherwise hide a change).
fn touch_later(path: &Path) {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified + std::time::Duration::from_secs(1))
        .unwrap();
}

#[test]
fn an_unchanged_input_that_failed_before_does_not_fail_the_run_again() {
    let env = TestEnv::new();
    batch_with_a_bad_file(&env);
    let args = ["raw/*.kml", "--out", "proc", "--update"];
    let run = env.run(&args);
    assert_code(&run, 1);
    assert_stderr_has(&run, "raw/bad.kml:1:");
    assert!(!env.exists("proc/bad.csv"));
    let record = env.read("proc/bad.csv.failed");
    assert!(record.contains(r#""input": "raw/bad.kml""#), "{record}");
    assert!(record.contains(r#""error": "malformed XML"#), "{record}");

    // Again: the failure is reported as a warning with where it is recorded, status 0.
    let run = env.run(&args);
    assert_code(&run, 0);
    assert_stderr_has(
        &run,
        "raw/bad.kml:1:93: warning: failed before and unchanged since, not tried again \
         (recorded in proc/bad.csv.failed; --retry-failed tries it): malformed XML",
    );
    assert_stderr_has(
        &run,
        "0 converted, 2 skipped, 0 failed, 1 failed before (unchanged)",
    );
    // Also with --force (which a Makefile uses), and silently with --quiet (cron mail).
    let run = env.run(&["raw/bad.kml", "--out", "proc", "--force"]);
    assert_code(&run, 0);
    assert_stderr_has(&run, "warning: failed before and unchanged since");
    let run = env.run(&[&args[..], &["--quiet"]].concat());
    assert_code(&run, 0);
    assert_eq!(run.stderr, "");

    // The report lists it, with its error, and the run as a success.
    let run = env.run(&[&args[..], &["--report", "run.json"]].concat());
    assert_code(&run, 0);
    let report: serde_json::Value = serde_json::from_str(&env.read("run.json")).unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["totals"]["failed"], 0);
    assert_eq!(report["totals"]["failed_before"], 1);
    let bad = &report["inputs"][2];
    assert_eq!(bad["input"], "raw/bad.kml");
    assert_eq!(bad["status"], "failed_before");
    assert_eq!(bad["record"], "proc/bad.csv.failed");
    assert_eq!(bad["error"]["line"], 1);
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("malformed XML"));

    // A dry run says so too.
    let run = env.run(&[&args[..], &["--dry-run"]].concat());
    assert_code(&run, 0);
    assert!(
        run.stdout.contains(
            "skip    raw/bad.kml -> proc/bad.csv (failed before and unchanged since, see \
             proc/bad.csv.failed; --retry-failed tries it)"
        ),
        "{run}"
    );
}

#[test]
fn retry_failed_tries_an_unchanged_failed_input_again() {
    let env = TestEnv::new();
    batch_with_a_bad_file(&env);
    let args = ["raw/*.kml", "--out", "proc"];
    assert_code(&env.run(&args), 1);
    let run = env.run(&[&args[..], &["--retry-failed"]].concat());
    assert_code(&run, 1);
    assert_stderr_has(&run, "raw/bad.kml:1:93: malformed XML");
    assert_stderr_has(&run, "0 converted, 2 skipped, 1 failed;");
    assert!(env.exists("proc/bad.csv.failed"));
}

#[test]
fn a_changed_input_is_retried_and_its_record_goes_once_it_converts() {
    let env = TestEnv::new();
    batch_with_a_bad_file(&env);
    let args = ["raw/*.kml", "--out", "proc", "--update"];
    assert_code(&env.run(&args), 1);
    let first = env.read("proc/bad.csv.failed");

    // Still broken, but changed (same size, later time): tried, failed, recorded anew.
    touch_later(&env.path("raw/bad.kml"));
    let run = env.run(&args);
    assert_code(&run, 1);
    assert_stderr_has(&run, "raw/bad.kml:1:93: malformed XML");
    assert_ne!(env.read("proc/bad.csv.failed"), first);
    assert_code(&env.run(&args), 0);

    // Mended: converted, and the record is gone.
    env.write("raw/bad.kml", points_kml("mended", 1));
    let run = env.run(&args);
    assert_code(&run, 0);
    assert_stderr_has(&run, "1 converted, 2 skipped, 0 failed;");
    assert!(env.read("proc/bad.csv").contains("mended-0"));
    assert_eq!(
        env.files(),
        [
            "proc/a.csv",
            "proc/b.csv",
            "proc/bad.csv",
            "raw/a.kml",
            "raw/b.kml",
            "raw/bad.kml"
        ]
    );
}

/// A file that fails only because `--strict` made a warning fatal converts without it.
#[test]
fn a_strict_failure_is_tried_again_without_strict() {
    let env = TestEnv::new();
    env.write(
        "w.kml",
        "<kml><Placemark><Point><coordinates>1,x</coordinates></Point></Placemark></kml>",
    );
    assert_code(&env.run(&["w.kml", "--strict"]), 1);
    assert!(env.exists("w.csv.failed"));
    assert_code(&env.run(&["w.kml", "--strict"]), 0);
    let run = env.run(&["w.kml"]);
    assert_code(&run, 0);
    assert_stderr_has(&run, "1 converted");
    assert!(!env.exists("w.csv.failed"));
}

/// A failure to read the input, or to write its CSV, may go away without the input changing:
/// never recorded, so every run tries again.
#[cfg(unix)]
#[test]
fn failures_of_reading_or_writing_are_not_recorded() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.write("in/secret.kml", POINT_KML);
    fs::set_permissions(env.path("in/secret.kml"), fs::Permissions::from_mode(0o000)).unwrap();
    env.write("in/ok.kml", POINT_KML);
    read_only_folder(&env, "ro");
    for _ in 0..2 {
        let run = env.run_unprivileged(&["in/secret.kml", "--out", "out"]);
        assert_code(&run, 1);
        assert_stderr_has(&run, "Permission denied");
        let run = env.run_unprivileged(&["in/ok.kml", "--out", "ro"]);
        assert_code(&run, 1);
        assert_stderr_has(&run, "Permission denied");
    }
    assert_eq!(env.files_ending(".failed"), Vec::<String>::new());
}

/// Shards of one batch, all at once, twice, into one folder, as an Indexed Job whose pods run
/// side by side: each shard's records are its own files, so none is lost or half-written, and
/// the second round converges.
#[test]
fn shards_running_at_once_keep_every_record() {
    let env = TestEnv::new();
    for i in 0..24 {
        if i % 4 == 0 {
            env.write(&format!("raw/bad{i}.kml"), TRUNCATED_KML);
        } else {
            env.write(&format!("raw/ok{i}.kml"), points_kml(&i.to_string(), 3));
        }
    }
    let round = || -> Vec<Run> {
        let children: Vec<_> = (0..4)
            .flat_map(|shard| [shard, shard])
            .map(|shard| {
                env.command()
                    .args(["raw/*.kml", "--out", "csv", "-q", "--shard"])
                    .arg(format!("{shard}/4"))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn_retrying()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| common::run_of(c.wait_with_output().unwrap()))
            .collect()
    };
    for run in round() {
        assert!(matches!(run.code, Some(0 | 1)), "{run}");
    }
    let mut records = env.files_ending(".failed");
    records.sort();
    let expected: Vec<String> = (0..24)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("csv/bad{i}.csv.failed"))
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(records, expected_sorted);
    for record in &records {
        let text = env.read(record);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["format"], 1, "{text}");
    }
    assert_eq!(env.files_ending(".csv").len(), 18);
    assert!(env.temporaries().is_empty());
    for run in round() {
        assert_code(&run, 0);
        assert_eq!(run.stderr, "");
    }
}

// ---------------------------------------------------------------------------------------------
// The README's recipes, run as written, with one broken KML in the batch

/// The README's first block of `kind` (```make, ```cron, ```yaml).
#[cfg(unix)]
fn readme_block(kind: &str) -> String {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .split(&format!("```{kind}\n"))
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("a ```{kind} block in the README"))
        .to_owned()
}

/// `PATH` with the built binary first.
#[cfg(unix)]
fn path_with_binary() -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kml2csv")).parent().unwrap();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[cfg(unix)]
fn set_mtime(path: &Path, time: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// The README's Makefile, run by a real `make`: the first run fails on the broken KML, the
/// second succeeds and says why; only changed KMLs are converted again.
#[cfg(unix)]
#[test]
fn the_readme_makefile_converges_with_a_broken_kml() {
    use std::time::{Duration, SystemTime};
    let found = Command::new("make").arg("--version").output_retrying();
    if !found.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "make is missing on CI");
        eprintln!("SKIPPED: make is not installed");
        return;
    }
    let env = TestEnv::new();
    env.write("Makefile", readme_block("make"));
    batch_with_a_bad_file(&env);
    let make = || {
        let out = Command::new("make")
            .current_dir(env.root())
            .env("PATH", path_with_binary())
            .output_retrying()
            .unwrap();
        common::run_of(out)
    };
    let run = make();
    assert_ne!(run.code, Some(0), "{run}");
    assert_stderr_has(&run, "raw/bad.kml:1:93: malformed XML");
    assert!(env.exists("proc/bad.csv.failed"));

    for _ in 0..2 {
        let run = make();
        assert_code(&run, 0);
        assert_stderr_has(
            &run,
            "raw/bad.kml:1:93: warning: failed before and unchanged since",
        );
        assert!(!run.stdout.contains("raw/a.kml"), "{run}");
    }
    assert_eq!(
        env.read("proc/a.csv"),
        format!("{HEADER}{}", common::POINT_ROW)
    );
    assert!(env.read("proc/b.csv").contains("b-1"));

    // A changed KML is converted again, and only that one; a mended one too.
    let now = SystemTime::now();
    set_mtime(&env.path("raw/b.kml"), now - Duration::from_secs(120));
    set_mtime(&env.path("proc/a.csv"), now - Duration::from_secs(60));
    set_mtime(&env.path("proc/b.csv"), now - Duration::from_secs(60));
    env.write("raw/a.kml", points_kml("changed", 1));
    env.write("raw/bad.kml", points_kml("mended", 1));
    let run = make();
    assert_code(&run, 0);
    assert!(
        run.stdout.contains("raw/a.kml") && !run.stdout.contains("raw/b.kml"),
        "{run}"
    );
    assert!(env.read("proc/a.csv").contains("changed-0"));
    assert!(env.read("proc/bad.csv").contains("mended-0"));
    assert!(!env.exists("proc/bad.csv.failed"));
    let run = make();
    assert_code(&run, 0);
    assert!(run.stdout.contains("Nothing to be done"), "{run}");
}

/// The README's cron line, its command run by `sh` in cron's environment (a minimal PATH,
/// another HOME, no terminal) with the paths moved into a test folder: the broken KML is
/// reported by the first run only, later runs are silent and succeed, the report of the last
/// run still names it.
#[cfg(unix)]
#[test]
fn the_readme_cron_line_converges_with_a_broken_kml() {
    use std::time::{Duration, SystemTime};
    let block = readme_block("cron");
    let line = block.lines().next().unwrap();
    // Five schedule fields, then the command.
    let words: Vec<&str> = line.split_whitespace().skip(5).collect();
    let command = words.join(" ");
    assert!(
        !command.contains('%'),
        "cron turns % into a newline: {command}"
    );
    let binary = words[0];
    assert!(
        binary.starts_with('/') && binary.ends_with("/kml2csv"),
        "an absolute path that does not depend on HOME or PATH: {binary}"
    );
    let env = TestEnv::new();
    env.write("data/incoming/2024/a.kml", POINT_KML);
    env.write("data/incoming/b.kml", POINT_KML);
    env.write("data/incoming/2024/bad.kml", TRUNCATED_KML);
    let command = command
        .replacen(binary, env!("CARGO_BIN_EXE_kml2csv"), 1)
        .replace("/data/", &format!("{}/data/", env.root().display()));
    let home = env.mkdir("home-of-another-user");
    let cron = || {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .output_retrying()
            .unwrap();
        common::run_of(out)
    };
    let run = cron();
    assert_code(&run, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(run.lines().len(), 1, "one line of mail: {run}");
    assert_stderr_has(&run, "data/incoming/2024/bad.kml:1:93: malformed XML");
    assert_eq!(
        env.files_ending(".csv"),
        ["data/csv/2024/a.csv", "data/csv/b.csv"]
    );
    for _ in 0..2 {
        let run = cron();
        assert_code(&run, 0);
        assert_eq!(run.stdout, "");
        assert_eq!(run.stderr, "", "no mail once the failure is known");
        let report: serde_json::Value =
            serde_json::from_str(&env.read("data/kml2csv-last-run.json")).unwrap();
        let known: Vec<&serde_json::Value> = report["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "failed_before")
            .collect();
        assert_eq!(known.len(), 1, "{report}");
        assert!(known[0]["input"]
            .as_str()
            .unwrap()
            .ends_with("2024/bad.kml"));
    }
    assert!(env.exists("data/csv/2024/bad.csv.failed"));

    // A KML that changed since its CSV is converted again by the next run.
    env.write("data/incoming/b.kml", points_kml("changed", 1));
    set_mtime(
        &env.path("data/csv/b.csv"),
        SystemTime::now() - Duration::from_secs(60),
    );
    assert_code(&cron(), 0);
    assert!(env.read("data/csv/b.csv").contains("changed-0"));
}

/// The README's Kubernetes Indexed Job: the container's command, run by `sh` once per index
/// with `JOB_COMPLETION_INDEX` set, as the pods do. The index owning the broken KML fails; its
/// restart (the same command again) completes, with the failure in its log.
#[cfg(unix)]
#[test]
fn the_readme_indexed_job_converges_with_a_broken_kml() {
    let yaml = readme_block("yaml");
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("command:"))
        .expect("a command in the Job");
    let array: Vec<String> = serde_json::from_str(line.trim_start()["command:".len()..].trim())
        .expect("the command as a JSON-style array");
    assert_eq!(array[..2], ["sh", "-c"]);
    let completions: u32 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("completions: N");
    let env = TestEnv::new();
    for i in 0..40 {
        env.write(
            &format!("data/crawl/{}/f{i:02}.kml", i % 3),
            points_kml(&format!("f{i}"), 2),
        );
    }
    env.write("data/crawl/1/bad.kml", TRUNCATED_KML);
    let script = array[2].replace("/data/", &format!("{}/data/", env.root().display()));
    let pod = |index: u32| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", path_with_binary())
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output_retrying()
            .unwrap();
        common::run_of(out)
    };
    let failed: Vec<u32> = (0..completions)
        .filter(|&index| {
            let run = pod(index);
            assert!(matches!(run.code, Some(0 | 1)), "{run}");
            run.code == Some(1)
        })
        .collect();
    assert_eq!(failed.len(), 1, "the index owning bad.kml fails");
    assert_eq!(env.files_ending(".csv").len(), 40);
    let restart = pod(failed[0]);
    assert_code(&restart, 0);
    assert_stderr_has(
        &restart,
        "data/crawl/1/bad.kml:1:93: warning: failed before and unchanged since",
    );
    for index in 0..completions {
        assert_code(&pod(index), 0);
    }
    assert!(env.exists("data/csv/1/bad.csv.failed"));
}

/// A file name that is not UTF-8 is recorded lossily, and still found again.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_input_whose_name_is_not_utf8_converges_too() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    let name = OsStr::from_bytes(b"caf\xe9.kml");
    fs::write(env.root().join(name), TRUNCATED_KML).unwrap();
    let mut first = env.command();
    first.arg(name);
    assert_code(&common::run_of(first.output_retrying().unwrap()), 1);
    let mut again = env.command();
    again.arg(name);
    let run = common::run_of(again.output_retrying().unwrap());
    assert_code(&run, 0);
    assert_stderr_has(&run, "warning: failed before and unchanged since");
}

/// A record's temporary left by a killed run, in a folder where nothing else is written, is
/// removed by the next run like any other: under the record's own name by a run over that one
/// file, under any name by a run over more.
#[test]
fn a_temporary_left_beside_a_record_is_removed_by_the_next_run() {
    let env = TestEnv::new();
    env.write("raw/bad.kml", TRUNCATED_KML);
    assert_code(&env.run(&["raw/bad.kml", "--out", "proc"]), 1);
    env.write("proc/.kml2csv-bad.csv.failed.tmp", "{\"format\": 1, \"inp");
    let run = env.run(&["raw/bad.kml", "--out", "proc"]);
    assert_code(&run, 0);
    assert_eq!(env.files(), ["proc/bad.csv.failed", "raw/bad.kml"], "{run}");

    env.write("raw/good.kml", POINT_KML);
    env.write("proc/.kml2csv-AbC123.tmp", "{\"format\": 1, \"inp");
    let run = env.run(&["raw/bad.kml", "raw/good.kml", "--out", "proc"]);
    assert_code(&run, 0);
    assert_eq!(
        env.files(),
        [
            "proc/bad.csv.failed",
            "proc/good.csv",
            "raw/bad.kml",
            "raw/good.kml"
        ],
        "{run}"
    );
}

/// A KML that converted once and then broke (replaced by a truncated copy): with `--update`
/// its old CSV is kept, the first run fails, and the next ones converge on the record
/// although a CSV older than the input is there.
#[test]
fn an_input_that_broke_after_its_csv_was_made_converges_with_update() {
    let env = TestEnv::new();
    env.write("raw/a.kml", POINT_KML);
    let args = ["raw/a.kml", "--out", "proc", "--update"];
    assert_code(&env.run(&args), 0);
    let csv = env.read("proc/a.csv");
    env.write("raw/a.kml", TRUNCATED_KML);
    touch_later(&env.path("raw/a.kml"));
    let run = env.run(&args);
    assert_code(&run, 1);
    assert_stderr_has(&run, "raw/a.kml:1:93: malformed XML");
    for _ in 0..2 {
        let run = env.run(&args);
        assert_code(&run, 0);
        assert_stderr_has(
            &run,
            "raw/a.kml:1:93: warning: failed before and unchanged since",
        );
    }
    assert_eq!(env.read("proc/a.csv"), csv, "the old CSV is kept");
    env.write("raw/a.kml", points_kml("mended", 1));
    touch_later(&env.path("raw/a.kml"));
    assert_code(&env.run(&args), 0);
    assert!(env.read("proc/a.csv").contains("mended-0"));
    assert!(!env.exists("proc/a.csv.failed"));
}

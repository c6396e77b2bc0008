//! Issue 13: batches in the pipelines users run them in (cron, make, Kubernetes, `--merge`
//! into a pipe). A batch with one bad file must converge when it is run again, the failure
//! must stay visible, and what can be checked before the work starts is checked then.

mod common;

// Only the tests that need Unix permissions or bash use these.
#[cfg(unix)]
use std::{fs, path::Path, process::Command};

use common::{points_kml, Run, TestEnv, HEADER, POINT_KML};

/// A KML cut off in the middle: it fails with a position whatever the options.
const TRUNCATED_KML: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>T</name><Point><coordinates>1,2"#;

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

fn assert_stderr_has(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "stderr lacks {text:?}\n{run}");
}

/// `kml2csv ARGS` as a user for whom file permissions bind: as root, as `nobody` (the test
/// folder is opened to everyone first).
#[cfg(unix)]
fn run_unprivileged(env: &TestEnv, args: &[&str]) -> Run {
    let mut command = env.command();
    command.args(args);
    if common::is_root() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        fs::set_permissions(env.root(), fs::Permissions::from_mode(0o777)).unwrap();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    common::run_of(command.output().unwrap())
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
}

/// The README's psql lines, run as written with `wc -l` in place of psql: with the
/// `set -o pipefail` it puts beside them, the pipeline fails when kml2csv does, although the
/// reader of the pipe succeeds.
#[cfg(unix)]
#[test]
fn the_readme_merge_pipe_fails_with_pipefail() {
    let found = Command::new("bash").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: bash is not installed");
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
        .output()
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
        let run = run_unprivileged(&env, args);
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
    let run = run_unprivileged(&env, &["a.kml", "b.kml", "--merge", "ro/all.csv"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "ro/all.csv: cannot write into ro: Permission denied");
    assert!(!run.stderr.contains("inputs failed"), "{run}");
    assert!(!run.stderr.contains("a.kml"), "{run}");
}

//! The command as a user sees it: real binary, real files in a temporary directory.
//!
//! Tests that check CSV rows need the real KML reader; until it is merged (the stub reports no
//! vertex) they fail, by design: they pin the specification, not the stub.

mod common;
use common::StartRetrying;

use std::fs;

use common::{points_kml, Run, TestEnv, HEADER, POINT_KML, POINT_ROW};

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

fn assert_stderr_has(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "stderr lacks {text:?}\n{run}");
}

/// Every line on stderr must be ours (`kml2csv: …`): no panic, no `Error: Os { .. }`.
fn assert_clean_stderr(run: &Run) {
    for line in run.lines() {
        assert!(
            line.starts_with("kml2csv: "),
            "foreign line {line:?}\n{run}"
        );
        assert!(!line.contains("panicked"), "{run}");
        assert!(!line.contains("Os {"), "Debug-formatted error\n{run}");
    }
}

// ---------------------------------------------------------------------------------------------
// Converting, skipping, overwriting

#[test]
fn converts_beside_the_input_with_one_row_per_vertex() {
    let env = TestEnv::new();
    env.write("maps/a.kml", POINT_KML);
    let run = env.run(&["maps/a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("maps/a.csv"), format!("{HEADER}{POINT_ROW}"));
}

#[test]
fn kmz_and_any_extension_become_csv() {
    let env = TestEnv::new();
    env.write("a.KMZ.kml", POINT_KML);
    env.write("b.data", POINT_KML);
    let run = env.run(&["a.KMZ.kml", "b.data"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["a.KMZ.csv", "b.csv"]);
}

#[test]
fn existing_output_is_skipped_unless_forced() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("a.csv", "keep me\n");

    let run = env.run(&["-v", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("a.csv"), "keep me\n");
    assert_stderr_has(&run, "kml2csv: a.kml: skipped");
    assert_stderr_has(&run, "0 converted, 1 skipped, 0 failed");

    let run = env.run(&["--force", "a.kml"]);
    assert_code(&run, 0);
    assert!(env.read("a.csv").starts_with(HEADER), "{run}");
    assert_stderr_has(&run, "1 converted, 0 skipped, 0 failed");
    assert!(env.temporaries().is_empty());
}

#[test]
fn out_folder_is_created_with_its_parents() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["-o", "deep/er/out", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["deep/er/out/a.csv"]);
}

// ---------------------------------------------------------------------------------------------
// Expanding inputs

#[test]
fn recursive_pattern_mirrors_sub_folders_under_out() {
    let env = TestEnv::new();
    env.write("crawl/top.kml", POINT_KML);
    env.write("crawl/2024/05/x.kml", POINT_KML);
    env.write("crawl/2024/06/y.kml", POINT_KML);
    env.write("crawl/2024/06/notes.txt", "not KML");
    let run = env.run(&["-o", "proc", "crawl/**/*.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        env.files_ending(".csv"),
        ["proc/2024/05/x.csv", "proc/2024/06/y.csv", "proc/top.csv"]
    );
}

#[test]
fn any_pattern_keeps_the_path_below_its_fixed_part() {
    let env = TestEnv::new();
    env.write("data/a/x.kml", POINT_KML);
    env.write("data/b/x.kml", POINT_KML);
    let run = env.run(&["-o", "out", "data/*/x.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["out/a/x.csv", "out/b/x.csv"]);
}

#[test]
fn literal_path_with_glob_characters_is_taken_as_named() {
    let env = TestEnv::new();
    env.write("maps[1].kml", POINT_KML);
    // What `maps[1].kml` would match as a pattern.
    env.write("maps1.kml", POINT_KML);
    let run = env.run(&["maps[1].kml"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["maps[1].csv"]);
}

#[test]
fn directory_means_the_kml_and_kmz_files_directly_in_it() {
    let env = TestEnv::new();
    env.write("d/a.kml", POINT_KML);
    env.write("d/b.KMZ", POINT_KML);
    env.write("d/c.txt", "not KML");
    env.write("d/.hidden.kml", POINT_KML);
    env.write("d/sub/deeper.kml", POINT_KML);
    let run = env.run(&["d"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["d/a.csv", "d/b.csv"]);
}

#[test]
fn patterns_are_case_sensitive_and_skip_hidden_files() {
    // `MatchOptions::default()` would match `B.KML` too.
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("B.KML", POINT_KML);
    env.write(".hidden.kml", POINT_KML);
    let run = env.run(&["*.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["a.csv"]);
}

#[test]
fn the_same_file_named_twice_is_converted_once() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    #[cfg(unix)]
    std::os::unix::fs::symlink("a.kml", env.path("link.kml")).unwrap();
    let run = env.run(&["-v", "a.kml", "./a.kml", "*.kml", "."]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["a.csv"]);
    let converted = run
        .lines()
        .iter()
        .filter(|l| l.contains("converted to"))
        .count();
    assert_eq!(converted, 1, "{run}");
    assert_stderr_has(&run, "1 converted, 0 skipped, 0 failed");
}

#[cfg(unix)]
#[test]
fn a_symlinked_folder_loop_converts_each_file_once_under_its_shortest_name() {
    // glob follows `up -> ..` round and round and lists the deepest spelling first.
    let env = TestEnv::new();
    env.write("crawl/top.kml", POINT_KML);
    env.write("crawl/a/x.kml", POINT_KML);
    std::os::unix::fs::symlink("..", env.path("crawl/a/up")).unwrap();
    let run = env.run(&["-o", "out", "crawl/**/*.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["out/a/x.csv", "out/top.csv"]);
}

// See: issue 17, item 2: three links in one folder made glob expand some 3^40 paths.
#[cfg(unix)]
#[test]
fn a_symlink_loop_of_three_links_under_two_stars_ends() {
    let env = TestEnv::new();
    env.write("crawl/a/x.kml", POINT_KML);
    env.write("crawl/a/b/y.kml", POINT_KML);
    for (link, target) in [("up", ".."), ("up2", ".."), ("self", ".")] {
        std::os::unix::fs::symlink(target, env.path(&format!("crawl/a/{link}"))).unwrap();
    }
    std::os::unix::fs::symlink("../..", env.path("crawl/a/b/top")).unwrap();
    let mut child = env
        .command()
        .args(["-o", "out", "crawl/**/*.kml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn_retrying()
        .unwrap();
    // A guard against a hang only, far beyond what the walk takes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("planning did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = common::run_of(child.wait_with_output().unwrap());
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["out/a/b/y.csv", "out/a/x.csv"]);
}

#[test]
fn a_pattern_that_matches_nothing_fails_alone() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["nothing*.kml", "a.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: nothing*.kml: no file matches");
    assert_eq!(env.files_ending(".csv"), ["a.csv"]);
    assert_clean_stderr(&run);
}

#[test]
fn an_invalid_pattern_is_a_usage_error_before_any_work() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    for bad in ["x/[", "a**/x.kml"] {
        let run = env.run(&["a.kml", bad]);
        assert_code(&run, 2);
        assert_stderr_has(&run, &format!("kml2csv: {bad}: invalid pattern"));
        assert!(env.files_ending(".csv").is_empty(), "{run}");
        assert_clean_stderr(&run);
    }
}

#[test]
fn no_input_is_a_usage_error() {
    let env = TestEnv::new();
    let run = env.run(&[]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("INPUT"), "{run}");
}

#[test]
fn jobs_must_be_at_least_one() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["-j", "0", "a.kml"]);
    assert_code(&run, 2);
    assert!(env.files_ending(".csv").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Collisions and refused outputs

#[test]
fn colliding_outputs_stop_the_run_and_name_both_inputs() {
    let env = TestEnv::new();
    env.write("d/x.kml", POINT_KML);
    env.write("d/x.kmz", POINT_KML);
    env.write("d/y.kml", POINT_KML);
    let run = env.run(&["d"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "d/x.kml");
    assert_stderr_has(&run, "d/x.kmz");
    assert_stderr_has(&run, "d/x.csv");
    assert!(env.files_ending(".csv").is_empty(), "{run}");
    assert_clean_stderr(&run);
}

#[test]
fn colliding_outputs_under_out_are_detected_too() {
    let env = TestEnv::new();
    env.write("a/x.kml", POINT_KML);
    env.write("b/x.kml", POINT_KML);
    let run = env.run(&["-o", "out", "a/x.kml", "b/x.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "a/x.kml");
    assert_stderr_has(&run, "b/x.kml");
    assert!(env.files_ending(".csv").is_empty(), "{run}");
}

#[test]
fn output_that_is_a_directory_is_refused_even_with_force() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("a.csv/inside.txt", "precious");
    env.write("b.kml", POINT_KML);
    let run = env.run(&["--force", "a.kml", "b.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: a.kml: output a.csv is a directory");
    assert_eq!(env.read("a.csv/inside.txt"), "precious");
    assert!(env.exists("b.csv"));
    assert!(env.temporaries().is_empty());
}

#[cfg(unix)]
#[test]
fn output_that_is_a_symlink_is_never_followed() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("precious.txt", "precious");
    std::os::unix::fs::symlink("precious.txt", env.path("a.csv")).unwrap();
    for args in [&["a.kml"][..], &["--force", "a.kml"]] {
        let run = env.run(args);
        assert_code(&run, 1);
        assert_stderr_has(&run, "kml2csv: a.kml: output a.csv is a symbolic link");
        assert_eq!(env.read("precious.txt"), "precious");
        assert!(fs::symlink_metadata(env.path("a.csv"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn an_output_is_never_written_outside_out() {
    let env = TestEnv::new();
    env.write("data/a/x.kml", POINT_KML);
    env.write("y.kml", POINT_KML);
    // The match `data/a/../../y.kml` lies two levels above the pattern's fixed part `data`.
    let run = env.run(&["-o", "out", "data/*/../../y.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "outside the --out folder");
    assert!(env.files_ending(".csv").is_empty(), "{run}");
}

// ---------------------------------------------------------------------------------------------
// One command means one thing on every platform (see README, "On Windows")

#[test]
fn paths_are_written_with_forward_slashes_whatever_the_separator_typed() {
    let env = TestEnv::new();
    env.write("in/sub/a.kml", POINT_KML);
    env.write("in/sub/b.kml", "<kml><Placemark><Point><coordinates>1,");
    // Windows takes `\` as a separator, other systems take it as part of a name.
    let pattern = if cfg!(windows) {
        r"in\sub\*.kml"
    } else {
        "in/sub/*.kml"
    };
    let run = env.run(&["-o", "out", "--dry-run", pattern]);
    assert_code(&run, 0);
    assert!(
        run.stdout.contains("convert in/sub/a.kml -> out/a.csv"),
        "{run}"
    );
    let run = env.run(&["-v", "-o", "out", pattern, "in/sub/missing.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: in/sub/a.kml: converted to out/a.csv");
    assert_stderr_has(&run, "kml2csv: in/sub/b.kml:1:");
    assert_stderr_has(&run, "kml2csv: in/sub/missing.kml: cannot read");
    assert!(!run.stderr.contains('\\'), "{run}");
}

#[test]
fn names_differing_only_in_case_collide_where_the_file_system_ignores_case() {
    let env = TestEnv::new();
    env.write("x/A.kml", POINT_KML);
    env.write("y/a.kml", POINT_KML);
    let run = env.run(&["-o", "out", "x/A.kml", "y/a.kml"]);
    if cfg!(any(windows, target_os = "macos")) {
        // `out/A.csv` and `out/a.csv` are one file there: refused before any work.
        assert_code(&run, 2);
        assert_stderr_has(&run, "x/A.kml and y/a.kml would both be written to");
        assert!(env.files_ending(".csv").is_empty(), "{run}");
    } else {
        assert_code(&run, 0);
        assert_eq!(env.files_ending(".csv"), ["out/A.csv", "out/a.csv"]);
    }
}

#[test]
fn names_windows_cannot_hold_fail_that_input_with_a_clear_message() {
    let env = TestEnv::new();
    // Such names come from other systems; on Windows only a verbatim `\\?\` path makes them.
    let root = fs::canonicalize(env.root()).unwrap();
    for name in ["good.kml", "con.kml", "Nul.track.kml"] {
        let path = root.join("data").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, POINT_KML).unwrap();
    }
    let run = env.run(&["-o", "out", "data/**/*.kml"]);
    assert_clean_stderr(&run);
    if cfg!(windows) {
        assert_code(&run, 1);
        assert_stderr_has(
            &run,
            r#"data/con.kml: cannot be read on Windows: "con.kml" is a device name"#,
        );
        assert_stderr_has(
            &run,
            r#"data/Nul.track.kml: cannot be read on Windows: "Nul.track.kml""#,
        );
        assert_eq!(env.files_ending(".csv"), ["out/good.csv"]);
    } else {
        assert_code(&run, 0);
        assert_eq!(env.files_ending(".csv").len(), 3, "{run}");
    }
}

/// Windows paths as users type them: a drive-letter pattern with backslashes, folders longer
/// than 260 characters, and the same through a UNC share (`\\localhost\C$\…`), as inputs and
/// as --out.
#[test]
#[cfg_attr(
    not(windows),
    ignore = "drive letters and UNC shares are Windows syntax"
)]
fn drive_letter_patterns_long_paths_and_unc_shares_convert() {
    let env = TestEnv::new();
    let long = ["a".repeat(90), "b".repeat(90), "c".repeat(90)].join("/");
    env.write(&format!("{long}/in/sub/x.kml"), POINT_KML);
    let root = std::path::absolute(env.root()).unwrap();
    let deep = root.join(&long).to_string_lossy().replace('/', "\\");
    assert!(deep.len() > 260 && deep.as_bytes()[1] == b':', "{deep}");
    let expected = format!("{HEADER}{POINT_ROW}");

    let pattern = format!(r"{deep}\in\**\*.kml");
    let run = env.run(&["-o", &format!(r"{deep}\out"), &pattern]);
    assert_code(&run, 0);
    assert_eq!(env.read(&format!("{long}/out/sub/x.csv")), expected);

    // The administrative share of the drive; the CI's wine prefix has one.
    let unc = format!(r"\\localhost\{}${}", &deep[..1], &deep[2..]);
    if !std::path::Path::new(r"\\localhost\C$").is_dir() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "no share \\\\localhost\\C$"
        );
        eprintln!("skipped the UNC case: no share \\\\localhost\\C$ on this machine");
        return;
    }
    let run = env.run(&[
        "-v",
        "-o",
        &format!(r"{unc}\unc-out"),
        &format!(r"{unc}\in\**\*.kml"),
    ]);
    assert_code(&run, 0);
    assert_stderr_has(&run, "/in/sub/x.kml: converted to //localhost/");
    assert_eq!(env.read(&format!("{long}/unc-out/sub/x.csv")), expected);
}

// ---------------------------------------------------------------------------------------------
// Failures stay per file

#[test]
fn bad_inputs_fail_alone_while_the_others_convert() {
    let env = TestEnv::new();
    env.write("in/good.kml", POINT_KML);
    env.mkdir("in/folder.kml");
    env.write(
        "in/truncated.kml",
        r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>A</name><Point><coordinates>1,2"#,
    );
    let run = env.run(&["in/*.kml", "in/missing.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: in/folder.kml: ");
    assert_stderr_has(&run, "kml2csv: in/missing.kml: ");
    assert_stderr_has(&run, "kml2csv: in/truncated.kml");
    assert_stderr_has(&run, "1 converted, 0 skipped, 3 failed");
    assert_eq!(env.files_ending(".csv"), ["in/good.csv"]);
    assert!(env.temporaries().is_empty(), "{:?}", env.files());
    assert_clean_stderr(&run);
}

#[test]
fn a_failed_file_leaves_no_temporary_and_no_output() {
    let env = TestEnv::new();
    env.write("bad.kml", "<kml><Placemark><Point><coordinates>1,2");
    let run = env.run(&["bad.kml"]);
    assert_code(&run, 1);
    // Only the record of the failure, which lets the next run converge (issue 13).
    assert_eq!(env.files(), ["bad.csv.failed", "bad.kml"], "{run}");
}

#[test]
fn strict_turns_the_first_warning_into_a_failure() {
    let env = TestEnv::new();
    let kml = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>A</name><LineString><coordinates>1,2 x,y 3,4</coordinates></LineString></Placemark></kml>"#;
    env.write("w.kml", kml);
    let run = env.run(&["w.kml"]);
    assert_code(&run, 0);
    assert_stderr_has(&run, "kml2csv: w.kml:");
    assert_stderr_has(&run, ": warning: ");
    assert_stderr_has(&run, "1 warning in");

    let run = env.run(&["--strict", "--force", "w.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: w.kml:");
    assert_eq!(
        env.files_ending(".csv"),
        ["w.csv"],
        "the first run's output stays"
    );
}

// ---------------------------------------------------------------------------------------------
// Temporaries, signals, concurrent runs

#[test]
fn stale_temporaries_are_removed_but_live_ones_kept() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    env.write("out/.kml2csv-a.csv.tmp", "half of a's CSV");
    env.write("out/.kml2csv-dead01.tmp", "half a CSV");
    env.write(".kml2csv-dead02.tmp", "half a CSV");
    env.write("out/.kml2csv-note.txt", "not ours");
    let live = env.write("out/.kml2csv-live01.tmp", "another run's work");
    let held = fs::File::open(&live).unwrap();
    held.lock().unwrap();

    // A run over one file (a Makefile's recipe) looks only for the leftover of its own
    // output, not through the whole folder.
    let run = env.run(&["-o", "out", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        env.temporaries(),
        [
            ".kml2csv-dead02.tmp",
            "out/.kml2csv-dead01.tmp",
            "out/.kml2csv-live01.tmp",
            "out/.kml2csv-note.txt"
        ]
    );

    let run = env.run(&["-o", "out", "--force", "a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        env.temporaries(),
        [
            ".kml2csv-dead02.tmp",
            "out/.kml2csv-live01.tmp",
            "out/.kml2csv-note.txt"
        ],
        "only folders that receive outputs are cleaned, and never a locked file"
    );

    // Without --out the input's folder receives the output, so it is cleaned.
    let run = env.run(&["a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert!(!env.exists(".kml2csv-dead02.tmp"));
    drop(held);
}

/// A KML big enough (about 20 bytes per vertex) that converting it takes well over a second,
/// even in a release build. One block of tuples repeated, so that writing it is quick.
#[cfg(unix)]
fn big_kml(blocks: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut block = String::new();
    for i in 0..10_000 {
        let _ = write!(block, "{}.123456,{}.654321,{} ", i % 180, i % 90, i % 1000);
    }
    let mut kml = Vec::with_capacity(block.len() * blocks + 200);
    kml.extend_from_slice(br#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>big</name><LineString><coordinates>"#);
    for _ in 0..blocks {
        kml.extend_from_slice(block.as_bytes());
    }
    kml.extend_from_slice(b"</coordinates></LineString></Placemark></kml>\n");
    kml
}

/// Start a conversion of a big file, send `signal` once it writes its temporary, and check that
/// the run ends with `code` and leaves neither a temporary nor an output.
#[cfg(unix)]
fn interrupt_big_conversion(signal: &str, code: i32) {
    use std::time::{Duration, Instant};

    let env = TestEnv::new();
    // 6 million vertices, about 130 MB.
    env.write("big.kml", big_kml(600));
    let mut child = env
        .command()
        .args(["-o", "out", "big.kml"])
        .stderr(std::process::Stdio::piped())
        .spawn_retrying()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.writing_into(child.id(), "out") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the conversion ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no temporary file was opened");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status_retrying()
        .unwrap();
    assert!(sent.success());
    let run = common::run_of(child.wait_with_output().unwrap());
    assert_code(&run, code);
    assert_stderr_has(&run, "interrupted");
    assert_clean_stderr(&run);
    assert_eq!(env.files(), ["big.kml"], "{run}");
}

#[cfg(unix)]
#[test]
fn sigint_during_a_big_file_exits_130_and_leaves_nothing() {
    interrupt_big_conversion("-INT", 130);
}

#[cfg(unix)]
#[test]
fn sigterm_during_a_big_file_exits_143_and_leaves_nothing() {
    interrupt_big_conversion("-TERM", 143);
}

/// Twenty files of different sizes, so that largest-first scheduling reorders them.
fn twenty_files(env: &TestEnv) {
    for i in 0..20 {
        env.write(
            &format!("in/f{i:02}.kml"),
            points_kml(&format!("f{i}"), (i * 7) % 13 + 1),
        );
    }
    env.write("in/broken.kml", "<kml><Placemark>");
}

fn outputs_under(env: &TestEnv, dir: &str) -> Vec<(String, Vec<u8>)> {
    env.files()
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&format!("{dir}/"))?.to_owned();
            let bytes = fs::read(env.path(&f)).unwrap();
            Some((rel, bytes))
        })
        .collect()
}

/// The report without the timing at the end of the summary.
fn without_timing(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| l.rsplit_once(" in ").map_or(l, |(head, _)| head))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_or_two_workers_give_identical_outputs_and_reports() {
    let env = TestEnv::new();
    twenty_files(&env);
    let one = env.run(&["-v", "-j", "1", "-o", "one", "in"]);
    let two = env.run(&["-v", "-j", "2", "-o", "two", "in"]);
    assert_eq!(one.code, two.code, "{one}\n{two}");
    let one_files = outputs_under(&env, "one");
    for i in 0..20 {
        let name = format!("f{i:02}.csv");
        assert!(one_files.iter().any(|(f, _)| *f == name), "{name}\n{one}");
    }
    assert_eq!(one_files, outputs_under(&env, "two"));
    assert_eq!(
        without_timing(&one.stderr).replace(" one/", " X/"),
        without_timing(&two.stderr).replace(" two/", " X/")
    );
}

#[test]
fn two_runs_at_once_leave_every_output_whole() {
    let env = TestEnv::new();
    twenty_files(&env);
    let reference = env.run(&["-o", "ref", "in"]);
    // --retry-failed: a run that starts once the other has recorded broken.kml's failure
    // (as under wine, where starting a process is slow) would report it as failed before,
    // with status 0, instead of failing it again.
    let spawn = || {
        env.command()
            .args(["-o", "out", "-j", "2", "--retry-failed", "in"])
            .stderr(std::process::Stdio::piped())
            .spawn_retrying()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let a = common::run_of(a.wait_with_output().unwrap());
    let b = common::run_of(b.wait_with_output().unwrap());
    assert_eq!(a.code, reference.code, "{a}");
    assert_eq!(b.code, reference.code, "{b}");
    assert_eq!(outputs_under(&env, "out"), outputs_under(&env, "ref"));
    assert!(env.temporaries().is_empty(), "{:?}", env.files());
}

// ---------------------------------------------------------------------------------------------
// What is printed

#[test]
fn quiet_prints_nothing_on_success() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    env.write("b.csv", "already there");
    let run = env.run(&["-q", "a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
}

#[test]
fn quiet_still_prints_errors() {
    let env = TestEnv::new();
    let run = env.run(&["-q", "missing.kml"]);
    assert_code(&run, 1);
    assert_eq!(run.lines().len(), 1, "{run}");
    assert_stderr_has(&run, "kml2csv: missing.kml: ");
}

#[test]
fn summary_line_has_counts_rows_warnings_and_time() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    env.write("c.kml", POINT_KML);
    env.write("c.csv", "old");
    let run = env.run(&["a.kml", "b.kml", "c.kml", "missing.kml"]);
    assert_code(&run, 1);
    let last = *run.lines().last().expect("a summary line");
    let rest = last
        .strip_prefix("kml2csv: 2 converted, 1 skipped, 1 failed; ")
        .unwrap_or_else(|| panic!("summary {last:?}"));
    let (rows, rest) = rest.split_once(' ').unwrap();
    rows.parse::<u64>().unwrap();
    let rest = rest
        .strip_prefix("rows, 0 warnings in ")
        .or_else(|| rest.strip_prefix("row, 0 warnings in "))
        .unwrap_or_else(|| panic!("summary {last:?}"));
    let seconds = rest.strip_suffix('s').unwrap_or_else(|| panic!("{last:?}"));
    seconds.parse::<f64>().unwrap();
}

#[test]
fn summary_counts_rows() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", points_kml("b", 3));
    let run = env.run(&["a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert_stderr_has(
        &run,
        "2 converted, 0 skipped, 0 failed; 4 rows, 0 warnings in ",
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let env = TestEnv::new();
    let run = env.run(&["--help"]);
    assert_code(&run, 0);
    for code in ["0 ", "1 ", "2 ", "130", "143"] {
        assert!(run.stdout.contains(&format!("  {code}")), "{code}\n{run}");
    }
}

#[test]
fn error_lines_start_with_the_program_and_name_the_path() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("a.csv/x", "");
    let run = env.run(&["-v", "a.kml", "gone.kml", "none*.kml"]);
    assert_code(&run, 1);
    assert_clean_stderr(&run);
    assert_stderr_has(&run, "kml2csv: a.kml: ");
    assert_stderr_has(&run, "kml2csv: gone.kml: ");
    assert_stderr_has(&run, "kml2csv: none*.kml: ");
}

#[test]
fn reports_follow_command_line_order() {
    let env = TestEnv::new();
    env.write("small.kml", POINT_KML);
    env.write("large.kml", points_kml("large", 2000));
    let run = env.run(&["-v", "-j", "2", "small.kml", "large.kml"]);
    assert_code(&run, 0);
    let lines = run.lines();
    assert!(
        lines[0].starts_with("kml2csv: small.kml: converted"),
        "{run}"
    );
    assert!(
        lines[1].starts_with("kml2csv: large.kml: converted"),
        "{run}"
    );
}

#[test]
fn a_closed_stderr_does_not_stop_the_conversion() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let mut child = env
        .command()
        .args(["-v", "a.kml", "missing.kml"])
        .stderr(std::process::Stdio::piped())
        .spawn_retrying()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(env.exists("a.csv"));
}

// ---------------------------------------------------------------------------------------------
// Files the run writes never clash with an input or with each other (see: issue 17, item 1)

#[test]
fn report_over_an_input_is_refused_before_any_work() {
    let env = TestEnv::new();
    env.write("victim.kml", POINT_KML);
    let run = env.run(&["victim.kml", "--out", "o", "--report", "victim.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(
        &run,
        "the report (--report) victim.kml would overwrite the input victim.kml",
    );
    assert_eq!(env.read("victim.kml"), POINT_KML);
    assert!(!env.exists("o"), "nothing may be written\n{run}");
}

#[test]
fn report_over_an_output_of_the_same_run_is_refused() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["a.kml", "--out", "o", "--report", "./o/../o/a.csv"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "would overwrite the CSV of a.kml o/a.csv");
    assert!(!env.exists("o/a.csv"), "{run}");

    // An existing CSV the run skips is not to be replaced by the report either.
    env.write("o/a.csv", "kept");
    let run = env.run(&["a.kml", "--out", "o", "--report", "o/a.csv"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "would overwrite the existing CSV of a.kml o/a.csv");
    assert_eq!(env.read("o/a.csv"), "kept");
}

#[test]
fn report_and_merge_on_one_path_are_refused() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["a.kml", "--merge", "m.csv", "--report", "m.csv"]);
    assert_code(&run, 2);
    assert_stderr_has(
        &run,
        "the report (--report) m.csv would overwrite the merged CSV (--merge) m.csv",
    );
    assert!(!env.exists("m.csv"), "{run}");
    // Standard input alone: still checked.
    let run = env.run(&["-", "--merge", "m.csv", "--report", "./m.csv"]);
    assert_code(&run, 2);
}

#[test]
fn merge_over_its_own_input_is_refused_even_with_force() {
    let env = TestEnv::new();
    env.write("v1.kml", POINT_KML);
    env.write("v2.kml", POINT_KML);
    let run = env.run(&["v1.kml", "v2.kml", "--merge", "v2.kml", "--force"]);
    assert_code(&run, 2);
    assert_stderr_has(
        &run,
        "the merged CSV (--merge) v2.kml would overwrite the input v2.kml",
    );
    assert_eq!(env.read("v2.kml"), POINT_KML);
}

#[cfg(unix)]
#[test]
fn a_write_to_another_name_of_an_input_is_refused() {
    let env = TestEnv::new();
    env.write("in/a.kml", POINT_KML);
    // A hard link and a symlink: other names of the same file.
    fs::hard_link(env.path("in/a.kml"), env.path("hard.json")).unwrap();
    std::os::unix::fs::symlink("in/a.kml", env.path("soft.json")).unwrap();
    for report in ["hard.json", "soft.json"] {
        let run = env.run(&["in/*.kml", "--out", "o", "--report", report]);
        assert_code(&run, 2);
        assert_stderr_has(
            &run,
            &format!("{report} would overwrite the input in/a.kml"),
        );
    }
    // A CSV of one input that is another input (a KML named .csv), with --force.
    env.write("x.kml", POINT_KML);
    env.write("x.csv", POINT_KML);
    let run = env.run(&["x.kml", "./x.csv", "--force"]);
    assert_code(&run, 2);
    assert_stderr_has(
        &run,
        "the CSV of x.kml x.csv would overwrite the input ./x.csv",
    );
    assert_eq!(env.read("x.csv"), POINT_KML);
}

// See: issue 17, item 5: a Latin-1 name was dropped by patterns without a word.
#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_is_converted_and_shown_with_escapes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    env.write("in/ok.kml", POINT_KML);
    fs::write(
        env.path("in").join(OsStr::from_bytes(b"caf\xe9.kml")),
        POINT_KML,
    )
    .unwrap();
    let run = env.run(&["in/*.kml", "-o", "o", "-v", "--report", "r.json"]);
    assert_code(&run, 0);
    assert!(env
        .path("o")
        .join(OsStr::from_bytes(b"caf\xe9.csv"))
        .is_file());
    assert_stderr_has(
        &run,
        "kml2csv: in/caf\\xE9.kml: converted to o/caf\\xE9.csv",
    );
    let report: serde_json::Value = serde_json::from_str(&env.read("r.json")).unwrap();
    assert_eq!(report["inputs"][0]["input"], "in/caf\\xE9.kml");
    assert_eq!(report["inputs"][1]["input"], "in/ok.kml");

    let run = env.run(&["in/*.kml", "--merge", "m.csv"]);
    assert_code(&run, 0);
    assert!(
        env.read("m.csv").contains("\nin/caf\\xE9.kml,0,A,"),
        "{}",
        env.read("m.csv")
    );
}

// See: issue 15, item 3: `-j 100000` spawned threads for the whole run.
#[test]
fn a_huge_jobs_count_on_one_file_starts_one_worker_quietly() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["-j", "100000", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(run.lines().len(), 1, "only the summary\n{run}");
    assert_eq!(env.read("a.csv"), format!("{HEADER}{POINT_ROW}"));
}

/// Threads kml2csv starts when run in `env` with `args`, counted from `strace`; `None` (with a
/// message) where strace is missing or cannot trace, which CI does not accept.
#[cfg(target_os = "linux")]
fn threads_started(env: &TestEnv, name: &str, args: &[&str]) -> Option<(usize, Run)> {
    if std::process::Command::new("strace")
        .arg("-V")
        .output_retrying()
        .is_err()
    {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
        assert!(std::env::var_os("CI").is_none(), "CI must have strace");
        return None;
    }
    let log = env.path(&format!("trace-{name}.log"));
    let run = common::run_of(
        std::process::Command::new("strace")
            .current_dir(env.root())
            .args(["-f", "-qq", "-e", "trace=clone,clone3", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_kml2csv"))
            .args(args)
            .output_retrying()
            .unwrap(),
    );
    let trace = fs::read_to_string(&log).unwrap_or_default();
    if trace.is_empty() {
        eprintln!("SKIPPED: strace cannot trace here\n{run}");
        return None;
    }
    Some((trace.lines().filter(|l| l.contains("clone")).count(), run))
}

/// See: issue 15, item 3: `-j 100000` on one file started threads for the whole run, and even a
/// plain run of one file started 19. Then a worker and the committer, which cost a run of one
/// small file (the Makefile recipe) more than its conversion: it now starts none.
#[cfg(target_os = "linux")]
#[test]
fn a_run_of_one_file_starts_no_thread_whatever_the_jobs() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    for (name, args) in [
        ("huge", &["-j", "100000", "a.kml"][..]),
        ("default", &["b.kml", "--out", "out"][..]),
    ] {
        let Some((threads, run)) = threads_started(&env, name, args) else {
            return;
        };
        assert_code(&run, 0);
        assert_eq!(threads, 0, "{name}: {threads} threads started\n{run}");
    }
    assert_eq!(env.read("out/b.csv"), format!("{HEADER}{POINT_ROW}"));
}

/// See: issue 15, item 2: a lone file to standard output was read and written on two threads
/// even with `-j1`, which asks for one core (a Slurm task of one CPU, say) and costs a fifth
/// more CPU time in all for the hand-over between them.
#[cfg(target_os = "linux")]
#[test]
fn one_job_to_standard_output_reads_and_writes_on_one_thread() {
    let env = TestEnv::new();
    env.write("a.kml", points_kml("a", 2000));
    let mut started = Vec::new();
    for jobs in ["1", "2"] {
        let args = ["-j", jobs, "a.kml", "--out", "-"];
        let Some((threads, run)) = threads_started(&env, jobs, &args) else {
            return;
        };
        assert_code(&run, 0);
        assert_eq!(run.stdout.lines().count(), 2001);
        started.push(threads);
    }
    let (one, two) = (started[0], started[1]);
    assert!(one < two, "-j1 started {one} threads, -j2 {two}");
}

//! Folder trees, output names and the messages a user acts on (issue 13, items 4 and 7).

mod common;
use common::StartRetrying;

use std::process::Command;

use common::{points_kml, TestEnv};

/// A folder argument stands for the files directly in it; when there are none, the message
/// says how to reach its sub-folders instead of leaving the user to guess.
#[test]
fn a_folder_with_kml_only_in_sub_folders_names_the_recursive_pattern() {
    let env = TestEnv::new();
    env.write("crawl/2024/05/a.kml", points_kml("a", 2));
    let run = env.run(&["crawl", "--out", "proc"]);
    assert_eq!(run.code, Some(1), "{run}");
    let pattern = format!(
        "\"{}\"",
        ["crawl", "**", "*.km[lz]"].join(std::path::MAIN_SEPARATOR_STR)
    );
    assert!(run.stderr.contains(&pattern), "no {pattern} in\n{run}");
    // And the pattern it names does what it says.
    let run = env.run(&["crawl/**/*.km[lz]", "--out", "proc"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(env.exists("proc/2024/05/a.csv"), "{:?}", env.files());
}

/// `x.kml` beside `x.kmz` is refused before any work, and the refusal names the option that
/// gives each its own CSV.
#[test]
fn kml_beside_kmz_is_refused_up_front_naming_keep_extension() {
    let env = TestEnv::new();
    env.write("in/x.kml", points_kml("kml", 2));
    env.write("in/x.kmz", points_kml("kmz-named", 3));
    env.write("in/y.kml", points_kml("y", 1));
    let run = env.run(&["in/*.km[lz]", "--out", "out"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("--keep-extension"), "{run}");
    assert!(run.stderr.contains("x.kml.csv and x.kmz.csv"), "{run}");
    assert!(
        !env.exists("out"),
        "something was written: {:?}",
        env.files()
    );
}

#[test]
fn keep_extension_gives_x_kml_and_x_kmz_a_csv_each() {
    let env = TestEnv::new();
    env.write("in/x.kml", points_kml("kml", 2));
    env.write("in/x.kmz", points_kml("kmz", 3));
    let run = env.run(&["in/*.km[lz]", "--out", "out", "--keep-extension"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(env.read("out/x.kml.csv").lines().count(), 3);
    assert_eq!(env.read("out/x.kmz.csv").lines().count(), 4);
    // Beside the inputs too, and a re-run skips both.
    let run = env.run(&["in/x.kml", "in/x.kmz", "--keep-extension"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(env.exists("in/x.kml.csv") && env.exists("in/x.kmz.csv"));
    let run = env.run(&["in/*.km[lz]", "--out", "out", "--keep-extension", "-v"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("0 converted, 2 skipped"), "{run}");
}

/// `--ouput` used to get the tip `--update`.
#[test]
fn a_typo_of_output_suggests_output() {
    let env = TestEnv::new();
    let run = env.run(&["--ouput", "proc", "a.kml"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("'--output'"), "{run}");
    assert!(!run.stderr.contains("--update"), "{run}");
    env.write("a.kml", points_kml("a", 1));
    let run = env.run(&["--output", "proc", "a.kml"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(env.exists("proc/a.csv"));
}

/// The zip reader's own message names one of its types ("Unexpected end of
/// zip::format::blocks::…"); the user is told what is wrong with the file.
#[test]
fn a_truncated_kmz_is_called_truncated() {
    let env = TestEnv::new();
    let whole = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kmz/deflated.kmz"),
    )
    .unwrap();
    for cut in [10, whole.len() / 2, whole.len() - 10] {
        env.write("cut.kmz", &whole[..cut]);
        let run = env.run(&["cut.kmz", "--out", "-"]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(
            run.stderr
                .contains("cut.kmz: bad KMZ: the file is truncated or not a zip archive"),
            "cut at {cut}: {run}"
        );
    }
}

/// `--help` describes the temporaries as they are made now.
#[test]
fn help_tells_how_outputs_get_their_names() {
    let env = TestEnv::new();
    let run = env.run(&["--help"]);
    assert_eq!(run.code, Some(0), "{run}");
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("no name (O_TMPFILE) and is linked into place"),
        "{help}"
    );
    assert!(help.contains("--keep-extension"), "{help}");
}

/// `bench/run.sh --help` printed two lines of the script after its comment.
#[test]
fn bench_help_is_the_comment_block_only() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/run.sh");
    let Ok(out) = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output_retrying()
    else {
        eprintln!("SKIPPED: no bash to run bench/run.sh");
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--baseline BIN"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("Nothing here is part of `cargo test`."),
        "{text}"
    );
    assert!(
        !text.contains("set -euo") && !text.contains("REPO="),
        "{text}"
    );
}

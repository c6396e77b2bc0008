//! Runs the real `kml2csv` binary on every fixture under `fixtures/` and compares the result
//! with the hand-derived CSV in `tests/expected/`.
//!
//! - Valid fixtures are the `*.kml`/`*.kmz` files directly in `fixtures/`, `fixtures/encodings/`
//!   and `fixtures/kmz/`. Each is converted alone (`kml2csv FIXTURE --out TMPDIR`); the run must
//!   exit 0 and leave exactly one CSV, equal byte for byte to
//!   `tests/expected/<path relative to fixtures/, "/" replaced by "__">.csv`
//!   (e.g. `kmz/stored.kmz` -> `kmz__stored.kmz.csv`).
//! - Fixtures in `fixtures/malformed/` must fail cleanly: exit status 1, a `kml2csv: ` line on
//!   stderr naming the file (with a `:LINE:COLUMN:` position for the XML ones), no output and
//!   no temporary file left behind, no panic.
//!
//! CI runs this on Linux and, cross-built, on Windows under wine: the same expected files for
//! both, so the fixtures convert byte-identical on the two (`.gitattributes` keeps a Windows
//! checkout from changing their line ends).
//!
//! Every fixture is checked and all failures are reported together, so one run shows the whole
//! picture. To add a fixture: put it in one of those directories and add its expected CSV (the
//! test fails while either side is missing). `fixtures/make_fixtures.py` regenerates the
//! encoded, zipped and byte-exact malformed fixtures; `fixtures/check_expected.py ORACLE`
//! cross-checks the coordinate columns of the expected files against an independent extractor.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Directories (relative to `fixtures/`) whose `.kml`/`.kmz` files must convert.
const VALID_DIRS: [&str; 3] = ["", "encodings", "kmz"];
/// Directory (relative to `fixtures/`) whose files must be rejected.
const MALFORMED_DIR: &str = "malformed";
/// Malformed fixtures that are not XML documents with a position to report (an empty file,
/// broken zips): the error message need not carry `:LINE:COLUMN:`.
const MALFORMED_WITHOUT_POSITION: [&str; 3] = ["empty.kml", "no_kml_inside.kmz", "truncated.kmz"];
/// Generous limit for one conversion of a tiny file; a run that takes longer is a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    manifest_dir().join("fixtures")
}

fn expected_dir() -> PathBuf {
    manifest_dir().join("tests").join("expected")
}

/// `rel` uses `/` as separator; turn it into a path under `base`.
fn join_rel(base: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

fn is_kml_or_kmz(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".kml") || lower.ends_with(".kmz")
}

/// The `.kml`/`.kmz` files directly in `fixtures/<sub>`, as sorted `/`-separated paths
/// relative to `fixtures/`.
fn fixtures_in(sub: &str) -> Vec<String> {
    let dir = join_rel(&fixtures_dir(), sub);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
    {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().expect("file type").is_file() && is_kml_or_kmz(&name) {
            out.push(if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            });
        }
    }
    out.sort();
    out
}

fn valid_fixtures() -> Vec<String> {
    VALID_DIRS.iter().flat_map(|d| fixtures_in(d)).collect()
}

fn expected_name(rel: &str) -> String {
    format!("{}.csv", rel.replace('/', "__"))
}

/// Run the binary with `args` in `cwd`, with a timeout (a run killed by it has no exit code).
fn run_kml2csv<I, S>(args: I, cwd: &Path, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_kml2csv"))
        .args(args)
        .current_dir(cwd)
        .timeout(timeout)
        .output()
        .expect("cannot start kml2csv")
}

fn convert_one(fixture: &Path, out: &Path, timeout: Duration) -> Output {
    run_kml2csv(
        [fixture.as_os_str(), OsStr::new("--out"), out.as_os_str()],
        &manifest_dir(),
        timeout,
    )
}

/// Every file (not directory) under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()))
        {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The files under `dir` other than the records of failed inputs (`NAME.csv.failed`, which a
/// failed file leaves so that the next run converges).
fn outputs_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".csv.failed"))
        .collect()
}

fn describe_exit(output: &Output) -> String {
    match output.status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!(
            "no exit status ({}; killed by a signal, or by the {}s timeout)",
            output.status,
            RUN_TIMEOUT.as_secs()
        ),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Indent a block of program output for a failure report.
fn indented(s: &str) -> String {
    if s.trim().is_empty() {
        return "    (nothing)\n".to_string();
    }
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

/// A line with its invisible characters made visible (tabs, CR, BOM, other controls).
fn visible(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() || c == '\u{feff}' || c == '\u{a0}' => {
                s.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => s.push(c),
        }
    }
    s
}

/// A readable line diff (longest common subsequence) of two small texts: `-` lines are only
/// in the expected file, `+` lines only in the actual output; long runs of equal lines are
/// elided. Line numbers are 1-based.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.split('\n').collect();
    let b: Vec<&str> = actual.split('\n').collect();
    // lcs[i][j] = length of the LCS of a[i..] and b[j..]
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    enum Op {
        Same(usize),
        Del(usize),
        Add(usize),
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(Op::Same(i));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Add(j));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(_)))
        .map(|(k, _)| k)
        .collect();
    let near_change = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut elided = false;
    for (k, op) in ops.iter().enumerate() {
        match *op {
            Op::Same(_) if !near_change(k) => {
                if !elided {
                    out.push_str("      ...\n");
                    elided = true;
                }
                continue;
            }
            Op::Same(i) => out.push_str(&format!("  {:>4}   {}\n", i + 1, visible(a[i]))),
            Op::Del(i) => out.push_str(&format!("- {:>4}   {}\n", i + 1, visible(a[i]))),
            Op::Add(j) => out.push_str(&format!("+ {:>4}   {}\n", j + 1, visible(b[j]))),
        }
        elided = false;
    }
    out
}

/// Does `line` contain `:LINE:COLUMN: ` (both numbers non-empty runs of ASCII digits)?
fn has_position(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |mut k: usize| {
        let start = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        (k > start).then_some(k)
    };
    (0..b.len()).any(|k| {
        b[k] == b':'
            && digits(k + 1)
                .filter(|&e| b.get(e) == Some(&b':'))
                .and_then(|e| digits(e + 1))
                .is_some_and(|e| b.get(e) == Some(&b':') && b.get(e + 1) == Some(&b' '))
    })
}

fn finish(what: &str, checked: usize, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} of {checked} {what} failed:\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn every_fixture_has_an_expected_csv_and_every_expected_csv_a_fixture() {
    let wanted: BTreeSet<String> = valid_fixtures().iter().map(|r| expected_name(r)).collect();
    let present: BTreeSet<String> = fs::read_dir(expected_dir())
        .expect("tests/expected")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut problems = Vec::new();
    for name in wanted.difference(&present) {
        problems.push(format!("no tests/expected/{name} for its fixture"));
    }
    for name in present.difference(&wanted) {
        problems.push(format!(
            "tests/expected/{name} has no fixture (expected names are the fixture's path \
             relative to fixtures/ with / replaced by __, plus .csv)"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        wanted.len() >= 30,
        "only {} valid fixtures found",
        wanted.len()
    );
}

#[test]
fn valid_fixtures_convert_to_the_expected_csv() {
    let fixtures = valid_fixtures();
    let mut failures = Vec::new();
    for rel in &fixtures {
        if let Err(msg) = check_valid(rel) {
            failures.push(format!("== fixtures/{rel}\n{msg}"));
        }
    }
    finish("valid fixtures", fixtures.len(), failures);
}

fn check_valid(rel: &str) -> Result<(), String> {
    let expected_path = expected_dir().join(expected_name(rel));
    let expected = fs::read(&expected_path)
        .map_err(|e| format!("cannot read {}: {e}", expected_path.display()))?;
    let out = tempfile::tempdir().expect("temporary directory");
    let output = convert_one(&join_rel(&fixtures_dir(), rel), out.path(), RUN_TIMEOUT);
    let stderr = text(&output.stderr);
    let mut problems = Vec::new();
    if output.status.code() != Some(0) {
        problems.push(format!(
            "expected exit status 0, got {}",
            describe_exit(&output)
        ));
    }
    if stderr.contains("panicked") {
        problems.push("stderr reports a panic".to_string());
    }
    let files = files_under(out.path());
    let csvs: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension() == Some(OsStr::new("csv")))
        .collect();
    let others: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension() != Some(OsStr::new("csv")))
        .collect();
    if !others.is_empty() {
        problems.push(format!(
            "files other than the CSV left in --out: {others:?}"
        ));
    }
    match csvs.as_slice() {
        [csv] => {
            let actual =
                fs::read(csv).map_err(|e| format!("cannot read {}: {e}", csv.display()))?;
            if actual != expected {
                let mut msg = format!(
                    "{} differs from tests/expected/{} (- expected, + actual):\n{}",
                    csv.file_name().unwrap_or_default().to_string_lossy(),
                    expected_name(rel),
                    line_diff(&text(&expected), &text(&actual))
                );
                if std::str::from_utf8(&actual).is_err() {
                    msg.push_str("(the output is not valid UTF-8)\n");
                }
                problems.push(msg);
            }
        }
        [] => problems.push("no CSV written".to_string()),
        many => problems.push(format!(
            "{} CSVs written, expected one: {many:?}",
            many.len()
        )),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nstderr:\n{}",
            problems.join("\n"),
            indented(&stderr)
        ))
    }
}

#[test]
fn malformed_fixtures_fail_cleanly() {
    let fixtures = fixtures_in(MALFORMED_DIR);
    assert!(
        fixtures.len() >= 10,
        "only {} malformed fixtures",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for rel in &fixtures {
        if let Err(msg) = check_malformed(rel) {
            failures.push(format!("== fixtures/{rel}\n{msg}"));
        }
    }
    finish("malformed fixtures", fixtures.len(), failures);
}

fn check_malformed(rel: &str) -> Result<(), String> {
    let file_name = rel.rsplit('/').next().unwrap_or(rel);
    let out = tempfile::tempdir().expect("temporary directory");
    let output = convert_one(&join_rel(&fixtures_dir(), rel), out.path(), RUN_TIMEOUT);
    let stderr = text(&output.stderr);
    let mut problems = Vec::new();
    if output.status.code() != Some(1) {
        problems.push(format!(
            "expected exit status 1, got {}",
            describe_exit(&output)
        ));
    }
    if stderr.contains("panicked") {
        problems.push("stderr reports a panic".to_string());
    }
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kml2csv: ") && l.contains(file_name))
        .collect();
    if error_lines.is_empty() {
        problems.push(format!(
            "no stderr line starts with \"kml2csv: \" and names {file_name}"
        ));
    } else if !MALFORMED_WITHOUT_POSITION.contains(&file_name)
        && !error_lines.iter().any(|l| has_position(l))
    {
        problems.push(format!(
            "the error for {file_name} has no :LINE:COLUMN: position: {error_lines:?}"
        ));
    }
    let left = outputs_under(out.path());
    if !left.is_empty() {
        problems.push(format!(
            "files left in --out (a failed file must leave neither a CSV nor a temporary \
             file): {left:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nstderr:\n{}",
            problems.join("\n"),
            indented(&stderr)
        ))
    }
}

/// `external_entity.kml` names `file:///etc/passwd` as an external entity. Whatever the exit
/// status, nothing of that file may appear on stdout, stderr or in any file written.
#[test]
fn external_entity_is_never_read() {
    let fixture = fixtures_dir().join("external_entity.kml");
    assert!(fixture.is_file(), "missing {}", fixture.display());
    let out = tempfile::tempdir().expect("temporary directory");
    let output = convert_one(&fixture, out.path(), RUN_TIMEOUT);
    let mut needles = vec!["root:".to_string()];
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        needles.extend(passwd.lines().next().map(str::to_string));
    }
    let mut outputs = vec![
        ("stdout".to_string(), output.stdout.clone()),
        ("stderr".to_string(), output.stderr.clone()),
    ];
    for f in files_under(out.path()) {
        let bytes = fs::read(&f).expect("read output file");
        outputs.push((f.display().to_string(), bytes));
    }
    for (what, bytes) in &outputs {
        let s = text(bytes);
        for needle in &needles {
            assert!(
                !s.contains(needle.as_str()),
                "{what} contains {needle:?}: the external entity was read\n{}",
                indented(&s)
            );
        }
    }
    assert!(
        !text(&output.stderr).contains("panicked"),
        "panic:\n{}",
        indented(&text(&output.stderr))
    );
}

/// `billion_laughs.kml` defines nested entities that would expand to 3 GB. The file must fail
/// quickly, and the expansion must never be written anywhere.
#[test]
fn billion_laughs_is_rejected_quickly_without_expansion() {
    let fixture = fixtures_dir()
        .join(MALFORMED_DIR)
        .join("billion_laughs.kml");
    assert!(fixture.is_file(), "missing {}", fixture.display());
    let out = tempfile::tempdir().expect("temporary directory");
    let limit = Duration::from_secs(10);
    let started = Instant::now();
    let output = convert_one(&fixture, out.path(), limit);
    let elapsed = started.elapsed();
    assert!(
        output.status.code().is_some() && elapsed < limit,
        "did not finish within {limit:?} ({})",
        describe_exit(&output)
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit status 1\nstderr:\n{}",
        indented(&text(&output.stderr))
    );
    // Allow for a long message, never for the expansion (each level multiplies by ten).
    const MAX_MESSAGE: usize = 64 * 1024;
    for (what, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            bytes.len() < MAX_MESSAGE,
            "{what} is {} bytes long",
            bytes.len()
        );
        assert!(
            !text(bytes).contains("lollollollollol"),
            "{what} contains the expansion"
        );
    }
    let left = outputs_under(out.path());
    assert!(left.is_empty(), "files left in --out: {left:?}");
}

/// What the README tells users to run: all top-level fixtures in one batch, from the
/// repository root, with the glob left to kml2csv. Output names are the CLI's business; the
/// set of CSVs written must be exactly the set of expected files of those fixtures.
#[test]
fn readme_batch_over_top_level_fixtures_succeeds() {
    let top: Vec<String> = fixtures_in("");
    let out = tempfile::tempdir().expect("temporary directory");
    let output = run_kml2csv(
        [
            OsStr::new("fixtures/*.km[lz]"),
            OsStr::new("--out"),
            out.path().as_os_str(),
        ],
        &manifest_dir(),
        RUN_TIMEOUT,
    );
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "kml2csv \"fixtures/*.km[lz]\" --out DIR: {}\nstderr:\n{}",
        describe_exit(&output),
        indented(&stderr)
    );
    assert!(
        !stderr.contains("panicked"),
        "panic:\n{}",
        indented(&stderr)
    );
    let files = files_under(out.path());
    let mut actual: Vec<String> = Vec::new();
    for f in &files {
        assert_eq!(
            f.extension(),
            Some(OsStr::new("csv")),
            "unexpected file in --out: {}",
            f.display()
        );
        actual.push(text(&fs::read(f).expect("read CSV")));
    }
    let expected: Vec<String> = top
        .iter()
        .map(|rel| text(&fs::read(expected_dir().join(expected_name(rel))).expect("expected CSV")))
        .collect();
    let mut missing = expected.clone();
    let mut unmatched = Vec::new();
    for a in &actual {
        match missing.iter().position(|e| e == a) {
            Some(k) => {
                missing.swap_remove(k);
            }
            None => unmatched.push(a.lines().take(2).collect::<Vec<_>>().join(" / ")),
        }
    }
    let missing: Vec<String> = missing
        .iter()
        .map(|e| e.lines().take(2).collect::<Vec<_>>().join(" / "))
        .collect();
    assert!(
        unmatched.is_empty() && missing.is_empty() && actual.len() == expected.len(),
        "{} CSVs written for {} top-level fixtures ({files:?})\n\
         written but matching no expected file (header / first row): {unmatched:#?}\n\
         expected but not written: {missing:#?}",
        actual.len(),
        expected.len()
    );
}

#[test]
fn position_matcher_and_diff_work() {
    assert!(has_position(
        "kml2csv: fixtures/malformed/truncated.kml:11:38: malformed XML: unclosed"
    ));
    assert!(!has_position(
        "kml2csv: empty.kml: malformed XML: empty file"
    ));
    assert!(!has_position("kml2csv: a.kml:11: no column"));
    assert!(!has_position("kml2csv: a.kml:1:2 no space"));
    let d = line_diff("h\na\nb\n", "h\na\nc\n");
    assert!(d.contains("-    3   b") && d.contains("+    3   c"), "{d}");
    assert!(visible("a\tb\u{feff}").contains("\\t") && visible("\u{feff}").contains("feff"));
}

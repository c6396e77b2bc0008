//! Hostile and broken input: files crawled from strangers must never crash kml2csv, hang it,
//! exhaust its memory, make it read local files, or make it write outside `--out`.
//!
//! The two 1 GB streams are `#[ignore]`d (they take a while in a debug build); `.ci/run` runs
//! them in release with `cargo test --release --test attacks -- --ignored`.

//!
//! On Windows (under wine in CI) memory is measured as the peak working set; what needs FIFOs
//! or file names that are not Unicode is ignored there, with the reason.

mod common;
use common::StartRetrying;

use std::fs;
use std::io::Write;
use std::path::Path;
// Names as bytes, and reading a FIFO: the tests that need them are Unix only.
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
#[cfg(unix)]
use std::{
    ffi::{OsStr, OsString},
    io::Read,
    os::unix::ffi::{OsStrExt, OsStringExt},
};

use common::{record, Run, TestEnv, HEADER, POINT_KML, POINT_ROW};

const KML_OPEN: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2">"#;

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

/// Every stderr line is ours: no panic, no Debug-formatted error.
fn assert_clean_stderr(run: &Run) {
    for line in run.lines() {
        assert!(
            line.starts_with("kml2csv: "),
            "foreign line {line:?}\n{run}"
        );
        assert!(
            !line.contains("panicked") && !line.contains("Os {"),
            "{run}"
        );
    }
}

/// The peak resident memory of a running process, in KiB (VmHWM), if it can still be read.
#[cfg(unix)]
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The peak working set of a running process, in KiB, if it can still be read.
#[cfg(windows)]
fn peak_rss_kib(pid: u32) -> Option<u64> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
    };
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
    // SAFETY: the handle is checked, used once and closed; the struct is as long as said.
    unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if process.is_null() {
            return None;
        }
        let mut counters: PROCESS_MEMORY_COUNTERS = std::mem::zeroed();
        let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        let read = K32GetProcessMemoryInfo(process, &mut counters, size);
        CloseHandle(process);
        (read != 0).then_some(counters.PeakWorkingSetSize as u64 / 1024)
    }
}

/// Wait for `child`, sampling its peak memory; SIGTERM it (on Windows: TerminateProcess, exit
/// status 1) after `limit` (bounded time is
/// part of the promise for some attacks, not for others: `must_finish` says which).
fn watch(mut child: Child, limit: Duration, must_finish: bool) -> (Run, u64, bool) {
    let started = Instant::now();
    let mut peak = 0;
    let mut stopped = false;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if started.elapsed() > limit && !stopped {
            assert!(!must_finish, "still running after {limit:?}");
            // SAFETY: our own, not yet reaped child.
            #[cfg(unix)]
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM)
            };
            #[cfg(windows)]
            child.kill().unwrap();
            stopped = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        common::run_of(child.wait_with_output().unwrap()),
        peak,
        stopped,
    )
}

/// Convert `files` (name, bytes) together with a good file, each in its own run: every one
/// must end within `limit` with exit 0 or 1, only our own messages, no temporary, and either
/// a CSV (exit 0) or none (exit 1). Returns the runs.
fn convert_each(env: &TestEnv, files: &[(&str, Vec<u8>)]) -> Vec<Run> {
    env.write("good.kml", POINT_KML);
    let mut runs = Vec::new();
    for (name, bytes) in files {
        env.write(name, bytes);
        let child = env
            .command()
            .args(["--force", "-o", "out", name, "good.kml"])
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap();
        let (run, peak, _) = watch(child, Duration::from_secs(60), true);
        assert!(matches!(run.code, Some(0 | 1)), "{name}\n{run}");
        assert_clean_stderr(&run);
        assert!(peak < 200 * 1024, "{name}: peak memory {peak} KiB");
        assert_eq!(
            env.read("out/good.csv"),
            format!("{HEADER}{POINT_ROW}"),
            "{name}: the good file still converts\n{run}"
        );
        let csv = env.path(&format!(
            "out/{}",
            Path::new(name).with_extension("csv").display()
        ));
        if run.code == Some(1) {
            assert!(run.stderr.contains(&format!("kml2csv: {name}")), "{run}");
            assert!(!csv.exists(), "{name}: failed but left a CSV\n{run}");
        } else {
            assert!(csv.exists(), "{name}\n{run}");
        }
        assert!(env.temporaries().is_empty(), "{name}: {:?}", env.files());
        let _ = fs::remove_file(&csv);
        runs.push(run);
    }
    record("attack_files", files.len() as u64);
    runs
}

fn doc_with_dtd(dtd: &str, body: &str) -> Vec<u8> {
    format!("<?xml version=\"1.0\"?>\n<!DOCTYPE kml [\n{dtd}\n]>\n{KML_OPEN}{body}</kml>\n")
        .into_bytes()
}

#[test]
fn entity_expansion_attacks_fail_fast_and_small() {
    let env = TestEnv::new();
    let mut laughs = String::from("<!ENTITY lol0 \"lol\">\n");
    for i in 1..=9 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        laughs.push_str(&format!("<!ENTITY lol{i} \"{refs}\">\n"));
    }
    let big = "a".repeat(50_000);
    let quadratic_refs = "&a;".repeat(50_000);
    let files = [
        (
            "laughs.kml",
            doc_with_dtd(&laughs, "<Placemark><name>&lol9;</name><Point><coordinates>1,2</coordinates></Point></Placemark>"),
        ),
        (
            "laughs_in_coordinates.kml",
            doc_with_dtd(&laughs, "<Placemark><Point><coordinates>&lol9;</coordinates></Point></Placemark>"),
        ),
        (
            "quadratic.kml",
            doc_with_dtd(
                &format!("<!ENTITY a \"{big}\">"),
                &format!("<Placemark><name>{quadratic_refs}</name></Placemark>"),
            ),
        ),
    ];
    for run in convert_each(&env, &files) {
        assert_code(&run, 1);
    }
}

#[test]
fn external_entities_never_reach_the_output() {
    let env = TestEnv::new();
    let secret = env.write("secret.txt", "TOP-SECRET-7f3a9 1,2,3");
    let url = format!("file://{}", fs::canonicalize(&secret).unwrap().display());
    let dtd = format!(
        "<!ENTITY x SYSTEM \"{url}\">\n<!ENTITY % p SYSTEM \"{url}\">\n<!ENTITY y PUBLIC \"-//x//y\" \"{url}\">\n%p;"
    );
    let files = [
        (
            "xxe_name.kml",
            doc_with_dtd(&dtd, "<Placemark><name>&x;</name><Point><coordinates>1,2</coordinates></Point></Placemark>"),
        ),
        (
            "xxe_coordinates.kml",
            doc_with_dtd(&dtd, "<Placemark><name>n</name><LineString><coordinates>&x; 5,6 &y;</coordinates></LineString></Placemark>"),
        ),
        (
            "xxe_when.kml",
            doc_with_dtd(&dtd, "<Placemark><gx:Track xmlns:gx=\"http://www.google.com/kml/ext/2.2\"><when>&x;</when><gx:coord>1 2 3</gx:coord></gx:Track></Placemark>"),
        ),
    ];
    for (name, bytes) in &files {
        env.write(name, bytes);
        let run = env.run(&["-o", "out", name]);
        assert!(matches!(run.code, Some(0 | 1)), "{run}");
        assert!(!run.stderr.contains("TOP-SECRET"), "{run}");
        for csv in env.files_ending(".csv") {
            assert!(
                !env.read(&csv).contains("TOP-SECRET"),
                "{csv} leaks the secret"
            );
        }
    }
    record("attack_files", files.len() as u64);
}

#[test]
fn deep_nesting_does_not_crash() {
    const DEPTH: usize = 100_000;
    let env = TestEnv::new();
    let nested = |open: &str, close: &str, inner: &str| {
        let mut s = String::from(KML_OPEN);
        s.push_str(&open.repeat(DEPTH));
        s.push_str(inner);
        s.push_str(&close.repeat(DEPTH));
        s.push_str("</kml>");
        s.into_bytes()
    };
    let point =
        "<Placemark><name>deep</name><Point><coordinates>1,2</coordinates></Point></Placemark>";
    let files = [
        ("folders.kml", nested("<Folder>", "</Folder>", point)),
        (
            "placemarks.kml",
            nested(
                "<Placemark>",
                "</Placemark>",
                "<Point><coordinates>1,2</coordinates></Point>",
            ),
        ),
        (
            "multigeometry.kml",
            nested(
                "<MultiGeometry>",
                "</MultiGeometry>",
                "<Point><coordinates>1,2</coordinates></Point>",
            ),
        ),
        ("unclosed.kml", {
            let mut s = KML_OPEN.to_owned();
            s.push_str(&"<Folder>".repeat(DEPTH));
            s.into_bytes()
        }),
    ];
    let runs = convert_each(&env, &files);
    assert_code(&runs[0], 0);
    assert_code(&runs[3], 1);
}

#[test]
fn broken_bytes_fail_the_file_alone() {
    let env = TestEnv::new();
    let placemark = |name: &[u8]| {
        let mut v = format!("{KML_OPEN}<Placemark><name>").into_bytes();
        v.extend_from_slice(name);
        v.extend_from_slice(
            b"</name><Point><coordinates>1,2</coordinates></Point></Placemark></kml>",
        );
        v
    };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_utf8.kml", placemark(b"caf\xe9 \xff\xfe")),
        ("overlong_utf8.kml", placemark(b"\xc0\xaf")),
        ("surrogate_utf8.kml", placemark(b"\xed\xa0\x80")),
        ("nul_in_name.kml", placemark(b"a\0b")),
        ("nul_in_coordinates.kml", format!("{KML_OPEN}<Placemark><Point><coordinates>1,2\0 3,4</coordinates></Point></Placemark></kml>").into_bytes()),
        ("control_char.kml", placemark(b"a\x01b")),
        ("declares_utf8_is_latin1.kml", [b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>".as_slice(), &placemark(b"M\xfcnchen")].concat()),
        ("declares_unknown.kml", [b"<?xml version=\"1.0\" encoding=\"x-no-such-thing\"?>".as_slice(), &placemark(b"a")].concat()),
        ("declares_utf16_no_bom.kml", [b"<?xml version=\"1.0\" encoding=\"UTF-16\"?>".as_slice(), &placemark(b"a")].concat()),
        ("bom_utf16_content_utf8.kml", [b"\xff\xfe".as_slice(), &placemark(b"a")].concat()),
        ("utf8_bom_declares_latin1.kml", [b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".as_slice(), &placemark(b"a")].concat()),
        ("not_xml.kml", b"This is not XML at all, just a sentence.\n".to_vec()),
        ("json.kml", br#"{"type": "FeatureCollection", "features": []}"#.to_vec()),
        ("png.kml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec()),
        ("empty.kml", Vec::new()),
        ("zip_garbage.kmz", b"PK\x03\x04garbage that is not a zip".to_vec()),
        ("only_nuls.kml", vec![0; 4096]),
    ];
    let runs = convert_each(&env, &files);
    let outcome: Vec<String> = files
        .iter()
        .zip(&runs)
        .map(|((name, _), run)| format!("{name}: {:?}", run.code))
        .collect();
    eprintln!("{}", outcome.join("\n"));
    // Bytes invalid in the encoding, NULs and control characters, non-XML: the file fails.
    for (i, (name, _)) in files.iter().enumerate() {
        if !name.starts_with("declares_")
            && !name.starts_with("bom_")
            && !name.starts_with("utf8_bom")
        {
            assert_code(&runs[i], 1);
        }
    }
}

#[test]
fn a_kmz_bomb_is_bounded_in_memory_and_stoppable() {
    use flate2::{write::DeflateEncoder, Compression};
    const UNIT: usize = 1 << 20;
    const UNITS: usize = 3000;
    let env = TestEnv::new();
    // Deflate blocks that end on a byte boundary (sync flush) can be concatenated, and a unit
    // of spaces compressed on its own only refers to itself: repeating it 3000 times makes a
    // ~3 MB archive that inflates to 3 GB.
    let deflate = |data: &[u8]| {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.flush().unwrap();
        let mut out = e.get_ref().clone();
        // `flush` ends with a sync marker: an empty stored block, byte-aligned.
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        std::mem::take(&mut out)
    };
    let prefix = format!("{KML_OPEN}<Placemark><name>bomb</name><description>");
    let mut stream = deflate(prefix.as_bytes());
    let unit = deflate(&vec![b' '; UNIT]);
    for _ in 0..UNITS {
        stream.extend_from_slice(&unit);
    }
    stream.extend_from_slice(&[0x03, 0x00]); // final, empty, fixed-Huffman block
    let size = (prefix.len() + UNIT * UNITS) as u32;
    env.write(
        "bomb.kmz",
        zip_one("doc.kml", 8, &stream, 0xdead_beef, size),
    );
    let child = env
        .command()
        .args(["-o", "out", "bomb.kmz"])
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    let (run, peak, stopped) = watch(child, Duration::from_secs(15), false);
    eprintln!("bomb: peak {peak} KiB, stopped by the test: {stopped}\n{run}");
    assert!(peak < 100 * 1024, "peak memory {peak} KiB");
    // Windows has no SIGTERM to send: the test's stop is TerminateProcess, a `kill -9`, which
    // leaves the hidden temporary for the next run to remove, but never a CSV.
    let killed = stopped && cfg!(windows);
    let stopped_code = if cfg!(windows) { 1 } else { 143 };
    assert_eq!(
        run.code,
        Some(if stopped { stopped_code } else { 1 }),
        "{run}"
    );
    assert!(env.files_ending(".csv").is_empty());
    if !killed {
        assert!(env.temporaries().is_empty(), "{:?}", env.files());
    }
    record("attack_files", 1);
}

/// A zip archive of one entry, written by hand so that the sizes and CRC can be anything.
fn zip_one(name: &str, method: u16, data: &[u8], crc: u32, size: u32) -> Vec<u8> {
    let mut z = Vec::new();
    let n = name.len() as u16;
    let c = data.len() as u32;
    let le16 = |z: &mut Vec<u8>, v: u16| z.extend_from_slice(&v.to_le_bytes());
    let le32 = |z: &mut Vec<u8>, v: u32| z.extend_from_slice(&v.to_le_bytes());
    le32(&mut z, 0x0403_4b50);
    for v in [20, 0, method, 0, 0] {
        le16(&mut z, v);
    }
    for v in [crc, c, size] {
        le32(&mut z, v);
    }
    le16(&mut z, n);
    le16(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(data);
    let central = z.len() as u32;
    le32(&mut z, 0x0201_4b50);
    for v in [20, 20, 0, method, 0, 0] {
        le16(&mut z, v);
    }
    for v in [crc, c, size] {
        le32(&mut z, v);
    }
    for v in [n, 0, 0, 0, 0] {
        le16(&mut z, v);
    }
    le32(&mut z, 0);
    le32(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    let central_len = z.len() as u32 - central;
    le32(&mut z, 0x0605_4b50);
    for v in [0, 0, 1, 1] {
        le16(&mut z, v);
    }
    le32(&mut z, central_len);
    le32(&mut z, central);
    le16(&mut z, 0);
    z
}

#[test]
fn kmz_entry_names_that_climb_out_are_never_extracted() {
    let env = TestEnv::new();
    let mut kmz = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for name in [
        "../../evil.kml",
        "../doc.kml",
        "/abs/evil.kml",
        "a/../../../x.kml",
    ] {
        kmz.start_file(name, stored).unwrap();
        kmz.write_all(POINT_KML.as_bytes()).unwrap();
    }
    // Run three folders deep inside the test's own root, so that every name that climbs stays
    // inside it: counting the shared temporary folder instead failed whenever anything else
    // (another test, another program) made a file there meanwhile.
    env.write("a/b/c/in/x.kmz", kmz.finish().unwrap().into_inner());
    let output = env
        .command()
        .current_dir(env.path("a/b/c"))
        .args(["-o", "out", "in/x.kmz"])
        .output_retrying()
        .expect("start kml2csv");
    let run = common::run_of(output);
    assert_code(&run, 0);
    assert_eq!(env.files(), ["a/b/c/in/x.kmz", "a/b/c/out/x.csv"], "{run}");
    assert!(!Path::new("/abs/evil.kml").exists());
    record("attack_files", 1);
}

// See: glob panicked (`Option::unwrap()` on `None`, exit 101, nothing converted) on any
// pattern that lists a folder holding a file name that is not UTF-8.
#[test]
#[cfg_attr(
    windows,
    ignore = "Windows file names are UTF-16: a name that is not Unicode cannot be made there"
)]
fn a_pattern_over_a_folder_with_a_non_utf8_name_does_not_panic() {
    #[cfg(unix)]
    {
        let env = TestEnv::new();
        env.write("in/a.kml", POINT_KML);
        env.write("in/.hidden.kml", POINT_KML);
        env.write("in/.dot/b.kml", POINT_KML);
        fs::write(
            env.path("in").join(OsStr::from_bytes(b"\xff.kml")),
            POINT_KML,
        )
        .unwrap();
        let run = env.run(&["-o", "out", "in/**/*.kml"]);
        assert_code(&run, 0);
        assert_clean_stderr(&run);
        // See: issue 17, item 5: the name that is not UTF-8 was dropped without a word.
        assert_eq!(
            env.files_ending(".csv"),
            ["out/a.csv", "out/\u{FFFD}.csv"],
            "hidden entries stay unmatched, the others are all converted"
        );
        assert!(env
            .path("out")
            .join(OsStr::from_bytes(b"\xff.csv"))
            .is_file());
        // A literal dot in the pattern still asks for hidden entries.
        let run = env.run(&["-o", "dots", "in/.*.kml", "in/.dot/*.kml"]);
        assert_code(&run, 0);
        assert_eq!(
            env.files_ending(".csv")
                .iter()
                .filter(|f| f.starts_with("dots/"))
                .collect::<Vec<_>>(),
            ["dots/.hidden.csv", "dots/b.csv"],
            "{run}"
        );
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows refuses most of these names (control characters, a backslash, bytes that are not Unicode)"
)]
fn hostile_file_names_are_converted_and_stay_inside_out() {
    #[cfg(unix)]
    {
        let env = TestEnv::new();
        let names: Vec<OsString> = vec![
            "with space.kml".into(),
            "new\nline.kml".into(),
            OsString::from_vec(b"latin1-\xe9\xff.kml".to_vec()),
            "-dash.kml".into(),
            "--force.kml".into(),
            "glob*[a]?.kml".into(),
            "quote\"'$(echo x).kml".into(),
        ];
        for name in &names {
            fs::create_dir_all(env.path("in")).unwrap();
            fs::write(env.path("in").join(name), POINT_KML).unwrap();
        }
        let mut command = env.command();
        command.args(["-o", "out", "--"]);
        for name in &names {
            command.arg(Path::new("in").join(name));
        }
        let run = common::run_of(command.output_retrying().unwrap());
        assert_code(&run, 0);
        for name in &names {
            let csv = env.path("out").join(Path::new(name).with_extension("csv"));
            assert_eq!(
                fs::read_to_string(&csv).unwrap(),
                format!("{HEADER}{POINT_ROW}"),
                "{csv:?}"
            );
        }
        // The folder as input, a pattern, and patterns that climb with `..`.
        for (args, code) in [
            (vec!["-o", "out2", "in"], 0),
            (vec!["-o", "out3", "in/*.kml"], 0),
            (vec!["-o", "out4", "in/../in/*.kml"], 0),
            (vec!["-o", "out5", "in/*/../../*.kml"], 1),
            (vec!["-o", "out6", "./in/./*"], 0),
        ] {
            let run = env.run(&args);
            assert_code(&run, code);
            assert_clean_stderr(&run);
        }
        // Nothing was written but inputs and what lies below the --out folders.
        for f in env.files() {
            assert!(
                f.starts_with("in/") || f.starts_with("out"),
                "{f:?} written outside --out"
            );
        }
        let dash = env.run(&["-o", "out7", "in/-dash.kml", "./in/--force.kml"]);
        assert_code(&dash, 0);
        record("attack_files", names.len() as u64);
    }
}

#[test]
fn names_that_look_like_formulas_and_numbers_stay_verbatim() {
    let env = TestEnv::new();
    let names = [
        "=1+2",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "=HYPERLINK(\"http://x\")",
    ];
    let mut kml = format!("{KML_OPEN}<Document>");
    for name in names {
        let escaped = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        kml.push_str(&format!(
            "<Placemark><name>{escaped}</name><Point><coordinates>-1.50,+2.25,-0</coordinates></Point></Placemark>"
        ));
    }
    kml.push_str("</Document></kml>");
    env.write("f.kml", kml);
    let run = env.run(&["f.kml"]);
    assert_code(&run, 0);
    let mut reader = csv::Reader::from_path(env.path("f.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), names.len());
    for (row, name) in rows.iter().zip(names) {
        assert_eq!(&row[1], name);
        // Numbers in canonical text: the `+` goes, the `-` (also of `-0`) stays.
        assert_eq!((&row[6], &row[7], &row[8]), ("-1.50", "2.25", "-0"));
    }
    let run = env.run(&["f.kml", "--numbers", "verbatim", "--out", "verbatim"]);
    assert_code(&run, 0);
    let mut reader = csv::Reader::from_path(env.path("verbatim/f.csv")).unwrap();
    for row in reader.records().map(|r| r.unwrap()) {
        assert_eq!((&row[6], &row[7], &row[8]), ("-1.50", "+2.25", "-0"));
    }
    record("attack_files", 1);
}

/// Stream `head`, then `size` bytes of `fill`, then `tail` into a FIFO that kml2csv reads,
/// and return its peak memory. Nothing is stored on disk.
#[cfg(unix)]
fn stream_through_fifo(head: &str, fill: u8, size: u64, tail: &str) -> (Run, u64) {
    stream_pattern_through_fifo(&["-o", "out"], head, &[fill], size, tail)
}

/// [`stream_through_fifo`] with `args` before the input and `size` bytes of `pattern`
/// repeated (a whole number of times if `size` is a multiple of its length).
#[cfg(unix)]
fn stream_pattern_through_fifo(
    args: &[&str],
    head: &str,
    pattern: &[u8],
    size: u64,
    tail: &str,
) -> (Run, u64) {
    let env = TestEnv::new();
    let fifo = env.path("stream.kml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let mut writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let child = env
        .command()
        .args(args)
        .arg("stream.kml")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let chunk = pattern.repeat(((1 << 20) / pattern.len()).max(1));
    let feeder = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n as u64;
        }
        let _ = writer.write_all(tail.as_bytes());
    });
    let (run, peak, _) = watch(child, Duration::from_secs(600), true);
    // See: a run that stops early (a tag over the reader's limit) leaves the feeder blocked on
    // a full FIFO it also holds open for reading. Drain it from a read end of our own, opened
    // without blocking, until the feeder is done.
    if !feeder.is_finished() {
        use std::os::unix::fs::OpenOptionsExt;
        let mut drain = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut sink = vec![0u8; 1 << 20];
        while !feeder.is_finished() {
            if matches!(drain.read(&mut sink), Ok(0) | Err(_)) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    feeder.join().unwrap();
    eprintln!("peak {peak} KiB\n{run}");
    record("attack_files", 1);
    (run, peak)
}

#[cfg(unix)]
const GIB: u64 = 1 << 30;

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_text_element_streams_in_small_memory() {
    #[cfg(unix)]
    {
        let (run, peak) = stream_through_fifo(
            &format!("{KML_OPEN}<Placemark><name>n</name><description>"),
            b'x',
            GIB,
            "</description><Point><coordinates>1,2</coordinates></Point></Placemark></kml>",
        );
        assert_code(&run, 0);
        assert!(peak < 64 * 1024, "peak memory {peak} KiB");
        let (run, peak) = stream_through_fifo(
            &format!("{KML_OPEN}<Placemark><name>"),
            b'n',
            GIB,
            "</name><Point><coordinates>1,2</coordinates></Point></Placemark></kml>",
        );
        assert!(matches!(run.code, Some(0 | 1)), "{run}");
        assert!(peak < 64 * 1024, "a 1 GB <name>: peak memory {peak} KiB");
    }
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_element_name_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        let (run, peak) = stream_through_fifo(&format!("{KML_OPEN}<P"), b'a', GIB, "/></kml>");
        assert!(matches!(run.code, Some(0 | 1)), "{run}");
        assert!(
            peak < 64 * 1024,
            "a 1 GB element name: peak memory {peak} KiB"
        );
    }
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_attribute_value_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        let (run, peak) = stream_through_fifo(
            &format!("{KML_OPEN}<Placemark id=\""),
            b'a',
            GIB,
            "\"><Point><coordinates>1,2</coordinates></Point></Placemark></kml>",
        );
        assert!(matches!(run.code, Some(0 | 1)), "{run}");
        assert!(
            peak < 64 * 1024,
            "a 1 GB attribute value: peak memory {peak} KiB"
        );
    }
}

/// Stream `head`, 1 GB of `fill`, `tail` inside a Placemark that also has a point, and check
/// the run ends (converted or failed) in small memory.
#[cfg(unix)]
fn bounded_1gb(what: &str, head: &str, fill: u8, tail: &str) {
    let (run, peak) = stream_through_fifo(
        &format!("{KML_OPEN}<Placemark>{head}"),
        fill,
        GIB,
        &format!("{tail}<Point><coordinates>1,2</coordinates></Point></Placemark></kml>"),
    );
    assert!(matches!(run.code, Some(0 | 1)), "{run}");
    assert!(peak < 64 * 1024, "a 1 GB {what}: peak memory {peak} KiB");
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_comment_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        bounded_1gb("comment", "<!--", b'c', "-->");
    }
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_cdata_section_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        bounded_1gb(
            "CDATA section",
            "<description><![CDATA[",
            b'c',
            "]]></description>",
        );
    }
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_processing_instruction_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        bounded_1gb("processing instruction", "<?pi ", b'p', "?>");
    }
}

#[test]
#[cfg_attr(unix, ignore = "streams 1 GB; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_1gb_coordinate_value_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        let (run, peak) = stream_through_fifo(
            &format!("{KML_OPEN}<Placemark><LineString><coordinates>3,4 "),
            b'1',
            GIB,
            ",2 5,6</coordinates></LineString></Placemark></kml>",
        );
        assert_code(&run, 0);
        assert!(
            peak < 64 * 1024,
            "a 1 GB coordinate value: peak memory {peak} KiB"
        );
    }
}

/// See: issue 17 (3, 0): with `--rows features` or `--attributes`, one LineString of 2 M
/// vertices took 450 MB, and 10 M made an allocation fail and abort the whole batch. The
/// geometry of a feature now waits in a temporary file past a few megabytes.
#[test]
#[cfg_attr(unix, ignore = "streams 4 M vertices; run by .ci/run in release")]
#[cfg_attr(
    windows,
    ignore = "streams through a FIFO, which Windows does not have"
)]
fn a_feature_of_millions_of_vertices_is_bounded_in_memory() {
    #[cfg(unix)]
    {
        let tuples: u64 = 4_000_000;
        let tuple = b"8.54321,47.12345 ";
        for args in [
            &["--rows", "features", "--out", "-"][..],
            &["--attributes", "--out", "-"][..],
            &["--rows", "features", "--attributes", "--out", "-"][..],
        ] {
            let (run, peak) = stream_pattern_through_fifo(
                args,
                &format!("{KML_OPEN}<Placemark><LineString><coordinates>"),
                tuple,
                tuples * tuple.len() as u64,
                "</coordinates></LineString><name>late</name></Placemark></kml>",
            );
            assert_code(&run, 0);
            assert!(peak < 64 * 1024, "{args:?}: peak memory {peak} KiB");
        }
    }
}

/// See: issue 17 (3, b): with `--attributes`, one Placemark holding 300 ExtendedData values of
/// 1 MiB each took 929 MB. A feature's descriptive data is now capped (16 MiB), and past the
/// cap the file fails with a message that says so; the other files still convert.
#[test]
fn a_feature_with_too_much_field_text_fails_with_a_clear_error() {
    let env = TestEnv::new();
    let value = "v".repeat(1 << 20);
    let mut kml = format!("{KML_OPEN}<Placemark><ExtendedData>");
    for i in 0..20 {
        kml.push_str(&format!(
            "<Data name=\"f{i}\"><value>{value}</value></Data>"
        ));
    }
    kml.push_str("</ExtendedData><Point><coordinates>1,2</coordinates></Point></Placemark></kml>");
    env.write("fat.kml", &kml);
    env.write("good.kml", POINT_KML);
    let run = env.run(&["-a", "-o", "out", "fat.kml", "good.kml"]);
    assert_code(&run, 1);
    assert!(
        run.stderr.contains("fat.kml:1:")
            && run
                .stderr
                .contains("feature 0 carries more than 16 MiB of descriptive data"),
        "{run}"
    );
    assert!(env.exists("out/good.csv") && !env.exists("out/fat.csv"));
    // Without --attributes nothing of it is kept, and the file converts.
    let run = env.run(&["-o", "plain", "fat.kml"]);
    assert_code(&run, 0);
    // Nor do hundreds of thousands of empty fields pass for no data at all.
    let mut kml = format!("{KML_OPEN}<Placemark><ExtendedData>");
    for i in 0..300_000 {
        kml.push_str(&format!("<Data name=\"f{i}\"/>"));
    }
    kml.push_str("</ExtendedData></Placemark></kml>");
    env.write("many.kml", &kml);
    let run = env.run(&["-a", "-o", "out", "many.kml"]);
    assert_code(&run, 1);
    assert!(
        run.stderr
            .contains("feature 0 carries more than 16 MiB of descriptive data"),
        "{run}"
    );
    record("attack_files", 1);
}

/// See: issue 17 (4): a CSV whose columns are thousands of sparse ExtendedData fields (a
/// distinct name per Placemark) is mostly empty fields; the user is warned.
#[test]
fn thousands_of_sparse_fields_are_warned_about() {
    let env = TestEnv::new();
    let mut kml = format!("{KML_OPEN}<Document>");
    for i in 0..1200 {
        kml.push_str(&format!(
            "<Placemark><ExtendedData><Data name=\"field{i}\"><value>{i}</value></Data>\
             </ExtendedData><Point><coordinates>1,2</coordinates></Point></Placemark>"
        ));
    }
    kml.push_str("</Document></kml>");
    env.write("sparse.kml", &kml);
    let run = env.run(&["-a", "sparse.kml"]);
    assert_code(&run, 0);
    assert!(
        run.stderr
            .contains("sparse.kml: warning: 1200 ExtendedData fields make 1200 columns"),
        "{run}"
    );
    let run = env.run(&["-a", "sparse.kml", "--merge", "all.csv"]);
    assert_code(&run, 0);
    assert!(
        run.stderr
            .contains("warning: 1200 ExtendedData fields make 1200 columns"),
        "{run}"
    );
    // Naming the fields wanted is the way out, and quiet.
    let run = env.run(&["-a", "sparse.kml", "--force", "--columns", "name,field7"]);
    assert_code(&run, 0);
    assert!(!run.stderr.contains("warning:"), "{run}");
}

/// Seconds `args` take on a Placemark with `n` distinct ExtendedData fields.
fn seconds_for_fields(n: usize, args: &[&str]) -> f64 {
    let env = TestEnv::new();
    let mut kml = format!("{KML_OPEN}<Placemark><ExtendedData>");
    for i in 0..n {
        kml.push_str(&format!("<Data name=\"f{i}\"><value>{i}</value></Data>"));
    }
    kml.push_str("</ExtendedData><Point><coordinates>1,2</coordinates></Point></Placemark></kml>");
    env.write("wide.kml", &kml);
    let started = Instant::now();
    let run = env.run(&[&["wide.kml"][..], args].concat());
    assert_code(&run, 0);
    started.elapsed().as_secs_f64()
}

/// See: issue 17 (4): 100 000 distinct fields in one Placemark took 50 s (74 s with
/// `--merge`): each field was looked for among all the others. Eight times the fields must
/// cost about eight times the time, not sixty-four: measured in one run, with a generous
/// margin for a loaded machine (25 000 and 200 000 fields took 0.07 s and 1.0 s here).
#[test]
#[ignore = "times two runs against each other; run by .ci/run in release"]
fn distinct_fields_cost_linear_time() {
    for args in [&["-a", "--out", "-"][..], &["-a", "--merge", "-"][..]] {
        // The best of two runs each: a loaded machine only ever makes a run slower.
        let best = |n| seconds_for_fields(n, args).min(seconds_for_fields(n, args));
        let small = best(20_000);
        let large = best(160_000);
        eprintln!("{args:?}: 20 000 fields {small:.3} s, 160 000 fields {large:.3} s");
        // Linear is 8 times (a little more: the large run's tables outgrow the caches),
        // quadratic 64 times.
        assert!(
            large < 36.0 * small.max(0.05),
            "{args:?}: {small:.3} s then {large:.3} s"
        );
    }
}

/// A zip whose zip64 end record claims `entries` entries (and holds none).
fn zip_claiming_entries(entries: u64) -> Vec<u8> {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&[0; 26]);
    let record_at = zip.len() as u64;
    zip.extend_from_slice(b"PK\x06\x06");
    zip.extend_from_slice(&44u64.to_le_bytes());
    zip.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    zip.extend_from_slice(&entries.to_le_bytes());
    zip.extend_from_slice(&entries.to_le_bytes());
    zip.extend_from_slice(&0u64.to_le_bytes());
    zip.extend_from_slice(&record_at.to_le_bytes());
    zip.extend_from_slice(b"PK\x06\x07\0\0\0\0");
    zip.extend_from_slice(&record_at.to_le_bytes());
    zip.extend_from_slice(&1u32.to_le_bytes());
    zip.extend_from_slice(
        b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0",
    );
    zip
}

/// See: issue 17 (3, a): a KMZ whose central directory has 4 M entries (a 200 MB file) took
/// 1 GB, since the zip reader holds the whole directory. An archive that lists more than
/// 200 000 entries is refused before it is read, with a message that says why.
#[test]
fn a_kmz_listing_millions_of_entries_is_refused_before_it_is_read() {
    let runs = convert_each(
        &TestEnv::new(),
        &[("many.kmz", zip_claiming_entries(4_000_000))],
    );
    assert_code(&runs[0], 1);
    assert!(
        runs[0].stderr.contains(
            "many.kmz: bad KMZ: the archive lists 4000000 entries, more than the 200000 kml2csv reads"
        ),
        "{}",
        runs[0]
    );
}

/// See: issue 17 (12): an empty zip, a self-extracting archive or a gzip'd `.kml` was reported
/// as "control character U+0005" (or U+001F). A gzip'd document is now read through its
/// decompression, and the others are named for what they are.
#[test]
fn files_that_are_not_kml_are_named_for_what_they_are() {
    use flate2::{write::GzEncoder, Compression};
    let env = TestEnv::new();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(POINT_KML.as_bytes()).unwrap();
    env.write("zipped.kml", gz.finish().unwrap());
    let run = env.run(&["zipped.kml", "--out", "-"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, format!("{HEADER}{POINT_ROW}"));

    let mut empty_zip = b"PK\x05\x06".to_vec();
    empty_zip.extend_from_slice(&[0; 18]);
    env.write("empty.kmz", empty_zip);
    env.write(
        "setup.kmz",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
    );
    for (name, what) in [
        (
            "empty.kmz",
            "bad KMZ: an empty zip archive: it holds no .kml document",
        ),
        (
            "setup.kmz",
            "not KML: a Windows program (a self-extracting archive? extract it first)",
        ),
    ] {
        let run = env.run(&[name, "--out", "-"]);
        assert_code(&run, 1);
        assert!(
            run.stderr.contains(&format!("kml2csv: {name}: {what}")),
            "{run}"
        );
        assert!(!run.stderr.contains("control character"), "{run}");
    }
}

/// See: issue 17 (3, c): with `--attributes` a pipe or device is copied to a temporary file to
/// be read twice, and that copy had no end: `/dev/zero` filled `$TMPDIR`. The copy is now
/// read as it is made and stops at the first error, which fails the input as usual.
#[test]
#[cfg_attr(windows, ignore = "reads /dev/zero, which Windows does not have")]
fn an_endless_invalid_pipe_is_not_copied_without_end() {
    let env = TestEnv::new();
    for (args, stdin) in [
        (&["-a", "/dev/zero", "--out", "-"][..], false),
        (&["-a", "-"][..], true),
        (&["-a", "--merge", "-", "-"][..], true),
    ] {
        let mut command = env.command();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin {
            command.stdin(fs::File::open("/dev/zero").unwrap());
        }
        let (run, peak, _) = watch(
            command.spawn_retrying().unwrap(),
            Duration::from_secs(60),
            true,
        );
        assert_code(&run, 1);
        assert!(
            run.stderr.contains("control character U+0000"),
            "{args:?}\n{run}"
        );
        assert!(peak < 64 * 1024, "{args:?}: peak memory {peak} KiB");
    }
    record("attack_files", 1);
}

/// See: issue 17 (3, c): the copy of a valid pipe is read once for its field names, and the
/// CSV is the same as from a file.
#[test]
fn a_pipe_with_attributes_converts_like_its_file() {
    let env = TestEnv::new();
    let kml = format!(
        "{KML_OPEN}<Placemark><name>A</name><ExtendedData><Data name=\"speed\"><value>3</value>\
         </Data></ExtendedData><Point><coordinates>1,2</coordinates></Point></Placemark></kml>"
    );
    env.write("a.kml", &kml);
    let from_file = env.run(&["-a", "a.kml", "--out", "-"]);
    assert_code(&from_file, 0);
    assert!(from_file.stdout.contains(",speed\n"), "{from_file}");
    let mut child = env
        .command()
        .args(["-a", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(kml.as_bytes())
        .unwrap();
    let run = common::run_of(child.wait_with_output().unwrap());
    assert_code(&run, 0);
    assert_eq!(run.stdout, from_file.stdout);
}

/// Wait for `child` (guarding against a hang only), killing it if it outlives `limit`.
#[cfg(unix)]
fn wait_or_kill(mut child: Child, limit: Duration) -> Option<Run> {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(common::run_of(child.wait_with_output().unwrap()))
}

/// See: issue 17 (8): SIGTERM was not answered while an input pipe was idle (`curl … |
/// kml2csv -` on a stalled network, a FIFO whose writer waits): the run ended only when the
/// writer closed. It now stops at once, with status 143.
#[test]
#[cfg_attr(
    windows,
    ignore = "sends SIGTERM and reads a FIFO, neither of which Windows has"
)]
fn sigterm_is_answered_while_an_input_pipe_is_idle() {
    #[cfg(unix)]
    {
        let env = TestEnv::new();
        let fifo = env.path("idle.kml");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Held open for writing, with half a document in it and nothing more coming.
        let mut writer = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        writer.write_all(KML_OPEN.as_bytes()).unwrap();
        for args in [
            &["-", "--out", "-"][..],
            &["-a", "-"][..],
            &["idle.kml", "--out", "-"][..],
            &["-a", "idle.kml", "--merge", "all.csv"][..],
        ] {
            let mut child = env
                .command()
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn_retrying()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(KML_OPEN.as_bytes()).unwrap();
            // Let it reach the read that waits for more.
            std::thread::sleep(Duration::from_millis(500));
            // SAFETY: our own, not yet reaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let run = wait_or_kill(child, Duration::from_secs(30))
                .unwrap_or_else(|| panic!("{args:?}: SIGTERM not answered while the pipe is idle"));
            drop(stdin);
            assert_code(&run, 143);
            assert_clean_stderr(&run);
        }
        drop(writer);
    }
}

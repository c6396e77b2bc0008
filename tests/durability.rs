//! What a power cut can do: an output that has its name must have its data on disk, and the
//! name itself must be on disk once the run says it converted the file.
//!
//! The test runs kml2csv under `strace` and checks, for every output, the order of the
//! system calls the README promises: the temporary's data is synced (`fsync`/`fdatasync` of
//! it, or a `syncfs`/`sync`) after its last write and before the rename (or the `linkat` of an
//! unnamed `O_TMPFILE`) that gives it its name, and its folder is synced after that; a folder
//! the run makes is synced into its parent. It checks the guarantee, not one way of providing
//! it, so syncing groups of files together still passes. Skipped, with a message, when strace
//! is missing or cannot trace here.

//!
//! strace is Linux only: elsewhere the tests are ignored, with the reason. Windows durability
//! (`FlushFileBuffers`, then `MoveFileExW` with `MOVEFILE_WRITE_THROUGH`) is checked by the
//! unit tests of `src/output/temp.rs`, which run under wine in CI.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use common::{long_line_kml, points_kml, record, TestEnv};

/// One system call from the trace: where it started and where it returned (line numbers), so
/// that calls of different threads are ordered safely.
#[derive(Debug, Clone)]
struct Call {
    /// The thread that made it.
    pid: String,
    name: String,
    args: Vec<String>,
    result: String,
    start: usize,
    end: usize,
}

/// Split `strace -f` output into calls, joining `<unfinished ...>` and `<... resumed>` halves.
fn parse_trace(log: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, (String, usize)> = HashMap::new();
    let mut calls = Vec::new();
    for (index, line) in log.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let (text, start) = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, (head.to_owned(), index));
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = tail.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(pid) {
                Some((head, start)) => (format!("{head}{tail}"), start),
                None => continue,
            }
        } else {
            (rest.to_owned(), index)
        };
        if let Some(mut call) = parse_call(&text, start, index) {
            call.pid = pid.to_owned();
            calls.push(call);
        }
    }
    calls
}

fn parse_call(text: &str, start: usize, end: usize) -> Option<Call> {
    let open = text.find('(')?;
    let name = text[..open].to_owned();
    // strace pads the ` = RESULT` to a column; the data of a write may contain ` = ` too.
    let equals = text.rfind(" = ")?;
    let result = text[equals + 3..].split_whitespace().next()?.to_owned();
    let close = text[..equals].rfind(')')?;
    Some(Call {
        pid: String::new(),
        name,
        args: split_args(&text[open + 1..close]),
        result,
        start,
        end,
    })
}

/// Top-level arguments; quoted strings are unescaped.
fn split_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars().peekable();
    let mut depth = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => current.push('\n'),
                            Some('t') => current.push('\t'),
                            Some(other) => current.push(other),
                            None => {}
                        },
                        c => current.push(c),
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                args.push(current.trim().to_owned());
                current.clear();
            }
            c => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_owned());
    }
    args
}

/// Lexically normalised absolute path of `path` as the traced process named it from `cwd`.
fn resolve(cwd: &Path, path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in cwd.join(path).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether `call` made a new descriptor for an open file (`dup*`, `fcntl(F_DUPFD*)`).
fn duplicates(call: &Call) -> bool {
    let made = call.result.parse::<i32>().is_ok_and(|fd| fd >= 0);
    let dup = call.name != "fcntl" || call.args.get(1).is_some_and(|c| c.starts_with("F_DUPFD"));
    made && dup
}

/// Check the durability order for every output in `outputs` (absolute paths); the problems
/// found, empty when all is well.
fn check_order(calls: &[Call], cwd: &Path, outputs: &[PathBuf]) -> Vec<String> {
    let mut fds: HashMap<String, PathBuf> = HashMap::new();
    // Where each fd's openat returned: strace may print a close that began before the fd
    // number was handed out again after that openat, and that close ends the old file.
    let mut opened: HashMap<String, usize> = HashMap::new();
    // Per path: line of the last write; fsync ends; creations.
    let mut last_write: HashMap<PathBuf, usize> = HashMap::new();
    let mut file_syncs: Vec<(PathBuf, usize, usize)> = Vec::new();
    let mut global_syncs: Vec<(usize, usize)> = Vec::new();
    let mut publishes: Vec<(PathBuf, PathBuf, usize, usize)> = Vec::new();
    let mut created: Vec<PathBuf> = Vec::new();
    // Folders the run made, with where their mkdir returned.
    let mut made: Vec<(PathBuf, usize)> = Vec::new();
    let arg_path = |call: &Call, fds: &HashMap<String, PathBuf>, dirfd: usize| {
        let dir = match call.args[dirfd].as_str() {
            "AT_FDCWD" => cwd.to_path_buf(),
            fd => fds.get(fd).cloned().unwrap_or_else(|| cwd.to_path_buf()),
        };
        resolve(&dir, &call.args[dirfd + 1])
    };
    for call in calls {
        let ok = call.result == "0";
        match call.name.as_str() {
            "openat" if call.result.parse::<i32>().is_ok_and(|fd| fd >= 0) => {
                let mut path = arg_path(call, &fds, 0);
                if call.args.get(2).is_some_and(|f| f.contains("O_TMPFILE")) {
                    // A file without a name, inside the folder opened: its own identity, or its
                    // sync would pass for the folder's.
                    path = path.join(format!("<unnamed, opened at line {}>", call.end));
                }
                if call.args.get(2).is_some_and(|f| f.contains("O_CREAT")) {
                    created.push(path.clone());
                }
                fds.insert(call.result.clone(), path);
                opened.insert(call.result.clone(), call.end);
            }
            "close" if opened.get(&call.args[0]).is_none_or(|&at| call.start > at) => {
                fds.remove(&call.args[0]);
            }
            // A duplicate (the thread that writes a big CSV past the page cache has one) is the
            // same file.
            "dup" | "dup2" | "dup3" | "fcntl" if duplicates(call) => {
                if let Some(path) = fds.get(&call.args[0]).cloned() {
                    fds.insert(call.result.clone(), path);
                    opened.insert(call.result.clone(), call.end);
                }
            }
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
                if let Some(path) = fds.get(&call.args[0]) {
                    last_write.insert(path.clone(), call.end);
                }
            }
            "fsync" | "fdatasync" if ok => {
                if let Some(path) = fds.get(&call.args[0]) {
                    file_syncs.push((path.clone(), call.start, call.end));
                }
            }
            "syncfs" | "sync" if ok => global_syncs.push((call.start, call.end)),
            "mkdir" if ok => made.push((resolve(cwd, &call.args[0]), call.end)),
            "mkdirat" if ok => made.push((arg_path(call, &fds, 0), call.end)),
            "rename" | "link" if ok => publishes.push((
                resolve(cwd, &call.args[0]),
                resolve(cwd, &call.args[1]),
                call.start,
                call.end,
            )),
            "renameat" | "renameat2" | "linkat" if ok => {
                // `linkat` of an unnamed file names it through its descriptor: the descriptor
                // itself (AT_EMPTY_PATH) or its magic link in /proc.
                let empty_path = call
                    .args
                    .last()
                    .is_some_and(|f| f.contains("AT_EMPTY_PATH"));
                let from = match call.args[1].strip_prefix("/proc/self/fd/") {
                    _ if empty_path => fds.get(&call.args[0]).cloned().unwrap_or_default(),
                    Some(fd) => fds.get(fd).cloned().unwrap_or_default(),
                    None => arg_path(call, &fds, 0),
                };
                publishes.push((from, arg_path(call, &fds, 2), call.start, call.end));
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (folder, end) in &made {
        let parent = folder.parent().unwrap();
        let synced = file_syncs.iter().any(|(p, s, _)| p == parent && s > end)
            || global_syncs.iter().any(|(s, _)| s > end);
        if !synced {
            problems.push(format!(
                "folder {} was made but its parent not synced after",
                folder.display()
            ));
        }
    }
    for output in outputs {
        if created.contains(output) {
            problems.push(format!(
                "{} was written under its own name",
                output.display()
            ));
        }
        let Some((temp, _, start, end)) = publishes.iter().rev().find(|p| &p.1 == output) else {
            problems.push(format!(
                "{}: no rename or link gives it its name",
                output.display()
            ));
            continue;
        };
        let written = last_write.get(temp).copied().unwrap_or(0);
        let data_synced = file_syncs
            .iter()
            .any(|(p, s, e)| p == temp && *s > written && e < start)
            || global_syncs.iter().any(|(s, e)| *s > written && e < start);
        if !data_synced {
            problems.push(format!(
                "{}: the data of {} is not synced between its last write and the rename",
                output.display(),
                temp.display()
            ));
        }
        let dir = output.parent().unwrap();
        let dir_synced = file_syncs.iter().any(|(p, s, _)| p == dir && s > end)
            || global_syncs.iter().any(|(s, _)| s > end);
        if !dir_synced {
            problems.push(format!(
                "{}: its folder is not synced after the rename",
                output.display()
            ));
        }
    }
    problems
}

/// Whether strace can be run; a test that needs it says it is skipped when not.
#[cfg(target_os = "linux")]
fn strace_or_skip() -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok();
    if !found {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
    }
    found
}

const TRACED: &str = "openat,close,dup,dup2,dup3,fcntl,write,pwrite64,writev,pwritev,pwritev2,\
     fsync,fdatasync,syncfs,sync,rename,renameat,renameat2,link,linkat,unlink,unlinkat,mkdir,mkdirat";

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn every_output_is_synced_before_its_rename_and_its_folder_after() {
    #[cfg(target_os = "linux")]
    {
        if !strace_or_skip() {
            return;
        }
        let env = TestEnv::new();
        for i in 0..12 {
            let folder = ["a", "b"][i % 2];
            env.write(
                &format!("in/{folder}/f{i:02}.kml"),
                points_kml(&format!("f{i}"), i + 1),
            );
        }
        env.write("in/a/broken.kml", "<kml><Placemark>");
        // A CSV big enough to be written past the page cache where that is done.
        env.write("in/b/long.kml", long_line_kml(250_000));
        let cwd = fs::canonicalize(env.root()).unwrap();
        // At -j1 on a machine of more than one core, each small CSV is converted into memory
        // and written into its temporary by another thread (unnamed on a first run, named
        // under --force): the order must hold there too.
        for (scenario, (name, jobs, extra)) in [
            ("first run", "2", &[][..]),
            ("first run, -j1", "1", &[][..]),
            // broken.kml failed before: --retry-failed makes it fail again rather than be
            // reported from its record.
            (
                "--force over existing outputs",
                "2",
                &["--force", "--retry-failed"][..],
            ),
            (
                "--force over existing outputs, -j1",
                "1",
                &["--force", "--retry-failed"][..],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            if name.starts_with("first run") {
                let _ = fs::remove_dir_all(env.path("out"));
            }
            let log = env.path(&format!("trace-{scenario}.log"));
            let mut command = Command::new("strace");
            command
                .current_dir(env.root())
                .args(["-f", "-qq", "-s", "4096", "-e"])
                .arg(format!("trace={TRACED}"))
                .arg("-o")
                .arg(&log)
                .arg(env!("CARGO_BIN_EXE_kml2csv"))
                .args(["-j", jobs, "-o", "out", "in/**/*.kml"]);
            command.args(extra);
            let run = common::run_of(command.output().unwrap());
            let trace = fs::read_to_string(&log).unwrap_or_default();
            if trace.is_empty() && run.code != Some(1) {
                eprintln!("SKIPPED: strace cannot trace here\n{run}");
                return;
            }
            assert_eq!(
                run.code,
                Some(1),
                "{name}: broken.kml fails, the others convert\n{run}"
            );
            // The record of broken.kml's failure is published like a CSV (issue 13).
            let outputs: Vec<PathBuf> = env
                .files_ending(".csv")
                .iter()
                .chain(&env.files_ending(".csv.failed"))
                .map(|f| cwd.join(f))
                .collect();
            assert_eq!(outputs.len(), 14, "{name}\n{run}");
            let problems = check_order(&parse_trace(&trace), &cwd, &outputs);
            assert!(
                problems.is_empty(),
                "{name}:\n{}\n--- trace\n{trace}",
                problems.join("\n")
            );
        }
        record("durability_outputs_checked", 56);
    }
}

/// One input per invocation (the Makefile recipe) is converted on the main thread, without the
/// committer: its CSV, its record of a failure and a CSV that `--force` replaces must still be
/// synced before they are named and their folders after, and no thread may be started for it.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn a_lone_input_is_made_durable_on_the_main_thread() {
    #[cfg(target_os = "linux")]
    {
        if Command::new("strace").arg("-V").output().is_err() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "strace is missing under CI"
            );
            eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
            return;
        }
        let env = TestEnv::new();
        env.write("in/a.kml", points_kml("a", 20));
        env.write("in/broken.kml", "<kml><Placemark>");
        let cwd = fs::canonicalize(env.root()).unwrap();
        for (scenario, args, code, output) in [
            // Into folders the run makes.
            ("first", &["in/a.kml"][..], 0, "out/new/a.csv"),
            ("forced", &["in/a.kml", "--force"][..], 0, "out/new/a.csv"),
            (
                "broken",
                &["in/broken.kml"][..],
                1,
                "out/new/broken.csv.failed",
            ),
        ] {
            let log = env.path(&format!("trace-lone-{scenario}.log"));
            let run = common::run_of(
                Command::new("strace")
                    .current_dir(env.root())
                    .args(["-f", "-qq", "-s", "4096", "-e"])
                    .arg(format!("trace={TRACED},clone,clone3"))
                    .arg("-o")
                    .arg(&log)
                    .arg(env!("CARGO_BIN_EXE_kml2csv"))
                    .args(["-o", "out/new"])
                    .args(args)
                    .output()
                    .unwrap(),
            );
            let trace = fs::read_to_string(&log).unwrap_or_default();
            if trace.is_empty() {
                eprintln!("SKIPPED: strace cannot trace here\n{run}");
                return;
            }
            assert_eq!(run.code, Some(code), "{scenario}\n{run}");
            let calls = parse_trace(&trace);
            let clones = calls.iter().filter(|c| c.name.starts_with("clone")).count();
            assert_eq!(clones, 0, "{scenario}: threads started\n{trace}");
            let problems = check_order(&calls, &cwd, &[cwd.join(output)]);
            assert!(
                problems.is_empty(),
                "{scenario}:\n{}\n--- trace\n{trace}",
                problems.join("\n")
            );
        }
        assert_eq!(env.read("out/new/a.csv").lines().count(), 21);
    }
}

/// See: issue 17, item 9: every folder the run creates — below `--out`, for `--merge` and for
/// `--report` — is synced into its parent, and the merged CSV and the report are synced before
/// they are named and their folders after.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn folders_made_for_the_merged_csv_and_the_report_are_synced_into_their_parents() {
    #[cfg(target_os = "linux")]
    {
        if !strace_or_skip() {
            return;
        }
        let env = TestEnv::new();
        env.write("in/a.kml", points_kml("a", 3));
        env.write("in/b.kml", points_kml("b", 2));
        let cwd = fs::canonicalize(env.root()).unwrap();
        let log = env.path("trace.log");
        let run = common::run_of(
            Command::new("strace")
                .current_dir(env.root())
                .args(["-f", "-qq", "-s", "4096", "-e"])
                .arg(format!("trace={TRACED}"))
                .arg("-o")
                .arg(&log)
                .arg(env!("CARGO_BIN_EXE_kml2csv"))
                .args([
                    "in/*.kml",
                    "--merge",
                    "m/deep/all.csv",
                    "--report",
                    "r/deep/run.json",
                ])
                .output()
                .unwrap(),
        );
        let trace = fs::read_to_string(&log).unwrap_or_default();
        if trace.is_empty() && run.code != Some(0) {
            eprintln!("SKIPPED: strace cannot trace here\n{run}");
            return;
        }
        assert_eq!(run.code, Some(0), "{run}");
        let calls = parse_trace(&trace);
        let made = calls
            .iter()
            .filter(|c| c.name.starts_with("mkdir") && c.result == "0")
            .count();
        assert_eq!(made, 4, "m, m/deep, r, r/deep\n{trace}");
        let outputs = [cwd.join("m/deep/all.csv"), cwd.join("r/deep/run.json")];
        let problems = check_order(&calls, &cwd, &outputs);
        assert!(
            problems.is_empty(),
            "{}\n--- trace\n{trace}",
            problems.join("\n")
        );
    }
}

/// A big CSV reaches the disk while it is written, so that its `fsync` does not wait for all of
/// it at the end (a speed matter, checked here because no timing shows it reliably). On ext4 and
/// XFS it is written past the page cache (`O_DIRECT`) from 8 MiB on; elsewhere its write-back
/// is started stretch by stretch.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn a_big_output_reaches_the_disk_while_it_is_written() {
    #[cfg(target_os = "linux")]
    {
        if !strace_or_skip() {
            return;
        }
        let env = TestEnv::new();
        // About 20 MB of CSV: more than two stretches of write-back, or ten direct writes.
        env.write("in/long.kml", long_line_kml(400_000));
        fs::create_dir_all(env.path("out")).unwrap();
        let log = env.path("trace.log");
        let run = common::run_of(
            Command::new("strace")
                .current_dir(env.root())
                .args([
                    "-f",
                    "-qq",
                    "-e",
                    "trace=sync_file_range,fsync,fdatasync,fcntl,pwrite64",
                    "-o",
                ])
                .arg(&log)
                .arg(env!("CARGO_BIN_EXE_kml2csv"))
                .args(["-o", "out", "in/long.kml"])
                .output()
                .unwrap(),
        );
        let trace = fs::read_to_string(&log).unwrap_or_default();
        if trace.is_empty() && run.code != Some(0) {
            eprintln!("SKIPPED: strace cannot trace here\n{run}");
            return;
        }
        assert_eq!(run.code, Some(0), "{run}");
        let calls = parse_trace(&trace);
        let fd = |c: &Call| c.args.first().cloned().unwrap_or_default();
        let synced: Vec<&Call> = calls.iter().filter(|c| c.name == "fsync").collect();
        let Some(last_sync) = synced.iter().map(|s| s.start).max() else {
            panic!("no fsync\n--- trace\n{trace}");
        };
        let started = calls
            .iter()
            .filter(|c| c.name == "sync_file_range")
            .filter(|c| synced.iter().any(|s| fd(s) == fd(c) && s.start > c.end))
            .count();
        let direct_on = calls.iter().any(|c| {
            c.name == "fcntl"
                && c.args.get(1).is_some_and(|a| a == "F_SETFL")
                && c.args.get(2).is_some_and(|a| a.contains("O_DIRECT"))
        });
        let written_direct = calls
            .iter()
            .filter(|c| c.name == "pwrite64" && c.end < last_sync)
            .count();
        let file_system = Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(env.path("out"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        // `stat` calls ext4 "ext2/ext3".
        if matches!(file_system.as_str(), "ext2/ext3" | "xfs") {
            assert!(
            direct_on && written_direct >= 5,
            "expected the CSV to be written past the page cache on {file_system}\n--- trace\n{trace}"
        );
        } else {
            assert!(
                started >= 2 || (direct_on && written_direct >= 5),
                "expected the write-back of the CSV to start before its fsync\n--- trace\n{trace}"
            );
        }
    }
}

/// The checker itself: it must catch a missing file sync, a sync before the last write, and a
/// missing folder sync, and accept a grouped `syncfs`.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "checks strace traces of Linux system calls, with Unix paths"
)]
fn the_order_checker_catches_what_it_should() {
    #[cfg(target_os = "linux")]
    {
        let cwd = Path::new("/w");
        let out = vec![PathBuf::from("/w/out/x.csv")];
        let check = |trace: &str| check_order(&parse_trace(trace), cwd, &out);
        let good = r#"1 openat(AT_FDCWD, "/w/out/.kml2csv-a.tmp", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3
1 write(3, "feature,name\n", 13) = 13
1 fsync(3 <unfinished ...>
2 openat(AT_FDCWD, "other", O_RDONLY) = 4
1 <... fsync resumed>) = 0
1 renameat2(AT_FDCWD, "/w/out/.kml2csv-a.tmp", AT_FDCWD, "out/x.csv", RENAME_NOREPLACE) = 0
1 openat(AT_FDCWD, "out", O_RDONLY|O_CLOEXEC) = 3
1 fsync(3) = 0
"#;
        assert_eq!(check(good), Vec::<String>::new());
        let no_file_sync = good
            .replace("1 fsync(3 <unfinished ...>\n", "")
            .replace("1 <... fsync resumed>) = 0\n", "");
        assert_eq!(check(&no_file_sync).len(), 1, "{no_file_sync}");
        let write_after_sync =
            good.replace("1 renameat2", "1 write(3, \"late\", 4) = 4\n1 renameat2");
        assert_eq!(check(&write_after_sync).len(), 1);
        let no_dir_sync = good.replace("1 fsync(3) = 0\n", "");
        assert_eq!(check(&no_dir_sync).len(), 1);
        let grouped = r#"1 openat(AT_FDCWD, "out/.kml2csv-a.tmp", O_RDWR|O_CREAT|O_EXCL, 0666) = 3
1 write(3, "x", 1) = 1
1 syncfs(3) = 0
1 rename("out/.kml2csv-a.tmp", "out/x.csv") = 0
1 syncfs(3) = 0
"#;
        assert_eq!(check(grouped), Vec::<String>::new());
        let direct = "1 openat(AT_FDCWD, \"out/x.csv\", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3\n";
        assert_eq!(check(direct).len(), 2);
        // A close that began before its fd number was reused (strace prints it late) does not
        // hide the folder sync made through the new fd.
        let late_close = good
        .replace("1 openat(AT_FDCWD, \"out\", O_RDONLY|O_CLOEXEC) = 3\n", "2 close(3 <unfinished ...>\n1 openat(AT_FDCWD, \"out\", O_RDONLY|O_CLOEXEC) = 3\n2 <... close resumed>) = 0\n");
        assert_eq!(check(&late_close), Vec::<String>::new(), "{late_close}");
        // An unnamed temporary (O_TMPFILE) linked to its name: its sync is not its folder's.
        let unnamed = r#"1 openat(AT_FDCWD, "out", O_RDWR|O_CLOEXEC|O_TMPFILE, 0666) = 3
1 write(3, "feature,name\n", 13) = 13
1 fsync(3) = 0
2 linkat(AT_FDCWD, "/proc/self/fd/3", AT_FDCWD, "out/x.csv", AT_SYMLINK_FOLLOW) = 0
2 close(3) = 0
2 openat(AT_FDCWD, "out", O_RDONLY|O_CLOEXEC) = 3
2 fsync(3) = 0
"#;
        assert_eq!(check(unnamed), Vec::<String>::new());
        let unnamed_unsynced = unnamed.replace("1 fsync(3) = 0\n", "");
        assert_eq!(check(&unnamed_unsynced).len(), 1, "{unnamed_unsynced}");
        let unnamed_folder_unsynced = unnamed.replace("2 fsync(3) = 0\n", "");
        assert_eq!(check(&unnamed_folder_unsynced).len(), 1);
        // The same, linked through the descriptor itself (Linux 6.10 and later).
        let by_descriptor = unnamed.replace(
            "linkat(AT_FDCWD, \"/proc/self/fd/3\", AT_FDCWD, \"out/x.csv\", AT_SYMLINK_FOLLOW)",
            "linkat(3, \"\", AT_FDCWD, \"out/x.csv\", AT_EMPTY_PATH)",
        );
        assert_ne!(by_descriptor, unnamed);
        assert_eq!(
            check(&by_descriptor),
            Vec::<String>::new(),
            "{by_descriptor}"
        );
        let by_descriptor_unsynced = by_descriptor.replace("1 fsync(3) = 0\n", "");
        assert_eq!(check(&by_descriptor_unsynced).len(), 1);
        // A write through a duplicate descriptor, after the sync, is the file's too.
        let late_direct_write = unnamed.replace(
        "1 fsync(3) = 0\n",
        "1 fcntl(3, F_DUPFD_CLOEXEC, 3) = 7\n1 fsync(3) = 0\n1 pwrite64(7, \"x\", 1, 8388608) = 1\n",
    );
        assert_eq!(check(&late_direct_write).len(), 1, "{late_direct_write}");
        let direct_write = unnamed.replace(
        "1 fsync(3) = 0\n",
        "1 fcntl(3, F_DUPFD_CLOEXEC, 3) = 7\n3 pwrite64(7, \"x\", 1, 8388608) = 1\n1 fsync(3) = 0\n",
    );
        assert_eq!(check(&direct_write), Vec::<String>::new(), "{direct_write}");
        // A folder the run makes must be synced into its parent.
        let made = format!("1 mkdir(\"out\", 0777) = 0\n{good}");
        assert_eq!(check(&made).len(), 1, "{made}");
        let made_and_synced = format!(
        "1 mkdir(\"out\", 0777) = 0\n1 openat(AT_FDCWD, \"/w\", O_RDONLY|O_CLOEXEC) = 5\n1 fsync(5) = 0\n{good}"
    );
        assert_eq!(check(&made_and_synced), Vec::<String>::new());
    }
}

/// `--force` over small CSVs: where freeing a file's blocks waits for the disk (ext4 with
/// `-o discard`), letting go of each replaced CSV on the thread that names the new ones, one
/// after another, made the re-run take ten times a fresh one. So the committer keeps the old
/// file open across the rename, and another thread closes it (the old file is freed then),
/// only once the folder holding the new name is synced. See: issue 13, item 6.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn replaced_outputs_are_let_go_of_on_other_threads_after_their_folder_sync() {
    #[cfg(target_os = "linux")]
    {
        if !strace_or_skip() {
            return;
        }
        let env = TestEnv::new();
        for i in 0..6 {
            env.write(&format!("in/f{i}.kml"), points_kml(&format!("f{i}"), i + 1));
        }
        let first = env.run(&["-o", "out", "in/*.kml"]);
        assert_eq!(first.code, Some(0), "{first}");
        let log = env.path("trace.log");
        let run = common::run_of(
            Command::new("strace")
                .current_dir(env.root())
                .args([
                    "-f",
                    "-qq",
                    "-e",
                    "trace=openat,close,renameat,renameat2,rename,fsync",
                ])
                .arg("-o")
                .arg(&log)
                .arg(env!("CARGO_BIN_EXE_kml2csv"))
                .args(["-j", "2", "-o", "out", "in/*.kml", "--force"])
                .output()
                .unwrap(),
        );
        let trace = fs::read_to_string(&log).unwrap_or_default();
        if trace.is_empty() {
            eprintln!("SKIPPED: strace cannot trace here\n{run}");
            return;
        }
        assert_eq!(run.code, Some(0), "{run}");
        let cwd = fs::canonicalize(env.root()).unwrap();
        let calls = parse_trace(&trace);
        let path_of = |call: &Call, at: usize| resolve(&cwd, &call.args[at]);
        let out = cwd.join("out");
        for i in 0..6 {
            let output = out.join(format!("f{i}.csv"));
            let held = calls.iter().position(|c| {
                c.name == "openat"
                    && path_of(c, 1) == output
                    && c.args.get(2).is_some_and(|f| f.contains("O_PATH"))
                    && c.result.parse::<i32>().is_ok_and(|fd| fd >= 0)
            });
            let Some(held) = held else {
                panic!(
                    "{}: the replaced file is not held open\n{trace}",
                    output.display()
                );
            };
            let holder = &calls[held];
            let renamed = calls[held..]
                .iter()
                .find(|c| {
                    c.name.starts_with("rename")
                        && c.args.iter().any(|a| resolve(&cwd, a) == output)
                })
                .unwrap_or_else(|| {
                    panic!("{}: no rename after the open\n{trace}", output.display())
                });
            // The folder's sync: an fsync of a descriptor opened on it after the rename.
            let folder_synced = calls
                .iter()
                .filter(|c| c.name == "openat" && c.start > renamed.end && path_of(c, 1) == out)
                .filter_map(|open| {
                    calls.iter().find(|c| {
                        c.name == "fsync" && c.start > open.end && c.args[0] == open.result
                    })
                })
                .map(|c| c.end)
                .min()
                .unwrap_or_else(|| {
                    panic!(
                        "{}: its folder is not synced after the rename\n{trace}",
                        output.display()
                    )
                });
            let closed = calls[held + 1..]
                .iter()
                .find(|c| c.name == "close" && c.args[0] == holder.result)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: the held file is never closed\n{trace}",
                        output.display()
                    )
                });
            assert_ne!(
                closed.pid,
                holder.pid,
                "{}: closed by the thread that names the outputs\n{trace}",
                output.display()
            );
            assert!(
                closed.start > folder_synced,
                "{}: let go of before the folder sync\n{trace}",
                output.display()
            );
        }
    }
}

/// See: issue 15, item 4: threads follow the work, not the number of files or the flag. One
/// worker over many small files used to start a syncing and a releasing thread per slot and
/// more for every group (over a hundred threads), and to close a group 20 ms after its first
/// file whatever followed, so that `-j1` made many more syncs than `-j2`. Now threads start
/// only when work waits for one, and a group gathers while files keep coming.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "traces system calls with strace, which is Linux only"
)]
fn many_small_files_are_made_durable_in_a_few_groups_on_a_few_threads() {
    #[cfg(target_os = "linux")]
    {
        if Command::new("strace").arg("-V").output().is_err() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "strace is missing under CI"
            );
            eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
            return;
        }
        const FILES: usize = 400;
        let env = TestEnv::new();
        for i in 0..FILES {
            env.write(&format!("in/f{i:03}.kml"), points_kml(&format!("f{i}"), 20));
        }
        // `syncfs` serves small files only on the local file systems that write everything
        // back with it; elsewhere each file is synced on its own, by design.
        let fs_type = Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(env.root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let grouped = ["ext2/ext3", "xfs", "btrfs", "f2fs"].contains(&fs_type.as_str());
        for jobs in ["1", "2"] {
            let out = format!("out{jobs}");
            let log = env.path(&format!("trace-{jobs}.log"));
            let run = common::run_of(
                Command::new("strace")
                    .current_dir(env.root())
                    .args([
                        "-f",
                        "-qq",
                        "-e",
                        "trace=fsync,fdatasync,syncfs,clone,clone3",
                    ])
                    .arg("-o")
                    .arg(&log)
                    .arg(env!("CARGO_BIN_EXE_kml2csv"))
                    .args(["-j", jobs, "-o", &out, "in/*.kml"])
                    .output()
                    .unwrap(),
            );
            let trace = fs::read_to_string(&log).unwrap_or_default();
            if trace.is_empty() {
                eprintln!("SKIPPED: strace cannot trace here\n{run}");
                return;
            }
            assert_eq!(run.code, Some(0), "-j{jobs}\n{run}");
            let csvs = env.files_ending(".csv");
            let made = csvs
                .iter()
                .filter(|f| f.starts_with(&format!("{out}/")))
                .count();
            assert_eq!(made, FILES, "-j{jobs}\n{run}");
            let calls = parse_trace(&trace);
            let count = |names: &[&str]| {
                calls
                    .iter()
                    .filter(|c| names.contains(&c.name.as_str()))
                    .count()
            };
            // The main thread and those it started.
            let threads = 1 + count(&["clone", "clone3"]);
            assert!(threads <= 16, "-j{jobs}: {threads} threads\n{trace}");
            let syncs = count(&["fsync", "fdatasync", "syncfs"]);
            if grouped {
                // A group costs a `syncfs` and a folder sync; one per file would be 800.
                assert!(
                    syncs <= FILES / 8,
                    "-j{jobs}: {syncs} syncs for {FILES} files\n{trace}"
                );
            } else {
                eprintln!("{fs_type}: each file is synced on its own ({syncs} syncs)");
            }
        }
    }
}

/// Linux before 6.10 refuses to link a descriptor by itself (`linkat(fd, "", AT_EMPTY_PATH)`)
/// without a privilege, with `ENOENT`. Made to refuse here (strace injects the error into the
/// first such call), the run names every output through /proc instead, and asks no more after
/// the first refusal.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "injects a system call's failure with strace, which is Linux only"
)]
fn outputs_are_linked_through_proc_where_the_kernel_refuses_a_descriptor() {
    #[cfg(target_os = "linux")]
    {
        if !strace_or_skip() {
            return;
        }
        let env = TestEnv::new();
        for i in 0..6 {
            env.write(&format!("in/f{i}.kml"), points_kml(&format!("f{i}"), i + 1));
        }
        let log = env.path("trace.log");
        let mut command = Command::new("strace");
        command
            .current_dir(env.root())
            .args(["-f", "-qq", "-e", "trace=linkat"])
            .args(["-e", "inject=linkat:error=ENOENT:when=1"])
            .arg("-o")
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_kml2csv"))
            .args(["-j", "2", "-o", "out", "in/*.kml"]);
        let run = common::run_of(command.output().unwrap());
        let trace = fs::read_to_string(&log).unwrap_or_default();
        if !trace.contains("linkat(") {
            eprintln!("SKIPPED: strace cannot trace here\n{run}");
            return;
        }
        assert_eq!(run.code, Some(0), "{run}\n--- trace\n{trace}");
        for i in 0..6 {
            let csv = env.read(&format!("out/f{i}.csv"));
            assert_eq!(csv.lines().count(), i + 2, "f{i}.csv:\n{csv}");
        }
        let by_descriptor: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("AT_EMPTY_PATH"))
            .collect();
        let through_proc = trace
            .lines()
            .filter(|l| l.contains("\"/proc/self/fd/") && l.ends_with("= 0"))
            .count();
        assert_eq!(by_descriptor.len(), 1, "{trace}");
        assert!(by_descriptor[0].contains("ENOENT"), "{trace}");
        assert_eq!(through_proc, 6, "{trace}");
    }
}

//! Faults outside the input's content: full disks, folders that vanish or refuse writes,
//! inputs that change, disappear or are not files at all, outputs that are not files.
//!
//! Each one must give a clear message naming the file and the cause, let the other files
//! convert, leave nothing partial behind, and end with exit status 1.

#![cfg(unix)]

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{points_kml, Run, TestEnv, HEADER, POINT_KML, POINT_ROW};

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

fn assert_stderr_has(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "stderr lacks {text:?}\n{run}");
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Run with a time limit; a run that outlives it is killed and the test fails.
fn run_within(env: &TestEnv, args: &[&str], limit: Duration) -> Run {
    let mut child = env
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let run = common::run_of(child.wait_with_output().unwrap());
            panic!("kml2csv {args:?} still running after {limit:?}: hangs\n{run}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    common::run_of(child.wait_with_output().unwrap())
}

/// Wait until process `pid` holds `path` open (seen in /proc/PID/fd).
pub fn wait_until_open(pid: u32, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = fs::canonicalize(path).unwrap();
    loop {
        let fds = fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten();
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == target))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{} never opened", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

// See: a FIFO named as an input blocked the worker in open() forever, and SIGINT/SIGTERM did
// not end the run either (the handlers restart the open).
#[test]
fn a_fifo_without_writer_fails_alone_instead_of_hanging() {
    let env = TestEnv::new();
    env.write("in/a.kml", POINT_KML);
    mkfifo(&env.path("in/pipe.kml"));
    let run = run_within(
        &env,
        &["-o", "out", "in/a.kml", "in/pipe.kml"],
        Duration::from_secs(20),
    );
    assert_code(&run, 1);
    assert_stderr_has(&run, "kml2csv: in/pipe.kml:");
    assert_eq!(env.read("out/a.csv"), format!("{HEADER}{POINT_ROW}"));
    assert!(!env.exists("out/pipe.csv"), "{run}");
    assert!(env.temporaries().is_empty(), "{:?}", env.files());
}

/// A FIFO with a live writer (what `kml2csv <(zcat x.kml.gz)` gives) still streams.
#[test]
fn a_fifo_with_a_writer_is_read_like_a_file() {
    let env = TestEnv::new();
    let fifo = env.path("pipe.kml");
    mkfifo(&fifo);
    // Opened read-write so that it neither blocks here nor leaves kml2csv without a writer.
    let mut writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let child = env
        .command()
        .args(["-o", "out", "pipe.kml"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writer.write_all(points_kml("p", 3).as_bytes()).unwrap();
    // The data lives only as long as someone holds the FIFO open: wait for kml2csv to.
    wait_until_open(child.id(), &fifo);
    drop(writer);
    let run = common::run_of(child.wait_with_output().unwrap());
    assert_code(&run, 0);
    assert_eq!(env.read("out/pipe.csv").lines().count(), 4, "{run}");
}

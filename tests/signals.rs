//! SIGINT and SIGTERM are answered in every phase of a run: while the inputs are planned,
//! while the workers start, while files convert and while a merged CSV is made. Each test
//! catches the run in its phase (frozen with SIGSTOP, the phase told by the threads it has
//! started and the files it has written), sends the signal, lets it go, and checks that it ends
//! soon with 130 or 143, publishing nothing and leaving no temporary.
//!
//! The bound on the time to answer is a guard against a run that goes on, far above the second
//! the README promises, not a measurement: these machines are shared and noisy.
//!
//! Signals and `/proc` are Linux's here; on Windows, Ctrl-C and Ctrl-Break are tested in
//! tests/crash.rs.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{points_kml, TestEnv};

/// How long a run may take to end after the signal before the test calls it a failure.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[cfg(target_os = "linux")]
fn signal(child: &Child, signal: i32) {
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Stop `child` and wait until it is stopped: `kill` returns before the signal takes effect,
/// and what is read from `/proc` after must be the frozen state.
#[cfg(target_os = "linux")]
fn freeze(child: &Child) {
    signal(child, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        // The state follows the command's name, which is in parentheses.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        if matches!(state, Some("T" | "t" | "Z") | None) {
            return;
        }
        assert!(Instant::now() < deadline, "the run never stopped: {stat}");
        std::thread::yield_now();
    }
}

/// Whether `child` has its SIGINT and SIGTERM handlers in place: before, either signal would
/// end it by the default action, which says nothing of how the run answers it.
#[cfg(target_os = "linux")]
fn catches_signals(child: &Child) -> bool {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0);
    let bit = |sig: i32| 1u64 << (sig - 1);
    caught & bit(libc::SIGINT) != 0 && caught & bit(libc::SIGTERM) != 0
}

/// Threads the child runs now (the main one included).
#[cfg(target_os = "linux")]
fn threads(child: &Child) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", child.id())).map_or(0, |d| d.count())
}

/// Send `sig` to the frozen `child`, let it go, and check how it ends: with `code`, soon,
/// saying so, and with no temporary left in `env`.
#[cfg(target_os = "linux")]
fn interrupt(env: &TestEnv, mut child: Child, sig: i32, code: i32, phase: &str) {
    signal(&child, sig);
    let sent = Instant::now();
    signal(&child, libc::SIGCONT);
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > ANSWER_WITHIN {
            let _ = child.kill();
            panic!("{phase}: still running {ANSWER_WITHIN:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = sent.elapsed();
    let run = common::run_of(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(code), "{phase}\n{run}");
    assert!(
        run.stderr.contains("interrupted"),
        "{phase}: the run does not say it was interrupted\n{run}"
    );
    assert!(
        env.temporaries().is_empty(),
        "{phase}: temporaries left {:?}",
        env.temporaries()
    );
    eprintln!("{phase}: ended {took:?} after the signal");
}

/// Start kml2csv in `env` with `args`, its messages kept for the checks.
fn start(env: &TestEnv, args: &[&str]) -> Child {
    env.command()
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `ready` holds for the running `child`: the phase to catch has begun. Fails if
/// the run ends first or a minute passes.
#[cfg(target_os = "linux")]
fn wait_for(child: &mut Child, phase: &str, ready: impl Fn(&Child) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(child) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {phase}"
        );
        assert!(Instant::now() < deadline, "{phase} never began");
        std::thread::yield_now();
    }
}

/// Every CSV published before the signal is whole: its header and its one row.
fn published_whole(env: &TestEnv) {
    for csv in env.files_ending(".csv") {
        assert_eq!(env.read(&csv).lines().count(), 2, "{csv}");
    }
}

/// Files in `folders` folders of a tree, enough to make planning take a while.
fn tree(env: &TestEnv, folders: usize, per_folder: usize) {
    tree_of(env, folders, per_folder, 1);
}

/// [`tree`] with `points` placemarks in each file.
fn tree_of(env: &TestEnv, folders: usize, per_folder: usize, points: usize) {
    let kml = points_kml("p", points);
    for f in 0..folders {
        for i in 0..per_folder {
            env.write(&format!("crawl/d{f:03}/sub/x{i:03}.kml"), &kml);
        }
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "catches the run's phase with SIGSTOP and /proc, which are Linux's"
)]
fn a_signal_while_planning_ends_the_run_before_any_work() {
    #[cfg(target_os = "linux")]
    for (attempt, per_folder) in [20, 60, 200].into_iter().enumerate() {
        let env = TestEnv::new();
        tree(&env, 200, per_folder);
        let mut child = start(&env, &["crawl/**/*.kml", "-o", "out"]);
        wait_for(&mut child, "planning", catches_signals);
        // The handlers are registered one after the other: leave a moment for the last.
        std::thread::sleep(Duration::from_millis(2));
        freeze(&child);
        // Planning runs on the main thread alone; the workers start after it.
        if threads(&child) != 1 || env.exists("out") {
            eprintln!("attempt {attempt}: planning ended before it could be caught");
            signal(&child, libc::SIGCONT);
            let _ = child.wait_with_output();
            continue;
        }
        interrupt(&env, child, libc::SIGTERM, 143, "planning");
        assert!(env.files_ending(".csv").is_empty(), "{:?}", env.files());
        return;
    }
    panic!("planning was never caught in progress");
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "catches the run's phase with SIGSTOP and /proc, which are Linux's"
)]
fn a_signal_while_the_workers_start_ends_the_run() {
    #[cfg(target_os = "linux")]
    {
        let env = TestEnv::new();
        tree(&env, 50, 100);
        let mut child = start(&env, &["crawl/**/*.kml", "-o", "out", "-j", "100000"]);
        // The first thread beyond the main one: the pool is starting.
        wait_for(&mut child, "starting the workers", |c| threads(c) >= 2);
        freeze(&child);
        let started = threads(&child);
        interrupt(&env, child, libc::SIGINT, 130, "starting the workers");
        eprintln!("caught with {started} threads");
        published_whole(&env);
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "catches the run's phase with SIGSTOP and /proc, which are Linux's"
)]
fn a_signal_while_converting_many_files_ends_the_run() {
    #[cfg(target_os = "linux")]
    // At -j1 on more than one core, CSVs held in memory wait for the writing thread too.
    for jobs in ["2", "1"] {
        let env = TestEnv::new();
        tree(&env, 40, 100);
        let phase = format!("converting at -j{jobs}");
        let mut child = start(&env, &["crawl/**/*.kml", "-o", "out", "-j", jobs]);
        wait_for(&mut child, &phase, |_| env.files_ending(".csv").len() >= 20);
        freeze(&child);
        let done = env.files_ending(".csv").len();
        assert!(
            done < 4000,
            "{phase}: the run ended before it could be caught"
        );
        interrupt(&env, child, libc::SIGTERM, 143, &phase);
        published_whole(&env);
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "catches the run's phase with SIGSTOP and /proc, which are Linux's"
)]
fn a_signal_while_merging_publishes_nothing() {
    #[cfg(target_os = "linux")]
    // A fast build merges 4000 one-point files in a few tens of milliseconds: bigger files
    // if the merge ends before it is caught.
    for (attempt, points) in [1, 40, 400].into_iter().enumerate() {
        let env = TestEnv::new();
        tree_of(&env, 40, 100, points);
        let mut child = start(&env, &["crawl/**/*.kml", "--merge", "all.csv", "-j", "2"]);
        // The workers have started and had a moment to write their parts (unnamed files).
        wait_for(&mut child, "merging", |c| threads(c) >= 3);
        std::thread::sleep(Duration::from_millis(30));
        freeze(&child);
        if env.exists("all.csv") {
            eprintln!("attempt {attempt}: the merge ended before it could be caught");
            signal(&child, libc::SIGCONT);
            let _ = child.wait_with_output();
            continue;
        }
        interrupt(&env, child, libc::SIGINT, 130, "merging");
        assert!(!env.exists("all.csv"), "published after the signal");
        return;
    }
    #[cfg(target_os = "linux")]
    panic!("the merge was never caught in progress");
}

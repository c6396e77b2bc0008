//! Crashes, interruptions and overlapping runs: an output that exists is complete and correct,
//! and running the same command again finishes exactly what is missing.
//!
//! A batch of a few hundred generated files (a few of them large) is converted once, cleanly,
//! as the reference. Then runs of the same command are killed with SIGKILL (TerminateProcess on
//! Windows) at seeded random moments, interrupted with SIGINT and SIGTERM, and started two and
//! four at a time; after each, every `.csv` present must be byte-identical to the reference.

mod common;
use common::StartRetrying;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{record, Run, TestEnv};

/// splitmix64: a tiny seeded generator, so that every run of the test makes the same files
/// and the same kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SMALL_FILES: usize = 240;
const LARGE_FILES: usize = 4;
const PATTERN: &str = "in/**/*.kml";

/// Write the batch: small files of varied geometry in three folders, and a few large ones.
fn make_batch(env: &TestEnv, rng: &mut Rng) {
    for i in 0..SMALL_FILES {
        let folder = ["a", "b/c", "d"][i % 3];
        let mut kml = String::from(r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Document>"#);
        for p in 0..1 + rng.below(40) {
            let n = 1 + rng.below(12);
            let coords: Vec<String> = (0..n)
                .map(|v| {
                    format!(
                        "{}.{:06},{}.{:06},{}",
                        v % 180,
                        rng.below(1_000_000),
                        p % 90,
                        rng.below(1_000_000),
                        rng.below(500)
                    )
                })
                .collect();
            let geometry = if n == 1 { "Point" } else { "LineString" };
            kml.push_str(&format!(
                "<Placemark><name>f{i} p{p}</name><{geometry}><coordinates>{}</coordinates></{geometry}></Placemark>\n",
                coords.join(" ")
            ));
        }
        kml.push_str("</Document></kml>\n");
        env.write(&format!("in/{folder}/small{i:03}.kml"), kml);
    }
    for i in 0..LARGE_FILES {
        env.write(&format!("in/large{i}.kml"), common::slow_kml(6 + 4 * i));
    }
}

/// Every file below `dir`, relative to it, with its bytes.
fn contents(env: &TestEnv, dir: &str) -> BTreeMap<String, Vec<u8>> {
    env.files()
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&format!("{dir}/"))?.to_owned();
            Some((rel, fs::read(env.path(&f)).ok()?))
        })
        .collect()
}

struct Batch {
    env: TestEnv,
    reference: BTreeMap<String, Vec<u8>>,
    /// How long a clean run takes.
    full_run: Duration,
}

impl Batch {
    fn new(seed: u64) -> Batch {
        let env = TestEnv::new();
        make_batch(&env, &mut Rng(seed));
        let started = Instant::now();
        let run = env.run(&["-q", "-o", "ref", PATTERN]);
        let full_run = started.elapsed();
        assert_eq!(run.code, Some(0), "{run}");
        let reference = contents(&env, "ref");
        eprintln!("a clean run takes {full_run:?}");
        assert_eq!(reference.len(), SMALL_FILES + LARGE_FILES);
        Batch {
            env,
            reference,
            full_run,
        }
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.env
            .command()
            .args(args)
            .args(["-o", "out", PATTERN])
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap()
    }

    /// Check `out/`: every `.csv` equals the reference, everything else is a temporary (never
    /// anything under an output name). Returns the outputs present and the temporaries.
    fn check(&self, when: &str) -> (BTreeSet<String>, usize) {
        let mut present = BTreeSet::new();
        let mut temporaries = 0;
        for f in self.env.files() {
            let Some(rel) = f.strip_prefix("out/") else {
                continue;
            };
            let name = rel.rsplit('/').next().unwrap();
            if name.starts_with(".kml2csv-") && name.ends_with(".tmp") {
                temporaries += 1;
                continue;
            }
            let expected = self
                .reference
                .get(rel)
                .unwrap_or_else(|| panic!("{when}: unexpected file out/{rel}"));
            let actual = fs::read(self.env.path(&f)).unwrap();
            assert!(
                &actual == expected,
                "{when}: out/{rel} is not the reference ({} bytes instead of {})",
                actual.len(),
                expected.len()
            );
            present.insert(rel.to_owned());
        }
        (present, temporaries)
    }

    /// After a run to completion: every output present and right, no temporary.
    fn check_complete(&self, when: &str) {
        let (present, temporaries) = self.check(when);
        assert_eq!(temporaries, 0, "{when}: temporaries left");
        assert_eq!(
            present.len(),
            self.reference.len(),
            "{when}: outputs missing"
        );
    }

    fn wipe(&self) {
        let _ = fs::remove_dir_all(self.env.path("out"));
    }
}

/// Whether `status` is that of a run ended by `Child::kill`: SIGKILL on Unix; on Windows
/// TerminateProcess, which std calls with exit code 1 (a finished run exits 0 here).
fn killed(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(libc::SIGKILL)
    }
    #[cfg(windows)]
    {
        status.code() == Some(1)
    }
}

/// Kill runs of the batch with SIGKILL at seeded random moments, chaining the runs (each one
/// resumes what the killed one left), and finish with a clean re-run every few kills.
#[test]
fn sigkill_at_random_moments_never_leaves_a_wrong_output() {
    /// Kills that must land while a run is converting; fewer under wine, where every run takes
    /// several times as long.
    const KILLS: u64 = if cfg!(windows) { 9 } else { 30 };
    const KILLS_PER_ROUND: usize = 3;
    let batch = Batch::new(1);
    let total = batch.reference.len() as u64;
    let mut rng = Rng(0x5eed);
    let (mut attempts, mut kills, mut survived, mut rounds) = (0u64, 0u64, 0u64, 0u64);
    let mut temporaries_left = 0;
    let mut outputs_seen_mid_run = 0u64;
    let mut data_lost = 0u64;
    while kills < KILLS {
        assert!(attempts < 3 * KILLS, "too few kills landed mid-run");
        let round = rounds;
        // Outputs known complete; they must never disappear or change afterwards.
        let mut complete = BTreeSet::new();
        for k in 0..KILLS_PER_ROUND {
            let when = format!("round {round}, kill {k}");
            let jobs = ["1", "2", "4"][rng.below(3) as usize];
            // With every output already complete only --force leaves work to kill.
            let force = rng.below(4) == 0 || complete.len() == batch.reference.len();
            let mut args = vec!["-q", "-j", jobs];
            if force {
                args.push("--force");
            }
            // Aim inside the work that is left: a resumed run has less to do.
            let left = if force {
                total
            } else {
                total - complete.len() as u64
            };
            let window = batch.full_run.as_micros() as u64 * left.max(total / 20) / total * 3 / 5;
            let delay = Duration::from_micros(rng.below(window.max(1)));
            let mut child = batch.spawn(&args);
            let started = Instant::now();
            // Watch the folder while the run goes on: what appears must already be whole.
            let mut verified = BTreeSet::new();
            while started.elapsed() < delay {
                for f in batch.env.files_ending(".csv") {
                    if let Some(rel) = f.strip_prefix("out/") {
                        if verified.insert(rel.to_owned()) {
                            let actual = fs::read(batch.env.path(&f)).unwrap_or_default();
                            assert!(
                                Some(&actual) == batch.reference.get(rel),
                                "{when}: out/{rel} visible while incomplete or wrong"
                            );
                            outputs_seen_mid_run += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            child.kill().unwrap();
            let status = child.wait().unwrap();
            attempts += 1;
            let landed = killed(&status);
            let (present, temporaries) = batch.check(&when);
            data_lost += complete.difference(&present).count() as u64;
            temporaries_left += temporaries;
            complete = present;
            eprintln!(
                "{when}: -j {jobs}{} {} after {delay:?}: {} outputs whole, {temporaries} temporaries",
                if force { " --force" } else { "" },
                if landed { "killed" } else { "had finished" },
                complete.len()
            );
            if landed {
                kills += 1;
                survived += 1;
            }
        }
        // The same command again finishes exactly what is missing.
        let run = common::run_of(batch.spawn(&["-q"]).wait_with_output().unwrap());
        assert_eq!(run.code, Some(0), "round {round}: re-run\n{run}");
        batch.check_complete(&format!("round {round}: after the re-run"));
        rounds += 1;
        if round % 2 == 1 {
            batch.wipe();
        }
    }
    assert_eq!(data_lost, 0, "outputs that were complete vanished");
    eprintln!(
        "{kills} kills mid-run ({attempts} tried), {survived} survived, {rounds} re-runs to \
         completion, {outputs_seen_mid_run} outputs checked mid-run, {temporaries_left} \
         temporaries left by kills (all removed by the re-runs)"
    );
    record("kill_trials", kills);
    record("kill_trials_survived", survived);
    record("kill_reruns_complete", rounds);
    record("data_lost", data_lost);
}

/// SIGINT and SIGTERM at random moments: exit 130 or 143, no temporary left, every output
/// present is whole.
#[test]
#[cfg_attr(
    windows,
    ignore = "Windows has no SIGINT or SIGTERM to send; Ctrl-Break is tested below"
)]
fn sigint_and_sigterm_at_random_moments_leave_no_temporary() {
    #[cfg(unix)]
    {
        const TRIALS: usize = 6;
        let batch = Batch::new(2);
        let mut rng = Rng(0x5151);
        let window = batch.full_run.as_micros() as u64 * 3 / 4;
        let (mut trials, mut attempts) = (0, 0);
        for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
            let mut landed = 0;
            while landed < TRIALS {
                attempts += 1;
                assert!(attempts < 6 * TRIALS, "too few signals landed mid-run");
                let when = format!("signal {signal}, trial {landed}");
                batch.wipe();
                let jobs = ["1", "2", "4"][rng.below(3) as usize];
                let mut child = batch.spawn(&["-j", jobs]);
                // The handlers are installed before the first conversion starts.
                let deadline = Instant::now() + Duration::from_secs(30);
                while !batch.env.writing_into(child.id(), "out") {
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "{when}: ended too soon"
                    );
                    assert!(Instant::now() < deadline, "{when}: nothing started");
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_micros(rng.below(window.max(1))));
                if child.try_wait().unwrap().is_some() {
                    // This machine was quicker than the clean run: aim again, no trial.
                    batch.check_complete(&format!("{when}: finished before the signal"));
                    continue;
                }
                // SAFETY: the child is ours and has not been reaped.
                assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
                let run: Run = common::run_of(child.wait_with_output().unwrap());
                if run.code == Some(0) {
                    // It ended between the check and the signal.
                    batch.check_complete(&format!("{when}: finished as the signal came"));
                    continue;
                }
                assert_eq!(run.code, Some(code), "{when}\n{run}");
                assert!(run.stderr.contains("interrupted"), "{when}\n{run}");
                let (present, temporaries) = batch.check(&when);
                assert_eq!(temporaries, 0, "{when}: temporaries left\n{run}");
                eprintln!("{when} (-j {jobs}): {} outputs whole", present.len());
                landed += 1;
                trials += 1;
            }
        }
        // And the re-run completes the batch.
        let run = common::run_of(batch.spawn(&["-q"]).wait_with_output().unwrap());
        assert_eq!(run.code, Some(0), "{run}");
        batch.check_complete("after the signal trials");
        record("signal_trials", trials);
        record("signal_trials_survived", trials);
    }
}

/// Two and then four runs of the same command at once (overlapping cron runs, a shard run
/// twice): all succeed, every output whole, no temporary left, only our own messages.
#[test]
fn overlapping_runs_leave_every_output_whole() {
    let batch = Batch::new(3);
    let mut overlaps = 0;
    for (count, force) in [(2, false), (4, false), (4, true)] {
        if !force {
            batch.wipe();
        }
        let mut args = vec!["-j", "2"];
        if force {
            args.push("--force");
        }
        let children: Vec<Child> = (0..count).map(|_| batch.spawn(&args)).collect();
        let runs: Vec<Run> = children
            .into_iter()
            .map(|c| common::run_of(c.wait_with_output().unwrap()))
            .collect();
        let mut converted = 0;
        for run in &runs {
            assert_eq!(run.code, Some(0), "{count} at once, force {force}\n{run}");
            for line in run.lines() {
                assert!(line.starts_with("kml2csv: "), "{run}");
                assert!(
                    !line.contains("panicked") && !line.contains("rror"),
                    "{run}"
                );
            }
            let summary = run.lines().last().copied().unwrap_or_default();
            assert!(summary.contains(" 0 failed"), "{run}");
            converted += summary
                .strip_prefix("kml2csv: ")
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("summary {summary:?}"));
        }
        if force {
            assert_eq!(converted, count * batch.reference.len());
        } else {
            // Each output was placed by exactly one of the runs; the others skipped it.
            assert_eq!(converted, batch.reference.len(), "{runs:#?}");
        }
        batch.check_complete(&format!("{count} runs at once, force {force}"));
        overlaps += 1;
    }
    record("overlap_scenarios", overlaps);
}

/// Ctrl-Break on a Windows console (Ctrl-C goes through the same handler, but cannot be sent
/// to one process alone): exit 130, no temporary, no partial CSV. A second one ends the run at
/// once, and the next run converts everything and removes what that left.
#[cfg(windows)]
#[test]
#[ignore = "wine 8 delivers no console control event (GenerateConsoleCtrlEvent fails with \
            ERROR_INVALID_ACCESS without a console, ERROR_INVALID_HANDLE with one); run it with \
            --ignored on Windows. The handler itself is tested in the library under wine"]
fn ctrl_break_stops_the_batch_like_sigint() {
    use std::os::windows::process::CommandExt;
    use windows_sys::Win32::System::Console::{
        AllocConsole, GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT,
    };
    use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;
    let env = TestEnv::new();
    env.write("in/big.kml", common::slow_kml(400));
    for i in 0..4 {
        env.write(&format!("in/s{i}.kml"), common::POINT_KML);
    }
    // Console events travel through a console the two processes share; fails harmlessly
    // when this process has one already.
    // SAFETY: no arguments; at worst it fails.
    unsafe { AllocConsole() };
    for breaks in [1, 2] {
        let _ = fs::remove_dir_all(env.path("out"));
        let mut child = env
            .command()
            .args(["-j", "1", "-o", "out", "in"])
            .creation_flags(CREATE_NEW_PROCESS_GROUP)
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while env.temporaries().is_empty() {
            assert!(child.try_wait().unwrap().is_none(), "ended too soon");
            assert!(Instant::now() < deadline, "nothing started");
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..breaks {
            // SAFETY: plain call; the child leads its own process group.
            let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, child.id()) };
            assert_ne!(sent, 0, "{}", std::io::Error::last_os_error());
        }
        let run = common::run_of(child.wait_with_output().unwrap());
        assert_eq!(run.code, Some(130), "{breaks} Ctrl-Break\n{run}");
        if breaks == 1 {
            assert!(run.stderr.contains("interrupted by Ctrl-C"), "{run}");
            assert!(env.temporaries().is_empty(), "{:?}\n{run}", env.files());
        }
        assert!(!env.exists("out/big.csv"), "a partial CSV\n{run}");
    }
    let run = env.run(&["-q", "-o", "out", "in"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(env.temporaries().is_empty(), "{:?}", env.files());
    assert_eq!(env.files_ending(".csv").len(), 5);
}

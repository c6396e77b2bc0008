//! `--shard K/N` as a cluster would use it, simulated on one machine: N processes of the real
//! binary, started at once over one shared output folder.

mod common;
use common::StartRetrying;

use std::collections::BTreeMap;
use std::fs;
use std::process::Child;

use common::{points_kml, run_of, Run, TestEnv};

const FILES: usize = 60;

/// `in/<d>/f<i>.kml` in a few sub-folders, each file with different rows.
fn tree(env: &TestEnv) {
    for i in 0..FILES {
        env.write(
            &format!("in/d{}/f{i:03}.kml", i % 4),
            points_kml(&format!("f{i}"), 1 + i % 7),
        );
    }
}

/// Every `.csv` below `dir` with its bytes.
fn outputs(env: &TestEnv, dir: &str) -> BTreeMap<String, Vec<u8>> {
    env.files()
        .into_iter()
        .filter(|f| f.starts_with(&format!("{dir}/")) && f.ends_with(".csv"))
        .map(|f| {
            let bytes = fs::read(env.path(&f)).unwrap();
            (f[dir.len() + 1..].to_owned(), bytes)
        })
        .collect()
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn_retrying()
        .expect("start kml2csv")
}

fn finish(child: Child) -> Run {
    run_of(child.wait_with_output().expect("wait for kml2csv"))
}

/// The inputs a run reports as `converted to`.
fn converted(run: &Run) -> Vec<String> {
    run.lines()
        .iter()
        .filter_map(|l| l.strip_prefix("kml2csv: "))
        .filter_map(|l| {
            l.split_once(": converted to ")
                .map(|(input, _)| input.to_owned())
        })
        .collect()
}

#[test]
fn concurrent_shards_together_equal_the_full_run_each_file_converted_once() {
    let env = TestEnv::new();
    tree(&env);
    let full = env.run(&["in/**/*.kml", "--out", "full", "-v"]);
    assert_eq!(full.code, Some(0), "{full}");
    assert_eq!(converted(&full).len(), FILES, "{full}");

    for n in [1usize, 3, 5] {
        let out = format!("shards{n}");
        let children: Vec<Child> = (0..n)
            .map(|k| {
                let shard = format!("{k}/{n}");
                spawn(
                    &env,
                    &[
                        "in/**/*.kml",
                        "--out",
                        &out,
                        "-v",
                        "--shard",
                        &shard,
                        "-j",
                        "2",
                    ],
                )
            })
            .collect();
        let runs: Vec<Run> = children.into_iter().map(finish).collect();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for run in &runs {
            assert_eq!(run.code, Some(0), "{run}");
            for input in converted(run) {
                *seen.entry(input).or_default() += 1;
            }
        }
        assert_eq!(
            seen.len(),
            FILES,
            "every input converted by some shard of {n}"
        );
        assert!(seen.values().all(|&c| c == 1), "converted twice: {seen:?}");
        if n > 1 {
            assert!(
                runs.iter().filter(|r| !converted(r).is_empty()).count() > 1,
                "the inputs were not spread over the {n} shards"
            );
        }
        assert_eq!(outputs(&env, &out), outputs(&env, "full"), "{n} shards");
    }
    assert!(env.temporaries().is_empty(), "{:?}", env.temporaries());
}

#[test]
fn the_same_shard_twice_at_once_still_ends_correct() {
    let env = TestEnv::new();
    tree(&env);
    let full = env.run(&["in/**/*.kml", "--out", "full"]);
    assert_eq!(full.code, Some(0), "{full}");
    let one = env.run(&["in/**/*.kml", "--out", "alone", "--shard", "1/3", "-v"]);
    assert_eq!(one.code, Some(0), "{one}");
    let expected = converted(&one);
    assert!(!expected.is_empty() && expected.len() < FILES, "{one}");

    for _ in 0..3 {
        let _ = fs::remove_dir_all(env.path("twice"));
        let args = ["in/**/*.kml", "--out", "twice", "--shard", "1/3", "-v"];
        let (a, b) = (spawn(&env, &args), spawn(&env, &args));
        let (a, b) = (finish(a), finish(b));
        assert_eq!(a.code, Some(0), "{a}");
        assert_eq!(b.code, Some(0), "{b}");
        // Each input is converted by exactly one of the two; the other skips it.
        let mut both = converted(&a);
        both.extend(converted(&b));
        both.sort();
        assert_eq!(both, expected, "\n{a}\n{b}");
        let got = outputs(&env, "twice");
        assert_eq!(got, outputs(&env, "alone"));
        for (name, bytes) in &got {
            assert_eq!(Some(bytes), outputs(&env, "full").get(name), "{name}");
        }
        assert!(env.temporaries().is_empty(), "{:?}", env.temporaries());
    }
}

#[test]
fn a_file_argument_is_sharded_by_its_name() {
    let env = TestEnv::new();
    tree(&env);
    let mut owners = 0;
    for k in 0..2 {
        let shard = format!("{k}/2");
        let run = env.run(&["in/d1/f001.kml", "--out", "o", "-v", "--shard", &shard]);
        assert_eq!(run.code, Some(0), "{run}");
        owners += converted(&run).len();
    }
    assert_eq!(owners, 1);
}

#[test]
fn bad_shards_are_usage_errors() {
    let env = TestEnv::new();
    tree(&env);
    for bad in ["3/3", "1/0", "x", "1", "-1/2", "1/2/3", "1/two"] {
        let arg = format!("--shard={bad}");
        let run = env.run(&["in/**/*.kml", "--out", "o", &arg]);
        assert_eq!(run.code, Some(2), "--shard {bad}: {run}");
        assert!(run.stderr.contains("K/N"), "--shard {bad}: {run}");
        assert!(!env.exists("o"), "--shard {bad} wrote something");
    }
}

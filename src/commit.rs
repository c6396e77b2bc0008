//! Grouped durability: make finished temporaries durable together, then give them their names.
//!
//! A CSV must never appear under its name before its data is on disk, or a power cut could leave
//! a complete-looking name in front of missing data. Doing that one file at a time
//! (`fsync(file)`, link or rename, `fsync(dir)`) costs two serial disk flushes per file, which for a
//! batch of small files takes far longer than converting them. Instead, workers only write their
//! temporaries and queue them here, where two stages follow:
//!
//! 1. syncing: up to `SYNC_THREADS` threads each take the next temporary and `fsync` it. Many
//!    syncs in flight at once are committed together by the file system's journal instead of
//!    one flush each, and a big file's sync never holds up the small ones behind it;
//! 2. publishing: one committer thread takes every synced temporary that has arrived as a group,
//!    gives each whose sync succeeded its final name ([`crate::temp::Temp::publish`]: never
//!    before, and never once a stop was requested: those temporaries are dropped instead),
//!    then syncs each folder that received a name once (`fsync` of the directory), so that the
//!    names themselves survive a power cut, and only then reports the files.
//!
//! While a group is being published the next one gathers, so the group size adapts itself to
//! the speed of the disk. The queues are bounded: workers wait rather than holding an unbounded
//! number of open temporaries. A failing sync fails only the file it concerns.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread;

use crate::convert::{self, Outcome, Written};
use crate::plan::parent_or_dot;
use crate::temp::Published;

/// Temporaries that may wait for the committer; workers block beyond this.
const QUEUE: usize = 128;
/// The largest group made durable at once.
const MAX_GROUP: usize = 256;
/// Threads that call `fsync` at the same time within a group.
const SYNC_THREADS: usize = 16;

/// A finished temporary waiting to be made durable and renamed; `tag` says which job it is.
pub struct Pending<T> {
    pub tag: T,
    pub output: PathBuf,
    pub written: Written,
}

/// A temporary after its `fsync`: `None` if it was not synced because the run is stopping.
type Synced<T> = (Pending<T>, Option<io::Result<()>>);

/// Start the syncing threads and the committer on `scope`: they commit what is sent on the
/// returned queue and hand each job's outcome to `done`. They end once every sender is dropped.
pub fn start<'scope, T, F>(
    scope: &'scope thread::Scope<'scope, '_>,
    stop: &'scope AtomicBool,
    mut done: F,
) -> io::Result<SyncSender<Pending<T>>>
where
    T: Send + 'scope,
    F: FnMut(T, PathBuf, Outcome) + Send + 'scope,
{
    let (queue, received) = mpsc::sync_channel::<Pending<T>>(QUEUE);
    let (synced, to_publish) = mpsc::sync_channel::<Synced<T>>(QUEUE);
    let received = std::sync::Arc::new(Mutex::new(received));
    for i in 0..SYNC_THREADS {
        let received = received.clone();
        let synced = synced.clone();
        thread::Builder::new()
            .name(format!("kml2csv-sync-{i}"))
            .spawn_scoped(scope, move || sync_queue(&received, &synced, stop))?;
    }
    drop(synced);
    thread::Builder::new()
        .name("kml2csv-committer".to_owned())
        .spawn_scoped(scope, move || {
            while let Ok(first) = to_publish.recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match to_publish.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                for (tag, output, outcome) in publish_group(group, stop) {
                    done(tag, output, outcome);
                }
            }
        })?;
    Ok(queue)
}

/// One syncing thread: `fsync` the next queued temporary, pass it on, until the queue closes.
fn sync_queue<T>(
    received: &Mutex<Receiver<Pending<T>>>,
    synced: &SyncSender<Synced<T>>,
    stop: &AtomicBool,
) {
    loop {
        let next = match received.lock() {
            Ok(received) => received.recv(),
            Err(_) => return,
        };
        let Ok(pending) = next else { return };
        let result = (!stop.load(Ordering::Relaxed))
            .then(|| convert::sync_file(pending.written.temp.as_file()));
        if synced.send((pending, result)).is_err() {
            return;
        }
    }
}

/// Make a group durable and rename it into place: sync all data (in parallel), rename, sync each
/// folder once. Returns every job's outcome, in the group's order.
pub fn commit_group<T>(group: Vec<Pending<T>>, stop: &AtomicBool) -> Vec<(T, PathBuf, Outcome)> {
    let synced: Vec<Option<io::Result<()>>> = if stop.load(Ordering::Relaxed) {
        group.iter().map(|_| None).collect()
    } else {
        let files: Vec<&File> = group.iter().map(|p| p.written.temp.as_file()).collect();
        sync_files(&files).into_iter().map(Some).collect()
    };
    publish_group(group.into_iter().zip(synced).collect(), stop)
}

/// Rename every synced temporary of `group` into place, then sync each folder that received one,
/// once. Returns every job's outcome, in the group's order.
fn publish_group<T>(group: Vec<Synced<T>>, stop: &AtomicBool) -> Vec<(T, PathBuf, Outcome)> {
    // Rename only what is durable. A temporary dropped here is removed from disk.
    let mut results = Vec::with_capacity(group.len());
    let mut placed_in: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (i, (pending, synced)) in group.into_iter().enumerate() {
        let Pending {
            tag,
            output,
            written,
        } = pending;
        let Written {
            temp,
            rows,
            warnings,
        } = written;
        let outcome = match synced {
            _ if stop.load(Ordering::Relaxed) => Outcome::Interrupted,
            Some(Err(e)) => Outcome::Failed {
                position: None,
                message: format!("cannot make {} durable: {e}", temp.describe(&output)),
                warnings,
            },
            None => Outcome::Interrupted,
            Some(Ok(())) => match temp.publish(&output) {
                Ok(Published::Placed) => {
                    placed_in
                        .entry(parent_or_dot(&output).to_path_buf())
                        .or_default()
                        .push(i);
                    Outcome::Converted { rows, warnings }
                }
                Ok(Published::AlreadyThere) => Outcome::ConvertedElsewhere { warnings },
                Err(message) => Outcome::Failed {
                    position: None,
                    message,
                    warnings,
                },
            },
        };
        results.push((tag, output, outcome));
    }

    // One directory sync per folder makes all its renames durable.
    let dirs: Vec<&Path> = placed_in.keys().map(PathBuf::as_path).collect();
    let dir_syncs = sync_dirs(&dirs);
    for ((dir, members), synced) in placed_in.iter().zip(dir_syncs) {
        let Err(e) = synced else { continue };
        for &i in members {
            let (_, output, outcome) = &mut results[i];
            if let Outcome::Converted { warnings, .. } = outcome {
                *outcome = Outcome::Failed {
                    position: None,
                    message: format!(
                        "{} is complete but the rename may not survive a crash: cannot sync {}: {e}",
                        output.display(),
                        dir.display()
                    ),
                    warnings: std::mem::take(warnings),
                };
            }
        }
    }
    results
}

/// `fsync` every file, up to [`SYNC_THREADS`] at a time; one result per file, in order.
fn sync_files(files: &[&File]) -> Vec<io::Result<()>> {
    parallel(files, |file| convert::sync_file(file))
}

fn sync_dirs(dirs: &[&Path]) -> Vec<io::Result<()>> {
    parallel(dirs, |dir| convert::sync_dir(dir))
}

/// Apply `sync` to every item, spreading them over up to [`SYNC_THREADS`] scoped threads: syncs
/// issued together are flushed together by the journal.
fn parallel<I: Sync>(
    items: &[I],
    sync: impl Fn(&I) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    if items.len() <= 1 {
        return items.iter().map(&sync).collect();
    }
    let per_thread = items.len().div_ceil(SYNC_THREADS.min(items.len()));
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| {
                let sync = &sync;
                scope.spawn(move || chunk.iter().map(sync).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                // A sync cannot panic; should it, resume the panic on this thread.
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kml::Warnings;
    use crate::temp::Temp;
    use std::fs;
    use std::io::Write;

    fn pending(dir: &Path, name: &str, text: &str) -> Pending<String> {
        let temp = Temp::create(dir, false).unwrap();
        temp.as_file().write_all(text.as_bytes()).unwrap();
        Pending {
            tag: name.to_owned(),
            output: dir.join(name),
            written: Written {
                temp,
                rows: 1,
                warnings: Warnings::default(),
            },
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_group_is_renamed_into_place_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let group = vec![
            pending(dir.path(), "a.csv", "A"),
            pending(&sub, "b.csv", "B"),
            pending(dir.path(), "c.csv", "C"),
        ];
        let stop = AtomicBool::new(false);
        let results = commit_group(group, &stop);
        let tags: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(tags, ["a.csv", "b.csv", "c.csv"]);
        assert!(results
            .iter()
            .all(|r| matches!(r.2, Outcome::Converted { rows: 1, .. })));
        assert_eq!(names(dir.path()), ["a.csv", "c.csv", "sub"]);
        assert_eq!(fs::read_to_string(sub.join("b.csv")).unwrap(), "B");
    }

    #[test]
    fn nothing_is_renamed_once_a_stop_is_requested() {
        let dir = tempfile::tempdir().unwrap();
        let group = vec![
            pending(dir.path(), "a.csv", "A"),
            pending(dir.path(), "b.csv", "B"),
        ];
        let stop = AtomicBool::new(true);
        let results = commit_group(group, &stop);
        assert!(results.iter().all(|r| matches!(r.2, Outcome::Interrupted)));
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn an_output_another_run_placed_is_kept_and_only_that_job_is_told() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.csv"), "theirs").unwrap();
        let group = vec![
            pending(dir.path(), "a.csv", "A"),
            pending(dir.path(), "b.csv", "B"),
        ];
        let results = commit_group(group, &AtomicBool::new(false));
        assert!(matches!(results[0].2, Outcome::Converted { .. }));
        assert!(matches!(results[1].2, Outcome::ConvertedElsewhere { .. }));
        assert_eq!(
            fs::read_to_string(dir.path().join("b.csv")).unwrap(),
            "theirs"
        );
        assert_eq!(names(dir.path()), ["a.csv", "b.csv"]);
    }

    #[test]
    fn parallel_keeps_the_order_of_results() {
        let items: Vec<usize> = (0..100).collect();
        let results = parallel(&items, |&i| {
            if i % 7 == 3 {
                Err(io::Error::other(i.to_string()))
            } else {
                Ok(())
            }
        });
        assert_eq!(results.len(), 100);
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(()) => assert_ne!(i % 7, 3),
                Err(e) => assert_eq!(e.to_string(), i.to_string()),
            }
        }
    }

    #[test]
    fn the_committer_reports_every_job_and_ends_with_its_senders() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        thread::scope(|scope| {
            let queue = start(scope, &stop, |tag: String, _, outcome| {
                assert!(matches!(outcome, Outcome::Converted { .. }));
                seen.push(tag);
            })
            .unwrap();
            for i in 0..300 {
                queue
                    .send(pending(dir.path(), &format!("{i:03}.csv"), "x"))
                    .unwrap();
            }
        });
        seen.sort();
        assert_eq!(seen.len(), 300);
        assert_eq!(names(dir.path()).len(), 300);
        assert!(names(dir.path()).iter().all(|n| n.ends_with(".csv")));
    }
}

//! Grouped durability: make finished temporaries durable together, then give them their names.
//!
//! A CSV must never appear under its name before its data is on disk, or a power cut could leave
//! a complete-looking name in front of missing data. Doing that one file at a time
//! (`fsync(file)`, link or rename, `fsync(dir)`) costs two serial disk flushes per file, which
//! for a batch of small files takes far longer than converting them. Instead, workers only write
//! their temporaries and queue them here, where two stages follow:
//!
//! 1. syncing: up to 16 threads each take the next temporary and `fsync` it. Many
//!    syncs in flight at once are committed together by the file system's journal instead of
//!    one flush each, and a big file's sync never holds up the small ones behind it. A small
//!    CSV (up to `SMALL`) goes straight to the committer instead, on Linux 5.8 and later and
//!    on ext4, XFS, btrfs or F2FS;
//! 2. publishing: one committer thread gathers temporaries into a group for as long as they
//!    keep coming (each within `GATHER` of the last, `GATHER_AT_MOST` in all, or while the
//!    previous group was published), starting each small one's write-back as it arrives. It
//!    makes the small ones durable with one `syncfs` per file system if there are enough of
//!    them, or an `fsync` each (`settle`). It gives each
//!    temporary whose sync succeeded its final name
//!    ([`crate::output::temp::Temp::publish`]: never before, and never once a stop was
//!    requested: those temporaries are dropped instead), then syncs each folder that received a
//!    name once (`fsync` of the directory), so that the names themselves survive a power cut,
//!    and only then reports the files.
//!
//! Threads start only when work waits for them (`crate::output::pool`): `-j1` over
//! thousands of small files runs on four threads (the main one, a worker, the thread that
//! writes the CSVs it holds, see [`crate::output::held`], and the committer) and makes about
//! one `syncfs` and one folder sync per 250 ms, the same as `-j2`.
//!
//! The queues are bounded: workers wait rather than holding an unbounded number of open
//! temporaries. A failing sync fails only the file it concerns.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use crate::kml::{Position, Warnings};
use crate::output::disk;
use crate::output::durable::{self, parent_or_dot};
use crate::output::limits;
use crate::output::pool::Pool;
use crate::output::temp::{Published, Replaced, Temp};

/// What became of one job.
#[derive(Debug)]
pub enum Outcome {
    /// The output is in place.
    Converted { rows: u64, warnings: Warnings },
    /// Another process created the output while this one was converting; its file was kept.
    ConvertedElsewhere { warnings: Warnings },
    /// Nothing was written; the message is printed after the input's path (and the position
    /// in it, when the reader knows one).
    Failed {
        position: Option<Position>,
        message: String,
        warnings: Warnings,
        /// The input's content is at fault (malformed XML, a bad encoding or KMZ, a warning
        /// under `--strict`), not reading it or writing the CSV: it fails again until it
        /// changes (see `batch::failed`).
        of_input: bool,
    },
    /// Stopped by a signal before completion; nothing was written.
    Interrupted,
}

/// A conversion that is complete in its temporary file, not yet durable nor named.
#[derive(Debug)]
pub struct Written {
    pub temp: Temp,
    pub rows: u64,
    pub warnings: Warnings,
}

// How many temporaries may wait for the committer (workers block beyond), the largest group
// made durable at once and the threads that call `fsync` at the same time come from
// [`crate::output::limits`]: 1024, 256 and 16 unless few files may be open.
/// How long a group waits for its next temporary; it waits no longer once every worker is done.
const GATHER: Duration = Duration::from_millis(20);
/// How long a group may gather in all: how much later than without grouping a CSV may be
/// published.
const GATHER_AT_MOST: Duration = Duration::from_millis(250);

/// A finished temporary waiting to be made durable and renamed; `tag` says which job it is.
pub struct Pending<T> {
    pub tag: T,
    pub output: PathBuf,
    pub written: Written,
}

/// A CSV up to this size is left to its group's `syncfs` (see [`settle`]): for it, a call of
/// its own costs more than its data. A bigger one is `fsync`ed as soon as it is finished.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const SMALL: u64 = 1 << 20;

/// The fewest small files of one group and file system that are made durable by a `syncfs`.
const GROUP_SYNCFS: usize = 8;

/// Where a temporary stands when it reaches the committer.
enum SyncState {
    /// `fsync`ed, with the result.
    Done(io::Result<()>),
    /// Small: made durable by the committer, with the rest of its group on file system `dev`.
    Deferred { dev: u64 },
    /// Not synced because the run is stopping.
    Stopped,
}

/// A temporary on its way to the committer.
type Synced<T> = (Pending<T>, SyncState);

/// A temporary ready to be named: its sync's result, `None` if it was not synced because the
/// run is stopping.
type Settled<T> = (Pending<T>, Option<io::Result<()>>);

/// Where workers hand in their finished temporaries.
pub struct Queue<'scope, 'env, T> {
    to_sync: Pool<'scope, 'env, Pending<T>>,
    to_publish: SyncSender<Synced<T>>,
}

impl<T> Clone for Queue<'_, '_, T> {
    fn clone(&self) -> Self {
        Queue {
            to_sync: self.to_sync.clone(),
            to_publish: self.to_publish.clone(),
        }
    }
}

impl<'scope, T: Send + 'scope> Queue<'scope, '_, T> {
    /// Hand in a finished temporary; it comes back if the committer is gone. Waits while the
    /// queue is full.
    pub fn send(&self, pending: Pending<T>) -> Result<(), Pending<T>> {
        match group_sync::small_on(pending.written.temp.as_file()) {
            // Straight to the committer, whose `syncfs` of the group makes it durable: a hop
            // through a syncing thread would cost two thread switches for nothing.
            Some(dev) => self
                .to_publish
                .send((pending, SyncState::Deferred { dev }))
                .map_err(|e| e.0 .0),
            None => {
                self.to_sync.send(pending);
                Ok(())
            }
        }
    }
}

/// Start the committer on `scope`, with its pools of syncing and releasing threads: they commit
/// what is sent on the returned queue and hand each job's outcome to `done`. They end once every
/// clone of the queue is dropped. Threads start only for work that waits for one (see
/// `Pool`), and `files` (how many will be sent, at most) bounds them: a batch of small files
/// made durable by `syncfs` needs none but the committer.
pub fn start<'scope, 'env, T, F>(
    scope: &'scope thread::Scope<'scope, 'env>,
    stop: &'scope AtomicBool,
    files: usize,
    mut done: F,
) -> io::Result<Queue<'scope, 'env, T>>
where
    T: Send + 'scope,
    F: FnMut(T, PathBuf, Outcome) + Send + 'scope,
{
    let limits = limits::get();
    let threads = limits.sync_threads.min(files).max(1);
    let (synced, to_publish) = mpsc::sync_channel::<Synced<T>>(limits.queue);
    let to_committer = synced.clone();
    let to_sync = Pool::new(
        scope,
        "kml2csv-sync",
        threads,
        limits.queue,
        move |pending: Pending<T>| {
            let state = if stop.load(Ordering::Relaxed) {
                SyncState::Stopped
            } else {
                SyncState::Done(durable::sync_file(pending.written.temp.as_file()))
            };
            // Should the committer be gone, the temporary is dropped, which removes it.
            let _ = to_committer.send((pending, state));
        },
    );
    let queue = Queue {
        to_sync,
        to_publish: synced,
    };
    thread::Builder::new()
        .name("kml2csv-committer".to_owned())
        .spawn_scoped(scope, move || {
            // Threads that let go of the outputs `--force` and `--update` replaced (see
            // [`Replaced`]); each one waiting is an open descriptor, counted in the limits.
            let release = Pool::new(scope, "kml2csv-release", threads, limits.queue, drop);
            // Threads that sync the files of a group too small for a `syncfs`, and the folders
            // of a group, all at once: syncs in flight together are flushed together.
            let syncs: Pool<Job<'scope>> =
                Pool::new(scope, "kml2csv-flush", threads, limits.group, |job: Job| {
                    job()
                });
            while let Ok(first) = to_publish.recv() {
                // Let a group fill while files keep coming: every group costs a folder sync
                // (and, for small files, a `syncfs`), which two files or two hundred cost
                // alike. So one worker's steady stream makes as few groups as many workers'.
                let opened = Instant::now();
                let mut group = vec![writing_back(first)];
                while group.len() < limits.group {
                    let until = (Instant::now() + GATHER).min(opened + GATHER_AT_MOST);
                    let left = until.saturating_duration_since(Instant::now());
                    match to_publish.recv_timeout(left) {
                        Ok(next) => group.push(writing_back(next)),
                        Err(_) => break,
                    }
                }
                let fsync_each = |files: &[&File]| {
                    let owned = files.iter().map(|file| file.try_clone()).collect();
                    on_pool(&syncs, owned, durable::sync_file)
                };
                let group = settle(group, stop, group_sync::syncfs, fsync_each);
                let sync_dirs = |dirs: &[&Path]| {
                    let owned = dirs.iter().map(|dir| Ok(dir.to_path_buf())).collect();
                    on_pool(&syncs, owned, |dir: &PathBuf| durable::sync_dir(dir))
                };
                for (tag, output, outcome) in
                    publish_group(group, stop, sync_dirs, |replaced| release.send(replaced))
                {
                    done(tag, output, outcome);
                }
            }
        })?;
    Ok(queue)
}

/// `synced`, whose data the disk starts writing now if it waits for its group's `syncfs`: the
/// disk then works while the group gathers and the workers convert, and the last group's
/// `syncfs`, which the whole run waits for, finds little left to write (on 2000 small files it
/// wrote the last group's 20 MB after the last conversion had ended).
fn writing_back<T>(synced: Synced<T>) -> Synced<T> {
    if let (pending, SyncState::Deferred { .. }) = &synced {
        disk::start_write_back_all(pending.written.temp.as_file());
    }
    synced
}

/// A sync to do on the committer's pool.
type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// Apply `sync` to every item at once on `pool`'s threads; one result per item, in order. An
/// item that could not be made (a file whose descriptor could not be duplicated) fails alone
/// with that error.
fn on_pool<'scope, I: Send + 'scope>(
    pool: &Pool<'scope, '_, Job<'scope>>,
    items: Vec<io::Result<I>>,
    sync: fn(&I) -> io::Result<()>,
) -> Vec<io::Result<()>> {
    if items.len() <= 1 {
        return items.into_iter().map(|item| sync(&item?)).collect();
    }
    let count = items.len();
    let (reply, replies) = mpsc::channel();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(item) => {
                let reply = reply.clone();
                pool.send(Box::new(move || {
                    let _ = reply.send((i, sync(&item)));
                }));
            }
            Err(e) => {
                let _ = reply.send((i, Err(e)));
            }
        }
    }
    drop(reply);
    let mut results: Vec<Option<io::Result<()>>> = (0..count).map(|_| None).collect();
    for (i, result) in replies {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("a syncing thread ended"))))
        .collect()
}

/// Make a group durable and name it: sync all data (in parallel), name each file, sync each
/// folder once. Returns every job's outcome, in the group's order.
pub fn commit_group<T>(group: Vec<Pending<T>>, stop: &AtomicBool) -> Vec<(T, PathBuf, Outcome)> {
    let synced: Vec<Option<io::Result<()>>> = if stop.load(Ordering::Relaxed) {
        group.iter().map(|_| None).collect()
    } else {
        let files: Vec<&File> = group.iter().map(|p| p.written.temp.as_file()).collect();
        sync_files(&files).into_iter().map(Some).collect()
    };
    publish_group(
        group.into_iter().zip(synced).collect(),
        stop,
        sync_dirs,
        drop,
    )
}

/// Make the small temporaries of `group` durable together: one `syncfs` per file system
/// instead of one `fsync` each, which for a batch of small files cost more than converting
/// them. `syncfs` names no file when it fails, so then each of them is `fsync`ed, and the
/// failure falls on the files it concerns.
fn settle<T>(
    group: Vec<Synced<T>>,
    stop: &AtomicBool,
    syncfs: impl Fn(&File) -> io::Result<()>,
    fsync_each: impl Fn(&[&File]) -> Vec<io::Result<()>>,
) -> Vec<Settled<T>> {
    let mut deferred: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut settled: Vec<Settled<T>> = Vec::with_capacity(group.len());
    for (i, (pending, state)) in group.into_iter().enumerate() {
        let result = match state {
            SyncState::Done(result) => Some(result),
            SyncState::Deferred { dev } => {
                deferred.entry(dev).or_default().push(i);
                None
            }
            SyncState::Stopped => None,
        };
        settled.push((pending, result));
    }
    for members in deferred.values() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let files: Vec<&File> = members
            .iter()
            .map(|&i| settled[i].0.written.temp.as_file())
            .collect();
        // A few files are synced on their own: a `syncfs` also waits for whatever else is
        // being written to the file system, which only a group of many files makes worth it.
        let synced_together = files.len() >= GROUP_SYNCFS && syncfs(files[0]).is_ok();
        let synced: Vec<io::Result<()>> = if synced_together {
            files.iter().map(|_| Ok(())).collect()
        } else {
            fsync_each(&files)
        };
        for (&i, result) in members.iter().zip(synced) {
            settled[i].1 = Some(result);
        }
    }
    settled
}

/// Rename every synced temporary of `group` into place, then sync each folder that received one,
/// once. Returns every job's outcome, in the group's order; the outputs replaced go to
/// `release`.
fn publish_group<T>(
    group: Vec<Settled<T>>,
    stop: &AtomicBool,
    sync_dirs: impl Fn(&[&Path]) -> Vec<io::Result<()>>,
    release: impl Fn(Replaced),
) -> Vec<(T, PathBuf, Outcome)> {
    // Rename only what is durable. A temporary dropped here is removed from disk.
    let mut results = Vec::with_capacity(group.len());
    let mut placed_in: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    let mut replaced_files = Vec::new();
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
                of_input: false,
            },
            None => Outcome::Interrupted,
            Some(Ok(())) => match temp.publish_holding(&output, limits::get().hold_replaced) {
                Ok((Published::Placed, replaced)) => {
                    replaced_files.extend(replaced);
                    placed_in
                        .entry(parent_or_dot(&output).to_path_buf())
                        .or_default()
                        .push(i);
                    Outcome::Converted { rows, warnings }
                }
                Ok((Published::AlreadyThere, _)) => Outcome::ConvertedElsewhere { warnings },
                Err(message) => Outcome::Failed {
                    position: None,
                    message,
                    warnings,
                    of_input: false,
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
                    of_input: false,
                };
            }
        }
    }
    // Only once the new names are durable: until then a crash may bring the old file back.
    replaced_files.into_iter().for_each(release);
    results
}

/// `fsync` every file, up to [`limits::Limits::sync_threads`] at a time; one result per file, in order.
fn sync_files(files: &[&File]) -> Vec<io::Result<()>> {
    parallel(files, |file| durable::sync_file(file))
}

fn sync_dirs(dirs: &[&Path]) -> Vec<io::Result<()>> {
    parallel(dirs, |dir| durable::sync_dir(dir))
}

/// Apply `sync` to every item, spreading them over up to [`limits::Limits::sync_threads`] scoped threads: syncs
/// issued together are flushed together by the journal.
fn parallel<I: Sync>(
    items: &[I],
    sync: impl Fn(&I) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    if items.len() <= 1 {
        return items.iter().map(&sync).collect();
    }
    let per_thread = items
        .len()
        .div_ceil(limits::get().sync_threads.min(items.len()));
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

/// `syncfs` where it is a sound way to make files durable.
mod group_sync {
    use std::fs::File;
    use std::io;

    /// The file system of `file` if `file` is small and [`syncfs`] may make it durable.
    #[cfg(target_os = "linux")]
    pub fn small_on(file: &File) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        if !syncfs_reports_errors() {
            return None;
        }
        let meta = file.metadata().ok()?;
        (meta.len() <= super::SMALL && syncs_whole(file)).then_some(meta.dev())
    }

    /// Does `syncfs` make the data of `file`'s file system as durable as an `fsync` would? So
    /// on the local file systems whose `syncfs` writes everything back and flushes the disk.
    /// Not on others: a FUSE file system's `syncfs` does not pass the request on to the program
    /// behind it, which an `fsync` does.
    #[cfg(target_os = "linux")]
    fn syncs_whole(file: &File) -> bool {
        crate::output::disk::local(file).is_some()
    }

    #[cfg(not(target_os = "linux"))]
    pub fn small_on(_file: &File) -> Option<u64> {
        None
    }

    /// Write back everything of the file system `file` is on and flush the disk's cache.
    #[cfg(target_os = "linux")]
    pub fn syncfs(file: &File) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor `file` keeps open.
        if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn syncfs(_file: &File) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Until Linux 5.8 `syncfs` returned success even when the write-back failed, which would
    /// let a CSV whose data never reached the disk take its name.
    #[cfg(target_os = "linux")]
    fn syncfs_reports_errors() -> bool {
        use std::sync::OnceLock;
        static REPORTS: OnceLock<bool> = OnceLock::new();
        *REPORTS.get_or_init(|| {
            // SAFETY: `uname` fills the struct it is given; all zeroes is a valid start.
            let mut names: libc::utsname = unsafe { std::mem::zeroed() };
            if unsafe { libc::uname(&mut names) } != 0 {
                return false;
            }
            // SAFETY: `uname` NUL-terminates `release`.
            let release = unsafe { std::ffi::CStr::from_ptr(names.release.as_ptr()) };
            at_least(&release.to_string_lossy(), (5, 8))
        })
    }

    /// Is the kernel `release` ("6.1.0-18-amd64") at least version `want`?
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn at_least(release: &str, want: (u32, u32)) -> bool {
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().ok());
        match (numbers.next().flatten(), numbers.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor) >= want,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::names;
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
    fn small_files_share_one_syncfs_and_a_failing_one_falls_back_to_each_file() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().unwrap();
        // Enough small files on file system 1 for a syncfs, one alone on file system 2; the
        // contents' lengths are how the fake fsync below tells the files apart.
        let group = || {
            let mut group: Vec<Synced<String>> = (1..=GROUP_SYNCFS + 1)
                .map(|n| {
                    let text = "x".repeat(n);
                    let state = SyncState::Deferred { dev: 1 };
                    (pending(dir.path(), &format!("{n}.csv"), &text), state)
                })
                .collect();
            group.push((
                pending(dir.path(), "alone.csv", "x"),
                SyncState::Deferred { dev: 2 },
            ));
            group.push((
                pending(dir.path(), "done.csv", "x"),
                SyncState::Done(Ok(())),
            ));
            group.push((
                pending(dir.path(), "broken.csv", "x"),
                SyncState::Done(Err(io::Error::other("disk on fire"))),
            ));
            group.push((pending(dir.path(), "stopped.csv", "x"), SyncState::Stopped));
            group
        };
        let (syncfs_calls, fsync_calls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        // Only the file of four bytes cannot be synced.
        let fsync = |file: &File| {
            fsync_calls.fetch_add(1, Ordering::Relaxed);
            match file.metadata().unwrap().len() {
                4 => Err(io::Error::other("bad block")),
                _ => Ok(()),
            }
        };
        let many = GROUP_SYNCFS + 1;
        for syncfs_fails in [false, true] {
            syncfs_calls.store(0, Ordering::Relaxed);
            fsync_calls.store(0, Ordering::Relaxed);
            let syncfs = |_: &File| {
                syncfs_calls.fetch_add(1, Ordering::Relaxed);
                if syncfs_fails {
                    Err(io::Error::other("syncfs failed"))
                } else {
                    Ok(())
                }
            };
            let fsync_each = |files: &[&File]| files.iter().map(|f| fsync(f)).collect();
            let settled = settle(group(), &AtomicBool::new(false), syncfs, fsync_each);
            let results: Vec<Option<bool>> = settled
                .iter()
                .map(|(_, r)| r.as_ref().map(|r| r.is_ok()))
                .collect();
            // One syncfs for the many files of file system 1, none for the lone file.
            assert_eq!(syncfs_calls.load(Ordering::Relaxed), 1);
            let mut expected = vec![Some(true); many];
            if syncfs_fails {
                // It names no file: each is fsynced, and only the one that cannot be fails.
                assert_eq!(fsync_calls.load(Ordering::Relaxed), many + 1);
                expected[3] = Some(false);
            } else {
                assert_eq!(fsync_calls.load(Ordering::Relaxed), 1);
            }
            expected.extend([Some(true), Some(true), Some(false), None]);
            assert_eq!(results, expected, "syncfs fails: {syncfs_fails}");
        }
        // Once a stop is requested, nothing deferred is synced.
        syncfs_calls.store(0, Ordering::Relaxed);
        fsync_calls.store(0, Ordering::Relaxed);
        let settled = settle(
            group(),
            &AtomicBool::new(true),
            |_: &File| {
                syncfs_calls.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
            |files: &[&File]| files.iter().map(|f| fsync(f)).collect(),
        );
        assert_eq!(syncfs_calls.load(Ordering::Relaxed), 0);
        assert_eq!(fsync_calls.load(Ordering::Relaxed), 0);
        assert!(settled[..=many].iter().all(|(_, r)| r.is_none()));
    }

    #[test]
    fn kernel_releases_are_compared_by_major_and_minor() {
        use group_sync::at_least;
        assert!(at_least("6.1.0-18-amd64", (5, 8)));
        assert!(at_least("5.8.0", (5, 8)));
        assert!(at_least("5.10.0-foo", (5, 8)));
        assert!(!at_least("5.4.0-150-generic", (5, 8)));
        assert!(!at_least("4.19.0", (5, 8)));
        assert!(!at_least("", (5, 8)));
        assert!(!at_least("six", (5, 8)));
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
            let queue = start(scope, &stop, 3, |tag: String, _, outcome| {
                assert!(matches!(outcome, Outcome::Converted { .. }));
                seen.push(tag);
            })
            .unwrap();
            // Small ones go straight to the committer, big ones through the syncing threads.
            let big = "x".repeat(SMALL as usize + 1);
            for i in 0..300 {
                let text = if i % 50 == 0 { big.as_str() } else { "x" };
                let sent = queue.send(pending(dir.path(), &format!("{i:03}.csv"), text));
                assert!(sent.is_ok(), "the committer ended early");
            }
        });
        seen.sort();
        assert_eq!(seen.len(), 300);
        assert_eq!(names(dir.path()).len(), 300);
        assert!(names(dir.path()).iter().all(|n| n.ends_with(".csv")));
        let size = |i: usize| {
            fs::metadata(dir.path().join(format!("{i:03}.csv")))
                .unwrap()
                .len()
        };
        assert_eq!(size(50), SMALL + 1);
        assert_eq!(size(51), 1);
    }
}

//! How many files and threads a run may hold at once, from what the system allows.
//!
//! Each worker holds its input and its temporary open, and every finished temporary stays open
//! until it is named (the queues and the group of [`crate::output::commit`]). With the usual limit of
//! 1024 open files that is far from a problem, but under `ulimit -n 100` most of a batch
//! failed with "Too many open files". So the soft limit is first raised to the hard one (as
//! most servers and runtimes do), and the queue, the group, the syncing threads and the
//! workers are then sized to fit in what is left.

use std::sync::OnceLock;

/// Descriptors kept aside for everything else: standard streams, folders being synced, the
/// report, the merged CSV, the zip reader's second handle.
const RESERVE: usize = 24;
/// Descriptors one worker may hold at once: its input, its temporary, the temporary's
/// duplicate for direct writes, a spooled copy. A worker whose CSV is held in memory (see
/// [`crate::output::held`]) holds no temporary until it outgrows that; the writing thread that
/// writes it holds one, and there are no more of those than workers.
const PER_WORKER: usize = 4;

/// What a run may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Finished temporaries that may wait in each queue of the committer.
    pub queue: usize,
    /// The largest group of temporaries named at once.
    pub group: usize,
    /// Threads that call `fsync` at the same time.
    pub sync_threads: usize,
    /// Workers converting at the same time.
    pub workers: usize,
    /// Whether the outputs `--force` replaced are held open until released on other threads
    /// (see [`crate::output::temp::Replaced`]).
    pub hold_replaced: bool,
    /// The open-file limit they were derived from, `None` where there is none to speak of.
    pub open_files: Option<usize>,
}

impl Limits {
    /// The limits for a process that may have `open_files` descriptors open (`None`: no
    /// practical limit).
    pub fn for_open_files(open_files: Option<usize>) -> Limits {
        let budget = open_files.map_or(usize::MAX, |n| n.saturating_sub(RESERVE).max(8));
        // Long enough that workers do not wait while the committer makes a group durable: a
        // `syncfs` of 256 small CSVs takes 15-40 ms, in which two workers finish 150-400 more.
        // With 128 they stopped for most of each; 1024 took -j2 over 2000 small files from
        // 0.29 s to 0.25 s (median of ten runs in turns).
        let queue = (budget / 8).clamp(1, 1024);
        let group = (budget / 4).clamp(1, 256);
        let sync_threads = (budget / 32).clamp(1, 16);
        let base = committer_base(queue, group, sync_threads);
        // The outputs that --force replaced, held until released: a group's, a queue's and one
        // per releasing thread (as many as syncing threads); only where that leaves room.
        let replaced = group + queue + sync_threads;
        let hold_replaced = budget.saturating_sub(base) >= replaced + 2 * PER_WORKER;
        let committer = base + if hold_replaced { replaced } else { 0 };
        Limits {
            queue,
            group,
            sync_threads,
            workers: (budget.saturating_sub(committer) / PER_WORKER).max(1),
            hold_replaced,
            open_files,
        }
    }
}

/// The limits of this process, decided once (raising the soft open-file limit first, and
/// making room in the table of descriptors for what they allow: see `make_room`).
pub fn get() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let limits = Limits::for_open_files(open_files());
        make_room(limits.descriptors());
        limits
    })
}

impl Limits {
    /// Descriptors the committer's queues and group and a few workers may hold at once.
    fn descriptors(&self) -> usize {
        let base = committer_base(self.queue, self.group, self.sync_threads);
        let most = base + RESERVE + 4 * PER_WORKER;
        self.open_files.map_or(most, |open| most.min(open))
    }
}

/// What the committer holds open without `--force`'s replaced outputs: the queues (two),
/// the group and each syncing thread's file and folder.
fn committer_base(queue: usize, group: usize, sync_threads: usize) -> usize {
    2 * queue + group + 2 * sync_threads
}

/// Grow the process's table of descriptors to `n` slots now, while (nearly always) only
/// the main thread runs. Linux grows it by doubling as descriptors are opened, and a
/// process with several threads waits for an RCU grace period at each step, during which
/// every other thread that opens a file waits too: on 2000 small files, whose finished
/// temporaries stay open until their group is synced, both workers stood still for
/// milliseconds at a time. Duplicating a descriptor to slot `n - 1` and closing it again
/// leaves the table that large.
#[cfg(unix)]
fn make_room(n: usize) {
    let Ok(last) = libc::c_int::try_from(n.saturating_sub(1)) else {
        return;
    };
    for fd in [2, 1, 0] {
        // SAFETY: F_DUPFD only duplicates `fd` (failing if it is not open); the duplicate is
        // this function's own and closed at once.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, last) };
        if dup >= 0 {
            // SAFETY: `dup` was opened above and nothing else knows of it.
            unsafe { libc::close(dup) };
            return;
        }
    }
}

#[cfg(not(unix))]
fn make_room(_: usize) {}

#[cfg(unix)]
fn open_files() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        // More than this is never needed; some systems report an "unlimited" hard limit that
        // setrlimit then refuses.
        let wanted = limit.rlim_max.min(1 << 16);
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = wanted;
            }
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn open_files() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of descriptors has room for what the limits allow before any is opened
    /// (Linux shows its size as FDSize).
    #[cfg(target_os = "linux")]
    #[test]
    fn room_is_made_for_the_descriptors_a_run_may_hold() {
        let fd_size = || -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
            line["FDSize:".len()..].trim().parse().unwrap()
        };
        let wanted = get().descriptors();
        // More than the 64 slots a process starts with, unless `ulimit -n` says otherwise.
        assert!(
            wanted > 64 || get().open_files.is_some_and(|n| n <= 64),
            "{wanted}"
        );
        assert!(fd_size() >= wanted, "{} < {wanted}", fd_size());
    }

    #[test]
    fn the_usual_limit_leaves_the_defaults() {
        let limits = Limits::for_open_files(Some(1 << 16));
        assert_eq!(
            (limits.queue, limits.group, limits.sync_threads),
            (1024, 256, 16)
        );
        assert!(limits.workers > 1000 && limits.hold_replaced);
        assert_eq!(Limits::for_open_files(None).group, 256);
    }

    // See: issue 17, item 3b.
    #[test]
    fn a_low_open_file_limit_shrinks_everything_to_fit() {
        for open in [16, 32, 64, 100, 200, 1024, 4096, 1 << 16] {
            let l = Limits::for_open_files(Some(open));
            let replaced = if l.hold_replaced {
                l.group + l.queue + l.sync_threads
            } else {
                0
            };
            let held =
                2 * l.queue + l.group + 2 * l.sync_threads + replaced + PER_WORKER * l.workers;
            assert!(
                held + RESERVE <= open.max(RESERVE + 8) + PER_WORKER,
                "{open}: {l:?} holds {held}"
            );
            assert!(l.workers >= 1 && l.queue >= 1 && l.group >= 1);
        }
        assert!(Limits::for_open_files(Some(100)).workers >= 2);
    }
}

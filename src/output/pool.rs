//! Threads started when work waits for one, not before.
//!
//! The committer needs threads that `fsync` (many syncs in flight are flushed together by the
//! journal) and threads that let go of replaced outputs (freeing a big file may wait for the
//! disk). Starting sixteen of each up front, and more for every group, made `-j1` over 2000
//! small files start over a hundred threads, most of which never did anything: small files
//! are made durable by one `syncfs` per group, and only `--force` replaces outputs. A pool here
//! starts a thread only when a job arrives while none is idle, up to its limit, and keeps it
//! for the rest of the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

/// A pool of up to `max` threads on `scope` that apply one function to each job sent.
pub struct Pool<'scope, 'env, J> {
    scope: &'scope thread::Scope<'scope, 'env>,
    jobs: SyncSender<J>,
    shared: Arc<Shared<'scope, J>>,
}

struct Shared<'scope, J> {
    queued: Mutex<Receiver<J>>,
    work: Box<dyn Fn(J) + Send + Sync + 'scope>,
    /// Threads started, and of those, how many wait for a job.
    started: AtomicUsize,
    idle: AtomicUsize,
    max: usize,
    name: &'static str,
}

impl<'scope, 'env, J: Send + 'scope> Pool<'scope, 'env, J> {
    /// A pool that starts no thread until the first job; its threads are named `name-N` and
    /// end once every clone of the pool is dropped and the jobs sent are done. Up to `waiting`
    /// jobs wait for a thread; a sender waits beyond that (each job may hold open files).
    pub fn new(
        scope: &'scope thread::Scope<'scope, 'env>,
        name: &'static str,
        max: usize,
        waiting: usize,
        work: impl Fn(J) + Send + Sync + 'scope,
    ) -> Self {
        let (jobs, queued) = mpsc::sync_channel(waiting);
        Pool {
            scope,
            jobs,
            shared: Arc::new(Shared {
                queued: Mutex::new(queued),
                work: Box::new(work),
                started: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                max: max.max(1),
                name,
            }),
        }
    }

    /// Hand `job` to a thread of the pool, starting one if none is idle and the limit allows;
    /// waits while the queue is full. Should no thread exist nor start (the system refuses one), the job is done here: it is
    /// never lost, only done without company.
    pub fn send(&self, job: J) {
        if self.shared.idle.load(Ordering::Acquire) == 0 && !self.grow() && self.started() == 0 {
            (self.shared.work)(job);
            return;
        }
        if let Err(unsent) = self.jobs.send(job) {
            // The receiver lives in `shared`, which this pool holds: it cannot be gone.
            (self.shared.work)(unsent.0);
        }
    }

    /// Threads started so far.
    pub fn started(&self) -> usize {
        self.shared.started.load(Ordering::Acquire)
    }

    /// Start one more thread unless the pool is at its limit; whether one started.
    fn grow(&self) -> bool {
        let shared = &self.shared;
        let n = shared.started.fetch_add(1, Ordering::AcqRel);
        if n >= shared.max {
            shared.started.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let worker = Arc::clone(shared);
        let started = thread::Builder::new()
            .name(format!("{}-{n}", shared.name))
            .spawn_scoped(self.scope, move || loop {
                worker.idle.fetch_add(1, Ordering::AcqRel);
                let next = match worker.queued.lock() {
                    Ok(queued) => queued.recv(),
                    Err(_) => return,
                };
                worker.idle.fetch_sub(1, Ordering::AcqRel);
                // All senders gone: the run is over.
                let Ok(job) = next else { return };
                (worker.work)(job);
            });
        if started.is_err() {
            shared.started.fetch_sub(1, Ordering::AcqRel);
        }
        started.is_ok()
    }
}

impl<J> Clone for Pool<'_, '_, J> {
    fn clone(&self) -> Self {
        Pool {
            scope: self.scope,
            jobs: self.jobs.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn no_thread_starts_before_a_job_and_every_job_is_done() {
        let done = AtomicUsize::new(0);
        let started = thread::scope(|scope| {
            let pool = Pool::new(scope, "test", 4, 8, |n: usize| {
                done.fetch_add(n, Ordering::Relaxed);
            });
            assert_eq!(pool.started(), 0);
            for n in 1..=100 {
                pool.send(n);
            }
            pool.started()
        });
        assert_eq!(done.load(Ordering::Relaxed), 5050);
        assert!((1..=4).contains(&started), "{started} threads");
    }

    #[test]
    fn jobs_that_wait_get_threads_up_to_the_limit() {
        // Every job blocks until released: each new job finds no idle thread.
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        thread::scope(|scope| {
            let pool = Pool::new(scope, "test", 3, 8, |_: ()| {
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10));
            });
            for _ in 0..6 {
                pool.send(());
                thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(pool.started(), 3);
            for _ in 0..6 {
                release.send(()).unwrap();
            }
        });
    }
}

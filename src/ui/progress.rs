//! The progress bar on stderr: files done of all, megabytes, rate and time left.
//!
//! Only on a terminal and never with `--quiet`, so cron mails and pipes get none of it. There is
//! one bar per process, reachable from the reader's byte counter and from the printer (which
//! hides it while a message is printed) without threading it through every call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

struct Bar {
    bar: ProgressBar,
    files: u64,
}

static BAR: Mutex<Option<Bar>> = Mutex::new(None);
static FILES_DONE: AtomicU64 = AtomicU64::new(0);

fn with_bar(f: impl FnOnce(&Bar)) {
    let guard = BAR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bar) = guard.as_ref() {
        f(bar);
    }
}

/// Show a bar for `files` inputs of `bytes` bytes in all.
pub fn start(files: u64, bytes: u64) {
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} files  {wide_bar}  {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(format!("0/{files}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    FILES_DONE.store(0, Ordering::Relaxed);
    *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(Bar { bar, files });
}

/// Bytes of input read.
pub fn add_bytes(n: u64) {
    if n > 0 {
        with_bar(|b| b.bar.inc(n));
    }
}

/// One more input is done (converted, skipped or failed).
pub fn file_done() {
    with_bar(|b| {
        let done = FILES_DONE.fetch_add(1, Ordering::Relaxed) + 1;
        b.bar.set_message(format!("{done}/{}", b.files));
    });
}

/// Run `print` with the bar hidden, so that a message never lands in the middle of it.
pub fn suspend<T>(print: impl FnOnce() -> T) -> T {
    let guard = BAR.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(b) => b.bar.suspend(print),
        None => print(),
    }
}

/// Remove the bar.
pub fn finish() {
    if let Some(b) = BAR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        b.bar.finish_and_clear();
    }
}

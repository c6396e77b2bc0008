//! How a run ends and how it is stopped: the exit status, the stop request shared with the
//! signal handlers, and panics caught in workers.
//!
//! Below both kinds of run (per-file outputs and merged or standard-output CSVs) and the
//! dry-run listing, which all end with an [`ExitStatus`].

use std::any::Any;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

/// How the run ended; [`ExitStatus::code`] is the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every input was converted or skipped.
    Success,
    /// At least one input failed; the others were converted.
    Failure,
    /// The command line was wrong; nothing was converted.
    Usage,
    /// Stopped by this signal number.
    Signal(i32),
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            // The shell convention, 128 + signal: 130 for SIGINT, 143 for SIGTERM.
            ExitStatus::Signal(signal) => u8::try_from(128 + signal).unwrap_or(1),
        }
    }
}

/// The stop request shared with the signal handlers.
pub(crate) struct Stop {
    pub(crate) requested: Arc<AtomicBool>,
    /// The signal that asked, 0 for none.
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// First SIGINT/SIGTERM: set the flag and let the batch wind down. Second one: exit at once
    /// (the next run removes the temporaries that leaves).
    pub(crate) fn install() -> anyhow::Result<Stop> {
        // Past the file-size limit (`ulimit -f`) the kernel sends SIGXFSZ, whose default action
        // kills the whole batch without a word. Ignored, the write fails with EFBIG instead,
        // and only the file that outgrew the limit fails.
        #[cfg(unix)]
        // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let requested = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        #[cfg(windows)]
        console::install(&requested, &signal).context("cannot install the Ctrl-C handler")?;
        #[cfg(not(windows))]
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the conditional exit must see the flag before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, requested.clone())
                .and_then(|_| signal_hook::flag::register(sig, requested.clone()))
                .and_then(|_| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
                .context("cannot install the signal handlers")?;
        }
        Ok(Stop { requested, signal })
    }

    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            // The flag handler runs before the number is stored; a signal caught in between
            // still ends the run as interrupted.
            0 if self.requested.load(Ordering::SeqCst) => Some(SIGINT),
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT if cfg!(windows) => "Ctrl-C",
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Ctrl-C and Ctrl-Break on a Windows console, where signals do not reach a program: the same
/// stop as SIGINT (exit status 130), and a second one ends the process at once. Closing the
/// console, logging off and shutting down keep the system's default (the process ends; the
/// next run removes its temporaries).
#[cfg(windows)]
mod console {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use signal_hook::consts::SIGINT;
    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT,
    };
    use windows_sys::Win32::System::Threading::ExitProcess;

    /// The stop request of the latest run in this process; a handler cannot take arguments.
    type Request = (Arc<AtomicBool>, Arc<AtomicUsize>);
    static STOP: Mutex<Option<Request>> = Mutex::new(None);

    pub fn install(requested: &Arc<AtomicBool>, signal: &Arc<AtomicUsize>) -> std::io::Result<()> {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *STOP.lock().unwrap_or_else(|p| p.into_inner()) = Some((requested.clone(), signal.clone()));
        // SAFETY: `handler` is a valid handler for the life of the process.
        let installed =
            *INSTALLED.get_or_init(|| unsafe { SetConsoleCtrlHandler(Some(handler), 1) } != 0);
        if installed {
            Ok(())
        } else {
            Err(std::io::Error::other("SetConsoleCtrlHandler failed"))
        }
    }

    /// Runs on a thread of its own that the system starts for each event.
    unsafe extern "system" fn handler(event: u32) -> BOOL {
        if event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT {
            return 0;
        }
        let Some((requested, signal)) = STOP.lock().unwrap_or_else(|p| p.into_inner()).clone()
        else {
            return 0;
        };
        if requested.swap(true, Ordering::SeqCst) {
            // SAFETY: ends the process; the temporaries left are removed by the next run.
            unsafe { ExitProcess(128 + SIGINT as u32) };
        }
        signal.store(SIGINT as usize, Ordering::SeqCst);
        1
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use windows_sys::Win32::System::Console::CTRL_CLOSE_EVENT;

        #[test]
        fn ctrl_c_and_ctrl_break_request_the_stop_that_sigint_does() {
            let (requested, signal) = (Arc::new(AtomicBool::new(false)), Arc::default());
            install(&requested, &signal).unwrap();
            // Closing the console is left to the system.
            // SAFETY: called as the system would, on a thread of the process.
            assert_eq!(unsafe { handler(CTRL_CLOSE_EVENT) }, 0);
            assert!(!requested.load(Ordering::SeqCst));
            // A second event would end the test process, so one of each kind is not sent.
            // SAFETY: as above.
            assert_eq!(unsafe { handler(CTRL_BREAK_EVENT) }, 1);
            assert!(requested.load(Ordering::SeqCst));
            assert_eq!(signal.load(Ordering::SeqCst), SIGINT as usize);
            let stop = super::super::Stop { requested, signal };
            assert_eq!(stop.signal(), Some(SIGINT));
            assert_eq!(super::super::ExitStatus::Signal(SIGINT).code(), 130);
            assert_eq!(super::super::signal_name(SIGINT), "Ctrl-C");
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown panic"
    }
}

/// While workers run, a panic is reported as that input's failure, so the default hook's
/// `thread '…' panicked at` (and backtrace) must not reach the user. Restored afterwards.
pub(crate) struct QuietPanics;

impl QuietPanics {
    pub(crate) fn install() -> QuietPanics {
        panic::set_hook(Box::new(|_| {}));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let _ = panic::take_hook();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Failure.code(), 1);
        assert_eq!(ExitStatus::Usage.code(), 2);
        assert_eq!(ExitStatus::Signal(SIGINT).code(), 130);
        assert_eq!(ExitStatus::Signal(SIGTERM).code(), 143);
    }
}

//! Getting a CSV's bytes onto the disk: [`WriteBack`] writes a temporary and starts its
//! write-back early; for a big CSV on a local Linux file system it switches to writing past the
//! page cache ([`Direct`]).
//!
//! Nothing here makes a file durable: that stays the `fsync` (or `syncfs`) before the output is
//! named, in [`crate::output::commit`].

use std::fs::File;
use std::io::{self, Write};

/// Writes a temporary, starts its write-back to disk as it goes and, from
/// [`DIRECT_FROM`] on, writes past the page cache where that is sound.
///
/// The kernel writes dirty pages back only once they are old or too many, so a CSV of a few
/// hundred MB would otherwise sit in memory until its `fsync`, which then waits for all of it:
/// 0.4 s after the 1 s it took to convert a 250 MB KML here. Starting the write-back of every
/// finished stretch lets the disk work while the conversion goes on. `sync_file_range` only
/// starts writes: it neither waits for them nor makes anything durable.
///
/// Call [`Write::flush`] at the end: past [`DIRECT_FROM`] the last bytes wait in a buffer, and
/// only `flush` reports whether they were written.
pub(crate) struct WriteBack<'a> {
    file: &'a File,
    written: u64,
    /// Where the stretch not yet handed to the write-back starts.
    pending: u64,
    direct: Option<Direct>,
    /// Whether writing past the page cache was tried (it is tried once), and did start.
    tried_direct: bool,
    went_direct: bool,
}

/// The stretch handed to the write-back at once: large enough to cost nothing per byte, small
/// enough to keep the disk busy from early on.
const WRITE_BACK_STRETCH: u64 = 8 << 20;

/// From how many bytes on a CSV is written past the page cache. Below, the page cache costs
/// little and lets `syncfs` make a group of small files durable at once (see
/// [`crate::output::commit`]).
pub(crate) const DIRECT_FROM: u64 = 8 << 20;

impl<'a> WriteBack<'a> {
    pub(crate) fn new(file: &'a File) -> Self {
        WriteBack {
            file,
            written: 0,
            pending: 0,
            direct: None,
            tried_direct: false,
            went_direct: false,
        }
    }

    /// Buffered, through the page cache.
    fn write_cached(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.pending >= WRITE_BACK_STRETCH {
            start_write_back(self.file, self.pending, self.written - self.pending);
            self.pending = self.written;
        }
        Ok(n)
    }
}

impl Write for WriteBack<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(direct) = &mut self.direct {
            direct.write(buf)?;
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        if self.written < DIRECT_FROM || self.tried_direct {
            return self.write_cached(buf);
        }
        // Direct writes start at a block boundary: reach one through the page cache first.
        let to_boundary = (BLOCK - self.written % BLOCK) % BLOCK;
        if to_boundary > 0 {
            let n = buf.len().min(to_boundary as usize);
            return self.write_cached(&buf[..n]);
        }
        self.tried_direct = true;
        if self.written > self.pending {
            start_write_back(self.file, self.pending, self.written - self.pending);
            self.pending = self.written;
        }
        self.direct = Direct::start(self.file, self.written);
        self.went_direct = self.direct.is_some();
        self.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(direct) = self.direct.take() {
            let end = direct.finish(self.file)?;
            // Direct writes are positioned; later cached ones continue at the end.
            io::Seek::seek(&mut self.file, io::SeekFrom::Start(end))?;
            self.pending = end;
        }
        self.file.flush()
    }
}

/// Start writing all of `file`'s dirty pages back to disk, without waiting for them: a small
/// CSV waits for its group's `syncfs` (see [`crate::output::commit`]), which would otherwise
/// find all of the group's data still to write.
pub(crate) fn start_write_back_all(file: &File) {
    // A length of 0 is "to the end of the file".
    start_write_back(file, 0, 0);
}

#[cfg(target_os = "linux")]
fn start_write_back(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on a descriptor `file` keeps open; no memory is passed.
    // Its result is only a hint's: a failing write shows in the `fsync` that follows.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &File, _offset: u64, _len: u64) {}

/// The alignment of direct writes, in memory, in the file and in length: a multiple of every
/// usual device's logical block size.
const BLOCK: u64 = 4096;

/// Local file systems of Linux whose durability `fsync` and `syncfs` ensure in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum Local {
    Ext4,
    Xfs,
    Btrfs,
    F2fs,
}

/// The local file system `file` is on; `None` for any other (network, FUSE, tmpfs, …) or when
/// it cannot be told.
#[cfg(target_os = "linux")]
pub(crate) fn local(file: &File) -> Option<Local> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fstatfs` fills the struct it is given; all zeroes is a valid start.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    // `f_type` is a signed word of the platform's size; the magic numbers are 32 bits.
    match stat.f_type as u32 {
        0xEF53 => Some(Local::Ext4),
        0x5846_5342 => Some(Local::Xfs),
        0x9123_683E => Some(Local::Btrfs),
        0xF2F5_2010 => Some(Local::F2fs),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn local(_file: &File) -> Option<Local> {
    None
}

pub(crate) use direct::Direct;

/// Writing past the page cache (`O_DIRECT`).
///
/// A buffered write copies every byte into the page cache, where the kernel then tracks it as
/// dirty until it is written back. A CSV is about twice its KML's size, so for big files that
/// bookkeeping was a third of the run's CPU time. With `O_DIRECT` the disk reads the bytes
/// from this process's buffer instead.
///
/// A direct write returns only once the disk has the data, so a thread of its own writes one
/// block while the conversion fills the next. Only on ext4 and XFS, whose direct writes are
/// plain; btrfs may fall back to buffered ones and checksums them from the caller's memory.
/// Wherever `O_DIRECT` is refused, writing goes on through the page cache.
#[cfg(target_os = "linux")]
mod direct {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{self, Receiver, SyncSender};
    use std::sync::{Arc, Mutex};

    use super::{local, Local, BLOCK};

    /// The bytes handed to the disk at once: enough that a write's fixed cost is nothing, few
    /// enough that two of them per job keep the memory small.
    const SPAN: usize = 2 << 20;

    /// A [`SPAN`] of memory aligned to [`BLOCK`], as direct writes require. No allocation
    /// with a chosen alignment is needed: the aligned window of a slightly bigger one is used.
    struct Span(Box<[u8]>);

    impl Span {
        /// A span from earlier jobs, or a new one: fresh memory costs a page fault per page.
        fn take() -> Span {
            let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop();
            spare.unwrap_or_else(|| Span(vec![0; SPAN + BLOCK as usize].into_boxed_slice()))
        }

        fn give_back(self) {
            SPARE.lock().unwrap_or_else(|p| p.into_inner()).push(self);
        }

        fn window(&mut self) -> &mut [u8] {
            let skip = self.0.as_ptr().align_offset(BLOCK as usize);
            &mut self.0[skip..skip + SPAN]
        }
    }

    static SPARE: Mutex<Vec<Span>> = Mutex::new(Vec::new());

    /// What the disk thread is asked to write, and what it hands back.
    struct Job {
        file: Arc<File>,
        span: Span,
        len: usize,
        at: u64,
    }
    type Done = (Span, io::Result<()>);

    /// A thread that writes spans for one [`Direct`] at a time. Once that CSV is written it
    /// waits for the next one, so a batch of big CSVs starts as many of them as CSVs are
    /// written at once, not one per CSV.
    struct DiskThread {
        to_disk: SyncSender<Job>,
        from_disk: Receiver<Done>,
    }

    /// Disk threads waiting for their next CSV.
    static IDLE: Mutex<Vec<DiskThread>> = Mutex::new(Vec::new());
    /// Disk threads started in this process.
    static STARTED: AtomicUsize = AtomicUsize::new(0);

    impl DiskThread {
        /// An idle disk thread, or a new one; `None` if the system refuses a thread.
        fn take() -> Option<DiskThread> {
            let idle = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop();
            if idle.is_some() {
                return idle;
            }
            let (to_disk, jobs) = mpsc::sync_channel::<Job>(1);
            let (done, from_disk) = mpsc::sync_channel::<Done>(1);
            std::thread::Builder::new()
                .name("kml2csv-disk".into())
                .spawn(move || {
                    for job in jobs {
                        let Job {
                            file,
                            mut span,
                            len,
                            at,
                        } = job;
                        let result = write_at(&file, &span.window()[..len], at);
                        // Its descriptor is closed before the CSV is handed back, as it was
                        // counted among the CSV's while it was written.
                        drop(file);
                        if done.send((span, result)).is_err() {
                            break;
                        }
                    }
                })
                .ok()?;
            STARTED.fetch_add(1, Ordering::Relaxed);
            Some(DiskThread { to_disk, from_disk })
        }

        /// Keep the thread for the next CSV; only call once nothing is in flight.
        fn give_back(self) {
            IDLE.lock().unwrap_or_else(|p| p.into_inner()).push(self);
        }
    }

    /// Disk threads started in this process so far.
    #[cfg(test)]
    pub(crate) fn threads_started() -> usize {
        STARTED.load(Ordering::Relaxed)
    }

    pub(crate) struct Direct {
        /// The span being filled, and how far.
        span: Option<Span>,
        filled: usize,
        /// Where in the file the span being filled goes.
        at: u64,
        /// The file, on a descriptor of its own for the disk thread.
        file: Arc<File>,
        /// `None` once it stopped (it only stops should its channel break).
        disk: Option<DiskThread>,
        /// Whether the disk thread holds a span.
        in_flight: bool,
    }

    impl Direct {
        /// Start writing `file` past the page cache at `at` (a multiple of [`BLOCK`]); `None`
        /// where that is not possible, and writing goes on through the page cache.
        pub(crate) fn start(file: &File, at: u64) -> Option<Direct> {
            if !matches!(local(file), Some(Local::Ext4 | Local::Xfs)) || !at.is_multiple_of(BLOCK) {
                return None;
            }
            // A descriptor of its own for the disk thread; the open file, and so `O_DIRECT`,
            // is shared.
            let for_disk = Arc::new(file.try_clone().ok()?);
            let disk = DiskThread::take()?;
            if set_direct(file, true).is_err() {
                disk.give_back();
                return None;
            }
            Some(Direct {
                span: Some(Span::take()),
                filled: 0,
                at,
                file: for_disk,
                disk: Some(disk),
                in_flight: false,
            })
        }

        /// Take all of `buf` (it is written once a span is full).
        pub(crate) fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
            while !buf.is_empty() {
                let span = self.span.as_mut().expect("a span between writes");
                let n = buf.len().min(SPAN - self.filled);
                span.window()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
                self.filled += n;
                buf = &buf[n..];
                if self.filled == SPAN {
                    self.send()?;
                }
            }
            Ok(())
        }

        /// Hand the full span to the disk thread and take the one it wrote, once written.
        fn send(&mut self) -> io::Result<()> {
            let next = if self.in_flight {
                self.wait()?
            } else {
                Span::take()
            };
            let span = self.span.replace(next).expect("a span between writes");
            let job = Job {
                file: Arc::clone(&self.file),
                span,
                len: self.filled,
                at: self.at,
            };
            let sent = match &self.disk {
                Some(disk) => disk.to_disk.send(job).is_ok(),
                None => false,
            };
            if !sent {
                self.disk = None;
                return Err(io::Error::other("the disk thread stopped"));
            }
            self.in_flight = true;
            self.at += self.filled as u64;
            self.filled = 0;
            Ok(())
        }

        /// The span the disk thread wrote, or its error.
        fn wait(&mut self) -> io::Result<Span> {
            self.in_flight = false;
            let done = match &self.disk {
                Some(disk) => disk.from_disk.recv().ok(),
                None => None,
            };
            match done {
                Some((span, Ok(()))) => Ok(span),
                Some((span, Err(e))) => {
                    span.give_back();
                    Err(e)
                }
                None => {
                    self.disk = None;
                    Err(io::Error::other("the disk thread stopped"))
                }
            }
        }

        /// Write what is left to `file` (the one this started on) and go back to the page
        /// cache; the file's length.
        pub(crate) fn finish(mut self, file: &File) -> io::Result<u64> {
            if self.in_flight {
                self.wait()?.give_back();
            }
            let mut span = self.span.take().expect("a span between writes");
            // The whole blocks directly; the rest, not a block long, through the page cache.
            let whole = self.filled - self.filled % BLOCK as usize;
            let mut result = write_at(file, &span.window()[..whole], self.at);
            if result.is_ok() {
                result = set_direct(file, false);
            }
            if result.is_ok() {
                let rest = &span.window()[whole..self.filled];
                result = write_at(file, rest, self.at + whole as u64);
            }
            span.give_back();
            result.map(|()| self.at + self.filled as u64)
        }
    }

    impl Drop for Direct {
        fn drop(&mut self) {
            // Wait for the disk thread's write (only on an error path is one still in flight
            // here; the caller then drops the temporary), and keep the thread for the next CSV.
            if self.in_flight {
                if let Ok(span) = self.wait() {
                    span.give_back();
                }
            }
            if let Some(disk) = self.disk.take() {
                disk.give_back();
            }
            if let Some(span) = self.span.take() {
                span.give_back();
            }
        }
    }

    /// A positioned write of all of `buf`. Should a device refuse a direct write's alignment
    /// after all (`EINVAL`), the page cache takes it.
    fn write_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        match file.write_all_at(buf, at) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false)?;
                file.write_all_at(buf, at)
            }
            other => other,
        }
    }

    fn set_direct(file: &File, on: bool) -> io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: plain `fcntl`s on a descriptor `file` keeps open; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Elsewhere writing goes through the page cache throughout.
#[cfg(not(target_os = "linux"))]
mod direct {
    use std::fs::File;
    use std::io;

    pub(crate) enum Direct {}

    impl Direct {
        pub(crate) fn start(_file: &File, _at: u64) -> Option<Direct> {
            None
        }

        pub(crate) fn write(&mut self, _buf: &[u8]) -> io::Result<()> {
            match *self {}
        }

        pub(crate) fn finish(self, _file: &File) -> io::Result<u64> {
            match self {}
        }
    }

    #[cfg(test)]
    pub(crate) fn threads_started() -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Bytes that show any misplaced stretch: no two 4 KiB blocks alike.
    fn pattern(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x9E37_79B9;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Write `data` in `chunk`-sized pieces, with a `flush` after `flush_at` bytes; whether
    /// the file went past the page cache.
    fn write_through(file: &File, data: &[u8], chunk: usize, flush_at: Option<usize>) -> bool {
        let mut out = WriteBack::new(file);
        let mut done = 0;
        for piece in data.chunks(chunk) {
            out.write_all(piece).unwrap();
            done += piece.len();
            if flush_at.is_some_and(|at| done >= at && done - piece.len() < at) {
                out.flush().unwrap();
            }
        }
        out.flush().unwrap();
        out.went_direct
    }

    #[test]
    fn direct_writes_leave_the_same_bytes_as_cached_ones() {
        let dir = tempfile::tempdir().unwrap();
        let big = DIRECT_FROM as usize;
        let cases: &[(usize, usize, Option<usize>)] = &[
            // Too small to switch, then a switch on a block boundary, then off one.
            (big, 256 << 10, None),
            (big + 4096, 256 << 10, None),
            (big + 3 * (2 << 20) + 17, 256 << 10, None),
            (big + (5 << 20) + 4095, 1000, None),
            // Pieces bigger than a span; a span filled exactly.
            (big + (7 << 20) + 1, 3 << 20, None),
            (big + (4 << 20), 1 << 20, None),
            // A flush on the way leaves the rest to the page cache.
            (big + (6 << 20) + 99, 256 << 10, Some(big + (3 << 20))),
        ];
        let threads_before = direct::threads_started();
        let mut went_direct = 0;
        for (i, &(len, chunk, flush_at)) in cases.iter().enumerate() {
            let data = pattern(len);
            let path = dir.path().join(format!("{i}.csv"));
            let file = File::create(&path).unwrap();
            let direct = write_through(&file, &data, chunk, flush_at);
            drop(file);
            let written = fs::read(&path).unwrap();
            assert_eq!(written.len(), data.len(), "case {i}: length");
            assert!(written == data, "case {i}: content differs");
            // Where direct writes are expected, they must have been used, or this test would
            // only check the page cache.
            let local = local(&File::open(&path).unwrap());
            let expected = cfg!(target_os = "linux")
                && matches!(local, Some(Local::Ext4 | Local::Xfs))
                && len > big;
            assert_eq!(direct, expected, "case {i}: direct writes on {local:?}");
            went_direct += usize::from(direct);
        }
        // One CSV after the other reuses one disk thread, not one each. Another test of this
        // module may hold a thread at the same time, hence two.
        if went_direct > 2 {
            let started = direct::threads_started() - threads_before;
            assert!(
                started <= 2,
                "{started} disk threads for {went_direct} CSVs"
            );
        }
    }

    #[test]
    fn writing_goes_on_after_a_flush_at_the_right_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let file = File::create(&path).unwrap();
        let data = pattern(DIRECT_FROM as usize + (3 << 20) + 5);
        {
            let mut out = WriteBack::new(&file);
            let (head, tail) = data.split_at(DIRECT_FROM as usize + (2 << 20) + 3);
            out.write_all(head).unwrap();
            out.flush().unwrap();
            out.write_all(tail).unwrap();
            out.flush().unwrap();
        }
        assert!(fs::read(&path).unwrap() == data);
    }
}

//! Where a KML comes from: a file, or standard input (`-`).
//!
//! Standard input can be read only once and cannot seek, but a KMZ (a zip) needs to seek and
//! `--attributes` reads a file twice (once for the names of its ExtendedData fields). So stdin
//! streams straight into the reader when it can, and is copied to an anonymous temporary file
//! when it must.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::kml::{self, Error, ErrorKind, Feature, ReadOptions, Sink, Summary, Vertex, Warning};
use crate::ui::progress;

/// The input argument that means standard input.
pub const STDIN: &str = "-";

/// How a zip archive (and so a KMZ) starts.
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// One input to read.
#[derive(Debug)]
pub enum Input {
    Path(PathBuf),
    /// Standard input, streamed (readable once).
    Stdin,
    /// Standard input or a pipe, copied to an anonymous temporary file (readable again and
    /// again), with the names of its ExtendedData fields when the copy found them.
    Spooled(File, Option<Vec<String>>),
}

impl Input {
    /// Whether the input can be read a second time: not standard input, nor a FIFO or other
    /// non-regular file (`kml2csv -a <(zcat x.kml.gz)`).
    pub fn rereadable(&self) -> bool {
        match self {
            Input::Path(path) => std::fs::metadata(path).is_ok_and(|m| m.is_file()),
            Input::Stdin => false,
            Input::Spooled(..) => true,
        }
    }

    /// A copy of this input that can be read again and again (itself, if it already can).
    ///
    /// A pipe is copied while its ExtendedData field names are read from it, and the copy
    /// stops where that reading fails: input that is not KML from its first byte
    /// (`/dev/zero`, a stalled download's error page) costs a buffer of temporary disk, not
    /// all of `$TMPDIR`. The conversion then fails on the copy, at the same place and with
    /// the same message. A KMZ needs the whole archive before it can be read, and is copied
    /// whole.
    pub fn spooled(&self, options: &ReadOptions) -> Result<Input, Error> {
        let source: Box<dyn Read> = match self {
            Input::Stdin => Box::new(Watched::new(io::stdin().lock(), true, options)),
            Input::Path(path) if !self.rereadable() => {
                let (file, _) = open_input(path).map_err(io_error)?;
                Box::new(Watched::new(file, true, options))
            }
            Input::Path(path) => return Ok(Input::Path(path.clone())),
            Input::Spooled(file, fields) => {
                let file = file.try_clone().map_err(io_error)?;
                return Ok(Input::Spooled(file, fields.clone()));
            }
        };
        stopped_or(Self::spool(source, options), options)
    }

    /// [`Input::spooled`] for a source that is read once.
    fn spool(source: Box<dyn Read>, options: &ReadOptions) -> Result<Input, Error> {
        let mut file = tempfile::tempfile().map_err(io_error)?;
        let mut source = source;
        let mut head = Vec::with_capacity(ZIP_MAGIC.len());
        (&mut source)
            .take(ZIP_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(io_error)?;
        file.write_all(&head).map_err(io_error)?;
        if head == ZIP_MAGIC {
            io::copy(&mut source, &mut file).map_err(io_error)?;
            return Ok(Input::Spooled(file, None));
        }
        let mut copy = Copied {
            inner: source,
            copy: &mut file,
        };
        let fields = match field_names(io::Cursor::new(head).chain(&mut copy), options) {
            Ok(fields) => {
                // The reader reads to the end already; anything it left is copied too.
                io::copy(&mut copy, &mut io::sink()).map_err(io_error)?;
                Some(fields)
            }
            Err(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Io(_)) => return Err(e),
            // The conversion reads the copy and fails there, with the position.
            Err(_) => None,
        };
        Ok(Input::Spooled(file, fields))
    }

    /// The input as the user named it (`-` for standard input).
    pub fn label(&self) -> String {
        match self {
            Input::Path(path) => path.to_string_lossy().into_owned(),
            Input::Stdin | Input::Spooled(..) => STDIN.to_owned(),
        }
    }

    /// Read the whole input into `sink`. File bytes are counted on the progress bar, if any.
    pub fn read(&self, sink: &mut dyn Sink, options: &ReadOptions) -> Result<Summary, Error> {
        match self {
            Input::Path(path) => {
                let (file, metadata) = open_input(path).map_err(io_error)?;
                let budget = if metadata.is_file() {
                    metadata.len()
                } else {
                    0
                };
                let mut counted = Counted {
                    inner: Watched::new(file, !metadata.is_file(), options),
                    budget,
                    ended: false,
                    file: metadata.is_file(),
                };
                let result = kml::read(&mut counted, sink, options);
                // Bytes a KMZ never read (or the rest of a failed file) still count as done.
                progress::add_bytes(counted.budget);
                stopped_or(result, options)
            }
            Input::Spooled(file, _) => {
                let mut file = file;
                file.seek(SeekFrom::Start(0)).map_err(io_error)?;
                kml::read(file, sink, options)
            }
            Input::Stdin => stopped_or(read_stdin(sink, options), options),
        }
    }

    /// The names of the ExtendedData fields of every feature, in first-seen order: a first
    /// pass that keeps nothing but the names.
    pub fn fields(&self, options: &ReadOptions) -> Result<Vec<String>, Error> {
        let options = field_options(options);
        let mut names = FieldNames::default();
        match self {
            Input::Spooled(_, Some(fields)) => return Ok(fields.clone()),
            // The second pass counts on the progress bar, this one does not.
            Input::Path(path) => kml::read_path(path, &mut names, &options)?,
            other => other.read(&mut names, &options)?,
        };
        Ok(names.order)
    }
}

/// How the first pass, for the field names only, reads.
fn field_options(options: &ReadOptions) -> ReadOptions {
    ReadOptions {
        strict: false,
        cancel: options.cancel.clone(),
        attributes: true,
        features: true,
        without_geometry: true,
    }
}

/// The ExtendedData field names of the KML document `input`.
fn field_names(input: impl Read, options: &ReadOptions) -> Result<Vec<String>, Error> {
    let mut names = FieldNames::default();
    kml::read_document(input, &mut names, &field_options(options))?;
    Ok(names.order)
}

/// A reader that writes what it reads into `copy`.
struct Copied<'a, R> {
    inner: R,
    copy: &'a mut File,
}

impl<R: Read> Read for Copied<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn io_error(e: io::Error) -> Error {
    Error::new(ErrorKind::Io(e), None)
}

/// Stream standard input into the reader; a KMZ is copied to a temporary file first.
fn read_stdin(sink: &mut dyn Sink, options: &ReadOptions) -> Result<Summary, Error> {
    let mut stdin = Watched::new(io::stdin().lock(), true, options);
    let mut head = Vec::with_capacity(ZIP_MAGIC.len());
    (&mut stdin)
        .take(ZIP_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    let rest = io::Cursor::new(head).chain(stdin);
    if rest.get_ref().0.get_ref().as_slice() == ZIP_MAGIC {
        let mut file = tempfile::tempfile().map_err(io_error)?;
        let mut rest = rest;
        io::copy(&mut rest, &mut file).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        kml::read(file, sink, options)
    } else {
        kml::read_document(rest, sink, options)
    }
}

/// What tells one version of an input file from another without reading it: its size,
/// modification time and (on Unix) device and inode, which a replacement by rename changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    file: (u64, u64),
}

impl Identity {
    /// The identity of the regular file at `path`; `None` for anything else (a pipe, a
    /// missing file), which has no version to compare.
    pub fn of(path: &Path) -> Option<Identity> {
        Identity::of_meta(&fs::metadata(path).ok()?)
    }

    /// The file's size, in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// [`Identity::of`] from the file's metadata, where the caller has it.
    pub fn of_meta(meta: &fs::Metadata) -> Option<Identity> {
        if !meta.is_file() {
            return None;
        }
        Some(Identity {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            file: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }

    /// One line of a manifest: size, modification time (nanoseconds since the epoch) and
    /// `label`, escaped so that any name stays on its line.
    pub fn manifest_line(&self, label: &Path) -> String {
        let nanos = self
            .modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{} {nanos} {:?}\n", self.len, label.as_os_str())
    }
}

/// `result`, or [`ErrorKind::Cancelled`] if it failed because the run is stopping (a
/// [`Watched`] read gave up).
fn stopped_or<T>(result: Result<T, Error>, options: &ReadOptions) -> Result<T, Error> {
    match result {
        Err(e) if matches!(e.kind, ErrorKind::Io(_)) && is_stopping(options) => {
            Err(Error::new(ErrorKind::Cancelled, None))
        }
        other => other,
    }
}

fn is_stopping(options: &ReadOptions) -> bool {
    options
        .cancel
        .as_ref()
        .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Relaxed))
}

/// A pipe (standard input, a FIFO) read so that a stop is seen while no data comes.
///
/// The signal handlers restart a blocked `read`, so a pipe whose writer is idle (a stalled
/// download piped in) would keep the run deaf to SIGINT and SIGTERM until the writer closes
/// it. Before each read the pipe is polled in short rounds, and between them the stop flag is
/// looked at; once it is set, the read fails, and the caller turns that into a cancellation.
struct Watched<R> {
    inner: R,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl<R> Watched<R> {
    /// Watch `inner` if `pipe` (a regular file never blocks for long).
    fn new(inner: R, pipe: bool, options: &ReadOptions) -> Self {
        Watched {
            inner,
            cancel: options.cancel.clone().filter(|_| pipe),
        }
    }
}

#[cfg(unix)]
impl<R: Read + std::os::fd::AsRawFd> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(flag) = &self.cancel {
            let mut poll = libc::pollfd {
                fd: self.inner.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(io::Error::other("the run is stopping"));
                }
                // SAFETY: one valid pollfd for the duration of the call. Any event (data, the
                // writer closing, an error) means the read below will not block.
                let ready = unsafe { libc::poll(&mut poll, 1, 100) };
                if ready > 0 {
                    break;
                }
                if ready < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        self.inner.read(buf)
    }
}

/// A Windows pipe cannot be polled like that: the stop is seen before each read, not while
/// one waits.
#[cfg(not(unix))]
impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stopping = self
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Relaxed));
        if stopping {
            return Err(io::Error::other("the run is stopping"));
        }
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Watched<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Counts the bytes read on the progress bar, never more than the file's size.
struct Counted<R> {
    inner: R,
    /// Bytes of the file not yet counted.
    budget: u64,
    /// A regular file's end was read: the layers above each ask again (three more `read`s
    /// per file). What is appended after that is not read; the file's identity, compared
    /// after the read, tells that it changed.
    ended: bool,
    file: bool,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.ended = n == 0 && self.file && !buf.is_empty();
        let counted = (n as u64).min(self.budget);
        self.budget -= counted;
        progress::add_bytes(counted);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.ended = false;
        self.inner.seek(pos)
    }
}

/// Collects the names of ExtendedData fields, nothing else.
#[derive(Default)]
struct FieldNames {
    seen: HashSet<String>,
    order: Vec<String>,
}

impl Sink for FieldNames {
    fn vertex(&mut self, _vertex: &Vertex<'_>) -> io::Result<()> {
        Ok(())
    }

    fn warning(&mut self, _warning: Warning) {}

    fn feature(&mut self, feature: &Feature<'_>) -> io::Result<()> {
        if let Some(attributes) = feature.attributes {
            for (name, _) in &attributes.data {
                if !self.seen.contains(name) {
                    self.seen.insert(name.clone());
                    self.order.push(name.clone());
                }
            }
        }
        Ok(())
    }
}

/// How long a FIFO input may wait for a program to start writing to it.
#[cfg(unix)]
const FIFO_WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open an input without ever blocking in `open`: a FIFO with no writer would otherwise hang
/// the worker forever, deaf even to SIGINT/SIGTERM (the handlers restart the `open`). For a
/// FIFO, wait (in short polls) until a writer connects, for at most [`FIFO_WRITER_WAIT`]: reading
/// at once would find it empty when its writer is merely slow to start (`kml2csv <(zcat
/// x.kml.gz)`, a test's writer thread), and waiting for ever would hang an unattended run on a
/// pipe nobody writes to. Reads are then switched back to blocking. The file's metadata comes
/// with it, from the one `fstat` that tells a FIFO.
#[cfg(unix)]
fn open_input(input: &Path) -> io::Result<(File, fs::Metadata)> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(input)?;
    let metadata = file.metadata()?;
    if metadata.file_type().is_fifo() {
        let fd = file.as_raw_fd();
        let waited = std::time::Instant::now();
        loop {
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call. Until a writer connects,
            // Linux reports no event on the FIFO; then POLLIN (data) or POLLHUP (closed).
            let ready = unsafe { libc::poll(&mut poll, 1, 100) };
            if ready > 0 {
                break;
            }
            if waited.elapsed() >= FIFO_WRITER_WAIT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no program is writing to this pipe (waited {} s)",
                        FIFO_WRITER_WAIT.as_secs()
                    ),
                ));
            }
        }
        // SAFETY: `fd` is a valid descriptor owned by `file` for the duration of both calls.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((file, metadata))
}

#[cfg(not(unix))]
fn open_input(input: &Path) -> io::Result<(File, fs::Metadata)> {
    let file = File::open(input)?;
    let metadata = file.metadata()?;
    Ok((file, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the reads that reach it.
    struct Calls<R>(R, usize);

    impl<R: Read> Read for Calls<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            self.0.read(buf)
        }
    }

    impl<R: Seek> Seek for Calls<R> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.0.seek(pos)
        }
    }

    #[test]
    fn the_end_of_a_file_is_read_once_until_a_seek() {
        let counted = |file| Counted {
            inner: Calls(io::Cursor::new(b"<kml/>".to_vec()), 0),
            budget: 6,
            ended: false,
            file,
        };
        let mut reader = counted(true);
        let mut text = Vec::new();
        reader.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"<kml/>");
        let calls = reader.inner.1;
        assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(reader.inner.1, calls, "asked again after the end");
        // A KMZ's zip reader seeks back: reads reach the file again.
        reader.seek(SeekFrom::Start(1)).unwrap();
        assert_eq!(reader.read(&mut [0; 2]).unwrap(), 2);
        assert_eq!(reader.inner.1, calls + 1);

        // Not a regular file (a pipe): every read goes through.
        let mut reader = counted(false);
        reader.read_to_end(&mut Vec::new()).unwrap();
        let calls = reader.inner.1;
        assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(reader.inner.1, calls + 1);
    }
}

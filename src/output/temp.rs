//! The file an output is written to before it has its name, and the step that gives it one.
//!
//! An output must never be visible under its name before it is whole and durable, so it is
//! written to a temporary in its own folder and named only once synced (see [`crate::output::commit`]).
//!
//! On Linux the temporary has no name at all: `O_TMPFILE` makes a file in the folder without an
//! entry, and `linkat` gives it the output's name in one step, refusing a name that is taken, so
//! an output another run made meanwhile is kept. That is one change to the folder per output
//! instead of two (create, then rename), and making the file does not take the folder's lock: on
//! a batch of small files the workers otherwise queue for that lock while the file system
//! allocates inodes. Nothing is left behind by a killed run either: a file without a name goes
//! away with its last descriptor.
//!
//! Elsewhere, where the file system or a missing `/proc` does not allow it, and for an output
//! that may replace an existing one (`--force`, `--update`: `linkat` never replaces), the
//! temporary is a hidden named file, `.kml2csv-x.csv.tmp` for `x.csv` (`.kml2csv-XXXXXX.tmp`
//! while that name is taken; never ending in `.csv`), held under an exclusive advisory lock
//! while it is written and renamed into place. That lock lets [`remove_stale_temporaries`] and
//! [`remove_stale_temporary_of`] tell the leftovers of a killed run (unlocked) from the work of
//! a live one (locked).
//!
//! On Windows the named temporary is renamed with `MoveFileExW` and `MOVEFILE_WRITE_THROUGH`,
//! which returns only once the rename is on disk (Windows has no `fsync` of a folder), and
//! without `MOVEFILE_REPLACE_EXISTING` unless the output may be replaced, so that a CSV another
//! run published meanwhile is kept, as `linkat` keeps it on Linux.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::output::durable::parent_or_dot;

use tempfile::{Builder, NamedTempFile};

/// Every named temporary starts with this (and ends with [`TEMP_SUFFIX`]).
pub const TEMP_PREFIX: &str = ".kml2csv-";
pub const TEMP_SUFFIX: &str = ".tmp";

/// A temporary output file; [`Temp::publish`] gives it its final name.
#[derive(Debug)]
pub struct Temp {
    kind: Kind,
    /// May it replace an existing output?
    replace: bool,
}

#[derive(Debug)]
enum Kind {
    /// An `O_TMPFILE` file: no name until it is linked.
    #[cfg(target_os = "linux")]
    Unnamed(File),
    /// A hidden, locked file renamed into place.
    Named(NamedTempFile),
}

/// What [`Temp::publish`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    Placed,
    /// Without `replace`, another process put an output there first; it was kept.
    AlreadyThere,
}

impl Temp {
    /// A temporary in `dir` for an output that, with `replace`, replaces one already there.
    pub fn create(dir: &Path, replace: bool) -> io::Result<Temp> {
        Temp::create_named_by(dir, replace, || create_named(dir))
    }

    /// A temporary for `output` (in its folder) that, with `replace`, replaces it. Where it is
    /// a named one, it is named after `output` ([`stale_name_of`]) unless that name is taken,
    /// so that a run over this one file finds a leftover of a killed run without listing the
    /// folder (see [`remove_stale_temporary_of`]).
    pub fn create_for(output: &Path, replace: bool) -> io::Result<Temp> {
        let dir = parent_or_dot(output);
        Temp::create_named_by(dir, replace, || match output.file_name() {
            // Taken (by a live run, or a leftover this run did not remove), too long for the
            // file system, …: a random name, whose failure says what is wrong.
            Some(name) => create_named_as(dir, &own_prefix(name), 0).or_else(|_| create_named(dir)),
            None => create_named(dir),
        })
    }

    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    fn create_named_by(
        dir: &Path,
        replace: bool,
        named: impl FnOnce() -> io::Result<NamedTempFile>,
    ) -> io::Result<Temp> {
        #[cfg(target_os = "linux")]
        if !replace {
            if let Some(file) = unnamed_in(dir) {
                return Ok(Temp {
                    kind: Kind::Unnamed(file),
                    replace,
                });
            }
        }
        Ok(Temp {
            kind: Kind::Named(named()?),
            replace,
        })
    }

    pub fn as_file(&self) -> &File {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Unnamed(file) => file,
            Kind::Named(temp) => temp.as_file(),
        }
    }

    /// The temporary as a message about `output`, its future name, calls it.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub fn describe(&self, output: &Path) -> String {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Unnamed(_) => format!("the unnamed temporary of {}", output.display()),
            Kind::Named(temp) => temp.path().display().to_string(),
        }
    }

    /// Give the finished (and synced) temporary the name `output`: atomically replacing what is
    /// there if it may, never replacing it otherwise. An output that became a directory or a
    /// symlink is refused either way, so the name can never be steered to overwrite something
    /// else. A temporary that is not placed is removed.
    pub fn publish(self, output: &Path) -> Result<Published, String> {
        self.publish_holding(output, false)
            .map(|(published, _replaced)| published)
    }

    /// [`Temp::publish`]; with `hold`, handing back the output it replaced (if any) still open,
    /// so that the caller decides where its space is given back (see [`Replaced`]).
    pub fn publish_holding(
        self,
        output: &Path,
        hold: bool,
    ) -> Result<(Published, Option<Replaced>), String> {
        // Without `replace`, nothing at `output` is ever touched (the link or rename fails if
        // the name is taken), so what is there is looked at only then, for the message: one
        // call less per file for the committer, which names thousands of small files in a row.
        if self.replace {
            refuse_unfit(output)?;
        }
        let replaced = if self.replace && hold {
            Replaced::open(output)
        } else {
            None
        };
        let (placed, how) = match self.kind {
            #[cfg(target_os = "linux")]
            Kind::Unnamed(file) => (link(&file, output), "link"),
            #[cfg(windows)]
            Kind::Named(temp) => (windows::rename(temp, output, self.replace), "rename"),
            #[cfg(not(windows))]
            Kind::Named(temp) if self.replace => (
                temp.persist(output).map(drop).map_err(|e| e.error),
                "rename",
            ),
            // On failure the temporary comes back inside the error and is removed when dropped.
            #[cfg(not(windows))]
            Kind::Named(temp) => (
                temp.persist_noclobber(output)
                    .map(drop)
                    .map_err(|e| e.error),
                "rename",
            ),
        };
        match placed {
            Ok(()) => Ok((Published::Placed, replaced)),
            Err(e) if !self.replace && e.kind() == io::ErrorKind::AlreadyExists => {
                refuse_unfit(output)?;
                Ok((Published::AlreadyThere, None))
            }
            Err(e) => Err(format!("cannot {how} into {}: {e}", output.display())),
        }
    }
}

/// Refuse an output that is a symlink or a directory: the name could be steered to overwrite
/// something else, or the folder would be lost.
fn refuse_unfit(output: &Path) -> Result<(), String> {
    match fs::symlink_metadata(output) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "output {} is a symbolic link; refusing to write through it (remove it first)",
            output.display()
        )),
        Ok(meta) if meta.is_dir() => Err(format!(
            "output {} is a directory; refusing to replace it",
            output.display()
        )),
        _ => Ok(()),
    }
}

/// The file an output replaced, held open across the rename.
///
/// Replacing a file frees the old one's blocks, and where the file system discards freed blocks
/// at once (ext4 mounted `-o discard` without a journal), the call that frees them waits for
/// the disk: about 2.5 ms per small file here, one after another, which made `--force` over
/// 3000 small CSVs take ten times a fresh run. Held open, the old file is freed only when this
/// handle is dropped; the committer drops them on several threads at once, whose waits overlap
/// (3000 files freed on 16 threads took 0.3 s instead of 7 s one by one).
#[derive(Debug)]
pub struct Replaced(#[allow(dead_code)] File);

impl Replaced {
    /// A handle on what is at `output` now, if anything: `O_PATH` needs no permission on the
    /// file and has no effect on whatever kind of file it is.
    #[cfg(target_os = "linux")]
    fn open(output: &Path) -> Option<Replaced> {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(output)
            .ok()
            .map(Replaced)
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_output: &Path) -> Option<Replaced> {
        None
    }
}

/// An `O_TMPFILE` file in `dir`, or `None` where that cannot be made or later not be linked
/// (the caller then makes a named temporary, whose failure says what is wrong).
#[cfg(target_os = "linux")]
fn unnamed_in(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::OnceLock;
    // Kernels before 6.10 link a descriptor only through /proc (see `link`).
    static PROC_FD: OnceLock<bool> = OnceLock::new();
    if !*PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return None;
    }
    // Mode 0666 minus the umask, as a shell redirection would; `dir` itself is not opened for
    // writing: O_TMPFILE makes a new file inside it.
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

/// Set once the kernel refused to link a descriptor by itself (see [`link`]).
#[cfg(target_os = "linux")]
static EMPTY_PATH_REFUSED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Give the unnamed `file` the name `output`; fails with `AlreadyExists` if the name is taken.
///
/// `linkat(fd, "", AT_EMPTY_PATH)` names the descriptor itself; Linux allows it without a
/// privilege since 6.10, and refuses it with `ENOENT` before. The path through /proc works on
/// every kernel but costs a lookup of the magic link on every file; so the descriptor is tried
/// first, and once it is refused where /proc succeeds, /proc is used from then on.
#[cfg(target_os = "linux")]
fn link(file: &File, output: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::Ordering;
    let to = CString::new(output.as_os_str().as_bytes())?;
    let linkat = |from_dir: libc::c_int, from: &std::ffi::CStr, flags: libc::c_int| {
        // SAFETY: both paths are NUL-terminated strings that outlive the call.
        let linked =
            unsafe { libc::linkat(from_dir, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags) };
        if linked == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        match linkat(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
    }
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let through_proc = linkat(libc::AT_FDCWD, &from, libc::AT_SYMLINK_FOLLOW);
    // ENOENT from both means the folder of `output` is gone, not that the kernel refused.
    if through_proc.as_ref().is_ok() {
        EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed);
    }
    through_proc
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;

    use tempfile::NamedTempFile;
    use windows_sys::Win32::Storage::FileSystem::{
        MoveFileExW, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
    };

    /// Rename `temp` to `output`, the rename on disk when this returns; replacing an existing
    /// `output` only with `replace` (else `AlreadyExists`). A temporary not renamed is removed.
    pub fn rename(temp: NamedTempFile, output: &Path, replace: bool) -> io::Result<()> {
        let mut flags = MOVEFILE_WRITE_THROUGH;
        if replace {
            flags |= MOVEFILE_REPLACE_EXISTING;
        }
        // The file stays open (and locked) across the rename, so that no cleaner of another run
        // takes it for a leftover; tempfile opened it with FILE_SHARE_DELETE, which allows that.
        let (file, path) = temp.into_parts();
        // Kept first: keeping also clears the temporary attribute (a hint to keep the data out
        // of the disk), which must go by path, so before the path changes.
        let path = path.keep().map_err(io::Error::from)?;
        let from = verbatim(&path)?;
        let to = verbatim(output)?;
        let mut result;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            // SAFETY: both are NUL-terminated wide strings that outlive the call.
            let moved = unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), flags) } != 0;
            result = if moved {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            };
            // A CSV being replaced by another run at the same instant, or held open for a
            // moment by a virus scanner or the indexer, refuses to be replaced for that moment
            // (access denied, sharing violation): try again for up to about half a second.
            let busy = matches!(&result, Err(e) if matches!(e.raw_os_error(), Some(5 | 32)));
            if !(busy && replace) || pause.as_millis() > 256 {
                break;
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
        drop(file);
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    }

    /// `path` as an absolute `\\?\` path, NUL-terminated: without that prefix `MoveFileExW`
    /// refuses paths longer than 260 characters (std adds it for its own calls).
    pub fn verbatim(path: &Path) -> io::Result<Vec<u16>> {
        let absolute: Vec<u16> = std::path::absolute(path)?
            .as_os_str()
            .encode_wide()
            .collect();
        let wide = |text: &str| text.encode_utf16().collect::<Vec<u16>>();
        let mut verbatim =
            if absolute.starts_with(&wide(r"\\?\")) || absolute.starts_with(&wide(r"\\.\")) {
                absolute
            } else if let Some(unc) = absolute.strip_prefix(wide(r"\\").as_slice()) {
                [wide(r"\\?\UNC\").as_slice(), unc].concat()
            } else {
                [wide(r"\\?\").as_slice(), &absolute].concat()
            };
        verbatim.push(0);
        Ok(verbatim)
    }
}

/// Create a locked, named temporary file in `dir`.
///
/// A cleaner in another run may open and delete a brand-new temporary in the instant between
/// its creation and our lock. So once we hold the lock we check that the name still leads to
/// our file, and start over if it does not.
pub fn create_named(dir: &Path) -> io::Result<NamedTempFile> {
    create_named_as(dir, OsStr::new(TEMP_PREFIX), 6)
}

/// [`create_named`] with the name `prefix`, `random` random characters and [`TEMP_SUFFIX`];
/// without random characters it fails with `AlreadyExists` if the name is taken.
fn create_named_as(dir: &Path, prefix: &OsStr, random: usize) -> io::Result<NamedTempFile> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut builder = Builder::new();
        builder
            .prefix(prefix)
            .rand_bytes(random)
            .suffix(TEMP_SUFFIX);
        // The temporary becomes the output: give it the mode a shell redirection would (0666
        // minus the umask), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(dir)?;
        temp.as_file().lock()?;
        if still_named(&temp)? || attempts >= 5 {
            return Ok(temp);
        }
        // The name is no longer ours: do not let the drop delete whatever it leads to now.
        let (_file, path) = temp.into_parts();
        path.keep().map_err(io::Error::from)?;
    }
}

#[cfg(unix)]
fn still_named(temp: &NamedTempFile) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = temp.as_file().metadata()?;
    match fs::symlink_metadata(temp.path()) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn still_named(temp: &NamedTempFile) -> io::Result<bool> {
    Ok(temp.path().exists())
}

/// Remove the named temporaries a killed run left in `dir`: those nobody holds a lock on. A
/// live run's temporaries are locked and left alone. Returns how many were removed.
///
/// It lists the whole folder, which for a folder of 20 000 CSVs took three times as long as
/// converting a small file: a run over one file calls [`remove_stale_temporary_of`] instead.
pub fn remove_stale_temporaries(dir: &Path) -> io::Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if name.starts_with(TEMP_PREFIX.as_bytes()) && name.ends_with(TEMP_SUFFIX.as_bytes()) {
            removed += u64::from(remove_if_stale(&entry.path())?);
        }
    }
    Ok(removed)
}

/// Remove the temporary a killed run left for `output` under [`stale_name_of`] it, if nobody
/// holds a lock on it: all a run over that one file needs to look at. Returns how many were
/// removed (0 or 1).
pub fn remove_stale_temporary_of(output: &Path) -> io::Result<u64> {
    match stale_name_of(output) {
        Some(path) => remove_if_stale(&path).map(u64::from),
        None => Ok(0),
    }
}

/// The name a named temporary for `output` takes when it is free: `.kml2csv-x.csv.tmp` for
/// `x.csv`, in the same folder.
pub fn stale_name_of(output: &Path) -> Option<PathBuf> {
    let mut name = own_prefix(output.file_name()?);
    name.push(TEMP_SUFFIX);
    Some(parent_or_dot(output).join(name))
}

fn own_prefix(output_name: &OsStr) -> OsString {
    let mut prefix = OsString::from(TEMP_PREFIX);
    prefix.push(output_name);
    prefix
}

/// Remove `path` if it is a file nobody holds a lock on; whether it did.
fn remove_if_stale(path: &Path) -> io::Result<bool> {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    // Not ours to judge if we cannot even open it.
    let Ok(file) = File::open(path) else {
        return Ok(false);
    };
    match file.try_lock() {
        // Removed while we hold the lock, so no writer can have taken it over.
        Ok(()) => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::names;
    use std::io::Write;

    fn written(dir: &Path, replace: bool, text: &str) -> Temp {
        let temp = Temp::create(dir, replace).unwrap();
        temp.as_file().write_all(text.as_bytes()).unwrap();
        temp
    }

    #[test]
    fn stale_temporaries_are_removed_but_locked_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".kml2csv-dead.tmp"), "x").unwrap();
        fs::write(dir.path().join(".kml2csv-other.csv"), "x").unwrap();
        let live = create_named(dir.path()).unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        let live_name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut expected = vec![".kml2csv-other.csv".to_owned(), live_name];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn a_named_temporary_is_named_after_its_output_while_that_name_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("x.csv");
        let own = stale_name_of(&output).unwrap();
        assert_eq!(own, dir.path().join(".kml2csv-x.csv.tmp"));
        // `replace` makes it a named one everywhere (`linkat` cannot replace).
        let first = Temp::create_for(&output, true).unwrap();
        assert_eq!(first.describe(&output), own.display().to_string());
        // Taken by a live run: a random name.
        let second = Temp::create_for(&output, true).unwrap();
        assert_ne!(second.describe(&output), own.display().to_string());
        assert_eq!(remove_stale_temporary_of(&output).unwrap(), 0, "locked");
        assert!(own.exists());
        drop((first, second));
        assert!(names(dir.path()).is_empty());

        // A killed run's leftover under the output's own name goes; others wait for a sweep
        // of the folder.
        fs::write(&own, "half a CSV").unwrap();
        fs::write(dir.path().join(".kml2csv-dead01.tmp"), "half a CSV").unwrap();
        assert_eq!(remove_stale_temporary_of(&output).unwrap(), 1);
        assert_eq!(names(dir.path()), [".kml2csv-dead01.tmp"]);
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        assert!(names(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_not_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // `File::create` uses 0666 minus the umask, like a shell redirection.
        let reference = dir.path().join("reference");
        let expected = File::create(&reference)
            .unwrap()
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        for replace in [false, true] {
            let temp = Temp::create(dir.path(), replace).unwrap();
            let mode = temp.as_file().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, expected & 0o777, "{replace}: {mode:o}");
        }
    }

    #[test]
    fn a_temporary_has_no_name_in_the_folder_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let temp = written(dir.path(), false, "ours");
        let expect_unnamed = cfg!(target_os = "linux") && Path::new("/proc/self/fd").is_dir();
        if expect_unnamed {
            // Where O_TMPFILE works (it does on the usual Linux file systems).
            assert!(
                names(dir.path()).is_empty(),
                "{:?} ({})",
                names(dir.path()),
                temp.describe(Path::new("x.csv"))
            );
        }
        let output = dir.path().join("x.csv");
        assert_eq!(temp.publish(&output), Ok(Published::Placed));
        assert_eq!(fs::read_to_string(&output).unwrap(), "ours");
        assert_eq!(names(dir.path()), ["x.csv"]);
    }

    #[test]
    fn outputs_whose_path_is_longer_than_260_characters_are_published() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a".repeat(100)).join("b".repeat(100));
        let deep = deep.join("c".repeat(100));
        fs::create_dir_all(&deep).unwrap();
        for replace in [false, true] {
            let output = deep.join(format!("{replace}.csv"));
            assert!(output.as_os_str().len() > 300);
            fs::write(&output, "theirs").unwrap();
            let temp = written(&deep, replace, "ours");
            let expected = if replace {
                (Published::Placed, "ours")
            } else {
                (Published::AlreadyThere, "theirs")
            };
            assert_eq!(temp.publish(&output), Ok(expected.0));
            assert_eq!(fs::read_to_string(&output).unwrap(), expected.1);
        }
        assert_eq!(names(&deep), ["false.csv", "true.csv"]);
    }

    #[test]
    fn without_replace_the_other_runs_output_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("x.csv");
        fs::write(&output, "theirs").unwrap();
        let temp = written(dir.path(), false, "ours");
        assert_eq!(temp.publish(&output), Ok(Published::AlreadyThere));
        assert_eq!(fs::read_to_string(&output).unwrap(), "theirs");
        assert_eq!(names(dir.path()), ["x.csv"]);
    }

    #[test]
    fn with_replace_the_output_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("x.csv");
        fs::write(&output, "theirs").unwrap();
        let temp = written(dir.path(), true, "ours");
        assert_eq!(temp.publish(&output), Ok(Published::Placed));
        assert_eq!(fs::read_to_string(&output).unwrap(), "ours");
        assert_eq!(names(dir.path()), ["x.csv"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_or_folder_under_the_output_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "kept").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link.csv")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("none"), dir.path().join("dangling.csv"))
            .unwrap();
        fs::create_dir(dir.path().join("dir.csv")).unwrap();
        for replace in [false, true] {
            for name in ["link.csv", "dangling.csv", "dir.csv"] {
                let temp = written(dir.path(), replace, "ours");
                let refused = temp.publish(&dir.path().join(name)).unwrap_err();
                assert!(refused.contains("refusing"), "{refused}");
            }
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
        assert_eq!(
            names(dir.path()),
            ["dangling.csv", "dir.csv", "link.csv", "target"]
        );
    }

    /// A folder removed under a temporary fails the link by the descriptor and through /proc
    /// alike: that is no sign that the kernel refuses the first way, which stays in use.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_link_into_a_removed_folder_fails_without_changing_how_files_are_linked() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        fs::create_dir(&gone).unwrap();
        let before = EMPTY_PATH_REFUSED.load(Ordering::Relaxed);
        let temp = written(&gone, false, "ours");
        fs::remove_dir(&gone).unwrap();
        let failed = temp.publish(&gone.join("x.csv")).unwrap_err();
        assert!(failed.contains("cannot link into"), "{failed}");
        assert_eq!(EMPTY_PATH_REFUSED.load(Ordering::Relaxed), before);
        let temp = written(dir.path(), false, "ours");
        assert_eq!(
            temp.publish(&dir.path().join("x.csv")),
            Ok(Published::Placed)
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("x.csv")).unwrap(),
            "ours"
        );
    }
}

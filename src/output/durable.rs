//! Files and folders made durable: synced so that a power cut cannot take them back.
//!
//! Shared by the grouped commit, a single merged CSV and the JSON report: whatever the run
//! reports as written must be on the disk, folder entries included.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// The folder of `path`, `.` for a bare file name.
pub fn parent_or_dot(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

pub fn sync_file(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// `fs::create_dir_all`, with every folder it makes synced into its parent.
///
/// An output is only on disk once its folder's own entry is, up to a folder that existed
/// before; without this a power cut could take away a newly made folder with the outputs the
/// run reported inside it. The check, the creation and the syncs happen under one lock, so a
/// worker that finds the folder made by another one also finds it synced.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    static CREATING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = CREATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut folder = dir;
    while !folder.as_os_str().is_empty() && !folder.exists() {
        missing.push(folder);
        match folder.parent() {
            Some(parent) => folder = parent,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    // Outermost first: each new folder's entry, then the entries inside it.
    for made in missing.iter().rev() {
        sync_dir(parent_or_dot(made))?;
    }
    Ok(())
}

/// Make a rename in `dir` durable: on Unix a directory entry is only on disk once the directory
/// itself is synced.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

//! Path rules that must mean the same on every platform: how paths are written in messages
//! and reports, which spellings of a path exist, and which output names a file system can hold.
//!
//! Windows accepts `/` and `\` alike, resolves `..` by text rather than on disk, compares names
//! without regard to case and reserves device names (`CON`, `NUL`, `COM1`…). Left alone, one
//! command would mean two things on two platforms; these functions make it mean one.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

/// `path` with `/` between its components, on every platform: messages, `--report`,
/// `--dry-run` and the `source` column of a merged CSV then read the same wherever the batch
/// ran, whichever separator the user typed and whatever glob or a folder listing joined.
/// Windows takes `/` wherever it takes `\`, except in a verbatim `\\?\` path, which is kept.
pub fn portable(path: PathBuf) -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(slashed(path.into_os_string()))
    } else {
        path
    }
}

/// The text of [`portable`], for an argument that may be a glob pattern.
pub fn portable_arg(arg: &OsStr) -> OsString {
    if cfg!(windows) {
        slashed(arg.to_os_string())
    } else {
        arg.to_os_string()
    }
}

fn slashed(text: OsString) -> OsString {
    let bytes = text.as_encoded_bytes();
    if bytes.starts_with(br"\\?\") || !bytes.contains(&b'\\') {
        return text;
    }
    let bytes: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    // SAFETY: one ASCII byte replaced by another leaves the encoding as valid as it was.
    unsafe { OsString::from_encoded_bytes_unchecked(bytes) }
}

/// Whether `path` exists as written, with `..` read as on Unix: every folder a `..` steps out
/// of must exist. Windows resolves `..` in the text first, so that `data/*/../../y.kml` would
/// "exist" there (as `y.kml`) and be taken as a literal path, while on Unix it is a pattern.
pub fn exists_as_written(path: &Path) -> bool {
    let mut walked = PathBuf::new();
    for component in path.components() {
        if component == Component::ParentDir && !walked.as_os_str().is_empty() && !walked.is_dir() {
            return false;
        }
        walked.push(component);
    }
    std::fs::symlink_metadata(path).is_ok()
}

/// `fs::canonicalize`, with one fallback on Windows: where the final path of a file cannot be
/// had ("More data available": wine for every path longer than 260 characters, some network
/// and RAM-disk drivers for any path), the absolute path, `..` resolved by its text, which is
/// how Windows resolves it anyway. Links are then not followed, and names keep the case typed.
pub fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        #[cfg(windows)]
        Err(e) if e.raw_os_error() == Some(234) => {
            std::fs::symlink_metadata(path)?;
            std::path::absolute(path)
        }
        other => other,
    }
}

/// Whether the file systems of this platform compare names without regard to case by default
/// (NTFS, APFS): there `A.csv` and `a.csv` are one file, so two inputs that would write them
/// collide. Linux file systems are case-sensitive unless a folder is made otherwise.
pub const CASE_INSENSITIVE: bool = cfg!(any(windows, target_os = "macos"));

/// The key under which [`CASE_INSENSITIVE`] file systems find `path`.
pub fn folded(path: PathBuf) -> PathBuf {
    if !CASE_INSENSITIVE {
        return path;
    }
    match path.to_str() {
        Some(text) => PathBuf::from(text.to_lowercase()),
        None => path,
    }
}

/// Why Windows cannot hold a file or folder called `name`, if it cannot: a device name
/// (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, with any extension, in any case)
/// opens the device instead, and a trailing dot or space is dropped, so the file would get
/// another name than the one reported.
pub fn unfit_on_windows(name: &OsStr) -> Option<&'static str> {
    let name = name.to_string_lossy();
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("ends in a dot or a space, which Windows drops from file names");
    }
    // The device is meant whatever follows the first dot, and whatever spaces precede it.
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    let device = match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let (kind, digit) = (upper.get(..3), upper.get(3..).unwrap_or(""));
            matches!(kind, Some("COM" | "LPT"))
                && (matches!(digit, "¹" | "²" | "³")
                    || (digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit()))
        }
    };
    device.then_some("is a device name on Windows (CON, PRN, AUX, NUL, COM1, LPT1…)")
}

/// The first component of `path` that Windows cannot hold, with the reason; `None` elsewhere
/// than on Windows, or when every component is fine.
pub fn unfit_component(path: &Path) -> Option<(&OsStr, &'static str)> {
    if !cfg!(windows) {
        return None;
    }
    path.components().find_map(|c| match c {
        Component::Normal(name) => unfit_on_windows(name).map(|why| (name, why)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_and_trailing_dots_are_unfit_for_windows() {
        for name in [
            "CON",
            "con.csv",
            "Nul.x.csv",
            "aux .csv",
            "COM1.csv",
            "lpt9",
            "COM¹.csv",
            "x.",
            "x ",
            "CONIN$.csv",
        ] {
            assert!(unfit_on_windows(OsStr::new(name)).is_some(), "{name}");
        }
        for name in [
            "console.csv",
            "com10.csv",
            "nullable.csv",
            "x.csv",
            "a con.csv",
            "COM.csv",
            "lpt",
            "",
        ] {
            assert!(unfit_on_windows(OsStr::new(name)).is_none(), "{name}");
        }
    }

    #[test]
    fn parent_steps_need_the_folder_they_leave() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("y.kml"), "").unwrap();
        assert!(exists_as_written(&dir.path().join("a/../y.kml")));
        assert!(!exists_as_written(&dir.path().join("*/../y.kml")));
        assert!(!exists_as_written(&dir.path().join("y.kml/../y.kml")));
        assert!(!exists_as_written(&dir.path().join("missing.kml")));
    }

    #[test]
    fn portable_paths_use_forward_slashes_on_windows_only() {
        let mixed = PathBuf::from(r"in\sub/x.kml");
        let expected = if cfg!(windows) {
            "in/sub/x.kml"
        } else {
            r"in\sub/x.kml"
        };
        assert_eq!(portable(mixed), PathBuf::from(expected));
        // `/` is no separator in a verbatim path.
        let verbatim = PathBuf::from(r"\\?\C:\in\x.kml");
        assert_eq!(portable(verbatim.clone()), verbatim);
    }
}

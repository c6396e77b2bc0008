//! Glob patterns (`*`, `?`, `[..]`, `**`) expanded by walking the file tree ourselves.
//!
//! The `glob` crate follows symlinked folders with no loop detection: three links in one folder
//! (`up -> ..`, `up2 -> ..`, `self -> .`) under `**` made it expand some 3^40 paths until memory
//! ran out, and it skips names that are not UTF-8 without a word. Here each real folder (device
//! and inode on Unix, its canonical path elsewhere) is read at most once for each component of
//! the pattern, breadth first, so the walk ends on any tree, takes the shortest way to each
//! folder, and its work and memory grow with the number of folders, not with the number of ways
//! to reach them. A name that is not UTF-8 is matched with each byte that is not part of a UTF-8
//! character read as U+FFFD (so `*` and `?` match it), and kept as it is, bytes and all.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use glob::{MatchOptions, Pattern};

/// The bytes that make a component a wildcard rather than a name.
const META: &[u8] = b"*?[";

/// Hidden dot-entries are never matched by a wildcard unless the pattern's component starts
/// with a dot itself (`.x*`), and `**` never descends into them: the shells do the same, and it
/// keeps our own `.kml2csv-*.tmp` files and `.git` folders out of a `**` crawl.
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One component of a pattern below its fixed part.
enum Part {
    /// A name without wildcards (also `..`): joined as it is, bytes and all.
    Name(OsString),
    /// A wildcard component; `dotted` if it starts with a dot and so may match hidden names.
    Wild { pattern: Pattern, dotted: bool },
    /// `**`: this folder and every folder below it.
    Any,
}

/// What the walk found: a path the pattern matches (a file, a folder, a dangling link: the
/// caller decides), or a folder on the way that could not be read.
pub(crate) enum Entry {
    Match(PathBuf),
    Unreadable(PathBuf, io::Error),
}

impl Entry {
    fn path(&self) -> &Path {
        match self {
            Entry::Match(path) | Entry::Unreadable(path, _) => path,
        }
    }
}

/// Whether `raw` reads as a pattern (it has a wildcard character).
pub(crate) fn is_pattern(raw: &OsStr) -> bool {
    raw.as_encoded_bytes().iter().any(|b| META.contains(b))
}

/// Check `pattern`'s syntax; `Err` is the reason it is invalid.
pub(crate) fn check(pattern: &OsStr) -> Result<(), String> {
    Pattern::new(&pattern.to_string_lossy())
        .map(|_| ())
        .map_err(|e| e.msg.to_owned())
}

/// Every path `pattern` matches, sorted. Stops early, with what it found so far, once `stop` is
/// set.
pub(crate) fn expand(pattern: &OsStr, stop: &AtomicBool) -> Result<Vec<Entry>, String> {
    check(pattern)?;
    let mut base = PathBuf::new();
    let mut parts = Vec::new();
    for component in Path::new(pattern).components() {
        let part = match component {
            Component::Normal(name) if name == "**" => Part::Any,
            Component::Normal(name) if is_pattern(name) => {
                let text = name.to_string_lossy();
                Part::Wild {
                    pattern: Pattern::new(&text).map_err(|e| e.msg.to_owned())?,
                    dotted: text.starts_with('.'),
                }
            }
            other => Part::Name(other.as_os_str().to_owned()),
        };
        match part {
            Part::Name(name) if parts.is_empty() => base.push(name),
            part => parts.push(part),
        }
    }
    let mut found = Vec::new();
    walk(&base, &parts, stop, &mut found);
    found.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(found)
}

/// Breadth first over the states (folder, component index).
fn walk(base: &Path, parts: &[Part], stop: &AtomicBool, found: &mut Vec<Entry>) {
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::new();
    // The folders read so far, for each component.
    let mut read: HashSet<(DirId, usize)> = HashSet::new();
    queue.push_back((base.to_path_buf(), 0));
    while let Some((dir, index)) = queue.pop_front() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(part) = parts.get(index) else {
            // `**` at the end matches folders.
            found.push(Entry::Match(dir));
            continue;
        };
        let last = index + 1 == parts.len();
        if let Part::Name(name) = part {
            let path = dir.join(name);
            if last {
                if fs::symlink_metadata(&path).is_ok() {
                    found.push(Entry::Match(path));
                }
            } else if path.is_dir() {
                queue.push_back((path, index + 1));
            }
            continue;
        }
        let listed = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        };
        match dir_id(listed) {
            Ok(id) => {
                if !read.insert((id, index)) {
                    continue;
                }
            }
            // The fixed part does not exist: nothing matches, which the caller reports.
            Err(e) if index == 0 && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                found.push(Entry::Unreadable(dir, e));
                continue;
            }
        }
        let names = match list(listed, stop) {
            Ok(names) => names,
            Err(e) => {
                found.push(Entry::Unreadable(dir, e));
                continue;
            }
        };
        if matches!(part, Part::Any) {
            // Zero folders more.
            queue.push_back((dir.clone(), index + 1));
        }
        for (name, kind) in names {
            let hidden = name.as_encoded_bytes().starts_with(b".");
            let path = dir.join(&name);
            match part {
                Part::Any => {
                    if !hidden && kind.is_dir(&path) {
                        queue.push_back((path, index));
                    }
                }
                Part::Wild { pattern, dotted } => {
                    if (hidden && !dotted)
                        || !pattern.matches_with(&name.to_string_lossy(), OPTIONS)
                    {
                        continue;
                    }
                    if last {
                        found.push(Entry::Match(path));
                    } else if kind.is_dir(&path) {
                        queue.push_back((path, index + 1));
                    }
                }
                Part::Name(_) => unreachable!("handled above"),
            }
        }
    }
}

/// The names in `dir`, sorted, so that the walk (and which of two ways to a folder it takes)
/// does not depend on the order the file system lists them in.
fn list(dir: &Path, stop: &AtomicBool) -> io::Result<Vec<(OsString, Kind)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let entry = entry?;
        let kind = match entry.file_type() {
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(t) if t.is_file() => Kind::File,
            _ => Kind::Unknown,
        };
        names.push((entry.file_name(), kind));
    }
    names.sort();
    Ok(names)
}

/// What a directory listing says an entry is, without a `stat` of its own: on a crawl of
/// 100 000 files under `**` that spares 100 000 system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dir,
    File,
    /// A symlink, or a file system that does not say: look.
    Unknown,
}

impl Kind {
    fn is_dir(self, path: &Path) -> bool {
        match self {
            Kind::Dir => true,
            Kind::File => false,
            Kind::Unknown => path.is_dir(),
        }
    }
}

/// Which real folder a path leads to.
#[cfg(unix)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DirId(u64, u64);

#[cfg(unix)]
fn dir_id(dir: &Path) -> io::Result<DirId> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir)?;
    Ok(DirId(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DirId(PathBuf);

#[cfg(not(unix))]
fn dir_id(dir: &Path) -> io::Result<DirId> {
    super::names::canonical(dir).map(DirId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(root: &Path, pattern: &str) -> Vec<String> {
        let pattern = root.join(pattern);
        expand(pattern.as_os_str(), &AtomicBool::new(false))
            .unwrap()
            .iter()
            .map(|e| {
                // With `/`, as the plan shows paths on every platform.
                let path = super::super::names::portable(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                );
                let path = path.as_path();
                match e {
                    Entry::Match(_) => path.to_string_lossy().into_owned(),
                    Entry::Unreadable(..) => format!("unreadable {}", path.display()),
                }
            })
            .collect()
    }

    #[test]
    fn the_documented_wildcards() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for file in [
            "a.kml",
            "b.KML",
            "c1.kml",
            "c2.kml",
            "sub/d.kml",
            "sub/deep/e.kml",
            ".hidden/f.kml",
            "sub/.g.kml",
            "[x].kml",
        ] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        assert_eq!(
            matches(root, "*.kml"),
            ["[x].kml", "a.kml", "c1.kml", "c2.kml"]
        );
        assert_eq!(matches(root, "c?.kml"), ["c1.kml", "c2.kml"]);
        assert_eq!(matches(root, "[ab].*"), ["a.kml", "b.KML"]);
        assert_eq!(matches(root, "[[]x].kml"), ["[x].kml"]);
        assert_eq!(
            matches(root, "**/*.kml"),
            [
                "[x].kml",
                "a.kml",
                "c1.kml",
                "c2.kml",
                "sub/d.kml",
                "sub/deep/e.kml"
            ]
        );
        assert_eq!(
            matches(root, "sub/**/*.kml"),
            ["sub/d.kml", "sub/deep/e.kml"]
        );
        assert_eq!(matches(root, "*/deep/*.kml"), ["sub/deep/e.kml"]);
        assert_eq!(matches(root, "sub/.*.kml"), ["sub/.g.kml"]);
        assert_eq!(matches(root, ".hidden/*.kml"), [".hidden/f.kml"]);
        assert_eq!(matches(root, "sub/../*.kml").len(), 4);
        assert!(matches(root, "missing/*.kml").is_empty());
    }

    #[test]
    fn bad_patterns_are_refused() {
        let stop = AtomicBool::new(false);
        assert!(expand(OsStr::new("a**/x"), &stop).is_err());
        assert!(expand(OsStr::new("a/[x"), &stop).is_err());
    }

    // See: issue 17, item 2.
    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_under_two_stars_is_walked_once() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/x.kml"), "").unwrap();
        symlink("..", root.join("a/up")).unwrap();
        symlink("..", root.join("a/up2")).unwrap();
        symlink(".", root.join("a/self")).unwrap();
        assert_eq!(matches(root, "**/*.kml"), ["a/x.kml"]);
        assert_eq!(matches(root, "a/**/*.kml"), ["a/x.kml"]);
    }

    #[test]
    fn a_stop_ends_the_walk() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.kml"), "").unwrap();
        let pattern = root.path().join("**/*.kml");
        let found = expand(pattern.as_os_str(), &AtomicBool::new(true)).unwrap();
        assert!(found.is_empty());
    }

    // See: issue 17, item 5.
    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_are_matched_and_kept() {
        use std::os::unix::ffi::OsStrExt;
        let root = tempfile::tempdir().unwrap();
        let latin1 = OsStr::from_bytes(b"caf\xe9.kml");
        fs::write(root.path().join(latin1), "").unwrap();
        fs::write(root.path().join("ok.kml"), "").unwrap();
        for pattern in ["*.kml", "caf?.kml", "caf*"] {
            let pattern = root.path().join(pattern);
            let found = expand(pattern.as_os_str(), &AtomicBool::new(false)).unwrap();
            assert!(
                found.iter().any(|e| e.path().file_name() == Some(latin1)),
                "{}",
                pattern.display()
            );
        }
        // A pattern whose literal part is not UTF-8.
        let mut dir = root.path().as_os_str().as_bytes().to_vec();
        dir.extend_from_slice(b"/caf\xe9.*");
        let found = expand(OsStr::from_bytes(&dir), &AtomicBool::new(false)).unwrap();
        assert_eq!(found.len(), 1);
    }
}

//! Inputs (paths, directories, glob patterns) to jobs `{input, output}`.
//!
//! Everything that can be decided before the first byte is converted is decided here, so that a
//! mistake in the command line (an invalid pattern, two inputs that would write the same CSV)
//! stops the run before it has changed anything, and so that the workers only ever see one
//! ready-made job each.

pub mod failed;
pub mod names;
pub(crate) mod pattern;
pub mod shard;

use std::borrow::Cow;
use std::collections::hash_map;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::output::durable::parent_or_dot;
// Every path is hashed several times while planning (de-duplication, the folders' canonical
// paths, collisions, clashes): with the standard library's SipHash that was a fifth of the
// planning of 2000 inputs. The paths are the user's own, not an attacker's.
use crate::ui::path_text::escaped;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use pattern::Entry;
use shard::Shard;

/// One input, in the order the user named it, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The input as named on the command line or found by a pattern (for a pattern that
    /// matched nothing, the pattern itself). Used in every message about it.
    pub input: PathBuf,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Convert `input` into `output`; `size` (bytes of the input) only orders the work.
    Convert { output: PathBuf, size: u64 },
    /// The output already exists and `--force` was not given.
    Skip { output: PathBuf },
    /// The input cannot be converted; the message says why and is printed after the path.
    Fail { message: String },
    /// The input failed in an earlier run and has not changed since: not tried again (see
    /// [`crate::batch::plan::failed`]).
    FailedBefore {
        output: PathBuf,
        record: crate::batch::plan::failed::Record,
    },
}

impl Action {
    /// The CSV this input has or would have (beside which its record of a failure lies); none
    /// for an input that cannot be converted.
    pub fn output(&self) -> Option<&Path> {
        match self {
            Action::Convert { output, .. }
            | Action::Skip { output }
            | Action::FailedBefore { output, .. } => Some(output),
            Action::Fail { .. } => None,
        }
    }
}

/// All inputs of a run, in command-line order.
#[derive(Debug, Default)]
pub struct Plan {
    pub items: Vec<Item>,
}

impl Plan {
    /// The folders that will receive outputs (or hold the record of a failed input), each
    /// once; where stale temporaries are looked for.
    pub fn output_dirs(&self) -> Vec<PathBuf> {
        let mut seen = HashSet::new();
        let mut dirs = Vec::new();
        for output in self.items.iter().filter_map(|item| item.action.output()) {
            let dir = parent_or_dot(output).to_path_buf();
            if seen.insert(dir.clone()) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// A mistake in the command line: nothing is converted when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// Not a valid glob pattern (and not an existing path either).
    BadPattern { pattern: String, message: String },
    /// Two different inputs would be written to the same CSV.
    Collision {
        output: PathBuf,
        first: PathBuf,
        second: PathBuf,
        /// `--keep-extension` would tell them apart (`x.kml` and `x.kmz`) and was not given.
        keep_extension_helps: bool,
    },
    /// A file the run writes (a CSV, the merged CSV, the report) is an input or another file of
    /// the run, under this or another name.
    Clash {
        /// What is written there, and its path as given.
        writer: String,
        path: PathBuf,
        /// What would be overwritten, and its path as given.
        victim: String,
        other: PathBuf,
    },
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::BadPattern { pattern, message } => write!(
                f,
                "{pattern}: invalid pattern: {message} (use `**` only as a whole path component, \
                 close every `[`, write `[[]` for a literal `[`)"
            ),
            UsageError::Collision {
                output,
                first,
                second,
                keep_extension_helps,
            } => {
                write!(
                    f,
                    "{} and {} would both be written to {}; ",
                    escaped(first),
                    escaped(second),
                    escaped(output)
                )?;
                if *keep_extension_helps {
                    write!(
                        f,
                        "give --keep-extension to name the CSVs {} and {}, or ",
                        escaped(&csv_name(
                            Path::new(first.file_name().unwrap_or_default()),
                            true
                        )),
                        escaped(&csv_name(
                            Path::new(second.file_name().unwrap_or_default()),
                            true
                        ))
                    )?;
                }
                f.write_str("convert them in separate runs or with different --out folders")
            }
            UsageError::Clash {
                writer,
                path,
                victim,
                other,
            } => write!(
                f,
                "{writer} {} would overwrite {victim} {}; choose another path",
                escaped(path),
                escaped(other)
            ),
        }
    }
}

/// Where outputs go.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `--out`; `None` means beside each input.
    pub out_dir: Option<&'a Path>,
    /// `--force`.
    pub force: bool,
    /// `--shard`: keep only the inputs of this shard.
    pub shard: Option<Shard>,
    /// `--update`: replace an output older than its input.
    pub update: bool,
    /// `--keep-extension`: `x.kml` → `x.kml.csv` instead of `x.csv`.
    pub keep_extension: bool,
}

/// A file the run writes besides the per-input CSVs: the merged CSV, the JSON report.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    pub path: &'a Path,
    /// What it is, for messages: `the report (--report)`.
    pub what: &'static str,
}

/// Expand `inputs` and decide every output. Usage errors are all collected, so the user can fix
/// them in one go. `extra` are the other files the run writes; none of them may be an input or
/// an output.
///
/// Planning stops early, with an empty plan, once `stop` is set (by SIGINT or SIGTERM): on a
/// big tree it can take seconds, and nothing has been written yet.
pub fn build(
    inputs: &[OsString],
    target: Target<'_>,
    extra: &[Extra<'_>],
    stop: &AtomicBool,
) -> Result<Plan, Vec<UsageError>> {
    build_with(inputs, Some(target), extra, stop)
}

/// Expand and de-duplicate `inputs` like [`build`], for outputs that are not one file per input
/// (a merged CSV, standard output): every file found becomes an [`Action::Convert`] with an
/// empty output path.
pub fn build_inputs(
    inputs: &[OsString],
    extra: &[Extra<'_>],
    stop: &AtomicBool,
) -> Result<Plan, Vec<UsageError>> {
    build_with(inputs, None, extra, stop)
}

fn build_with(
    inputs: &[OsString],
    target: Option<Target<'_>>,
    extra: &[Extra<'_>],
    stop: &AtomicBool,
) -> Result<Plan, Vec<UsageError>> {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for raw in inputs {
        if stop.load(Ordering::Relaxed) {
            return Ok(Plan::default());
        }
        expand(raw, &mut found, &mut problems, stop);
    }
    // Resolves every folder once, for the inputs here and the outputs below.
    let mut resolve = Canonical::default();
    for candidate in &mut found {
        if stop.load(Ordering::Relaxed) {
            return Ok(Plan::default());
        }
        if let Found::File {
            path,
            canonical: resolved,
            link,
            ..
        } = candidate
        {
            match resolve.of(path, *link) {
                Ok(path) => *resolved = path,
                Err(e) => {
                    *candidate = Found::Failed(Item {
                        input: path.clone(),
                        action: fail_io(&e),
                    })
                }
            }
        }
    }

    // The same file named twice (`x`, `./x`, a symlink, two overlapping patterns, a `**` that
    // runs through a symlinked folder loop) is converted once, under its shortest name, the
    // first one given among equals: glob lists `a/up/a/up/x.kml` before `a/x.kml` when `up`
    // links to `..`.
    let mut best: HashMap<&Path, (usize, usize)> = HashMap::with_capacity(found.len());
    for (index, candidate) in found.iter().enumerate() {
        if let Found::File {
            path, canonical, ..
        } = candidate
        {
            let rank = (without_curdir(path).components().count(), index);
            best.entry(canonical)
                .and_modify(|b| *b = (*b).min(rank))
                .or_insert(rank);
        }
    }
    let mut items = Vec::new();
    // The identity of each item's output where it exists (taken when it was decided).
    let mut existing = Vec::new();
    // The shard key of each item: its path below the pattern's base; `None` for an input that
    // failed to expand, which every shard reports (each shard's run is incomplete without it).
    let mut keys: Vec<Option<&Path>> = Vec::new();
    for (index, candidate) in found.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Ok(Plan::default());
        }
        match candidate {
            Found::Failed(item) => {
                items.push(item.clone());
                existing.push(None);
                keys.push(None);
            }
            Found::File {
                path,
                canonical,
                rel,
                size,
                ..
            } => {
                if best.get(canonical.as_path()).is_some_and(|b| b.1 == index) {
                    let mut id = None;
                    let action = match target {
                        Some(target) => {
                            decide(path, canonical, rel, *size, target, &mut resolve, &mut id)
                        }
                        None => Action::Convert {
                            output: PathBuf::new(),
                            size: *size,
                        },
                    };
                    items.push(Item {
                        input: path.clone(),
                        action,
                    });
                    existing.push(id);
                    keys.push(Some(rel));
                }
            }
        }
    }

    let mut outputs: Vec<Option<OutputKeys>> = Vec::with_capacity(items.len());
    for (item, existing) in items.iter().zip(existing) {
        if stop.load(Ordering::Relaxed) {
            return Ok(Plan::default());
        }
        outputs.push(match &item.action {
            Action::Convert { output, .. } | Action::Skip { output } if target.is_some() => {
                Some(OutputKeys {
                    path: collision_key(output, &mut resolve),
                    existing,
                })
            }
            _ => None,
        });
    }
    let mut owners: HashMap<&Path, &Path> = HashMap::with_capacity(items.len());
    for (item, keys) in items.iter().zip(&outputs) {
        let (Some(keys), Action::Convert { output, .. } | Action::Skip { output }) =
            (keys, &item.action)
        else {
            continue;
        };
        match owners.entry(&keys.path) {
            hash_map::Entry::Occupied(first) => problems.push(UsageError::Collision {
                output: output.clone(),
                first: first.get().to_path_buf(),
                second: item.input.clone(),
                keep_extension_helps: target.is_some_and(|t| !t.keep_extension)
                    && first.get().file_name() != item.input.file_name(),
            }),
            hash_map::Entry::Vacant(slot) => {
                slot.insert(&item.input);
            }
        }
    }

    check_clashes(
        &found,
        &items,
        &outputs,
        extra,
        &mut resolve,
        &mut problems,
        stop,
    );
    if stop.load(Ordering::Relaxed) {
        return Ok(Plan::default());
    }

    // Sharding comes after the collision checks, so that every shard refuses a collision even
    // when its two inputs fall into different shards.
    if let Some(shard) = target.and_then(|t| t.shard) {
        let mut keys = keys.into_iter();
        items.retain(|_| keys.next().flatten().is_none_or(|rel| shard.contains(rel)));
    }

    if problems.is_empty() {
        Ok(Plan { items })
    } else {
        Err(problems)
    }
}

/// An input file before de-duplication, or an input that already failed.
enum Found {
    File {
        path: PathBuf,
        /// What de-duplication compares.
        canonical: PathBuf,
        /// The output's path relative to `--out`, before the extension is replaced.
        rel: PathBuf,
        size: u64,
        /// The file's identity, from the `stat` that found it.
        id: Option<FileId>,
        /// Whether `path` is a symbolic link itself.
        link: bool,
    },
    Failed(Item),
}

impl Found {
    /// A file found with metadata `meta`; its canonical path is filled in once all are found.
    fn file(path: PathBuf, rel: PathBuf, (meta, link): &(fs::Metadata, bool)) -> Found {
        Found::File {
            path,
            canonical: PathBuf::new(),
            rel,
            size: meta.len(),
            id: file_id(meta),
            link: *link,
        }
    }
}

/// `fs::canonicalize` for many paths in a few folders: each folder is resolved once, and a
/// path that is not a symlink itself is its folder's canonical path joined with its name. The
/// C library resolves a path with one `readlink` per component, which for a batch of thousands
/// of files took longer than the rest of the planning.
#[derive(Default)]
struct Canonical {
    /// `None` for a folder that cannot be resolved: the `--out` folder of a first run, which
    /// does not exist yet and was asked for once per output.
    dirs: HashMap<PathBuf, Option<PathBuf>>,
    /// The folder asked for last, and what it resolved to.
    last: Option<(PathBuf, Option<PathBuf>)>,
    /// The folder [`Canonical::normal`] was asked for last, and its answer.
    normal: Option<(PathBuf, PathBuf)>,
}

impl Canonical {
    /// The canonical path of `path`, which exists; `link`: whether it is a symbolic link
    /// itself (the caller has its `lstat`).
    fn of(&mut self, path: &Path, link: bool) -> io::Result<PathBuf> {
        let Some(name) = path.file_name() else {
            return names::canonical(path);
        };
        if link {
            return names::canonical(path);
        }
        let dir = parent_or_dot(path);
        match self.dir(dir) {
            Some(resolved) => Ok(joined(resolved, name)),
            // Asked again for the system's own words; a rare path (the folder holds a file).
            None => names::canonical(dir).map(|resolved| resolved.join(name)),
        }
    }

    fn dir(&mut self, dir: &Path) -> Option<&Path> {
        // Inputs come folder by folder and their outputs too: most calls ask for the folder
        // the previous one asked for, which costs a comparison instead of a hash.
        let answer = match self.last.take() {
            Some((asked, resolved)) if asked == dir => (asked, resolved),
            _ => {
                let resolved = self
                    .dirs
                    .entry(dir.to_path_buf())
                    .or_insert_with(|| names::canonical(dir).ok());
                (dir.to_path_buf(), resolved.clone())
            }
        };
        self.last.insert(answer).1.as_deref()
    }

    /// [`normal_absolute`] of the folder `dir`, remembered for the next call.
    fn normal(&mut self, dir: &Path) -> &Path {
        let answer = match self.normal.take() {
            Some((asked, normal)) if asked == dir => (asked, normal),
            _ => (dir.to_path_buf(), normal_absolute(dir)),
        };
        &self.normal.insert(answer).1
    }
}

/// The metadata of the file `path` leads to, and whether `path` is a symbolic link itself (for
/// its canonical path). On Unix one `lstat` where it is not a link; `stat` and `lstat` were
/// two calls per input. Elsewhere a reparse point that is not a link is read as before, by
/// what it leads to.
fn stat_input(path: &Path) -> io::Result<(fs::Metadata, bool)> {
    if cfg!(unix) {
        let meta = fs::symlink_metadata(path)?;
        if !meta.file_type().is_symlink() {
            return Ok((meta, false));
        }
        return Ok((fs::metadata(path)?, true));
    }
    let meta = fs::metadata(path)?;
    Ok((meta, fs::symlink_metadata(path)?.file_type().is_symlink()))
}

fn expand(raw: &OsStr, found: &mut Vec<Found>, problems: &mut Vec<UsageError>, stop: &AtomicBool) {
    let raw = names::portable_arg(raw);
    let raw = raw.as_os_str();
    let path = Path::new(raw);
    // An existing path wins over a pattern reading, so `maps[1].kml` can be named as it is.
    if names::exists_as_written(path) {
        expand_path(path, found, stop);
        return;
    }
    match pattern::is_pattern(raw) {
        true => expand_pattern(raw, found, problems, stop),
        // Not a pattern and not there: let the operating system word the message.
        false => found.push(Found::Failed(Item {
            input: path.to_path_buf(),
            action: match fs::metadata(path) {
                Err(e) => fail_io(&e),
                Ok(_) => fail("vanished while being planned"),
            },
        })),
    }
}

fn expand_path(path: &Path, found: &mut Vec<Found>, stop: &AtomicBool) {
    if let Some(unfit) = unfit_input(path, &file_name(path)) {
        return found.push(unfit);
    }
    match stat_input(path) {
        Ok((meta, _)) if meta.is_dir() => expand_dir(path, found, stop),
        Ok(stat) => found.push(Found::file(path.to_path_buf(), file_name(path), &stat)),
        Err(e) => found.push(Found::Failed(Item {
            input: path.to_path_buf(),
            action: fail_io(&e),
        })),
    }
}

/// A directory argument stands for the `.kml` and `.kmz` files directly in it, as
/// `DIR/*.kml DIR/*.kmz` would (any case of the extension, no hidden files).
fn expand_dir(dir: &Path, found: &mut Vec<Found>, stop: &AtomicBool) {
    let failed = |action| {
        Found::Failed(Item {
            input: dir.to_path_buf(),
            action,
        })
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return found.push(failed(fail_io(&e))),
    };
    let before = found.len();
    let mut files = Vec::new();
    for entry in entries {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return found.push(failed(fail_io(&e))),
        };
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") || !has_kml_extension(Path::new(&name)) {
            continue;
        }
        let path = names::portable(dir.join(&name));
        if let Some(unfit) = unfit_input(&path, Path::new(&name)) {
            found.push(unfit);
            continue;
        }
        // Follows symlinks: a link to a KML file is a KML file.
        if let Ok(stat) = stat_input(&path) {
            if stat.0.is_file() {
                files.push((name, path, stat));
            }
        }
    }
    if files.is_empty() && found.len() == before {
        return found.push(failed(fail(format!(
            "no .kml or .kmz file in this folder (a folder stands for the files directly in \
             it; for its sub-folders too, give the pattern \"{}\")",
            dir.join("**").join("*.km[lz]").display()
        ))));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    found.extend(
        files
            .into_iter()
            .map(|(name, path, stat)| Found::file(path, PathBuf::from(name), &stat)),
    );
}

/// An input that Windows cannot open under the name it was found by (a file made by another
/// system, or through a `\\?\` path): `rel`, the part of `path` found by listing folders,
/// holds a device name or a name ending in a dot or space. Without this the message would be
/// the system's "Invalid handle".
fn unfit_input(path: &Path, rel: &Path) -> Option<Found> {
    let (name, why) = names::unfit_component(rel)?;
    Some(Found::Failed(Item {
        input: path.to_path_buf(),
        action: fail(format!(
            "cannot be read on Windows: \"{}\" {why}; rename it",
            escaped(Path::new(name))
        )),
    }))
}

fn has_kml_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("kml") || ext.eq_ignore_ascii_case("kmz"))
}

fn expand_pattern(
    pattern: &OsStr,
    found: &mut Vec<Found>,
    problems: &mut Vec<UsageError>,
    stop: &AtomicBool,
) {
    let matches = match pattern::expand(pattern, stop) {
        Ok(matches) => matches,
        Err(message) => {
            problems.push(UsageError::BadPattern {
                pattern: pattern.to_string_lossy().into_owned(),
                message,
            });
            return;
        }
    };
    let base = fixed_base(pattern);
    let before = found.len();
    for entry in matches {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match entry {
            Entry::Match(path) => {
                let path = names::portable(path);
                let rel = relative_to(&path, &base);
                if let Some(unfit) = unfit_input(&path, &rel) {
                    found.push(unfit);
                    continue;
                }
                match stat_input(&path) {
                    Ok((meta, _)) if meta.is_dir() => found.push(Found::Failed(Item {
                        input: path,
                        action: fail(
                            "is a directory (name it as an argument of its own to convert the \
                             .kml/.kmz files in it)",
                        ),
                    })),
                    Ok(stat) => found.push(Found::file(path, rel, &stat)),
                    Err(e) => found.push(Found::Failed(Item {
                        action: fail_io(&e),
                        input: path,
                    })),
                }
            }
            // A folder below the pattern could not be read.
            Entry::Unreadable(path, e) => found.push(Found::Failed(Item {
                input: names::portable(path),
                action: fail_io(&e),
            })),
        }
    }
    if found.len() == before && !stop.load(Ordering::Relaxed) {
        found.push(Found::Failed(Item {
            input: PathBuf::from(pattern),
            action: fail("no file matches"),
        }));
    }
}

/// The leading components of a pattern that contain no wildcard: the folder the pattern
/// searches below. `crawl/**/*.kml` -> `crawl`, `*.kml` -> ``.
fn fixed_base(pattern: &OsStr) -> PathBuf {
    without_curdir(Path::new(pattern))
        .components()
        .take_while(|c| !pattern::is_pattern(c.as_os_str()))
        .collect()
}

fn relative_to(path: &Path, base: &Path) -> PathBuf {
    match without_curdir(path).strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => file_name(path),
        Ok(rel) => rel.to_path_buf(),
        Err(_) => file_name(path),
    }
}

/// `path` without its `.` components; `components()` already drops all but a leading one, so
/// only a path that starts with `./` is copied.
fn without_curdir(path: &Path) -> Cow<'_, Path> {
    if path.components().next() != Some(Component::CurDir) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(
        path.components()
            .filter(|c| *c != Component::CurDir)
            .collect(),
    )
}

fn file_name(path: &Path) -> PathBuf {
    path.file_name().map(PathBuf::from).unwrap_or_default()
}

/// Decide the output of one (de-duplicated) input and whether it is converted, skipped or
/// refused; `existing` gets the identity of an output that exists already.
fn decide(
    input: &Path,
    canonical: &Path,
    rel: &Path,
    size: u64,
    target: Target<'_>,
    resolve: &mut Canonical,
    existing: &mut Option<FileId>,
) -> Action {
    let keep = target.keep_extension;
    let output = match target.out_dir {
        None => csv_name(input, keep),
        Some(dir) => match confine(rel) {
            Some(rel) => names::portable(csv_name(&dir.join(rel), keep)),
            None => {
                return fail(format!(
                    "its output {} would lie outside the --out folder; refusing to write it",
                    escaped(&csv_name(rel, keep))
                ))
            }
        },
    };
    if output.file_name().is_none() {
        return fail("cannot name an output for it");
    }
    // Only the part of the output this run names: the folders above it exist already.
    let named = match target.out_dir {
        None => output.file_name().map(Path::new).unwrap_or(&output),
        Some(dir) => output
            .strip_prefix(names::portable(dir.to_path_buf()))
            .unwrap_or(&output),
    };
    if let Some((name, why)) = names::unfit_component(named) {
        return fail(format!(
            "its output {} cannot be written: \"{}\" {why}; rename the input",
            escaped(&output),
            escaped(Path::new(name))
        ));
    }
    if let Some(dir) = target.out_dir {
        if let Some(why) = link_below(dir, &output) {
            return fail(why);
        }
    }
    let meta = match fs::symlink_metadata(&output) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Action::Convert { output, size },
        Err(e) => return fail(format!("cannot check output {}: {e}", escaped(&output))),
        Ok(meta) => meta,
    };
    // Not a link where it is kept (refused below): what `stat` would say of it.
    *existing = file_id(&meta);
    match meta {
        meta if meta.file_type().is_symlink() => fail(format!(
            "output {} is a symbolic link; refusing to write through it (remove it first)",
            escaped(&output)
        )),
        meta if meta.is_dir() => fail(format!(
            "output {} is a directory; refusing to replace it",
            escaped(&output)
        )),
        _ if resolve.of(&output, false).is_ok_and(|o| o == canonical) => fail(format!(
            "its output {} would replace the input itself; use --out",
            escaped(&output)
        )),
        _ if target.force => Action::Convert { output, size },
        meta if target.update && is_older(&meta, input) => Action::Convert { output, size },
        _ => Action::Skip { output },
    }
}

/// The CSV of `path`: its extension replaced by `.csv`, or with `keep_extension` followed by it
/// (`x.kml.csv`), so that `x.kml` and `x.kmz` side by side get a CSV each.
fn csv_name(path: &Path, keep_extension: bool) -> PathBuf {
    if keep_extension {
        let mut name = path.as_os_str().to_owned();
        name.push(".csv");
        PathBuf::from(name)
    } else {
        path.with_extension("csv")
    }
}

/// Why `output` cannot be written below `out_dir` when a folder between them is a symbolic link
/// (or a dangling one): writing through it would put the CSV outside `--out`. `--out` itself
/// may be a link; what lies below it is the run's to make.
pub fn link_below(out_dir: &Path, output: &Path) -> Option<String> {
    let below = output.strip_prefix(out_dir).ok()?.parent()?;
    let mut folder = out_dir.to_path_buf();
    for part in below.components() {
        folder.push(part);
        match fs::symlink_metadata(&folder) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Some(format!(
                    "folder {} inside --out is a symbolic link; refusing to write through it \
                     (remove it, or convert into its target with an --out of its own)",
                    escaped(&folder)
                ))
            }
            Ok(_) => {}
            // Missing: the run makes it, and everything below it.
            Err(_) => return None,
        }
    }
    None
}

/// Whether an output with metadata `output` is older than `input` (as make decides; equal times
/// are up to date). When a time cannot be read, the output counts as out of date.
pub fn is_older(output: &fs::Metadata, input: &Path) -> bool {
    match (
        output.modified(),
        fs::metadata(input).and_then(|m| m.modified()),
    ) {
        (Ok(output), Ok(input)) => output < input,
        _ => true,
    }
}

/// Normalise a relative output path lexically; `None` if it is absolute or climbs out with
/// `..`, because an output must never be written outside `--out`.
fn confine(rel: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.iter().collect())
}

/// A path that is equal for two spellings of the same output (`out/x.csv`, `./out/x.csv`,
/// through a symlinked folder; on Windows and macOS, `X.csv` and `x.csv`), whether or not the
/// output's folder exists yet.
fn collision_key(output: &Path, resolve: &mut Canonical) -> PathBuf {
    names::folded(collision_path(output, resolve))
}

fn collision_path(output: &Path, resolve: &mut Canonical) -> PathBuf {
    let name = output.file_name().unwrap_or_default();
    let dir = parent_or_dot(output);
    match resolve.dir(dir) {
        Some(dir) => joined(dir, name),
        // A folder that does not exist yet (the `--out` of a first run): its absolute path,
        // normalised once for all the outputs in it.
        None if !name.is_empty() => joined(resolve.normal(dir), name),
        None => normal_absolute(output),
    }
}

/// `dir.join(name)` in one allocation (`join` copies `dir` and then grows it for `name`).
fn joined(dir: &Path, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
    path.push(dir);
    path.push(name);
    path
}

/// `path` made absolute, its `.` and `..` taken away lexically (it need not exist).
fn normal_absolute(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// Which file a path names, where the system can tell: device and inode on Unix. Elsewhere the
/// canonical path stands for it (see [`check_clashes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId(u64, u64);

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<FileId> {
    None
}

/// What tells an item's output from other paths: its collision key (see `collision_key`) and
/// its identity where it exists already (from `decide`'s look at it).
struct OutputKeys {
    path: PathBuf,
    existing: Option<FileId>,
}

/// Refuse a run in which a file it writes (a CSV, `extra`: the merged CSV, the report) is an
/// input, an existing CSV it skips, or another file it writes. Two paths are the same file when
/// they lead to one inode (hard links, symlinks) or, for a file that does not exist yet, when
/// their folders resolve to one folder and their names are equal. Two CSVs of different inputs
/// are left to the collision check, and a CSV that would be its own input to [`decide`].
fn check_clashes(
    found: &[Found],
    items: &[Item],
    outputs: &[Option<OutputKeys>],
    extra: &[Extra<'_>],
    resolve: &mut Canonical,
    problems: &mut Vec<UsageError>,
    stop: &AtomicBool,
) {
    /// What a claimed path is, put into words only for a clash.
    enum What<'a> {
        Input,
        /// The existing CSV of this input, which the run skips.
        Skipped(&'a Path),
        /// The CSV of this input, which the run writes.
        Csv(&'a Path),
        Extra(&'a str),
    }
    impl What<'_> {
        fn text(&self) -> String {
            match self {
                What::Input => "the input".into(),
                What::Skipped(input) => format!("the existing CSV of {}", escaped(input)),
                What::Csv(input) => format!("the CSV of {}", escaped(input)),
                What::Extra(what) => (*what).to_owned(),
            }
        }
    }
    /// A claim on a path: what it is and whether the run writes it.
    struct Claim<'a> {
        path: &'a Path,
        what: What<'a>,
        keys: Vec<Key<'a>>,
    }
    impl Claim<'_> {
        fn written(&self) -> bool {
            matches!(self.what, What::Csv(_) | What::Extra(_))
        }
    }
    let mut claims: Vec<Claim<'_>> = Vec::new();
    for candidate in found {
        if let Found::File {
            path,
            canonical,
            id,
            ..
        } = candidate
        {
            // Folded as the output keys are (see `collision_key`).
            let path_key = match names::CASE_INSENSITIVE {
                true => Cow::Owned(names::folded(canonical.clone())),
                false => Cow::Borrowed(canonical.as_path()),
            };
            let mut keys = vec![Key::Path(path_key)];
            keys.extend(id.map(Key::Id));
            claims.push(Claim {
                path,
                what: What::Input,
                keys,
            });
        }
    }
    // Skipped CSVs first: a CSV the run writes over one it skips is the clash reported.
    for skipping in [true, false] {
        for (item, output_keys) in items.iter().zip(outputs) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Some(output_keys) = output_keys else {
                continue;
            };
            let (output, what) = match &item.action {
                Action::Skip { output } if skipping => (output, What::Skipped(&item.input)),
                Action::Convert { output, .. } if !skipping => (output, What::Csv(&item.input)),
                _ => continue,
            };
            let mut keys = vec![Key::Path(Cow::Borrowed(output_keys.path.as_path()))];
            keys.extend(output_keys.existing.map(Key::Id));
            claims.push(Claim {
                path: output,
                what,
                keys,
            });
        }
    }
    for e in extra {
        claims.push(Claim {
            path: e.path,
            what: What::Extra(e.what),
            keys: path_keys(e.path, resolve),
        });
    }

    let mut owner: HashMap<&Key, usize> = HashMap::with_capacity(claims.len());
    for (index, claim) in claims.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut reported = false;
        for key in &claim.keys {
            let first = match owner.entry(key) {
                hash_map::Entry::Occupied(first) => *first.get(),
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                    continue;
                }
            };
            let other = &claims[first];
            let both_csvs =
                matches!(claim.what, What::Csv(_)) && matches!(other.what, What::Csv(_));
            if claim.written() && !both_csvs && !reported {
                problems.push(UsageError::Clash {
                    writer: claim.what.text(),
                    path: claim.path.to_path_buf(),
                    victim: other.what.text(),
                    other: other.path.to_path_buf(),
                });
                reported = true;
            }
        }
    }
}

/// What two paths to one file have in common.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Id(FileId),
    Path(Cow<'a, Path>),
}

/// The keys of a path the run writes: its normalised path (its folder resolved), and its
/// identity if it exists.
fn path_keys(path: &Path, resolve: &mut Canonical) -> Vec<Key<'static>> {
    let mut keys = vec![Key::Path(Cow::Owned(collision_key(path, resolve)))];
    if let Some(id) = fs::metadata(path).ok().as_ref().and_then(file_id) {
        keys.push(Key::Id(id));
    }
    keys
}

fn fail(message: impl Into<String>) -> Action {
    Action::Fail {
        message: message.into(),
    }
}

fn fail_io(e: &io::Error) -> Action {
    fail(format!("cannot read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn canonical_paths_agree_with_the_c_library() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/x.kml"), "").unwrap();
        symlink(root.join("a/b"), root.join("via")).unwrap();
        symlink("b/x.kml", root.join("a/link.kml")).unwrap();
        symlink("..", root.join("a/b/up")).unwrap();
        let mut resolve = Canonical::default();
        for path in [
            "a/b/x.kml",
            "./a/b/x.kml",
            "a/../a/b/x.kml",
            "via/x.kml",
            "a/link.kml",
            "a/b/up/b/x.kml",
            "via/up/link.kml",
            "a/b",
            "a/b/up",
        ] {
            let path = root.join(path);
            let link = fs::symlink_metadata(&path).unwrap().is_symlink();
            assert_eq!(
                resolve.of(&path, link).unwrap(),
                fs::canonicalize(&path).unwrap(),
                "{}",
                path.display()
            );
        }
        // A folder that cannot be resolved is asked for once, and its error is the system's.
        let missing = root.join("nowhere/x.kml");
        assert!(resolve.of(&missing, false).is_err());
        assert_eq!(resolve.dir(&root.join("nowhere")), None);
        fs::create_dir(root.join("nowhere")).unwrap();
        assert_eq!(resolve.dir(&root.join("nowhere")), None);
        assert_eq!(
            resolve.of(&missing, false).unwrap(),
            root.join("nowhere/x.kml")
        );
    }

    #[test]
    fn collision_paths_are_the_same_whatever_was_asked_before() {
        let root = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        let outputs = [
            "a/x.csv",
            "new/x.csv",
            "new/y.csv",
            "a/b/x.csv",
            "new/../a/x.csv",
            "new/./deeper/../z.csv",
            "new/x.csv",
            "a/x.csv",
            "gone/../new/y.csv",
        ]
        .map(|output| root.join(output));
        // One resolver for all, as planning uses it, against a fresh one for each path.
        let mut shared = Canonical::default();
        for output in &outputs {
            let alone = collision_path(output, &mut Canonical::default());
            assert_eq!(
                collision_path(output, &mut shared),
                alone,
                "{}",
                output.display()
            );
            if !parent_or_dot(output).exists() {
                assert_eq!(alone, normal_absolute(output), "{}", output.display());
            }
        }
        assert_eq!(collision_path(&outputs[4], &mut shared), outputs[0]);
        assert_eq!(
            collision_path(&outputs[8], &mut shared),
            collision_path(&outputs[2], &mut shared)
        );
    }

    #[test]
    fn an_output_that_would_be_its_own_input_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let input = root.path().join("track.csv");
        fs::write(&input, "<kml/>").unwrap();
        let target = Target {
            out_dir: None,
            force: true,
            shard: None,
            update: false,
            keep_extension: false,
        };
        let plan = build(
            &[input.clone().into_os_string()],
            target,
            &[],
            &AtomicBool::new(false),
        )
        .unwrap();
        match &plan.items[0].action {
            Action::Fail { message, .. } => {
                assert!(message.contains("replace the input itself"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read_to_string(&input).unwrap(), "<kml/>");
    }

    // See: issue 17, item 2: SIGINT/SIGTERM must be answered while planning.
    #[test]
    fn planning_stops_when_asked() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.kml"), "<kml/>").unwrap();
        let inputs = [
            root.path().as_os_str().to_owned(),
            root.path().join("*.kml").into_os_string(),
        ];
        let plan = build_inputs(&inputs, &[], &AtomicBool::new(true)).unwrap();
        assert!(plan.items.is_empty());
        let plan = build_inputs(&inputs, &[], &AtomicBool::new(false)).unwrap();
        assert_eq!(plan.items.len(), 1);
    }

    #[test]
    fn fixed_base_stops_at_first_wildcard() {
        let base = |p: &str| fixed_base(OsStr::new(p));
        assert_eq!(base("crawl/**/*.kml"), PathBuf::from("crawl"));
        assert_eq!(base("./data/*/x.kml"), PathBuf::from("data"));
        assert_eq!(base("*.kml"), PathBuf::new());
        assert_eq!(base("/a/b[12]/c"), PathBuf::from("/a"));
    }

    #[test]
    fn relative_output_paths() {
        let base = fixed_base(OsStr::new("crawl/**/*.kml"));
        assert_eq!(
            relative_to(Path::new("crawl/2024/05/x.kml"), &base),
            PathBuf::from("2024/05/x.kml")
        );
        assert_eq!(
            relative_to(Path::new("./crawl/x.kml"), &base),
            PathBuf::from("x.kml")
        );
    }

    #[test]
    fn confine_refuses_escapes() {
        assert_eq!(
            confine(Path::new("a/../b.kml")),
            Some(PathBuf::from("b.kml"))
        );
        assert_eq!(
            confine(Path::new("./a/b.kml")),
            Some(PathBuf::from("a/b.kml"))
        );
        assert_eq!(confine(Path::new("../b.kml")), None);
        assert_eq!(confine(Path::new("a/../../b.kml")), None);
        assert_eq!(confine(Path::new("/etc/b.kml")), None);
        assert_eq!(confine(Path::new("")), None);
    }

    #[test]
    fn kml_extension_any_case() {
        assert!(has_kml_extension(Path::new("a.KML")));
        assert!(has_kml_extension(Path::new("a.Kmz")));
        assert!(!has_kml_extension(Path::new("a.kml.txt")));
        assert!(!has_kml_extension(Path::new("kml")));
    }
}

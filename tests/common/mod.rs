//! A throw-away directory tree and a way to run the real `kml2csv` binary in it.
//!
//! Every test gets its own [`TestEnv`], so tests run in parallel without seeing each other's
//! files, and paths in arguments and assertions are relative to its root.

#![allow(dead_code)] // each test binary uses a different part of the helper

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};

/// A Placemark with a single 3D point: the smallest input that gives a row.
pub const POINT_KML: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>A</name><Point><coordinates>1,2,3</coordinates></Point></Placemark></kml>"#;

/// The CSV header row.
pub const HEADER: &str =
    "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when\n";

/// The row [`POINT_KML`] gives.
pub const POINT_ROW: &str = "0,A,Point,0,,0,1,2,3,\n";

/// A KML whose Placemarks carry `n` points each named after `tag`, so that different files
/// give different CSVs.
pub fn points_kml(tag: &str, n: usize) -> String {
    let mut kml = String::from(r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Document>"#);
    for i in 0..n {
        kml.push_str(&format!(
            "<Placemark><name>{tag}-{i}</name><Point><coordinates>{i}.5,-{i}.25,{n}</coordinates></Point></Placemark>\n"
        ));
    }
    kml.push_str("</Document></kml>\n");
    kml
}

/// One LineString of `tuples` vertices: about 50 bytes of CSV each, so 200,000 of them make a
/// CSV that is written past the page cache where that is done (from 8 MiB on).
#[allow(dead_code)]
pub fn long_line_kml(tuples: usize) -> String {
    let mut kml = String::from("<kml><Placemark><name>long</name><LineString><coordinates>");
    for i in 0..tuples {
        kml.push_str(&format!("{}.123456,-{}.654321,1000.5 ", i % 180, i % 90));
    }
    kml.push_str("</coordinates></LineString></Placemark></kml>");
    kml
}

pub struct TestEnv {
    root: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` if a signal killed the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stderr lines, for assertions on each of them.
    pub fn lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            root: tempfile::Builder::new()
                .prefix("kml2csv-test-")
                .tempdir()
                .expect("create test directory"),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Write `contents` to `rel`, creating its folders.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent folders");
        }
        fs::write(&path, contents).expect("write test file");
        path
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(&path).expect("create folder");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// The binary, to be started in the test directory.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kml2csv"));
        command.current_dir(self.root.path());
        command.env_remove("RUST_BACKTRACE");
        command
    }

    /// Run `kml2csv ARGS` in the test directory and wait for it.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command()
            .args(args)
            .output_retrying()
            .expect("start kml2csv");
        run_of(output)
    }

    /// Run `kml2csv ARGS` as a user for whom file permissions bind: as root, as `nobody`, with
    /// the test directory opened to everyone and the binary copied where `nobody` may run it
    /// (the checkout may lie in a folder only root may enter, as `mktemp -d` makes one).
    #[cfg(unix)]
    pub fn run_unprivileged(&self, args: &[&str]) -> Run {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        if !is_root() {
            return self.run(args);
        }
        fs::set_permissions(self.root(), fs::Permissions::from_mode(0o777))
            .expect("open the test directory");
        let bin = tempfile::Builder::new()
            .prefix("kml2csv-bin-")
            .tempdir()
            .expect("create a folder for the binary");
        fs::set_permissions(bin.path(), fs::Permissions::from_mode(0o755))
            .expect("open the binary's folder");
        let exe = bin.path().join("kml2csv");
        fs::copy(env!("CARGO_BIN_EXE_kml2csv"), &exe).expect("copy the binary");
        let mut command = Command::new(&exe);
        command
            .current_dir(self.root())
            .env_remove("RUST_BACKTRACE")
            .args(args);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let output = command.output_retrying().expect("start kml2csv");
        run_of(output)
    }

    /// Every file and symlink below the root (not the folders themselves), relative with `/`,
    /// sorted; hidden files included so that leftovers show.
    pub fn files(&self) -> Vec<String> {
        let mut found = Vec::new();
        collect(self.root.path(), self.root.path(), &mut found);
        found.sort();
        found
    }

    /// The files whose name ends in `suffix`.
    pub fn files_ending(&self, suffix: &str) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|f| f.ends_with(suffix))
            .collect()
    }

    /// Leftover temporaries anywhere in the tree.
    pub fn temporaries(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|f| {
                f.rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with(".kml2csv-"))
            })
            .collect()
    }

    /// Has process `pid` begun writing an output into the folder `dir`? A named temporary
    /// shows in the folder; an unnamed one (`O_TMPFILE`, Linux) only among the process's open
    /// files, as a regular file in that folder.
    pub fn writing_into(&self, pid: u32, dir: &str) -> bool {
        if !self.temporaries().is_empty() {
            return true;
        }
        let (Ok(dir), Ok(fds)) = (
            fs::canonicalize(self.path(dir)),
            fs::read_dir(format!("/proc/{pid}/fd")),
        ) else {
            return false;
        };
        fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(&dir))
                && fs::metadata(fd.path()).is_ok_and(|m| m.is_file())
        })
    }
}

pub fn run_of(output: Output) -> Run {
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn collect(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect(root, &path, found);
        } else {
            let rel = path.strip_prefix(root).expect("below root");
            let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
            found.push(parts.join("/"));
        }
    }
}

/// A KML of one LineString with `blocks` × 10 000 vertices (about 24 bytes each), so that a
/// debug build of kml2csv spends roughly a second on every 40 blocks: long enough to act on
/// a run while it converts. One block repeated, so that writing it is quick.
pub fn slow_kml(blocks: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut block = String::new();
    for i in 0..10_000 {
        let _ = write!(block, "{}.123456,{}.654321,{} ", i % 180, i % 90, i % 1000);
    }
    let mut kml = Vec::with_capacity(block.len() * blocks + 200);
    kml.extend_from_slice(br#"<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>slow</name><LineString><coordinates>"#);
    for _ in 0..blocks {
        kml.extend_from_slice(block.as_bytes());
    }
    kml.extend_from_slice(b"</coordinates></LineString></Placemark></kml>\n");
    kml
}

/// Add `n` to the figure `key` of the reliability report (`tests/report.rs` sums them).
/// Figures live in files under the target folder, one line per recording, so that test
/// binaries and threads never share state. The Windows suite (under wine, same target folder)
/// keeps its figures apart: the report speaks of the Linux runs.
pub fn record(key: &str, n: u64) {
    use std::io::Write;
    let folder = if cfg!(windows) {
        "reliability-windows"
    } else {
        "reliability"
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    let _ = fs::create_dir_all(&dir);
    if let Ok(mut file) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{key}.txt")))
    {
        let _ = writeln!(file, "{n}");
    }
}

/// Whether the tests run as root: file permissions do not bind then, but mounts work.
#[cfg(unix)]
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A file system mounted on a folder for the life of the value (root only).
#[cfg(unix)]
pub struct Mount {
    path: PathBuf,
}

#[cfg(unix)]
impl Mount {
    /// Mount a tmpfs with `options` (e.g. `size=256k`) on `path`; `None` when not root or the
    /// mount is refused (a container without the capability).
    pub fn tmpfs(path: &Path, options: &str) -> Option<Mount> {
        if !is_root() {
            return None;
        }
        fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount {
            path: path.to_path_buf(),
        })
    }

    /// Mount a new ext4 file system of `megabytes`, made in an image file beside `path`, on
    /// `path`; `None` when not root, or `mkfs.ext4` or loop devices are missing.
    #[allow(dead_code)]
    pub fn ext4(path: &Path, megabytes: u32) -> Option<Mount> {
        if !is_root() {
            return None;
        }
        let image = path.with_extension("ext4");
        fs::File::create(&image)
            .and_then(|f| f.set_len(u64::from(megabytes) << 20))
            .ok()?;
        fs::create_dir_all(path).ok()?;
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .output()
            .is_ok_and(|o| o.status.success());
        let ok = made
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(path)
                .output()
                .is_ok_and(|o| o.status.success());
        ok.then(|| Mount {
            path: path.to_path_buf(),
        })
    }

    /// Make the mount read-only.
    pub fn read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success())
    }
}

#[cfg(unix)]
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Starting a process, tried again where the system refuses a start for no reason of the
/// test's; the child never ran, so starting it again cannot hide anything kml2csv did.
///
/// - Wine (the Windows suite's runner) now and then fails `CreateProcess` with
///   `ERROR_INTERNAL_ERROR` (1359) before any child exists, under load.
/// - A binary copied by the test (see [`TestEnv::run_unprivileged`]) fails with `ETXTBSY`
///   while a child forked by another test thread at the moment of the copy still holds it open
///   for writing; that lasts until the child execs, milliseconds.
///
/// Every other error is returned at once.
pub trait StartRetrying {
    fn output_retrying(&mut self) -> io::Result<Output>;
    fn spawn_retrying(&mut self) -> io::Result<Child>;
    fn status_retrying(&mut self) -> io::Result<ExitStatus>;
}

impl StartRetrying for Command {
    fn output_retrying(&mut self) -> io::Result<Output> {
        retry_start(|| self.output())
    }

    fn spawn_retrying(&mut self) -> io::Result<Child> {
        retry_start(|| self.spawn())
    }

    fn status_retrying(&mut self) -> io::Result<ExitStatus> {
        retry_start(|| self.status())
    }
}

/// The error a start is refused with for no reason of the test's (see [`StartRetrying`]).
#[cfg(windows)]
const REFUSED: i32 = 1359; // ERROR_INTERNAL_ERROR
#[cfg(unix)]
const REFUSED: i32 = libc::ETXTBSY;

fn retry_start<T>(mut start: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(REFUSED) && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(200 * tries));
            }
            result => return result,
        }
    }
}

//! A small CSV converted into memory, for another thread to write into its temporary.
//!
//! Of converting a small file, about a fifth is the kernel's: creating the temporary (an inode
//! to allocate) and copying the CSV into the page cache. While a core idles (fewer workers than
//! cores, as `-j1` on two), a worker leaves that to a writing thread and goes on with its next
//! file. [`Holding`] keeps what the CSV writer writes in memory; a CSV that outgrows
//! [`HOLD_AT_MOST`] (a small KML can make a big CSV: attributes repeat on every row) goes to its
//! temporary from then on, on the worker, so memory stays bounded whatever the input.
//!
//! Nothing here makes a file durable or names it: that stays [`crate::output::commit`]'s job.

use std::cell::OnceCell;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::output::disk::WriteBack;
use crate::output::durable::parent_or_dot;
use crate::output::temp::Temp;

/// The most a CSV holds in memory before it goes to its temporary.
pub const HOLD_AT_MOST: usize = 2 << 20;

/// A CSV writer that keeps the CSV in `held`, or, past [`HOLD_AT_MOST`], writes it to a
/// temporary for `output` made on the spot and kept in `spilled`. After the last write (and
/// [`Write::flush`]), the CSV is whole in one of the two.
pub struct Holding<'a> {
    held: &'a mut Vec<u8>,
    spilled: &'a OnceCell<Temp>,
    file: Option<WriteBack<'a>>,
    output: &'a Path,
    replace: bool,
}

impl<'a> Holding<'a> {
    /// `held` and `spilled` must be empty; `replace` as for [`Temp::create_for`].
    pub fn new(
        held: &'a mut Vec<u8>,
        spilled: &'a OnceCell<Temp>,
        output: &'a Path,
        replace: bool,
    ) -> Self {
        Holding {
            held,
            spilled,
            file: None,
            output,
            replace,
        }
    }

    /// Move to the temporary: write what is held there and go on there.
    fn spill(&mut self) -> io::Result<&mut WriteBack<'a>> {
        let temp = create_temp(self.output, self.replace)?;
        // `spilled` was empty (a `Holding` spills once), so this is `temp`.
        let temp = self.spilled.get_or_init(|| temp);
        let mut file = WriteBack::new(temp.as_file());
        file.write_all(self.held)?;
        *self.held = Vec::new();
        Ok(self.file.insert(file))
    }
}

impl Write for Holding<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.file {
            return file.write(buf);
        }
        if self.held.len() + buf.len() <= HOLD_AT_MOST {
            self.held.extend_from_slice(buf);
            return Ok(buf.len());
        }
        self.spill()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Write a held CSV into a new temporary for `output`, as the worker would have.
pub fn write_held(bytes: &[u8], output: &Path, replace: bool) -> io::Result<Temp> {
    let temp = create_temp(output, replace)?;
    let mut file = WriteBack::new(temp.as_file());
    file.write_all(bytes)?;
    file.flush()?;
    Ok(temp)
}

/// [`Temp::create_for`], whose error says that the temporary could not be made, and where
/// (see [`cannot_create`]).
pub fn create_temp(output: &Path, replace: bool) -> io::Result<Temp> {
    Temp::create_for(output, replace).map_err(|error| {
        let dir = parent_or_dot(output).to_path_buf();
        io::Error::new(error.kind(), CannotCreate { dir, error })
    })
}

/// The temporary could not be made (as opposed to written).
#[derive(Debug)]
struct CannotCreate {
    dir: PathBuf,
    error: io::Error,
}

impl fmt::Display for CannotCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dir, error) = (self.dir.display(), &self.error);
        write!(f, "cannot create a temporary file in {dir}: {error}")
    }
}

impl std::error::Error for CannotCreate {}

/// Whether `e` comes from [`create_temp`]: its message says all, where a write error's needs
/// a "cannot write".
pub fn cannot_create(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<CannotCreate>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::temp::Published;
    use crate::test_support::names;

    #[test]
    fn a_small_csv_stays_in_memory_and_a_big_one_goes_to_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("a.csv");
        let (mut held, spilled) = (Vec::new(), OnceCell::new());
        let mut csv = Holding::new(&mut held, &spilled, &output, false);
        csv.write_all(b"a,b\n").unwrap();
        csv.flush().unwrap();
        assert_eq!(held, b"a,b\n");
        assert!(spilled.get().is_none());

        let (mut held, spilled) = (Vec::new(), OnceCell::new());
        let row = vec![b'x'; 1000];
        let mut written = 0;
        {
            let mut csv = Holding::new(&mut held, &spilled, &output, false);
            while written <= HOLD_AT_MOST {
                csv.write_all(&row).unwrap();
                written += row.len();
            }
            csv.flush().unwrap();
        }
        assert!(held.is_empty() && held.capacity() == 0, "memory given back");
        let temp = spilled.into_inner().expect("spilled");
        assert_eq!(temp.publish(&output).unwrap(), Published::Placed);
        let on_disk = std::fs::read(&output).unwrap();
        assert_eq!(on_disk.len(), written);
        assert!(on_disk.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn a_held_csv_is_written_into_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("a.csv");
        let temp = write_held(b"a,b\n1,2\n", &output, false).unwrap();
        assert_eq!(temp.publish(&output).unwrap(), Published::Placed);
        assert_eq!(std::fs::read(&output).unwrap(), b"a,b\n1,2\n");
        assert_eq!(names(dir.path()), ["a.csv"]);
    }

    #[test]
    fn a_temporary_that_cannot_be_made_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("missing").join("a.csv");
        let e = write_held(b"a\n", &output, false).unwrap_err();
        assert!(cannot_create(&e), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("cannot create a temporary file in "),
            "{e}"
        );
        let (mut held, spilled) = (Vec::new(), OnceCell::new());
        let mut csv = Holding::new(&mut held, &spilled, &output, false);
        let e = csv.write_all(&vec![0; HOLD_AT_MOST + 1]).unwrap_err();
        assert!(cannot_create(&e), "{e:?}");
    }
}

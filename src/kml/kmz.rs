//! KMZ: a zip archive holding a KML document (and its icons, overlays, models).
//!
//! A KMZ is recognised by its content, not by its name: files called `.kml` that are really
//! zips exist. The document is streamed straight out of the archive; nothing is extracted to
//! disk, so entry names (`../../etc/passwd`) never matter.

use std::io::{self, Read, Seek, SeekFrom};

use super::{reader, Error, ErrorKind, ReadOptions, Sink, Summary};

/// The first bytes of a zip's first local file header.
pub const MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Most entries a KMZ may list. The zip reader holds the whole central directory in memory
/// (about 250 bytes an entry): a 200 MB archive of 4 million empty entries took 1 GB. Real
/// KMZs hold a document and its icons, overlays and models, or a few thousand tiles.
pub const MAX_ENTRIES: u64 = 200_000;

const END_OF_DIRECTORY: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR: &[u8; 4] = b"PK\x06\x07";
const ZIP64_END_OF_DIRECTORY: &[u8; 4] = b"PK\x06\x06";

/// The largest number of entries any end-of-central-directory record near the end of
/// `input` claims (a zip reader may pick any of them, so all count), zip64 records included.
fn listed_entries<R: Read + Seek>(input: &mut R) -> io::Result<u64> {
    let len = input.seek(SeekFrom::End(0))?;
    // The record (22 bytes), its comment (up to 64 KiB) and a zip64 locator before it.
    let tail_len = len.min(22 + 0xFFFF + 20);
    input.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0; tail_len as usize];
    input.read_exact(&mut tail)?;
    let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let mut most = 0;
    for i in memchr::memmem::find_iter(&tail, END_OF_DIRECTORY) {
        if i + 22 > tail.len() {
            continue;
        }
        most = most.max(u16_at(&tail, i + 8)).max(u16_at(&tail, i + 10));
        if i >= 20 && &tail[i - 20..i - 16] == ZIP64_LOCATOR {
            let at = u64::from_le_bytes(tail[i - 12..i - 4].try_into().unwrap_or_default());
            let mut record = [0u8; 40];
            if at < len
                && input.seek(SeekFrom::Start(at)).is_ok()
                && input.read_exact(&mut record).is_ok()
                && &record[..4] == ZIP64_END_OF_DIRECTORY
            {
                let u64_at =
                    |i: usize| u64::from_le_bytes(record[i..i + 8].try_into().unwrap_or_default());
                most = most.max(u64_at(24)).max(u64_at(32));
            }
        }
    }
    input.seek(SeekFrom::Start(0))?;
    Ok(most)
}

/// Which entry holds the document: `doc.kml` at the root if there is one, else the first
/// `.kml` entry in the archive's order. macOS resource forks (`__MACOSX/`, `._*`) are not
/// documents.
pub fn choose_entry<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    let mut first_kml = None;
    for (i, name) in names.into_iter().enumerate() {
        let base = name.rsplit('/').next().unwrap_or(name);
        if name.ends_with('/') || name.starts_with("__MACOSX/") || base.starts_with("._") {
            continue;
        }
        if name.eq_ignore_ascii_case("doc.kml") {
            return Some(i);
        }
        if first_kml.is_none() && base.to_ascii_lowercase().ends_with(".kml") {
            first_kml = Some(i);
        }
    }
    first_kml
}

/// Read the KML document inside the KMZ archive `input`.
pub fn read_kmz<R: Read + Seek>(
    input: R,
    sink: &mut dyn Sink,
    options: &ReadOptions,
) -> Result<Summary, Error> {
    let bad = |message: String| Error::new(ErrorKind::Kmz(message), None);
    let mut input = input;
    let entries = listed_entries(&mut input).map_err(|e| Error::new(ErrorKind::Io(e), None))?;
    if entries > MAX_ENTRIES {
        return Err(bad(format!(
            "the archive lists {entries} entries, more than the {MAX_ENTRIES} kml2csv reads \
             (its directory would be held in memory)"
        )));
    }
    let mut archive = zip::ZipArchive::new(input).map_err(|e| bad(archive_problem(&e)))?;
    let mut names = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        match archive.name_for_index(i) {
            Some(Ok(name)) => names.push(name.into_owned()),
            _ => names.push(String::new()),
        }
    }
    let index = choose_entry(names.iter().map(String::as_str))
        .ok_or_else(|| bad("no .kml document in the archive".to_string()))?;
    let entry = archive
        .by_index(index)
        .map_err(|e| bad(archive_problem(&e)))?;
    reader::read_document(entry, sink, options).map_err(|e| match e.kind {
        // A read error inside the archive is a broken archive (bad CRC, truncated data).
        ErrorKind::Io(io) => Error::new(
            ErrorKind::Kmz(format!("{}: {io}", names[index])),
            e.position,
        ),
        _ => e,
    })
}

/// What the user can act on first, then the zip reader's own words: its "Unexpected end of
/// zip::format::blocks::ZipLocalEntryBlock" names a type of the library, not the problem.
fn archive_problem(e: &zip::result::ZipError) -> String {
    use zip::result::ZipError;
    match e {
        ZipError::InvalidArchive(_) => {
            format!("the file is truncated or not a zip archive ({e})")
        }
        ZipError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the file is truncated ({e})")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::choose_entry;

    #[test]
    fn doc_kml_wins_wherever_it_is() {
        assert_eq!(choose_entry(["files/a.kml", "x.png", "doc.kml"]), Some(2));
        assert_eq!(choose_entry(["DOC.KML"]), Some(0));
    }

    #[test]
    fn else_the_first_kml_that_is_not_a_resource_fork() {
        let names = [
            "__MACOSX/._a.kml",
            "dir/._b.kml",
            "images/",
            "sub/Tour.KML",
            "z.kml",
        ];
        assert_eq!(choose_entry(names), Some(3));
        assert_eq!(choose_entry(["sub/doc.kml", "c.kml"]), Some(0));
        assert_eq!(choose_entry(["icon.png"]), None);
    }
}

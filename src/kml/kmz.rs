//! KMZ: a zip archive holding a KML document (and its icons, overlays, models).
//!
//! A KMZ is recognised by its content, not by its name: files called `.kml` that are really
//! zips exist. The document is streamed straight out of the archive; nothing is extracted to
//! disk, so entry names (`../../etc/passwd`) never matter.

use std::io::{Read, Seek};

use super::{reader, Error, ErrorKind, ReadOptions, Sink, Summary};

/// The first bytes of a zip's first local file header.
pub const MAGIC: &[u8; 4] = b"PK\x03\x04";

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

//! What a file is, when it is plainly not a KML document: told from its first bytes, so that
//! the message says "gzip-compressed" or "an empty zip archive" instead of the XML reader's
//! complaint about the first odd byte ("control character U+0005").

use super::ErrorKind;

pub enum FileType {
    /// gzip (`.kml.gz`, or a `.kml` served compressed): read through its decompression.
    Gzip,
    /// Not KML; the error to fail the file with.
    NotKml(ErrorKind),
}

/// The type of a file that starts with `head`, if it is one kml2csv recognises as not being
/// plain KML. A zip's local file header (a KMZ) is not among them: the caller reads those.
pub fn file_type(head: &[u8]) -> Option<FileType> {
    const GZIP: &[u8] = b"\x1f\x8b";
    if head.starts_with(GZIP) {
        return Some(FileType::Gzip);
    }
    if head.starts_with(b"PK\x05\x06") {
        return Some(FileType::NotKml(ErrorKind::Kmz(
            "an empty zip archive: it holds no .kml document".into(),
        )));
    }
    let signatures: [(&[u8], &str); 9] = [
        (
            b"MZ",
            "a Windows program (a self-extracting archive? extract it first)",
        ),
        (b"\x7fELF", "a program (ELF executable)"),
        (b"BZh", "bzip2-compressed: decompress it first (bunzip2)"),
        (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (unxz)"),
        (
            b"(\xb5/\xfd",
            "zstd-compressed: decompress it first (unzstd)",
        ),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: extract it first"),
        (b"Rar!\x1a\x07", "a RAR archive: extract it first"),
        (b"%PDF-", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    ];
    signatures
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, what)| FileType::NotKml(ErrorKind::NotKml((*what).to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_taken_for_anything_else() {
        for head in [
            &b"<kml/>"[..],
            b"\xef\xbb\xbf<?xml",
            b"\xff\xfe<\0",
            b"",
            b"M",
            b"  <kml>",
        ] {
            assert!(file_type(head).is_none(), "{head:?}");
        }
        assert!(matches!(file_type(b"\x1f\x8b\x08"), Some(FileType::Gzip)));
        assert!(matches!(
            file_type(b"MZ\x90\0"),
            Some(FileType::NotKml(ErrorKind::NotKml(_)))
        ));
    }
}

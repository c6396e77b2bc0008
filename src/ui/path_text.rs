//! A path as text, losslessly: how file names appear in messages, the `source` column of a
//! merged CSV, the JSON report and the dry-run listing.
//!
//! On Unix a file name is any bytes but `/` and NUL. `Path::display` turns the bytes that are
//! not UTF-8 into U+FFFD, so two different Latin-1 names could print alike, and a newline in a
//! name splits a one-line message. Here, instead, a name that is plain UTF-8 without control
//! characters or backslashes is shown as it is; otherwise each byte that is not part of a UTF-8
//! character is written `\xHH`, a tab, newline and carriage return `\t`, `\n`, `\r`, any other
//! ASCII control character `\xHH`, and a backslash `\\`. Reading those escapes back gives the
//! exact bytes. On Windows, whose names are UTF-16, a name that is not valid UTF-16 is shown
//! with U+FFFD, and only control characters are escaped (`\` separates folders there).

use std::borrow::Cow;
use std::fmt::Write;
use std::path::Path;

/// `path` as text; see the module documentation for the escapes.
pub fn escaped(path: &Path) -> Cow<'_, str> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    };
    #[cfg(not(unix))]
    let lossy = path.to_string_lossy();
    #[cfg(not(unix))]
    let bytes = lossy.as_bytes();

    let plain = |b: &u8| !(b.is_ascii_control() || (cfg!(unix) && *b == b'\\'));
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.bytes().all(|b| plain(&b)) {
            #[cfg(unix)]
            return Cow::Borrowed(text);
            #[cfg(not(unix))]
            return Cow::Owned(text.to_owned());
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' if cfg!(unix) => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02X}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_shown_as_they_are() {
        assert_eq!(
            escaped(Path::new("crawl/café [1].kml")),
            "crawl/café [1].kml"
        );
        assert!(matches!(escaped(Path::new("a.kml")), Cow::Borrowed(_)) || cfg!(not(unix)));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escaped(Path::new("new\nline\t.kml")), "new\\nline\\t.kml");
        assert_eq!(escaped(Path::new("bell\u{7}.kml")), "bell\\x07.kml");
    }

    // See: issue 17, item 5.
    #[cfg(unix)]
    #[test]
    fn bytes_that_are_not_utf8_are_escaped_losslessly() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let latin1 = Path::new(OsStr::from_bytes(b"in/caf\xe9.kml"));
        assert_eq!(escaped(latin1), "in/caf\\xE9.kml");
        // A backslash is doubled, so that a name spelling `\xE9` stays distinct.
        assert_eq!(escaped(Path::new("in/caf\\xE9.kml")), "in/caf\\\\xE9.kml");
        assert_eq!(
            escaped(Path::new(OsStr::from_bytes(b"\xff\xfe\xc3\xa9"))),
            "\\xFF\\xFEé"
        );
    }
}

//! Turn the bytes of a KML document into UTF-8 before the XML parser sees them.
//!
//! quick-xml reads UTF-8 only, but real KML comes as UTF-16, Latin-1, windows-1252, EUC-KR,
//! Shift_JIS, GBK … The encoding is decided the way XML 1.0 (appendix F) says: a byte order
//! mark first, then the `encoding` of the XML declaration, else UTF-8. Decoding is strict: a
//! byte sequence that is invalid in the declared encoding is an error of the file, as it is for
//! any conforming XML parser, never a silent U+FFFD.

use std::fmt;
use std::io::{self, BufRead, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// An encoding problem, carried inside an `io::Error` of kind `InvalidData` so that it can
/// travel through quick-xml's reader and be told apart from a failing disk.
#[derive(Debug)]
pub struct EncodingError {
    pub message: String,
    /// Offset in the undecoded input, where known.
    pub byte_offset: Option<u64>,
}

impl fmt::Display for EncodingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(offset) = self.byte_offset {
            write!(f, " (at byte {offset} of the file)")?;
        }
        Ok(())
    }
}

impl std::error::Error for EncodingError {}

impl EncodingError {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// What [`sniff`] found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub encoding: &'static Encoding,
    /// Bytes of byte order mark to skip.
    pub bom_len: usize,
}

/// Decide the encoding from the first bytes of the input (which must hold the whole XML
/// declaration if there is one; 1 KiB is plenty).
pub fn sniff(head: &[u8]) -> Result<Detected, EncodingError> {
    let bom = |encoding, bom_len| Ok(Detected { encoding, bom_len });
    match head {
        [0xEF, 0xBB, 0xBF, ..] => return bom(UTF_8, 3),
        [0xFF, 0xFE, ..] => return bom(UTF_16LE, 2),
        [0xFE, 0xFF, ..] => return bom(UTF_16BE, 2),
        // UTF-16 without a byte order mark, recognised by `<?` (XML 1.0 appendix F.1).
        [b'<', 0, b'?', 0, ..] => return bom(UTF_16LE, 0),
        [0, b'<', 0, b'?', ..] => return bom(UTF_16BE, 0),
        _ => {}
    }
    let Some(label) = declared_encoding(head) else {
        return bom(UTF_8, 0);
    };
    let encoding = Encoding::for_label(label.as_bytes()).ok_or_else(|| EncodingError {
        message: format!("unsupported encoding {label:?} in the XML declaration"),
        byte_offset: None,
    })?;
    if encoding == UTF_16LE || encoding == UTF_16BE {
        // The declaration was readable as ASCII, so the bytes are not UTF-16.
        return Err(EncodingError {
            message: format!("the XML declaration says {label:?} but the file is not UTF-16"),
            byte_offset: None,
        });
    }
    bom(encoding, 0)
}

/// The `encoding="…"` of an XML declaration at the very start of `head`, if any.
fn declared_encoding(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let end = memchr::memmem::find(rest, b"?>")?;
    let decl = &rest[..end];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let mut i = at + b"encoding".len();
    let skip_ws = |i: &mut usize| {
        while decl.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if decl.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let quote = *decl.get(i).filter(|q| **q == b'"' || **q == b'\'')?;
    let value = &decl[i + 1..];
    let close = memchr::memchr(quote, value)?;
    let label = std::str::from_utf8(&value[..close]).ok()?;
    Some(label.to_string())
}

/// A reader that decodes `inner` from `encoding` into UTF-8, failing on malformed input.
pub struct Utf8Decoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    encoding: &'static Encoding,
    input: Box<[u8]>,
    in_pos: usize,
    in_end: usize,
    /// Undecoded bytes consumed so far (for error offsets).
    in_offset: u64,
    eof: bool,
    /// The decoder has been given the last input; encoding_rs must not be called again.
    finished: bool,
    output: Box<[u8]>,
    out_pos: usize,
    out_end: usize,
}

const CHUNK: usize = 64 * 1024;

impl<R: Read> Utf8Decoder<R> {
    /// `skipped` is how many bytes (a byte order mark) were taken off the front already.
    pub fn new(inner: R, encoding: &'static Encoding, skipped: u64) -> Self {
        Utf8Decoder {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            encoding,
            input: vec![0; CHUNK].into_boxed_slice(),
            in_pos: 0,
            in_end: 0,
            in_offset: skipped,
            eof: false,
            finished: false,
            // Worst case growth is 3 bytes of UTF-8 per input byte.
            output: vec![0; CHUNK * 3 + 16].into_boxed_slice(),
            out_pos: 0,
            out_end: 0,
        }
    }

    fn refill_output(&mut self) -> io::Result<()> {
        self.out_pos = 0;
        self.out_end = 0;
        while self.out_end == 0 && !self.finished {
            if self.in_pos == self.in_end && !self.eof {
                self.in_pos = 0;
                self.in_end = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.eof = self.in_end == 0;
            }
            let src = &self.input[self.in_pos..self.in_end];
            let (result, read, written) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut self.output, self.eof);
            self.in_pos += read;
            self.in_offset += read as u64;
            self.out_end = written;
            match result {
                DecoderResult::InputEmpty => {
                    if self.eof {
                        self.finished = true;
                    }
                }
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad, after) => {
                    let at = self.in_offset - u64::from(after) - u64::from(bad);
                    return Err(EncodingError {
                        message: format!(
                            "bytes invalid in the declared encoding {}",
                            self.encoding.name()
                        ),
                        byte_offset: Some(at),
                    }
                    .into_io());
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf8Decoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        super::tracked::read_through_buffer(self, out)
    }
}

impl<R: Read> BufRead for Utf8Decoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.out_pos == self.out_end {
            self.refill_output()?;
        }
        Ok(&self.output[self.out_pos..self.out_end])
    }

    fn consume(&mut self, amt: usize) {
        self.out_pos = (self.out_pos + amt).min(self.out_end);
    }
}

/// Open `input` as UTF-8 text: sniff its encoding, skip the byte order mark, and decode if
/// it is not UTF-8 already. UTF-8 is passed through untouched (quick-xml checks it).
pub fn utf8_reader<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = fill_at_least(&mut input, 1024)?;
    let detected = sniff(&head).map_err(EncodingError::into_io)?;
    let mut input = io::Cursor::new(head).chain(input);
    io::copy(
        &mut (&mut input).take(detected.bom_len as u64),
        &mut io::sink(),
    )?;
    if detected.encoding == UTF_8 {
        Ok(Box::new(input))
    } else {
        Ok(Box::new(Utf8Decoder::new(
            input,
            detected.encoding,
            detected.bom_len as u64,
        )))
    }
}

/// Read until `n` bytes or the end of input, whichever comes first.
fn fill_at_least<R: Read>(input: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> io::Result<String> {
        let mut out = String::new();
        utf8_reader(bytes)?.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn declaration_is_found() {
        let head = b"<?xml version='1.0'  encoding = \"Shift_JIS\" ?><kml/>";
        assert_eq!(declared_encoding(head).as_deref(), Some("Shift_JIS"));
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(declared_encoding(b"<kml/>"), None);
    }

    #[test]
    fn boms_and_declarations() {
        assert_eq!(decode(b"\xEF\xBB\xBF<a>\xC3\xBC</a>").unwrap(), "<a>ü</a>");
        assert_eq!(decode(b"\xFF\xFE<\0a\0/\0>\0").unwrap(), "<a/>");
        assert_eq!(decode(b"\xFE\xFF\0<\0a\0/\0>").unwrap(), "<a/>");
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>Z\xFCrich</a>";
        assert!(decode(latin1).unwrap().ends_with("<a>Zürich</a>"));
    }

    #[test]
    fn lies_and_garbage_are_errors() {
        let utf16_claim = b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>";
        assert!(decode(utf16_claim).is_err());
        let unknown = b"<?xml version=\"1.0\" encoding=\"x-klingon\"?><a/>";
        assert!(decode(unknown).is_err());
        // 0x81 0x20 is not a Shift_JIS character.
        let bad = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a>\x81\x20</a>";
        let err = decode(bad).unwrap_err();
        let inner = err
            .get_ref()
            .unwrap()
            .downcast_ref::<EncodingError>()
            .unwrap();
        assert_eq!(inner.byte_offset, Some(45));
    }

    #[test]
    fn reading_past_the_end_is_harmless() {
        // See: a second read at the end used to call the finished decoder, which panics.
        let mut r = utf8_reader(&b"\xFF\xFE<\0a\0/\0>\0"[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn long_multibyte_input_survives_chunk_boundaries() {
        let mut doc = b"<?xml version=\"1.0\" encoding=\"EUC-KR\"?><a>".to_vec();
        let (seoul, _, _) = encoding_rs::EUC_KR.encode("서울");
        for _ in 0..100_000 {
            doc.extend_from_slice(&seoul);
        }
        doc.extend_from_slice(b"</a>");
        let text = decode(&doc).unwrap();
        assert_eq!(text.matches("서울").count(), 100_000);
    }
}

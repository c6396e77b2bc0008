//! The byte tokenizer under the event loop: where a tag, a comment or a CDATA section ends,
//! which bytes are not plain text, where XML white space is, what is whole UTF-8.
//!
//! Kept apart from what the elements mean to KML (`reader.rs`) because it is the hot path and
//! is tuned byte by byte: most of it looks at eight bytes at a time, which is cheaper than
//! setting up `memchr` for the short tags and texts a KML file is made of.

use super::coords::is_xml_space;

/// The two kinds of markup whose content is streamed rather than left to quick-xml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Comment,
    CData,
}

impl Section {
    pub(super) fn opener_len(self) -> usize {
        match self {
            Section::Comment => "<!--".len(),
            Section::CData => "<![CDATA[".len(),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Section::Comment => "comment",
            Section::CData => "CDATA section",
        }
    }

    /// In `buf` (at least 3 bytes): how much is content, how much to consume, and whether the
    /// section ends there; a tail that may start the closing delimiter is left for the next
    /// look. `Err` is where a comment has a forbidden `--`.
    pub(super) fn find_end(self, buf: &[u8]) -> Result<(usize, usize, bool), usize> {
        match self {
            Section::Comment => match memchr::memmem::find(buf, b"--") {
                Some(i) if buf.get(i + 2) == Some(&b'>') => Ok((i, i + 3, true)),
                Some(i) if i + 2 < buf.len() => Err(i),
                // `--` at the very end: look again with the byte after it.
                Some(i) => Ok((i, i, false)),
                None => {
                    let keep = usize::from(buf.ends_with(b"-"));
                    Ok((buf.len() - keep, buf.len() - keep, false))
                }
            },
            Section::CData => match memchr::memmem::find(buf, b"]]>") {
                Some(i) => Ok((i, i + 3, true)),
                None => Ok((buf.len() - 2, buf.len() - 2, false)),
            },
        }
    }
}

/// How much of `chunk` belongs to the tag being read, and whether the tag's closing `>` is in
/// it. A `>` inside a quoted attribute value does not close the tag; `quote` carries an open
/// quote from one chunk to the next.
pub(super) fn tag_end(chunk: &[u8], quote: &mut Option<u8>) -> (usize, bool) {
    let mut i = 0;
    loop {
        if let Some(q) = *quote {
            match memchr::memchr(q, &chunk[i..]) {
                Some(j) => {
                    i += j + 1;
                    *quote = None;
                }
                None => return (chunk.len(), false),
            }
        }
        match find_tag_byte(&chunk[i..]) {
            Some(j) if chunk[i + j] == b'>' => return (i + j + 1, true),
            Some(j) => {
                *quote = Some(chunk[i + j]);
                i += j + 1;
            }
            None => return (chunk.len(), false),
        }
    }
}

/// A tag read whole: its length (`<` to `>`), whether it is all ASCII, where its first XML
/// white space is (its length if it has none), which is where the element's name ends, and
/// where the local part of that name starts (after its last `:`).
///
/// All four are `u32` (the reader takes no tag longer than 16 MiB): a larger span, or a `bool`
/// in it, was copied through memory with narrow stores and wide loads, which stalled the loop
/// that reads tags; `len` is never zero, which leaves `None` a value of its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct TagSpan {
    len: std::num::NonZeroU32,
    pub space: u32,
    pub local: u32,
    /// Non-zero if a byte is not ASCII.
    high: u32,
}

impl TagSpan {
    fn new(len: u32, space: u32, local: u32, high: u32) -> TagSpan {
        TagSpan {
            // A tag is at least `<>`.
            len: std::num::NonZeroU32::new(len).unwrap_or(std::num::NonZeroU32::MIN),
            space,
            local,
            high,
        }
    }

    /// The span of `tag`, a whole tag, byte by byte.
    pub(super) fn of(tag: &[u8]) -> TagSpan {
        let len = tag.len();
        let space = tag.iter().position(|&b| is_xml_space(b)).unwrap_or(len);
        TagSpan::new(
            len as u32,
            space as u32,
            local_after(tag, space) as u32,
            u32::from(!tag.is_ascii()),
        )
    }

    pub(super) fn len(self) -> usize {
        self.len.get() as usize
    }

    pub(super) fn ascii(self) -> bool {
        self.high == 0
    }
}

/// Where the local part of the name of `tag` starts, its name ending before `space` or the
/// closing `>`.
fn local_after(tag: &[u8], space: usize) -> usize {
    let name_end = space.min(tag.len().saturating_sub(1)).max(1);
    tag[1..name_end]
        .iter()
        .rposition(|&b| b == b':')
        .map_or(1, |i| i + 2)
}

/// The tag at the start of `bytes` (a `<`), if its closing `>` is in `bytes`: [`tag_end`],
/// with the ASCII test and the search for the name that reading the tag needs done in the
/// same pass. Most tags are short and have no attributes: for them one look at sixteen bytes
/// answers everything.
#[inline]
pub(super) fn tag_span(bytes: &[u8]) -> Option<TagSpan> {
    #[cfg(target_arch = "x86_64")]
    if let Some(block) = bytes.get(..16) {
        let c = tag_classes16(block);
        let marks = c.gt | c.double | c.single;
        let first = marks & marks.wrapping_neg();
        if first & c.gt != 0 {
            let b = first.trailing_zeros();
            let name_end = c.space.trailing_zeros().min(b);
            let colons = c.colon & ((1 << name_end) - 1);
            let len = b + 1;
            return Some(TagSpan::new(
                len,
                c.space.trailing_zeros().min(len),
                if colons == 0 {
                    1
                } else {
                    32 - colons.leading_zeros()
                },
                c.high & ((2 << b) - 1),
            ));
        }
    }
    tag_span_long(bytes)
}

/// [`tag_span`] for tags with attributes or long names.
fn tag_span_long(bytes: &[u8]) -> Option<TagSpan> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut i = 0;
        let mut high = false;
        let mut space = None;
        // The open quote: `Some(true)` for `"`.
        let mut double = None;
        while let Some(block) = bytes.get(i..i + 16) {
            let c = tag_classes16(block);
            if space.is_none() && c.space != 0 {
                space = Some(i + c.space.trailing_zeros() as usize);
            }
            let mut from = 0;
            loop {
                let wanted = match double {
                    None => c.gt | c.double | c.single,
                    Some(true) => c.double,
                    Some(false) => c.single,
                } & (u32::MAX << from);
                if wanted == 0 {
                    break;
                }
                let b = wanted.trailing_zeros();
                from = b + 1;
                if double.is_some() {
                    double = None;
                } else if c.gt >> b & 1 != 0 {
                    let len = i + b as usize + 1;
                    let space = space.map_or(len, |s: usize| s.min(len));
                    return Some(TagSpan::new(
                        len as u32,
                        space as u32,
                        local_after(&bytes[..len], space) as u32,
                        u32::from(high) | c.high & ((2 << b) - 1),
                    ));
                } else {
                    double = Some(c.double >> b & 1 != 0);
                }
            }
            high |= c.high != 0;
            i += 16;
        }
        let mut quote = double.map(|d| if d { b'"' } else { b'\'' });
        let (used, closed) = tag_end(&bytes[i..], &mut quote);
        closed.then(|| TagSpan::of(&bytes[..i + used]))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (used, closed) = tag_end(bytes, &mut None);
        closed.then(|| TagSpan::of(&bytes[..used]))
    }
}

/// Masks of the bytes of a block that matter inside a tag.
#[cfg(target_arch = "x86_64")]
struct TagClasses {
    gt: u32,
    colon: u32,
    double: u32,
    single: u32,
    high: u32,
    space: u32,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tag_classes16(block: &[u8]) -> TagClasses {
    use std::arch::x86_64::*;
    assert!(block.len() >= 16);
    // SAFETY: SSE2 is enabled on every x86_64 target, and the unaligned load reads the 16
    // bytes just checked to be there.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let space = _mm_or_si128(
            _mm_or_si128(is(b' '), is(b'\n')),
            _mm_or_si128(is(b'\t'), is(b'\r')),
        );
        TagClasses {
            gt: _mm_movemask_epi8(is(b'>')) as u32,
            colon: _mm_movemask_epi8(is(b':')) as u32,
            double: _mm_movemask_epi8(is(b'"')) as u32,
            single: _mm_movemask_epi8(is(b'\'')) as u32,
            high: _mm_movemask_epi8(v) as u32,
            space: _mm_movemask_epi8(space) as u32,
        }
    }
}

/// The first `>`, `"` or `'` in `bytes`. Tags are short: the first bytes are looked at eight at
/// a time, which is much cheaper than setting up `memchr3` for a ten-byte `</gx:coord>`; a long
/// tag goes on with `memchr3`.
#[inline]
pub(super) fn find_tag_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of every zero byte of `x`, and maybe of bytes after the first zero byte (a
    // borrow): the lowest one is exact, which is all that is asked.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        if i >= 64 {
            break;
        }
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let found = zero(word ^ (ONES * u64::from(b'>')))
            | zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\'')));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr3(b'>', b'"', b'\'', &bytes[i..]).map(|j| i + j)
}

/// Character data from the start of a slice up to the next `<` or `&`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TextRun {
    /// Bytes of text before the `<` or `&` (all of the slice if there is none).
    pub len: usize,
    /// A `<` or `&` ends the text inside the slice.
    pub stop: bool,
    /// The text is printable ASCII and XML white space only, so it needs no UTF-8 or control
    /// character check. `false` may also be said of plain text; `true` only ever of plain text.
    pub plain: bool,
}

/// Where the text at the start of `bytes` ends, and whether it is plain (see [`TextRun`]).
///
/// One pass answers what `memchr2` and [`first_unusual_byte`] each found with a search of
/// their own: most texts of a KML file are a line break and indentation between two tags, and
/// for those the set-up of two searches cost more than the search.
#[inline(always)]
pub(super) fn text_run(bytes: &[u8]) -> TextRun {
    #[cfg(target_arch = "x86_64")]
    let (i, plain) = {
        let mut i = 0;
        let mut plain = true;
        while let Some(block) = bytes.get(i..i + 16) {
            let (stops, unusual) = text_classes16(block);
            if stops != 0 {
                let at = stops.trailing_zeros();
                let before = unusual & ((1 << at) - 1);
                return TextRun {
                    len: i + at as usize,
                    stop: true,
                    plain: plain && before == 0,
                };
            }
            plain &= unusual == 0;
            i += 16;
        }
        (i, plain)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (i, plain) = (0, true);
    let run = text_run_words(&bytes[i..]);
    TextRun {
        len: i + run.len,
        stop: run.stop,
        plain: plain && run.plain,
    }
}

/// `<`-or-`&` and unusual-byte masks (see [`first_unusual_byte`]) of `block[..16]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn text_classes16(block: &[u8]) -> (u32, u32) {
    use std::arch::x86_64::*;
    assert!(block.len() >= 16);
    // SAFETY: SSE2 is enabled on every x86_64 target, and the unaligned load reads the 16
    // bytes just checked to be there.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let stops = _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'<' as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'&' as i8)),
        );
        // As signed bytes, both the controls and the bytes of multi-byte characters are below
        // 0x20; the three white space controls are taken out again.
        let low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let space = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8)),
            ),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8)),
        );
        let unusual = _mm_andnot_si128(space, low);
        (
            _mm_movemask_epi8(stops) as u32,
            _mm_movemask_epi8(unusual) as u32,
        )
    }
}

/// [`text_run`] eight bytes at a time: where SSE2 is not there, and for the last bytes of a
/// buffer. Its `plain` is cautious: it says `false` for any byte below 0x20, white space too.
fn text_run_words(bytes: &[u8]) -> TextRun {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const SPACE: u64 = 0x2020_2020_2020_2020;
    // High bit of every zero byte of `x`, and maybe of bytes after the first zero byte (a
    // borrow): the lowest one is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let unusual = |b: u8| b >= 0x80 || (b < 0x20 && !is_xml_space(b));
    let mut plain = true;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let stops = zero(word ^ (ONES * u64::from(b'<'))) | zero(word ^ (ONES * u64::from(b'&')));
        // A high bit, or a byte below 0x20 (this may also flag the byte after one).
        let suspicious = (word | (word.wrapping_sub(SPACE) & !word)) & HIGH;
        if stops != 0 {
            let k = stops.trailing_zeros() / 8;
            let before = suspicious & ((1u64 << (8 * k)) - 1);
            return TextRun {
                len: at + k as usize,
                stop: true,
                plain: plain && before == 0,
            };
        }
        plain &= suspicious == 0;
        at += 8;
    }
    for &b in words.remainder() {
        if b == b'<' || b == b'&' {
            return TextRun {
                len: at,
                stop: true,
                plain,
            };
        }
        plain &= !unusual(b);
        at += 1;
    }
    TextRun {
        len: at,
        stop: false,
        plain,
    }
}

/// `a == b`, for names: an end tag repeats the name of the element it closes, and for names
/// of up to sixteen bytes two overlapping word compares are cheaper than a call to `memcmp`.
#[inline]
pub(super) fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half =
        |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        0..=3 => a == b,
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// `text` without XML white space at either end. Byte by byte: the white space is ASCII, and
/// going through `char`s cost more than the rest of a `<when>` or `<gx:coord>`.
pub(super) fn trim_xml_space(text: &str) -> &str {
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_xml_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_xml_space(b))
        .map_or(start, |i| i + 1);
    // Both ends are next to ASCII bytes (or the ends of `text`): character boundaries.
    &text[start..end]
}

/// The pieces of `text` between runs of XML white space.
pub(super) fn xml_words(text: &str) -> impl Iterator<Item = &str> {
    text.as_bytes()
        .split(|&b| is_xml_space(b))
        .filter(|word| !word.is_empty())
        .map(move |word| {
            let start = word.as_ptr() as usize - text.as_ptr() as usize;
            &text[start..start + word.len()]
        })
}

/// Where the local part of a qualified name starts.
pub(super) fn local_start(qname: &str) -> usize {
    // Names are short: a plain loop beats memrchr's set-up.
    qname.bytes().rposition(|b| b == b':').map_or(0, |i| i + 1)
}

pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Where the first byte that is not printable ASCII or XML white space is, if any: a control
/// character (an error) or the start of a multi-byte UTF-8 character (to be validated).
/// Text is mostly plain ASCII, so eight bytes are looked at a time.
pub(super) fn first_unusual_byte(bytes: &[u8]) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const SPACE: u64 = 0x2020_2020_2020_2020;
    let unusual = |b: u8| b >= 0x80 || (b < 0x20 && !is_xml_space(b));
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        // A high bit, or a byte below 0x20 (this test may also flag the byte after one).
        let suspicious = (word | (word.wrapping_sub(SPACE) & !word)) & HIGH;
        if suspicious != 0 {
            if let Some(i) = chunk.iter().position(|&b| unusual(b)) {
                return Some(at + i);
            }
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| unusual(b))
        .map(|i| at + i)
}

pub(super) fn utf8_width(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// How many bytes of `bytes` are whole characters: all of them, unless `bytes` ends inside a
/// UTF-8 sequence, which then starts at the returned index.
pub(super) fn complete_chars(bytes: &[u8]) -> usize {
    let n = bytes.len();
    // A sequence is at most four bytes: look for the last lead byte among the last three.
    for back in 1..=n.min(3) {
        let b = bytes[n - back];
        if b & 0xC0 != 0x80 {
            let complete = b < 0x80 || utf8_width(b) <= back;
            return if complete { n } else { n - back };
        }
    }
    n
}

/// The largest `n <= max` that does not split a UTF-8 character of `bytes`.
pub(super) fn floor_char_boundary(bytes: &[u8], max: usize) -> usize {
    if max >= bytes.len() {
        return bytes.len();
    }
    let mut n = max;
    while n > 0 && (bytes[n] & 0xC0) == 0x80 {
        n -= 1;
    }
    n
}

/// `bytes` as text, or empty if they are not UTF-8. Nearly all of it (a `<when>`, a `<gx:coord>`,
/// queued values) is short and ASCII, which is cheaper to prove than to validate.
#[inline]
pub(super) fn utf8_or_empty(bytes: &[u8]) -> &str {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

/// XML turns CR LF and lone CR into LF in character data.
pub(super) fn normalize_newlines(text: &mut String) {
    if has_cr(text.as_bytes()) {
        *text = text.replace("\r\n", "\n").replace('\r', "\n");
    }
}

/// Whether `bytes` holds a CR. Memchr's set-up (which `contains` calls) costs more than
/// looking at a short `<when>` eight bytes at a time.
#[inline]
pub(super) fn has_cr(bytes: &[u8]) -> bool {
    const CR: u64 = 0x0D0D_0D0D_0D0D_0D0D;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let mut words = bytes.chunks_exact(8);
    words.by_ref().any(|word| {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ CR;
        // A zero byte (a CR) is the only one whose high bit stays clear.
        !(((x & LOW7) + LOW7) | x) & !LOW7 != 0
    }) || words
        .remainder()
        .iter()
        .fold(false, |found, &b| found | (b == b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_space_is_trimmed_and_split_by_bytes() {
        assert_eq!(trim_xml_space(" \t\r\n a b\u{a0}\n"), "a b\u{a0}");
        assert_eq!(trim_xml_space(" \n "), "");
        assert_eq!(trim_xml_space(""), "");
        assert_eq!(trim_xml_space("é"), "é");
        let words: Vec<&str> = xml_words("\n1.5 \t-2\r\n\u{a0}3 ").collect();
        assert_eq!(words, ["1.5", "-2", "\u{a0}3"]);
        assert_eq!(xml_words("  ").count(), 0);
    }

    #[test]
    fn carriage_returns_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..len {
                let mut text = "x".repeat(len);
                let plain = text.clone();
                normalize_newlines(&mut text);
                assert_eq!(text, plain);
                text.replace_range(at..=at, "\r");
                normalize_newlines(&mut text);
                assert_eq!(text, plain[..at].to_string() + "\n" + &plain[at + 1..]);
            }
        }
        let mut text = "a\r\nb\rc\n".to_string();
        normalize_newlines(&mut text);
        assert_eq!(text, "a\nb\nc\n");
    }

    #[test]
    fn tag_bytes_are_found_wherever_they_are() {
        for len in 0..90 {
            for at in 0..=len {
                for b in [b'>', b'"', b'\'', b'=', 0x00, 0xFF, 0x3D, 0x3F, 0xBE, 0xA2] {
                    let mut text = vec![b'a'; len];
                    if at < len {
                        text[at] = b;
                    }
                    let plain = text.iter().position(|c| b">\"'".contains(c));
                    assert_eq!(find_tag_byte(&text), plain, "{b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn names_are_the_same_only_when_every_byte_is() {
        for len in 0..24usize {
            let name: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
            assert!(same_name(&name, &name));
            assert!(!same_name(&name, &name[..len.saturating_sub(1)]) || len == 0);
            for at in 0..len {
                let mut other = name.clone();
                other[at] = b':';
                assert!(!same_name(&name, &other), "{len} {at}");
                assert!(!same_name(&other, &name), "{len} {at}");
            }
        }
    }

    /// The plain reference for [`tag_span`]: byte by byte.
    fn tag_span_bytes(bytes: &[u8]) -> Option<TagSpan> {
        let mut quote = None;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'>' => return Some(TagSpan::of(&bytes[..=i])),
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None => {}
            }
        }
        None
    }

    #[test]
    fn tag_spans_end_where_a_byte_by_byte_search_says() {
        let parts: [&[u8]; 10] = [
            b"a",
            b" ",
            b":",
            b">",
            b"\"",
            b"'",
            b"\xC3\xA9",
            b"\n",
            b"=",
            b"/",
        ];
        // Every tag of up to four parts, padded to put its parts on either side of a block
        // boundary, followed by text that may hold more `>` and quotes.
        let mut tags = vec![b"<".to_vec()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = tags
                .iter()
                .flat_map(|t| parts.iter().map(move |p| [t.as_slice(), p].concat()))
                .collect();
            tags.extend(longer);
        }
        tags.sort();
        tags.dedup();
        for tag in &tags {
            for pad in [0, 9, 13, 14, 15, 16, 30] {
                let mut bytes = tag.clone();
                bytes.splice(1..1, std::iter::repeat_n(b'x', pad));
                for tail in [&b""[..], b"x>y", b"'\">", b"\xFF>"] {
                    let text = [bytes.as_slice(), tail].concat();
                    let span = tag_span(&text);
                    let fields = |s: TagSpan| (s.len(), s.space, s.local, s.ascii());
                    assert_eq!(
                        span.map(fields),
                        tag_span_bytes(&text).map(fields),
                        "{text:?}"
                    );
                    if let Some(span) = span {
                        // The local name as the reader would find it from the name.
                        let content = &text[1..span.len() - 1];
                        let content = content.strip_suffix(b"/").unwrap_or(content);
                        let name_len = content
                            .iter()
                            .position(|&b| is_xml_space(b))
                            .unwrap_or(content.len());
                        let qname = &content[..name_len];
                        let local = qname.iter().rposition(|&b| b == b':').map_or(0, |i| i + 1);
                        assert_eq!(span.local as usize, 1 + local, "{text:?}");
                    }
                }
            }
        }
    }

    /// The plain reference for [`text_run`]: byte by byte.
    fn text_run_bytes(bytes: &[u8]) -> (usize, bool) {
        let len = bytes
            .iter()
            .position(|&b| b == b'<' || b == b'&')
            .unwrap_or(bytes.len());
        (len, len < bytes.len())
    }

    fn plain_text(bytes: &[u8]) -> bool {
        bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) || is_xml_space(b))
    }

    fn check_text_run(text: &[u8]) {
        let (len, stop) = text_run_bytes(text);
        for (run, how) in [(text_run(text), "blocks"), (text_run_words(text), "words")] {
            assert_eq!((run.len, run.stop), (len, stop), "{how}: {text:?}");
            // Never plain when it is not. Sixteen-byte blocks are exact; the words (the last
            // bytes of a buffer) may be cautious.
            let in_blocks = cfg!(target_arch = "x86_64") && len < text.len() / 16 * 16;
            if run.plain || (how == "blocks" && in_blocks) {
                assert_eq!(run.plain, plain_text(&text[..len]), "{how}: {text:?}");
            }
        }
    }

    #[test]
    fn text_runs_end_where_a_byte_by_byte_search_says() {
        for len in 0..42 {
            for stop_at in 0..=len {
                for stop in [b'<', b'&', b'>'] {
                    for odd_at in 0..=len {
                        for odd in [b'\n', b'\r', 0x00, 0x1F, 0x7F, 0x80, 0xFF] {
                            let mut text: Vec<u8> = (0..len).map(|i| b"a 1.5,-"[i % 7]).collect();
                            if odd_at < len {
                                text[odd_at] = odd;
                            }
                            if stop_at < len {
                                text[stop_at] = stop;
                            }
                            check_text_run(&text);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn unusual_bytes_are_found_wherever_they_are() {
        let plain = b"1.5,2.5,0 \t\r\n 3,4 ".repeat(5);
        assert_eq!(first_unusual_byte(&plain), None);
        for at in 0..plain.len() {
            for bad in [0x00, 0x01, 0x1F, 0x80, 0xC3, 0xFF] {
                let mut text = plain.clone();
                text[at] = bad;
                assert_eq!(first_unusual_byte(&text), Some(at), "{bad:#x} at {at}");
            }
        }
    }
}

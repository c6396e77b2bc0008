//! A reference model of the `<coordinates>` tokenizer, written from the rules in the README
//! and the conformance oracle (R1-R9), as simply as possible and without sharing any code
//! with `src/kml`. The property tests and the fuzz target (`fuzz/fuzz_targets/reader.rs`
//! includes this file) compare the real reader's rows with it.

#![allow(dead_code)] // each includer uses part of it

/// XML white space (R1); NBSP and other Unicode spaces are not separators.
pub fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The longest component the reader keeps: longer is never a number (bounded memory).
pub const MAX_COMPONENT: usize = 256;

/// `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?` (R8), at most [`MAX_COMPONENT`] bytes.
pub fn is_number(s: &str) -> bool {
    if s.len() > MAX_COMPONENT {
        return false;
    }
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int = digits(&mut i);
    let mut frac = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac = digits(&mut i);
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The tuples `(longitude, latitude, altitude)` of a `<coordinates>` element's text.
pub fn tuples(text: &str) -> Vec<[String; 3]> {
    // R2: white space next to a comma is deleted.
    let chars: Vec<char> = text.chars().collect();
    let mut joined = String::new();
    let mut i = 0;
    while i < chars.len() {
        if is_xml_space(chars[i]) {
            let start = i;
            while i < chars.len() && is_xml_space(chars[i]) {
                i += 1;
            }
            let after_comma = start > 0 && chars[start - 1] == ',';
            let before_comma = i < chars.len() && chars[i] == ',';
            if !after_comma && !before_comma {
                joined.push(' ');
            }
        } else {
            joined.push(chars[i]);
            i += 1;
        }
    }
    let mut out = Vec::new();
    // R3: tuples are the runs of non-white space.
    for token in joined.split(' ').filter(|t| !t.is_empty()) {
        let mut parts: Vec<&str> = token.split(',').collect();
        // R4: trailing empty components beyond the second are dropped.
        while parts.len() > 2 && parts.last() == Some(&"") {
            parts.pop();
        }
        // R5: a lone value is skipped.
        if parts.len() < 2 {
            continue;
        }
        // R7: more than three components are read as consecutive triples.
        for triple in parts.chunks(3) {
            if triple.len() < 2 {
                continue;
            }
            let (lon, lat) = (triple[0], triple[1]);
            let alt = triple.get(2).copied().unwrap_or("");
            // R6, R8: empty longitude or latitude, or a component that is not a number.
            if lon.is_empty() || lat.is_empty() {
                continue;
            }
            if !is_number(lon) || !is_number(lat) || !(alt.is_empty() || is_number(alt)) {
                continue;
            }
            out.push([lon.to_owned(), lat.to_owned(), alt.to_owned()]);
        }
    }
    out
}

/// The document the differential checks read: `text` as the coordinates of one LineString.
pub fn wrap(text: &str) -> String {
    format!("<kml><Placemark><LineString><coordinates>{text}</coordinates></LineString></Placemark></kml>")
}

/// What the fuzz target's differential check writes coordinates with: numbers, separators,
/// white space, and a few characters that make a value not a number. Shared with
/// `tests/fuzz_regressions.rs`, which replays a fuzzer's input exactly as the fuzzer saw it.
pub const ALPHABET: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '.', ',', ',', '+', '-', 'e', 'E', ' ', ' ',
    '\t', '\n', '\r', 'x', '\u{a0}',
];

/// Coordinates text stays below the reader's 256-byte cap on one value: past it the reader
/// deliberately stops treating a value as a number, which the model does not copy.
pub const DIFFERENTIAL_LEN: usize = 240;

/// The first bytes of `data` mapped onto [`ALPHABET`], at most [`DIFFERENTIAL_LEN`] bytes of
/// UTF-8 (NBSP takes two).
pub fn coordinates_text(data: &[u8]) -> String {
    let mut text = String::new();
    for &b in data {
        let c = ALPHABET[b as usize % ALPHABET.len()];
        if text.len() + c.len_utf8() > DIFFERENTIAL_LEN {
            break;
        }
        text.push(c);
    }
    text
}

//! Fuzz the reader: any bytes, as a KML document or a KMZ archive, must never panic, hang or
//! take unbounded memory (libFuzzer's -timeout and -rss_limit_mb enforce the last two); and
//! the first bytes, mapped onto the characters of coordinates and read as the text of a
//! `<coordinates>` element, must give the rows of the reference model in `tests/model`.
//!
//! Run: `cargo fuzz run -s none reader CORPUS_DIR fixtures -- -max_total_time=60`

#![no_main]

use std::io::{self, Cursor};

use kml2csv::kml::{self, ReadOptions, Sink, Vertex, Warning};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

#[derive(Default)]
struct Rows(Vec<[String; 3]>);

impl Sink for Rows {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        // Bounded: a fuzz input cannot hold millions of vertices worth keeping.
        if self.0.len() < 100_000 {
            self.0.push([v.longitude.into(), v.latitude.into(), v.altitude.into()]);
        }
        Ok(())
    }
    fn warning(&mut self, _: Warning) {}
}

/// What the differential check writes coordinates with: numbers, separators, white space,
/// and a few characters that make a value not a number.
const ALPHABET: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '.', ',', ',', '+', '-', 'e', 'E', ' ',
    ' ', '\t', '\n', '\r', 'x', '\u{a0}',
];

/// Coordinates text stays below the reader's 256-byte cap on one value, where the reader
/// differs from the model (tests/tokenizer_props.rs a_too_long_value_only_spoils_its_own_triple
/// and tests/fuzz_regressions.rs pin it; the fuzzer found it as crash-92d21b6c).
const DIFFERENTIAL_LEN: usize = 240;

/// The first bytes of `data` mapped onto [`ALPHABET`], at most [`DIFFERENTIAL_LEN`] bytes of
/// UTF-8 (NBSP takes two).
fn coordinates_text(data: &[u8]) -> String {
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

fuzz_target!(|data: &[u8]| {
    // Any bytes: a document, or a KMZ when they start like a zip.
    let mut rows = Rows::default();
    let _ = kml::read(Cursor::new(data), &mut rows, &ReadOptions::default());
    let strict = ReadOptions {
        strict: true,
        ..ReadOptions::default()
    };
    let _ = kml::read_document(data, &mut Rows::default(), &strict);

    // Differential: the tokenizer against the model.
    let text = coordinates_text(data);
    let mut rows = Rows::default();
    let document = model::wrap(&text);
    if let Err(e) = kml::read_document(document.as_bytes(), &mut rows, &ReadOptions::default()) {
        panic!("{e} reading {document:?}");
    }
    assert_eq!(rows.0, model::tuples(&text), "text {text:?}");
});

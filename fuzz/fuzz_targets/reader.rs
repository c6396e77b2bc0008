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
    let text = model::coordinates_text(data);
    let mut rows = Rows::default();
    let document = model::wrap(&text);
    if let Err(e) = kml::read_document(document.as_bytes(), &mut rows, &ReadOptions::default()) {
        panic!("{e} reading {document:?}");
    }
    assert_eq!(rows.0, model::tuples(&text), "text {text:?}");
});

//! kml2csv: convert batches of KML/KMZ files to CSV, one row per vertex or per feature.
//!
//! Besides the `kml2csv` command, the crate is a library: a streaming KML/KMZ reader ([`kml`])
//! that reports every vertex, and optionally every whole feature with its descriptive fields,
//! to a [`kml::Sink`] of yours, in memory that does not grow with the file.
//!
//! # Reading coordinate tuples
//!
//! ```
//! use std::io;
//! use kml2csv::kml::{self, ReadOptions, Sink, Vertex, Warning};
//!
//! /// Sums up the tuples of every LineString.
//! #[derive(Default)]
//! struct Lengths(Vec<(String, u64)>);
//!
//! impl Sink for Lengths {
//!     fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
//!         if v.geometry == "LineString" {
//!             match self.0.last_mut() {
//!                 Some((name, n)) if v.vertex > 0 && name == v.name => *n += 1,
//!                 _ => self.0.push((v.name.to_owned(), 1)),
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn warning(&mut self, w: Warning) {
//!         eprintln!("skipped: {w}");
//!     }
//! }
//!
//! let kml = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
//!   <Placemark><name>Walk</name><LineString><coordinates>1,2 3,4 5,6</coordinates></LineString></Placemark>
//!   <Placemark><name>Here</name><Point><coordinates>7,8,9</coordinates></Point></Placemark>
//! </Document></kml>"#;
//! let mut lengths = Lengths::default();
//! let summary = kml::read_document(kml.as_bytes(), &mut lengths, &ReadOptions::default())?;
//! assert_eq!(lengths.0, [("Walk".to_owned(), 3)]);
//! assert_eq!(summary.vertices, 4);
//! # Ok::<(), kml::Error>(())
//! ```
//!
//! [`kml::read`] takes anything `Read + Seek` and recognises a KMZ by its content;
//! [`kml::read_path`] opens a file; [`kml::read_document`] reads a KML byte stream (standard
//! input, a socket) without seeking.
//!
//! # The CSV the command writes, in memory
//!
//! [`csv::RowWriter`] is a sink too. One row per feature, its geometry as WKT
//! ([`csv::wkt::write`]), with the descriptive columns:
//!
//! ```
//! use std::io::Cursor;
//! use kml2csv::csv::{Dialect, RowKind, RowWriter, Shape};
//! use kml2csv::kml::{self, ReadOptions};
//!
//! let kml = r#"<kml><Folder><name>Lakes</name><Placemark><name>Pond</name>
//!   <Polygon><outerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></outerBoundaryIs></Polygon>
//! </Placemark></Folder></kml>"#;
//! let shape = Shape {
//!     rows: RowKind::Features,
//!     select: Some(vec!["name".into(), "folder".into(), "wkt".into()]),
//!     ..Shape::default()
//! };
//! let options = ReadOptions {
//!     features: true,
//!     attributes: shape.reads_attributes(),
//!     ..ReadOptions::default()
//! };
//! let mut writer = RowWriter::with_layout(Vec::new(), shape.layout(&[]), shape.rows, &Dialect::default(), "")?;
//! kml::read(Cursor::new(kml), &mut writer, &options)?;
//! let (csv, _warnings) = writer.finish()?;
//! assert_eq!(
//!     String::from_utf8(csv).unwrap(),
//!     "name,folder,wkt\nPond,Lakes,\"POLYGON ((0 0, 1 0, 1 1, 0 0))\"\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! The crate is built in layers, each a folder with one job. A layer uses the ones below it and
//! never one above (`cli` → `batch` → `ui` → `output` → `kml`, and `batch` → `csv` → `kml`), so
//! each can be driven by tests and benchmarks without those above it:
//!
//! - [`kml`]: the streaming reader (KML, KMZ, encodings) that reports every vertex and feature
//!   to a sink; knows nothing of CSV, files on disk or the batch;
//! - [`csv`]: the CSV schema (columns, dialects), the sinks that write rows, and WKT;
//! - [`output`]: publishing a finished CSV durably: temporaries, writing to the disk, grouped
//!   syncs, and the step that names them;
//! - [`ui`]: what the user sees: the one printer, the progress bar, the JSON report, file
//!   names as text;
//! - [`batch`]: the plain [`batch::Config`], the plan (inputs, patterns, shards), one file's
//!   conversion, the parallel run with its signals and exit status, merged or standard-output
//!   CSVs, and the dry-run listing;
//! - [`cli`]: the command line (clap) and the configuration made from it.

pub mod batch;
pub mod cli;
pub mod csv;
pub mod kml;
pub mod output;
pub mod ui;

/// Helpers for the unit tests of several modules.
#[cfg(test)]
mod test_support {
    use std::path::Path;

    /// The names in `dir`, sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

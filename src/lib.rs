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
//! [`csv_out::RowWriter`] is a sink too. One row per feature, its geometry as WKT
//! ([`wkt::write`]), with the descriptive columns:
//!
//! ```
//! use std::io::Cursor;
//! use kml2csv::csv_out::{Dialect, RowKind, RowWriter, Shape};
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
//! The library is split by job so that tests and benchmarks can drive each part without the
//! command line:
//!
//! - [`kml`]: the streaming reader (KML, KMZ, encodings) that reports every vertex to a sink;
//! - [`csv_out`]: the CSV schema (columns, dialects) and a sink that writes rows;
//! - [`wkt`]: the WKT geometry of a whole feature;
//! - [`input`]: a file or standard input;
//! - [`names`]: path rules that mean the same on every platform;
//! - [`plan`]: inputs (paths and glob patterns) to jobs `{input, output}`; `pattern`: the
//!   walk that expands a glob pattern;
//! - [`convert`]: one job: read, write a temporary file;
//! - [`temp`]: the temporary an output is written to, and the step that names it;
//! - `disk`: getting a temporary's bytes to the disk (write-back, writing past the page cache);
//! - [`commit`]: make finished temporaries durable in groups, then name them;
//! - [`pipeline`]: a lone big file read and written on two threads;
//! - [`run`]: the parallel batch, cancellation and the exit status;
//! - [`shard`]: `--shard K/N`, the stable partition of a batch across machines;
//! - [`stream`]: a merged CSV, or a CSV on standard output;
//! - [`dry_run`], [`json_report`], [`progress`], [`report`]: everything shown to the user.

pub mod cli;
pub mod commit;
pub mod config;
pub mod convert;
pub mod csv_out;
mod disk;
pub mod dry_run;
pub mod input;
pub mod json_report;
pub mod kml;
pub mod names;
pub mod path_text;
mod pattern;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod report;
pub mod run;
pub mod shard;
pub mod stream;
pub mod temp;
pub mod wkt;

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

//! Streaming KML/KMZ reader.
//!
//! Reads a document once, front to back, with memory that does not grow with the size of the
//! file, the number of features or the length of a single `<coordinates>` element, and reports
//! every vertex (with the feature, geometry and part it belongs to) to a [`Sink`]. It knows
//! nothing of CSV, files on disk beyond opening one, or the command line.
//!
//! # Reading vertices
//!
//! Implement [`Sink`] and hand it to [`read_path`] (a file), [`read`] (anything seekable, KML
//! or KMZ) or [`read_document`] (any byte stream of KML):
//!
//! ```
//! use std::io;
//! use kml2csv::kml::{self, ReadOptions, Sink, Vertex, Warning};
//!
//! #[derive(Default)]
//! struct Collect {
//!     rows: Vec<String>,
//!     warnings: Vec<Warning>,
//! }
//!
//! impl Sink for Collect {
//!     fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
//!         self.rows.push(format!("{} {} part {}: {},{}", v.name, v.geometry, v.part, v.longitude, v.latitude));
//!         Ok(())
//!     }
//!     fn warning(&mut self, warning: Warning) {
//!         self.warnings.push(warning);
//!     }
//! }
//!
//! let kml = r#"<kml xmlns="http://www.opengis.net/kml/2.2">
//!   <Placemark><name>Walk</name>
//!     <LineString><coordinates>8.54,47.37 8.55,47.38 oops,1</coordinates></LineString>
//!   </Placemark>
//! </kml>"#;
//! let mut out = Collect::default();
//! let summary = kml::read_document(kml.as_bytes(), &mut out, &ReadOptions::default())?;
//! assert_eq!(out.rows, ["Walk LineString part 0: 8.54,47.37", "Walk LineString part 0: 8.55,47.38"]);
//! assert_eq!(summary.vertices, 2);
//! // The bad tuple was skipped, with where it is.
//! assert_eq!(out.warnings[0].to_string(), r#"3:52: tuple "oops,1" skipped: not a number"#);
//! # Ok::<(), kml::Error>(())
//! ```
//!
//! # Whole features
//!
//! With [`ReadOptions::features`] the sink also gets every feature at its end, with its
//! coordinate sequences ([`Part`]); with [`ReadOptions::attributes`], its descriptive fields:
//!
//! ```
//! use std::io::{self, Cursor};
//! use kml2csv::kml::{self, Feature, ReadOptions, Sink, Vertex, Warning};
//!
//! #[derive(Default)]
//! struct Features(Vec<String>);
//!
//! impl Sink for Features {
//!     fn vertex(&mut self, _: &Vertex<'_>) -> io::Result<()> {
//!         Ok(())
//!     }
//!     fn warning(&mut self, _: Warning) {}
//!     fn feature(&mut self, f: &Feature<'_>) -> io::Result<()> {
//!         let speed = f.attributes.and_then(|a| a.data.iter().find(|(k, _)| k == "speed"));
//!         let parts: Vec<String> =
//!             f.parts.iter().map(|p| format!("{} of {}", p.geometry, p.tuples.len())).collect();
//!         self.0.push(format!("#{} {}: {} {:?}", f.ordinal, f.name, parts.join(", "), speed));
//!         Ok(())
//!     }
//! }
//!
//! let kml = r#"<kml><Document><Placemark><name>Lake</name>
//!   <ExtendedData><Data name="speed"><value>3</value></Data></ExtendedData>
//!   <Polygon><outerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></outerBoundaryIs></Polygon>
//! </Placemark></Document></kml>"#;
//! let options = ReadOptions { features: true, attributes: true, ..ReadOptions::default() };
//! let mut out = Features::default();
//! kml::read(Cursor::new(kml), &mut out, &options)?;
//! assert_eq!(out.0, [r#"#0 Lake: Polygon of 4 Some(("speed", "3"))"#]);
//! # Ok::<(), kml::Error>(())
//! ```

mod coords;
mod decode;
mod kmz;
mod reader;
mod scan;
mod spill;
mod tracked;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

pub use coords::is_number;
pub use reader::read_document;

/// Where in the (decoded) document something happened. Lines and columns are 1-based; the
/// column counts bytes of the UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a ring of a polygon is used; `None` for everything that is not a polygon ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ring {
    #[default]
    None,
    Outer,
    Inner,
}

impl Ring {
    pub fn as_str(self) -> &'static str {
        match self {
            Ring::None => "",
            Ring::Outer => "outer",
            Ring::Inner => "inner",
        }
    }
}

/// One vertex, borrowed from the reader's buffers for the duration of [`Sink::vertex`].
#[derive(Debug, Clone, Copy)]
pub struct Vertex<'a> {
    /// 0-based ordinal of the enclosing feature in the file; `None` outside any feature.
    pub feature: Option<u64>,
    /// The feature's own `<name>`, empty if it has none.
    pub name: &'a str,
    /// The element that holds the coordinates (`Point`, `LineString`, `Polygon`, `Track`, …).
    pub geometry: &'a str,
    /// 0-based index of the coordinate sequence within the feature.
    pub part: u64,
    pub ring: Ring,
    /// 0-based index of the vertex within its sequence.
    pub vertex: u64,
    /// The coordinates as written in the KML. Each is a number [`is_number`] accepts (the
    /// altitude may also be empty); the CSV writer relies on that to copy them unchecked.
    pub longitude: &'a str,
    pub latitude: &'a str,
    /// Empty for two-value tuples.
    pub altitude: &'a str,
    /// The gx:Track `<when>` paired with this `gx:coord`, empty otherwise.
    pub when: &'a str,
    /// The feature's descriptive fields, when [`ReadOptions::attributes`] is set and the vertex
    /// belongs to a feature. They are complete before the feature's first vertex and the same
    /// for all its vertices; a sink may rely on that (the CSV writer looks them up once per
    /// feature).
    pub attributes: Option<&'a Attributes>,
}

/// The descriptive fields of a feature, read when [`ReadOptions::attributes`] is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The names of the enclosing Documents and Folders, outermost first, joined with `/`.
    pub folder: String,
    pub description: String,
    /// `TimeStamp/when`.
    pub timestamp: String,
    /// `TimeSpan/begin` and `TimeSpan/end`.
    pub begin: String,
    pub end: String,
    /// `styleUrl`.
    pub style: String,
    /// ExtendedData fields (`Data/value` by its `name`, `SchemaData/SimpleData` by its `name`) in
    /// document order; the first of two fields with one name wins.
    pub data: Vec<(String, String)>,
}

/// One coordinate sequence of a feature, as [`Sink::feature`] receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// As the `geometry` column: `Point`, `LineString`, `LinearRing`, `Polygon`, `Track`, …
    pub geometry: String,
    pub ring: Ring,
    /// `[longitude, latitude, altitude]`, verbatim; altitude empty for two-value tuples.
    pub tuples: Vec<[String; 3]>,
}

/// A whole feature, handed to [`Sink::feature`] at its end when [`ReadOptions::features`] is
/// set.
#[derive(Debug, Clone, Copy)]
pub struct Feature<'a> {
    pub ordinal: u64,
    pub name: &'a str,
    /// Present when [`ReadOptions::attributes`] is set.
    pub attributes: Option<&'a Attributes>,
    /// Its coordinate sequences in document order (the same parts, numbered from 0, as the
    /// vertex rows). Empty for a feature without coordinates.
    pub parts: &'a [Part],
}

/// Something suspicious that was skipped or repaired; the file still converts unless the
/// reader is strict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The warnings of one file: the first [`Warnings::KEPT`] are kept to be shown, all are
/// counted, so that a file with millions of bad tuples cannot exhaust memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warnings {
    kept: Vec<Warning>,
    total: u64,
}

impl Warnings {
    /// How many warnings are kept in full.
    pub const KEPT: usize = 100;

    pub fn push(&mut self, warning: Warning) {
        self.total += 1;
        if self.kept.len() < Self::KEPT {
            self.kept.push(warning);
        }
    }

    /// The first warnings, in the order they were found.
    pub fn kept(&self) -> &[Warning] {
        &self.kept
    }

    /// How many warnings there were in all.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Receives what the reader finds, in document order.
pub trait Sink {
    /// A vertex. An error here (a full disk, a closed pipe) stops the reader.
    fn vertex(&mut self, vertex: &Vertex<'_>) -> io::Result<()>;
    /// A tuple or value that was skipped.
    fn warning(&mut self, warning: Warning);
    /// A whole feature, at its end; only called when [`ReadOptions::features`] is set. Vertex
    /// rows are still reported to [`Sink::vertex`] as well.
    fn feature(&mut self, feature: &Feature<'_>) -> io::Result<()> {
        let _ = feature;
        Ok(())
    }
}

/// How to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Turn the first warning into an error of the file.
    pub strict: bool,
    /// When this becomes true the reader stops with [`ErrorKind::Cancelled`] at its next event
    /// or buffer of text, also where no vertex is found for a long time (a huge comment, a
    /// KMZ entry being inflated).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Read each feature's descriptive fields ([`Attributes`]) and hand them with every vertex.
    /// The vertices of a feature are then held back until the feature ends (in bounded memory),
    /// since its fields may come after its geometry.
    pub attributes: bool,
    /// Call [`Sink::feature`] at the end of every feature with its whole geometry. Memory then
    /// grows with the largest feature (not with the file).
    pub features: bool,
}

/// What a finished read found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub vertices: u64,
    pub warnings: u64,
}

/// Why a file could not be read. Its `Display` is `LINE:COLUMN: message` when the position is
/// known, so the caller only has to put the path in front.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub position: Option<Position>,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(#[source] io::Error),
    /// The sink failed (disk full, closed pipe); not a problem of the input.
    #[error("cannot write: {0}")]
    Sink(#[source] io::Error),
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("encoding: {0}")]
    Encoding(String),
    #[error("bad KMZ: {0}")]
    Kmz(String),
    /// A warning promoted to an error by [`ReadOptions::strict`].
    #[error("{0} (--strict)")]
    Strict(String),
    /// [`ReadOptions::cancel`] was set.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub fn new(kind: ErrorKind, position: Option<Position>) -> Self {
        Error { kind, position }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{p}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// Read the KML or KMZ file at `path` (recognised by content, not by name).
pub fn read_path(
    path: &Path,
    sink: &mut dyn Sink,
    options: &ReadOptions,
) -> Result<Summary, Error> {
    let file = File::open(path).map_err(|e| Error::new(ErrorKind::Io(e), None))?;
    read(file, sink, options)
}

/// Read a KML document or a KMZ archive from `input`; a zip is recognised by its first bytes.
pub fn read<R: Read + Seek>(
    input: R,
    sink: &mut dyn Sink,
    options: &ReadOptions,
) -> Result<Summary, Error> {
    // Small: it only has to hold the head that tells a KMZ; bigger reads go past it (see
    // `read_document`).
    let mut input = BufReader::with_capacity(8 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| Error::new(ErrorKind::Io(e), None))?;
    if head.starts_with(kmz::MAGIC) {
        kmz::read_kmz(input, sink, options)
    } else {
        read_document(input, sink, options)
    }
}

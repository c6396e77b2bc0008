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
//! coordinate sequences ([`Geometry`]); with [`ReadOptions::attributes`], its descriptive fields:
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
//!         // `to_parts` gathers the geometry in memory; `Geometry::visit` streams it.
//!         let parts: Vec<String> = f.geometry.to_parts()?.iter()
//!             .map(|p| format!("{} of {}", p.geometry, p.tuples.len())).collect();
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
mod sniff;
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
    /// The tuple exactly as written, `longitude,latitude` or `longitude,latitude,altitude`, when
    /// it is written just so and every number is in its shortest text (no `+`, no leading
    /// zeros, no `.` first or last); empty when the reader did not see it so. Nearly every
    /// tuple of a `<coordinates>` element is: a sink that writes the three with commas
    /// between may copy this once instead.
    pub tuple: &'a str,
    /// The gx:Track `<when>` paired with this `gx:coord`, empty otherwise.
    pub when: &'a str,
    /// Not 0 when the reader vouches that every vertex it hands over with this same number has
    /// the same `feature`, `name`, `geometry`, `part` and `ring`: a sink that keeps what it made
    /// of the last vertex's sequence may then skip comparing them. The numbers are unique in
    /// the process; 0 says nothing.
    pub sequence: u64,
    /// The feature's descriptive fields, when [`ReadOptions::attributes`] is set and the vertex
    /// belongs to a feature. They are complete before the feature's first vertex and the same
    /// for all its vertices; a sink may rely on that (the CSV writer looks them up once per
    /// feature).
    pub attributes: Option<&'a Attributes>,
}

/// One tuple of a `<coordinates>` text, as [`Vertex`] carries it: the three numbers as written
/// (`altitude` empty for two values) and, when it is written just so, the whole tuple (see
/// [`Vertex::tuple`]; empty otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuple<'a> {
    pub longitude: &'a str,
    pub latitude: &'a str,
    pub altitude: &'a str,
    pub text: &'a str,
    /// `text` and the input bytes after it, [`Tuple::PADDED`] in all, when the reader has
    /// them at hand (empty otherwise): a sink may copy that many at once and keep the
    /// length of `text`, without a branch on it.
    pub padded: &'a [u8],
}

impl Tuple<'_> {
    /// The length of a non-empty [`Tuple::padded`].
    pub const PADDED: usize = 32;
}

/// Consecutive vertices of one coordinate sequence, handed to [`Sink::vertices`] at once:
/// vertex `i` is `first` with `vertex` counted up by `i` and the coordinates of `tuples[i]`.
/// Nothing else differs between them; in particular none has a time or attributes.
#[derive(Debug, Clone, Copy)]
pub struct Vertices<'a> {
    /// The first vertex; its coordinate fields are those of `tuples[0]`.
    pub first: Vertex<'a>,
    pub tuples: &'a [Tuple<'a>],
}

impl<'a> Vertices<'a> {
    /// Vertex `i` of the run.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Vertex<'a> {
        let t = &self.tuples[i];
        Vertex {
            vertex: self.first.vertex + i as u64,
            longitude: t.longitude,
            latitude: t.latitude,
            altitude: t.altitude,
            tuple: t.text,
            ..self.first
        }
    }
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

/// One coordinate sequence of a feature, gathered in memory by [`Geometry::to_parts`].
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
    /// vertex rows). Empty for a feature without coordinates, and with
    /// [`ReadOptions::without_geometry`].
    pub geometry: &'a Geometry,
}

/// What [`Geometry::visit`] hands over, in document order: each part starts with
/// [`GeometryItem::Part`], followed by its tuples (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryItem<'a> {
    Part {
        geometry: &'a str,
        ring: Ring,
    },
    /// `[longitude, latitude, altitude]`, verbatim; altitude empty for two-value tuples.
    Tuple([&'a str; 3]),
}

/// The coordinate sequences of one feature, kept for [`Sink::feature`].
///
/// A single LineString can hold millions of vertices, so the geometry is not a tree of
/// strings: it is a log of records that stays in memory up to a few megabytes and continues
/// in a temporary file beyond, read through (as often as needed) with [`Geometry::visit`].
pub struct Geometry {
    log: spill::RecordLog,
    parts: u64,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::new()
    }
}

impl fmt::Debug for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Geometry")
            .field("parts", &self.parts)
            .field("in_memory", &self.in_memory())
            .finish()
    }
}

impl Geometry {
    pub fn new() -> Self {
        Geometry {
            log: spill::RecordLog::new(),
            parts: 0,
        }
    }

    /// A geometry made of `parts` (parts without tuples are left out, as the reader does).
    pub fn from_parts(parts: &[Part]) -> io::Result<Self> {
        Self::from_parts_spilling(parts, spill::MEMORY_LIMIT)
    }

    /// [`Geometry::from_parts`] that moves to a temporary file past `memory_limit` bytes.
    #[doc(hidden)]
    pub fn from_parts_spilling(parts: &[Part], memory_limit: usize) -> io::Result<Self> {
        let mut geometry = Geometry {
            log: spill::RecordLog::with_memory_limit(memory_limit),
            parts: 0,
        };
        for part in parts.iter().filter(|p| !p.tuples.is_empty()) {
            geometry.start_part(&part.geometry, part.ring)?;
            for [lon, lat, alt] in &part.tuples {
                geometry.push_tuple(lon, lat, alt)?;
            }
        }
        Ok(geometry)
    }

    /// How many coordinate sequences it has.
    pub fn parts(&self) -> u64 {
        self.parts
    }

    pub fn is_empty(&self) -> bool {
        self.parts == 0
    }

    /// Whether it is all in memory (nothing went to a temporary file).
    pub fn in_memory(&self) -> bool {
        self.log.in_memory()
    }

    /// Hand every part and tuple, in document order, to `f`; stop at its first error.
    pub fn visit(&self, f: &mut dyn FnMut(GeometryItem<'_>) -> io::Result<()>) -> io::Result<()> {
        self.log.replay(&mut |mut fields| {
            fn text(b: Option<&[u8]>) -> &str {
                std::str::from_utf8(b.unwrap_or_default()).unwrap_or("")
            }
            let (a, b, c) = (fields.next(), fields.next(), fields.next());
            match c {
                Some(_) => f(GeometryItem::Tuple([text(a), text(b), text(c)])),
                None => {
                    let ring = match b.and_then(<[u8]>::first) {
                        Some(1) => Ring::Outer,
                        Some(2) => Ring::Inner,
                        _ => Ring::None,
                    };
                    f(GeometryItem::Part {
                        geometry: text(a),
                        ring,
                    })
                }
            }
        })
    }

    /// The whole geometry as parts in memory; that memory grows with the geometry.
    pub fn to_parts(&self) -> io::Result<Vec<Part>> {
        let mut parts: Vec<Part> = Vec::new();
        self.visit(&mut |item| {
            match item {
                GeometryItem::Part { geometry, ring } => parts.push(Part {
                    geometry: geometry.to_owned(),
                    ring,
                    tuples: Vec::new(),
                }),
                GeometryItem::Tuple(t) => {
                    if let Some(part) = parts.last_mut() {
                        part.tuples.push(t.map(str::to_owned));
                    }
                }
            }
            Ok(())
        })?;
        Ok(parts)
    }

    pub(crate) fn start_part(&mut self, geometry: &str, ring: Ring) -> io::Result<()> {
        self.parts += 1;
        self.log.push(&[geometry.as_bytes(), &[ring as u8]])
    }

    pub(crate) fn push_tuple(&mut self, lon: &str, lat: &str, alt: &str) -> io::Result<()> {
        self.log
            .push(&[lon.as_bytes(), lat.as_bytes(), alt.as_bytes()])
    }

    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.parts = 0;
        self.log.clear()
    }
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
    /// A run of vertices of one sequence, in order: the same as a [`Sink::vertex`] call for
    /// each, which is what it does unless a sink has a faster way. The reader hands over the
    /// plain tuples of a `<coordinates>` text so, a chunk at a time: a call per row, each
    /// checking what is the same for the whole run, was a tenth of a conversion.
    fn vertices(&mut self, run: &Vertices<'_>) -> io::Result<()> {
        for i in 0..run.tuples.len() {
            self.vertex(&run.get(i))?;
        }
        Ok(())
    }
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
    /// Call [`Sink::feature`] at the end of every feature with its whole geometry (kept in
    /// bounded memory, the rest in a temporary file: see [`Geometry`]).
    pub features: bool,
    /// With [`ReadOptions::features`]: hand features over without their geometry (a pass that
    /// only wants their attributes).
    pub without_geometry: bool,
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
    /// The input is plainly something else (a program, an image, another archive format).
    #[error("not KML: {0}")]
    NotKml(String),
    /// The input needs more memory than the reader allows itself (one feature's fields).
    #[error("{0}")]
    TooLarge(String),
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

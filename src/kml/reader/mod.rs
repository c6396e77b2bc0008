//! What the elements of a KML document mean: features, geometries, their coordinates and
//! fields. The event loop that reads the XML underneath is in `markup.rs`, the byte scanning
//! under it in `scan.rs`, and quick-xml does the rest.
//!
//! quick-xml buffers a whole text node before handing it over, and a single `<coordinates>`
//! can be hundreds of megabytes. So character data is read here, in buffer-sized pieces,
//! straight from the underlying reader up to the next `<` or `&`, and handed to whoever wants
//! it: the coordinate tokenizer, a small capture (a `<name>`, a `<when>`), or nobody (a
//! `<description>`). Comments and CDATA sections are streamed the same way. Start, end and
//! empty-element tags, nearly all the markup of a KML file, are found in place as well (see
//! [`Document::read_tag`]); quick-xml parses their attributes and reads the remaining markup:
//! the XML declaration, DOCTYPE, processing instructions and references. The well-formedness
//! checks quick-xml leaves out are made here: a document must be complete, have one root
//! element and nothing but white space around it, close its elements in order, be valid UTF-8
//! without control characters, and use no entity but the five predefined ones.

mod markup;

use std::io::{BufRead, Read};

use quick_xml::errors::{IllFormedError, SyntaxError};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use super::coords::{is_number, is_xml_space, quick_words, quick_words_in, Tokenizer, TupleOut};
use super::scan::{
    complete_chars, first_unusual_byte, floor_char_boundary, has_cr, is_xml_char, local_start,
    normalize_newlines, same_name, tag_end, tag_span, text_run, trim_xml_space, utf8_or_empty,
    utf8_width, xml_words, Section, TagSpan,
};
use super::sniff;
use super::spill::SpillQueue;
use super::tracked::{TooLong, Tracked};
use super::{
    decode, Attributes, Error, ErrorKind, Feature, Geometry, Position, ReadOptions, Ring, Sink,
    Summary, Tuple, Vertex, Vertices, Warning,
};

/// Longest `<name>`, `<when>` or `<gx:coord>` text kept; the rest is dropped with a warning so
/// that a hostile document cannot make us hold gigabytes.
const MAX_CAPTURE: usize = 1 << 20;

/// Most bytes of descriptive data (ExtendedData names and values, description, style, times)
/// one feature may carry: they are held until the feature ends, and each value's own limit
/// ([`MAX_CAPTURE`]) does not bound how many values there are.
const MAX_FEATURE_TEXT: usize = 16 << 20;

/// What an ExtendedData field costs beyond its text (two strings, an index entry), counted
/// against [`MAX_FEATURE_TEXT`]: millions of empty fields must not pass for no text at all.
const FIELD_COST: usize = 64;

/// From this many ExtendedData fields on, a feature's fields are also found by name through
/// a hash set instead of a look at each of them.
const INDEXED_FIELDS: usize = 32;

/// Deepest nesting accepted, and most bytes of open element names: real KML nests a few
/// dozen levels, and every open element costs memory (its name is kept to check the end tag),
/// so a file of nothing but start tags must not be able to exhaust it.
const MAX_DEPTH: usize = 250_000;
const MAX_OPEN_NAME_BYTES: usize = 8 << 20;

/// Longest single piece of markup (a tag with its attributes, a processing instruction, a
/// DOCTYPE): quick-xml holds one whole in memory, so a 1 GB tag must fail rather than be read.
/// Text, comments and CDATA are streamed and have no such limit.
const MAX_MARKUP: u64 = 16 << 20;

/// The leaf features whose vertices get an ordinal and a name. Containers (Document, Folder)
/// are not counted: their names are not the name of a geometry.
fn is_feature(local: &str) -> bool {
    matches!(
        local,
        "Placemark" | "GroundOverlay" | "PhotoOverlay" | "ScreenOverlay" | "NetworkLink" | "Tour"
    )
}

/// Read one KML document (not a KMZ) from `input`. A gzip-compressed document is read
/// through its decompression; other files that are plainly not KML (an empty zip, a program,
/// an image) fail with a message that says what they are.
pub fn read_document<R: Read>(
    input: R,
    sink: &mut dyn Sink,
    options: &ReadOptions,
) -> Result<Summary, Error> {
    // Only the head that tells the encoding has to be buffered here: the reader asks for whole
    // 128 KiB blocks, which a `BufReader` passes straight through once it is empty. A bigger
    // buffer only cost a copy of the text and, for an inner reader without `read_buf`, the
    // zeroing of the whole buffer per file.
    let mut input = std::io::BufReader::with_capacity(8 * 1024, input);
    let head = input.fill_buf().map_err(|e| io_error(e, None))?;
    match sniff::file_type(head) {
        Some(sniff::FileType::Gzip) => {
            // One level only: a gzip inside a gzip is not taken apart.
            let inflated = flate2::bufread::MultiGzDecoder::new(input);
            read_text(
                std::io::BufReader::with_capacity(8 * 1024, inflated),
                sink,
                options,
            )
        }
        Some(sniff::FileType::NotKml(kind)) => Err(Error::new(kind, None)),
        None => read_text(input, sink, options),
    }
}

/// [`read_document`] on a document known not to be compressed.
fn read_text<R: BufRead>(
    input: R,
    sink: &mut dyn Sink,
    options: &ReadOptions,
) -> Result<Summary, Error> {
    let text = decode::utf8_reader(input).map_err(|e| io_error(e, None))?;
    let mut reader = Reader::from_reader(Tracked::new(text));
    // Tags are read by `Document::read_tag`, which checks end tags against its own stack;
    // quick-xml sees only the other markup, so its stack of open names would be wrong.
    reader.config_mut().check_end_names = false;
    reader.config_mut().allow_unmatched_ends = true;
    let mut doc = Document::new(sink, options);
    let result = doc.run(&mut reader);
    doc.emitter.flush_warnings(reader.get_mut());
    match result {
        Ok(()) => Ok(doc.emitter.summary),
        Err(mut e) => {
            if let (None, Some(offset)) = (e.position, doc.emitter.error_offset.take()) {
                e.position = reader.get_mut().position_of(offset);
                if e.position.is_none() {
                    // Too far behind to have a line and column (a tag that spans buffers).
                    if let ErrorKind::Xml(message) = &mut e.kind {
                        message.push_str(&format!(" (at byte {offset} of the text)"));
                    }
                }
            }
            Err(e)
        }
    }
}

fn io_error(e: std::io::Error, position: Option<Position>) -> Error {
    if e.kind() == std::io::ErrorKind::InvalidData {
        if let Some(enc) = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<decode::EncodingError>())
        {
            return Error::new(ErrorKind::Encoding(enc.to_string()), position);
        }
    }
    Error::new(ErrorKind::Io(e), position)
}

#[cold]
fn sink_error(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Sink(e), None)
}

fn xml_error(e: quick_xml::Error) -> Error {
    match e {
        quick_xml::Error::Io(io) => {
            let io = std::sync::Arc::try_unwrap(io)
                .unwrap_or_else(|shared| std::io::Error::new(shared.kind(), shared.to_string()));
            io_error(io, None)
        }
        other => Error::new(ErrorKind::Xml(other.to_string()), None),
    }
}

/// One coordinate sequence: a `<coordinates>` element, a Track, a Model's Location.
#[derive(Default)]
struct Sequence {
    /// From [`next_identity`] at each start; 0 before the first.
    id: u64,
    geometry: String,
    ring: Option<Ring>,
    /// Assigned when the first vertex is emitted, so that parts are contiguous.
    part: Option<u64>,
    vertices: u64,
}

impl Sequence {
    fn start(&mut self, geometry: &str, ring: Ring) {
        self.id = next_identity();
        self.geometry.clear();
        self.geometry.push_str(geometry);
        self.ring = Some(ring);
        self.part = None;
        self.vertices = 0;
    }
}

struct FeatureScope {
    ordinal: u64,
    /// From [`next_identity`], again whenever its name is set.
    key: u64,
    /// Depth of the feature element (number of open elements including it).
    depth: usize,
    /// `None` until its `<name>` ends.
    name: Option<String>,
    parts: u64,
    /// Filled with [`ReadOptions::attributes`].
    attributes: Attributes,
    /// Bytes of text in `attributes`, up to [`MAX_FEATURE_TEXT`].
    attribute_bytes: usize,
    /// The names in `attributes.data`, once there are [`INDEXED_FIELDS`] of them.
    field_names: std::collections::HashSet<String>,
    /// Its whole geometry, kept with [`ReadOptions::features`].
    geometry: Geometry,
}

/// Assigns feature, part and vertex numbers and hands rows to the sink, holding back the rows
/// of a feature whose name has not been seen yet.
struct Emitter<'s> {
    sink: &'s mut dyn Sink,
    strict: bool,
    /// [`ReadOptions::attributes`]: every row of a feature waits for the feature's end.
    attributes: bool,
    /// [`ReadOptions::features`].
    whole_features: bool,
    /// [`ReadOptions::features`] without [`ReadOptions::without_geometry`].
    keep_geometry: bool,
    /// The geometry of the last finished feature, kept for its allocations.
    spare_geometry: Option<Geometry>,
    features: Vec<FeatureScope>,
    /// Part counter for sequences outside any feature.
    outside_parts: u64,
    next_feature: u64,
    pending: SpillQueue,
    summary: Summary,
    /// Warnings not yet handed to the sink, with the input offset they refer to; turned into
    /// line and column by the event loop, which holds the reader.
    warnings: Vec<(u64, String)>,
    /// Where the error being returned happened, when the error itself has no position.
    error_offset: Option<u64>,
    /// The [`Sequence::id`] and [`FeatureScope::key`] of the last vertex handed over by the
    /// quick path, and the [`Vertex::sequence`] it got: a sequence's geometry, ring and part
    /// and a feature's ordinal and name do not change under the same id and key.
    last_pair: (u64, u64),
    generation: u64,
}

/// A number no other call in this process returns (and never 0).
fn next_identity() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Emitter<'_> {
    /// Number the vertex and hand it to the sink, or hold it back.
    #[inline(always)]
    fn vertex(
        &mut self,
        seq: &mut Sequence,
        lon: &str,
        lat: &str,
        alt: &str,
        when: &str,
        tuple: &str,
    ) -> Result<(), Error> {
        let t = Tuple {
            longitude: lon,
            latitude: lat,
            altitude: alt,
            text: tuple,
            padded: &[],
        };
        if let Some(handed) = self.quick(seq, t, when, 1, |sink, row| sink.vertex(&row)) {
            return handed;
        }
        // Rows held back or kept lose the tuple's text: a sink does without it.
        self.any_vertex(seq, lon, lat, alt, when)
    }

    /// [`Emitter::vertex`] for each of `run`, which nearly always takes the quick way: then
    /// the whole run goes to the sink in one call. The first vertex of a sequence numbers its
    /// part, after which the rest of the run can.
    #[inline(always)]
    fn vertices(&mut self, seq: &mut Sequence, mut run: &[Tuple<'_>]) -> Result<(), Error> {
        while let Some((&t, rest)) = run.split_first() {
            let count = run.len() as u64;
            let hand = |sink: &mut dyn Sink, first: Vertex<'_>| {
                sink.vertices(&Vertices { first, tuples: run })
            };
            if let Some(handed) = self.quick(seq, t, "", count, hand) {
                return handed;
            }
            self.vertex(seq, t.longitude, t.latitude, t.altitude, "", t.text)?;
            run = rest;
        }
        Ok(())
    }

    /// The case of nearly every row: it belongs to a named feature and a part already
    /// numbered, with nothing to keep or hold back. Then `count` vertices are numbered, and
    /// `hand` gets the sink and the first of them (`t`, with `when`); otherwise `None`, and
    /// nothing is numbered. Inlined into the tokenizer's loop, this costs about what the call
    /// to the whole function (ten arguments, six saved registers) did.
    #[inline(always)]
    fn quick(
        &mut self,
        seq: &mut Sequence,
        t: Tuple<'_>,
        when: &str,
        count: u64,
        hand: impl FnOnce(&mut dyn Sink, Vertex<'_>) -> std::io::Result<()>,
    ) -> Option<Result<(), Error>> {
        let (Some(part), false, false, Some(feature)) = (
            seq.part,
            self.whole_features,
            self.attributes,
            self.features.last(),
        ) else {
            return None;
        };
        let name = feature.name.as_ref()?;
        let pair = (seq.id, feature.key);
        if pair != self.last_pair {
            self.last_pair = pair;
            self.generation = next_identity();
        }
        let index = seq.vertices;
        seq.vertices += count;
        self.summary.vertices += count;
        let first = Vertex {
            feature: Some(feature.ordinal),
            name,
            geometry: &seq.geometry,
            part,
            ring: seq.ring.unwrap_or(Ring::None),
            vertex: index,
            longitude: t.longitude,
            latitude: t.latitude,
            altitude: t.altitude,
            tuple: t.text,
            when,
            attributes: None,
            sequence: if seq.id == 0 { 0 } else { self.generation },
        };
        Some(hand(&mut *self.sink, first).map_err(sink_error))
    }

    /// [`Emitter::vertex`] for every case.
    #[inline(never)]
    fn any_vertex(
        &mut self,
        seq: &mut Sequence,
        lon: &str,
        lat: &str,
        alt: &str,
        when: &str,
    ) -> Result<(), Error> {
        let part = match seq.part {
            Some(p) => p,
            None => {
                let counter = match self.features.last_mut() {
                    Some(f) => &mut f.parts,
                    None => &mut self.outside_parts,
                };
                let p = *counter;
                *counter += 1;
                seq.part = Some(p);
                p
            }
        };
        let index = seq.vertices;
        seq.vertices += 1;
        let ring = seq.ring.unwrap_or(Ring::None);
        self.summary.vertices += 1;
        if self.keep_geometry {
            if let Some(f) = self.features.last_mut() {
                let g = &mut f.geometry;
                let kept = if g.parts() == part {
                    g.start_part(&seq.geometry, ring)
                        .and_then(|()| g.push_tuple(lon, lat, alt))
                } else {
                    g.push_tuple(lon, lat, alt)
                };
                kept.map_err(|e| Error::new(ErrorKind::Io(e), None))?;
            }
        }
        let hold = self.attributes;
        let (feature, name) = match self.features.last() {
            Some(f) => match &f.name {
                Some(name) if !hold => (Some(f.ordinal), name.as_str()),
                _ => {
                    // The name (or another field) may still come after the geometry: hold the
                    // row back.
                    let ring_code = [ring as u8];
                    return self
                        .pending
                        .push(&[
                            seq.geometry.as_bytes(),
                            &part.to_le_bytes(),
                            &ring_code,
                            &index.to_le_bytes(),
                            lon.as_bytes(),
                            lat.as_bytes(),
                            alt.as_bytes(),
                            when.as_bytes(),
                        ])
                        .map_err(|e| Error::new(ErrorKind::Io(e), None));
                }
            },
            None => (None, ""),
        };
        let row = Vertex {
            feature,
            name,
            geometry: &seq.geometry,
            part,
            ring,
            vertex: index,
            longitude: lon,
            latitude: lat,
            altitude: alt,
            tuple: "",
            when,
            attributes: None,
            sequence: 0,
        };
        self.sink.vertex(&row).map_err(sink_error)
    }

    /// Write the held-back rows of the innermost feature with the name now known.
    fn flush_pending(&mut self) -> Result<(), Error> {
        let Some(feature) = self.features.last() else {
            return Ok(());
        };
        let name = feature.name.as_deref().unwrap_or("");
        let ordinal = feature.ordinal;
        let attributes = self.attributes.then_some(&feature.attributes);
        let sink = &mut *self.sink;
        loop {
            let written = self
                .pending
                .pop(|mut fields| -> std::io::Result<()> {
                    let mut next = || fields.next().unwrap_or_default();
                    let text = |b: &[u8]| utf8_or_empty(b).to_owned();
                    let geometry = text(next());
                    let part = u64::from_le_bytes(next().try_into().unwrap_or_default());
                    let ring = match next().first() {
                        Some(1) => Ring::Outer,
                        Some(2) => Ring::Inner,
                        _ => Ring::None,
                    };
                    let vertex = u64::from_le_bytes(next().try_into().unwrap_or_default());
                    let (lon, lat, alt, when) = (next(), next(), next(), next());
                    sink.vertex(&Vertex {
                        feature: Some(ordinal),
                        name,
                        geometry: &geometry,
                        part,
                        ring,
                        vertex,
                        longitude: utf8_or_empty(lon),
                        latitude: utf8_or_empty(lat),
                        altitude: utf8_or_empty(alt),
                        tuple: "",
                        when: utf8_or_empty(when),
                        attributes,
                        sequence: 0,
                    })
                })
                .map_err(|e| Error::new(ErrorKind::Io(e), None))?;
            match written {
                None => return Ok(()),
                Some(result) => result.map_err(|e| Error::new(ErrorKind::Sink(e), None))?,
            }
        }
    }

    /// The innermost feature ends: write what it held back, then the feature itself.
    fn end_feature(&mut self) -> Result<(), Error> {
        self.flush_pending()?;
        if let Some(mut f) = self.features.pop() {
            if self.whole_features {
                let feature = Feature {
                    ordinal: f.ordinal,
                    name: f.name.as_deref().unwrap_or(""),
                    attributes: self.attributes.then_some(&f.attributes),
                    geometry: &f.geometry,
                };
                self.sink
                    .feature(&feature)
                    .map_err(|e| Error::new(ErrorKind::Sink(e), None))?;
            }
            f.geometry
                .clear()
                .map_err(|e| Error::new(ErrorKind::Io(e), None))?;
            self.spare_geometry = Some(f.geometry);
        }
        Ok(())
    }

    fn warn(&mut self, offset: u64, message: String) -> Result<(), Error> {
        self.summary.warnings += 1;
        if self.strict {
            self.error_offset = Some(offset);
            return Err(Error::new(ErrorKind::Strict(message), None));
        }
        self.warnings.push((offset, message));
        Ok(())
    }

    /// Hand the queued warnings to the sink, with positions resolved by `tracked`.
    #[inline]
    fn flush_warnings<R: Read>(&mut self, tracked: &mut Tracked<R>) {
        // Called after every piece of text and markup, almost always with nothing to do.
        if !self.warnings.is_empty() {
            self.hand_over_warnings(tracked);
        }
    }

    #[cold]
    fn hand_over_warnings<R: Read>(&mut self, tracked: &mut Tracked<R>) {
        for (offset, message) in self.warnings.drain(..) {
            let position = tracked.position_of(offset);
            self.sink.warning(Warning { position, message });
        }
    }
}

/// What the character data at the current point goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Name,
    When,
    Coord,
    Location(usize),
    /// The `<name>` of a Document or Folder.
    ContainerName,
    Description,
    Style,
    Timestamp,
    Begin,
    End,
    /// `Data/value` or `SimpleData`, for the field named in [`Document::field_name`].
    Field,
}

/// A gx:Track: its i-th `<when>` goes with its i-th `<gx:coord>`. Writers put all whens
/// first, or alternate them either way round, so whichever side runs ahead waits in a queue
/// (at most one of the two queues holds anything).
#[derive(Default)]
struct Track {
    depth: usize,
    seq: Sequence,
    whens: SpillQueue,
    /// `(lon, lat, alt)` of coords still waiting for their `<when>`.
    coords: SpillQueue,
    whens_seen: u64,
    coords_seen: u64,
}

impl Track {
    /// Hand the first gx:coord still waiting for its `<when>` to `emitter` with the time
    /// `when`; `None` if none waits.
    #[inline(always)]
    fn pop_coord(
        &mut self,
        emitter: &mut Emitter<'_>,
        when: &str,
    ) -> Result<Option<Result<(), Error>>, Error> {
        let seq = &mut self.seq;
        self.coords
            .pop(|mut f| {
                let mut next = || utf8_or_empty(f.next().unwrap_or_default());
                let (lon, lat, alt) = (next(), next(), next());
                emitter.vertex(seq, lon, lat, alt, when, "")
            })
            .map_err(|e| Error::new(ErrorKind::Io(e), None))
    }
}

struct Location {
    depth: usize,
    values: [Option<String>; 3],
}

struct Document<'s> {
    emitter: Emitter<'s>,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    open: OpenElements,
    root_seen: bool,
    /// Depth of the open `<coordinates>` element; everything inside it is its text.
    coordinates: Option<usize>,
    coord_seq: Sequence,
    tokenizer: Tokenizer,
    /// Offset where the current `<coordinates>` text piece starts, for the tokenizer.
    capture: Option<(Capture, usize)>,
    captured: String,
    capture_truncated: bool,
    /// The start of a character the last captured piece ended in: a piece of text ends where
    /// the buffer does, which may be inside a character.
    capture_carry: Vec<u8>,
    track: Option<Track>,
    /// Sequence of `<coord>` elements outside a Track, keyed by the depth of their parent.
    stray: Option<(usize, Sequence)>,
    location: Option<Location>,
    location_seq: Sequence,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last text piece.
    utf8_carry: Vec<u8>,
    /// The tag being read by [`Document::read_tag`].
    tag: Vec<u8>,
    /// General entities declared in the document type declaration.
    entities: Vec<(String, EntityKind)>,
    /// A finished Track kept for its queues' allocations.
    spare_track: Option<Track>,
    /// Open Documents and Folders (with [`ReadOptions::attributes`]): depth and name.
    containers: Vec<(usize, Option<String>)>,
    /// The ExtendedData field being read: its name, the depth of its `Data` element, and
    /// whether its value was seen.
    field_name: String,
    field: Option<(usize, bool)>,
}

impl<'s> Document<'s> {
    fn new(sink: &'s mut dyn Sink, options: &ReadOptions) -> Self {
        Document {
            cancel: options.cancel.clone(),
            emitter: Emitter {
                sink,
                strict: options.strict,
                attributes: options.attributes,
                whole_features: options.features,
                keep_geometry: options.features && !options.without_geometry,
                spare_geometry: None,
                features: Vec::new(),
                outside_parts: 0,
                next_feature: 0,
                pending: SpillQueue::new(),
                summary: Summary::default(),
                warnings: Vec::new(),
                error_offset: None,
                last_pair: (0, 0),
                generation: 0,
            },
            open: OpenElements::default(),
            root_seen: false,
            coordinates: None,
            coord_seq: Sequence::default(),
            tokenizer: Tokenizer::new(),
            capture: None,
            captured: String::new(),
            capture_truncated: false,
            capture_carry: Vec::new(),
            track: None,
            stray: None,
            location: None,
            location_seq: Sequence::default(),
            utf8_carry: Vec::new(),
            tag: Vec::new(),
            entities: Vec::new(),
            spare_track: None,
            containers: Vec::new(),
            field_name: String::new(),
            field: None,
        }
    }

    fn depth(&self) -> usize {
        self.open.depth()
    }

    /// An element starts at `at`; the local part of its name starts at `local` in its name.
    /// Inlined into the loop that reads tags in place, like the reading of the tag.
    #[inline(always)]
    fn start(&mut self, element: &BytesStart<'_>, local: usize, at: u64) -> Result<(), Error> {
        let qname = element.name().into_inner();
        let local_at = local;
        let local = &qname[local_at..];
        if self.depth() == 0 {
            if self.root_seen {
                return self.fail_at(at, "content after the root element");
            }
            self.root_seen = true;
        }
        let depth = self.depth() + 1;
        if depth > MAX_DEPTH || self.open.names.len() > MAX_OPEN_NAME_BYTES {
            return self.fail_at(
                at,
                &format!("elements nested too deeply (more than {MAX_DEPTH} levels or {MAX_OPEN_NAME_BYTES} bytes of open element names)"),
            );
        }
        if self.coordinates.is_some() {
            // Everything inside <coordinates> is its text.
            self.open.push(qname, local_at);
            return Ok(());
        }
        // The parent and grandparent are looked up only by the few elements that need them.
        match local {
            "coordinates" => {
                let (geometry, ring) = match (self.open.name(0), self.open.name(1)) {
                    ("LinearRing", "outerBoundaryIs") => ("Polygon", Ring::Outer),
                    ("LinearRing", "innerBoundaryIs") => ("Polygon", Ring::Inner),
                    (parent, _) => (parent, Ring::None),
                };
                self.coord_seq.start(geometry, ring);
                self.coordinates = Some(depth);
            }
            "coord" if self.capture.is_none() => self.begin_capture(Capture::Coord, depth),
            "Track" if self.track.is_none() => {
                let mut track = self.spare_track.take().unwrap_or_default();
                track.depth = depth;
                track.seq.start("Track", Ring::None);
                track.whens_seen = 0;
                track.coords_seen = 0;
                self.track = Some(track);
            }
            "when" if self.track.as_ref().is_some_and(|t| t.depth + 1 == depth) => {
                self.begin_capture(Capture::When, depth)
            }
            "Location" if self.open.name(0) == "Model" && self.location.is_none() => {
                self.location = Some(Location {
                    depth,
                    values: Default::default(),
                });
            }
            "longitude" | "latitude" | "altitude"
                if self.capture.is_none()
                    && self.location.as_ref().is_some_and(|l| l.depth + 1 == depth) =>
            {
                let index = match local {
                    "longitude" => 0,
                    "latitude" => 1,
                    _ => 2,
                };
                self.begin_capture(Capture::Location(index), depth);
            }
            "name"
                if self.capture.is_none()
                    && self
                        .emitter
                        .features
                        .last()
                        .is_some_and(|f| f.depth + 1 == depth && f.name.is_none()) =>
            {
                self.begin_capture(Capture::Name, depth)
            }
            local if is_feature(local) => {
                // A feature nested in a feature is not valid KML; keep rows in document
                // order by writing what the outer one holds back.
                self.emitter.flush_pending()?;
                let ordinal = self.emitter.next_feature;
                self.emitter.next_feature += 1;
                self.emitter.features.push(FeatureScope {
                    ordinal,
                    key: next_identity(),
                    depth,
                    name: None,
                    parts: 0,
                    attributes: Attributes::default(),
                    attribute_bytes: 0,
                    field_names: Default::default(),
                    geometry: self.emitter.spare_geometry.take().unwrap_or_default(),
                });
            }
            _ if self.emitter.attributes => self.start_attribute(element, local, depth),
            _ => {}
        }
        self.open.push(qname, local_at);
        Ok(())
    }

    /// Elements that only matter for [`ReadOptions::attributes`].
    fn start_attribute(&mut self, element: &BytesStart<'_>, local: &str, depth: usize) {
        if matches!(local, "Document" | "Folder") {
            self.containers.push((depth, None));
            return;
        }
        if self.capture.is_some() {
            return;
        }
        let parent = self.open.name(0);
        let grandparent = self.open.name(1);
        if local == "name" {
            if let Some((d, None)) = self.containers.last() {
                if d + 1 == depth {
                    self.begin_capture(Capture::ContainerName, depth);
                }
            }
            return;
        }
        // The rest belongs to the innermost feature.
        let Some(feature_depth) = self.emitter.features.last().map(|f| f.depth) else {
            return;
        };
        let child = feature_depth + 1 == depth;
        let grandchild = feature_depth + 2 == depth;
        let capture = match local {
            "description" if child => Capture::Description,
            "styleUrl" if child => Capture::Style,
            "when" if grandchild && parent == "TimeStamp" => Capture::Timestamp,
            "begin" if grandchild && parent == "TimeSpan" => Capture::Begin,
            "end" if grandchild && parent == "TimeSpan" => Capture::End,
            "Data" if parent == "ExtendedData" => {
                self.field_name = attribute(element, "name");
                self.field = Some((depth, false));
                return;
            }
            "value" if parent == "Data" && self.field.is_some_and(|(d, _)| d + 1 == depth) => {
                Capture::Field
            }
            "SimpleData" if parent == "SchemaData" && grandparent == "ExtendedData" => {
                self.field_name = attribute(element, "name");
                self.field = Some((depth, false));
                Capture::Field
            }
            _ => return,
        };
        self.begin_capture(capture, depth);
    }

    fn begin_capture(&mut self, what: Capture, depth: usize) {
        self.capture = Some((what, depth));
        self.captured.clear();
        self.capture_truncated = false;
        self.capture_carry.clear();
    }

    fn end(&mut self, at: u64) -> Result<(), Error> {
        let depth = self.depth();
        if self.coordinates == Some(depth) {
            self.coordinates = None;
            let mut out = CoordinatesOut {
                emitter: &mut self.emitter,
                seq: &mut self.coord_seq,
            };
            self.tokenizer.finish(&mut out)?;
        } else if self.coordinates.is_none() {
            if let Some((what, d)) = self.capture {
                if d == depth {
                    self.capture = None;
                    self.end_capture(what, at)?;
                }
            }
            if self.track.as_ref().is_some_and(|t| t.depth == depth) {
                self.end_track(at)?;
            }
            if self.location.as_ref().is_some_and(|l| l.depth == depth) {
                self.end_location(at)?;
            }
            if self.stray.as_ref().is_some_and(|(d, _)| *d == depth) {
                self.stray = None;
            }
            if self.field.is_some_and(|(d, _)| d == depth) {
                if let Some((_, false)) = self.field {
                    // A Data without a <value>.
                    self.captured.clear();
                    self.set_field(at)?;
                }
                self.field = None;
            }
            if self
                .emitter
                .features
                .last()
                .is_some_and(|f| f.depth == depth)
            {
                if self.emitter.attributes {
                    let folder = self.folder();
                    if let Some(f) = self.emitter.features.last_mut() {
                        f.attributes.folder = folder;
                    }
                }
                self.emitter.end_feature()?;
            }
            if self.containers.last().is_some_and(|(d, _)| *d == depth) {
                self.containers.pop();
            }
        }
        self.open.pop();
        Ok(())
    }

    fn end_capture(&mut self, what: Capture, at: u64) -> Result<(), Error> {
        if self.capture_truncated {
            self.warn(at, format!("text longer than {MAX_CAPTURE} bytes was cut"))?;
        }
        normalize_newlines(&mut self.captured);
        let text = trim_xml_space(&self.captured);
        match what {
            Capture::Name => {
                let name = text.to_string();
                if let Some(feature) = self.emitter.features.last_mut() {
                    feature.name = Some(name);
                    feature.key = next_identity();
                }
                if !self.emitter.attributes {
                    self.emitter.flush_pending()?;
                }
            }
            Capture::When => {
                let captured = std::mem::take(&mut self.captured);
                let result = self.track_when(trim_xml_space(&captured));
                self.captured = captured;
                result?
            }
            Capture::Location(i) => {
                if let Some(location) = &mut self.location {
                    if location.values[i].is_none() {
                        location.values[i] = Some(text.to_string());
                    }
                }
            }
            Capture::Coord => self.end_coord(at)?,
            Capture::ContainerName => {
                if let Some((_, name)) = self.containers.last_mut() {
                    *name = Some(text.to_string());
                }
            }
            Capture::Field => {
                let (start, end) = (
                    text.as_ptr() as usize - self.captured.as_ptr() as usize,
                    text.len(),
                );
                self.captured.truncate(start + end);
                self.captured.drain(..start);
                self.set_field(at)?;
            }
            Capture::Description
            | Capture::Style
            | Capture::Timestamp
            | Capture::Begin
            | Capture::End => {
                if let Some(f) = self.emitter.features.last_mut() {
                    let a = &mut f.attributes;
                    let slot = match what {
                        Capture::Description => &mut a.description,
                        Capture::Style => &mut a.style,
                        Capture::Timestamp => &mut a.timestamp,
                        Capture::Begin => &mut a.begin,
                        _ => &mut a.end,
                    };
                    if slot.is_empty() {
                        slot.push_str(text);
                        f.attribute_bytes += text.len();
                    }
                }
                self.check_feature_text(at)?;
            }
        }
        Ok(())
    }

    /// Record the ExtendedData field being read, with `captured` as its value; the first of
    /// two fields with the same name wins.
    fn set_field(&mut self, at: u64) -> Result<(), Error> {
        if let Some((_, seen)) = &mut self.field {
            if *seen {
                return Ok(());
            }
            *seen = true;
        }
        let Some(f) = self.emitter.features.last_mut() else {
            return Ok(());
        };
        let data = &mut f.attributes.data;
        // A feature with a hundred thousand fields is an attack, not a mistake: each field
        // must be found in constant time, not by a look at all the others.
        let known = if data.len() < INDEXED_FIELDS {
            data.iter().any(|(name, _)| *name == self.field_name)
        } else {
            if f.field_names.is_empty() {
                f.field_names = data.iter().map(|(name, _)| name.clone()).collect();
            }
            !f.field_names.insert(self.field_name.clone())
        };
        if !known {
            f.attribute_bytes += self.field_name.len() + self.captured.len() + FIELD_COST;
            data.push((self.field_name.clone(), self.captured.clone()));
        }
        self.check_feature_text(at)
    }

    /// Fail the file when the innermost feature's descriptive data exceeds
    /// [`MAX_FEATURE_TEXT`].
    fn check_feature_text(&mut self, at: u64) -> Result<(), Error> {
        match self.emitter.features.last() {
            Some(f) if f.attribute_bytes > MAX_FEATURE_TEXT => {
                let message = format!(
                    "feature {} carries more than {} MiB of descriptive data (description, \
                     times, style, ExtendedData fields at their text plus {FIELD_COST} bytes \
                     each); kml2csv holds a feature's fields in memory until its end",
                    f.ordinal,
                    MAX_FEATURE_TEXT >> 20
                );
                self.emitter.error_offset = Some(at);
                Err(Error::new(ErrorKind::TooLarge(message), None))
            }
            _ => Ok(()),
        }
    }

    /// The names of the open Documents and Folders, outermost first, joined with `/`.
    fn folder(&self) -> String {
        let mut path = String::new();
        for name in self.containers.iter().filter_map(|(_, n)| n.as_deref()) {
            if name.is_empty() {
                continue;
            }
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(name);
        }
        path
    }

    /// The text of a `<when>` of the Track being read (normalised and trimmed): paired with
    /// the first gx:coord still waiting for one, or queued until its gx:coord comes.
    fn track_when(&mut self, text: &str) -> Result<(), Error> {
        let Some(track) = &mut self.track else {
            return Ok(());
        };
        track.whens_seen += 1;
        match track.pop_coord(&mut self.emitter, text)? {
            Some(result) => result,
            None => track
                .whens
                .push(&[text.as_bytes()])
                .map_err(|e| Error::new(ErrorKind::Io(e), None)),
        }
    }

    fn end_coord(&mut self, at: u64) -> Result<(), Error> {
        let captured = std::mem::take(&mut self.captured);
        // Nearly every gx:coord is two or three plain numbers; finding them with a few mask
        // operations costs less than splitting the text and checking each word.
        let quick = quick_words(&captured);
        let result = self.coord_words(at, self.depth() - 1, &captured, quick);
        self.captured = captured;
        result
    }

    /// The text of a gx:coord (its newlines normalised) whose parent is at `parent_depth`,
    /// with what [`quick_words`] found in it; the element ends at `at`.
    #[inline(always)]
    fn coord_words(
        &mut self,
        at: u64,
        parent_depth: usize,
        text: &str,
        quick: Option<(&str, &str, &str)>,
    ) -> Result<(), Error> {
        match quick {
            Some((lon, lat, alt)) => self.coord_vertex(parent_depth, lon, lat, alt),
            None => self.any_coord(at, parent_depth, text),
        }
    }

    /// [`Document::end_coord`] for every text.
    #[inline(never)]
    fn any_coord(&mut self, at: u64, parent_depth: usize, captured: &str) -> Result<(), Error> {
        let values: [Option<&str>; 4] = {
            let mut parts = xml_words(captured);
            [parts.next(), parts.next(), parts.next(), parts.next()]
        };
        match values {
            [None, ..] => self.warn(at, "empty gx:coord".into()),
            [Some(one), None, ..] => self.warn(at, format!("gx:coord {one:?} has one value only")),
            [Some(lon), Some(lat), alt, _] => {
                let alt = alt.unwrap_or("");
                if !is_number(lon.as_bytes())
                    || !is_number(lat.as_bytes())
                    || !(alt.is_empty() || is_number(alt.as_bytes()))
                {
                    self.warn(
                        at,
                        format!("gx:coord {:?} skipped: not a number", captured.trim()),
                    )
                } else {
                    self.coord_vertex(parent_depth, lon, lat, alt)
                }
            }
        }
    }

    /// A gx:coord's values: paired with the Track's next `<when>`, or queued until it comes.
    fn coord_vertex(
        &mut self,
        parent_depth: usize,
        lon: &str,
        lat: &str,
        alt: &str,
    ) -> Result<(), Error> {
        match &mut self.track {
            Some(track) if track.depth == parent_depth => {
                track.coords_seen += 1;
                let emitter = &mut self.emitter;
                let seq = &mut track.seq;
                let paired = track
                    .whens
                    .pop(|mut f| {
                        emitter.vertex(
                            seq,
                            lon,
                            lat,
                            alt,
                            utf8_or_empty(f.next().unwrap_or_default()),
                            "",
                        )
                    })
                    .map_err(|e| Error::new(ErrorKind::Io(e), None))?;
                match paired {
                    Some(result) => result,
                    // Its <when> may still come.
                    None => track
                        .coords
                        .push(&[lon.as_bytes(), lat.as_bytes(), alt.as_bytes()])
                        .map_err(|e| Error::new(ErrorKind::Io(e), None)),
                }
            }
            _ => {
                if self.stray.as_ref().is_none_or(|(d, _)| *d != parent_depth) {
                    let mut seq = Sequence::default();
                    // The parent's name, whether or not the gx:coord is still open.
                    seq.start(self.open.name(self.depth() - parent_depth), Ring::None);
                    self.stray = Some((parent_depth, seq));
                }
                let (_, seq) = self.stray.as_mut().expect("set above");
                self.emitter.vertex(seq, lon, lat, alt, "", "")
            }
        }
    }

    fn end_track(&mut self, at: u64) -> Result<(), Error> {
        let Some(mut track) = self.track.take() else {
            return Ok(());
        };
        if track.whens_seen > 0 && track.whens_seen != track.coords_seen {
            self.warn(
                at,
                format!(
                    "gx:Track has {} <when> but {} <gx:coord>; timestamps paired in order",
                    track.whens_seen, track.coords_seen
                ),
            )?;
        }
        // Coords that never got a <when>.
        while let Some(result) = track.pop_coord(&mut self.emitter, "")? {
            result?;
        }
        track.whens.clear();
        self.spare_track = Some(track);
        Ok(())
    }

    fn end_location(&mut self, at: u64) -> Result<(), Error> {
        let Some(location) = self.location.take() else {
            return Ok(());
        };
        let [lon, lat, alt] = location.values.map(Option::unwrap_or_default);
        if lon.is_empty() && lat.is_empty() {
            return Ok(());
        }
        if lon.is_empty() || lat.is_empty() {
            // Like a tuple without one: a row with an empty latitude, or the WKT
            // `POINT (8.5 )`, is rejected by every tool that loads it.
            let missing = if lon.is_empty() {
                "no longitude"
            } else {
                "no latitude"
            };
            return self.warn(
                at,
                format!("Model Location {lon:?},{lat:?},{alt:?} skipped: {missing}"),
            );
        }
        if [&lon, &lat, &alt]
            .iter()
            .any(|v| !v.is_empty() && !is_number(v.as_bytes()))
        {
            return self.warn(
                at,
                format!("Model Location {lon:?},{lat:?},{alt:?} skipped: not a number"),
            );
        }
        self.location_seq.start("Model", Ring::None);
        self.emitter
            .vertex(&mut self.location_seq, &lon, &lat, &alt, "", "")
    }

    fn warn(&mut self, offset: u64, message: String) -> Result<(), Error> {
        self.emitter.warn(offset, message)
    }
}

/// The names of the open elements, innermost last, in one reused string: the qualified name
/// is what an end tag must repeat, the local name what the reader matches on.
#[derive(Default)]
struct OpenElements {
    names: String,
    /// For name `i`: where it ends in `names`, and where its local part starts.
    ends: Vec<(usize, usize)>,
}

impl OpenElements {
    fn depth(&self) -> usize {
        self.ends.len()
    }

    /// The open element `up` levels above the innermost (0 = innermost): its qualified name
    /// and where the local part starts in it. Inlined: every end tag asks for the innermost.
    #[inline]
    fn get(&self, up: usize) -> Option<(&str, usize)> {
        let n = self.ends.len();
        if up >= n {
            return None;
        }
        let i = n - 1 - up;
        let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
        let (end, local) = self.ends[i];
        Some((&self.names[start..end], local - start))
    }

    /// Local name of the open element `up` levels above the innermost (0 = innermost).
    fn name(&self, up: usize) -> &str {
        self.get(up).map_or("", |(qname, local)| &qname[local..])
    }

    /// Qualified name of the innermost open element.
    fn innermost(&self) -> Option<&str> {
        self.get(0).map(|(qname, _)| qname)
    }

    /// Open `qname`, whose local part starts at `local`.
    fn push(&mut self, qname: &str, local: usize) {
        let local = self.names.len() + local;
        self.names.push_str(qname);
        self.ends.push((self.names.len(), local));
    }

    fn pop(&mut self) {
        self.ends.pop();
        self.names
            .truncate(self.ends.last().map_or(0, |&(end, _)| end));
    }
}

/// The tokenizer's view of the emitter while a `<coordinates>` element is open.
struct CoordinatesOut<'a, 's> {
    emitter: &'a mut Emitter<'s>,
    seq: &'a mut Sequence,
}

impl TupleOut for CoordinatesOut<'_, '_> {
    #[inline(always)]
    fn tuple(&mut self, lon: &str, lat: &str, alt: &str, text: &str) -> Result<(), Error> {
        self.emitter.vertex(self.seq, lon, lat, alt, "", text)
    }

    #[inline(always)]
    fn tuples(&mut self, run: &[Tuple<'_>]) -> Result<(), Error> {
        self.emitter.vertices(self.seq, run)
    }

    fn skipped(&mut self, at: u64, why: String) -> Result<(), Error> {
        self.emitter.warn(at, why)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntityKind {
    /// Its replacement text is in the DTD.
    Internal,
    /// `SYSTEM` or `PUBLIC`: its text would have to be fetched.
    External,
}

/// The general entities declared in a document type declaration (`<!ENTITY name ...>`);
/// parameter entities (`<!ENTITY % name ...>`) are only used inside the DTD and are ignored.
fn declared_entities(doctype: &str) -> Vec<(String, EntityKind)> {
    let mut found = Vec::new();
    let mut rest = doctype;
    while let Some(i) = rest.find("<!ENTITY") {
        rest = rest[i + "<!ENTITY".len()..].trim_start();
        if rest.starts_with('%') {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '>')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let definition = rest[end..].trim_start();
        let kind = if definition.starts_with("SYSTEM") || definition.starts_with("PUBLIC") {
            EntityKind::External
        } else {
            EntityKind::Internal
        };
        if !name.is_empty() && !found.iter().any(|(n, _)| n == name) {
            found.push((name.to_string(), kind));
        }
    }
    found
}

/// The value of attribute `key`, unescaped; empty if missing or malformed.
fn attribute(element: &BytesStart<'_>, key: &str) -> String {
    match element.try_get_attribute(key) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

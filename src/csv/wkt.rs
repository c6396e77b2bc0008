//! The WKT geometry of a whole feature, for `--rows features`.
//!
//! Exists so that one row per feature can be loaded as it is by PostGIS (`ST_GeomFromText`),
//! QGIS or `ogr2ogr`. The coordinate sequences the reader reports (a [`Geometry`]) become:
//!
//! - `Point` and `Model`: a point per tuple;
//! - `LineString`, `LinearRing`, gx:`Track` and coordinates of any other element: a line string
//!   (a point when it has a single tuple: a one-point line is invalid WKT);
//! - polygon rings (`ring` outer or inner): an outer ring starts a polygon and the inner rings
//!   after it are its holes; `LatLonQuad`: a polygon of its four corners. Rings are closed by
//!   repeating their first tuple when the KML left them open;
//! - one geometry is written as it is; several of one kind as `MULTIPOINT`,
//!   `MULTILINESTRING` or `MULTIPOLYGON`; a mix as a `GEOMETRYCOLLECTION`;
//! - `Z` when any tuple has an altitude; a tuple without one is then given altitude `0`;
//! - nothing (an empty string) for a feature without coordinates.
//!
//! Numbers are the KML's text in canonical form, as in the other columns, or with
//! `--numbers verbatim` as written, except that a leading `+` is always dropped: GDAL (and so
//! `ogr2ogr` and QGIS) rejects `POINT (+8.5 47)`.
//!
//! A feature's geometry can be far larger than memory (one LineString of ten million
//! vertices), so the WKT is written as a stream: a first read through the [`Geometry`] decides
//! its shape (single, `MULTI…` or `GEOMETRYCOLLECTION`, with or without `Z`), a second one
//! writes it, holding no more than a tuple or two at a time.

use std::io::{self, Write};

use super::number::{self, Numbers};

use crate::kml::{Geometry, GeometryItem, Ring};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Point,
    Line,
    Polygon,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Point => "POINT",
            Kind::Line => "LINESTRING",
            Kind::Polygon => "POLYGON",
        }
    }
}

/// What a part becomes, as far as its start tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// An inner ring: a hole of the polygon before it, or (without one) a polygon of its own.
    Hole,
    /// An outer ring or a LatLonQuad: a new polygon.
    Polygon,
    /// `Point` and `Model`: a point per tuple.
    Points,
    /// Anything else: a line string, or a point if it has a single tuple.
    Line,
}

fn class(geometry: &str, ring: Ring) -> Class {
    match (ring, geometry) {
        (Ring::Inner, _) => Class::Hole,
        (Ring::Outer, _) | (_, "LatLonQuad") => Class::Polygon,
        (_, "Point" | "Model") => Class::Points,
        _ => Class::Line,
    }
}

/// The shape of the whole WKT, from the first read.
#[derive(Debug, Default)]
struct Shape {
    z: bool,
    /// Geometries counted up to 2.
    count: u8,
    first: Option<Kind>,
    all_same: bool,
    last: Option<Kind>,
}

impl Shape {
    fn of(geometry: &Geometry) -> io::Result<Shape> {
        let mut shape = Shape {
            all_same: true,
            ..Shape::default()
        };
        let mut part: Option<(Class, u8)> = None;
        geometry.visit(&mut |item| {
            match item {
                GeometryItem::Part { geometry, ring } => {
                    if let Some(done) = part.take() {
                        shape.end_part(done);
                    }
                    part = Some((class(geometry, ring), 0));
                }
                GeometryItem::Tuple(t) => {
                    shape.z |= !t[2].is_empty();
                    if let Some((Class::Points, _)) = part {
                        shape.add(Kind::Point);
                    } else if let Some((_, tuples)) = &mut part {
                        *tuples = tuples.saturating_add(1);
                    }
                }
            }
            Ok(())
        })?;
        if let Some(done) = part {
            shape.end_part(done);
        }
        Ok(shape)
    }

    fn end_part(&mut self, (class, tuples): (Class, u8)) {
        match class {
            Class::Hole if self.last == Some(Kind::Polygon) => {}
            Class::Hole | Class::Polygon => self.add(Kind::Polygon),
            Class::Points => {}
            Class::Line if tuples == 1 => self.add(Kind::Point),
            Class::Line => self.add(Kind::Line),
        }
    }

    fn add(&mut self, kind: Kind) {
        match self.first {
            None => self.first = Some(kind),
            Some(first) => self.all_same &= first == kind,
        }
        self.count = self.count.saturating_add(1).min(2);
        self.last = Some(kind);
    }
}

/// How the geometries of a feature are put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    Multi,
    Collection,
}

/// How much WKT is gathered before it is handed to the output.
const FLUSH: usize = 64 * 1024;

type Tuple = [String; 3];

fn keep(slot: &mut Tuple, t: [&str; 3]) {
    for (s, v) in slot.iter_mut().zip(t) {
        s.clear();
        s.push_str(v);
    }
}

fn borrow(t: &Tuple) -> [&str; 3] {
    [&t[0], &t[1], &t[2]]
}

/// Write the WKT of a feature made of `geometry` to `out` (nothing for no coordinates), its
/// numbers in canonical text (see [`Numbers`]).
pub fn write(geometry: &Geometry, out: &mut dyn Write) -> io::Result<()> {
    write_numbers(geometry, out, Numbers::Canonical)
}

/// [`write()`], the numbers as `numbers` asks (a leading `+` is dropped either way).
pub fn write_numbers(geometry: &Geometry, out: &mut dyn Write, numbers: Numbers) -> io::Result<()> {
    let shape = Shape::of(geometry)?;
    let Some(first) = shape.first else {
        return Ok(());
    };
    let mode = match (shape.count, shape.all_same) {
        (1, _) => Mode::Single,
        (_, true) => Mode::Multi,
        _ => Mode::Collection,
    };
    let mut w = Writer {
        buf: Vec::with_capacity(FLUSH + 1024),
        out,
        z: shape.z,
        numbers,
        mode,
        written: 0,
        polygon_open: false,
        part: None,
        tuples: 0,
        first: Tuple::default(),
        last: Tuple::default(),
    };
    match mode {
        Mode::Single => {}
        Mode::Multi => {
            w.tag(&format!("MULTI{}", first.tag()));
            w.buf.push(b'(');
        }
        Mode::Collection => {
            w.tag("GEOMETRYCOLLECTION");
            w.buf.push(b'(');
        }
    }
    geometry.visit(&mut |item| match item {
        GeometryItem::Part { geometry, ring } => {
            w.end_part();
            w.start_part(class(geometry, ring));
            Ok(())
        }
        GeometryItem::Tuple(t) => w.tuple(t),
    })?;
    w.end_part();
    w.close_polygon();
    if mode != Mode::Single {
        w.buf.push(b')');
    }
    w.out.write_all(&w.buf)
}

struct Writer<'a> {
    buf: Vec<u8>,
    out: &'a mut dyn Write,
    z: bool,
    numbers: Numbers,
    mode: Mode,
    /// Geometries begun so far.
    written: u64,
    /// A polygon was begun and may still get holes.
    polygon_open: bool,
    /// The part being written, and how many of its tuples were seen.
    part: Option<Class>,
    tuples: u64,
    /// The part's first tuple (a ring is closed with it; a line waits to know whether it has
    /// a second one) and its last (to see whether a ring is closed).
    first: Tuple,
    last: Tuple,
}

impl Writer<'_> {
    fn tag(&mut self, tag: &str) {
        self.buf.extend_from_slice(tag.as_bytes());
        self.buf
            .extend_from_slice(if self.z { b" Z " } else { b" " });
    }

    /// Start a geometry: end an open polygon, separate it from the one before, tag it unless
    /// the collection is a `MULTI…` one.
    fn begin(&mut self, kind: Kind) {
        self.close_polygon();
        if self.written > 0 {
            self.buf.extend_from_slice(b", ");
        }
        self.written += 1;
        if self.mode != Mode::Multi {
            self.tag(kind.tag());
        }
    }

    fn close_polygon(&mut self) {
        if self.polygon_open {
            self.buf.push(b')');
            self.polygon_open = false;
        }
    }

    fn start_part(&mut self, class: Class) {
        self.part = Some(class);
        self.tuples = 0;
        match class {
            Class::Hole if self.polygon_open => {
                self.buf.extend_from_slice(b", (");
            }
            Class::Hole | Class::Polygon => {
                self.begin(Kind::Polygon);
                self.buf.extend_from_slice(b"((");
                self.polygon_open = true;
            }
            Class::Points | Class::Line => {}
        }
    }

    fn tuple(&mut self, t: [&str; 3]) -> io::Result<()> {
        let n = self.tuples;
        self.tuples += 1;
        match self.part {
            Some(Class::Points) => {
                self.begin(Kind::Point);
                self.buf.push(b'(');
                self.coordinates(t);
                self.buf.push(b')');
            }
            Some(Class::Line) if n == 0 => keep(&mut self.first, t),
            Some(Class::Line) => {
                if n == 1 {
                    self.begin(Kind::Line);
                    self.buf.push(b'(');
                    let first = std::mem::take(&mut self.first);
                    self.coordinates(borrow(&first));
                    self.first = first;
                }
                self.buf.extend_from_slice(b", ");
                self.coordinates(t);
            }
            Some(Class::Hole | Class::Polygon) => {
                if n == 0 {
                    keep(&mut self.first, t);
                } else {
                    self.buf.extend_from_slice(b", ");
                }
                keep(&mut self.last, t);
                self.coordinates(t);
            }
            None => {}
        }
        if self.buf.len() >= FLUSH {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn end_part(&mut self) {
        match self.part.take() {
            Some(Class::Line) if self.tuples == 1 => {
                self.begin(Kind::Point);
                self.buf.push(b'(');
                let first = std::mem::take(&mut self.first);
                self.coordinates(borrow(&first));
                self.first = first;
                self.buf.push(b')');
            }
            Some(Class::Line) if self.tuples > 1 => self.buf.push(b')'),
            Some(Class::Hole | Class::Polygon) => {
                if !same_position(&self.first, &self.last) {
                    self.buf.extend_from_slice(b", ");
                    let first = std::mem::take(&mut self.first);
                    self.coordinates(borrow(&first));
                    self.first = first;
                }
                self.buf.push(b')');
            }
            _ => {}
        }
    }

    fn coordinates(&mut self, t: [&str; 3]) {
        number::push(&mut self.buf, unsigned(t[0]).as_bytes(), self.numbers);
        self.buf.push(b' ');
        number::push(&mut self.buf, unsigned(t[1]).as_bytes(), self.numbers);
        if self.z {
            let altitude = if t[2].is_empty() { "0" } else { unsigned(t[2]) };
            self.buf.push(b' ');
            number::push(&mut self.buf, altitude.as_bytes(), self.numbers);
        }
    }
}

/// `number` without a leading `+`.
fn unsigned(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

/// Whether two tuples are the same position (`1.0` equals `1`): a ring is closed then.
fn same_position(a: &Tuple, b: &Tuple) -> bool {
    let number = |s: &str| {
        if s.is_empty() {
            Some(0.0)
        } else {
            s.parse::<f64>().ok()
        }
    };
    a.iter().zip(b).all(|(x, y)| match (number(x), number(y)) {
        (Some(x), Some(y)) => x == y,
        _ => x == y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kml::Part;

    fn part(geometry: &str, ring: Ring, tuples: &[&str]) -> Part {
        Part {
            geometry: geometry.into(),
            ring,
            tuples: tuples
                .iter()
                .map(|t| {
                    let mut v = t.split(',').map(str::to_owned);
                    [
                        v.next().unwrap_or_default(),
                        v.next().unwrap_or_default(),
                        v.next().unwrap_or_default(),
                    ]
                })
                .collect(),
        }
    }

    fn wkt(parts: &[Part]) -> String {
        let mut out = Vec::new();
        write(&Geometry::from_parts(parts).unwrap(), &mut out).unwrap();
        // The same, streamed from a geometry that lives in a temporary file.
        let mut spilled = Vec::new();
        let geometry = Geometry::from_parts_spilling(parts, 0).unwrap();
        assert!(parts.is_empty() || !geometry.in_memory());
        write(&geometry, &mut spilled).unwrap();
        assert_eq!(out, spilled);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_geometries() {
        assert_eq!(wkt(&[]), "");
        assert_eq!(wkt(&[part("Point", Ring::None, &["1,2"])]), "POINT (1 2)");
        assert_eq!(
            wkt(&[part("Point", Ring::None, &["+008.50,1e-3,3"])]),
            "POINT Z (8.50 1e-3 3)"
        );
        // Verbatim numbers still lose the `+` GDAL rejects.
        let mut verbatim = Vec::new();
        let parts = [part("Point", Ring::None, &["+008.50,.5"])];
        write_numbers(
            &Geometry::from_parts(&parts).unwrap(),
            &mut verbatim,
            Numbers::Verbatim,
        )
        .unwrap();
        assert_eq!(verbatim, b"POINT (008.50 .5)");
        assert_eq!(
            wkt(&[part("Track", Ring::None, &["1,2,5", "3,4"])]),
            "LINESTRING Z (1 2 5, 3 4 0)"
        );
        assert_eq!(
            wkt(&[part("LineString", Ring::None, &["1,2"])]),
            "POINT (1 2)"
        );
    }

    #[test]
    fn polygon_with_hole_and_closing() {
        let parts = [
            part(
                "Polygon",
                Ring::Outer,
                &["0,0", "10,0", "10,10", "0,10", "0,0"],
            ),
            part("Polygon", Ring::Inner, &["1,1", "2,1", "2,2"]),
        ];
        assert_eq!(
            wkt(&parts),
            "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))"
        );
        assert_eq!(
            wkt(&[part(
                "LatLonQuad",
                Ring::None,
                &["0,0", "1,0", "1,1", "0,1"]
            )]),
            "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"
        );
        // 1.0 and 1 are the same position: no extra closing tuple.
        assert_eq!(
            wkt(&[part(
                "Polygon",
                Ring::Outer,
                &["1,0", "2,0", "2,2", "1.0,0.0"]
            )]),
            "POLYGON ((1 0, 2 0, 2 2, 1.0 0.0))"
        );
    }

    /// See: issue 17 (3): a whole feature's WKT used to be built from strings in memory.
    #[test]
    fn holes_points_and_lines_mixed_in_every_order() {
        let hole = part("Polygon", Ring::Inner, &["1,1", "2,1", "2,2"]);
        assert_eq!(
            wkt(std::slice::from_ref(&hole)),
            "POLYGON ((1 1, 2 1, 2 2, 1 1))"
        );
        let parts = [
            part("Point", Ring::None, &["9,9"]),
            hole.clone(),
            hole.clone(),
            part("LineString", Ring::None, &["7,7"]),
            part("Polygon", Ring::Outer, &["0,0", "1,0", "0,0"]),
            hole,
            part("Model", Ring::None, &["3,4", "5,6"]),
            part("Track", Ring::None, &["1,2", "3,4,5"]),
        ];
        assert_eq!(
            wkt(&parts),
            "GEOMETRYCOLLECTION Z (POINT Z (9 9 0), \
             POLYGON Z ((1 1 0, 2 1 0, 2 2 0, 1 1 0), (1 1 0, 2 1 0, 2 2 0, 1 1 0)), \
             POINT Z (7 7 0), \
             POLYGON Z ((0 0 0, 1 0 0, 0 0 0), (1 1 0, 2 1 0, 2 2 0, 1 1 0)), \
             POINT Z (3 4 0), POINT Z (5 6 0), LINESTRING Z (1 2 0, 3 4 5))"
        );
        let lines = [
            part("LineString", Ring::None, &["1,2", "3,4"]),
            part("LineString", Ring::None, &["5,6", "7,8", "9,10"]),
        ];
        assert_eq!(
            wkt(&lines),
            "MULTILINESTRING ((1 2, 3 4), (5 6, 7 8, 9 10))"
        );
    }

    #[test]
    fn multi_and_collections() {
        let points = [
            part("Point", Ring::None, &["1,2"]),
            part("Point", Ring::None, &["3,4"]),
        ];
        assert_eq!(wkt(&points), "MULTIPOINT ((1 2), (3 4))");
        let polygons = [
            part("Polygon", Ring::Outer, &["0,0", "1,0", "1,1", "0,0"]),
            part("Polygon", Ring::Outer, &["5,5", "6,5", "6,6", "5,5"]),
            part(
                "Polygon",
                Ring::Inner,
                &["5.1,5.1", "5.2,5.1", "5.2,5.2", "5.1,5.1"],
            ),
        ];
        assert_eq!(
            wkt(&polygons),
            "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5), \
             (5.1 5.1, 5.2 5.1, 5.2 5.2, 5.1 5.1)))"
        );
        let mixed = [
            part("Point", Ring::None, &["1,2,3"]),
            part("LineString", Ring::None, &["1,2", "3,4"]),
        ];
        assert_eq!(
            wkt(&mixed),
            "GEOMETRYCOLLECTION Z (POINT Z (1 2 3), LINESTRING Z (1 2 0, 3 4 0))"
        );
    }
}

//! The WKT geometry of a whole feature, for `--rows features`.
//!
//! Exists so that one row per feature can be loaded as it is by PostGIS (`ST_GeomFromText`),
//! QGIS or `ogr2ogr`. The coordinate sequences the reader reports ([`Part`]s) become:
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
//! Numbers are copied verbatim from the KML, except that a leading `+` is dropped: GDAL (and so
//! `ogr2ogr` and QGIS) rejects `POINT (+8.5 47)`.

use std::fmt::Write;

use crate::kml::{Part, Ring};

type Tuple = [String; 3];

enum Geometry<'a> {
    Point(&'a Tuple),
    Line(&'a [Tuple]),
    /// Rings, the first one the shell; each ring closed on writing.
    Polygon(Vec<&'a [Tuple]>),
}

impl Geometry<'_> {
    fn tag(&self) -> &'static str {
        match self {
            Geometry::Point(_) => "POINT",
            Geometry::Line(_) => "LINESTRING",
            Geometry::Polygon(_) => "POLYGON",
        }
    }

    fn same_kind(&self, other: &Geometry<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Append the WKT of a feature made of `parts` to `out` (nothing for no coordinates).
pub fn write(parts: &[Part], out: &mut String) {
    let geometries = geometries(parts);
    let Some(first) = geometries.first() else {
        return;
    };
    let z = parts
        .iter()
        .flat_map(|p| &p.tuples)
        .any(|t| !t[2].is_empty());
    let mut w = Writer { out, z };
    if geometries.len() == 1 {
        w.tagged(first);
    } else if geometries.iter().all(|g| g.same_kind(first)) {
        w.tag(&format!("MULTI{}", first.tag()));
        w.out.push('(');
        for (i, g) in geometries.iter().enumerate() {
            if i > 0 {
                w.out.push_str(", ");
            }
            w.body(g);
        }
        w.out.push(')');
    } else {
        w.tag("GEOMETRYCOLLECTION");
        w.out.push('(');
        for (i, g) in geometries.iter().enumerate() {
            if i > 0 {
                w.out.push_str(", ");
            }
            w.tagged(g);
        }
        w.out.push(')');
    }
}

fn geometries(parts: &[Part]) -> Vec<Geometry<'_>> {
    let mut geometries = Vec::new();
    for part in parts {
        let tuples = part.tuples.as_slice();
        if tuples.is_empty() {
            continue;
        }
        match (part.ring, part.geometry.as_str()) {
            (Ring::Inner, _) => match geometries.last_mut() {
                Some(Geometry::Polygon(rings)) => rings.push(tuples),
                // A hole without a shell: the best reading is a polygon of its own.
                _ => geometries.push(Geometry::Polygon(vec![tuples])),
            },
            (Ring::Outer, _) | (_, "LatLonQuad") => {
                geometries.push(Geometry::Polygon(vec![tuples]))
            }
            (_, "Point" | "Model") => geometries.extend(tuples.iter().map(Geometry::Point)),
            _ if tuples.len() == 1 => geometries.push(Geometry::Point(&tuples[0])),
            _ => geometries.push(Geometry::Line(tuples)),
        }
    }
    geometries
}

struct Writer<'a> {
    out: &'a mut String,
    z: bool,
}

impl Writer<'_> {
    fn tag(&mut self, tag: &str) {
        self.out.push_str(tag);
        self.out.push_str(if self.z { " Z " } else { " " });
    }

    fn tagged(&mut self, g: &Geometry<'_>) {
        self.tag(g.tag());
        self.body(g);
    }

    /// The parenthesised coordinates of `g`, without its tag.
    fn body(&mut self, g: &Geometry<'_>) {
        match g {
            Geometry::Point(t) => {
                self.out.push('(');
                self.tuple(t);
                self.out.push(')');
            }
            Geometry::Line(tuples) => self.sequence(tuples, false),
            Geometry::Polygon(rings) => {
                self.out.push('(');
                for (i, ring) in rings.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.sequence(ring, true);
                }
                self.out.push(')');
            }
        }
    }

    fn sequence(&mut self, tuples: &[Tuple], close: bool) {
        self.out.push('(');
        for (i, t) in tuples.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.tuple(t);
        }
        if close {
            if let (Some(first), Some(last)) = (tuples.first(), tuples.last()) {
                if !same_position(first, last) {
                    self.out.push_str(", ");
                    self.tuple(first);
                }
            }
        }
        self.out.push(')');
    }

    fn tuple(&mut self, t: &Tuple) {
        let _ = write!(self.out, "{} {}", unsigned(&t[0]), unsigned(&t[1]));
        if self.z {
            let altitude = if t[2].is_empty() {
                "0"
            } else {
                unsigned(&t[2])
            };
            let _ = write!(self.out, " {altitude}");
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
        let mut out = String::new();
        write(parts, &mut out);
        out
    }

    #[test]
    fn single_geometries() {
        assert_eq!(wkt(&[]), "");
        assert_eq!(wkt(&[part("Point", Ring::None, &["1,2"])]), "POINT (1 2)");
        assert_eq!(
            wkt(&[part("Point", Ring::None, &["+008.50,1e-3,3"])]),
            "POINT Z (008.50 1e-3 3)"
        );
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

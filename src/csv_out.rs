//! The CSV schema: one row per vertex, columns in a fixed order.
//!
//! Numbers are copied verbatim from the KML (no float formatting), so a row is a handful of
//! borrowed byte slices; writing one allocates nothing.

use std::io::{self, Write};

use crate::kml::{Sink, Vertex, Warning, Warnings};

/// The header row, in order.
pub const COLUMNS: [&str; 10] = [
    "feature",
    "name",
    "geometry",
    "part",
    "ring",
    "vertex",
    "longitude",
    "latitude",
    "altitude",
    "when",
];

/// A [`Sink`] that writes each vertex as a CSV row and keeps the warnings for the caller.
pub struct VertexWriter<W: Write> {
    csv: csv::Writer<W>,
    rows: u64,
    warnings: Warnings,
    /// Formatting buffers for the integer columns, reused for every row.
    ints: [itoa_buf::Buf; 3],
}

impl<W: Write> VertexWriter<W> {
    /// Start a CSV on `out` and write the header row.
    pub fn new(out: W) -> io::Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(256 * 1024)
            .from_writer(out);
        csv.write_record(COLUMNS).map_err(into_io)?;
        Ok(VertexWriter {
            csv,
            rows: 0,
            warnings: Warnings::default(),
            ints: Default::default(),
        })
    }

    /// Rows written so far (the header not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Warnings received so far.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// Flush everything and hand back the writer. Errors are reported here, never swallowed
    /// by a drop.
    pub fn finish(self) -> io::Result<(W, Warnings)> {
        let warnings = self.warnings;
        let out = self.csv.into_inner().map_err(|e| e.into_error())?;
        Ok((out, warnings))
    }
}

impl<W: Write> Sink for VertexWriter<W> {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        let [feature, part, vertex] = &mut self.ints;
        let feature: &[u8] = match v.feature {
            Some(n) => feature.format(n),
            None => b"",
        };
        let record: [&[u8]; 10] = [
            feature,
            v.name.as_bytes(),
            v.geometry.as_bytes(),
            part.format(v.part),
            v.ring.as_str().as_bytes(),
            vertex.format(v.vertex),
            v.longitude.as_bytes(),
            v.latitude.as_bytes(),
            v.altitude.as_bytes(),
            v.when.as_bytes(),
        ];
        self.csv.write_record(record).map_err(into_io)?;
        self.rows += 1;
        Ok(())
    }

    fn warning(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }
}

fn into_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A tiny integer formatter: `u64` to decimal ASCII without allocating.
mod itoa_buf {
    #[derive(Default)]
    pub struct Buf([u8; 20]);

    impl Buf {
        pub fn format(&mut self, mut n: u64) -> &[u8] {
            let mut i = self.0.len();
            loop {
                i -= 1;
                self.0[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            &self.0[i..]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kml::Ring;

    fn vertex<'a>(name: &'a str) -> Vertex<'a> {
        Vertex {
            feature: Some(3),
            name,
            geometry: "Point",
            part: 0,
            ring: Ring::None,
            vertex: 10,
            longitude: "+008.50",
            latitude: "1e-3",
            altitude: "",
            when: "",
            attributes: None,
        }
    }

    #[test]
    fn header_and_verbatim_numbers() {
        let mut w = VertexWriter::new(Vec::new()).unwrap();
        w.vertex(&vertex("plain")).unwrap();
        let (out, _) = w.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when\n\
             3,plain,Point,0,,10,+008.50,1e-3,,\n"
        );
    }

    #[test]
    fn hostile_names_are_quoted() {
        let mut w = VertexWriter::new(Vec::new()).unwrap();
        w.vertex(&vertex("a,\"b\"\nc")).unwrap();
        let (out, _) = w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("3,\"a,\"\"b\"\"\nc\",Point,0,,10,+008.50,1e-3,,\n"),
            "{text}"
        );
    }
}

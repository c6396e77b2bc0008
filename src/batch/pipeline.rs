//! Reading a file and writing its CSV on two threads, for when a core would otherwise idle.
//!
//! The batch runs one file per task, which keeps every core busy while there are more files
//! than cores. A lone big file (or the last one of a batch) would use one core only, although
//! formatting and writing the CSV is about as much work as reading the KML. Here the reader
//! runs on a second thread and its vertices are copied into batches and handed back to the
//! thread that owns the real sink, so the two halves overlap. Rows keep their order, so the output is byte-identical.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::csv::SequenceKey;
use crate::kml::{self, Ring, Sink, Summary, Vertex, Warning};

/// Bytes of encoded rows per batch, and batches in flight.
const BATCH: usize = 256 * 1024;
const IN_FLIGHT: usize = 4;

/// Run `read` on another thread with a sink that forwards every vertex and warning, in
/// batches, to `sink` on this thread. Returns what `read` returned and the sink, once every
/// row has reached it. A write error in `sink` stops the reader and is returned as its `Sink`
/// error. The sink stays on the calling thread, so it need not be `Send` (standard output is
/// not).
///
/// Only for plain vertex rows: [`Sink::feature`] calls and [`Vertex::attributes`] are not
/// carried over, so it must not be used with [`kml::ReadOptions::features`] or
/// [`kml::ReadOptions::attributes`].
pub fn read_on_two_threads<S, F>(mut sink: S, read: F) -> (Result<Summary, kml::Error>, S)
where
    S: Sink,
    F: FnOnce(&mut dyn Sink) -> Result<Summary, kml::Error> + Send,
{
    let (to_writer, batches) = sync_channel::<Batch>(IN_FLIGHT);
    let (recycle, spare) = sync_channel::<Batch>(IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut front = Forwarder {
                batch: Batch::default(),
                to_writer,
                spare,
                sequence: SequenceKey::default(),
                sequence_sent: false,
            };
            let mut result = read(&mut front);
            if result.is_ok() {
                if let Err(e) = front.send() {
                    result = Err(kml::Error::new(kml::ErrorKind::Sink(e), None));
                }
            }
            result
        });
        let write_error = write_batches(&mut sink, batches, recycle);
        let mut result = match reader.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if let Some(e) = write_error {
            // The writer's own error says more than "the writer stopped".
            result = Err(kml::Error::new(kml::ErrorKind::Sink(e), None));
        }
        (result, sink)
    })
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
}

/// Record tags. A vertex record carries only what changes from vertex to vertex; the feature,
/// name, geometry, part and ring of the vertices after it are in the last sequence record of
/// the same batch. Sending the name and geometry once per sequence rather than once per row
/// more than halved what the two threads spend on the hand-over.
const VERTEX: u8 = 0;
const WARNING: u8 = 1;
const SEQUENCE: u8 = 2;
/// A vertex record starts with its tag, the vertex number and the lengths of its four texts
/// (longitude, latitude, altitude, time); the texts follow.
const VERTEX_HEAD: usize = 1 + 8 + 4 * 4;

impl Batch {
    fn put_u64(&mut self, n: u64) {
        self.bytes.extend_from_slice(&n.to_le_bytes());
    }

    fn put_str(&mut self, s: &str) {
        self.bytes
            .extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
    }
}

/// Reads a batch back.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.rest.split_first().unwrap_or((&0, &[]));
        self.rest = rest;
        *first
    }

    fn u64(&mut self) -> u64 {
        let (bytes, rest) = self.rest.split_at(8.min(self.rest.len()));
        self.rest = rest;
        u64::from_le_bytes(bytes.try_into().unwrap_or_default())
    }

    fn u32(&mut self) -> usize {
        let (bytes, rest) = self.rest.split_at(4.min(self.rest.len()));
        self.rest = rest;
        u32::from_le_bytes(bytes.try_into().unwrap_or_default()) as usize
    }

    /// A text put in with [`Batch::put_str`].
    fn str(&mut self) -> &'a str {
        let len = self.u32();
        self.text(len)
    }

    /// The next `len` bytes, which are a text put in whole.
    fn text(&mut self, len: usize) -> &'a str {
        let (text, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        // Every string was put in from a `&str` by this module, so it is valid UTF-8; checking
        // it again would cost a pass over every byte of output.
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: see above: the bytes are a copy of a `str`, cut at the same boundaries.
        unsafe { std::str::from_utf8_unchecked(text) }
    }
}

struct Forwarder {
    batch: Batch,
    to_writer: SyncSender<Batch>,
    spare: Receiver<Batch>,
    /// The sequence of the last vertex put in `batch`.
    sequence: SequenceKey,
    /// Whether `batch` holds a sequence record yet: each batch is replayed on its own, so each
    /// starts with one.
    sequence_sent: bool,
}

impl Forwarder {
    fn send(&mut self) -> io::Result<()> {
        if self.batch.bytes.is_empty() {
            return Ok(());
        }
        self.sequence_sent = false;
        let mut next = self.spare.try_recv().unwrap_or_default();
        next.bytes.clear();
        let full = std::mem::replace(&mut self.batch, next);
        self.to_writer
            .send(full)
            .map_err(|_| io::Error::other("the CSV writer stopped"))
    }

    fn maybe_send(&mut self) -> io::Result<()> {
        if self.batch.bytes.len() >= BATCH {
            self.send()?;
        }
        Ok(())
    }
}

impl Sink for Forwarder {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        let b = &mut self.batch;
        if !self.sequence_sent || !self.sequence.holds(v) {
            b.bytes.push(SEQUENCE);
            b.bytes.push(match (v.feature.is_some(), v.ring) {
                (false, Ring::None) => 0,
                (false, Ring::Outer) => 1,
                (false, Ring::Inner) => 2,
                (true, Ring::None) => 4,
                (true, Ring::Outer) => 5,
                (true, Ring::Inner) => 6,
            });
            b.put_u64(v.feature.unwrap_or(0));
            b.put_u64(v.part);
            b.put_u64(v.sequence);
            b.put_str(v.name);
            b.put_str(v.geometry);
            self.sequence.describe(v);
            self.sequence_sent = true;
        }
        // The tag, the number and the four lengths go in as one piece, then the texts: half
        // the appends of putting each on its own, on the thread that has the most to do.
        let texts = [v.longitude, v.latitude, v.altitude, v.when];
        let mut head = [0u8; VERTEX_HEAD];
        head[0] = VERTEX;
        head[1..9].copy_from_slice(&v.vertex.to_le_bytes());
        for (i, text) in texts.iter().enumerate() {
            head[9 + 4 * i..13 + 4 * i].copy_from_slice(&(text.len() as u32).to_le_bytes());
        }
        b.bytes.extend_from_slice(&head);
        for text in texts {
            b.bytes.extend_from_slice(text.as_bytes());
        }
        self.maybe_send()
    }

    fn warning(&mut self, warning: Warning) {
        let b = &mut self.batch;
        b.bytes.push(WARNING);
        match warning.position {
            Some(p) => {
                b.put_u64(p.line);
                b.put_u64(p.column);
            }
            None => {
                b.put_u64(0);
                b.put_u64(0);
            }
        }
        b.put_str(&warning.message);
        // A failed send shows at the next vertex or at the end.
        let _ = self.maybe_send();
    }
}

/// The writing side: replay each batch into `sink` until the reader is done or `sink` fails.
fn write_batches<S: Sink>(
    sink: &mut S,
    batches: Receiver<Batch>,
    recycle: SyncSender<Batch>,
) -> Option<io::Error> {
    for batch in batches {
        if let Err(e) = replay(&batch.bytes, sink) {
            // Dropping the receiver makes the reader's next send fail, which stops it.
            return Some(e);
        }
        let _ = recycle.try_send(batch);
    }
    None
}

fn replay(bytes: &[u8], sink: &mut dyn Sink) -> io::Result<()> {
    let mut c = Cursor { rest: bytes };
    // The last sequence record: feature, part, ring, name, geometry, its number.
    let mut sequence = (None, 0, Ring::None, "", "", 0);
    while !c.rest.is_empty() {
        match c.u8() {
            SEQUENCE => {
                let flags = c.u8();
                let ring = match flags & 3 {
                    1 => Ring::Outer,
                    2 => Ring::Inner,
                    _ => Ring::None,
                };
                let feature = c.u64();
                let part = c.u64();
                let id = c.u64();
                let (name, geometry) = (c.str(), c.str());
                sequence = (
                    (flags & 4 != 0).then_some(feature),
                    part,
                    ring,
                    name,
                    geometry,
                    id,
                );
            }
            VERTEX => {
                let vertex = c.u64();
                let lengths = [c.u32(), c.u32(), c.u32(), c.u32()];
                let [longitude, latitude, altitude, when] = lengths.map(|n| c.text(n));
                let (feature, part, ring, name, geometry, id) = sequence;
                sink.vertex(&Vertex {
                    feature,
                    name,
                    geometry,
                    part,
                    ring,
                    vertex,
                    longitude,
                    latitude,
                    altitude,
                    tuple: "",
                    when,
                    attributes: None,
                    sequence: id,
                })?;
            }
            _ => {
                let (line, column) = (c.u64(), c.u64());
                let position = (line > 0).then_some(kml::Position { line, column });
                let message = c.str().to_owned();
                sink.warning(Warning { position, message });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::VertexWriter;
    use crate::kml::ReadOptions;

    fn document() -> String {
        let mut doc = String::from("<kml><Document>");
        for f in 0..2000 {
            doc.push_str(&format!(
                "<Placemark><name>p{f}, \"q\"</name><Polygon><outerBoundaryIs><LinearRing><coordinates>"
            ));
            for v in 0..50 {
                doc.push_str(&format!("{f}.{v},-{v}.5,{v} "));
            }
            doc.push_str("x,y</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>");
        }
        doc.push_str(
            "<gx:Track><when>t</when><gx:coord>1 2</gx:coord></gx:Track></Document></kml>",
        );
        doc
    }

    fn direct(doc: &str) -> (Vec<u8>, kml::Warnings) {
        let mut w = VertexWriter::new(Vec::new()).unwrap();
        kml::read_document(doc.as_bytes(), &mut w, &ReadOptions::default()).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn same_rows_and_warnings_as_one_thread() {
        let doc = document();
        let w = VertexWriter::new(Vec::new()).unwrap();
        let (result, w) = read_on_two_threads(w, |sink| {
            kml::read_document(doc.as_bytes(), sink, &ReadOptions::default())
        });
        let summary = result.unwrap();
        let (out, warnings) = w.finish().unwrap();
        let (expected, expected_warnings) = direct(&doc);
        assert_eq!(summary.vertices, 100_001);
        assert!(out == expected, "the CSV differs");
        assert_eq!(warnings.total(), 2000);
        assert_eq!(warnings, expected_warnings);
    }

    /// Fails after a number of rows, like a full disk.
    struct Failing(u64);

    impl Sink for Failing {
        fn vertex(&mut self, _: &Vertex<'_>) -> io::Result<()> {
            self.0 += 1;
            if self.0 > 1000 {
                return Err(io::Error::other("disk full"));
            }
            Ok(())
        }
        fn warning(&mut self, _: Warning) {}
    }

    #[test]
    fn a_write_error_stops_the_reader_and_is_reported() {
        let doc = document();
        let (result, sink) = read_on_two_threads(Failing(0), |s| {
            kml::read_document(doc.as_bytes(), s, &ReadOptions::default())
        });
        let err = result.unwrap_err();
        assert!(
            matches!(&err.kind, kml::ErrorKind::Sink(e) if e.to_string() == "disk full"),
            "{err}"
        );
        assert_eq!(sink.0, 1001);
    }
}

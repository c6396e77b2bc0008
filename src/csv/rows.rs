//! Writing rows: the [`Sink`] that turns vertices and features into CSV rows of a [`Layout`],
//! with as little work per row as the format allows.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::kml::{
    Attributes, Feature, Geometry, Ring, Sink, Tuple, Vertex, Vertices, Warning, Warnings,
};

use super::number::{self, Numbers};
use super::wkt;
use super::{Column, Dialect, Layout, RowKind, Shape, BOM};

fn builder(dialect: &Dialect, capacity: usize) -> ::csv::WriterBuilder {
    let mut builder = ::csv::WriterBuilder::new();
    builder
        .delimiter(dialect.delimiter)
        .terminator(::csv::Terminator::Any(b'\n'))
        .buffer_capacity(capacity);
    builder
}

/// Write the byte order mark (if asked) and the header row (if asked) of `layout` to `out`.
pub fn write_header<W: Write>(out: &mut W, layout: &Layout, dialect: &Dialect) -> io::Result<()> {
    if dialect.bom {
        out.write_all(BOM)?;
    }
    if dialect.header {
        // A header is short: a big (zeroed) buffer for it cost more than the rows of a small
        // file.
        let mut csv = builder(dialect, 4096).from_writer(out);
        let mut guard = Vec::new();
        for (column, header) in layout.columns.iter().zip(layout.headers()) {
            let field = guarded(
                dialect.formula_guard && column.is_text(),
                &header,
                &mut guard,
            );
            csv.write_field(field).map_err(into_io)?;
        }
        csv.write_record(None::<&[u8]>).map_err(into_io)?;
        csv.flush()?;
    }
    Ok(())
}

/// The text a spreadsheet would run as a formula starts with one of these.
fn is_formula_start(text: &[u8]) -> bool {
    matches!(
        text.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// `text`, or `'text` in `scratch` when the guard is on and `text` looks like a formula.
fn guarded<'a>(guard: bool, text: &'a str, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if guard && is_formula_start(text.as_bytes()) {
        scratch.clear();
        scratch.push(b'\'');
        scratch.extend_from_slice(text.as_bytes());
        scratch
    } else {
        text.as_bytes()
    }
}

/// A [`Sink`] that writes rows of a [`Layout`] and keeps the warnings for the caller.
pub struct RowWriter<W: Write> {
    output: Output<W>,
    layout: Layout,
    rows: RowKind,
    values: Values,
    written: u64,
    warnings: Warnings,
    /// Data columns: field name → the positions in `layout` that show it.
    data_columns: HashMap<String, Vec<usize>>,
    /// The feature `values.data` belongs to.
    data_feature: Option<Option<u64>>,
    /// How a vertex row is assembled from cached and freshly formatted fields.
    steps: Vec<Step>,
    /// `Some(led)` if the per-vertex columns are the standard ones in the standard order, led
    /// by constant columns or not, and maybe followed by some (see [`usual`]).
    usual: Option<bool>,
    cache: SequenceCache,
    /// The field delimiter.
    delimiter: u8,
}

/// Where rows go: assembled by [`FastRows`], or through csv-core for a CSV without columns.
enum Output<W: Write> {
    Csv(Box<::csv::Writer<W>>),
    Fast { out: W, rows: FastRows },
}

/// Rows assembled in a buffer with csv-core's quoting rule, then written to the output in big
/// pieces.
///
/// csv-core looks at every byte of every field through a state machine; in a profile that was
/// a third of a whole conversion, spent mostly on numbers that can never need quotes. Here a
/// field is checked with a table lookup per byte and copied as it is unless it holds the
/// delimiter, a quote, CR or LF, which is exactly when csv-core quotes (with `\n` as the
/// terminator, no comment character, and quotes escaped by doubling). A test checks that the
/// bytes are the same as csv's.
struct FastRows {
    buf: Vec<u8>,
    delimiter: u8,
    /// Non-zero for the bytes that make a field need quotes.
    special: Box<[u8; 256]>,
    /// Whether a number can be written without a look at its bytes. The reader hands on only
    /// what [`crate::kml::is_number`] accepts, which holds no quote, CR or LF; only a
    /// delimiter that is a digit, a sign, `.`, `e` or `E` could turn up in one.
    plain_numbers: bool,
    /// Rows have a single field: an empty one is written `""`, as csv-core does, so that the
    /// row is not an empty line.
    single: bool,
    /// Where the row being assembled starts in `buf` (`usize::MAX` once part of it was
    /// written out).
    row_start: usize,
}

/// How much of a CSV [`FastRows`] gathers before writing it out.
const FAST_FLUSH: usize = 256 * 1024;

impl FastRows {
    fn new(delimiter: u8, width: usize) -> Self {
        let mut special = [0; 256];
        for b in [delimiter, b'"', b'\r', b'\n'] {
            special[usize::from(b)] = 1;
        }
        FastRows {
            buf: Vec::with_capacity(FAST_FLUSH + 4096),
            delimiter,
            special: Box::new(special),
            plain_numbers: !matches!(delimiter, b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E'),
            single: width == 1,
            row_start: 0,
        }
    }

    fn needs_quotes(&self, field: &[u8]) -> bool {
        // One lookup per byte and no early exit: fields are short, and a branch per byte cost
        // more than the bytes.
        field
            .iter()
            .fold(0, |found, &b| found | self.special[usize::from(b)])
            != 0
    }

    /// A field known to hold no special byte unless it is the delimiter (see
    /// [`FastRows::plain_numbers`]).
    #[inline(always)]
    fn number(&mut self, first: bool, number: &[u8]) {
        if !self.plain_numbers {
            return self.field(first, number);
        }
        if !first {
            self.buf.push(self.delimiter);
        }
        self.buf.extend_from_slice(number);
    }

    fn field(&mut self, first: bool, field: &[u8]) {
        if !first {
            self.buf.push(self.delimiter);
        }
        if self.needs_quotes(field) {
            self.buf.push(b'"');
            for part in field.split_inclusive(|&b| b == b'"') {
                self.buf.extend_from_slice(part);
                if part.last() == Some(&b'"') {
                    self.buf.push(b'"');
                }
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(field);
        }
    }

    /// A vertex row of the usual columns in a CSV delimited by commas: `head` (the constant
    /// fields before the vertex number, `led` if there are any), the vertex number, the tuple's
    /// text (and an empty altitude after a `lon,lat` one), the empty time and `tail` (the
    /// constant fields after, each with its comma). All fields are known to need no quotes.
    ///
    /// Room for the whole row is reserved once and the pieces are put in with fixed-size
    /// copies: the eight appends this replaces were each a call to `memcpy` for a few bytes,
    /// which cost more than the bytes.
    #[inline(always)]
    fn tuple_row(
        &mut self,
        head: &[u8],
        led: bool,
        vertex: &[u8],
        tuple: &[u8],
        two_d: bool,
        tail: &[u8],
    ) {
        // At most the pieces and five single bytes.
        let most = head.len() + vertex.len() + tuple.len() + tail.len() + 5;
        self.buf.reserve(most);
        let start = self.buf.len();
        // SAFETY: `reserve` made room for `most` bytes after `start`, and the pieces written
        // below, `head`, `vertex`, `tuple`, `tail` and at most five single bytes, add up to no
        // more; every byte up to the new length is written before `set_len`.
        unsafe {
            let base = self.buf.as_mut_ptr().add(start);
            let mut at = base;
            at = put(at, head);
            if led {
                at = put_byte(at, b',');
            }
            at = put(at, vertex);
            at = put_byte(at, b',');
            at = put(at, tuple);
            if two_d {
                at = put_byte(at, b',');
            }
            at = put_byte(at, b',');
            at = put(at, tail);
            at = put_byte(at, b'\n');
            self.buf.set_len(start + at.offset_from(base) as usize);
        }
        self.row_start = self.buf.len();
    }

    /// A vertex row as [`FastRows::tuple_row`] writes it, from the three numbers (each written
    /// as it is) and a time: the rows of a gx:Track.
    #[inline(always)]
    fn numbers_row(
        &mut self,
        head: &[u8],
        led: bool,
        vertex: &[u8],
        numbers: [&[u8]; 3],
        when: &[u8],
        tail: &[u8],
    ) {
        let [lon, lat, alt] = numbers;
        // At most the pieces and six single bytes.
        let most = head.len() + vertex.len() + lon.len() + lat.len() + alt.len() + when.len();
        let most = most + tail.len() + 6;
        self.buf.reserve(most);
        let start = self.buf.len();
        // SAFETY: `reserve` made room for `most` bytes after `start`, and the pieces written
        // below, `head`, `vertex`, the numbers, `when`, `tail` and at most six single bytes,
        // add up to no more; every byte up to the new length is written before `set_len`.
        unsafe {
            let base = self.buf.as_mut_ptr().add(start);
            let mut at = base;
            at = put(at, head);
            if led {
                at = put_byte(at, b',');
            }
            for piece in [vertex, lon, lat, alt] {
                at = put(at, piece);
                at = put_byte(at, b',');
            }
            at = put(at, when);
            at = put(at, tail);
            at = put_byte(at, b'\n');
            self.buf.set_len(start + at.offset_from(base) as usize);
        }
        self.row_start = self.buf.len();
    }

    /// Write the buffer out once it is full (as [`FastRows::end_row`] does after a row).
    #[inline(always)]
    fn flush_full<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.buf.len() >= FAST_FLUSH {
            out.write_all(&self.buf)?;
            self.buf.clear();
            self.row_start = 0;
        }
        Ok(())
    }

    fn end_row<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.single && self.buf.len() == self.row_start {
            self.buf.extend_from_slice(b"\"\"");
        }
        self.buf.push(b'\n');
        if self.buf.len() >= FAST_FLUSH {
            out.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.row_start = self.buf.len();
        Ok(())
    }
}

/// Copy `bytes` to `at` and return the address after them. Up to 32 bytes (nearly every piece
/// of a row) take two fixed-size loads and stores, which may overlap, instead of a call to
/// `memcpy`.
///
/// # Safety
///
/// `at` must be valid for writes of `bytes.len()` bytes and must not overlap `bytes`.
#[inline(always)]
unsafe fn put(at: *mut u8, bytes: &[u8]) -> *mut u8 {
    let n = bytes.len();
    let from = bytes.as_ptr();
    // SAFETY: every read is of `bytes[..n]` and every write of `at[..n]`: the two copies of
    // each branch cover `0..k` and `n - k..n` for the `k` the branch checks `n` against.
    unsafe {
        match n {
            16..=32 => {
                let (a, b) = (
                    from.cast::<[u8; 16]>().read_unaligned(),
                    from.add(n - 16).cast::<[u8; 16]>().read_unaligned(),
                );
                at.cast::<[u8; 16]>().write_unaligned(a);
                at.add(n - 16).cast::<[u8; 16]>().write_unaligned(b);
            }
            8..=15 => {
                let (a, b) = (
                    from.cast::<u64>().read_unaligned(),
                    from.add(n - 8).cast::<u64>().read_unaligned(),
                );
                at.cast::<u64>().write_unaligned(a);
                at.add(n - 8).cast::<u64>().write_unaligned(b);
            }
            4..=7 => {
                let (a, b) = (
                    from.cast::<u32>().read_unaligned(),
                    from.add(n - 4).cast::<u32>().read_unaligned(),
                );
                at.cast::<u32>().write_unaligned(a);
                at.add(n - 4).cast::<u32>().write_unaligned(b);
            }
            0..=3 => {
                for i in 0..n {
                    *at.add(i) = *from.add(i);
                }
            }
            _ => std::ptr::copy_nonoverlapping(from, at, n),
        }
        at.add(n)
    }
}

/// Write `b` at `at` and return the address after it.
///
/// # Safety
///
/// `at` must be valid for a write of one byte.
#[inline(always)]
unsafe fn put_byte(at: *mut u8, b: u8) -> *mut u8 {
    // SAFETY: as the caller promised.
    unsafe {
        *at = b;
        at.add(1)
    }
}

/// The rows of a run of tuples that [`FastRows::tuple_row`] would write, put together from
/// blocks of fixed size that are copied whole, each then overwritten from where it really
/// ends: what comes before the vertex number, the number and its comma, the tuple (with the
/// input after it, see [`Tuple::padded`]), and what comes after it. Branching on the length
/// of every piece of every row was the larger part of writing one.
struct RowBlocks {
    /// The constant columns before the vertex number, and the comma after them.
    prefix: [u8; Self::PREFIX],
    prefix_len: usize,
    /// The vertex number in decimal, left-aligned, and the comma after it; counted up in
    /// place from row to row.
    number: [u8; Self::NUMBER],
    number_len: usize,
    /// What follows a tuple of three values, and of two (the empty altitude's comma first):
    /// the comma before the (empty) time, the constant columns after it, the line end.
    suffix: [[u8; Self::SUFFIX]; 2],
    suffix_len: [usize; 2],
}

impl RowBlocks {
    const PREFIX: usize = 64;
    const NUMBER: usize = 32;
    const SUFFIX: usize = 16;
    /// The most a row takes, counting each block whole.
    const ROW: usize = Self::PREFIX + Self::NUMBER + Tuple::PADDED + Self::SUFFIX;

    /// `None` when the constant columns are too long for the blocks.
    fn new(head: &[u8], led: bool, vertex: u64, tail: &[u8]) -> Option<RowBlocks> {
        let prefix_len = head.len() + usize::from(led);
        if prefix_len > Self::PREFIX || tail.len() + 3 > Self::SUFFIX {
            return None;
        }
        let mut prefix = [0; Self::PREFIX];
        prefix[..head.len()].copy_from_slice(head);
        if led {
            prefix[head.len()] = b',';
        }
        let mut number = [0; Self::NUMBER];
        let mut formatted = itoa_buf::Buf::default();
        let digits = formatted.format(vertex);
        number[..digits.len()].copy_from_slice(digits);
        number[digits.len()] = b',';
        let number_len = digits.len() + 1;
        let mut suffix = [[0; Self::SUFFIX]; 2];
        let mut suffix_len = [0; 2];
        for (two_d, (block, len)) in suffix.iter_mut().zip(&mut suffix_len).enumerate() {
            // The empty altitude's comma for two values, the time's, the columns after it.
            let commas = 1 + two_d;
            block[..commas].fill(b',');
            block[commas..commas + tail.len()].copy_from_slice(tail);
            block[commas + tail.len()] = b'\n';
            *len = commas + tail.len() + 1;
        }
        Some(RowBlocks {
            prefix,
            prefix_len,
            number,
            number_len,
            suffix,
            suffix_len,
        })
    }

    /// Append the row of the next vertex, whose tuple is the first `len` bytes of `padded`,
    /// and count the vertex number up.
    #[inline(always)]
    fn row(&mut self, buf: &mut Vec<u8>, padded: &[u8; Tuple::PADDED], len: usize, two_d: bool) {
        // The caller saw to it; this keeps the writes in bounds whatever it passes.
        let len = len.min(Tuple::PADDED);
        let suffix = usize::from(two_d);
        buf.reserve(Self::ROW);
        let start = buf.len();
        // SAFETY: `reserve` made room for `ROW` bytes after `start`, the sum of the four
        // blocks written whole; each starts where the one before it really ended, no further
        // than its own size, so every write stays in that room, every read is of a whole
        // block (an array), and every byte up to the new length is written (later blocks
        // overwrite the tails of earlier ones) before `set_len`.
        unsafe {
            let base = buf.as_mut_ptr().add(start);
            let mut at = base;
            at.cast::<[u8; Self::PREFIX]>().write_unaligned(self.prefix);
            at = at.add(self.prefix_len);
            at.cast::<[u8; Self::NUMBER]>().write_unaligned(self.number);
            at = at.add(self.number_len);
            at.cast::<[u8; Tuple::PADDED]>().write_unaligned(*padded);
            at = at.add(len);
            at.cast::<[u8; Self::SUFFIX]>()
                .write_unaligned(self.suffix[suffix]);
            at = at.add(self.suffix_len[suffix]);
            buf.set_len(start + at.offset_from(base) as usize);
        }
        self.count_up();
    }

    /// The vertex number plus one, in place: the last digit that is not a 9 goes up and the
    /// 9s after it become 0s; all 9s become a 1 and one more digit.
    #[inline(always)]
    fn count_up(&mut self) {
        let digits = self.number_len - 1;
        for i in (0..digits).rev() {
            if self.number[i] != b'9' {
                self.number[i] += 1;
                return;
            }
            self.number[i] = b'0';
        }
        // A u64 has at most 20 digits, far from the block's end.
        self.number[0] = b'1';
        self.number[digits] = b'0';
        self.number[digits + 1] = b',';
        self.number_len += 1;
    }
}

/// One step of assembling a vertex row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Columns `start..end`, none of which changes along a sequence: copied from the cache.
    Constant { start: usize, end: usize },
    /// One column that changes from vertex to vertex; `first` if it starts the row.
    Varying { column: PerVertex, first: bool },
}

/// A column with a value of its own in every vertex row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PerVertex {
    Vertex,
    Longitude,
    Latitude,
    Altitude,
    When,
}

impl PerVertex {
    fn of(column: &Column) -> Option<PerVertex> {
        Some(match column {
            Column::Vertex => PerVertex::Vertex,
            Column::Longitude => PerVertex::Longitude,
            Column::Latitude => PerVertex::Latitude,
            Column::Altitude => PerVertex::Altitude,
            Column::When => PerVertex::When,
            _ => return None,
        })
    }
}

/// The steps of a vertex row of `layout`: maximal runs of columns that stay the same along a
/// sequence, and each of the others.
fn steps(layout: &Layout) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, column) in layout.columns.iter().enumerate() {
        match (steps.last_mut(), PerVertex::of(column)) {
            (_, Some(column)) => steps.push(Step::Varying {
                column,
                first: i == 0,
            }),
            (Some(Step::Constant { end, .. }), None) => *end = i + 1,
            (_, None) => steps.push(Step::Constant {
                start: i,
                end: i + 1,
            }),
        }
    }
    steps
}

/// Whether `steps` are the standard per-vertex columns in their standard order, with at most
/// one run of constant columns before them (then `Some(true)`) and one after.
fn usual(steps: &[Step]) -> Option<bool> {
    let led = matches!(steps.first(), Some(Step::Constant { .. }));
    let run = steps.get(usize::from(led)..usize::from(led) + 5)?;
    let standard = run
        .iter()
        .zip([
            PerVertex::Vertex,
            PerVertex::Longitude,
            PerVertex::Latitude,
            PerVertex::Altitude,
            PerVertex::When,
        ])
        .all(|(step, want)| matches!(step, Step::Varying { column, .. } if *column == want));
    let rest = &steps[usize::from(led) + 5..];
    (standard && rest.len() <= 1).then_some(led)
}

/// The encoded fields of the columns that stay the same along one coordinate sequence (the
/// feature, its name, the geometry, part and ring, the source and the feature's attributes).
///
/// A LineString's rows differ only in the vertex number, the coordinates and the time, so the
/// rest is formatted and checked for quoting once per sequence and then copied: that halves
/// the work per row of the default CSV.
#[derive(Default)]
struct SequenceCache {
    /// Whether `bytes` holds the fields of the sequence the other members describe.
    valid: bool,
    key: SequenceKey,
    /// Address of the feature's attributes. They are complete before the feature's first row
    /// (the reader holds rows back until then), and the data columns are already looked up
    /// once per feature ordinal, so the address together with the ordinal identifies them.
    attributes: usize,
    /// The encoded constant runs of [`RowWriter::steps`], in order, each with the delimiter
    /// before it (unless it starts the row).
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
}

fn address(attributes: Option<&Attributes>) -> usize {
    attributes.map_or(0, |a| a as *const Attributes as usize)
}

impl SequenceCache {
    fn holds(&mut self, v: &Vertex<'_>) -> bool {
        self.valid && self.attributes == address(v.attributes) && self.key.holds(v)
    }

    fn describe(&mut self, v: &Vertex<'_>) {
        self.valid = true;
        self.key.describe(v);
        self.attributes = address(v.attributes);
        self.bytes.clear();
        self.ranges.clear();
    }
}

/// What a vertex says of its sequence: the feature, part, ring, name and geometry, the same
/// for all its vertices. Kept by whoever handles rows a sequence at a time.
#[derive(Default)]
pub(crate) struct SequenceKey {
    /// [`Vertex::sequence`] of the vertex described.
    sequence: u64,
    feature: Option<u64>,
    part: u64,
    ring: Ring,
    name: String,
    geometry: String,
}

impl SequenceKey {
    /// Whether `v` belongs to the sequence described; if it does under another
    /// [`Vertex::sequence`], that number is the one looked for from now on.
    pub(crate) fn holds(&mut self, v: &Vertex<'_>) -> bool {
        let same = |key: &Self| {
            key.feature == v.feature
                && key.part == v.part
                && key.ring == v.ring
                && same_short(key.geometry.as_bytes(), v.geometry.as_bytes())
                && same_short(key.name.as_bytes(), v.name.as_bytes())
        };
        // The reader's word for it spares comparing the names on nearly every row.
        if v.sequence != 0 && v.sequence == self.sequence {
            debug_assert!(same(self), "the reader's sequence number misled");
            return true;
        }
        let same = same(self);
        if same {
            self.sequence = v.sequence;
        }
        same
    }

    /// Describe `v`'s sequence, reusing the allocations.
    pub(crate) fn describe(&mut self, v: &Vertex<'_>) {
        self.sequence = v.sequence;
        self.feature = v.feature;
        self.part = v.part;
        self.ring = v.ring;
        self.name.clear();
        self.name.push_str(v.name);
        self.geometry.clear();
        self.geometry.push_str(v.geometry);
    }
}

/// `a == b`, without a call to `memcmp` for strings of up to 16 bytes (a geometry's name, most
/// features' names): two overlapping word compares. Every vertex row asks this twice, and the
/// calls cost 5 % of a big file's conversion.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// Turns a column of a row into the bytes of its field, with the buffers it reuses.
struct Values {
    guard: bool,
    numbers: Numbers,
    /// A coordinate in canonical text, when it differs from the KML's.
    number: Vec<u8>,
    /// The `source` column's value.
    source: String,
    /// Formatting buffer for the integer columns.
    ints: itoa_buf::Buf,
    /// The `vertex` column's value.
    vertex: itoa_buf::Counter,
    /// For the formula guard.
    scratch: Vec<u8>,
    /// The WKT of the current feature, when it is small enough to be held (see
    /// [`RowWriter::write_streamed_row`] for the others).
    wkt: Vec<u8>,
    /// For each column, the index into the current feature's `Attributes::data` of its value.
    data: Vec<Option<usize>>,
}

impl Values {
    /// The field of a column that changes from vertex to vertex, asked for every row.
    #[inline(always)]
    fn varying<'a>(&'a mut self, column: PerVertex, v: &'a Vertex<'_>) -> &'a [u8] {
        match column {
            PerVertex::Vertex => self.vertex.format(v.vertex),
            PerVertex::Longitude => {
                number::text(v.longitude.as_bytes(), self.numbers, &mut self.number)
            }
            PerVertex::Latitude => {
                number::text(v.latitude.as_bytes(), self.numbers, &mut self.number)
            }
            PerVertex::Altitude => {
                number::text(v.altitude.as_bytes(), self.numbers, &mut self.number)
            }
            PerVertex::When => guarded(self.guard, v.when, &mut self.scratch),
        }
    }

    fn field<'a>(&'a mut self, i: usize, column: &Column, row: &Row<'a>) -> &'a [u8] {
        let attribute = |pick: fn(&Attributes) -> &str| row.attributes.map_or("", pick);
        let text: &str = match column {
            Column::Feature => return row.feature.map_or(b"", |n| self.ints.format(n)),
            Column::Part => return row.vertex.map_or(b"", |v| self.ints.format(v.part)),
            Column::Vertex
            | Column::Longitude
            | Column::Latitude
            | Column::Altitude
            | Column::When => {
                return match (row.vertex, PerVertex::of(column)) {
                    (Some(v), Some(column)) => self.varying(column, v),
                    _ => b"",
                }
            }
            Column::Source => &self.source,
            Column::Name => row.name,
            Column::Geometry => row.vertex.map_or("", |v| v.geometry),
            Column::Ring => row.vertex.map_or("", |v| v.ring.as_str()),
            // WKT starts with a letter: the guard would never change it.
            Column::Wkt => return &self.wkt,
            Column::Folder => attribute(|a| &a.folder),
            Column::Description => attribute(|a| &a.description),
            Column::Timestamp => attribute(|a| &a.timestamp),
            Column::Begin => attribute(|a| &a.begin),
            Column::End => attribute(|a| &a.end),
            Column::Style => attribute(|a| &a.style),
            Column::Data(_) => match (row.attributes, self.data[i]) {
                (Some(a), Some(index)) => &a.data[index].1,
                _ => "",
            },
        };
        guarded(self.guard && column.is_text(), text, &mut self.scratch)
    }
}

/// The writer of the default CSV; kept under this name for the code that predates layouts.
pub type VertexWriter<W> = RowWriter<W>;

impl<W: Write> RowWriter<W> {
    /// Start the default CSV on `out` (one row per vertex, the standard columns) and write its
    /// header row.
    pub fn new(out: W) -> io::Result<Self> {
        let shape = Shape::default();
        RowWriter::with_layout(out, shape.layout(&[]), shape.rows, &Dialect::default(), "")
    }

    /// Start a CSV on `out` and write its byte order mark and header as `dialect` asks.
    /// `source` fills the `source` column, if the layout has one.
    pub fn with_layout(
        mut out: W,
        layout: Layout,
        rows: RowKind,
        dialect: &Dialect,
        source: &str,
    ) -> io::Result<Self> {
        let mut data_columns: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, column) in layout.columns.iter().enumerate() {
            if let Column::Data(field) = column {
                data_columns.entry(field.clone()).or_default().push(i);
            }
        }
        let width = layout.columns.len();
        let output = if width > 0 {
            let mut rows = FastRows::new(dialect.delimiter, width);
            // Written out with the first rows: for a small file, one `write` instead of two.
            write_header(&mut rows.buf, &layout, dialect)?;
            rows.row_start = rows.buf.len();
            Output::Fast { out, rows }
        } else {
            write_header(&mut out, &layout, dialect)?;
            Output::Csv(Box::new(builder(dialect, 256 * 1024).from_writer(out)))
        };
        let steps = steps(&layout);
        Ok(RowWriter {
            output,
            usual: usual(&steps),
            steps,
            layout,
            rows,
            values: Values {
                guard: dialect.formula_guard,
                numbers: dialect.numbers,
                number: Vec::new(),
                source: source.to_owned(),
                ints: Default::default(),
                vertex: Default::default(),
                scratch: Vec::new(),
                wkt: Vec::new(),
                data: vec![None; width],
            },
            written: 0,
            warnings: Warnings::default(),
            data_columns,
            data_feature: None,
            cache: SequenceCache::default(),
            delimiter: dialect.delimiter,
        })
    }

    /// Rows written so far (the header not counted).
    pub fn rows(&self) -> u64 {
        self.written
    }

    /// Warnings received so far.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// Flush everything and hand back the writer. Errors are reported here, never swallowed
    /// by a drop.
    pub fn finish(self) -> io::Result<(W, Warnings)> {
        let warnings = self.warnings;
        let out = match self.output {
            Output::Fast { mut out, rows } => {
                out.write_all(&rows.buf)?;
                out.flush()?;
                out
            }
            Output::Csv(csv) => csv.into_inner().map_err(|e| e.into_error())?,
        };
        Ok((out, warnings))
    }

    /// Find where each data column's value is in `attributes` (once per feature).
    /// Asked for every row, and nearly always with nothing to do: only that look is inlined.
    #[inline(always)]
    fn locate_data(&mut self, feature: Option<u64>, attributes: Option<&Attributes>) {
        if self.data_columns.is_empty() || self.data_feature == Some(feature) {
            return;
        }
        self.locate_data_of(feature, attributes);
    }

    #[cold]
    #[inline(never)]
    fn locate_data_of(&mut self, feature: Option<u64>, attributes: Option<&Attributes>) {
        self.data_feature = Some(feature);
        self.values.data.iter_mut().for_each(|v| *v = None);
        let Some(attributes) = attributes else {
            return;
        };
        for (index, (field, _)) in attributes.data.iter().enumerate() {
            if let Some(positions) = self.data_columns.get(field.as_str()) {
                for &p in positions {
                    // The first of two fields with one name wins.
                    self.values.data[p].get_or_insert(index);
                }
            }
        }
    }

    fn write_row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let columns = &self.layout.columns;
        match &mut self.output {
            Output::Fast { out, rows } => {
                for (i, column) in columns.iter().enumerate() {
                    rows.field(i == 0, self.values.field(i, column, row));
                }
                rows.end_row(out)?;
            }
            Output::Csv(csv) => {
                for (i, column) in columns.iter().enumerate() {
                    csv.write_field(self.values.field(i, column, row))
                        .map_err(into_io)?;
                }
                csv.write_record(None::<&[u8]>).map_err(into_io)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// A vertex row, its constant columns copied from [`SequenceCache`] (or put there).
    fn write_vertex_row(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        let row = Row {
            feature: v.feature,
            name: v.name,
            attributes: v.attributes,
            vertex: Some(v),
        };
        let Output::Fast { out, rows } = &mut self.output else {
            return self.write_row(&row);
        };
        let columns = &self.layout.columns;
        let cache = &mut self.cache;
        let hit = cache.holds(v);
        if !hit {
            cache.describe(v);
        }
        // A gx:Track's time goes the straight way too when it is written as it is: no
        // quotes, and no formula guard in front.
        let plain_when = |rows: &FastRows| {
            v.when.is_empty()
                || !(rows.needs_quotes(v.when.as_bytes())
                    || self.values.guard && is_formula_start(v.when.as_bytes()))
        };
        if let (true, Some(led)) = (hit && rows.plain_numbers && plain_when(rows), self.usual) {
            // Straight-line code for the usual per-vertex columns: the loop below cost more
            // per row than the bytes it copies. The cache holds the constant run before them
            // (if any), then the one after them (if any).
            let split = if led { cache.ranges[0].end } else { 0 };
            let d = rows.delimiter;
            let when = v.when.as_bytes();
            let numbers = self.values.numbers;
            let as_written =
                |n: &str| numbers == Numbers::Verbatim || !number::needs_canonical(n.as_bytes());
            if d == b',' {
                let (head, tail) = cache.bytes.split_at(split);
                let vertex = self.values.vertex.format(v.vertex);
                let (lon, lat, alt) = (v.longitude, v.latitude, v.altitude);
                if !v.tuple.is_empty() && when.is_empty() {
                    // The KML's tuple is the three fields as they go in the CSV (its numbers
                    // are in shortest text, which both `--numbers` modes write as they are).
                    // Only a gx:coord has a time, and it is never seen as a tuple.
                    let tuple = v.tuple.as_bytes();
                    rows.tuple_row(head, led, vertex, tuple, alt.is_empty(), tail);
                    self.written += 1;
                    return rows.flush_full(out);
                }
                if as_written(lon) && as_written(lat) && as_written(alt) {
                    let coordinates = [lon.as_bytes(), lat.as_bytes(), alt.as_bytes()];
                    rows.numbers_row(head, led, vertex, coordinates, when, tail);
                    self.written += 1;
                    return rows.flush_full(out);
                }
            }
            let buf = &mut rows.buf;
            buf.extend_from_slice(&cache.bytes[..split]);
            if led {
                buf.push(d);
            }
            buf.extend_from_slice(self.values.vertex.format(v.vertex));
            buf.push(d);
            number::push(buf, v.longitude.as_bytes(), numbers);
            buf.push(d);
            number::push(buf, v.latitude.as_bytes(), numbers);
            buf.push(d);
            number::push(buf, v.altitude.as_bytes(), numbers);
            buf.push(d);
            buf.extend_from_slice(when);
            buf.extend_from_slice(&cache.bytes[split..]);
            rows.end_row(out)?;
            self.written += 1;
            return Ok(());
        }
        let mut constant = 0;
        for step in &self.steps {
            match *step {
                // Only gx:Track rows have a time; the others need no look at it.
                Step::Varying {
                    column: column @ PerVertex::When,
                    first,
                } if !v.when.is_empty() => rows.field(first, self.values.varying(column, v)),
                Step::Varying { column, first } => {
                    rows.number(first, self.values.varying(column, v))
                }
                Step::Constant { .. } if hit => {
                    rows.buf
                        .extend_from_slice(&cache.bytes[cache.ranges[constant].clone()]);
                    constant += 1;
                }
                Step::Constant { start, end } => {
                    let from = rows.buf.len();
                    for (i, column) in columns.iter().enumerate().take(end).skip(start) {
                        rows.field(i == 0, self.values.field(i, column, &row));
                    }
                    let at = cache.bytes.len();
                    cache.bytes.extend_from_slice(&rows.buf[from..]);
                    cache.ranges.push(at..cache.bytes.len());
                }
            }
        }
        rows.end_row(out)?;
        self.written += 1;
        Ok(())
    }
}

impl<W: Write> RowWriter<W> {
    /// The rows of `run` from `from` on that [`RowWriter::write_vertex_row`] would write with
    /// [`FastRows::tuple_row`], written so with what they share looked at once: how far it got.
    /// The run's vertices differ in their number and coordinates only, so whether the cache
    /// holds their sequence, and the layout's questions, have one answer for all of them.
    fn write_tuple_rows(&mut self, run: &Vertices<'_>, from: usize) -> io::Result<usize> {
        let Output::Fast { out, rows } = &mut self.output else {
            return Ok(from);
        };
        let (Some(led), true, b',') = (self.usual, rows.plain_numbers, rows.delimiter) else {
            return Ok(from);
        };
        let cache = &mut self.cache;
        if !cache.holds(&run.first) {
            return Ok(from);
        }
        let split = if led { cache.ranges[0].end } else { 0 };
        let (head, tail) = cache.bytes.split_at(split);
        let first = run.first.vertex;
        let mut blocks = RowBlocks::new(head, led, first + from as u64, tail);
        let mut i = from;
        while let Some(t) = run.tuples.get(i).filter(|t| !t.text.is_empty()) {
            let text = t.text.as_bytes();
            let two_d = t.altitude.is_empty();
            let padded = <&[u8; Tuple::PADDED]>::try_from(t.padded).ok();
            match (&mut blocks, padded) {
                (Some(blocks), Some(padded)) if text.len() <= Tuple::PADDED => {
                    debug_assert!(padded.starts_with(text));
                    blocks.row(&mut rows.buf, padded, text.len(), two_d);
                }
                (blocks, _) => {
                    let vertex = self.values.vertex.format(first + i as u64);
                    rows.tuple_row(head, led, vertex, text, two_d, tail);
                    if let Some(blocks) = blocks {
                        blocks.count_up();
                    }
                }
            }
            self.written += 1;
            rows.flush_full(out)?;
            i += 1;
        }
        rows.row_start = rows.buf.len();
        Ok(i)
    }

    /// A feature row whose geometry is too large to be held as one WKT value: the WKT is
    /// written straight into the output, twice read from the geometry (once to see whether
    /// it needs quotes, then to write it), so that the row costs no more memory than a small
    /// one and its bytes are the same.
    fn write_streamed_row(&mut self, row: &Row<'_>, geometry: &Geometry) -> io::Result<()> {
        let mut check = NeedsQuotes {
            delimiter: self.delimiter,
            found: false,
        };
        wkt::write_numbers(geometry, &mut check, self.values.numbers)?;
        let quote = check.found;
        let numbers = self.values.numbers;
        let columns = &self.layout.columns;
        match &mut self.output {
            Output::Fast { out, rows } => {
                for (i, column) in columns.iter().enumerate() {
                    if *column != Column::Wkt {
                        rows.field(i == 0, self.values.field(i, column, row));
                        continue;
                    }
                    if i > 0 {
                        rows.buf.push(rows.delimiter);
                    }
                    let mut field = QuotedField {
                        buf: &mut rows.buf,
                        out: &mut *out,
                        quote,
                    };
                    field.open();
                    wkt::write_numbers(geometry, &mut field, numbers)?;
                    field.open();
                    // The row is not empty, and may have been written out in part.
                    rows.row_start = usize::MAX;
                }
                rows.end_row(out)?;
            }
            // A layout without columns has no WKT.
            Output::Csv(_) => return self.write_row(row),
        }
        self.written += 1;
        Ok(())
    }
}

/// Whether the bytes written to it would make a field need quotes (csv-core's rule, as
/// [`FastRows`] has it).
struct NeedsQuotes {
    delimiter: u8,
    found: bool,
}

impl Write for NeedsQuotes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.found |= buf
            .iter()
            .any(|&b| b == self.delimiter || matches!(b, b'"' | b'\r' | b'\n'));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A field written in pieces into `buf`, which goes to `out` whenever it is full; quotes
/// doubled when the field is quoted.
struct QuotedField<'a> {
    buf: &'a mut Vec<u8>,
    out: &'a mut dyn Write,
    quote: bool,
}

impl QuotedField<'_> {
    /// The quote that opens or closes the field, if it has them.
    fn open(&mut self) {
        if self.quote {
            self.buf.push(b'"');
        }
    }
}

impl Write for QuotedField<'_> {
    fn write(&mut self, piece: &[u8]) -> io::Result<usize> {
        if self.quote {
            for part in piece.split_inclusive(|&b| b == b'"') {
                self.buf.extend_from_slice(part);
                if part.last() == Some(&b'"') {
                    self.buf.push(b'"');
                }
            }
        } else {
            self.buf.extend_from_slice(piece);
        }
        if self.buf.len() >= FAST_FLUSH {
            self.out.write_all(self.buf)?;
            self.buf.clear();
        }
        Ok(piece.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one row is made of.
struct Row<'a> {
    feature: Option<u64>,
    name: &'a str,
    attributes: Option<&'a Attributes>,
    /// `None` for a feature row.
    vertex: Option<&'a Vertex<'a>>,
}

impl<W: Write> Sink for RowWriter<W> {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        if self.rows != RowKind::Vertices {
            return Ok(());
        }
        self.locate_data(v.feature, v.attributes);
        self.write_vertex_row(v)
    }

    fn vertices(&mut self, run: &Vertices<'_>) -> io::Result<()> {
        if self.rows != RowKind::Vertices || run.tuples.is_empty() {
            return Ok(());
        }
        self.locate_data(run.first.feature, run.first.attributes);
        // A row the quick way cannot write goes the usual way, which also tells the cache
        // of a new sequence (the first row of one), after which the quick way can.
        let mut i = 0;
        while i < run.tuples.len() {
            i = self.write_tuple_rows(run, i)?;
            if i < run.tuples.len() {
                self.write_vertex_row(&run.get(i))?;
                i += 1;
            }
        }
        Ok(())
    }

    fn warning(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }

    fn feature(&mut self, feature: &Feature<'_>) -> io::Result<()> {
        if self.rows != RowKind::Features {
            return Ok(());
        }
        // Features are numbered once each, so this never reuses a stale lookup.
        self.data_feature = None;
        self.locate_data(Some(feature.ordinal), feature.attributes);
        let row = Row {
            feature: Some(feature.ordinal),
            name: feature.name,
            attributes: feature.attributes,
            vertex: None,
        };
        self.values.wkt.clear();
        let wkt = self.layout.columns.contains(&Column::Wkt);
        if wkt && !feature.geometry.in_memory() {
            return self.write_streamed_row(&row, feature.geometry);
        }
        if wkt {
            wkt::write_numbers(feature.geometry, &mut self.values.wkt, self.values.numbers)?;
        }
        self.write_row(&row)
    }
}

pub fn into_io(e: ::csv::Error) -> io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
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

    /// Formats the vertex numbers of successive rows. They mostly count up by one, so the
    /// last number's digits are counted up in place; dividing by ten for every digit of every
    /// row was 2% of a conversion.
    #[derive(Default)]
    pub struct Counter {
        digits: Buf,
        /// Where the digits of `last` start in `digits`, 0 when nothing is formatted yet
        /// (a number has at most 20 digits but never needs all 20 slots here: see `format`).
        start: usize,
        last: u64,
    }

    impl Counter {
        #[inline(always)]
        pub fn format(&mut self, n: u64) -> &[u8] {
            let digits = &mut self.digits.0;
            if self.start > 0 && self.last.checked_add(1) == Some(n) {
                let mut i = digits.len() - 1;
                // Carry through the trailing nines. A carry out of the leading digit takes
                // the slot before it; `start > 0` guarantees there is one, and `last + 1`
                // having 20 digits means `start` becomes 0, which only disables counting on.
                while digits[i] == b'9' && i > self.start {
                    digits[i] = b'0';
                    i -= 1;
                }
                if digits[i] == b'9' {
                    digits[i] = b'0';
                    self.start -= 1;
                    digits[self.start] = b'1';
                } else {
                    digits[i] += 1;
                }
            } else {
                self.start = digits.len() - self.digits.format(n).len();
            }
            self.last = n;
            &self.digits.0[self.start..]
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_compare_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..24u8).map(|i| b'a' + i).collect();
        for len in 0..=24 {
            let a = &base[..len];
            assert!(same_short(a, a), "{len}");
            if len > 0 {
                assert!(!same_short(a, &base[..len - 1]), "{len}");
            }
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_short(a, &b), "len {len}, differing at {at}");
            }
        }
    }

    /// See: rows are no longer written by csv-core; they must stay byte-for-byte the same.
    #[test]
    fn fast_rows_are_what_csv_writes() {
        let alphabet: [&[u8]; 12] = [
            b"a",
            b"1.5",
            b",",
            b"\"",
            b"\r",
            b"\n",
            b" ",
            b"\t",
            b";",
            b"=",
            "é".as_bytes(),
            b"",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (delimiter, width) in [(b',', 2), (b'\t', 3), (b';', 2), (b'|', 4), (b',', 1)] {
            let mut fast = FastRows::new(delimiter, width);
            let mut reference = ::csv::WriterBuilder::new()
                .flexible(true)
                .delimiter(delimiter)
                .terminator(::csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            let mut out = Vec::new();
            for _ in 0..2000 {
                let n = if width == 1 { 1 } else { 2 + next() % 4 };
                let fields: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        (0..next() % 6)
                            .flat_map(|_| alphabet[(next() % 12) as usize].to_vec())
                            .collect()
                    })
                    .collect();
                for (i, field) in fields.iter().enumerate() {
                    fast.field(i == 0, field);
                }
                fast.end_row(&mut out).unwrap();
                reference.write_record(&fields).unwrap();
            }
            out.extend_from_slice(&fast.buf);
            let expected = reference.into_inner().unwrap();
            assert!(out == expected, "delimiter {:?}", delimiter as char);
        }
    }

    use super::*;
    use crate::kml::{Part, Ring, Tuple};

    /// See: the constant columns of a vertex row come from a cache keyed by the sequence; any
    /// change of feature, part, ring, geometry, name or attributes must show in the row.
    #[test]
    fn cached_columns_follow_every_change_of_sequence() {
        let (a, b) = (attributes(), Attributes::default());
        let names = ["n", "n,2", "=f", ""];
        let geometries = ["LineString", "Polygon", "Point"];
        let rings = [Ring::None, Ring::Outer, Ring::Inner];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        // Every column, and a selection that starts with and interleaves per-vertex columns.
        let selections = [
            None,
            Some([
                "latitude",
                "longitude",
                "name",
                "vertex",
                "feature",
                "when",
                "altitude",
            ]),
        ];
        let dialects = [
            (b',', false),
            (b',', true),
            (b';', true),
            (b'1', false),
            (b'.', true),
        ];
        for (select, (delimiter, guard)) in selections
            .iter()
            .flat_map(|s| dialects.iter().map(move |d| (s, *d)))
        {
            let dialect = Dialect {
                delimiter,
                formula_guard: guard,
                header: false,
                ..Dialect::default()
            };
            let shape = Shape {
                attributes: true,
                source: true,
                select: select.map(|s| s.iter().map(|c| c.to_string()).collect()),
                ..Shape::default()
            };
            let layout = shape.layout(&["speed".to_owned()]);
            let mut w =
                RowWriter::with_layout(Vec::new(), layout.clone(), shape.rows, &dialect, "s,1")
                    .unwrap();
            let mut reference = ::csv::WriterBuilder::new()
                .delimiter(delimiter)
                .terminator(::csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            let mut number = 0u64;
            // Which feature, name, geometry, part, ring and attributes the row is of: kept
            // for a few rows at a time, as a sequence is, so that cached rows are written too.
            let mut sequence = [0; 6];
            // The reader's number for it: new at every change, sometimes new for the same
            // sequence (a name set again to the same text), sometimes not given.
            let (mut id, mut ids) = (1u64, 1u64);
            for _ in 0..3000 {
                if next(4) == 0 {
                    sequence = [next(3), next(4), next(3), next(2), next(3), next(3)];
                    ids += 1;
                    id = ids;
                } else if next(8) == 0 {
                    ids += 1;
                    id = ids;
                }
                let given = if next(6) == 0 { 0 } else { id };
                // Mostly counting up (the vertex counter's fast way), sometimes jumping to
                // just before a carry, back to the start, or to the largest numbers.
                number = match next(40) {
                    0 => [0, 7, 98, 999_998, u64::MAX - 2, 9_999_999_999_999_999_998][next(6)],
                    _ => number.checked_add(1).unwrap_or(0),
                };
                let vertex = number;
                let attributes = [None, Some(&a), Some(&b)][sequence[5]];
                let (longitude, altitude) = (["1.5", "-10", "2e1"][next(3)], ["", "0"][next(2)]);
                // The reader hands on the tuple's text when it saw it, and only then.
                let tuple = match (next(2), altitude) {
                    (0, _) => String::new(),
                    (_, "") => format!("{longitude},3.25"),
                    (_, alt) => format!("{longitude},3.25,{alt}"),
                };
                let v = Vertex {
                    feature: [None, Some(1), Some(12)][sequence[0]],
                    name: names[sequence[1]],
                    geometry: geometries[sequence[2]],
                    part: sequence[3] as u64,
                    ring: rings[sequence[4]],
                    vertex,
                    longitude,
                    latitude: "3.25",
                    altitude,
                    tuple: &tuple,
                    // Times that need quotes, or the guard (then only), or neither.
                    when: ["", "2024-01-01T00:00:00Z", "=t\"1,\r\n", "-1", "t;1"][next(5)],
                    attributes,
                    sequence: given,
                };
                // Attributes belong to one feature ordinal (the reader's rule); keep to it.
                let v = Vertex {
                    feature: match attributes {
                        Some(x) if std::ptr::eq(x, &a) => Some(100),
                        Some(_) => Some(200),
                        None => v.feature,
                    },
                    ..v
                };
                w.vertex(&v).unwrap();
                let at = |pick: fn(&Attributes) -> &str| v.attributes.map_or("", pick);
                let text = |s: &str| {
                    if guard && is_formula_start(s.as_bytes()) {
                        format!("'{s}")
                    } else {
                        s.to_owned()
                    }
                };
                let speed = v
                    .attributes
                    .and_then(|x| x.data.iter().find(|(n, _)| n == "speed"))
                    .map_or("", |(_, value)| value.as_str());
                let value = |header: &str| match header {
                    "source" => text("s,1"),
                    "feature" => v.feature.map_or(String::new(), |f| f.to_string()),
                    "name" => text(v.name),
                    "geometry" => text(v.geometry),
                    "part" => v.part.to_string(),
                    "ring" => text(v.ring.as_str()),
                    "vertex" => v.vertex.to_string(),
                    "longitude" => v.longitude.to_owned(),
                    "latitude" => v.latitude.to_owned(),
                    "altitude" => v.altitude.to_owned(),
                    "when" => text(v.when),
                    "folder" => text(at(|x| &x.folder)),
                    "description" => text(at(|x| &x.description)),
                    "timestamp" => text(at(|x| &x.timestamp)),
                    "begin" => text(at(|x| &x.begin)),
                    "end" => text(at(|x| &x.end)),
                    "style" => text(at(|x| &x.style)),
                    "speed" => text(speed),
                    other => panic!("no reference value for column {other}"),
                };
                let record: Vec<String> = layout.headers().iter().map(|h| value(h)).collect();
                reference.write_record(&record).unwrap();
            }
            let expected = String::from_utf8(reference.into_inner().unwrap()).unwrap();
            assert!(
                text(w) == expected,
                "columns {:?}, delimiter {:?}, guard {guard}",
                layout.headers(),
                delimiter as char
            );
        }
    }

    /// See: the straight-line row must serve the default and `--attributes` layouts (the
    /// others take the general loop, which the test above checks against csv).
    #[test]
    fn usual_layouts_take_the_straight_line_rows() {
        let usual_of = |shape: Shape| usual(&steps(&shape.layout(&["speed".to_owned()])));
        let select = |columns: &[&str]| Shape {
            select: Some(columns.iter().map(|c| c.to_string()).collect()),
            ..Shape::default()
        };
        assert_eq!(usual_of(Shape::default()), Some(true));
        let everything = Shape {
            attributes: true,
            source: true,
            ..Shape::default()
        };
        assert_eq!(usual_of(everything), Some(true));
        let numbers = ["vertex", "longitude", "latitude", "altitude", "when"];
        assert_eq!(usual_of(select(&numbers)), Some(false));
        assert_eq!(
            usual_of(select(&[&numbers[..], &["name"]].concat())),
            Some(false)
        );
        assert_eq!(usual_of(select(&["longitude", "latitude"])), None);
        assert_eq!(usual_of(select(&["name", "latitude", "longitude"])), None);
        let split = [
            "name",
            "vertex",
            "longitude",
            "latitude",
            "altitude",
            "name",
            "when",
        ];
        assert_eq!(usual_of(select(&split)), None);
    }

    fn vertex<'a>(name: &'a str, attributes: Option<&'a Attributes>) -> Vertex<'a> {
        Vertex {
            feature: Some(3),
            name,
            geometry: "Point",
            part: 0,
            ring: Ring::None,
            vertex: 10,
            longitude: "-008.50",
            latitude: "1e-3",
            altitude: "",
            tuple: "",
            when: "",
            sequence: 0,
            attributes,
        }
    }

    fn default_writer(shape: &Shape, dialect: &Dialect) -> RowWriter<Vec<u8>> {
        RowWriter::with_layout(Vec::new(), shape.layout(&[]), shape.rows, dialect, "src").unwrap()
    }

    fn text(w: RowWriter<Vec<u8>>) -> String {
        String::from_utf8(w.finish().unwrap().0).unwrap()
    }

    /// Both ways of writing a row (the first of a sequence, and the straight-line code for
    /// the next ones) write numbers alike. See: issue 13, item 5.
    #[test]
    fn canonical_numbers_by_default_and_verbatim_on_request() {
        for (numbers, longitude) in [
            (Numbers::Canonical, "-8.50"),
            (Numbers::Verbatim, "-008.50"),
        ] {
            let dialect = Dialect {
                numbers,
                ..Dialect::default()
            };
            let mut w = default_writer(&Shape::default(), &dialect);
            let mut v = vertex("plain", None);
            v.latitude = "+.5";
            w.vertex(&v).unwrap();
            v.vertex = 11;
            v.altitude = "0012.";
            w.vertex(&v).unwrap();
            let latitude = if numbers == Numbers::Canonical {
                "0.5"
            } else {
                "+.5"
            };
            let altitude = if numbers == Numbers::Canonical {
                "12"
            } else {
                "0012."
            };
            assert_eq!(
                text(w),
                format!(
                    "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when\n\
                     3,plain,Point,0,,10,{longitude},{latitude},,\n\
                     3,plain,Point,0,,11,{longitude},{latitude},{altitude},\n"
                )
            );
        }
    }

    #[test]
    fn header_and_canonical_numbers() {
        let mut w = default_writer(&Shape::default(), &Dialect::default());
        w.vertex(&vertex("plain", None)).unwrap();
        assert_eq!(
            text(w),
            "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when\n\
             3,plain,Point,0,,10,-8.50,1e-3,,\n"
        );
    }

    /// A run of vertices handed over at once is written exactly as its vertices one by one:
    /// tuples with and without their text, two and three values, a run whose sequence the
    /// writer has not seen yet and one it has, in every dialect that changes the way.
    #[test]
    fn runs_are_written_as_their_vertices_one_by_one() {
        let values = [
            ("1.5", "2", "", "1.5,2"),
            ("-008.50", "1e-3", "", ""),
            ("3", "4", "5", "3,4,5"),
            ("6", "7", "", "6,7"),
            ("+1", "2", "0012.", ""),
            ("8", "9", "10", "8,9,10"),
            ("-1.25", "2.5", "", "-1.25,2.5"),
            ("4", "5", "6", "4,5,6"),
        ];
        // Each text with the input after it, as the reader hands it over; the last but one
        // without, as when the reader has none at hand.
        let inputs: Vec<String> = values
            .iter()
            .map(|v| format!("{} 9,9 9,9 9,9 9,9 9,9 9,9 9,9 9,9", v.3))
            .collect();
        let tuples: Vec<Tuple> = values
            .iter()
            .zip(&inputs)
            .enumerate()
            .map(
                |(i, (&(longitude, latitude, altitude, text), input))| Tuple {
                    longitude,
                    latitude,
                    altitude,
                    text,
                    padded: if text.is_empty() || i == 6 {
                        &[]
                    } else {
                        &input.as_bytes()[..Tuple::PADDED]
                    },
                },
            )
            .collect();
        let dialects = [
            Dialect::default(),
            Dialect {
                numbers: Numbers::Verbatim,
                ..Dialect::default()
            },
            Dialect {
                delimiter: b';',
                ..Dialect::default()
            },
            Dialect {
                formula_guard: true,
                header: false,
                ..Dialect::default()
            },
        ];
        let narrow = Shape {
            select: Some(vec!["longitude".into(), "vertex".into()]),
            ..Shape::default()
        };
        let reordered = Shape {
            select: Some(vec!["vertex".into(), "name".into(), "latitude".into()]),
            ..Shape::default()
        };
        let long = "a name too long to be put in front of the vertex number in one block";
        // Sequences continued and new, vertex numbers that gain a digit within a run, a
        // name that needs quotes and one that is too long for the blocks.
        let sequences = [
            ("a", 7, 0),
            ("a", 7, 8),
            ("=b,", 0, 0),
            ("c", 9, 95),
            ("c", 9, 999_999_997),
            (long, 11, 3),
        ];
        for dialect in &dialects {
            for shape in [&Shape::default(), &narrow, &reordered] {
                let mut by_run = default_writer(shape, dialect);
                let mut one_by_one = default_writer(shape, dialect);
                for (name, sequence, vertex) in sequences {
                    let mut first = vertex_of(name, &tuples[0]);
                    first.sequence = sequence;
                    first.vertex = vertex;
                    let run = Vertices {
                        first,
                        tuples: &tuples,
                    };
                    for range in [0..1, 1..4, 4..8] {
                        by_run
                            .vertices(&Vertices {
                                first: run.get(range.start),
                                tuples: &tuples[range],
                            })
                            .unwrap();
                    }
                    for i in 0..tuples.len() {
                        one_by_one.vertex(&run.get(i)).unwrap();
                    }
                }
                let (by_run, one_by_one) = (text(by_run), text(one_by_one));
                assert_eq!(by_run, one_by_one);
                let rows = sequences.len() * tuples.len() + usize::from(dialect.header);
                assert_eq!(by_run.lines().count(), rows);
                if shape.select.is_none() && dialect.delimiter == b',' {
                    assert!(by_run.contains("\n3,c,Point,0,,100,8,9,10,\n3,c,Point,0,,101,-1.25"));
                    assert!(by_run.contains(",999999999,3,4,5,\n3,c,Point,0,,1000000000,6,7,,"));
                }
            }
        }
    }

    fn vertex_of<'a>(name: &'a str, t: &Tuple<'a>) -> Vertex<'a> {
        Vertex {
            longitude: t.longitude,
            latitude: t.latitude,
            altitude: t.altitude,
            tuple: t.text,
            ..vertex(name, None)
        }
    }

    #[test]
    fn hostile_names_are_quoted() {
        let mut w = default_writer(&Shape::default(), &Dialect::default());
        w.vertex(&vertex("a,\"b\"\nc", None)).unwrap();
        let text = text(w);
        assert!(
            text.ends_with("3,\"a,\"\"b\"\"\nc\",Point,0,,10,-8.50,1e-3,,\n"),
            "{text}"
        );
    }

    #[test]
    fn formula_guard_spares_numbers_and_ordinals() {
        let dialect = Dialect {
            formula_guard: true,
            header: false,
            ..Dialect::default()
        };
        let mut w = default_writer(&Shape::default(), &dialect);
        w.vertex(&vertex("=HYPERLINK(\"x\")", None)).unwrap();
        w.vertex(&vertex("@SUM", None)).unwrap();
        w.vertex(&vertex("fine", None)).unwrap();
        assert_eq!(
            text(w),
            "3,\"'=HYPERLINK(\"\"x\"\")\",Point,0,,10,-8.50,1e-3,,\n\
             3,'@SUM,Point,0,,10,-8.50,1e-3,,\n\
             3,fine,Point,0,,10,-8.50,1e-3,,\n"
        );
    }

    #[test]
    fn tsv_bom_and_no_header() {
        let dialect = Dialect {
            delimiter: b'\t',
            bom: true,
            ..Dialect::default()
        };
        let mut w = default_writer(&Shape::default(), &dialect);
        w.vertex(&vertex("a b", None)).unwrap();
        let out = text(w);
        assert!(out.starts_with("\u{feff}feature\tname\t"), "{out:?}");
        assert!(out.ends_with("3\ta b\tPoint\t0\t\t10\t-8.50\t1e-3\t\t\n"));

        let dialect = Dialect {
            header: false,
            ..Dialect::default()
        };
        let mut w = default_writer(&Shape::default(), &dialect);
        w.vertex(&vertex("x", None)).unwrap();
        assert_eq!(text(w), "3,x,Point,0,,10,-8.50,1e-3,,\n");
    }

    fn attributes() -> Attributes {
        Attributes {
            folder: "Trips/2024".into(),
            description: "d".into(),
            timestamp: "2024-05-01".into(),
            style: "#red".into(),
            data: vec![
                ("speed".into(), "12".into()),
                ("name".into(), "other".into()),
            ],
            ..Attributes::default()
        }
    }

    #[test]
    fn attribute_columns_and_clashing_field_names() {
        let shape = Shape {
            attributes: true,
            ..Shape::default()
        };
        let fields = vec!["speed".to_owned(), "name".to_owned(), "missing".to_owned()];
        let layout = shape.layout(&fields);
        assert_eq!(
            layout.headers().join(","),
            "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when,\
             folder,description,timestamp,begin,end,style,speed,data.name,missing"
        );
        let mut w = RowWriter::with_layout(
            Vec::new(),
            layout,
            RowKind::Vertices,
            &Dialect::default(),
            "",
        )
        .unwrap();
        let a = attributes();
        w.vertex(&vertex("A", Some(&a))).unwrap();
        assert!(
            text(w).ends_with(",Trips/2024,d,2024-05-01,,,#red,12,other,\n"),
            "data values follow their names"
        );
    }

    #[test]
    fn columns_select_and_order() {
        let shape = Shape {
            rows: RowKind::Features,
            attributes: true,
            source: true,
            select: Some(vec![
                "wkt".into(),
                "data.name".into(),
                "source".into(),
                "speed".into(),
            ]),
        };
        assert!(shape.check().is_ok());
        assert!(shape.selects_fields());
        let fields = vec!["speed".to_owned(), "name".to_owned()];
        assert!(shape.fields_not_found(&fields).is_empty());
        let layout = shape.layout(&fields);
        assert_eq!(layout.headers(), ["wkt", "data.name", "source", "speed"]);
        let mut w = RowWriter::with_layout(
            Vec::new(),
            layout,
            RowKind::Features,
            &Dialect::default(),
            "in/a.kml",
        )
        .unwrap();
        let a = attributes();
        let parts = [Part {
            geometry: "Point".into(),
            ring: Ring::None,
            tuples: vec![["1".into(), "2".into(), String::new()]],
        }];
        w.feature(&Feature {
            ordinal: 0,
            name: "A",
            attributes: Some(&a),
            geometry: &Geometry::from_parts(&parts).unwrap(),
        })
        .unwrap();
        w.vertex(&vertex("ignored in feature rows", Some(&a)))
            .unwrap();
        assert_eq!(
            text(w),
            "wkt,data.name,source,speed\nPOINT (1 2),other,in/a.kml,12\n"
        );
    }
}

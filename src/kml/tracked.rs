//! A buffered reader that can tell the line and column of the bytes it holds.
//!
//! quick-xml reports errors as byte offsets, and the coordinate tokenizer knows where each
//! tuple starts only as an offset too; users want `LINE:COLUMN`. Positions are needed rarely
//! (an error, a warning), so nothing is done per newline: when a buffer is replaced its
//! newlines are counted in one vectorised pass, and an offset is resolved on demand while the
//! buffer that holds it is still here. Resolving several offsets of one buffer in increasing
//! order scans it only once. The reader owns its buffer (rather than wrapping `BufReader`) so
//! that it can see both consumed and unconsumed bytes.

use std::io::{self, BufRead, Read};

use super::Position;

const BUFFER: usize = 128 * 1024;

thread_local! {
    /// The buffer of the last reader this thread dropped, for its next one: on a batch of small
    /// files, allocating and zeroing a fresh 128 KiB per file cost more than reading into it.
    static SPARE: std::cell::Cell<Option<Box<[u8]>>> = const { std::cell::Cell::new(None) };
}

pub struct Tracked<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[0]`.
    buf_offset: u64,
    /// Line (1-based) of `buf[0]`, and the absolute offset where that line starts.
    buf_line: u64,
    buf_line_start: u64,
    /// The byte before `buf[0]` was a CR: an LF at `buf[0]` ends no line of its own.
    buf_after_cr: bool,
    /// The last resolved position, to resume from: index into `buf`, its line and the offset
    /// where that line starts.
    cursor: (usize, u64, u64),
    /// Reading at or past this offset fails with [`TooLong`] (see [`Tracked::limit`]).
    limit: Option<u64>,
}

impl<R> Drop for Tracked<R> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // Not while the thread's own storage is being torn down.
        let _ = SPARE.try_with(|spare| spare.set(Some(buf)));
    }
}

/// The error of a read past [`Tracked::limit`].
#[derive(Debug)]
pub struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("read limit reached")
    }
}

impl std::error::Error for TooLong {}

impl<R: Read> Tracked<R> {
    pub fn new(inner: R) -> Self {
        Tracked {
            inner,
            buf: SPARE
                .try_with(|spare| spare.take())
                .ok()
                .flatten()
                .unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice()),
            pos: 0,
            end: 0,
            buf_offset: 0,
            buf_line: 1,
            buf_line_start: 0,
            buf_after_cr: false,
            cursor: (0, 1, 0),
            limit: None,
        }
    }

    /// Fail reads at or past `offset` (`None`: no limit). quick-xml keeps a whole tag in
    /// memory, so the reader bounds how far one tag may reach.
    pub fn limit(&mut self, offset: Option<u64>) {
        self.limit = offset;
    }

    /// Absolute offset of the next byte to be consumed.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// The line and column of an absolute offset, if it is in the current buffer (consumed or
    /// not) or just after it.
    pub fn position_of(&mut self, offset: u64) -> Option<Position> {
        let index = usize::try_from(offset.checked_sub(self.buf_offset)?).ok()?;
        if index > self.end {
            return None;
        }
        let (from, mut line, mut line_start) = if self.cursor.0 <= index {
            self.cursor
        } else {
            (0, self.buf_line, self.buf_line_start)
        };
        let span = &self.buf[from..index];
        let after_cr = match from {
            0 => self.buf_after_cr,
            _ => self.buf[from - 1] == b'\r',
        };
        line += count_line_breaks(span, after_cr);
        // The LF of a CR LF ends no line of its own, but the next line starts after it.
        if let Some(last) = memchr::memrchr2(b'\n', b'\r', span) {
            line_start = self.buf_offset + (from + last + 1) as u64;
        }
        self.cursor = (index, line, line_start);
        Some(Position {
            line,
            column: offset - line_start + 1,
        })
    }

    /// Drop `buf[..keep_from]`, carrying its lines into the count.
    fn retire(&mut self, keep_from: usize) {
        let gone = &self.buf[..keep_from];
        self.buf_line += count_line_breaks(gone, self.buf_after_cr);
        if let Some(last) = memchr::memrchr2(b'\n', b'\r', gone) {
            self.buf_line_start = self.buf_offset + last as u64 + 1;
        }
        if let Some(&b) = gone.last() {
            self.buf_after_cr = b == b'\r';
        }
        self.buf_offset += keep_from as u64;
        self.cursor = (0, self.buf_line, self.buf_line_start);
    }

    /// The unconsumed bytes, at least `n` of them unless the input ends first: lets the
    /// reader look at a whole `<![CDATA[` or `-->` even where it straddles two reads.
    #[inline]
    pub fn fill_at_least(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            self.refill_at_least(n)?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn refill_at_least(&mut self, n: usize) -> io::Result<()> {
        self.retire(self.pos);
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < n.min(self.buf.len()) {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The line breaks in `bytes` by XML's end-of-line rule: LF, CR LF and a lone CR (old Mac
/// files) each end a line. A CR counts where it is, so an LF right after one counts for
/// nothing; `after_cr` says the byte before `bytes` was a CR.
fn count_line_breaks(bytes: &[u8], after_cr: bool) -> u64 {
    if memchr::memchr(b'\r', bytes).is_none() {
        let lf = count_newlines(bytes);
        return if after_cr && bytes.first() == Some(&b'\n') {
            lf - 1
        } else {
            lf
        };
    }
    let mut breaks = 0;
    let mut after_cr = after_cr;
    for &b in bytes {
        breaks += u64::from(b == b'\r' || (b == b'\n' && !after_cr));
        after_cr = b == b'\r';
    }
    breaks
}

/// Newlines in `bytes`: every byte of an input passes here once, and bytecount compares 32
/// bytes at a time (AVX2 where the CPU has it) where the byte-per-lane loop this replaces
/// ran at about an instruction per byte, 5 % of converting a coordinate-heavy file.
fn count_newlines(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through_buffer(self, out)
    }
}

/// `Read::read` for a reader whose `BufRead` side does the work.
pub fn read_through_buffer(reader: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(out.len());
    out[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

impl<R: Read> BufRead for Tracked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.limit.is_some_and(|limit| self.offset() >= limit) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, TooLong));
        }
        if self.pos == self.end {
            let kept = (
                self.buf_offset,
                self.buf_line,
                self.buf_line_start,
                self.buf_after_cr,
                self.cursor,
            );
            let old_end = self.end;
            self.retire(self.end);
            self.pos = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(0) => {
                        // End of input: nothing was overwritten, so the last buffer stays
                        // resolvable (an error at the end of a truncated file needs it).
                        (
                            self.buf_offset,
                            self.buf_line,
                            self.buf_line_start,
                            self.buf_after_cr,
                            self.cursor,
                        ) = kept;
                        self.pos = old_end;
                        self.end = old_end;
                        break;
                    }
                    Ok(n) => {
                        self.end = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most two bytes per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(2);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn at(line: u64, column: u64) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn newlines_are_counted_in_long_and_short_runs() {
        for len in [0, 1, 254, 255, 256, 1000, 70_000] {
            let text: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { b'\n' } else { b'x' })
                .collect();
            let plain = text.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(count_newlines(&text), plain, "{len}");
        }
        assert_eq!(count_newlines(&[b'\n'; 1000]), 1000);
    }

    #[test]
    fn positions_before_and_after_consuming() {
        let text = b"ab\ncde\n\nfgh";
        let mut r = Tracked::new(&text[..]);
        r.fill_buf().unwrap();
        // Unconsumed offsets, in any order.
        assert_eq!(r.position_of(8), at(4, 1));
        assert_eq!(r.position_of(4), at(2, 2));
        r.consume(9);
        assert_eq!(r.position_of(r.offset()), at(4, 2));
        // Consumed offsets of the same buffer.
        assert_eq!(r.position_of(1), at(1, 2));
        assert_eq!(r.position_of(5), at(2, 3));
        assert_eq!(r.position_of(11), at(4, 4));
        assert_eq!(r.position_of(12), None);
    }

    #[test]
    fn lines_are_carried_across_buffers() {
        let text = "x\n".repeat(100_000);
        let mut r = Tracked::new(text.as_bytes());
        let mut one = [0u8; 3];
        while r.offset() < 150_000 {
            r.read_exact(&mut one).unwrap();
        }
        // In the second buffer, consumed or not.
        assert_eq!(r.position_of(149_998), at(75_000, 1));
        assert_eq!(r.position_of(199_998), at(100_000, 1));
        // Offsets of a buffer that was replaced are no longer known.
        assert_eq!(r.position_of(0), None);
        while r.read(&mut one).unwrap() > 0 {}
        assert_eq!(r.position_of(r.offset()), at(100_001, 1));
        // The last buffer stays known at the end of input.
        assert_eq!(r.position_of(199_998), at(100_000, 1));
    }

    /// See: issue 17 (10): with CR-only line endings (old Mac files) every position was on
    /// line 1. CR, LF and CR LF each end a line, also where a buffer ends between CR and LF.
    #[test]
    fn cr_lf_and_lone_cr_each_end_a_line() {
        let text = b"a\rbc\r\nd\n\r\re\r\n\nf\r";
        // The reference: the line and column of every offset, by XML's end-of-line rule.
        let mut expected = Vec::new();
        let (mut line, mut start) = (1, 0);
        for (i, &b) in text.iter().enumerate() {
            expected.push(at(line, (i - start + 1) as u64));
            let lf_after_cr = b == b'\n' && i > 0 && text[i - 1] == b'\r';
            if b == b'\r' || b == b'\n' {
                if !lf_after_cr {
                    line += 1;
                }
                start = i + 1;
            }
        }
        expected.push(at(line, (text.len() - start + 1) as u64));
        // Read whole, then two bytes at a time (positions asked as the buffers pass).
        let mut whole = Tracked::new(&text[..]);
        whole.fill_buf().unwrap();
        let got: Vec<_> = (0..=text.len() as u64)
            .map(|o| whole.position_of(o))
            .collect();
        assert_eq!(got, expected);
        let mut trickle = Tracked::new(Trickle(text));
        let mut one = [0u8; 1];
        for offset in 0..text.len() as u64 {
            assert_eq!(
                trickle.position_of(offset).or_else(|| {
                    trickle.fill_buf().unwrap();
                    trickle.position_of(offset)
                }),
                expected[offset as usize],
                "offset {offset}"
            );
            trickle.read_exact(&mut one).unwrap();
        }
    }

    #[test]
    fn fill_at_least_keeps_unconsumed_bytes_and_positions() {
        let mut r = Tracked::new(Trickle(b"ab\n<![CDATA[x]]>"));
        assert_eq!(r.fill_buf().unwrap(), b"ab");
        r.consume(2);
        assert_eq!(r.fill_at_least(4).unwrap(), b"\n<![");
        r.consume(1);
        assert_eq!(&r.fill_at_least(9).unwrap()[..9], b"<![CDATA[");
        assert_eq!(r.position_of(4), at(2, 2));
        r.consume(9);
        assert_eq!(r.fill_at_least(100).unwrap(), b"x]]>");
        assert_eq!(r.position_of(12), at(2, 10));
    }
}

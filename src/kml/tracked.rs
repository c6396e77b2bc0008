//! A buffered reader that knows the line and column of every byte it hands out.
//!
//! quick-xml reports errors as byte offsets, and the coordinate tokenizer knows where each
//! tuple starts only as an offset too; users want `LINE:COLUMN`. Counting newlines as bytes
//! are consumed costs one `memchr` pass, which is far cheaper than keeping the text around.
//! The reader owns its buffer (rather than wrapping `BufReader`) so that it can also resolve
//! offsets that are buffered but not consumed yet.

use std::io::{self, BufRead, Read};

use super::Position;

/// How many recent line starts are remembered to resolve offsets a little behind the
/// consumed position (an error inside a start tag that spans several lines).
const RECENT_LINES: usize = 1024;
const BUFFER: usize = 128 * 1024;

pub struct Tracked<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[0]`.
    buf_offset: u64,
    /// Line number (1-based) of the consumed position.
    line: u64,
    /// Absolute offsets where the most recent lines start, oldest first; the last is the
    /// start of `line`.
    line_starts: std::collections::VecDeque<u64>,
}

impl<R: Read> Tracked<R> {
    pub fn new(inner: R) -> Self {
        let mut line_starts = std::collections::VecDeque::with_capacity(RECENT_LINES);
        line_starts.push_back(0);
        Tracked {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            buf_offset: 0,
            line: 1,
            line_starts,
        }
    }

    /// Absolute offset of the next byte to be consumed.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// The line and column of an absolute offset, if it is still known: anything from a
    /// thousand lines behind the consumed position up to the end of the buffered bytes.
    pub fn position_of(&self, offset: u64) -> Option<Position> {
        let consumed = self.offset();
        if offset >= consumed {
            let ahead = usize::try_from(offset - consumed).ok()?;
            let unconsumed = &self.buf[self.pos..self.end];
            let span = unconsumed.get(..ahead).unwrap_or(unconsumed);
            let newlines = memchr::memchr_iter(b'\n', span).count() as u64;
            let line_start = match memchr::memrchr(b'\n', span) {
                Some(i) => consumed + i as u64 + 1,
                None => *self.line_starts.back()?,
            };
            return Some(Position {
                line: self.line + newlines,
                column: offset - line_start + 1,
            });
        }
        // Walk back through the recent line starts.
        let idx = self.line_starts.iter().rposition(|&s| s <= offset)?;
        let back = (self.line_starts.len() - 1 - idx) as u64;
        Some(Position {
            line: self.line - back,
            column: offset - self.line_starts[idx] + 1,
        })
    }
}

impl<R: Read> Tracked<R> {
    /// The unconsumed bytes, at least `n` of them unless the input ends first: lets the
    /// reader look at a whole `<![CDATA[` or `-->` even where it straddles two reads.
    pub fn fill_at_least(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.buf_offset += self.pos as u64;
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
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Tracked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.buf_offset += self.end as u64;
            self.pos = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
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
        let amt = amt.min(self.end - self.pos);
        let span = &self.buf[self.pos..self.pos + amt];
        let base = self.buf_offset + self.pos as u64;
        for i in memchr::memchr_iter(b'\n', span) {
            self.line += 1;
            if self.line_starts.len() == RECENT_LINES {
                self.line_starts.pop_front();
            }
            self.line_starts.push_back(base + i as u64 + 1);
        }
        self.pos += amt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_before_and_after_consuming() {
        let text = b"ab\ncde\n\nfgh";
        let mut r = Tracked::new(&text[..]);
        r.fill_buf().unwrap();
        // Unconsumed offsets resolve through the buffer.
        assert_eq!(r.position_of(4), Some(Position { line: 2, column: 2 }));
        assert_eq!(r.position_of(8), Some(Position { line: 4, column: 1 }));
        r.consume(9);
        assert_eq!(
            r.position_of(r.offset()),
            Some(Position { line: 4, column: 2 })
        );
        // Consumed offsets resolve through the recent line starts.
        assert_eq!(r.position_of(1), Some(Position { line: 1, column: 2 }));
        assert_eq!(r.position_of(5), Some(Position { line: 2, column: 3 }));
    }

    #[test]
    fn fill_at_least_keeps_unconsumed_bytes_and_positions() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(2);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Tracked::new(Trickle(b"ab\n<![CDATA[x]]>"));
        assert_eq!(r.fill_buf().unwrap(), b"ab");
        r.consume(2);
        assert_eq!(r.fill_at_least(4).unwrap(), b"\n<![");
        r.consume(1);
        assert_eq!(&r.fill_at_least(9).unwrap()[..9], b"<![CDATA[");
        assert_eq!(r.position_of(4), Some(Position { line: 2, column: 2 }));
        r.consume(9);
        assert_eq!(r.fill_at_least(100).unwrap(), b"x]]>");
    }

    #[test]
    fn small_reads_keep_counting() {
        let text = "x\n".repeat(5000);
        let mut r = Tracked::new(text.as_bytes());
        let mut one = [0u8; 3];
        while r.read(&mut one).unwrap() > 0 {}
        assert_eq!(
            r.position_of(r.offset()),
            Some(Position {
                line: 5001,
                column: 1
            })
        );
        assert_eq!(
            r.position_of(9998),
            Some(Position {
                line: 5000,
                column: 1
            })
        );
        // Too far behind to be remembered.
        assert_eq!(r.position_of(0), None);
    }
}

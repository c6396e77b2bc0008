//! A first-in first-out queue of byte records that moves to a temporary file when it grows.
//!
//! Streaming KML sometimes has to hold things back: the rows of a Placemark whose `<name>`
//! comes after its geometry, and the `<when>` elements of a gx:Track that all come before
//! the first `<gx:coord>`. Both can be as long as the file, so in memory they are kept only
//! up to a limit and the rest waits on disk, in order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes kept in memory before the queue spills to disk.
const MEMORY_LIMIT: usize = 4 << 20;
/// Bytes read back from disk at a time.
const READ_BLOCK: usize = 1 << 20;

#[derive(Default)]
pub struct SpillQueue {
    /// Newest records, not spilled; `mem[mem_read..]` is unread.
    mem: Vec<u8>,
    mem_read: usize,
    /// Spilled records (older than everything in `mem`): `[file_read, file_len)` is unread,
    /// except what was already loaded into `block`.
    file: Option<File>,
    file_read: u64,
    file_len: u64,
    /// Records loaded back from the file; `block[block_read..]` is unread.
    block: Vec<u8>,
    block_read: usize,
    records: usize,
}

impl SpillQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything (keeps the allocations and the file for reuse).
    pub fn clear(&mut self) {
        self.mem.clear();
        self.mem_read = 0;
        self.file_read = 0;
        self.file_len = 0;
        self.block.clear();
        self.block_read = 0;
        self.records = 0;
    }

    /// Append a record made of `fields`.
    pub fn push(&mut self, fields: &[&[u8]]) -> io::Result<()> {
        let len: usize = fields.iter().map(|f| 4 + f.len()).sum();
        self.mem.extend_from_slice(&(len as u32).to_le_bytes());
        for field in fields {
            self.mem
                .extend_from_slice(&(field.len() as u32).to_le_bytes());
            self.mem.extend_from_slice(field);
        }
        self.records += 1;
        if self.mem.len() - self.mem_read > MEMORY_LIMIT {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.seek(SeekFrom::Start(self.file_len))?;
        file.write_all(&self.mem[self.mem_read..])?;
        self.file_len += (self.mem.len() - self.mem_read) as u64;
        self.mem.clear();
        self.mem_read = 0;
        Ok(())
    }

    /// Take the oldest record; its fields are handed to `f`.
    pub fn pop<T>(&mut self, f: impl FnOnce(Fields<'_>) -> T) -> io::Result<Option<T>> {
        if self.records == 0 {
            return Ok(None);
        }
        if self.block_read == self.block.len() && self.file_read < self.file_len {
            self.load_block()?;
        }
        let (buf, read) = if self.block_read < self.block.len() {
            (&self.block, &mut self.block_read)
        } else {
            (&self.mem, &mut self.mem_read)
        };
        let record = next_record(buf, *read)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "spill queue corrupted"))?;
        *read += 4 + record.len();
        self.records -= 1;
        let value = f(Fields { rest: record });
        if self.records == 0 {
            self.clear();
        }
        Ok(Some(value))
    }

    /// Load whole records from the file into `block`.
    fn load_block(&mut self) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        self.block.clear();
        self.block_read = 0;
        file.seek(SeekFrom::Start(self.file_read))?;
        let want = (self.file_len - self.file_read).min(READ_BLOCK as u64) as usize;
        self.block.resize(want, 0);
        file.read_exact(&mut self.block)?;
        // Cut the block after its last whole record; a record larger than the block is read
        // whole.
        let mut end = 0;
        while let Some(len) = record_len(&self.block, end) {
            if end + 4 + len > self.block.len() {
                break;
            }
            end += 4 + len;
        }
        if end == 0 {
            let len = record_len(&self.block, 0).unwrap_or(0);
            self.block.resize(4 + len, 0);
            file.read_exact(&mut self.block[want..])?;
            end = self.block.len();
        }
        self.block.truncate(end);
        self.file_read += end as u64;
        Ok(())
    }
}

fn record_len(buf: &[u8], at: usize) -> Option<usize> {
    let bytes = buf.get(at..at + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
}

fn next_record(buf: &[u8], at: usize) -> Option<&[u8]> {
    let len = record_len(buf, at)?;
    buf.get(at + 4..at + 4 + len)
}

/// The fields of a popped record, in the order they were pushed.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = record_len(self.rest, 0)?;
        let field = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop_all(q: &mut SpillQueue) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(r) = q
            .pop(|f| f.map(<[u8]>::to_vec).collect::<Vec<_>>())
            .unwrap()
        {
            out.push(r);
        }
        out
    }

    #[test]
    fn small_queue_stays_in_memory_and_keeps_order() {
        let mut q = SpillQueue::new();
        q.push(&[b"a", b""]).unwrap();
        q.push(&[b"bc", b"d"]).unwrap();
        assert_eq!(q.records, 2);
        assert!(q.file.is_none());
        let all = pop_all(&mut q);
        assert_eq!(
            all,
            vec![
                vec![b"a".to_vec(), vec![]],
                vec![b"bc".to_vec(), b"d".to_vec()]
            ]
        );
        assert_eq!(q.records, 0);
    }

    #[test]
    fn large_queue_spills_and_interleaves() {
        let mut q = SpillQueue::new();
        let mut expected = std::collections::VecDeque::new();
        let mut n = 0u64;
        // Push far more than the memory limit, popping a little along the way.
        for round in 0..3 {
            for _ in 0..400_000 {
                let value = format!("when-{n:012}").into_bytes();
                q.push(&[&value]).unwrap();
                expected.push_back(value);
                n += 1;
            }
            for _ in 0..100_000 * (round + 1) {
                let got = q.pop(|mut f| f.next().unwrap().to_vec()).unwrap().unwrap();
                assert_eq!(got, expected.pop_front().unwrap());
            }
        }
        assert!(q.file.is_some());
        assert!(q.mem.capacity() < 3 * MEMORY_LIMIT);
        while let Some(got) = q.pop(|mut f| f.next().unwrap().to_vec()).unwrap() {
            assert_eq!(got, expected.pop_front().unwrap());
        }
        assert!(expected.is_empty());
    }

    #[test]
    fn a_record_larger_than_a_block() {
        let mut q = SpillQueue::new();
        let big = vec![7u8; READ_BLOCK * 5 + 3];
        q.push(&[b"x"]).unwrap();
        q.push(&[&big]).unwrap();
        q.push(&[b"y"]).unwrap();
        let all = pop_all(&mut q);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1][0].len(), big.len());
        assert_eq!(all[2][0], b"y");
    }
}

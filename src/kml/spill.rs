//! Queues and logs of byte records that move to a temporary file when they grow.
//!
//! Streaming KML sometimes has to hold things back: the rows of a Placemark whose `<name>`
//! comes after its geometry, the `<when>` elements of a gx:Track that all come before
//! the first `<gx:coord>`, and the whole geometry of a feature that is written as one WKT
//! value. All can be as long as the file, so in memory they are kept only up to a limit and
//! the rest waits on disk, in order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes kept in memory before the queue spills to disk.
pub(crate) const MEMORY_LIMIT: usize = 4 << 20;
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
        encode(&mut self.mem, fields);
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

/// Append the record made of `fields` to `buf`: its length, then each field's length and
/// bytes.
fn encode(buf: &mut Vec<u8>, fields: &[&[u8]]) {
    let len: usize = fields.iter().map(|f| 4 + f.len()).sum();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    for field in fields {
        buf.extend_from_slice(&(field.len() as u32).to_le_bytes());
        buf.extend_from_slice(field);
    }
}

/// An append-only list of byte records that can be read through again and again: the newest
/// records in memory, up to [`MEMORY_LIMIT`] bytes, the older ones in a temporary file.
pub struct RecordLog {
    mem: Vec<u8>,
    file: Option<File>,
    /// Bytes of records in `file` (it may be longer, from an earlier use).
    file_len: u64,
    memory_limit: usize,
}

impl RecordLog {
    pub fn new() -> Self {
        Self::with_memory_limit(MEMORY_LIMIT)
    }

    /// A log that spills past `limit` bytes (tests reach the file cheaply with a small one).
    pub fn with_memory_limit(limit: usize) -> Self {
        RecordLog {
            mem: Vec::new(),
            file: None,
            file_len: 0,
            memory_limit: limit,
        }
    }

    /// Forget every record; the disk space the file took is given back.
    pub fn clear(&mut self) -> io::Result<()> {
        self.mem.clear();
        if self.file_len > 0 {
            self.file_len = 0;
            if let Some(file) = &self.file {
                file.set_len(0)?;
            }
        }
        Ok(())
    }

    /// Whether every record is in memory.
    pub fn in_memory(&self) -> bool {
        self.file_len == 0
    }

    /// Append a record made of `fields`.
    pub fn push(&mut self, fields: &[&[u8]]) -> io::Result<()> {
        encode(&mut self.mem, fields);
        if self.mem.len() > self.memory_limit {
            let file = match &mut self.file {
                Some(file) => file,
                None => self.file.insert(tempfile::tempfile()?),
            };
            file.seek(SeekFrom::Start(self.file_len))?;
            file.write_all(&self.mem)?;
            self.file_len += self.mem.len() as u64;
            self.mem.clear();
        }
        Ok(())
    }

    /// Hand every record, oldest first, to `f`; stop at its first error.
    pub fn replay(&self, f: &mut dyn FnMut(Fields<'_>) -> io::Result<()>) -> io::Result<()> {
        if let Some(mut file) = self.file.as_ref().filter(|_| self.file_len > 0) {
            file.seek(SeekFrom::Start(0))?;
            let mut left = self.file_len;
            let mut block: Vec<u8> = Vec::new();
            let mut start = 0;
            while left > 0 || start < block.len() {
                // Whole records first; then read on, keeping the partial one.
                let mut at = start;
                while let Some(record) = next_record(&block, at) {
                    f(Fields { rest: record })?;
                    at += 4 + record.len();
                }
                block.drain(..at);
                start = 0;
                if left == 0 {
                    if !block.is_empty() {
                        return Err(corrupted());
                    }
                    break;
                }
                let want = record_len(&block, 0)
                    .map_or(0, |len| (4 + len).saturating_sub(block.len()))
                    .max(READ_BLOCK)
                    .min(left as usize);
                let have = block.len();
                block.resize(have + want, 0);
                file.read_exact(&mut block[have..])?;
                left -= want as u64;
            }
        }
        let mut at = 0;
        while at < self.mem.len() {
            let record = next_record(&self.mem, at).ok_or_else(corrupted)?;
            f(Fields { rest: record })?;
            at += 4 + record.len();
        }
        Ok(())
    }
}

fn corrupted() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "spilled records corrupted")
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

    fn replay_all(log: &RecordLog) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        log.replay(&mut |f| {
            out.push(f.map(<[u8]>::to_vec).collect());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_record_log_replays_in_order_from_memory_and_file() {
        for limit in [0, 7, 100, 1 << 20] {
            let mut log = RecordLog::with_memory_limit(limit);
            let mut expected = Vec::new();
            for n in 0..5000u32 {
                let a = n.to_string().into_bytes();
                let b = vec![b'x'; (n % 13) as usize];
                log.push(&[&a, &b]).unwrap();
                expected.push(vec![a, b]);
            }
            assert_eq!(log.in_memory(), limit == 1 << 20);
            // Twice: reading does not consume.
            assert_eq!(replay_all(&log), expected);
            assert_eq!(replay_all(&log), expected);
            log.clear().unwrap();
            assert!(replay_all(&log).is_empty());
            log.push(&[b"again"]).unwrap();
            assert_eq!(replay_all(&log), vec![vec![b"again".to_vec()]]);
        }
    }

    #[test]
    fn a_record_log_with_records_larger_than_a_block() {
        let mut log = RecordLog::with_memory_limit(10);
        let big = vec![7u8; READ_BLOCK * 3 + 5];
        log.push(&[b"x"]).unwrap();
        log.push(&[&big]).unwrap();
        log.push(&[b"y"]).unwrap();
        assert!(!log.in_memory());
        let all = replay_all(&log);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1][0], big);
        assert_eq!(all[2][0], b"y");
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

//! `--shard K/N`: the part of a batch one machine (or one task of a job array) converts.
//!
//! Every input goes to exactly one of N shards, decided by a hash of its path relative to the
//! pattern's fixed base (the same path that names its CSV under `--out`), so the partition is the
//! same on every machine, in every run and with every build of kml2csv: the hash is FNV-1a 64
//! (fixed constants, not std's randomly keyed `DefaultHasher`), computed over the path's
//! components joined with `/` whatever the platform, and mapped to a shard with its high bits
//! (`hash * N >> 64`), which FNV mixes far better than the low ones that `hash % N` would use.

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

/// Shard `index` of `count` (0-based: `0/4` … `3/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether the input whose path relative to its pattern's base is `rel` belongs here.
    pub fn contains(self, rel: &Path) -> bool {
        shard_of(key_hash(rel), self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N` with `0 <= K < N`, both plain decimal numbers.
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "`{text}` is not a shard: write K/N with 0 <= K < N, e.g. 0/4 \
                 (with a Slurm array, start it at 0: --array=0-3)"
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let number = |s: &str| -> Result<u64, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// FNV-1a 64 of `rel` with `/` between its components (`.` components dropped), so that
/// `a/b.kml`, `./a/b.kml` and, on Windows, `a\b.kml` are one key.
pub fn key_hash(rel: &Path) -> u64 {
    let mut hash = Fnv1a::new();
    let mut first = true;
    for component in rel.components() {
        let part = match component {
            Component::CurDir => continue,
            Component::Normal(part) => part.as_encoded_bytes(),
            Component::ParentDir => b"..",
            Component::RootDir | Component::Prefix(_) => b"",
        };
        if !first {
            hash.write(b"/");
        }
        first = false;
        hash.write(part);
    }
    hash.0
}

/// Which of `count` shards a hash falls in: the high bits of `hash * count`.
fn shard_of(hash: u64, count: u64) -> u64 {
    ((u128::from(hash) * u128::from(count)) >> 64) as u64
}

/// The 64-bit FNV-1a hash (http://www.isthe.com/chongo/tech/comp/fnv/).
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv1a {
        Fnv1a(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(bytes: &[u8]) -> u64 {
        let mut hash = Fnv1a::new();
        hash.write(bytes);
        hash.0
    }

    /// The published FNV-1a 64 test vectors: if these change, every shard assignment changes.
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Pinned assignments: the same on every machine, run and Rust version.
    #[test]
    fn known_paths_keep_their_shard() {
        assert_eq!(key_hash(Path::new("2024/05/x.kml")), fnv(b"2024/05/x.kml"));
        assert_eq!(
            key_hash(Path::new("./2024/./05/x.kml")),
            fnv(b"2024/05/x.kml")
        );
        assert_eq!(key_hash(Path::new("x.kml")), 0x9fef_0340_687e_a5e1);
        let shards: Vec<u64> = ["a.kml", "b.kml", "c.kml", "d/e.kml", "small_00001.kml"]
            .iter()
            .map(|p| shard_of(key_hash(Path::new(p)), 4))
            .collect();
        assert_eq!(shards, PINNED_SHARDS_OF_4);
    }

    const PINNED_SHARDS_OF_4: [u64; 5] = [1, 2, 0, 3, 3];

    #[test]
    fn every_input_is_in_exactly_one_shard() {
        for count in [1, 2, 3, 7, 16] {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            let mut sizes = vec![0u64; count as usize];
            for i in 0..2000 {
                let rel = format!("crawl/{}/{i:05}.kml", i % 13);
                let owners: Vec<u64> = shards
                    .iter()
                    .filter(|s| s.contains(Path::new(&rel)))
                    .map(|s| s.index)
                    .collect();
                assert_eq!(owners.len(), 1, "{rel} in shards {owners:?} of {count}");
                sizes[owners[0] as usize] += 1;
            }
            // And roughly evenly: no shard more than 25% off its fair share.
            let fair = 2000 / count;
            for size in sizes {
                assert!(
                    size.abs_diff(fair) * 4 <= fair,
                    "{size} of 2000 in 1/{count}"
                );
            }
        }
    }

    #[test]
    fn parses_k_of_n_and_rejects_the_rest() {
        assert_eq!("0/1".parse(), Ok(Shard { index: 0, count: 1 }));
        assert_eq!("3/4".parse(), Ok(Shard { index: 3, count: 4 }));
        for bad in [
            "", "1", "4/4", "5/4", "0/0", "-1/4", "+1/4", "1/4/2", " 1/4", "a/b", "1/",
        ] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}

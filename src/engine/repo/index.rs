//! Index files and the in-memory index: which blob lives in which pack, at which offset.
//!
//! An index file is encrypted; its plaintext is `"FIDX" || version (u8 = 1)` followed by
//! pack records: `pack id (32) || pack size (u64 LE) || blob count (u32 LE)` and that many
//! blob records `id (32) || type (u8) || offset (u32) || length (u32) || raw length (u32)`.
//! Packs are written before the index files that list them, so a reader never sees an
//! index entry without its pack; packs that no index lists (a backup killed before it
//! wrote its index) are found and re-indexed from their headers by the next writer.

use super::id::{Id, IdMap};
use super::pack::{BlobType, PackEntry};

const MAGIC: &[u8; 4] = b"FIDX";
const VERSION: u8 = 1;
const PACK_RECORD: usize = 32 + 8 + 4;
const BLOB_RECORD: usize = 32 + 1 + 4 + 4 + 4;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "index file {name} is damaged ({reason}): run `ferry repair-index` to rebuild the index from the packs"
    )]
    Damaged { name: String, reason: String },
    #[error(
        "index file {name} has format version {version}, which this Ferry does not read (it reads version 1): upgrade Ferry"
    )]
    Version { name: String, version: u8 },
}

/// One pack as an index file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: Id,
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

pub fn encode(packs: &[IndexedPack]) -> Vec<u8> {
    let n: usize = packs
        .iter()
        .map(|p| PACK_RECORD + p.blobs.len() * BLOB_RECORD)
        .sum();
    let mut out = Vec::with_capacity(5 + n);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    for p in packs {
        out.extend_from_slice(&p.id.0);
        out.extend_from_slice(&p.size.to_le_bytes());
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
        for b in &p.blobs {
            out.extend_from_slice(&b.id.0);
            out.push(b.kind as u8);
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.length.to_le_bytes());
            out.extend_from_slice(&b.raw_length.to_le_bytes());
        }
    }
    out
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (a, b) = data.split_at(n);
    *data = b;
    Some(a)
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub fn decode(name: &str, data: &[u8]) -> Result<Vec<IndexedPack>, IndexError> {
    let damaged = |reason: &str| IndexError::Damaged {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let mut rest = data;
    let head = take(&mut rest, 5).ok_or_else(|| damaged("too short"))?;
    if &head[..4] != MAGIC {
        return Err(damaged("bad magic"));
    }
    if head[4] != VERSION {
        return Err(IndexError::Version {
            name: name.to_string(),
            version: head[4],
        });
    }
    let mut packs = Vec::new();
    while !rest.is_empty() {
        let p = take(&mut rest, PACK_RECORD).ok_or_else(|| damaged("truncated pack record"))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&p[..32]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&p[32..40]);
        let count = u32_at(&p[40..44]) as usize;
        if count.saturating_mul(BLOB_RECORD) > rest.len() {
            return Err(damaged("blob count exceeds file"));
        }
        let mut blobs = Vec::with_capacity(count);
        for _ in 0..count {
            let b = take(&mut rest, BLOB_RECORD).ok_or_else(|| damaged("truncated blob record"))?;
            let mut bid = [0u8; 32];
            bid.copy_from_slice(&b[..32]);
            let kind = BlobType::from_u8(b[32]).ok_or_else(|| damaged("unknown blob type"))?;
            blobs.push(PackEntry {
                id: Id(bid),
                kind,
                offset: u32_at(&b[33..37]),
                length: u32_at(&b[37..41]),
                raw_length: u32_at(&b[41..45]),
            });
        }
        packs.push(IndexedPack {
            id: Id(id),
            size: u64::from_le_bytes(size),
            blobs,
        });
    }
    Ok(packs)
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub kind: BlobType,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pack: u32,
    kind: BlobType,
    offset: u32,
    length: u32,
    raw_length: u32,
}

/// The in-memory index of a repository: every blob's location, and every indexed pack.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    pack_numbers: IdMap<u32>,
    blobs: IdMap<Slot>,
}

impl Index {
    /// Adds a pack and its blobs. A blob already indexed in another pack keeps its first
    /// location (duplicates are harmless; `prune` removes them).
    pub fn add_pack(&mut self, pack: Id, size: u64, blobs: &[PackEntry]) {
        let n = match self.pack_numbers.get(&pack) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((pack, size));
                self.pack_numbers.insert(pack, n);
                n
            }
        };
        self.blobs.reserve(blobs.len());
        for b in blobs {
            self.blobs.entry(b.id).or_insert(Slot {
                pack: n,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| BlobLocation {
            pack: self.packs[s.pack as usize].0,
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            raw_length: s.raw_length,
        })
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_numbers.contains_key(id)
    }

    /// Indexed packs with the sizes the index recorded.
    pub fn packs(&self) -> impl Iterator<Item = (Id, u64)> + '_ {
        self.packs.iter().copied()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// All blobs with their locations (in no particular order).
    pub fn blobs(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.blobs.iter().map(|(id, s)| {
            (
                *id,
                BlobLocation {
                    pack: self.packs[s.pack as usize].0,
                    kind: s.kind,
                    offset: s.offset,
                    length: s.length,
                    raw_length: s.raw_length,
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, offset: u32) -> PackEntry {
        PackEntry {
            id: Id([n; 32]),
            kind: BlobType::Data,
            offset,
            length: 10,
            raw_length: 20,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let packs = vec![
            IndexedPack {
                id: Id([1; 32]),
                size: 1000,
                blobs: vec![entry(5, 0), entry(6, 10)],
            },
            IndexedPack {
                id: Id([2; 32]),
                size: 50,
                blobs: vec![],
            },
        ];
        let enc = encode(&packs);
        assert_eq!(decode("x", &enc).unwrap(), packs);
        assert!(decode("x", &enc[..enc.len() - 3]).is_err());
        assert!(decode("x", b"FIDX").is_err());
        let mut v2 = enc.clone();
        v2[4] = 2;
        assert!(matches!(decode("x", &v2), Err(IndexError::Version { .. })));
        // A huge blob count does not allocate or panic.
        let mut huge = enc[..5 + 40].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode("x", &huge).is_err());
    }

    #[test]
    fn first_location_wins() {
        let mut idx = Index::default();
        idx.add_pack(Id([1; 32]), 100, &[entry(9, 0)]);
        idx.add_pack(Id([2; 32]), 100, &[entry(9, 50)]);
        let loc = idx.get(&Id([9; 32])).unwrap();
        assert_eq!(loc.pack, Id([1; 32]));
        assert_eq!(idx.pack_count(), 2);
        assert_eq!(idx.blob_count(), 1);
    }
}

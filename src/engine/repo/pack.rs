//! Pack files: many encrypted blobs in one storage object.
//!
//! Layout (see `docs/FORMAT.md`):
//! `blob_0 || blob_1 || ... || encrypted header || header length (u32 LE)`.
//! Each blob is `encrypt(flag || payload)` where flag 0 is raw and 1 is zstd. The header
//! lists, in order, each blob's type, stored length, raw length and id, so a pack can be
//! re-indexed from its tail alone.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::crypto::MasterKey;
use super::id::Id;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    /// File contents (or documents).
    Data = 0,
    /// Serialised directory trees.
    Tree = 1,
}

impl BlobType {
    pub fn from_u8(b: u8) -> Option<BlobType> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// One blob as a pack header lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Id,
    pub kind: BlobType,
    pub offset: u32,
    /// Bytes stored (encrypted, maybe compressed).
    pub length: u32,
    /// Bytes of the plaintext content.
    pub raw_length: u32,
}

const HEADER_ENTRY: usize = 1 + 4 + 4 + 32;
/// Largest pack header accepted when reading (guards against a corrupt length field).
const MAX_HEADER: u32 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("pack {pack} is {size} bytes, too short to be a pack: it is truncated")]
    TooShort { pack: String, size: u64 },
    #[error(
        "pack {pack} has a header length of {len} bytes, which cannot be right: the pack is damaged"
    )]
    BadHeaderLength { pack: String, len: u32 },
    #[error("the header of pack {pack} is damaged: {reason}")]
    BadHeader { pack: String, reason: String },
}

/// Serialises the header entries (plaintext, before encryption).
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * HEADER_ENTRY);
    for e in entries {
        out.push(e.kind as u8);
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
        out.extend_from_slice(&e.id.0);
    }
    out
}

/// Parses decrypted header bytes into entries with offsets.
pub fn decode_header(
    pack: &str,
    data: &[u8],
    header_offset: u64,
) -> Result<Vec<PackEntry>, PackError> {
    if !data.len().is_multiple_of(HEADER_ENTRY) {
        return Err(PackError::BadHeader {
            pack: pack.to_string(),
            reason: format!("{} bytes is not a whole number of entries", data.len()),
        });
    }
    let mut offset: u64 = 0;
    let mut out = Vec::with_capacity(data.len() / HEADER_ENTRY);
    for e in data.chunks_exact(HEADER_ENTRY) {
        let kind = BlobType::from_u8(e[0]).ok_or_else(|| PackError::BadHeader {
            pack: pack.to_string(),
            reason: format!("unknown blob type {}", e[0]),
        })?;
        let length = u32::from_le_bytes([e[1], e[2], e[3], e[4]]);
        let raw_length = u32::from_le_bytes([e[5], e[6], e[7], e[8]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[9..41]);
        if offset + u64::from(length) > header_offset {
            return Err(PackError::BadHeader {
                pack: pack.to_string(),
                reason: "blobs extend past the header".to_string(),
            });
        }
        out.push(PackEntry {
            id: Id(id),
            kind,
            offset: offset as u32,
            length,
            raw_length,
        });
        offset += u64::from(length);
    }
    Ok(out)
}

/// Where the encrypted header of a pack of `size` bytes starts, given its trailing
/// length field.
pub fn header_span(pack: &str, size: u64, header_len: u32) -> Result<(u64, u64), PackError> {
    if header_len > MAX_HEADER || u64::from(header_len) + 4 > size {
        return Err(PackError::BadHeaderLength {
            pack: pack.to_string(),
            len: header_len,
        });
    }
    Ok((size - 4 - u64::from(header_len), u64::from(header_len)))
}

pub fn min_pack_size() -> u64 {
    4 + super::crypto::OVERHEAD as u64
}

/// A pack being written to a local staging file.
#[derive(Debug)]
pub struct PackBuilder {
    pub path: PathBuf,
    file: BufWriter<File>,
    hasher: blake3::Hasher,
    pub entries: Vec<PackEntry>,
    pub size: u64,
}

/// A finished pack, staged on local disk, ready to upload.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: Id,
    pub path: PathBuf,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn create(path: PathBuf) -> std::io::Result<PackBuilder> {
        let file = File::create(&path)?;
        Ok(PackBuilder {
            path,
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            size: 0,
        })
    }

    /// Appends one stored (already encrypted) blob.
    pub fn add(
        &mut self,
        id: Id,
        kind: BlobType,
        stored: &[u8],
        raw_length: u32,
    ) -> std::io::Result<()> {
        self.file.write_all(stored)?;
        self.hasher.update(stored);
        self.entries.push(PackEntry {
            id,
            kind,
            offset: self.size as u32,
            length: stored.len() as u32,
            raw_length,
        });
        self.size += stored.len() as u64;
        Ok(())
    }

    /// Writes the header, flushes and fsyncs the staged file.
    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack, super::Error> {
        let header = key.encrypt(&encode_header(&self.entries))?;
        let io = |e| super::Error::Staging(self.path.clone(), e);
        self.file.write_all(&header).map_err(io)?;
        self.hasher.update(&header);
        let len = (header.len() as u32).to_le_bytes();
        self.file.write_all(&len).map_err(io)?;
        self.hasher.update(&len);
        self.size += header.len() as u64 + 4;
        let file = self
            .file
            .into_inner()
            .map_err(|e| super::Error::Staging(self.path.clone(), e.into_error()))?;
        file.sync_data()
            .map_err(|e| super::Error::Staging(self.path.clone(), e))?;
        Ok(FinishedPack {
            id: Id(*self.hasher.finalize().as_bytes()),
            path: self.path,
            size: self.size,
            entries: self.entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_bounds() {
        let entries = vec![
            PackEntry {
                id: Id::hash(b"a"),
                kind: BlobType::Data,
                offset: 0,
                length: 100,
                raw_length: 90,
            },
            PackEntry {
                id: Id::hash(b"b"),
                kind: BlobType::Tree,
                offset: 100,
                length: 50,
                raw_length: 200,
            },
        ];
        let enc = encode_header(&entries);
        assert_eq!(decode_header("p", &enc, 150).unwrap(), entries);
        assert!(decode_header("p", &enc, 149).is_err());
        assert!(decode_header("p", &enc[..40], 150).is_err());
        assert!(header_span("p", 10, 100).is_err());
        assert_eq!(header_span("p", 200, 46).unwrap(), (150, 46));
    }
}

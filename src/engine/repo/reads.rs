//! Reading many blobs at once, organised by pack.
//!
//! Blobs are grouped by the pack that holds them and read in ranges of at most
//! `RANGE_MAX` bytes (neighbours closer than `GAP_MAX` share a read), so a
//! thousand small blobs of one pack cost a handful of reads instead of a thousand.
//! The restore of files and [`load_blobs`] (a snapshot's object documents, say) both
//! plan their reads here.

use rayon::prelude::*;

use super::backend::FileKind;
use super::id::{Id, IdMap};
use super::index::BlobLocation;
use super::{Error, Repository, Result};

/// Largest single read from a pack.
pub(crate) const RANGE_MAX: u64 = 4 * 1024 * 1024;
/// Blobs closer than this in a pack are read in one request.
pub(crate) const GAP_MAX: u64 = 512 * 1024;

/// One read from one pack, and the blobs in it.
pub(crate) struct ReadRange {
    pub pack: Id,
    pub offset: u64,
    pub length: u64,
    pub blobs: Vec<(Id, BlobLocation)>,
}

impl ReadRange {
    /// Reads the range from the repository's backend.
    pub fn read(&self, repo: &Repository) -> Result<bytes::Bytes> {
        Ok(repo.block_on(repo.backend().read_range(
            FileKind::Pack,
            &self.pack.to_hex(),
            self.offset,
            self.length,
        ))?)
    }

    /// The stored (encrypted) bytes of one of the range's blobs in `data`, the range as
    /// read.
    pub fn stored<'a>(&self, data: &'a [u8], loc: &BlobLocation) -> Result<&'a [u8]> {
        let start = (u64::from(loc.offset) - self.offset) as usize;
        data.get(start..start + loc.length as usize)
            .ok_or_else(|| Error::Damaged {
                what: format!("pack {}", self.pack),
                detail: "shorter than its index says".into(),
            })
    }
}

/// Groups blobs (each once) into reads: by pack, by offset, neighbours together. The
/// largest reads come first, which keeps parallel workers busy to the end.
pub(crate) fn plan(by_pack: IdMap<Vec<(Id, BlobLocation)>>) -> Vec<ReadRange> {
    let mut ranges: Vec<ReadRange> = Vec::new();
    for (pack, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, l)| l.offset);
        let mut cur: Option<ReadRange> = None;
        for (id, loc) in blobs {
            let (o, l) = (u64::from(loc.offset), u64::from(loc.length));
            match cur.as_mut() {
                Some(r)
                    if o >= r.offset + r.length
                        && o - (r.offset + r.length) <= GAP_MAX
                        && o + l - r.offset <= RANGE_MAX =>
                {
                    r.length = o + l - r.offset;
                    r.blobs.push((id, loc));
                }
                _ => {
                    if let Some(r) = cur.take() {
                        ranges.push(r);
                    }
                    cur = Some(ReadRange {
                        pack,
                        offset: o,
                        length: l,
                        blobs: vec![(id, loc)],
                    });
                }
            }
        }
        if let Some(r) = cur {
            ranges.push(r);
        }
    }
    ranges.sort_by_key(|r| std::cmp::Reverse(r.length));
    ranges
}

/// The plain content of every blob in `ids`, in the same order (a blob named twice is
/// read once and returned twice). Packs are read in ranges on `threads` workers (the
/// backend's connections or twice the cores when `None`). A blob the index does not
/// know is looked for again in the index files another process may have written since,
/// then is [`Error::BlobMissing`].
pub fn load_blobs(repo: &Repository, ids: &[Id], threads: Option<usize>) -> Result<Vec<Vec<u8>>> {
    let mut by_pack: IdMap<Vec<(Id, BlobLocation)>> = IdMap::default();
    let mut uses: IdMap<u32> = IdMap::default();
    let mut merged = false;
    for id in ids {
        let n = uses.entry(*id).or_default();
        *n += 1;
        if *n > 1 {
            continue;
        }
        let mut found = repo.index().get(id);
        if found.is_none() && !merged {
            repo.merge_index()?;
            merged = true;
            found = repo.index().get(id);
        }
        let loc = found.ok_or(Error::BlobMissing { id: *id })?;
        by_pack.entry(loc.pack).or_default().push((*id, loc));
    }
    let ranges = plan(by_pack);
    let threads = threads
        .unwrap_or_else(|| super::backup::default_threads().max(repo.backend().connections()));
    let pool = super::worker_pool(threads.min(ranges.len().max(1)), "read")?;
    let read: Vec<Vec<(Id, Vec<u8>)>> = pool.install(|| {
        ranges
            .par_iter()
            .with_max_len(1)
            .map(|r| -> Result<Vec<(Id, Vec<u8>)>> {
                let data = r.read(repo)?;
                r.blobs
                    .iter()
                    .map(|(id, loc)| {
                        let plain = repo.decode_blob(id, loc.raw_length, r.stored(&data, loc)?)?;
                        Ok((*id, plain))
                    })
                    .collect()
            })
            .collect::<Result<_>>()
    })?;
    let mut plain: IdMap<Vec<u8>> = read.into_iter().flatten().collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let left = uses.entry(*id).or_default();
        *left = left.saturating_sub(1);
        let bytes = if *left == 0 {
            plain.remove(id)
        } else {
            plain.get(id).cloned()
        };
        out.push(bytes.ok_or(Error::BlobMissing { id: *id })?);
    }
    Ok(out)
}

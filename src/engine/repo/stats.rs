//! Sizes: what snapshots hold, what deduplication and compression make of it.

use super::check::referenced_blobs;
use super::snapshot::Snapshot;
use super::tree::Tree;
use super::{Repository, Result};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub snapshots: usize,
    pub files: u64,
    /// Bytes of file content, counted once per file per snapshot.
    pub raw_bytes: u64,
    /// Bytes of the unique blobs those snapshots need (after deduplication).
    pub dedup_bytes: u64,
    /// Bytes those blobs take in storage (after compression and encryption).
    pub stored_bytes: u64,
    pub blobs: u64,
    /// Whole repository: packs and their total size.
    pub packs: usize,
    pub repo_bytes: u64,
}

impl Stats {
    pub fn dedup_ratio(&self) -> f64 {
        if self.dedup_bytes == 0 {
            0.0
        } else {
            self.raw_bytes as f64 / self.dedup_bytes as f64
        }
    }
}

/// Statistics for `snaps` (the index must be loaded).
pub fn stats(repo: &Repository, snaps: &[Snapshot]) -> Result<Stats> {
    let mut s = Stats {
        snapshots: snaps.len(),
        ..Default::default()
    };
    for snap in snaps {
        let mut stack: Vec<_> = snap.roots();
        while let Some(t) = stack.pop() {
            // A repeated subtree counts each time it appears, as its files would.
            let tree = Tree::load(repo, &t)?;
            for n in tree.nodes {
                if n.kind == super::tree::NodeKind::File {
                    s.files += 1;
                    s.raw_bytes += n.size;
                }
                if let Some(sub) = n.subtree {
                    stack.push(sub);
                }
            }
        }
    }
    let used = referenced_blobs(repo, snaps)?;
    let idx = repo.index();
    for id in &used {
        if let Some(loc) = idx.get(id) {
            s.blobs += 1;
            s.dedup_bytes += u64::from(loc.raw_length);
            s.stored_bytes += u64::from(loc.length);
        }
    }
    s.packs = idx.pack_count();
    s.repo_bytes = idx.packs().map(|(_, size)| size).sum();
    Ok(s)
}

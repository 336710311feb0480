//! Removing data no snapshot needs.
//!
//! Order matters for crash safety: (1) blobs still needed from packs being rewritten are
//! copied (still encrypted) into new packs and stored; (2) a complete new index of the
//! kept and new packs is written; (3) the old index files are removed; (4) the packs no
//! longer needed are removed. A kill between any two steps leaves every needed blob in a
//! stored pack that an index lists or that the next writer re-indexes.
//!
//! Packs being rewritten are read several at once (the backend's connections, at most
//! [`REWRITE_READS`] whole packs in memory), so one slow answer does not hold the rest.
//! Prune also removes what failed uploads left in the store
//! ([`Backend::clean_incomplete_uploads`](super::backend::Backend::clean_incomplete_uploads)),
//! once they are older than [`PruneOptions::incomplete_upload_age`].

use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use super::backend::FileKind;
use super::check::referenced_blobs;
use super::id::{Id, IdSet};
use super::index::IndexedPack;
use super::lock;
use super::pack::PackEntry;
use super::progress::{Phase, Progress};
use super::saver::Saver;
use super::snapshot;
use super::{Error, Repository, Result};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Rewrite a pack when more than this fraction of its bytes is unused.
    pub max_unused: f64,
    /// Only report what would be done.
    pub dry_run: bool,
    /// Incomplete uploads (S3 multipart uploads whose abort failed, or left by a crash)
    /// older than this are removed. Younger ones may belong to a writer still running
    /// elsewhere without a lock.
    pub incomplete_upload_age: Duration,
}

/// The default [`PruneOptions::incomplete_upload_age`].
pub const INCOMPLETE_UPLOAD_AGE: Duration = Duration::from_secs(6 * 3600);

/// Whole packs read at once while rewriting (each is held in memory).
pub const REWRITE_READS: usize = 4;

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.2,
            dry_run: false,
            incomplete_upload_age: INCOMPLETE_UPLOAD_AGE,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PruneReport {
    pub packs_before: usize,
    pub packs_removed: usize,
    pub packs_rewritten: usize,
    pub packs_written: usize,
    pub blobs_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub dry_run: bool,
    /// Incomplete uploads removed from the store.
    pub uploads_removed: usize,
}

pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &Arc<Progress>,
) -> Result<PruneReport> {
    let _lock = lock::acquire(repo, true, "prune")?;
    progress.set_phase(Phase::LoadingIndex);
    repo.load_index()?;
    repo.recover_unindexed_packs()?;
    // Re-read: the recovered packs are now in index files too.
    let files = repo.load_index()?;
    let (snaps, bad) = snapshot::list(repo)?;
    if let Some((name, e)) = bad.into_iter().next() {
        return Err(Error::Damaged {
            what: format!("snapshot file {name}"),
            detail: format!(
                "{e}; prune refuses to run while a snapshot is unreadable, as it could remove its data"
            ),
        });
    }
    progress.set_phase(Phase::Scanning);
    let used = referenced_blobs(repo, &snaps)?;

    // Each pack once, with its blobs (index files may list a pack twice after recovery).
    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut seen_packs = IdSet::default();
    for (_, list) in &files {
        for p in list {
            if seen_packs.insert(p.id) {
                packs.push(p.clone());
            }
        }
    }
    let mut report = PruneReport {
        packs_before: packs.len(),
        bytes_before: packs.iter().map(|p| p.size).sum(),
        dry_run: opts.dry_run,
        ..Default::default()
    };

    // Decide per pack. A blob is kept once: in the first kept pack that has it.
    let mut kept_blobs = IdSet::default();
    let mut keep: Vec<IndexedPack> = Vec::new();
    let mut rewrite: Vec<(IndexedPack, Vec<PackEntry>)> = Vec::new();
    let mut remove: Vec<Id> = Vec::new();
    // Packs that are fully used first, so duplicates drop out of partially used ones.
    packs.sort_by_key(|p| p.blobs.iter().filter(|b| !used.contains(&b.id)).count());
    for p in packs {
        let needed: Vec<PackEntry> = p
            .blobs
            .iter()
            .filter(|b| used.contains(&b.id) && !kept_blobs.contains(&b.id))
            .copied()
            .collect();
        let needed_bytes: u64 = needed.iter().map(|b| u64::from(b.length)).sum();
        let unused_bytes = p.blobs.iter().map(|b| u64::from(b.length)).sum::<u64>() - needed_bytes;
        report.blobs_removed += p.blobs.len() - needed.len();
        if needed.is_empty() {
            remove.push(p.id);
        } else if unused_bytes as f64 > opts.max_unused * p.size as f64 {
            kept_blobs.extend(needed.iter().map(|b| b.id));
            rewrite.push((p, needed));
        } else {
            kept_blobs.extend(needed.iter().map(|b| b.id));
            keep.push(p);
        }
    }
    report.packs_removed = remove.len();
    report.packs_rewritten = rewrite.len();
    if opts.dry_run {
        let rewritten: u64 = rewrite.iter().map(|(p, _)| p.size).sum();
        let removed: u64 =
            report.bytes_before - keep.iter().map(|p| p.size).sum::<u64>() - rewritten;
        let still: u64 = rewrite
            .iter()
            .flat_map(|(_, n)| n.iter())
            .map(|b| u64::from(b.length))
            .sum();
        report.bytes_after = report.bytes_before - removed - rewritten + still;
        return Ok(report);
    }

    // (1) Copy needed blobs out of packs being rewritten.
    progress.set_phase(Phase::Transferring);
    progress.add_total(
        rewrite.len() as u64,
        rewrite.iter().map(|(p, _)| p.size).sum(),
    );
    progress.set_totals_final();
    // The in-memory index must not claim the blobs we are about to copy, or the saver
    // would skip them: start from the kept packs only.
    {
        let mut idx = repo.index_mut();
        *idx = super::index::Index::default();
        for p in &keep {
            idx.add_pack(p.id, p.size, &p.blobs);
        }
    }
    let saver = Saver::new(repo, progress.clone(), false)?;
    let reads = repo.backend().connections().clamp(1, REWRITE_READS);
    let copied = super::worker_pool(reads, "prune")?.install(|| {
        rewrite
            .par_iter()
            .with_max_len(1)
            .try_for_each(|(p, needed)| -> Result<()> {
                progress.check()?;
                let data = repo.block_on(repo.backend().read(FileKind::Pack, &p.id.to_hex()))?;
                for b in needed {
                    let start = b.offset as usize;
                    let stored = data.get(start..start + b.length as usize).ok_or_else(|| {
                        Error::Damaged {
                            what: format!("pack {}", p.id),
                            detail: "shorter than its index says; run `ferry check --read-data`"
                                .into(),
                        }
                    })?;
                    // Verify before copying: never carry damage into a new pack silently.
                    repo.decode_blob(&b.id, b.raw_length, stored)?;
                    saver.save_encoded(b.kind, b.id, stored, b.raw_length)?;
                }
                progress.add_done(1, p.size);
                Ok(())
            })
    });
    // On failure the saver is dropped unfinished: its stored packs are unindexed, and
    // the next prune or backup indexes or removes them. Nothing was removed yet.
    copied?;
    let written = saver.finish()?;
    report.packs_written = written.len();

    // (2) The new complete index.
    progress.set_phase(Phase::Finishing);
    let mut all: Vec<IndexedPack> = keep;
    all.extend(written);
    report.bytes_after = all.iter().map(|p| p.size).sum();
    let mut new_names = Vec::new();
    for chunk in all.chunks(super::saver::INDEX_EVERY * 4) {
        new_names.push(repo.save_index(chunk)?);
    }
    // (3) Old index files (not the ones just written, should a name coincide).
    for (name, _) in &files {
        if !new_names.contains(name) {
            repo.block_on(repo.backend().remove(FileKind::Index, name))?;
        }
    }
    // (4) Packs nothing needs.
    for id in remove.iter().chain(rewrite.iter().map(|(p, _)| &p.id)) {
        repo.block_on(repo.backend().remove(FileKind::Pack, &id.to_hex()))?;
    }
    let mut idx = repo.index_mut();
    *idx = super::index::Index::default();
    for p in &all {
        idx.add_pack(p.id, p.size, &p.blobs);
    }
    report.uploads_removed = clean_uploads(repo, opts, progress);
    progress.set_phase(Phase::Done);
    Ok(report)
}

/// Removes old incomplete uploads; a store that cannot list them (some S3-compatible
/// servers) is worth a warning, not a failed prune.
fn clean_uploads(repo: &Repository, opts: &PruneOptions, progress: &Progress) -> usize {
    match repo.block_on(
        repo.backend()
            .clean_incomplete_uploads(opts.incomplete_upload_age),
    ) {
        Ok(n) => {
            if n > 0 {
                tracing::info!(uploads = n, "removed incomplete uploads");
            }
            n
        }
        Err(e) => {
            progress.warn(format!(
                "could not remove incomplete uploads left by failed writes: {e}"
            ));
            0
        }
    }
}

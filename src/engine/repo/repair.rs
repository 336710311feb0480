//! Rebuilding the index from the packs themselves.
//!
//! Every pack carries its own (encrypted) header, so the index is derived data: when an
//! index file is damaged or lost, reading every pack's header gives it back. Old index
//! files are removed only after the new ones are stored.

use std::sync::Arc;

use rayon::prelude::*;

use super::backend::FileKind;
use super::id::Id;
use super::index::{Index, IndexedPack};
use super::lock;
use super::progress::{Phase, Progress};
use super::{Repository, Result};

#[derive(Debug, Default)]
pub struct RepairReport {
    pub packs: usize,
    pub blobs: usize,
    /// Packs whose header could not be read, with why: their data is lost to the index.
    pub unreadable: Vec<(String, String)>,
    pub index_files_removed: usize,
}

/// Reads every pack header and replaces all index files with a new index.
pub fn rebuild_index(repo: &Repository, progress: &Arc<Progress>) -> Result<RepairReport> {
    let _lock = lock::acquire(repo, true, "repair-index")?;
    progress.set_phase(Phase::Scanning);
    let old = repo.block_on(repo.backend().list(FileKind::Index))?;
    let packs = repo.list_packs()?;
    progress.add_total(packs.len() as u64, 0);
    progress.set_totals_final();
    let threads = repo.backend().connections().max(2);
    let pool = super::worker_pool(threads, "repair")?;
    let results: Vec<std::result::Result<IndexedPack, (String, String)>> = pool.install(|| {
        packs
            .par_iter()
            .map(|p| {
                let r = match p.name.parse::<Id>() {
                    Ok(id) => repo
                        .read_pack_header(&p.name, p.size)
                        .map(|blobs| IndexedPack {
                            id,
                            size: p.size,
                            blobs,
                        })
                        .map_err(|e| (p.name.clone(), e.to_string())),
                    Err(_) => Err((p.name.clone(), "not a pack name".to_string())),
                };
                progress.add_done(1, 0);
                r
            })
            .collect()
    });
    let mut report = RepairReport::default();
    let mut good = Vec::new();
    for r in results {
        match r {
            Ok(p) => good.push(p),
            Err(bad) => report.unreadable.push(bad),
        }
    }
    progress.set_phase(Phase::Finishing);
    let mut written = Vec::new();
    for chunk in good.chunks(super::saver::INDEX_EVERY * 4) {
        written.push(repo.save_index(chunk)?);
    }
    for f in &old {
        if !written.contains(&f.name) {
            repo.block_on(repo.backend().remove(FileKind::Index, &f.name))?;
            report.index_files_removed += 1;
        }
    }
    let mut idx = Index::default();
    for p in &good {
        idx.add_pack(p.id, p.size, &p.blobs);
    }
    report.packs = good.len();
    report.blobs = idx.blob_count();
    *repo.index_mut() = idx;
    progress.set_phase(Phase::Done);
    Ok(report)
}

//! Repository verification.
//!
//! Structure (always): every index file decrypts and parses; every indexed pack exists
//! with the size the index records; every snapshot decrypts; every tree of every
//! snapshot loads and every blob it references is indexed. With `read_data`: every pack
//! is read whole, its hash must match its name, its header must decrypt, and every blob
//! in it must decrypt, decompress and hash to its ID. Damage is reported per pack,
//! together with the snapshots that need that pack.

use std::sync::Arc;

use rayon::prelude::*;

use super::backend::FileKind;
use super::damage;
use super::id::{Id, IdMap, IdSet};
use super::lock;
use super::progress::{Phase, Progress};
use super::snapshot::{self, Snapshot};
use super::tree::Tree;
use super::{Repository, Result};

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    pub threads: Option<usize>,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    /// Problems that make data unreadable.
    pub errors: Vec<String>,
    /// Things worth knowing that lose no data.
    pub notes: Vec<String>,
    /// Damaged or missing packs with the reason.
    pub damaged_packs: Vec<(Id, String)>,
    /// Snapshots that cannot be fully restored.
    pub affected_snapshots: Vec<Id>,
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub bytes_read: u64,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &Arc<Progress>,
) -> Result<CheckReport> {
    let _lock = lock::acquire_for_reading(repo, "check", progress)?;
    let mut report = CheckReport::default();
    progress.set_phase(Phase::LoadingIndex);

    // Index files one by one, so one damaged file is reported, not fatal.
    let mut index = super::index::Index::default();
    let mut index_unreadable = false;
    for (name, res) in repo.read_index_files_each()? {
        match res {
            Ok(packs) => {
                for p in packs {
                    index.add_pack(p.id, p.size, &p.blobs);
                }
            }
            Err(e) => {
                index_unreadable = true;
                report.errors.push(format!("index file {name}: {e}"));
            }
        }
    }
    report.blobs = index.blob_count();

    // Packs: present with the right size.
    let stored: IdMap<u64> = repo
        .list_packs()?
        .into_iter()
        .filter_map(|p| p.name.parse::<Id>().ok().map(|id| (id, p.size)))
        .collect();
    report.packs = stored.len();
    let mut damaged: IdMap<String> = IdMap::default();
    for (id, size) in index.packs() {
        match stored.get(&id) {
            None => {
                damaged.insert(id, "missing from storage".into());
            }
            Some(s) if *s != size => {
                damaged.insert(
                    id,
                    format!("is {s} bytes but the index says {size}: truncated or overwritten"),
                );
            }
            Some(_) => {}
        }
    }
    let unindexed = stored.keys().filter(|id| !index.has_pack(id)).count();
    if unindexed > 0 {
        report.notes.push(format!(
            "{unindexed} pack(s) are in no index (left by an interrupted job); the next backup or prune indexes or removes them"
        ));
    }

    if opts.read_data {
        progress.set_phase(Phase::Verifying);
        let total: u64 = stored.values().sum();
        progress.add_total(stored.len() as u64, total);
        progress.set_totals_final();
        let threads = opts.threads.unwrap_or_else(super::backup::default_threads);
        let pool = super::worker_pool(threads, "check")?;
        let list: Vec<(Id, u64)> = stored.iter().map(|(k, v)| (*k, *v)).collect();
        let results: Vec<(Id, Option<String>)> = pool.install(|| {
            list.par_iter()
                .map(|(id, size)| {
                    let r = verify_pack(repo, id, &index);
                    progress.add_done(1, *size);
                    (*id, r.err())
                })
                .collect()
        });
        report.bytes_read = total;
        for (id, err) in results {
            if let Some(e) = err {
                damaged.entry(id).or_insert(e);
            }
        }
    }

    // Snapshots and their trees.
    progress.set_phase(Phase::Scanning);
    let (snaps, bad) = snapshot::list(repo)?;
    for (name, e) in bad {
        report.errors.push(format!("snapshot file {name}: {e}"));
    }
    report.snapshots = snaps.len();
    // Install the index we built so tree loads go through it.
    *repo.index_mut() = index;
    let damaged_set: IdSet = damaged.keys().copied().collect();
    let mut reach = damage::Reach::new(repo, &damaged_set);
    let mut all_problems = Vec::new();
    for s in &snaps {
        let mut problems = Vec::new();
        let ok = reach.snapshot(s, &mut problems);
        for p in &problems {
            report
                .errors
                .push(format!("snapshot {}: {p}", s.id.short()));
        }
        all_problems.extend(problems);
        if !ok {
            report.affected_snapshots.push(s.id);
        }
    }
    if !all_problems.is_empty() || index_unreadable {
        report
            .notes
            .push(damage::advice(&all_problems, index_unreadable));
    }
    let mut damaged: Vec<(Id, String)> = damaged.into_iter().collect();
    damaged.sort();
    for (id, why) in &damaged {
        report.errors.push(format!("pack {id} {why}"));
    }
    report.damaged_packs = damaged;
    progress.set_phase(Phase::Done);
    Ok(report)
}

/// Reads a whole pack and verifies everything in it. The error says what is wrong.
fn verify_pack(repo: &Repository, id: &Id, index: &super::index::Index) -> Result<(), String> {
    let name = id.to_hex();
    let data = repo
        .block_on(repo.backend().read(FileKind::Pack, &name))
        .map_err(|e| format!("cannot be read: {e}"))?;
    if Id::hash(&data) != *id {
        return Err("does not match its hash: its content was altered or truncated".into());
    }
    let entries = repo.parse_pack(&name, &data).map_err(|e| e.to_string())?;
    for e in entries {
        let start = e.offset as usize;
        let stored = data
            .get(start..start + e.length as usize)
            .ok_or_else(|| "blob extends past the pack".to_string())?;
        repo.decode_blob(&e.id, e.raw_length, stored)
            .map_err(|err| format!("holds a damaged blob {}: {err}", e.id.short()))?;
        if let Some(loc) = index.get(&e.id)
            && loc.pack == *id
            && (loc.offset != e.offset || loc.length != e.length)
        {
            return Err(format!("blob {} is not where the index says", e.id.short()));
        }
    }
    Ok(())
}

/// Every blob (data and tree) the given snapshots reference.
pub fn referenced_blobs(repo: &Repository, snaps: &[Snapshot]) -> Result<IdSet> {
    let mut used = IdSet::default();
    let mut stack: Vec<Id> = snaps.iter().flat_map(|s| s.roots()).collect();
    while let Some(t) = stack.pop() {
        if !used.insert(t) {
            continue;
        }
        let tree = Tree::load(repo, &t)?;
        for n in tree.nodes {
            used.extend(n.content);
            if let Some(sub) = n.subtree {
                stack.push(sub);
            }
        }
    }
    Ok(used)
}

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
use super::id::{Id, IdMap, IdSet};
use super::lock;
use super::progress::{Phase, Progress};
use super::snapshot::{self, Snapshot};
use super::tree::Tree;
use super::{Error, Repository, Result};

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
    let _lock = lock::acquire(repo, false, "check")?;
    let mut report = CheckReport::default();
    progress.set_phase(Phase::LoadingIndex);

    // Index files one by one, so one damaged file is reported, not fatal.
    let index_files = repo.block_on(repo.backend().list(FileKind::Index))?;
    let mut index = super::index::Index::default();
    for f in &index_files {
        let res = repo
            .block_on(repo.backend().read(FileKind::Index, &f.name))
            .map_err(Error::from)
            .and_then(|d| {
                repo.key().decrypt(&d).map_err(|e| Error::Damaged {
                    what: format!("index file {}", f.name),
                    detail: e.to_string(),
                })
            })
            .and_then(|p| Ok(super::index::decode(&f.name, &p)?));
        match res {
            Ok(packs) => {
                for p in packs {
                    index.add_pack(p.id, p.size, &p.blobs);
                }
            }
            Err(e) => report.errors.push(format!("index file {}: {e}", f.name)),
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
    let mut seen_trees: IdMap<bool> = IdMap::default();
    for s in &snaps {
        let mut problems = Vec::new();
        let ok = check_snapshot(repo, s, &damaged_set, &mut seen_trees, &mut problems);
        for p in problems {
            report
                .errors
                .push(format!("snapshot {}: {p}", s.id.short()));
        }
        if !ok {
            report.affected_snapshots.push(s.id);
        }
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

/// Walks a snapshot's trees; false if any part of it is unreadable.
fn check_snapshot(
    repo: &Repository,
    s: &Snapshot,
    damaged: &IdSet,
    seen: &mut IdMap<bool>,
    problems: &mut Vec<String>,
) -> bool {
    let mut ok = true;
    for root in s.roots() {
        ok &= check_tree(repo, &root, damaged, seen, problems);
    }
    ok
}

fn blob_ok(repo: &Repository, id: &Id, damaged: &IdSet, problems: &mut Vec<String>) -> bool {
    match repo.index().get(id) {
        None => {
            problems.push(format!("blob {id} is in no index"));
            false
        }
        Some(loc) if damaged.contains(&loc.pack) => {
            problems.push(format!(
                "blob {} is in damaged pack {}",
                id.short(),
                loc.pack.short()
            ));
            false
        }
        Some(_) => true,
    }
}

fn check_tree(
    repo: &Repository,
    id: &Id,
    damaged: &IdSet,
    seen: &mut IdMap<bool>,
    problems: &mut Vec<String>,
) -> bool {
    if let Some(ok) = seen.get(id) {
        return *ok;
    }
    if !blob_ok(repo, id, damaged, problems) {
        seen.insert(*id, false);
        return false;
    }
    let tree = match Tree::load(repo, id) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("tree {}: {e}", id.short()));
            seen.insert(*id, false);
            return false;
        }
    };
    let mut ok = true;
    for n in &tree.nodes {
        for c in &n.content {
            ok &= blob_ok(repo, c, damaged, problems);
        }
        if let Some(sub) = &n.subtree {
            ok &= check_tree(repo, sub, damaged, seen, problems);
        }
    }
    seen.insert(*id, ok);
    ok
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

//! Repository verification.
//!
//! Structure (always): every index file decrypts and parses; every indexed pack exists
//! with the size the index records; every snapshot decrypts; every tree of every
//! snapshot loads and every blob it references is indexed. With `read_data`: every pack
//! is read whole, its hash must match its name, its header must decrypt, and every blob
//! in it must decrypt, decompress and hash to its ID. Damage is reported per pack,
//! together with the snapshots that need that pack.
//!
//! Reading is not judging: storage reads go through the backend's retries, and what
//! still cannot be read (the store kept failing, access was denied) is reported as
//! unreadable, with the snapshots that could not be verified, never as damage. Only
//! what was read and found wrong, or is missing, is damage.
//!
//! Index files, trees and packs are read concurrently, as many at once as the backend
//! has connections (`--connections`), so one slow answer does not hold the others.

use std::sync::Arc;

use rayon::prelude::*;

use super::backend::FileKind;
use super::damage;
use super::id::{Id, IdMap, IdSet};
use super::lock;
use super::progress::{Phase, Progress};
use super::snapshot::{self, Snapshot};
use super::tree::Tree;
use super::{Error, Repository, Result};

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Packs read and verified at once with `read_data` [default: the backend's
    /// connections, at least the number of cores].
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
    /// What could not be read from storage (even after retries), with why: not found to
    /// be damaged, but not verified either.
    pub unreadable: Vec<String>,
    /// Snapshots that could not be fully verified because something was unreadable
    /// (and that are not known to be damaged).
    pub unverified_snapshots: Vec<Id>,
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub bytes_read: u64,
}

impl CheckReport {
    /// No damage was found (see [`CheckReport::complete`] for whether all was read).
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Everything that was to be verified could be read.
    pub fn complete(&self) -> bool {
        self.unreadable.is_empty()
    }
}

/// True when `e` is a failure to read from storage (the store failed or refused), which
/// says nothing about the repository's content. A missing file is not: it is damage.
pub fn is_unreadable(e: &Error) -> bool {
    matches!(e, Error::Backend(b) if !b.is_not_found())
}

/// What is known about a blob, a tree or a snapshot. Worse states win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    Ok,
    /// Not verified: something it needs could not be read.
    Unknown,
    Damaged,
}

/// One tree's own findings (its blob, its load, its content blobs) and its subtrees.
#[derive(Debug, Default)]
struct TreeFindings {
    health: Option<Health>,
    problems: Vec<(Health, String)>,
    subtrees: Vec<Id>,
}

/// How many storage reads a job runs at once.
fn read_threads(repo: &Repository) -> usize {
    repo.backend().connections().max(1)
}

/// Loads every tree reachable from `roots`, level by level, `threads` trees at a time,
/// and calls `visit` with each tree (once) and its load result; `visit` returns the
/// subtrees to follow.
fn walk_trees(
    repo: &Repository,
    roots: Vec<Id>,
    threads: usize,
    mut visit: impl FnMut(Id, Result<Tree>) -> Vec<Id>,
) -> Result<()> {
    let pool = super::worker_pool(threads, "trees")?;
    let mut seen = IdSet::default();
    let mut level: Vec<Id> = roots.into_iter().filter(|r| seen.insert(*r)).collect();
    while !level.is_empty() {
        let loaded: Vec<(Id, Result<Tree>)> = pool.install(|| {
            level
                .par_iter()
                // One read per task: a slow answer holds only its own item.
                .with_max_len(1)
                .map(|id| (*id, Tree::load(repo, id)))
                .collect()
        });
        let mut next = Vec::new();
        for (id, tree) in loaded {
            for sub in visit(id, tree) {
                if seen.insert(sub) {
                    next.push(sub);
                }
            }
        }
        level = next;
    }
    Ok(())
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &Arc<Progress>,
) -> Result<CheckReport> {
    let _lock = lock::acquire_for_reading(repo, "check", progress)?;
    let mut report = CheckReport::default();
    progress.set_phase(Phase::LoadingIndex);
    let conns = read_threads(repo);

    // Index files, several at once; one damaged file is reported, not fatal.
    let loaded = repo.read_index_files_each()?;
    let mut index = super::index::Index::default();
    let mut index_complete = true;
    for (name, res) in loaded {
        match res {
            Ok(packs) => {
                for p in packs {
                    index.add_pack(p.id, p.size, &p.blobs);
                }
            }
            Err(e) if is_unreadable(&e) => {
                index_complete = false;
                report
                    .unreadable
                    .push(format!("index file {name} could not be read: {e}"));
            }
            Err(e) => report.errors.push(format!("index file {name}: {e}")),
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
    if unindexed > 0 && index_complete {
        report.notes.push(format!(
            "{unindexed} pack(s) are in no index (left by an interrupted job); the next backup or prune indexes or removes them"
        ));
    }

    let mut unread_packs = IdSet::default();
    if opts.read_data {
        progress.set_phase(Phase::Verifying);
        let total: u64 = stored.values().sum();
        progress.add_total(stored.len() as u64, total);
        progress.set_totals_final();
        let threads = opts
            .threads
            .unwrap_or_else(|| super::backup::default_threads().max(conns));
        let pool = super::worker_pool(threads, "check")?;
        let list: Vec<(Id, u64)> = stored.iter().map(|(k, v)| (*k, *v)).collect();
        let results: Vec<(Id, Result<(), PackFault>)> = pool.install(|| {
            list.par_iter()
                .with_max_len(1)
                .map(|(id, size)| {
                    let r = verify_pack(repo, id, &index);
                    progress.add_done(1, *size);
                    (*id, r)
                })
                .collect()
        });
        for (id, r) in results {
            match r {
                Ok(()) => report.bytes_read += stored.get(&id).copied().unwrap_or(0),
                Err(PackFault::Damaged(e)) => {
                    report.bytes_read += stored.get(&id).copied().unwrap_or(0);
                    damaged.entry(id).or_insert(e);
                }
                Err(PackFault::Unreadable(e)) => {
                    if !damaged.contains_key(&id) {
                        unread_packs.insert(id);
                        report
                            .unreadable
                            .push(format!("pack {id} could not be read: {e}"));
                    }
                }
            }
        }
    }

    // Snapshots and their trees.
    progress.set_phase(Phase::Scanning);
    let (snaps, bad) = snapshot::list(repo)?;
    for (name, e) in bad {
        if is_unreadable(&e) {
            report
                .unreadable
                .push(format!("snapshot file {name} could not be read: {e}"));
        } else {
            report.errors.push(format!("snapshot file {name}: {e}"));
        }
    }
    report.snapshots = snaps.len();
    // Install the index we built so tree loads go through it.
    *repo.index_mut() = index;
    let judge = Judge {
        damaged: damaged.keys().copied().collect(),
        unread: unread_packs,
        index_complete,
    };
    let findings = tree_findings(repo, &snaps, &judge, conns)?;
    let mut health: IdMap<Health> = IdMap::default();
    let mut reported = IdSet::default();
    for s in &snaps {
        let mut worst = Health::Ok;
        for root in s.roots() {
            worst = worst.max(tree_health(&root, &findings, &mut health));
            // Each tree's problems once, under the first snapshot that needs it.
            let mut stack = vec![root];
            while let Some(t) = stack.pop() {
                if !reported.insert(t) {
                    continue;
                }
                if let Some(f) = findings.get(&t) {
                    for p in &f.problems {
                        let line = format!("snapshot {}: {}", s.id.short(), p.1);
                        match p.0 {
                            Health::Damaged => report.errors.push(line),
                            _ => report.unreadable.push(line),
                        }
                    }
                    stack.extend(f.subtrees.iter().copied());
                }
            }
        }
        match worst {
            Health::Ok => {}
            Health::Unknown => report.unverified_snapshots.push(s.id),
            Health::Damaged => report.affected_snapshots.push(s.id),
        }
    }
    // What to do, worded as restore words it (`damage::advice`).
    let not_indexed = report.errors.iter().any(|e| e.contains("is in no index"));
    let index_damaged =
        !index_complete || report.errors.iter().any(|e| e.starts_with("index file"));
    let mut problems = Vec::new();
    if not_indexed {
        problems.push(damage::Problem::NotIndexed(Id::default()));
    }
    if report
        .errors
        .iter()
        .any(|e| e.starts_with("snapshot ") && !e.contains("is in no index"))
    {
        problems.push(damage::Problem::Tree {
            id: Id::default(),
            error: String::new(),
        });
    }
    if !problems.is_empty() || index_damaged {
        report.notes.push(damage::advice(&problems, index_damaged));
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

/// What is known about the packs, for judging blobs.
struct Judge {
    damaged: IdSet,
    /// Packs that could not be read with `read_data`.
    unread: IdSet,
    /// False when an index file could not be read: a blob in no index may be in it.
    index_complete: bool,
}

impl Judge {
    fn blob(&self, repo: &Repository, id: &Id) -> (Health, Option<String>) {
        match repo.index().get(id) {
            None if self.index_complete => {
                (Health::Damaged, Some(format!("blob {id} is in no index")))
            }
            None => (
                Health::Unknown,
                Some(format!(
                    "blob {} is in no index that could be read",
                    id.short()
                )),
            ),
            Some(loc) if self.damaged.contains(&loc.pack) => (
                Health::Damaged,
                Some(format!(
                    "blob {} is in damaged pack {}",
                    id.short(),
                    loc.pack.short()
                )),
            ),
            Some(loc) if self.unread.contains(&loc.pack) => (Health::Unknown, None),
            Some(_) => (Health::Ok, None),
        }
    }
}

/// Every tree the snapshots reach, with its own findings (loaded concurrently).
fn tree_findings(
    repo: &Repository,
    snaps: &[Snapshot],
    judge: &Judge,
    threads: usize,
) -> Result<IdMap<TreeFindings>> {
    let mut findings: IdMap<TreeFindings> = IdMap::default();
    // A tree whose own blob is known bad is not loaded: true when `id` is to be loaded.
    let triage = |id: Id, findings: &mut IdMap<TreeFindings>| {
        let (health, problem) = judge.blob(repo, &id);
        if health == Health::Ok {
            return true;
        }
        findings.entry(id).or_insert_with(|| TreeFindings {
            health: Some(health),
            problems: problem.map(|p| vec![(health, p)]).unwrap_or_default(),
            subtrees: Vec::new(),
        });
        false
    };
    let roots: Vec<Id> = snaps
        .iter()
        .flat_map(|s| s.roots())
        .filter(|r| triage(*r, &mut findings))
        .collect();
    walk_trees(repo, roots, threads, |id, loaded| {
        let mut f = TreeFindings::default();
        let mut follow = Vec::new();
        let mut worst = Health::Ok;
        let mut note = |f: &mut TreeFindings, h: Health, p: Option<String>| {
            worst = worst.max(h);
            if let Some(p) = p {
                f.problems.push((h, p));
            }
        };
        match loaded {
            Ok(tree) => {
                for n in &tree.nodes {
                    for c in &n.content {
                        let (h, p) = judge.blob(repo, c);
                        note(&mut f, h, p);
                    }
                    if let Some(sub) = n.subtree {
                        f.subtrees.push(sub);
                        if triage(sub, &mut findings) {
                            follow.push(sub);
                        }
                    }
                }
            }
            Err(e) if is_unreadable(&e) => note(
                &mut f,
                Health::Unknown,
                Some(format!("tree {} could not be read: {e}", id.short())),
            ),
            Err(e) => note(
                &mut f,
                Health::Damaged,
                Some(format!("tree {}: {e}", id.short())),
            ),
        }
        f.health = Some(worst);
        findings.insert(id, f);
        follow
    })?;
    Ok(findings)
}

/// The health of a tree and everything below it.
fn tree_health(id: &Id, findings: &IdMap<TreeFindings>, memo: &mut IdMap<Health>) -> Health {
    if let Some(h) = memo.get(id) {
        return *h;
    }
    let Some(f) = findings.get(id) else {
        return Health::Ok;
    };
    // Set first: a cycle (which a valid repository cannot have) ends here.
    memo.insert(*id, f.health.unwrap_or(Health::Ok));
    let mut worst = f.health.unwrap_or(Health::Ok);
    for sub in &f.subtrees {
        worst = worst.max(tree_health(sub, findings, memo));
    }
    memo.insert(*id, worst);
    worst
}

/// Why a pack did not verify.
enum PackFault {
    /// It was read, and is wrong.
    Damaged(String),
    /// It could not be read (the store failed even after retries, access denied).
    Unreadable(String),
}

/// Reads a whole pack and verifies everything in it. The error says what is wrong.
fn verify_pack(repo: &Repository, id: &Id, index: &super::index::Index) -> Result<(), PackFault> {
    let name = id.to_hex();
    let data = match repo.block_on(repo.backend().read(FileKind::Pack, &name)) {
        Ok(data) => data,
        Err(e) if e.is_not_found() => return Err(PackFault::Damaged("is missing".into())),
        Err(e) => return Err(PackFault::Unreadable(e.to_string())),
    };
    let damaged = PackFault::Damaged;
    if Id::hash(&data) != *id {
        return Err(damaged(
            "does not match its hash: its content was altered or truncated".into(),
        ));
    }
    let entries = repo
        .parse_pack(&name, &data)
        .map_err(|e| damaged(e.to_string()))?;
    for e in entries {
        let start = e.offset as usize;
        let stored = data
            .get(start..start + e.length as usize)
            .ok_or_else(|| damaged("blob extends past the pack".to_string()))?;
        repo.decode_blob(&e.id, e.raw_length, stored)
            .map_err(|err| damaged(format!("holds a damaged blob {}: {err}", e.id.short())))?;
        if let Some(loc) = index.get(&e.id)
            && loc.pack == *id
            && (loc.offset != e.offset || loc.length != e.length)
        {
            return Err(damaged(format!(
                "blob {} is not where the index says",
                e.id.short()
            )));
        }
    }
    Ok(())
}

/// Every blob (data and tree) the given snapshots reference. Trees are loaded as many
/// at once as the backend has connections.
pub fn referenced_blobs(repo: &Repository, snaps: &[Snapshot]) -> Result<IdSet> {
    let mut used = IdSet::default();
    let mut failed: Option<Error> = None;
    let roots: Vec<Id> = snaps.iter().flat_map(|s| s.roots()).collect();
    walk_trees(repo, roots, read_threads(repo), |id, loaded| {
        used.insert(id);
        match loaded {
            Ok(tree) => {
                let mut subs = Vec::new();
                for n in tree.nodes {
                    used.extend(n.content);
                    subs.extend(n.subtree);
                }
                subs
            }
            Err(e) => {
                failed.get_or_insert(e);
                Vec::new()
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(used),
    }
}

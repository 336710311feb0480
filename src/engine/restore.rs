//! Restore of a snapshot (or a path inside it) into a local folder.
//!
//! Restore is organised by pack, not by file: every needed blob is mapped to the places
//! (file, offset) that need it, packs are read in parallel in ranges of at most
//! [`RANGE_MAX`] bytes, and each blob is decrypted once and written wherever it belongs
//! with positioned writes. Files are created at their final size first, so all-zero
//! chunks of sparse files become holes. Metadata (owners, modes, times) is applied after
//! the content, folders last and deepest first so their times stick.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use rayon::prelude::*;

use super::backend::FileKind;
use super::id::{Id, IdMap};
use super::index::BlobLocation;
use super::lock;
use super::progress::{Phase, Progress};
use super::snapshot::Snapshot;
use super::tree::{self, Node, NodeKind};
use super::{Error, Repository, Result};

/// Largest single read from a pack.
const RANGE_MAX: u64 = 4 * 1024 * 1024;
/// Blobs closer than this in a pack are read in one request.
const GAP_MAX: u64 = 512 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// A path inside the snapshot (`/`-separated); empty for all of it.
    pub path: String,
    /// Allow a target that is not empty (existing files at restored paths are replaced).
    pub overwrite: bool,
    pub threads: Option<usize>,
}

#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

struct FileTarget {
    path: PathBuf,
    node: Node,
    remaining: AtomicU32,
}

/// One read from one pack, and the blobs in it.
struct ReadRange {
    pack: Id,
    offset: u64,
    length: u64,
    blobs: Vec<(Id, BlobLocation)>,
}

fn write_err(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn is_empty_dir(p: &Path) -> std::io::Result<bool> {
    Ok(std::fs::read_dir(p)?.next().is_none())
}

pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    opts: &RestoreOptions,
    progress: &Arc<Progress>,
) -> Result<RestoreOutcome> {
    let _lock = lock::acquire(repo, false, "restore")?;
    progress.set_phase(Phase::LoadingIndex);
    repo.load_index()?;
    let start =
        tree::find_path(repo, &snap.tree, &opts.path)?.ok_or_else(|| Error::PathNotInSnapshot {
            snapshot: snap.id.short(),
            path: opts.path.clone(),
        })?;

    let target = opts.target.clone();
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {
            if !opts.overwrite && !is_empty_dir(&target).map_err(|e| write_err(&target, e))? {
                return Err(Error::TargetNotEmpty(target));
            }
        }
        Ok(_) => return Err(Error::TargetNotEmpty(target)),
        Err(_) => std::fs::create_dir_all(&target).map_err(|e| write_err(&target, e))?,
    }

    // Collect what to create, parents before children.
    progress.set_phase(Phase::Scanning);
    let mut entries: Vec<(PathBuf, Node)> = Vec::new();
    let root_is_dir = start.kind == NodeKind::Dir;
    if root_is_dir {
        if let Some(sub) = start.subtree {
            tree::walk(repo, &sub, &target, &mut |p, n| {
                entries.push((p.to_path_buf(), n.clone()));
                Ok(true)
            })?;
        }
    } else {
        entries.push((target.join(start.name.to_os()), start.clone()));
    }

    let mut out = RestoreOutcome::default();
    let mut files: Vec<FileTarget> = Vec::new();
    let mut hardlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut others: Vec<(PathBuf, Node)> = Vec::new();
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    for (p, n) in entries {
        match n.kind {
            NodeKind::Dir => {
                if opts.overwrite {
                    remove_non_dir(&p)?;
                }
                std::fs::create_dir_all(&p).map_err(|e| write_err(&p, e))?;
                dirs.push((p, n));
            }
            NodeKind::File => {
                if n.links > 1 {
                    let key = (n.device, n.inode);
                    if let Some(first) = first_link.get(&key) {
                        hardlinks.push((first.clone(), p));
                        continue;
                    }
                    first_link.insert(key, p.clone());
                }
                progress.add_total(1, n.size);
                files.push(FileTarget {
                    remaining: AtomicU32::new(n.content.len() as u32),
                    path: p,
                    node: n,
                });
            }
            _ => others.push((p, n)),
        }
    }
    progress.set_totals_final();

    // Create every file at its final size.
    progress.set_phase(Phase::Transferring);
    files.par_iter().try_for_each(|f| -> Result<()> {
        if opts.overwrite {
            remove_non_dir(&f.path)?;
        }
        let file = File::create(&f.path).map_err(|e| write_err(&f.path, e))?;
        if f.node.size > 0 {
            file.set_len(f.node.size)
                .map_err(|e| write_err(&f.path, e))?;
        }
        if f.node.content.is_empty() {
            progress.add_done(1, 0);
        }
        Ok(())
    })?;

    // Map blobs to where they go, then group them into pack reads.
    let mut places: IdMap<Vec<(u32, u64)>> = IdMap::default();
    let idx = repo.index();
    let mut by_pack: IdMap<Vec<(Id, BlobLocation)>> = IdMap::default();
    for (fi, f) in files.iter().enumerate() {
        let mut off = 0u64;
        for id in &f.node.content {
            let loc = idx.get(id).ok_or(Error::BlobMissing { id: *id })?;
            let v = places.entry(*id).or_default();
            if v.is_empty() {
                by_pack.entry(loc.pack).or_default().push((*id, loc));
            }
            v.push((fi as u32, off));
            off += u64::from(loc.raw_length);
        }
    }
    drop(idx);
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
    // Largest reads first keeps the workers busy to the end.
    ranges.sort_by_key(|r| std::cmp::Reverse(r.length));

    let threads = opts
        .threads
        .unwrap_or_else(|| super::backup::default_threads().max(repo.backend().connections()));
    let pool = super::worker_pool(threads, "restore")?;
    // One range per task, so a slow answer holds up only its own range (rayon otherwise
    // runs a share of the ranges in a row on one thread).
    let reads = ranges.par_iter().with_max_len(1);
    pool.install(|| {
        reads.try_for_each(|r| -> Result<()> {
            progress.check()?;
            let data = repo.block_on(repo.backend().read_range(
                FileKind::Pack,
                &r.pack.to_hex(),
                r.offset,
                r.length,
            ))?;
            let mut open: HashMap<u32, File> = HashMap::new();
            for (id, loc) in &r.blobs {
                let start = (u64::from(loc.offset) - r.offset) as usize;
                let stored = data
                    .get(start..start + loc.length as usize)
                    .ok_or_else(|| Error::Damaged {
                        what: format!("pack {}", r.pack),
                        detail: "shorter than its index says".into(),
                    })?;
                let plain = repo.decode_blob(id, loc.raw_length, stored)?;
                let zero = plain.iter().all(|b| *b == 0);
                for (fi, off) in places.get(id).map(|v| v.as_slice()).unwrap_or(&[]) {
                    let f = &files[*fi as usize];
                    if !(zero && f.node.sparse) {
                        let file = match open.entry(*fi) {
                            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                                OpenOptions::new()
                                    .write(true)
                                    .open(&f.path)
                                    .map_err(|e| write_err(&f.path, e))?,
                            ),
                        };
                        file.write_all_at(&plain, *off)
                            .map_err(|e| write_err(&f.path, e))?;
                    }
                    let last = f.remaining.fetch_sub(1, Relaxed) == 1;
                    progress.add_done(u64::from(last), plain.len() as u64);
                }
            }
            Ok(())
        })
    })?;

    // Links, special files, then metadata (folders last, deepest first).
    progress.set_phase(Phase::Finishing);
    let is_root = nix::unistd::geteuid().is_root();
    let mut warn = |m: String| {
        progress.warn(m.clone());
        out.warnings.push(m);
    };
    for f in &files {
        if let Err(e) = apply_meta(&f.path, &f.node, is_root) {
            warn(format!(
                "could not set metadata of {}: {e}",
                f.path.display()
            ));
        }
        out.bytes += f.node.size;
    }
    out.files = files.len() as u64;
    for (first, p) in &hardlinks {
        if opts.overwrite {
            remove_non_dir(p)?;
        }
        std::fs::hard_link(first, p).map_err(|e| write_err(p, e))?;
        out.files += 1;
    }
    for (p, n) in &others {
        if opts.overwrite {
            remove_non_dir(p)?;
        }
        if let Err(e) = create_special(p, n, is_root) {
            warn(format!("could not create {}: {e}", p.display()));
        }
        progress.add_done(1, 0);
    }
    for (p, n) in dirs.iter().rev() {
        if let Err(e) = apply_meta(p, n, is_root) {
            warn(format!("could not set metadata of {}: {e}", p.display()));
        }
    }
    out.dirs = dirs.len() as u64;
    if root_is_dir && opts.path.trim_matches('/').is_empty() {
        // The snapshot root's own metadata is not recorded; leave the target as it is.
    } else if root_is_dir && let Err(e) = apply_meta(&target, &start, is_root) {
        warn(format!(
            "could not set metadata of {}: {e}",
            target.display()
        ));
    }
    progress.set_phase(Phase::Done);
    Ok(out)
}

fn remove_non_dir(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if !m.is_dir() => std::fs::remove_file(p).map_err(|e| write_err(p, e)),
        _ => Ok(()),
    }
}

fn file_time(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

fn apply_meta(p: &Path, n: &Node, is_root: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root {
        std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid))?;
    }
    if n.kind != NodeKind::Symlink {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(n.mode))?;
        filetime::set_file_times(p, file_time(n.mtime_ns), file_time(n.mtime_ns))?;
    } else {
        filetime::set_symlink_file_times(p, file_time(n.mtime_ns), file_time(n.mtime_ns))?;
    }
    Ok(())
}

fn create_special(p: &Path, n: &Node, is_root: bool) -> std::io::Result<()> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    let mode = Mode::from_bits_truncate(n.mode);
    match n.kind {
        NodeKind::Symlink => {
            let t = n.target.clone().unwrap_or_default();
            std::os::unix::fs::symlink(t.to_os(), p)?;
        }
        NodeKind::Fifo => nix::unistd::mkfifo(p, mode).map_err(std::io::Error::from)?,
        NodeKind::CharDev => {
            mknod(p, SFlag::S_IFCHR, mode, n.rdev).map_err(std::io::Error::from)?
        }
        NodeKind::BlockDev => {
            mknod(p, SFlag::S_IFBLK, mode, n.rdev).map_err(std::io::Error::from)?
        }
        NodeKind::Socket => {
            // A socket only exists while a process listens on it: nothing to restore.
            return Ok(());
        }
        NodeKind::File | NodeKind::Dir => return Ok(()),
    }
    apply_meta(p, n, is_root)
}

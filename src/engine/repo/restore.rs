//! Restore of a snapshot (or a path inside it) into a local folder.
//!
//! Restore is organised by pack, not by file: every needed blob is mapped to the places
//! (file, offset) that need it, packs are read in parallel in ranges ([`reads`]), and each blob is decrypted once and written wherever it belongs
//! with positioned writes. Files are created at their final size first, so all-zero
//! chunks of sparse files become holes. Metadata (owners, modes, times) is applied after
//! the content, folders last and deepest first so their times stick.
//!
//! A file is written under a temporary name in its folder (`.ferry-part.<pid>.<hex>`)
//! and renamed to its own name only once its content and metadata are written and on
//! disk (complete files are synced in batches, see `Durable`), so an interrupted
//! restore never leaves a file that looks restored but is not. A marker in the target ([`MARKER`]) names the snapshot being restored
//! until the restore ends; the same restore started again finds it, removes the
//! temporaries of dead processes and restores what is not there yet.
//!
//! Special files are never opened: FIFOs, sockets and device nodes are made with
//! `mknod`, and metadata is set by path (`lchown`, `chmod`, `utimensat` without
//! following links), so a FIFO cannot block the restore.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::damage::{self, Reach};
use super::id::{Id, IdMap, IdSet};
use super::index::BlobLocation;
use super::lock;
use super::progress::{Phase, Progress};
use super::reads;
use super::snapshot::Snapshot;
use super::tree::{self, Node, NodeKind};
use super::{Error, Repository, Result};

/// The file in the target that names the restore under way; removed when it ends.
pub const MARKER: &str = ".ferry-restore-unfinished";
/// How names of files being written start (`.ferry-part.<pid>.<hex>`).
const PART_PREFIX: &str = ".ferry-part.";

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
    /// Where the content is written: a temporary name in the file's folder.
    path: PathBuf,
    /// The file's own name, which it takes once complete.
    dest: PathBuf,
    node: Node,
    remaining: AtomicU32,
}

/// What the marker file records: which restore is under way in the target.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    snapshot: Id,
    path: String,
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
    restore_from(repo, &snap.tree, snap.id, opts, progress)
}

/// Restores the tree `tree` (a folder stored by [`super::backup::archive_folder`], or
/// any folder of a snapshot) into `opts.target`, as [`restore`] restores a snapshot:
/// a restore interrupted there is finished by the next one of the same tree.
pub fn restore_tree(
    repo: &Repository,
    tree: &Id,
    opts: &RestoreOptions,
    progress: &Arc<Progress>,
) -> Result<RestoreOutcome> {
    restore_from(repo, tree, *tree, opts, progress)
}

/// `name` is what the marker records and messages show: the snapshot, or the tree.
fn restore_from(
    repo: &Repository,
    root: &Id,
    name: Id,
    opts: &RestoreOptions,
    progress: &Arc<Progress>,
) -> Result<RestoreOutcome> {
    let _lock = lock::acquire_for_reading(repo, "restore", progress)?;
    progress.set_phase(Phase::LoadingIndex);
    let unreadable_index = repo.load_index_tolerant()?;
    for (name, e) in &unreadable_index {
        progress.warn(format!(
            "index file {name} cannot be read ({e}); restoring with the rest of the index"
        ));
    }
    let start =
        tree::find_path(repo, root, &opts.path)?.ok_or_else(|| Error::PathNotInSnapshot {
            snapshot: name.short(),
            path: opts.path.clone(),
        })?;

    // Collect what to create, parents before children, and make sure all of it can be
    // read (the same reckoning as `check`) before anything is written.
    progress.set_phase(Phase::Scanning);
    let target = opts.target.clone();
    let mut entries: Vec<(PathBuf, Node)> = Vec::new();
    let root_is_dir = start.kind == NodeKind::Dir;
    let no_damage = IdSet::default();
    let mut problems = Vec::new();
    let readable = if root_is_dir {
        Reach::new(repo, &no_damage).walk(
            &start,
            &target,
            &mut |p, n| entries.push((p.to_path_buf(), n.clone())),
            &mut problems,
        )
    } else {
        entries.push((target.join(start.name.to_os()), start.clone()));
        Reach::new(repo, &no_damage).walk(&start, &target, &mut |_, _| {}, &mut problems)
    };
    if !readable {
        return Err(Error::SnapshotDamaged {
            snapshot: name.short(),
            problems: damage::summary(&problems),
            advice: damage::advice(&problems, !unreadable_index.is_empty()),
        });
    }

    let marker_path = target.join(MARKER);
    let marker = Marker {
        snapshot: name,
        path: opts.path.trim_matches('/').to_string(),
    };
    let resume = prepare_target(&target, &marker_path, &marker, opts.overwrite)?;
    if resume {
        progress.warn(format!(
            "finishing the interrupted restore of snapshot {} into {}",
            name.short(),
            target.display()
        ));
    }
    // The marker cannot sit where the snapshot has a file of that name.
    let use_marker = !entries.iter().any(|(p, _)| *p == marker_path);
    if use_marker {
        write_marker(&marker_path, &marker)?;
    }
    let overwrite = opts.overwrite || resume;
    if overwrite {
        remove_stale_parts(&target);
    }

    let mut out = RestoreOutcome::default();
    let mut files: Vec<FileTarget> = Vec::new();
    let mut hardlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut others: Vec<(PathBuf, Node)> = Vec::new();
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut done_before: Vec<(PathBuf, u64)> = Vec::new();
    for (p, n) in entries {
        match n.kind {
            NodeKind::Dir => {
                if overwrite {
                    remove_non_dir(&p)?;
                }
                std::fs::create_dir_all(&p).map_err(|e| write_err(&p, e))?;
                if overwrite {
                    remove_stale_parts(&p);
                }
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
                if resume && is_complete(&p, &n) {
                    progress.add_done(1, n.size);
                    done_before.push((p, n.size));
                    continue;
                }
                let part = p.with_file_name(part_name()?);
                files.push(FileTarget {
                    remaining: AtomicU32::new(n.content.len() as u32),
                    path: part,
                    dest: p,
                    node: n,
                });
            }
            _ => others.push((p, n)),
        }
    }
    progress.set_totals_final();
    let is_root = nix::unistd::geteuid().is_root();
    let meta_warnings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let durable = Durable::default();
    // A file whose content is all written: its metadata now, its name once durable.
    let finish = |fi: usize| -> Result<()> {
        let f = &files[fi];
        let (file, warning) = complete_file(f, is_root)?;
        if let Some(w) = warning {
            progress.warn(w.clone());
            meta_warnings.lock().push(w);
        }
        durable.add(fi, file, &files)
    };

    // Create every file at its final size, under its temporary name.
    progress.set_phase(Phase::Transferring);
    let created = files
        .par_iter()
        .enumerate()
        .try_for_each(|(fi, f)| -> Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&f.path)
                .map_err(|e| write_err(&f.path, e))?;
            if f.node.size > 0 {
                file.set_len(f.node.size)
                    .map_err(|e| write_err(&f.path, e))?;
            }
            drop(file);
            if f.node.content.is_empty() {
                finish(fi)?;
                progress.add_done(1, 0);
            }
            Ok(())
        });
    if let Err(e) = created {
        remove_parts(&files);
        return Err(e);
    }

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
    let ranges = reads::plan(by_pack);

    let threads = opts
        .threads
        .unwrap_or_else(|| super::backup::default_threads().max(repo.backend().connections()));
    let pool = super::worker_pool(threads, "restore")?;
    // One range per task, so a slow answer holds up only its own range (rayon otherwise
    // runs a share of the ranges in a row on one thread).
    let written = pool.install(|| {
        ranges
            .par_iter()
            .with_max_len(1)
            .try_for_each(|r| -> Result<()> {
                progress.check()?;
                let data = r.read(repo)?;
                let mut open: HashMap<u32, File> = HashMap::new();
                for (id, loc) in &r.blobs {
                    let plain = repo.decode_blob(id, loc.raw_length, r.stored(&data, loc)?)?;
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
                        if last {
                            finish(*fi as usize)?;
                        }
                        progress.add_done(u64::from(last), plain.len() as u64);
                    }
                }
                Ok(())
            })
    });
    if let Err(e) = written.and_then(|()| durable.flush(&files)) {
        remove_parts(&files);
        return Err(e);
    }

    // Links, special files, then metadata of folders (last, deepest first). Files got
    // theirs before they took their names.
    progress.set_phase(Phase::Finishing);
    out.warnings = meta_warnings.into_inner();
    let mut warn = |m: String| {
        progress.warn(m.clone());
        out.warnings.push(m);
    };
    out.bytes = files.iter().map(|f| f.node.size).sum::<u64>()
        + done_before.iter().map(|(_, size)| size).sum::<u64>();
    out.files = (files.len() + done_before.len()) as u64;
    for (first, p) in &hardlinks {
        if overwrite {
            remove_non_dir(p)?;
        }
        std::fs::hard_link(first, p).map_err(|e| write_err(p, e))?;
        out.files += 1;
    }
    for (p, n) in &others {
        if overwrite {
            remove_non_dir(p)?;
        }
        match create_special(p, n, is_root) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) && is_device(n) => warn(format!(
                "skipped device node {}: creating one needs root",
                p.display()
            )),
            Err(e) => warn(format!("could not create {}: {e}", p.display())),
        }
        progress.add_done(1, 0);
    }
    for (p, n) in dirs.iter().rev() {
        if let Err(e) = apply_meta(p, n, is_root) {
            warn(format!("could not set metadata of {}: {e}", p.display()));
        }
    }
    out.dirs = dirs.len() as u64;
    // Everything restored is on disk before the marker goes, and the marker goes before
    // the target's own time is set (removing it changes that time).
    if let Err(e) = File::open(&target).and_then(|d| nix::unistd::syncfs(d).map_err(Into::into)) {
        warn(format!("could not sync {}: {e}", target.display()));
    }
    if use_marker {
        // Another restore into the same folder (the console's downloads) may have
        // removed it already.
        match std::fs::remove_file(&marker_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(write_err(&marker_path, e));
            }
            _ => {}
        }
    }
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

/// Checks the target and says whether this restore finishes an interrupted one: a
/// target that is not empty is refused unless `overwrite`, or unless its marker names
/// this same restore.
fn prepare_target(
    target: &Path,
    marker_path: &Path,
    marker: &Marker,
    overwrite: bool,
) -> Result<bool> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            if is_empty_dir(target).map_err(|e| write_err(target, e))? {
                return Ok(false);
            }
            let previous = read_marker(marker_path);
            if previous.as_ref() == Some(marker) {
                return Ok(true);
            }
            if overwrite {
                return Ok(false);
            }
            match previous {
                Some(other) => Err(Error::InvalidOption(format!(
                    "the restore target {} holds an interrupted restore of snapshot {} (path {:?}): run that restore again to finish it, or choose an empty folder, or pass --overwrite",
                    target.display(),
                    other.snapshot.short(),
                    other.path
                ))),
                None => Err(Error::TargetNotEmpty(target.to_path_buf())),
            }
        }
        Ok(_) => Err(Error::TargetNotEmpty(target.to_path_buf())),
        Err(_) => {
            std::fs::create_dir_all(target).map_err(|e| write_err(target, e))?;
            Ok(false)
        }
    }
}

fn read_marker(path: &Path) -> Option<Marker> {
    use std::io::Read;
    let f = File::open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(64 * 1024).read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

fn write_marker(path: &Path, marker: &Marker) -> Result<()> {
    let data = serde_json::to_vec(marker).map_err(|e| write_err(path, e.into()))?;
    let mut f = File::create(path).map_err(|e| write_err(path, e))?;
    std::io::Write::write_all(&mut f, &data).map_err(|e| write_err(path, e))?;
    f.sync_all().map_err(|e| write_err(path, e))
}

/// A fresh temporary name for a file being written: `.ferry-part.<pid>.<hex>`.
fn part_name() -> Result<String> {
    let mut b = [0u8; 8];
    super::crypto::random_bytes(&mut b)?;
    Ok(format!(
        "{PART_PREFIX}{}.{}",
        std::process::id(),
        hex::encode(b)
    ))
}

/// Removes the temporaries that processes no longer running left in `dir`.
fn remove_stale_parts(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PART_PREFIX)) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| {
            pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
        });
        if !alive && e.file_type().is_ok_and(|t| t.is_file()) {
            tracing::info!(path = %e.path().display(), "removing a file an interrupted restore left");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the temporaries of files not yet complete (the restore failed; complete
/// files have their own names already).
fn remove_parts(files: &[FileTarget]) {
    for f in files {
        let _ = std::fs::remove_file(&f.path);
    }
}

/// Whether `p` is a file this restore completed before it was interrupted: a complete
/// file gets its size and time before it takes its name.
fn is_complete(p: &Path, n: &Node) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(p) {
        Ok(m) => {
            m.is_file()
                && m.len() == n.size
                && m.mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.mtime_nsec())
                    == n.mtime_ns
        }
        Err(_) => false,
    }
}

/// Gives a file whose content is all written its owner, mode and times. Returns its
/// handle (for [`Durable`]) and a warning when metadata could not be set (the file is
/// restored all the same).
fn complete_file(f: &FileTarget, is_root: bool) -> Result<(File, Option<String>)> {
    let file = OpenOptions::new()
        .write(true)
        .open(&f.path)
        .map_err(|e| write_err(&f.path, e))?;
    let warning = apply_file_meta(&file, &f.node, is_root)
        .err()
        .map(|e| format!("could not set metadata of {}: {e}", f.dest.display()));
    Ok((file, warning))
}

/// Complete files wait here to be made durable together, then take their names: one
/// `syncfs(2)` per batch costs far less than an fsync per file (a restore of many
/// small files took 4 to 6 times as long with one each), and still no file has its
/// name before its content and metadata are on disk.
#[derive(Default)]
struct Durable {
    pending: Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    files: Vec<(usize, File)>,
    started: Option<Instant>,
}

/// A batch is settled when it holds this many files...
const BATCH_FILES: usize = 256;
/// ...or when a file completes this long after the batch's first one.
const BATCH_AGE: Duration = Duration::from_millis(500);

impl Durable {
    fn add(&self, fi: usize, file: File, files: &[FileTarget]) -> Result<()> {
        let full = {
            let mut b = self.pending.lock();
            b.files.push((fi, file));
            let started = *b.started.get_or_insert_with(Instant::now);
            (b.files.len() >= BATCH_FILES || started.elapsed() >= BATCH_AGE)
                .then(|| std::mem::take(&mut *b))
        };
        match full {
            Some(batch) => settle(batch, files),
            None => Ok(()),
        }
    }

    fn flush(&self, files: &[FileTarget]) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending.lock());
        settle(batch, files)
    }
}

/// Syncs the file systems a batch is on, then renames its files into place.
fn settle(batch: Batch, files: &[FileTarget]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut synced = std::collections::HashSet::new();
    for (fi, file) in &batch.files {
        let path = &files[*fi].path;
        let dev = file.metadata().map_err(|e| write_err(path, e))?.dev();
        if synced.insert(dev) {
            nix::unistd::syncfs(file).map_err(|e| write_err(path, e.into()))?;
        }
    }
    for (fi, file) in batch.files {
        drop(file);
        let f = &files[fi];
        std::fs::rename(&f.path, &f.dest).map_err(|e| write_err(&f.dest, e))?;
    }
    Ok(())
}

/// Owner (as root), mode and times of a regular file, through its open handle.
fn apply_file_meta(file: &File, n: &Node, is_root: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root {
        std::os::unix::fs::fchown(file, Some(n.uid), Some(n.gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(n.mode))?;
    let t = std::time::SystemTime::from(file_time(n.mtime_ns));
    file.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
}

fn is_device(n: &Node) -> bool {
    matches!(n.kind, NodeKind::CharDev | NodeKind::BlockDev)
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

/// Owner (as root), mode and times of anything but a regular file, by path: nothing is
/// opened (opening a FIFO blocks) and links are not followed.
fn apply_meta(p: &Path, n: &Node, is_root: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root {
        std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid))?;
    }
    if n.kind != NodeKind::Symlink {
        // chmod(2) changes a FIFO or device node without opening it.
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(n.mode))?;
    }
    // utimensat(2) with AT_SYMLINK_NOFOLLOW.
    filetime::set_symlink_file_times(p, file_time(n.mtime_ns), file_time(n.mtime_ns))
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
        // The socket's name, as `ls` shows it; nothing listens on it until its program
        // binds it again (which replaces it).
        NodeKind::Socket => mknod(p, SFlag::S_IFSOCK, mode, 0).map_err(std::io::Error::from)?,
        NodeKind::File | NodeKind::Dir => return Ok(()),
    }
    apply_meta(p, n, is_root)
}

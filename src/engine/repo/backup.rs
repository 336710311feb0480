//! Backup of a folder into a snapshot.
//!
//! The tree is archived depth-first on a pool of worker threads: the entries of a
//! folder are processed in parallel (many small files are latency-bound), and the
//! chunks of each read segment of a large file are hashed, compressed and encrypted in
//! parallel too. Memory stays bounded: each worker holds one read segment, packs are
//! staged on disk. A folder's tree blob is saved once all its entries are done.
//!
//! With a parent snapshot, a file whose size, mtime, ctime and inode are unchanged
//! reuses the parent's content list without being read.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::Mutex;
use rayon::prelude::*;

use super::id::Id;
use super::ingest;
use super::lock;
use super::pack::BlobType;
use super::progress::{Phase, Progress};
use super::rate::RateLimit;
use super::saver::Saver;
use super::snapshot::{self, Snapshot, Summary};
use super::tree::{Name, Node, NodeKind, Tree};
use super::{Error, Repository, Result};

#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and paths.
    #[default]
    Auto,
    /// No parent: read every file.
    None,
    /// This snapshot (ID prefix).
    Snapshot(String),
}

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub source: PathBuf,
    pub tags: Vec<String>,
    pub parent: ParentChoice,
    /// Host name recorded (default: this host).
    pub host: Option<String>,
    /// Read-IO limit in bytes per second.
    pub read_limit: Option<u64>,
    /// Worker threads (default: enough for the cores and for I/O latency).
    pub threads: Option<usize>,
}

#[derive(Debug)]
pub struct BackupOutcome {
    pub snapshot: Snapshot,
    /// Files or folders that could not be read and were skipped.
    pub warnings: Vec<String>,
}

#[derive(Default, Debug)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    blobs_new: AtomicU64,
    warnings: Mutex<Vec<String>>,
}

struct Archiver<'a> {
    repo: &'a Repository,
    saver: &'a Saver,
    chunker: &'a super::chunker::Chunker,
    progress: &'a Progress,
    read_limit: Option<RateLimit>,
    counters: Counters,
    /// Compare files with the parent without change time and inode.
    ignore_inode: bool,
}

/// Default worker count: I/O latency on small files wants more threads than cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2
}

/// Backs up `opts.source` into a new snapshot.
pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Arc<Progress>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let source = source_folder(&opts.source)?;
    let _lock = prepare(repo, progress)?;
    let host = opts.host.clone().unwrap_or_else(super::hostname);
    let paths = vec![source.to_string_lossy().into_owned()];
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(spec) => Some(snapshot::find(repo, spec)?),
        ParentChoice::Auto => {
            let (all, _) = snapshot::list(repo)?;
            all.into_iter()
                .rev()
                .find(|s| s.host == host && s.paths == paths)
        }
    };
    let parent_tree = parent.as_ref().and_then(|p| {
        load_parent(
            repo,
            &p.tree,
            &format!("parent snapshot {}", p.id.short()),
            progress,
        )
    });
    let (root, c) = archive(
        repo,
        &source,
        parent_tree.as_ref(),
        opts.read_limit,
        opts.threads,
        false,
        progress,
    )?;

    let warnings = std::mem::take(&mut *c.warnings.lock());
    let mut snap = Snapshot {
        id: Id::default(),
        version: super::repo::FORMAT_VERSION,
        time: chrono::Utc::now(),
        host,
        username: super::username(),
        paths,
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|p| p.id),
        tree: root,
        items: BTreeMap::new(),
        meta: BTreeMap::new(),
        summary: c.summary(progress, warnings.len(), started),
        program: format!("ferry {}", env!("CARGO_PKG_VERSION")),
    };
    snap.save(repo)?;
    progress.set_phase(Phase::Done);
    tracing::info!(snapshot = %snap.id, files = snap.summary.files, bytes = snap.summary.bytes, "backup done");
    Ok(BackupOutcome {
        snapshot: snap,
        warnings,
    })
}

/// How [`archive_folder`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct FolderOptions {
    /// The tree of an earlier copy of the same folder: unchanged files are not read.
    pub parent: Option<Id>,
    /// Read-IO limit in bytes per second.
    pub read_limit: Option<u64>,
    pub threads: Option<usize>,
    /// Compare with the parent by type, size and modification time only: for a folder
    /// read from a copy (a CSI snapshot made by copying files), where every file has a
    /// new inode and change time.
    pub ignore_inode: bool,
}

/// A folder stored as trees and blobs without a snapshot of its own ([`archive_folder`]).
#[derive(Debug)]
pub struct ArchivedFolder {
    /// The folder's tree.
    pub tree: Id,
    /// The folder's own metadata (mode, owner, times), for the node that will name it.
    pub root: Node,
    pub summary: Summary,
    /// Files or folders that could not be read and were skipped.
    pub warnings: Vec<String>,
}

/// Stores the folder `source` as [`backup`] does, but writes no snapshot: its tree's ID
/// is the result, for a caller that links it into a snapshot of its own (an in-cluster
/// agent reading one volume of a capture). With `parent`, the tree of an earlier copy of
/// the same folder, unchanged files are not read.
pub fn archive_folder(
    repo: &Repository,
    source: &Path,
    opts: &FolderOptions,
    progress: &Arc<Progress>,
) -> Result<ArchivedFolder> {
    let FolderOptions {
        parent,
        read_limit,
        threads,
        ignore_inode,
    } = *opts;
    let started = Instant::now();
    let source = source_folder(source)?;
    let meta = std::fs::symlink_metadata(&source).map_err(|e| Error::Source {
        path: source.clone(),
        source: e,
    })?;
    let _lock = prepare(repo, progress)?;
    let parent_tree =
        parent.and_then(|t| load_parent(repo, &t, &format!("parent tree {}", t.short()), progress));
    let (tree, c) = archive(
        repo,
        &source,
        parent_tree.as_ref(),
        read_limit,
        threads,
        ignore_inode,
        progress,
    )?;
    let warnings = std::mem::take(&mut *c.warnings.lock());
    let mut root = node_from_meta(Name(Vec::new()), &meta);
    root.subtree = Some(tree);
    progress.set_phase(Phase::Done);
    Ok(ArchivedFolder {
        tree,
        root,
        summary: c.summary(progress, warnings.len(), started),
        warnings,
    })
}

/// `path` made absolute, which must be a folder.
fn source_folder(path: &Path) -> Result<PathBuf> {
    let source = std::fs::canonicalize(path).map_err(|e| Error::Source {
        path: path.to_path_buf(),
        source: e,
    })?;
    let meta = std::fs::metadata(&source).map_err(|e| Error::Source {
        path: source.clone(),
        source: e,
    })?;
    if !meta.is_dir() {
        return Err(Error::InvalidOption(format!(
            "{} is not a folder: back up the folder that contains it",
            source.display()
        )));
    }
    Ok(source)
}

/// The shared lock, the index, and the packs a killed job left re-indexed.
fn prepare(repo: &Repository, progress: &Progress) -> Result<lock::LockGuard> {
    let guard = lock::acquire(repo, false, "backup")?;
    progress.set_phase(Phase::LoadingIndex);
    repo.load_index()?;
    let rec = repo.recover_unindexed_packs()?;
    if rec.packs > 0 {
        progress.warn(format!(
            "re-indexed {} pack(s) left by an interrupted job; their {} blobs are reused",
            rec.packs, rec.blobs
        ));
    }
    Ok(guard)
}

/// The parent's tree, or `None` (with a warning) when it cannot be read.
fn load_parent(repo: &Repository, tree: &Id, what: &str, progress: &Progress) -> Option<Tree> {
    match Tree::load(repo, tree) {
        Ok(t) => Some(t),
        Err(e) => {
            progress.warn(format!("{what} is unreadable ({e}); reading every file"));
            None
        }
    }
}

/// Stores the folder `source` on a worker pool; returns its tree and the counts.
fn archive(
    repo: &Repository,
    source: &Path,
    parent_tree: Option<&Tree>,
    read_limit: Option<u64>,
    threads: Option<usize>,
    ignore_inode: bool,
    progress: &Arc<Progress>,
) -> Result<(Id, Counters)> {
    // Count what there is to do while the work goes on, for the ETA.
    progress.set_phase(Phase::Transferring);
    let stop_scan = Arc::new(AtomicBool::new(false));
    let scanner = {
        let progress = progress.clone();
        let root = source.to_path_buf();
        let stop = stop_scan.clone();
        std::thread::Builder::new()
            .name("ferry-scan".into())
            .spawn(move || {
                if scan(&root, &progress, &stop) {
                    progress.set_totals_final();
                }
            })
            .ok()
    };

    let saver = Saver::new(repo, progress.clone(), true)?;
    let archiver = Archiver {
        repo,
        saver: &saver,
        chunker: repo.chunker(),
        progress,
        read_limit: read_limit.map(RateLimit::new),
        counters: Counters::default(),
        ignore_inode,
    };
    let pool = super::worker_pool(threads.unwrap_or_else(default_threads), "backup")?;
    let root = pool.install(|| archiver.archive_dir(source, parent_tree, true));
    progress.set_phase(Phase::Finishing);
    let c = archiver.counters;
    let finished = saver.finish();
    if let Some(s) = scanner {
        stop_scan.store(true, Relaxed);
        let _ = s.join();
    }
    finished?;
    let root = root?;
    progress.check()?;
    Ok((root, c))
}

impl Counters {
    fn summary(&self, progress: &Progress, warnings: usize, started: Instant) -> Summary {
        let p = progress.snapshot();
        Summary {
            files: self.files.load(Relaxed),
            dirs: self.dirs.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            files_new: self.files_new.load(Relaxed),
            files_changed: self.files_changed.load(Relaxed),
            files_unmodified: self.files_unmodified.load(Relaxed),
            bytes_new: p.bytes_new,
            bytes_stored: p.bytes_stored,
            blobs_new: self.blobs_new.load(Relaxed),
            warnings: warnings as u64,
            duration_secs: started.elapsed().as_secs_f64(),
        }
    }
}

/// Counts files and bytes below `root` for progress totals; false if stopped early.
fn scan(root: &Path, progress: &Progress, stop: &AtomicBool) -> bool {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if progress.is_cancelled() || stop.load(Relaxed) {
            return false;
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let (mut files, mut bytes) = (0, 0);
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                if m.is_file() {
                    bytes += m.len();
                }
            }
        }
        progress.add_total(files, bytes);
    }
    true
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn node_from_meta(name: Name, m: &Metadata) -> Node {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDev
    } else if ft.is_block_device() {
        NodeKind::BlockDev
    } else {
        NodeKind::File
    };
    let size = if kind == NodeKind::File { m.len() } else { 0 };
    Node {
        name,
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
        ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
        inode: m.ino(),
        device: m.dev(),
        links: m.nlink(),
        size,
        content: Vec::new(),
        sparse: kind == NodeKind::File && m.blocks().saturating_mul(512) < size,
        subtree: None,
        target: None,
        rdev: if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
            m.rdev()
        } else {
            0
        },
    }
}

impl Archiver<'_> {
    fn warn(&self, msg: String) {
        self.progress.warn(msg.clone());
        self.counters.warnings.lock().push(msg);
    }

    fn save_blob(&self, kind: BlobType, data: &[u8]) -> Result<Id> {
        let (id, new) = self.saver.save(kind, data)?;
        if new {
            self.counters.blobs_new.fetch_add(1, Relaxed);
        }
        Ok(id)
    }

    /// Archives a folder; returns its tree ID.
    fn archive_dir(&self, path: &Path, parent: Option<&Tree>, is_root: bool) -> Result<Id> {
        self.progress.check()?;
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if is_root => {
                return Err(Error::Source {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => {
                self.warn(format!("skipped folder {}: {e}", path.display()));
                return Tree::default().save(|k, d| self.save_blob(k, d));
            }
        };
        let mut names: Vec<_> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.warn(format!("could not list all of {}: {e}", path.display())),
            }
        }
        names.sort_by(|a, b| Name::from_os(a).cmp(&Name::from_os(b)));
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| self.archive_entry(path, name, parent))
            .collect::<Result<_>>()?;
        self.counters.dirs.fetch_add(1, Relaxed);
        let tree = Tree {
            nodes: nodes.into_iter().flatten().collect(),
        };
        tree.save(|k, d| self.save_blob(k, d))
    }

    fn archive_entry(
        &self,
        dir: &Path,
        name: &std::ffi::OsStr,
        parent: Option<&Tree>,
    ) -> Result<Option<Node>> {
        let path = dir.join(name);
        let nm = Name::from_os(name);
        let prev = parent.and_then(|t| t.find(&nm.0));
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("skipped {}: {e}", path.display()));
                return Ok(None);
            }
        };
        let mut node = node_from_meta(nm, &meta);
        match node.kind {
            NodeKind::Dir => {
                let sub = match prev.and_then(|p| p.subtree) {
                    Some(id) => match Tree::load(self.repo, &id) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            tracing::warn!(error = %e, "parent subtree unreadable; reading the folder afresh");
                            None
                        }
                    },
                    None => None,
                };
                node.subtree = Some(self.archive_dir(&path, sub.as_ref(), false)?);
            }
            NodeKind::Symlink => match std::fs::read_link(&path) {
                Ok(t) => node.target = Some(Name::from_os(t.as_os_str())),
                Err(e) => {
                    self.warn(format!("skipped symlink {}: {e}", path.display()));
                    return Ok(None);
                }
            },
            NodeKind::File => {
                self.counters.files.fetch_add(1, Relaxed);
                self.counters.bytes.fetch_add(node.size, Relaxed);
                let unchanged = prev.filter(|p| {
                    p.kind == NodeKind::File
                        && p.size == node.size
                        && p.mtime_ns == node.mtime_ns
                        && (self.ignore_inode
                            || (p.ctime_ns == node.ctime_ns && p.inode == node.inode))
                });
                if let Some(p) = unchanged {
                    node.content = p.content.clone();
                    self.counters.files_unmodified.fetch_add(1, Relaxed);
                    self.progress.add_done(1, node.size);
                    return Ok(Some(node));
                }
                if node.size > 1 << 20 {
                    self.progress.set_current(|| path.display().to_string());
                }
                match self.read_file(&path, &mut node) {
                    Ok(()) => {
                        if prev.is_some() {
                            self.counters.files_changed.fetch_add(1, Relaxed);
                        } else {
                            self.counters.files_new.fetch_add(1, Relaxed);
                        }
                    }
                    Err(FileError::Fatal(e)) => return Err(e),
                    Err(FileError::Read(e)) => {
                        self.warn(format!("skipped file {}: {e}", path.display()));
                        return Ok(None);
                    }
                }
                self.progress.add_done(1, 0);
                return Ok(Some(node));
            }
            _ => {}
        }
        self.progress.add_done(1, 0);
        Ok(Some(node))
    }

    /// Reads, chunks and stores a file's content.
    fn read_file(&self, path: &Path, node: &mut Node) -> Result<(), FileError> {
        let mut f = open_noatime(path).map_err(FileError::Read)?;
        let stored = ingest::store_stream(
            self.saver,
            self.chunker,
            self.progress,
            &mut f,
            node.size,
            self.read_limit.as_ref(),
        )
        .map_err(|e| match e {
            ingest::StreamError::Read(e) => FileError::Read(e),
            ingest::StreamError::Fatal(e) => FileError::Fatal(e),
        })?;
        self.counters.blobs_new.fetch_add(stored.blobs_new, Relaxed);
        node.content = stored.content;
        // The file may have changed size while we read it: record what we stored.
        if stored.bytes != node.size {
            tracing::info!(path = %path.display(), expected = node.size, read = stored.bytes, "file changed while read");
            node.size = stored.bytes;
        }
        Ok(())
    }
}

/// Opens a file for reading without updating its access time where allowed (the owner
/// or root), so that reading it does not change what the next backup sees. The open
/// never blocks: a FIFO or device that took the file's place since it was listed is
/// refused (a FIFO would otherwise wait for a writer forever).
fn open_noatime(path: &Path) -> std::io::Result<File> {
    use nix::libc::{O_NOATIME, O_NONBLOCK};
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    let f = match open(O_NOATIME | O_NONBLOCK) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => open(O_NONBLOCK)?,
        other => other?,
    };
    // O_NONBLOCK changes nothing for a regular file's reads.
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "it is no longer a regular file (a FIFO, socket or device took its place)",
        ));
    }
    Ok(f)
}

enum FileError {
    /// The file could not be read: skip it with a warning.
    Read(std::io::Error),
    /// The repository failed: stop the backup.
    Fatal(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO that takes a file's place between listing and reading is refused at once:
    /// opening it for reading would otherwise wait for a writer forever.
    #[test]
    fn opening_a_fifo_as_a_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(open_noatime(&p).map(|_| ()).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a FIFO blocked");
        let err = got.unwrap_err();
        assert!(err.contains("no longer a regular file"), "{err}");
        // A regular file still opens.
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert!(open_noatime(&dir.path().join("f")).is_ok());
    }
}

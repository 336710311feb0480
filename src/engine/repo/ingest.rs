//! Snapshot trees from sources other than a local folder, and tar streams out of them.
//!
//! A persistent volume is read through a pod's exec API as a tar stream, and
//! Kubernetes objects arrive as documents: neither is a folder [`super::backup`] can
//! walk. [`TreeBuilder`] takes entries by path in any order (files with their content as
//! a reader, folders, symlinks, or nodes reused unchanged from a parent snapshot) and
//! writes the trees bottom-up when finished. [`read_tar`] feeds a tar stream into a
//! builder; [`write_tar`] turns a stored tree back into a tar stream, which is how
//! volume data goes back into a cluster.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;

use super::chunker::Chunker;
use super::id::Id;
use super::pack::BlobType;
use super::progress::Progress;
use super::rate::RateLimit;
use super::saver::Saver;
pub use super::tree::dir_node;
use super::tree::{Name, Node, NodeKind, Tree};
use super::{Error, Repository, Result};

/// Bytes read from a stream at a time; the chunks of one segment are stored in parallel.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Why storing a stream failed: the source could not be read (skip the file and go
/// on) or the repository failed (stop the job).
#[derive(Debug)]
pub enum StreamError {
    Read(std::io::Error),
    Fatal(Error),
}

/// What storing a stream produced.
#[derive(Debug, Default)]
pub struct Stored {
    pub content: Vec<Id>,
    pub bytes: u64,
    pub blobs_new: u64,
}

/// Chunks `reader` to its end and stores the chunks as data blobs. `expected` sizes the
/// first read; `limit` throttles reading; progress counts the bytes read.
pub fn store_stream(
    saver: &Saver,
    chunker: &Chunker,
    progress: &Progress,
    reader: &mut dyn Read,
    expected: u64,
    limit: Option<&RateLimit>,
) -> std::result::Result<Stored, StreamError> {
    let mut buf: Vec<u8> = Vec::with_capacity(SEGMENT.min(expected as usize + 1).max(64 * 1024));
    let mut lens = Vec::new();
    let mut out = Stored::default();
    let new_blobs = AtomicU64::new(0);
    let save = |data: &[u8]| -> Result<Id> {
        let (id, new) = saver.save(BlobType::Data, data)?;
        if new {
            new_blobs.fetch_add(1, Relaxed);
        }
        Ok(id)
    };
    let mut eof = false;
    while !eof {
        progress.check().map_err(StreamError::Fatal)?;
        // Fill the buffer up to a segment (or the end), without zero-filling it first.
        let want = SEGMENT.max(chunker.max_size());
        while !eof && buf.len() < want {
            let left = (expected.saturating_sub(out.bytes) as usize).saturating_add(1);
            let need = (want - buf.len()).min(left.max(64 * 1024));
            buf.reserve_exact(need);
            let n = match reader.take(need as u64).read_to_end(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err(StreamError::Read(e)),
            };
            if n < need {
                eof = true;
            }
            if let Some(t) = limit {
                t.acquire_blocking(n as u64);
            }
            out.bytes += n as u64;
            progress.add_done(0, n as u64);
        }
        lens.clear();
        let used = chunker.split(&buf, eof, &mut lens);
        let mut spans = Vec::with_capacity(lens.len());
        let mut o = 0;
        for l in &lens {
            spans.push((o, *l));
            o += l;
        }
        let ids: Vec<Id> = if spans.len() > 1 {
            spans
                .par_iter()
                .map(|(o, l)| save(&buf[*o..*o + *l]))
                .collect::<Result<_>>()
        } else {
            spans.iter().map(|(o, l)| save(&buf[*o..*o + *l])).collect()
        }
        .map_err(StreamError::Fatal)?;
        out.content.extend(ids);
        buf.drain(..used);
    }
    out.blobs_new = new_blobs.load(Relaxed);
    Ok(out)
}

/// Counts of what a builder stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Files whose content was read and stored (new or changed).
    pub files_read: u64,
    /// Files reused from a parent snapshot without being transferred.
    pub files_reused: u64,
    pub blobs_new: u64,
}

/// A folder being built, or (with `leaf`) a file, symlink or other non-folder entry.
#[derive(Debug, Default)]
struct Dir {
    /// The entry's own metadata, once known.
    node: Option<Node>,
    entries: BTreeMap<Vec<u8>, Dir>,
    leaf: bool,
}

/// A regular file's node with the given metadata and no content yet.
pub fn file_node(name: &[u8], mode: u32, uid: u32, gid: u32, mtime_secs: i64) -> Node {
    Node {
        kind: NodeKind::File,
        mode,
        uid,
        gid,
        mtime_ns: mtime_secs.saturating_mul(1_000_000_000),
        ctime_ns: mtime_secs.saturating_mul(1_000_000_000),
        ..dir_node(name)
    }
}

/// Splits a relative path into components, dropping empty ones and `.`; refuses `..`
/// and names that could not be restored safely.
fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        if !Name(c.to_vec()).is_safe() {
            return Err(Error::Damaged {
                what: "an incoming file list".into(),
                detail: format!(
                    "the path {:?} escapes its folder",
                    String::from_utf8_lossy(path)
                ),
            });
        }
        out.push(c);
    }
    Ok(out)
}

/// Builds a snapshot tree from entries added by path.
pub struct TreeBuilder<'a> {
    saver: &'a Saver,
    chunker: &'a Chunker,
    progress: &'a Progress,
    limit: Option<&'a RateLimit>,
    root: Dir,
    stats: IngestStats,
    warnings: Vec<String>,
}

impl<'a> TreeBuilder<'a> {
    pub fn new(repo: &'a Repository, saver: &'a Saver, progress: &'a Progress) -> TreeBuilder<'a> {
        TreeBuilder {
            saver,
            chunker: repo.chunker(),
            progress,
            limit: None,
            root: Dir::default(),
            stats: IngestStats::default(),
            warnings: Vec::new(),
        }
    }

    /// Throttles the reading of file contents.
    pub fn with_limit(mut self, limit: Option<&'a RateLimit>) -> TreeBuilder<'a> {
        self.limit = limit;
        self
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Files that could not be read and were skipped.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn dir_mut(&mut self, comps: &[&[u8]]) -> &mut Dir {
        let mut d = &mut self.root;
        for c in comps {
            d = d.entries.entry(c.to_vec()).or_default();
            if d.leaf {
                // A file replaced by a folder of the same name: the later entry wins.
                *d = Dir::default();
            }
        }
        d
    }

    fn find(&self, comps: &[&[u8]]) -> Option<&Dir> {
        let mut d = &self.root;
        for c in comps {
            d = d.entries.get(*c)?;
        }
        Some(d)
    }

    /// Adds `path` as another name of the file already added at `target` (a tar hard
    /// link): it is stored as a file with the same content.
    pub fn link(&mut self, path: &[u8], target: &[u8]) -> Result<()> {
        let t = components(target)?;
        let node = match self.find(&t) {
            Some(d) if d.leaf => d.node.clone(),
            _ => None,
        };
        match node {
            Some(n) => {
                self.add(path, n, None)?;
                // Another name of a file this stream carried, not one reused from a
                // parent snapshot.
                self.stats.files_reused = self.stats.files_reused.saturating_sub(1);
                Ok(())
            }
            None => {
                self.warnings.push(format!(
                    "{}: hard link to {} which the stream did not carry; skipped",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(target)
                ));
                Ok(())
            }
        }
    }

    /// Adds `node` at `path`. Folders take their metadata from `node` and keep what
    /// was added below them; files with `content` have it read and stored, files
    /// without keep the content list `node` carries (reused from a parent snapshot).
    pub fn add(
        &mut self,
        path: &[u8],
        mut node: Node,
        content: Option<&mut dyn Read>,
    ) -> Result<()> {
        let comps = components(path)?;
        let Some((last, parents)) = comps.split_last() else {
            // The root folder itself: only its metadata matters.
            if node.kind == NodeKind::Dir {
                node.name = Name(Vec::new());
                self.root.node = Some(node);
            }
            return Ok(());
        };
        node.name = Name(last.to_vec());
        match node.kind {
            NodeKind::Dir => {
                node.subtree = None;
                let d = self.dir_mut(&comps);
                d.node = Some(node);
                return Ok(());
            }
            NodeKind::File => {
                self.stats.files += 1;
                if let Some(r) = content {
                    match store_stream(
                        self.saver,
                        self.chunker,
                        self.progress,
                        r,
                        node.size,
                        self.limit,
                    ) {
                        Ok(s) => {
                            node.content = s.content;
                            node.size = s.bytes;
                            self.stats.blobs_new += s.blobs_new;
                            self.stats.files_read += 1;
                        }
                        Err(StreamError::Fatal(e)) => return Err(e),
                        Err(StreamError::Read(e)) => {
                            // The source stream itself broke: nothing after this entry
                            // can be trusted.
                            return Err(Error::Source {
                                path: String::from_utf8_lossy(path).into_owned().into(),
                                source: e,
                            });
                        }
                    }
                } else {
                    self.stats.files_reused += 1;
                    self.progress.add_done(0, node.size);
                }
                self.stats.bytes += node.size;
                self.progress.add_done(1, 0);
            }
            _ => {}
        }
        self.put_leaf(parents, last, node);
        Ok(())
    }

    /// Puts a folder stored elsewhere at `path`, whole: `node` is a folder whose
    /// `subtree` is already in the repository (a volume an in-cluster agent stored with
    /// [`crate::backup::archive_folder`]); its trees are neither read nor written again.
    pub fn graft(&mut self, path: &[u8], mut node: Node) -> Result<()> {
        if node.kind != NodeKind::Dir || node.subtree.is_none() {
            return Err(Error::InvalidOption(format!(
                "{}: only a stored folder can be grafted",
                String::from_utf8_lossy(path)
            )));
        }
        let comps = components(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::InvalidOption(
                "a folder cannot be grafted as the snapshot's root".into(),
            ));
        };
        node.name = Name(last.to_vec());
        self.put_leaf(parents, last, node);
        Ok(())
    }

    /// Places `node` as the leaf `last` of the folder `parents`, replacing whatever was
    /// there.
    fn put_leaf(&mut self, parents: &[&[u8]], last: &[u8], node: Node) {
        self.dir_mut(parents).entries.insert(
            last.to_vec(),
            Dir {
                node: Some(node),
                entries: BTreeMap::new(),
                leaf: true,
            },
        );
    }

    /// Drops whatever was added at or below `path`.
    pub fn remove(&mut self, path: &[u8]) -> Result<()> {
        let comps = components(path)?;
        let Some((last, parents)) = comps.split_last() else {
            self.root = Dir::default();
            return Ok(());
        };
        let mut d = &mut self.root;
        for c in parents {
            match d.entries.get_mut(*c) {
                Some(next) => d = next,
                None => return Ok(()),
            }
        }
        d.entries.remove(*last);
        Ok(())
    }

    /// Adds a small document (a Kubernetes object) as a file.
    pub fn add_document(&mut self, path: &[u8], bytes: &[u8], mtime_secs: i64) -> Result<()> {
        let mut node = file_node(b"", 0o644, 0, 0, mtime_secs);
        node.size = bytes.len() as u64;
        let mut r: &[u8] = bytes;
        self.add(path, node, Some(&mut r))
    }

    /// Writes every tree and returns the root's ID.
    pub fn finish(mut self) -> Result<(Id, IngestStats)> {
        let root = std::mem::take(&mut self.root);
        let id = self.save_dir(root)?;
        Ok((id, self.stats))
    }

    fn save_dir(&mut self, dir: Dir) -> Result<Id> {
        let mut nodes = Vec::with_capacity(dir.entries.len());
        for (name, mut sub) in dir.entries {
            match sub.node.take() {
                Some(n) if sub.leaf => nodes.push(n),
                n => {
                    let mut node = n.unwrap_or_else(|| dir_node(&name));
                    node.name = Name(name);
                    node.subtree = Some(self.save_dir(sub)?);
                    nodes.push(node);
                }
            }
        }
        self.stats.dirs += 1;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree { nodes };
        let (id, new) = self.saver.save(BlobType::Tree, &tree.to_bytes())?;
        if new {
            self.stats.blobs_new += 1;
        }
        Ok(id)
    }
}

/// What a tar entry is, as [`read_tar`] shows it to its caller before storing it.
#[derive(Debug)]
pub enum TarEntry<'n> {
    /// Any entry but a hard link: its node (kind, header metadata) may be adjusted.
    Node(&'n mut Node),
    /// A hard link: another name of a file the stream carried before.
    HardLink,
}

/// Reads tar archives (one after the other, as `tar` runs one after the other write
/// them) to their end into `builder`, their paths placed below `prefix`. `on_entry` sees
/// each entry's path as the archive names it, without `./`, before it is stored, and
/// says whether to store it (`false` skips it). A file
/// whose data ends before its header's size is an error: the stream was cut, and a
/// short file is never recorded as complete. Returns the number of entries read.
pub fn read_tar(
    builder: &mut TreeBuilder<'_>,
    reader: &mut dyn Read,
    prefix: &[u8],
    on_entry: &mut dyn FnMut(&[u8], TarEntry<'_>) -> bool,
) -> Result<u64> {
    let join = |p: &[u8]| -> Vec<u8> {
        if prefix.is_empty() {
            return p.to_vec();
        }
        let mut v = prefix.to_vec();
        v.push(b'/');
        v.extend_from_slice(p);
        v
    };
    let bad = |e: std::io::Error| Error::Source {
        path: "the volume's tar stream".into(),
        source: e,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_ignore_zeros(true);
    let mut n = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path_bytes().into_owned();
        let rel = member_path(&name).to_vec();
        let path = join(&rel);
        let h = entry.header();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let uid = h.uid().unwrap_or(0) as u32;
        let gid = h.gid().unwrap_or(0) as u32;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let size = entry.size();
        let kind = h.entry_type();
        let mut node = file_node(b"", mode, uid, gid, mtime);
        node.size = size;
        n += 1;
        if kind.is_dir() {
            node.kind = NodeKind::Dir;
            node.size = 0;
            if !on_entry(&rel, TarEntry::Node(&mut node)) {
                continue;
            }
            builder.add(&path, node, None)?;
        } else if kind.is_symlink() {
            node.kind = NodeKind::Symlink;
            node.size = 0;
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            node.target = Some(Name(target));
            if !on_entry(&rel, TarEntry::Node(&mut node)) {
                continue;
            }
            builder.add(&path, node, None)?;
        } else if kind.is_hard_link() {
            // A hard link's data came with its first name: the same content again.
            let target = entry
                .link_name_bytes()
                .map(|t| join(member_path(&t)))
                .unwrap_or_default();
            if !on_entry(&rel, TarEntry::HardLink) {
                continue;
            }
            builder.link(&path, &target)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if !on_entry(&rel, TarEntry::Node(&mut node)) {
                continue;
            }
            let mut counted = Counted {
                inner: &mut entry,
                n: 0,
            };
            builder.add(&path, node, Some(&mut counted))?;
            if counted.n != size {
                return Err(Error::Source {
                    path: String::from_utf8_lossy(&rel).into_owned().into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the stream ended inside the file: {} of {size} bytes arrived",
                            counted.n
                        ),
                    ),
                });
            }
        } else if kind.is_fifo() {
            node.kind = NodeKind::Fifo;
            node.size = 0;
            if !on_entry(&rel, TarEntry::Node(&mut node)) {
                continue;
            }
            builder.add(&path, node, None)?;
        } else if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            // Handled by the tar reader itself.
        } else {
            builder.warnings.push(format!(
                "{}: skipped (special file type {:?})",
                String::from_utf8_lossy(&path),
                kind
            ));
        }
    }
    Ok(n)
}

/// A tar member's name as a path below the archive's root: without `./` and trailing
/// `/`.
pub fn member_path(name: &[u8]) -> &[u8] {
    let mut p = name;
    while let Some(r) = p.strip_prefix(b"./") {
        p = r;
    }
    while let Some(r) = p.strip_suffix(b"/") {
        p = r;
    }
    p
}

/// A reader that counts what it gave.
struct Counted<'r, R: Read> {
    inner: &'r mut R,
    n: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Reads a file's content blobs in order, a few in parallel ahead of the reader.
struct ContentReader<'a> {
    repo: &'a Repository,
    ids: &'a [Id],
    next: usize,
    ready: std::collections::VecDeque<Vec<u8>>,
    pos: usize,
}

impl<'a> ContentReader<'a> {
    fn new(repo: &'a Repository, ids: &'a [Id]) -> ContentReader<'a> {
        ContentReader {
            repo,
            ids,
            next: 0,
            ready: Default::default(),
            pos: 0,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(front) = self.ready.front() {
                if self.pos < front.len() {
                    let n = buf.len().min(front.len() - self.pos);
                    buf[..n].copy_from_slice(&front[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
                self.ready.pop_front();
                self.pos = 0;
                continue;
            }
            if self.next >= self.ids.len() {
                return Ok(0);
            }
            let end = (self.next + 8).min(self.ids.len());
            let batch: Vec<Vec<u8>> = self.ids[self.next..end]
                .par_iter()
                .map(|id| self.repo.load_blob(id))
                .collect::<Result<_>>()
                .map_err(std::io::Error::other)?;
            self.next = end;
            self.ready.extend(batch);
        }
    }
}

/// The folder, at the root of a volume's tar stream, that carries the data regions of
/// its sparse files (see [`write_tar`]); another name when the tree has an entry of
/// this name.
pub const SPARSE_DIR: &str = ".ferry-sparse-regions";

/// File blocks a sparse file's data regions are found in: all-zero blocks of this size
/// stay holes.
const HOLE_BLOCK: u64 = 4096;

/// A sparse file [`write_tar`] put into the archive empty, and where its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseFile {
    /// Its path in the archive.
    pub path: Vec<u8>,
    pub size: u64,
    /// Permission bits, set again once the data is written.
    pub mode: u32,
    pub mtime_secs: i64,
    /// Its data regions; everything else is a hole.
    pub regions: Vec<Region>,
}

/// A data region of a sparse file: `length` bytes at `offset`, carried in the archive
/// as the file `member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub length: u64,
    pub member: Vec<u8>,
}

/// What `tar -x` (busybox's above all) does not restore from the archive
/// [`write_tar`] wrote, for the caller to finish in place (see
/// `ferry_k8s::listing::finish_script`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TarRest {
    /// Sparse files, each in the archive as an empty file.
    pub sparse: Vec<SparseFile>,
    /// The folder that holds the sparse files' regions, to remove once they are in
    /// place: named whether or not this archive has sparse files, so that the folder a
    /// restore that stopped half-way left goes too.
    pub sparse_dir: Option<Vec<u8>>,
    /// Symlinks and their own modification times (`tar -x` leaves them at now).
    pub symlinks: Vec<(Vec<u8>, i64)>,
}

/// Writes the tree `root` as a tar stream (paths relative, folders before their
/// contents), counting files and bytes in `progress`. Files that share an inode in
/// the tree (`links` > 1) are written once and then as hard links to the first name.
/// A `sparse` file is written empty; its data regions (the non-zero 4 KiB blocks) are
/// written at the end as files of a folder [`TarRest::sparse_dir`], for the caller to
/// put in place: no `tar` a mover may have (busybox's) can write holes.
pub fn write_tar(
    repo: &Repository,
    root: &Id,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<TarRest> {
    write_tar_part(repo, root, TarPart::WHOLE, out, progress)
}

/// One of several tar streams that together hold a tree, for as many `tar -x` to
/// extract side by side (file creation is what a single one spends its time on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarPart {
    /// This stream, from 0.
    pub index: usize,
    /// How many streams share the tree (at least 1).
    pub count: usize,
}

impl TarPart {
    /// The whole tree in one stream.
    pub const WHOLE: TarPart = TarPart { index: 0, count: 1 };

    /// Every part of a tree split `count` ways.
    pub fn all(count: usize) -> impl Iterator<Item = TarPart> {
        let count = count.max(1);
        (0..count).map(move |index| TarPart { index, count })
    }
}

/// What a file weighs when the parts are balanced: its bytes, and creating it.
const TAR_FILE_COST: u64 = 32 * 1024;

/// How much of one folder's files go to one part before the next run is balanced.
const TAR_RUN: u64 = 16 << 20;

/// Writes part `part` of the tree `root` as [`write_tar`] writes all of it. Each part
/// holds every folder (so that each `tar -x` makes the folders it writes into, with
/// their modes and owners), and a share of the files balanced by size; the names of one
/// inode go to one part (a hard link follows its first name), and symlinks, FIFOs and
/// sparse files to part 0, whose [`TarRest`] is the one to finish with (the others'
/// hold no sparse files or symlinks). The split is a pure function of the tree: every
/// part's writer walks the whole tree and keeps its own share.
pub fn write_tar_part(
    repo: &Repository,
    root: &Id,
    part: TarPart,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<TarRest> {
    let io = |e: std::io::Error| Error::Write {
        path: "the tar stream".into(),
        source: e,
    };
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let top = Tree::load(repo, root)?;
    let mut dir = SPARSE_DIR.as_bytes().to_vec();
    while top.nodes.iter().any(|n| n.name.0 == dir) {
        dir.push(b'_');
    }
    let mut w = TarWriter {
        repo,
        b: &mut b,
        progress,
        links: HashMap::new(),
        rest: TarRest::default(),
        sparse_dir: dir,
        sparse_content: Vec::new(),
        part: TarPart {
            index: part.index,
            count: part.count.max(1),
        },
        loads: vec![0; part.count.max(1)],
        run: None,
    };
    w.dir(root, &mut Vec::new())?;
    w.sparse_regions()?;
    let mut rest = std::mem::take(&mut w.rest);
    rest.sparse_dir = Some(w.sparse_dir);
    b.finish().map_err(io)?;
    Ok(rest)
}

/// The state of one [`write_tar`].
struct TarWriter<'a, 'w> {
    repo: &'a Repository,
    b: &'a mut tar::Builder<&'w mut dyn Write>,
    progress: &'a Progress,
    /// The first name of each inode with more than one link, its size, content and
    /// the part it went to.
    links: HashMap<u64, (Vec<u8>, u64, Vec<Id>, usize)>,
    rest: TarRest,
    sparse_dir: Vec<u8>,
    /// The content of each of `rest.sparse`, in order.
    sparse_content: Vec<Vec<Id>>,
    part: TarPart,
    /// What each part holds so far ([`TAR_FILE_COST`]).
    loads: Vec<u64>,
    /// The part the files of this folder go to now, and what it took of them so far.
    run: Option<(usize, u64)>,
}

fn tar_io(e: std::io::Error) -> Error {
    Error::Write {
        path: "the tar stream".into(),
        source: e,
    }
}

impl TarWriter<'_, '_> {
    /// The part a file (not another name of one) goes to: the least loaded, but part 0
    /// for a sparse file (its regions are at the end of part 0).
    fn file_part(&mut self, node: &Node) -> usize {
        // A sparse file's size says little of its data: it weighs as a file.
        let (part, cost) = if node.sparse && node.size > 0 {
            (0, TAR_FILE_COST)
        } else {
            let cost = node.size.saturating_add(TAR_FILE_COST);
            // Files of one folder go to one part in runs: two `tar -x` creating files
            // in the same folder wait on each other's lock of it.
            let part = match self.run {
                Some((part, weight)) if weight < TAR_RUN => part,
                _ => (0..self.loads.len())
                    .min_by_key(|&i| self.loads[i])
                    .unwrap_or(0),
            };
            let weight = match self.run {
                Some((p, w)) if p == part && w < TAR_RUN => w,
                _ => 0,
            };
            self.run = Some((part, weight.saturating_add(cost)));
            (part, cost)
        };
        if let Some(l) = self.loads.get_mut(part) {
            *l = l.saturating_add(cost);
        }
        part
    }

    fn dir(&mut self, tree: &Id, prefix: &mut Vec<u8>) -> Result<()> {
        let t = Tree::load(self.repo, tree)?;
        // A run of files does not span folders.
        self.run = None;
        for node in &t.nodes {
            self.progress.check()?;
            if !node.name.is_safe() {
                continue;
            }
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&node.name.0);
            self.node(node, prefix)?;
            prefix.truncate(len);
            if node.kind == NodeKind::Dir {
                self.run = None;
            }
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, prefix: &mut Vec<u8>) -> Result<()> {
        // Names are bytes: a name that is not UTF-8 is written as it is.
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(prefix));
        let mut h = tar::Header::new_gnu();
        h.set_mode(node.mode & 0o7777);
        h.set_uid(u64::from(node.uid));
        h.set_gid(u64::from(node.gid));
        let mtime = node.mtime_ns.div_euclid(1_000_000_000);
        h.set_mtime(u64::try_from(mtime).unwrap_or(0));
        match node.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                let mut dir = prefix.clone();
                dir.push(b'/');
                self.b
                    .append_data(&mut h, std::ffi::OsStr::from_bytes(&dir), std::io::empty())
                    .map_err(tar_io)?;
                if let Some(sub) = &node.subtree {
                    self.dir(sub, prefix)?;
                }
            }
            NodeKind::File => {
                if node.links > 1 && node.inode != 0 {
                    // Another name of a file already written (with the same content:
                    // anything else is written as a file of its own).
                    if let Some((first, size, content, part)) = self.links.get(&node.inode)
                        && *size == node.size
                        && *content == node.content
                    {
                        if *part != self.part.index {
                            return Ok(());
                        }
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        let first = std::ffi::OsStr::from_bytes(first).to_os_string();
                        self.b.append_link(&mut h, &path, first).map_err(tar_io)?;
                        self.progress.add_done(1, 0);
                        return Ok(());
                    }
                }
                let part = self.file_part(node);
                if node.links > 1 && node.inode != 0 {
                    self.links
                        .entry(node.inode)
                        .or_insert_with(|| (prefix.clone(), node.size, node.content.clone(), part));
                }
                if part != self.part.index {
                    return Ok(());
                }
                h.set_entry_type(tar::EntryType::Regular);
                if node.sparse && node.size > 0 {
                    let regions = data_regions(self.repo, &node.content, self.progress)?;
                    h.set_size(0);
                    self.b
                        .append_data(&mut h, &path, std::io::empty())
                        .map_err(tar_io)?;
                    let n = self.rest.sparse.len();
                    let regions = regions
                        .into_iter()
                        .enumerate()
                        .map(|(i, (offset, length))| {
                            let mut member = self.sparse_dir.clone();
                            member.extend_from_slice(format!("/{n}-{i}").as_bytes());
                            Region {
                                offset,
                                length,
                                member,
                            }
                        })
                        .collect();
                    self.sparse_content.push(node.content.clone());
                    self.rest.sparse.push(SparseFile {
                        path: prefix.clone(),
                        size: node.size,
                        mode: node.mode & 0o7777,
                        mtime_secs: mtime,
                        regions,
                    });
                } else {
                    h.set_size(node.size);
                    let r = ContentReader::new(self.repo, &node.content);
                    let mut counted = CountingReader {
                        inner: r,
                        progress: self.progress,
                    };
                    self.b
                        .append_data(&mut h, &path, &mut counted)
                        .map_err(tar_io)?;
                }
                self.progress.add_done(1, 0);
            }
            // Cheap to make: part 0's.
            NodeKind::Symlink | NodeKind::Fifo if self.part.index != 0 => {}
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target = node.target.as_ref().map(|t| t.0.as_slice()).unwrap_or(b"");
                self.b
                    .append_link(&mut h, &path, std::ffi::OsStr::from_bytes(target))
                    .map_err(tar_io)?;
                self.rest.symlinks.push((prefix.clone(), mtime));
            }
            NodeKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                self.b
                    .append_data(&mut h, &path, std::io::empty())
                    .map_err(tar_io)?;
            }
            // Sockets and devices have no place in a volume restore.
            _ => {}
        }
        Ok(())
    }
}
impl TarWriter<'_, '_> {
    /// Writes the data regions of the sparse files, each as a file of the sparse folder.
    fn sparse_regions(&mut self) -> Result<()> {
        if self.rest.sparse.is_empty() {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o700);
        h.set_size(0);
        let mut dir = self.sparse_dir.clone();
        dir.push(b'/');
        self.b
            .append_data(&mut h, std::ffi::OsStr::from_bytes(&dir), std::io::empty())
            .map_err(tar_io)?;
        for (f, content) in self.rest.sparse.iter().zip(&self.sparse_content) {
            let mut r = ContentReader::new(self.repo, content);
            let mut at = 0u64;
            for region in &f.regions {
                self.progress.check()?;
                let skip = region.offset.saturating_sub(at);
                let skipped = std::io::copy(&mut (&mut r).take(skip), &mut std::io::sink())
                    .map_err(content_error)?;
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o600);
                h.set_size(region.length);
                let mut counted = CountingReader {
                    inner: (&mut r).take(region.length),
                    progress: self.progress,
                };
                if skipped != skip {
                    return Err(short_content(&f.path));
                }
                let member = std::ffi::OsStr::from_bytes(&region.member);
                self.b
                    .append_data(&mut h, member, &mut counted)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => short_content(&f.path),
                        _ => tar_io(e),
                    })?;
                at = region.offset + region.length;
            }
        }
        Ok(())
    }
}

/// The repository error a [`ContentReader`] carried out as an I/O error.
fn content_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(e)) => *e,
        Some(Err(other)) => Error::Write {
            path: "the tar stream".into(),
            source: std::io::Error::other(other),
        },
        None => Error::Write {
            path: "the tar stream".into(),
            source: std::io::Error::other("reading a file's content failed"),
        },
    }
}

/// A file whose blobs hold less than its size says.
fn short_content(path: &[u8]) -> Error {
    Error::Damaged {
        what: format!("the file {}", String::from_utf8_lossy(path)),
        detail: "its content is shorter than its size".into(),
    }
}

/// The data regions of the content `content`: `(offset, length)` of each run of
/// 4 KiB blocks (by file offset) that are not all zeros, in order.
pub fn data_regions(
    repo: &Repository,
    content: &[Id],
    progress: &Progress,
) -> Result<Vec<(u64, u64)>> {
    let mut r = ContentReader::new(repo, content);
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut block = vec![0u8; HOLE_BLOCK as usize];
    let mut at = 0u64;
    loop {
        progress.check()?;
        let mut n = 0;
        while n < block.len() {
            let got = r.read(&mut block[n..]).map_err(content_error)?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            return Ok(out);
        }
        if block[..n].iter().any(|b| *b != 0) {
            match out.last_mut() {
                Some((o, l)) if *o + *l == at => *l += n as u64,
                _ => out.push((at, n as u64)),
            }
        }
        at += n as u64;
    }
}

struct CountingReader<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_done(0, n as u64);
        Ok(n)
    }
}

//! Snapshot trees from sources other than a local folder, and tar streams out of them.
//!
//! A persistent volume is read through a pod's exec API as a tar stream, and
//! Kubernetes objects arrive as documents: neither is a folder [`super::backup`] can
//! walk. [`TreeBuilder`] takes entries by path in any order (files with their content as
//! a reader, folders, symlinks, or nodes reused unchanged from a parent snapshot) and
//! writes the trees bottom-up when finished. [`read_tar`] feeds a tar stream into a
//! builder; [`write_tar`] turns a stored tree back into a tar stream, which is how
//! volume data goes back into a cluster.

use std::collections::BTreeMap;
use std::io::Read;
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

mod tar_out;
pub use tar_out::{
    Region, SPARSE_DIR, SparseFile, TarPart, TarRest, data_regions, write_tar, write_tar_part,
};

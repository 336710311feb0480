//! Tar streams out of stored trees ([`write_tar`], [`write_tar_part`]): how volume data
//! goes back into a cluster through a mover's `tar -x`, sparse files and hard links
//! included.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt as _;

use rayon::prelude::*;

use crate::id::Id;
use crate::progress::Progress;
use crate::tree::{Node, NodeKind, Tree};
use crate::{Error, Repository, Result};

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

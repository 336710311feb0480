//! The write path: blobs into staged packs, packs into storage, indexes after packs.
//!
//! Many threads call [`Saver::save`] at once. A blob whose ID the index (or a pack still
//! being written) already has is skipped: that is deduplication. New blobs are
//! compressed and encrypted by the calling thread and appended to the open pack of their
//! type, which is staged in a local file; a full pack goes to a bounded queue that a few
//! uploader threads drain. Index files are written only after the packs they list are
//! stored, every [`INDEX_EVERY`] packs and at the end, so a kill at any moment leaves
//! only packs that the next writer re-indexes (see `Repository::recover_unindexed_packs`).

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::backend::FileKind;
use super::id::{Id, IdSet};
use super::index::IndexedPack;
use super::pack::{BlobType, FinishedPack, PackBuilder};
use super::progress::Progress;
use super::{Error, Repository, Result};

/// How many stored packs an index file lists before a new one is started.
pub const INDEX_EVERY: usize = 16;

#[derive(Debug)]
struct Shared {
    repo: Repository,
    /// Blobs in packs that are not indexed yet.
    pending: Mutex<IdSet>,
    /// Stored packs not yet listed in an index file.
    unsaved: Mutex<Vec<IndexedPack>>,
    /// Index files this saver wrote.
    written: Mutex<Vec<String>>,
    error: Mutex<Option<Error>>,
    write_index: bool,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn flush_index(&self, all: bool) -> Result<()> {
        if !self.write_index {
            return Ok(());
        }
        let batch = {
            let mut u = self.unsaved.lock();
            if u.is_empty() || (!all && u.len() < INDEX_EVERY) {
                return Ok(());
            }
            std::mem::take(&mut *u)
        };
        let name = self.repo.save_index(&batch)?;
        self.written.lock().push(name);
        Ok(())
    }
}

/// Writes blobs to a repository. Call [`Saver::finish`] to store the last packs and
/// index; dropping a saver without finishing leaves only unindexed packs behind.
#[derive(Debug)]
pub struct Saver {
    shared: Arc<Shared>,
    builders: [Mutex<Option<PackBuilder>>; 2],
    staging: PathBuf,
    target: u64,
    tx: Option<Sender<FinishedPack>>,
    uploaders: Vec<std::thread::JoinHandle<()>>,
    progress: Arc<Progress>,
    /// Packs stored so far (with their blobs), for callers that write their own index.
    stored: Arc<Mutex<Vec<IndexedPack>>>,
}

impl Saver {
    /// Starts a saver with its uploader threads. With `write_index == false` the caller
    /// takes the stored packs from [`Saver::finish`] and indexes them itself (prune).
    pub fn new(repo: &Repository, progress: Arc<Progress>, write_index: bool) -> Result<Saver> {
        let staging = repo.staging_dir()?;
        // At most 4 packs in flight: each S3 upload may buffer two 8 MiB parts, and the
        // memory target (150 MiB peak) must hold for any backend.
        let conns = repo.backend().connections().clamp(1, 4);
        let (tx, rx) = crossbeam_channel::bounded::<FinishedPack>(conns);
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            pending: Mutex::new(IdSet::default()),
            unsaved: Mutex::new(Vec::new()),
            written: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            write_index,
        });
        let stored = Arc::new(Mutex::new(Vec::new()));
        let mut uploaders = Vec::new();
        for i in 0..conns {
            let rx = rx.clone();
            let shared = shared.clone();
            let stored = stored.clone();
            let h = std::thread::Builder::new()
                .name(format!("ferry-upload-{i}"))
                .spawn(move || upload_loop(&rx, &shared, &stored))
                .map_err(|e| Error::Staging(staging.clone(), e))?;
            uploaders.push(h);
        }
        Ok(Saver {
            shared,
            builders: [Mutex::new(None), Mutex::new(None)],
            staging,
            target: u64::from(repo.config().pack_size),
            tx: Some(tx),
            uploaders,
            progress,
            stored,
        })
    }

    fn repo(&self) -> &Repository {
        &self.shared.repo
    }

    /// Claims `id` for writing: false if it is indexed or already being written.
    fn reserve(&self, id: Id) -> bool {
        if self.repo().index().contains(&id) {
            return false;
        }
        let mut p = self.shared.pending.lock();
        if self.repo().index().contains(&id) {
            return false;
        }
        p.insert(id)
    }

    /// Stores `data` as a blob of type `kind` unless the repository has it. Returns its
    /// ID and whether it was new.
    pub fn save(&self, kind: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        let id = Id(self.repo().key().blob_id(data));
        if !self.reserve(id) {
            return Ok((id, false));
        }
        let stored = self.repo().encode_blob(data)?;
        self.progress
            .add_new(data.len() as u64, stored.len() as u64);
        self.append(kind, id, &stored, data.len() as u32)?;
        Ok((id, true))
    }

    /// Stores an already-encoded blob (prune copies blobs between packs this way).
    pub fn save_encoded(
        &self,
        kind: BlobType,
        id: Id,
        stored: &[u8],
        raw_length: u32,
    ) -> Result<bool> {
        if !self.reserve(id) {
            return Ok(false);
        }
        self.append(kind, id, stored, raw_length)?;
        Ok(true)
    }

    fn append(&self, kind: BlobType, id: Id, stored: &[u8], raw_length: u32) -> Result<()> {
        if self.shared.error.lock().is_some() {
            // The real error is returned by `finish`.
            return Err(Error::Cancelled);
        }
        let full = {
            let mut slot = self.builders[kind as usize].lock();
            if slot.is_none() {
                let name = super::backend::local::staging_name()
                    .map_err(|e| Error::Staging(self.staging.clone(), std::io::Error::other(e)))?;
                let path = self.staging.join(name);
                *slot =
                    Some(PackBuilder::create(path.clone()).map_err(|e| Error::Staging(path, e))?);
            }
            let b = slot
                .as_mut()
                .ok_or_else(|| Error::InvalidOption("pack builder vanished".into()))?;
            if let Err(e) = b.add(id, kind, stored, raw_length) {
                // A write that failed half-way (a full disk) leaves the staged pack out
                // of step with its entries: it is dropped, and the job stops.
                let path = b.path.clone();
                *slot = None;
                let _ = std::fs::remove_file(&path);
                self.shared.fail(Error::Staging(
                    path.clone(),
                    std::io::Error::new(e.kind(), e.to_string()),
                ));
                return Err(Error::Staging(path, e));
            }
            if b.size >= self.target {
                slot.take()
            } else {
                None
            }
        };
        if let Some(b) = full {
            self.ship(b)?;
        }
        Ok(())
    }

    fn ship(&self, b: PackBuilder) -> Result<()> {
        // The staged file goes whatever fails here: a failed job leaves no staging.
        let path = b.path.clone();
        let done = match b.finish(self.repo().key()) {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let Some(tx) = self.tx.as_ref() else {
            let _ = std::fs::remove_file(&path);
            return Err(Error::InvalidOption("saver already finished".into()));
        };
        if let Err(crossbeam_channel::SendError(pack)) = tx.send(done) {
            let _ = std::fs::remove_file(&pack.path);
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// Stores the open packs, waits for every upload, writes the remaining index.
    /// Returns the packs stored by this saver.
    pub fn finish(mut self) -> Result<Vec<IndexedPack>> {
        let mut first_err = None;
        for i in 0..2 {
            let b = self.builders[i].lock().take();
            let Some(b) = b else { continue };
            if b.entries.is_empty() || self.shared.error.lock().is_some() {
                let _ = std::fs::remove_file(&b.path);
            } else if let Err(e) = self.ship(b) {
                first_err.get_or_insert(e);
            }
        }
        self.tx = None;
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
        if let Some(e) = first_err.or_else(|| self.shared.error.lock().take()) {
            return Err(e);
        }
        self.shared.flush_index(true)?;
        Ok(std::mem::take(&mut *self.stored.lock()))
    }

    /// Names of the index files this saver wrote (valid after `finish`).
    pub fn written_index_files(&self) -> Vec<String> {
        self.shared.written.lock().clone()
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        // Abandoned (an error or cancel): stop the uploaders, remove staged files.
        self.tx = None;
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
        for b in &self.builders {
            if let Some(b) = b.lock().take() {
                let _ = std::fs::remove_file(&b.path);
            }
        }
    }
}

fn upload_loop(rx: &Receiver<FinishedPack>, shared: &Shared, stored: &Mutex<Vec<IndexedPack>>) {
    while let Ok(pack) = rx.recv() {
        if shared.error.lock().is_some() {
            let _ = std::fs::remove_file(&pack.path);
            continue;
        }
        let name = pack.id.to_hex();
        let res = shared.repo.block_on(shared.repo.backend().write_file(
            FileKind::Pack,
            &name,
            &pack.path,
        ));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&pack.path);
            shared.fail(e.into());
            continue;
        }
        tracing::debug!(pack = %name, size = pack.size, blobs = pack.entries.len(), "stored pack");
        let indexed = IndexedPack {
            id: pack.id,
            size: pack.size,
            blobs: pack.entries,
        };
        // Index first, then un-pend: a blob is always in one of the two.
        shared
            .repo
            .index_mut()
            .add_pack(indexed.id, indexed.size, &indexed.blobs);
        {
            let mut p = shared.pending.lock();
            for b in &indexed.blobs {
                p.remove(&b.id);
            }
        }
        stored.lock().push(indexed.clone());
        shared.unsaved.lock().push(indexed);
        if let Err(e) = shared.flush_index(false) {
            shared.fail(e);
        }
    }
}

//! Opening and creating repositories; reading and writing their encrypted files and blobs.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::backend::{DynBackend, FileInfo, FileKind};
use super::chunker::{self, Chunker, ChunkerParams};
use super::crypto::{KdfParams, KeyFile, MasterKey, Secret};
use super::id::Id;
use super::index::{self, Index, IndexedPack};
use super::pack::{self, PackEntry};
use super::{Error, Result};

/// The repository format version this Ferry writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The repository configuration, stored encrypted in `config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// A random ID that names this repository.
    pub id: Id,
    pub chunker: ChunkerParams,
    /// zstd level for blobs that compress (1-19; 0 disables compression).
    pub compression: i32,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    pub created: chrono::DateTime<chrono::Utc>,
    /// Set when a policy is first stored: from then on the repository requires a valid,
    /// signed policy whose version is at least `seq` (see `src/policy/`). Older
    /// repositories have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyPin>,
}

/// The policy a repository requires: the newest stored policy file and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPin {
    /// The name of the newest policy file (`policy/<head>`).
    pub head: String,
    /// Its version number: a policy chain that ends below it was rolled back.
    pub seq: u64,
}

/// Choices made once, at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub min_chunk: u32,
    pub avg_chunk: u32,
    pub max_chunk: u32,
    pub compression: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
    pub key_label: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            min_chunk: chunker::DEFAULT_MIN,
            avg_chunk: chunker::DEFAULT_AVG,
            max_chunk: chunker::DEFAULT_MAX,
            compression: 3,
            pack_size: 32 * 1024 * 1024,
            kdf: KdfParams::default(),
            key_label: String::new(),
        }
    }
}

/// Blob payloads start with this flag byte (inside the encryption).
const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;

/// An open repository. Cheap to clone; clones share the index.
#[derive(Clone, Debug)]
pub struct Repository {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: DynBackend,
    rt: tokio::runtime::Handle,
    key: MasterKey,
    key_name: String,
    config: Config,
    chunker: Chunker,
    index: RwLock<Index>,
}

fn json_damaged(what: String, e: serde_json::Error) -> Error {
    Error::Damaged {
        what,
        detail: e.to_string(),
    }
}

impl Repository {
    /// Creates a new repository at `backend`, opened with `secret`.
    pub fn init(
        backend: DynBackend,
        rt: tokio::runtime::Handle,
        secret: &Secret,
        opts: &InitOptions,
    ) -> Result<Repository> {
        let mut seed = [0u8; 8];
        super::crypto::random_bytes(&mut seed)?;
        let chunker = ChunkerParams::new(
            opts.min_chunk,
            opts.avg_chunk,
            opts.max_chunk,
            u64::from_le_bytes(seed),
        )?;
        if !(0..=19).contains(&opts.compression) {
            return Err(Error::InvalidOption(format!(
                "compression level {} is outside 0..=19",
                opts.compression
            )));
        }
        if !(1 << 20..=1 << 30).contains(&opts.pack_size) {
            return Err(Error::InvalidOption(format!(
                "pack size {} is outside 1 MiB..=1 GiB",
                opts.pack_size
            )));
        }
        let config = Config {
            version: FORMAT_VERSION,
            id: Id::random()?,
            chunker,
            compression: opts.compression,
            pack_size: opts.pack_size,
            created: chrono::Utc::now(),
            policy: None,
        };
        opts.kdf.check()?;
        rt.block_on(async {
            match backend.create().await {
                Err(super::BackendError::InvalidLocation { location, .. }) => {
                    Err(Error::AlreadyExists { location })
                }
                other => other.map_err(Error::from),
            }
        })?;
        // Never over a repository that lost its config: under a new master key its
        // snapshots, index and packs would all read as damaged.
        let location = backend.location();
        let stored = stored_content(&backend, &rt)?;
        if !stored.is_empty() {
            return Err(Error::ConfigMissing {
                location,
                found: describe_content(&stored),
            });
        }
        // Key files and nothing else: an init killed before it wrote `config`. The
        // secret that made it opens its key, and the init goes on with that key.
        let keys = rt.block_on(backend.list(FileKind::Key))?;
        let (key, key_name) = if keys.is_empty() {
            let key = MasterKey::generate()?;
            let kf = KeyFile::wrap(&key, secret, opts.kdf, FORMAT_VERSION, &opts.key_label)?;
            let key_name = super::crypto::random_id()?;
            let kf_json =
                serde_json::to_vec_pretty(&kf).map_err(|e| json_damaged("key file".into(), e))?;
            rt.block_on(backend.write(FileKind::Key, &key_name, Bytes::from(kf_json)))?;
            (key, key_name)
        } else {
            let mut found = None;
            for k in &keys {
                if let Some(key) = try_key_file(&backend, &rt, &k.name, secret) {
                    found = Some((key, k.name.clone()));
                    break;
                }
            }
            match found {
                Some(found) => {
                    tracing::info!(%location, key = %found.1, "finishing an interrupted init");
                    found
                }
                None => {
                    return Err(Error::UnfinishedInit {
                        location,
                        keys: keys.len(),
                    });
                }
            }
        };
        let cfg = key
            .encrypt(&serde_json::to_vec(&config).map_err(|e| json_damaged("config".into(), e))?)?;
        rt.block_on(backend.write(FileKind::Config, "config", Bytes::from(cfg)))?;
        tracing::info!(location = %backend.location(), "initialised repository");
        Ok(Repository::assemble(backend, rt, key, key_name, config))
    }

    fn assemble(
        backend: DynBackend,
        rt: tokio::runtime::Handle,
        key: MasterKey,
        key_name: String,
        config: Config,
    ) -> Repository {
        let chunker = Chunker::new(&config.chunker);
        Repository {
            inner: Arc::new(Inner {
                backend,
                rt,
                key,
                key_name,
                config,
                chunker,
                index: RwLock::new(Index::default()),
            }),
        }
    }

    /// Opens the repository at `backend` with `secret`, trying every key file.
    pub fn open(
        backend: DynBackend,
        rt: tokio::runtime::Handle,
        secret: &Secret,
    ) -> Result<Repository> {
        let location = backend.location();
        let cfg_raw = match rt.block_on(backend.read(FileKind::Config, "config")) {
            Ok(b) => b,
            Err(e) if e.is_not_found() || matches!(e, super::BackendError::NoRepository { .. }) => {
                // No config: nothing there, or a repository that lost its config (which
                // `init` must not be pointed at).
                let stored = stored_content(&backend, &rt).unwrap_or_default();
                if stored.is_empty() {
                    return Err(Error::NotARepository { location });
                }
                return Err(Error::ConfigMissing {
                    location,
                    found: describe_content(&stored),
                });
            }
            Err(super::BackendError::TooLarge { size, limit, .. }) => {
                return Err(Error::ConfigDamaged {
                    location,
                    detail: format!("it is {size} bytes, more than a config can be ({limit})"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let damaged_config = |detail: String| Error::ConfigDamaged {
            location: location.clone(),
            detail,
        };
        // Staging files of this host's dead processes take room a job may need before
        // it stages anything (its lock, a recovered index).
        if let Some(dir) = backend.staging_dir() {
            super::backend::local::clean_stale_staging(&dir);
        }
        let keys = rt.block_on(backend.list(FileKind::Key))?;
        // Every key file is tried; one that is unreadable, from a newer format, with
        // unsafe parameters, or that opens but does not decrypt the config (an orphan of
        // an interrupted init) is skipped, so one bad file never locks everyone out.
        let mut tried = 0;
        let mut newer: Option<u32> = None;
        let mut refused: Vec<String> = Vec::new();
        let mut config_unreadable: Option<String> = None;
        for k in &keys {
            let raw = match rt.block_on(backend.read(FileKind::Key, &k.name)) {
                Ok(raw) => raw,
                Err(e @ super::BackendError::TooLarge { .. }) => {
                    tracing::warn!(key = %k.name, error = %e, "skipping key file");
                    refused.push(format!("{}: too large", k.name));
                    continue;
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(kf) = serde_json::from_slice::<KeyFile>(&raw) else {
                tracing::warn!(key = %k.name, "skipping unreadable key file");
                continue;
            };
            if kf.version > FORMAT_VERSION {
                newer = Some(newer.unwrap_or(0).max(kf.version));
                continue;
            }
            let key = match kf.unwrap_key(secret) {
                Ok(Some(key)) => key,
                Ok(None) => {
                    tried += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(key = %k.name, error = %e, "skipping key file");
                    refused.push(format!("{}: {e}", k.name));
                    continue;
                }
            };
            tried += 1;
            let plain = match key.decrypt(&cfg_raw) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::warn!(key = %k.name, "key file opens but does not decrypt the config: skipped");
                    config_unreadable.get_or_insert(e.to_string());
                    continue;
                }
            };
            let version = serde_json::from_slice::<serde_json::Value>(&plain)
                .ok()
                .and_then(|v| v.get("version").and_then(|v| v.as_u64()))
                .unwrap_or(0) as u32;
            if version > FORMAT_VERSION {
                return Err(Error::UnsupportedVersion {
                    found: version,
                    supported: FORMAT_VERSION,
                });
            }
            let config: Config =
                serde_json::from_slice(&plain).map_err(|e| damaged_config(e.to_string()))?;
            tracing::info!(%location, key = %k.name, "opened repository");
            return Ok(Repository::assemble(
                backend,
                rt,
                key,
                k.name.clone(),
                config,
            ));
        }
        // A key opened, but the config did not decrypt under it: unless another key
        // opened it (an orphan of an interrupted init), the config is what is damaged.
        if let Some(detail) = config_unreadable {
            return Err(damaged_config(detail));
        }
        if let Some(found) = newer {
            return Err(Error::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
        if !refused.is_empty() {
            return Err(Error::KeysRefused {
                tried,
                count: refused.len(),
                refused: refused.join("; "),
            });
        }
        Err(Error::WrongPassword { keys: tried })
    }

    /// Opens the repository at `backend` with its master key itself (no key file), as
    /// an in-cluster agent does with the key its job handed it.
    pub fn open_with_key(
        backend: DynBackend,
        rt: tokio::runtime::Handle,
        key: MasterKey,
    ) -> Result<Repository> {
        let location = backend.location();
        let raw = match rt.block_on(backend.read(FileKind::Config, "config")) {
            Ok(b) => b,
            Err(e) if e.is_not_found() || matches!(e, super::BackendError::NoRepository { .. }) => {
                return Err(Error::NotARepository { location });
            }
            Err(e) => return Err(e.into()),
        };
        let plain = key.decrypt(&raw).map_err(|_| Error::KeyDoesNotOpen {
            location: location.clone(),
        })?;
        let config: Config = serde_json::from_slice(&plain).map_err(|e| Error::ConfigDamaged {
            location: location.clone(),
            detail: e.to_string(),
        })?;
        if config.version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(Repository::assemble(
            backend,
            rt,
            key,
            "(given key)".into(),
            config,
        ))
    }

    pub fn backend(&self) -> &DynBackend {
        &self.inner.backend
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn chunker(&self) -> &Chunker {
        &self.inner.chunker
    }

    pub fn key(&self) -> &MasterKey {
        &self.inner.key
    }

    /// The name of the key file this repository was opened with.
    pub fn key_name(&self) -> &str {
        &self.inner.key_name
    }

    pub fn location(&self) -> String {
        self.inner.backend.location()
    }

    /// Runs a storage future to completion on the repository's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.inner.rt.block_on(f)
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.rt
    }

    pub fn index(&self) -> parking_lot::RwLockReadGuard<'_, Index> {
        self.inner.index.read()
    }

    pub(crate) fn index_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Index> {
        self.inner.index.write()
    }

    /// Where packs are staged before upload.
    pub fn staging_dir(&self) -> Result<PathBuf> {
        let dir = self
            .inner
            .backend
            .staging_dir()
            .unwrap_or_else(|| std::env::temp_dir().join("ferry-staging"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Staging(dir.clone(), e))?;
        super::backend::local::clean_stale_staging(&dir);
        Ok(dir)
    }

    // ---------------------------------------------------------------- keys

    pub fn list_keys(&self) -> Result<Vec<(String, KeyFile)>> {
        let files = self.block_on(self.inner.backend.list(FileKind::Key))?;
        let mut out = Vec::new();
        for f in files {
            let raw = match self.block_on(self.inner.backend.read(FileKind::Key, &f.name)) {
                Ok(raw) => raw,
                Err(e @ super::BackendError::TooLarge { .. }) => {
                    tracing::warn!(key = %f.name, error = %e, "unreadable key file");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice::<KeyFile>(&raw) {
                Ok(kf) => out.push((f.name, kf)),
                Err(e) => tracing::warn!(key = %f.name, error = %e, "unreadable key file"),
            }
        }
        out.sort_by_key(|k| k.1.created);
        Ok(out)
    }

    /// Adds a key file wrapping this repository's master key with `secret`.
    pub fn add_key(&self, secret: &Secret, kdf: KdfParams, label: &str) -> Result<String> {
        let kf = KeyFile::wrap(&self.inner.key, secret, kdf, FORMAT_VERSION, label)?;
        let name = super::crypto::random_id()?;
        let json =
            serde_json::to_vec_pretty(&kf).map_err(|e| json_damaged("key file".into(), e))?;
        self.block_on(
            self.inner
                .backend
                .write(FileKind::Key, &name, Bytes::from(json)),
        )?;
        Ok(name)
    }

    /// Removes the key file whose name starts with `prefix` (not the one in use).
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let matches: Vec<_> = keys.iter().filter(|(n, _)| n.starts_with(prefix)).collect();
        let name = match matches.as_slice() {
            [] => return Err(Error::KeyNotFound(prefix.to_string())),
            [(n, _)] => n.clone(),
            _ => {
                return Err(Error::InvalidOption(format!(
                    "{prefix:?} matches several keys: give more digits"
                )));
            }
        };
        if name == self.inner.key_name {
            return Err(Error::KeyInUse(name));
        }
        self.block_on(self.inner.backend.remove(FileKind::Key, &name))?;
        Ok(name)
    }

    // ---------------------------------------------------------------- config

    /// Reads the stored configuration again (it changes when a policy is set, possibly
    /// by another process since this repository was opened).
    pub fn read_config(&self) -> Result<Config> {
        let raw = self.block_on(self.inner.backend.read(FileKind::Config, "config"))?;
        let plain = self.inner.key.decrypt(&raw).map_err(|e| Error::Damaged {
            what: "the repository config".into(),
            detail: e.to_string(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| json_damaged("the repository config".into(), e))
    }

    /// Replaces the stored policy pin, keeping everything else of the stored config.
    pub fn write_policy_pin(&self, pin: PolicyPin) -> Result<()> {
        let mut config = self.read_config()?;
        if config.id != self.inner.config.id {
            return Err(Error::Damaged {
                what: "the repository config".into(),
                detail: "its repository ID changed since the repository was opened".into(),
            });
        }
        config.policy = Some(pin);
        let plain = serde_json::to_vec(&config).map_err(|e| json_damaged("config".into(), e))?;
        let data = self.inner.key.encrypt(&plain)?;
        self.block_on(
            self.inner
                .backend
                .write(FileKind::Config, "config", Bytes::from(data)),
        )?;
        tracing::info!(location = %self.location(), "policy pin written to the config");
        Ok(())
    }

    /// Encrypts `plain` with the master key and stores it as `kind/name`.
    pub fn save_encrypted(&self, kind: FileKind, name: &str, plain: &[u8]) -> Result<()> {
        let data = self.inner.key.encrypt(plain)?;
        self.block_on(self.inner.backend.write(kind, name, Bytes::from(data)))?;
        Ok(())
    }

    /// Reads and decrypts `kind/name`.
    pub fn load_encrypted(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let data = self.block_on(self.inner.backend.read(kind, name))?;
        self.inner.key.decrypt(&data).map_err(|e| Error::Damaged {
            what: format!("{kind} file {name}"),
            detail: e.to_string(),
        })
    }

    // ---------------------------------------------------------------- encrypted files

    /// Encrypts and stores a JSON document; its name is the hash of what is stored.
    pub fn save_json<T: Serialize>(&self, kind: FileKind, value: &T) -> Result<Id> {
        let plain =
            serde_json::to_vec(value).map_err(|e| json_damaged(format!("a {kind} file"), e))?;
        let data = self.inner.key.encrypt(&plain)?;
        let id = Id::hash(&data);
        self.block_on(
            self.inner
                .backend
                .write(kind, &id.to_hex(), Bytes::from(data)),
        )?;
        Ok(id)
    }

    /// Reads, decrypts and parses a JSON document.
    pub fn load_json<T: DeserializeOwned>(&self, kind: FileKind, name: &str) -> Result<T> {
        let data = self.block_on(self.inner.backend.read(kind, name))?;
        if let Ok(id) = name.parse::<Id>()
            && Id::hash(&data) != id
        {
            return Err(Error::Damaged {
                what: format!("{kind} file {name}"),
                detail: "its content does not match its name".into(),
            });
        }
        let plain = self.inner.key.decrypt(&data).map_err(|e| Error::Damaged {
            what: format!("{kind} file {name}"),
            detail: e.to_string(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| json_damaged(format!("{kind} file {name}"), e))
    }

    // ---------------------------------------------------------------- blobs

    /// Turns plaintext into what a pack stores: maybe compressed, always encrypted.
    pub fn encode_blob(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let level = self.inner.config.compression;
        Ok(match compress(level, plain) {
            Some(c) => self.inner.key.encrypt_with_flag(FLAG_ZSTD, &c)?,
            None => self.inner.key.encrypt_with_flag(FLAG_RAW, plain)?,
        })
    }

    /// Decrypts, decompresses and verifies a stored blob.
    pub fn decode_blob(&self, id: &Id, raw_length: u32, stored: &[u8]) -> Result<Vec<u8>> {
        let damaged = |detail: String| Error::Damaged {
            what: format!("blob {id}"),
            detail,
        };
        let plain = self
            .inner
            .key
            .decrypt(stored)
            .map_err(|e| damaged(e.to_string()))?;
        let (flag, payload) = plain
            .split_first()
            .ok_or_else(|| damaged("empty payload".into()))?;
        let data = match *flag {
            FLAG_RAW => payload.to_vec(),
            FLAG_ZSTD => decompress(payload, raw_length as usize)
                .map_err(|e| damaged(format!("zstd: {e}")))?,
            other => return Err(damaged(format!("unknown compression flag {other}"))),
        };
        if data.len() != raw_length as usize || self.inner.key.blob_id(&data) != id.0 {
            return Err(damaged("content does not match its ID".into()));
        }
        Ok(data)
    }

    /// Loads a blob by ID through the index.
    pub fn load_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let found = self.index().get(id);
        let loc = match found {
            Some(loc) => loc,
            None => {
                // Not read yet, or indexed by another process since: read the index
                // files again, adding to what this process holds.
                self.merge_index()?;
                self.index().get(id).ok_or(Error::BlobMissing { id: *id })?
            }
        };
        let stored = self.block_on(self.inner.backend.read_range(
            FileKind::Pack,
            &loc.pack.to_hex(),
            u64::from(loc.offset),
            u64::from(loc.length),
        ))?;
        self.decode_blob(id, loc.raw_length, &stored)
    }

    // ---------------------------------------------------------------- index

    /// Reads every index file into memory. Returns the index files read with their
    /// contents (for prune); damaged index files are errors.
    pub fn load_index(&self) -> Result<Vec<(String, Vec<IndexedPack>)>> {
        let loaded = self.read_index_files()?;
        let mut idx = Index::default();
        for (_, packs) in &loaded {
            for p in packs {
                idx.add_pack(p.id, p.size, &p.blobs);
            }
        }
        *self.index_mut() = idx;
        Ok(loaded)
    }

    /// Adds every index file to the in-memory index, keeping what is there (blobs a
    /// running job has stored but not indexed yet).
    pub fn merge_index(&self) -> Result<()> {
        let loaded = self.read_index_files()?;
        let mut idx = self.index_mut();
        for (_, packs) in &loaded {
            for p in packs {
                idx.add_pack(p.id, p.size, &p.blobs);
            }
        }
        Ok(())
    }

    /// Reads every index file into memory, leaving out the ones that cannot be read,
    /// which are returned with why. A job that only reads (restore) goes on with the
    /// rest: what it needs from them is reported by [`super::damage`].
    pub fn load_index_tolerant(&self) -> Result<Vec<(String, Error)>> {
        let mut idx = Index::default();
        let mut bad = Vec::new();
        for (name, res) in self.read_index_files_each()? {
            match res {
                Ok(packs) => {
                    for p in &packs {
                        idx.add_pack(p.id, p.size, &p.blobs);
                    }
                }
                Err(e) => bad.push((name, e)),
            }
        }
        *self.index_mut() = idx;
        Ok(bad)
    }

    fn read_index_files(&self) -> Result<Vec<(String, Vec<IndexedPack>)>> {
        self.read_index_files_each()?
            .into_iter()
            .map(|(name, res)| res.map(|packs| (name, packs)))
            .collect()
    }

    /// Reads and decodes every index file, each with its own outcome (`check` reports
    /// every damaged one). Only a failure to list them is an error.
    pub fn read_index_files_each(&self) -> Result<Vec<(String, Result<Vec<IndexedPack>>)>> {
        let files = self.block_on(self.inner.backend.list(FileKind::Index))?;
        let conns = self.inner.backend.connections().max(2);
        let this = self.clone();
        let mut loaded: Vec<(String, Result<Vec<IndexedPack>>)> = self.block_on(async move {
            futures::stream::iter(files.into_iter().map(|f| {
                let this = this.clone();
                async move {
                    let res = this.read_index_file(&f.name).await;
                    (f.name, res)
                }
            }))
            .buffer_unordered(conns)
            .collect()
            .await
        });
        loaded.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(loaded)
    }

    async fn read_index_file(&self, name: &str) -> Result<Vec<IndexedPack>> {
        let damaged = |detail: String| Error::Damaged {
            what: format!("index file {name}"),
            detail: format!(
                "{detail}; run `ferry repair-index` to rebuild the index from the packs"
            ),
        };
        let data = self.inner.backend.read(FileKind::Index, name).await?;
        if name.parse::<Id>().ok() != Some(Id::hash(&data)) {
            return Err(damaged("its content does not match its name".into()));
        }
        let plain = self
            .inner
            .key
            .decrypt(&data)
            .map_err(|e| damaged(e.to_string()))?;
        Ok(index::decode(name, &plain)?)
    }

    /// Writes an index file listing `packs`; returns its name.
    pub fn save_index(&self, packs: &[IndexedPack]) -> Result<String> {
        let data = self.inner.key.encrypt(&index::encode(packs))?;
        let id = Id::hash(&data);
        self.block_on(
            self.inner
                .backend
                .write(FileKind::Index, &id.to_hex(), Bytes::from(data)),
        )?;
        Ok(id.to_hex())
    }

    /// Reads a pack's header from its tail.
    pub fn read_pack_header(&self, pack: &str, size: u64) -> Result<Vec<PackEntry>> {
        if size < pack::min_pack_size() {
            return Err(pack::PackError::TooShort {
                pack: pack.to_string(),
                size,
            }
            .into());
        }
        let tail = self.block_on(self.inner.backend.read_range(
            FileKind::Pack,
            pack,
            size - 4,
            4,
        ))?;
        let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let (start, hlen) = pack::header_span(pack, size, len)?;
        let enc = self.block_on(self.inner.backend.read_range(
            FileKind::Pack,
            pack,
            start,
            hlen,
        ))?;
        let plain = self
            .inner
            .key
            .decrypt(&enc)
            .map_err(|e| pack::PackError::BadHeader {
                pack: pack.to_string(),
                reason: e.to_string(),
            })?;
        Ok(pack::decode_header(pack, &plain, start)?)
    }

    /// Parses a whole pack held in memory: its entries, from its own header.
    pub fn parse_pack(&self, pack: &str, data: &[u8]) -> Result<Vec<PackEntry>> {
        let size = data.len() as u64;
        if size < pack::min_pack_size() {
            return Err(pack::PackError::TooShort {
                pack: pack.to_string(),
                size,
            }
            .into());
        }
        let n = data.len();
        let len = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]);
        let (start, hlen) = pack::header_span(pack, size, len)?;
        let enc = &data[start as usize..(start + hlen) as usize];
        let plain = self
            .inner
            .key
            .decrypt(enc)
            .map_err(|e| pack::PackError::BadHeader {
                pack: pack.to_string(),
                reason: e.to_string(),
            })?;
        Ok(pack::decode_header(pack, &plain, start)?)
    }

    /// Lists the packs in storage.
    pub fn list_packs(&self) -> Result<Vec<FileInfo>> {
        Ok(self.block_on(self.inner.backend.list(FileKind::Pack))?)
    }

    /// Finds packs that no index lists (left by a writer that was killed before it wrote
    /// its index), reads their headers and indexes them. Packs whose header cannot be
    /// read are reported and left alone. Requires the index to be loaded.
    pub fn recover_unindexed_packs(&self) -> Result<RecoverReport> {
        let packs = self.list_packs()?;
        let missing: Vec<FileInfo> = {
            let idx = self.index();
            packs
                .into_iter()
                .filter(|p| {
                    p.name
                        .parse::<Id>()
                        .map(|id| !idx.has_pack(&id))
                        .unwrap_or(false)
                })
                .collect()
        };
        let mut report = RecoverReport::default();
        let mut recovered = Vec::new();
        for p in missing {
            let Ok(id) = p.name.parse::<Id>() else {
                continue;
            };
            match self.read_pack_header(&p.name, p.size) {
                Ok(blobs) => {
                    report.blobs += blobs.len();
                    recovered.push(IndexedPack {
                        id,
                        size: p.size,
                        blobs,
                    });
                }
                Err(e) => {
                    tracing::warn!(pack = %p.name, error = %e, "unindexed pack is unreadable");
                    report.unreadable.push((p.name.clone(), e.to_string()));
                }
            }
        }
        if !recovered.is_empty() {
            self.save_index(&recovered)?;
            let mut idx = self.index_mut();
            for p in &recovered {
                idx.add_pack(p.id, p.size, &p.blobs);
            }
            report.packs = recovered.len();
            tracing::info!(
                packs = report.packs,
                blobs = report.blobs,
                "re-indexed packs left by an interrupted job"
            );
        }
        Ok(report)
    }
}

/// How many snapshot, index and pack files a location holds (kinds with none are left
/// out): anything there means a repository, with or without its `config`.
fn stored_content(
    backend: &DynBackend,
    rt: &tokio::runtime::Handle,
) -> Result<Vec<(FileKind, usize)>> {
    let mut out = Vec::new();
    for kind in [FileKind::Snapshot, FileKind::Index, FileKind::Pack] {
        match rt.block_on(backend.list(kind)) {
            Ok(files) if !files.is_empty() => out.push((kind, files.len())),
            Ok(_) => {}
            Err(super::BackendError::NoRepository { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
    if !out.is_empty() {
        let keys = rt.block_on(backend.list(FileKind::Key))?.len();
        if keys > 0 {
            out.insert(0, (FileKind::Key, keys));
        }
    }
    Ok(out)
}

fn describe_content(stored: &[(FileKind, usize)]) -> String {
    let parts: Vec<String> = stored
        .iter()
        .map(|(kind, n)| format!("{n} {kind} file(s)"))
        .collect();
    parts.join(", ")
}

/// The master key of key file `name` if `secret` opens it.
fn try_key_file(
    backend: &DynBackend,
    rt: &tokio::runtime::Handle,
    name: &str,
    secret: &Secret,
) -> Option<MasterKey> {
    let raw = rt.block_on(backend.read(FileKind::Key, name)).ok()?;
    let kf: KeyFile = serde_json::from_slice(&raw).ok()?;
    if kf.version > FORMAT_VERSION {
        return None;
    }
    kf.unwrap_key(secret).ok().flatten()
}

/// What [`Repository::recover_unindexed_packs`] found.
#[derive(Debug, Default)]
pub struct RecoverReport {
    pub packs: usize,
    pub blobs: usize,
    pub unreadable: Vec<(String, String)>,
}

struct Compressors {
    level: i32,
    main: zstd::bulk::Compressor<'static>,
    quick: zstd::bulk::Compressor<'static>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressors>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `data` if that pays. Incompressible data (random, already compressed,
/// encrypted) is detected from a 4 KiB sample at level 1 before the whole is tried.
fn compress(level: i32, data: &[u8]) -> Option<Vec<u8>> {
    if level == 0 || data.len() < 128 {
        return None;
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().map(|c| c.level) != Some(level) {
            *cell = Some(Compressors {
                level,
                main: zstd::bulk::Compressor::new(level).ok()?,
                quick: zstd::bulk::Compressor::new(1).ok()?,
            });
        }
        let c = cell.as_mut()?;
        if data.len() > 16 * 1024 {
            let sample = &data[..4096];
            let q = c.quick.compress(sample).ok()?;
            if q.len() * 100 > sample.len() * 95 {
                return None;
            }
        }
        let out = c.main.compress(data).ok()?;
        (out.len() * 100 < data.len() * 97).then_some(out)
    })
}

fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new()?);
        }
        match cell.as_mut() {
            Some(d) => d.decompress(data, capacity),
            None => Err(std::io::Error::other("no zstd decompressor")),
        }
    })
}

//! Storage backends: where a repository's files live.
//!
//! A backend stores opaque, immutable files by kind and name. It knows nothing of
//! encryption, packs or snapshots; the repository layer above it gives every file a
//! content-derived or random name and never rewrites one in place. What the
//! repository needs from a backend (see `docs/FORMAT.md`, "Storage guarantees"):
//!
//! - `write` is atomic: a reader sees the whole file or no file, never a prefix.
//! - read-after-write: a file written is visible to `read` and `list` at once.
//! - `list` returns every file of a kind with its size.
//!
//! Backends: [`local::LocalBackend`] (a folder, atomic rename + fsync) and
//! [`s3::S3Backend`] (any S3-compatible store). [`throttled::Throttled`] wraps either to
//! limit bandwidth, and [`retry::Retrying`] to retry what fails transiently: backends
//! themselves never retry, they classify ([`BackendError::is_transient`]).

pub mod local;
pub mod retry;
pub mod s3;
pub mod throttled;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

pub use retry::{StoreStatus, StoreWait};

/// The kinds of file a repository stores, each in its own folder (or key prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The encrypted repository configuration (`config`, a single file).
    Config,
    /// Key files: the master key wrapped by a password or key file (`keys/`).
    Key,
    /// Snapshot manifests (`snapshots/`).
    Snapshot,
    /// Index files listing which blob lives in which pack (`index/`).
    Index,
    /// Pack files holding blobs (`data/<first two hex digits>/`).
    Pack,
    /// Lock files (`locks/`).
    Lock,
    /// Signed policies, one file per version (`policy/`).
    Policy,
    /// Audit records, one file per job or denied attempt (`audit/`).
    Audit,
}

impl FileKind {
    /// Every kind, in the order `check` and listings use.
    pub const ALL: [FileKind; 8] = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Snapshot,
        FileKind::Index,
        FileKind::Pack,
        FileKind::Lock,
        FileKind::Policy,
        FileKind::Audit,
    ];

    /// The folder (key prefix) of this kind, relative to the repository root.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Snapshot => "snapshots",
            FileKind::Index => "index",
            FileKind::Pack => "data",
            FileKind::Lock => "locks",
            FileKind::Policy => "policy",
            FileKind::Audit => "audit",
        }
    }

    /// The largest file of this kind a reader accepts whole (`Backend::read`): well
    /// above what Ferry writes, so that a damaged or hostile file (a `config` that is a
    /// link to `/dev/zero`, a multi-gigabyte "lock") is refused instead of exhausting
    /// memory. See `docs/FORMAT.md`, "Storage layout".
    pub fn read_limit(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            FileKind::Config | FileKind::Key | FileKind::Lock => MIB,
            FileKind::Policy | FileKind::Audit => 16 * MIB,
            FileKind::Snapshot => 64 * MIB,
            FileKind::Index => 512 * MIB,
            // The largest pack (1 GiB) plus its largest header (64 MiB) and envelope.
            FileKind::Pack => 1088 * MIB + 4096,
        }
    }

    /// What to do about a damaged file of this kind (the end of an error message).
    pub fn damage_advice(self) -> &'static str {
        match self {
            FileKind::Config => {
                "Put back `config` from a copy of the repository: the data cannot be read without it"
            }
            FileKind::Key => {
                "Open the repository with another key and remove this one with `ferry key remove`"
            }
            FileKind::Index => {
                "Move it aside and run `ferry repair-index` to rebuild the index from the packs"
            }
            FileKind::Lock => "Move it aside, or run `ferry unlock --all` when no job runs",
            FileKind::Snapshot | FileKind::Pack | FileKind::Policy | FileKind::Audit => {
                "Run `ferry check` to see what depends on it"
            }
        }
    }

    /// The path of a file of this kind relative to the repository root, `/`-separated.
    /// Packs are spread over 256 sub-folders by the first two characters of their name.
    pub fn path(self, name: &str) -> String {
        match self {
            FileKind::Config => "config".to_string(),
            FileKind::Pack => {
                let prefix = name.get(..2).unwrap_or("00");
                format!("data/{prefix}/{name}")
            }
            other => format!("{}/{name}", other.dir()),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Snapshot => "snapshot",
            FileKind::Index => "index",
            FileKind::Pack => "pack",
            FileKind::Lock => "lock",
            FileKind::Policy => "policy",
            FileKind::Audit => "audit",
        };
        f.write_str(s)
    }
}

/// A file a backend lists: its name (without folder) and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

/// What went wrong talking to storage. Each variant says what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{kind} file {name} does not exist in {location}")]
    NotFound {
        kind: FileKind,
        name: String,
        location: String,
    },
    #[error(
        "the repository location {location} does not exist: create it with `ferry init`, or check the path or bucket name"
    )]
    NoRepository { location: String },
    #[error(
        "access to {location} was denied ({detail}): check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket policy"
    )]
    PermissionDenied { location: String, detail: String },
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the object store at {location} failed: {detail}{}",
        if *.transient { " (a temporary failure: retrying later may succeed)" } else { "" }
    )]
    Remote {
        location: String,
        detail: String,
        transient: bool,
    },
    #[error(
        "{kind} file {name} in {location} is {size} bytes, more than the {limit} bytes such a file can hold: it is damaged or was not written by Ferry. {}",
        kind.damage_advice()
    )]
    TooLarge {
        kind: FileKind,
        name: String,
        location: String,
        size: u64,
        limit: u64,
    },
    #[error("invalid repository location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
}

impl BackendError {
    /// True when the file asked for does not exist (as opposed to a failure to read it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// True when trying again may succeed: the store answered 5xx or "slow down", timed
    /// out, or the connection broke. [`retry::Retrying`] retries exactly these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Remote {
                transient: true,
                ..
            }
        )
    }
}

/// A read in progress, kept across tries so that an interrupted read continues where
/// it stopped (see [`Backend::read_resumable`]).
#[derive(Debug, Default)]
pub struct PartialRead {
    /// What has arrived, from the read's offset.
    pub data: BytesMut,
    /// The version of the file being read (an ETag), so a continuation reads the same
    /// content; `None` until the backend knows it.
    pub version: Option<String>,
    /// The file's size, once a backend has seen it.
    pub total: Option<u64>,
    /// Requests sent for this read so far (a backend may wait longer for each).
    pub tries: u32,
}

impl PartialRead {
    /// Puts a whole answer in place of what had arrived.
    fn replace(&mut self, data: Bytes) {
        self.data = data
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// How a process elsewhere (an in-cluster agent) reaches the same storage: an object
/// store's location and settings ([`Backend::remote`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStore {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub location: String,
    /// A custom endpoint URL, for S3-compatible servers.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
}

/// The credentials the storage is reached with now ([`Backend::remote_credentials`]).
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct RemoteCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Set for temporary credentials (an assumed role, SSO): they expire.
    pub session_token: Option<String>,
}

impl fmt::Debug for RemoteCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Storage of a repository's files. Implementations must be cheap to share across
/// threads (`Arc<dyn Backend>`) and safe to call concurrently.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A human-readable location, e.g. `/srv/backups` or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// How many transfers are worth running at once against this storage.
    fn connections(&self) -> usize;

    /// A local folder on the same file system as the repository, if there is one, where
    /// pack files can be staged so that [`Backend::write_file`] becomes a rename.
    fn staging_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Creates what the repository's layout needs (folders, or checks a bucket exists).
    /// Fails if a repository already exists there (`config` is present).
    async fn create(&self) -> BackendResult<()>;

    /// Lists the files of one kind with their sizes. Order is unspecified.
    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>>;

    /// Reads a whole file.
    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes>;

    /// Reads `length` bytes at `offset`. Reading past the end is an error.
    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes>;

    /// Writes a file atomically. The repository layer never writes an existing name:
    /// names are content hashes or random, and a lock refresh writes a new file.
    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()>;

    /// Writes a file from a local file (a staged pack), atomically. The local file is
    /// consumed: it is renamed into place or removed after the upload.
    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()>;

    /// Removes a file. Removing a file that does not exist is not an error.
    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()>;

    /// The size of a file, or `NotFound`.
    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64>;

    /// Reads `length` bytes at `offset` (`None`: to the end of the file) into `part`,
    /// continuing after what `part` already holds. On an error, `part` keeps what did
    /// arrive, so the next call asks only for the rest (a backend that cannot continue
    /// starts over). The default reads everything again with [`Backend::read_range`] or
    /// [`Backend::read`].
    async fn read_resumable(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
        part: &mut PartialRead,
    ) -> BackendResult<()> {
        let data = match length {
            Some(length) => self.read_range(kind, name, offset, length).await?,
            None => {
                let all = self.read(kind, name).await?;
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
                all.slice(from..)
            }
        };
        part.replace(data);
        Ok(())
    }

    /// What this backend stack tells front ends (waits, notices), if it keeps track.
    fn status(&self) -> Option<Arc<StoreStatus>> {
        None
    }

    /// How another process reaches this storage, when it can: an object store's
    /// location and settings. `None` for a local folder, which a cluster cannot reach.
    fn remote(&self) -> Option<RemoteStore> {
        None
    }

    /// The credentials this storage is reached with now, to hand to such a process;
    /// `None` when there are none to hand over (no object store, or no credentials).
    async fn remote_credentials(&self) -> BackendResult<Option<RemoteCredentials>> {
        Ok(None)
    }

    /// Removes what failed writes left behind that is older than `older_than` (S3:
    /// incomplete multipart uploads under the repository's prefix). Returns how many.
    async fn clean_incomplete_uploads(&self, _older_than: Duration) -> BackendResult<usize> {
        Ok(0)
    }
}

pub type DynBackend = Arc<dyn Backend>;

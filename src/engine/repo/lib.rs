//! The repository engine: deduplicating, compressing, encrypting storage of file trees
//! and documents, and the jobs that move data in and out of it.
//!
//! The engine knows nothing of terminals. Long jobs report through a shared
//! [`progress::Progress`] that any front end samples at its own frame rate, and they
//! block the calling thread: call them from a plain or `spawn_blocking` thread, never from
//! inside an async task (storage I/O runs on the tokio runtime handle the repository
//! was opened with).
//!
//! Map of the modules (see ARCHITECTURE.md for the data flow):
//! - [`backend`]: where files live (local folder, S3) and bandwidth throttling.
//! - [`crypto`], [`id`]: keys, encryption, blob IDs.
//! - [`chunker`], [`pack`], [`index`]: how content becomes blobs in packs.
//! - [`repo`]: opening a repository, reading and writing blobs and files.
//! - [`tree`], [`snapshot`]: what a backup records.
//! - [`backup`], [`restore`], [`check`], [`prune`], [`forget`], [`diff`], [`stats`]: jobs.
//! - [`damage`]: what damage affects, reckoned the same way by check and restore.
//! - [`lock`], [`progress`], [`rate`] (bandwidth limits): what jobs share; [`units`]: sizes in words.

pub mod agent;
pub mod backend;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod crypto;
pub mod damage;
pub mod diff;
pub mod forget;
pub mod id;
pub mod index;
pub mod ingest;
pub mod lock;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod rate;
pub mod reads;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod saver;
pub mod snapshot;
pub mod stats;
pub mod tree;
pub mod units;

use std::path::PathBuf;

pub use backend::BackendError;
pub use crypto::CryptoError;
pub use id::Id;
pub use repo::Repository;

/// Errors of the repository engine. Every message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Pack(#[from] pack::PackError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error(transparent)]
    Chunker(#[from] chunker::ChunkerError),
    #[error(
        "the password or key does not open this repository (tried {keys} key file(s)): check FERRY_PASSWORD, --password-file or --key-file"
    )]
    WrongPassword { keys: usize },
    #[error("there is no repository at {location}: create one with `ferry init`")]
    NotARepository { location: String },
    #[error(
        "the repository key given does not open the repository at {location}: it is another repository's key, or the repository was created again since. Start the job again from Ferry, which hands its agents the key of the repository it opened"
    )]
    KeyDoesNotOpen { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error(
        "the repository at {location} has no `config` file, but it holds {found}: its config was lost, and Ferry will not create a new repository over it (the data would read as damaged). Put back `config` from a copy of the repository (a copy of the folder, or an earlier version of the object); to start a new repository, choose another location"
    )]
    ConfigMissing { location: String, found: String },
    #[error(
        "{location} holds {keys} key file(s) but no `config`: an earlier `ferry init` there was interrupted, and the given password or key opens none of its key files. Run `ferry init` again with the password or key it used, or remove the key files to start afresh"
    )]
    UnfinishedInit { location: String, keys: usize },
    #[error(
        "the repository config at {location} is damaged ({detail}); the password or key is right. Put back `config` from a copy of the repository (a copy of the folder, or an earlier version of the object)"
    )]
    ConfigDamaged { location: String, detail: String },
    #[error(
        "the password or key does not open this repository (tried {tried} key file(s)), and {} key file(s) were not tried: {refused}. Check FERRY_PASSWORD, --password-file or --key-file; a key file that was not tried is damaged or was not made by Ferry: once the repository opens with another key, remove it with `ferry key remove`",
        .count
    )]
    KeysRefused {
        tried: usize,
        count: usize,
        refused: String,
    },
    #[error(
        "the repository uses format version {found}, but this Ferry understands versions up to {supported}: upgrade Ferry"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error(
        "the repository is locked by {holder}; wait for that job to finish, or if that process is gone, run `ferry unlock`"
    )]
    Locked { holder: String },
    #[error("{what} is damaged: {detail}. Run `ferry check --read-data` to see what is affected")]
    Damaged { what: String, detail: String },
    #[error(
        "blob {id} is referenced but is in no index: an index file is missing or damaged; run `ferry repair-index` to rebuild the index from the packs"
    )]
    BlobMissing { id: Id },
    #[error("snapshot {snapshot} cannot be restored whole: {problems}. {advice}")]
    SnapshotDamaged {
        snapshot: String,
        problems: String,
        advice: String,
    },
    #[error("no snapshot matches {0:?}: list snapshots with `ferry snapshots`")]
    SnapshotNotFound(String),
    #[error("{0:?} matches more than one snapshot: give more digits of the ID")]
    AmbiguousSnapshot(String),
    #[error("the repository has no snapshots yet: make one with `ferry backup`")]
    NoSnapshots,
    #[error("{path:?} is not in snapshot {snapshot}: list its contents with `ferry ls {snapshot}`")]
    PathNotInSnapshot { snapshot: String, path: String },
    #[error("the restore target {0} is not empty: choose an empty folder, or pass --overwrite")]
    TargetNotEmpty(PathBuf),
    #[error("cannot read the backup source {path}: {source}")]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the local staging file {0}: {1} (is the disk full?)")]
    Staging(PathBuf, #[source] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key {0} is the one in use: open the repository with another key to remove it")]
    KeyInUse(String),
    #[error("no key file matches {0:?}: list them with `ferry key list`")]
    KeyNotFound(String),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pool of `threads` named worker threads for one job (deep trees need the larger
/// stack: folders are archived recursively).
pub fn worker_pool(threads: usize, job: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .stack_size(16 << 20)
        .thread_name(move |i| format!("ferry-{job}-{i}"))
        .build()
        .map_err(|e| Error::InvalidOption(format!("cannot start worker threads: {e}")))
}

/// This machine's host name, for snapshots, locks and key files.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The user running Ferry.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

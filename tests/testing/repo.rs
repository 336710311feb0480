//! Repository fixtures shared by the engine and CLI tests: repositories in temp
//! folders, random file trees, and a strict comparison of two trees. Test code: it
//! panics on any failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_repo::Repository;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::check::{self, CheckOptions};
use ferry_repo::crypto::{KdfParams, Secret};
use ferry_repo::progress::Progress;
use ferry_repo::repo::InitOptions;
use ferry_repo::restore::{self, RestoreOptions};
use ferry_repo::snapshot::Snapshot;

pub struct TestRepo {
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

pub fn secret() -> Secret {
    Secret::Password("test password".into())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn init_opts() -> InitOptions {
    InitOptions {
        kdf: KdfParams::insecure_fast(),
        pack_size: 1 << 20,
        ..InitOptions::default()
    }
}

/// A fresh repository in a temp folder (small packs so tests see several).
pub fn new_repo() -> TestRepo {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let repo = Repository::init(backend, rt.handle().clone(), &secret(), &init_opts()).unwrap();
    TestRepo { rt, dir, repo }
}

impl TestRepo {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn reopen(&self) -> Repository {
        let backend = Arc::new(LocalBackend::new(self.path()));
        Repository::open(backend, self.rt.handle().clone(), &secret()).unwrap()
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Everything about a tree that a restore must reproduce, keyed by relative path.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub content: Option<blake3::Hash>,
    pub target: Option<PathBuf>,
    pub size: u64,
}

pub fn describe(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let ft = m.file_type();
            let (kind, content, target) = if ft.is_dir() {
                stack.push(p.clone());
                ("dir", None, None)
            } else if ft.is_symlink() {
                ("symlink", None, Some(std::fs::read_link(&p).unwrap()))
            } else if ft.is_file() {
                (
                    "file",
                    Some(blake3::hash(&std::fs::read(&p).unwrap())),
                    None,
                )
            } else {
                ("other", None, None)
            };
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: if ft.is_symlink() {
                        0
                    } else {
                        m.permissions().mode() & 0o7777
                    },
                    mtime: m.mtime(),
                    mtime_nsec: if ft.is_dir() { 0 } else { m.mtime_nsec() },
                    content,
                    target,
                    size: if ft.is_file() { m.len() } else { 0 },
                },
            );
        }
    }
    out
}

/// Asserts two trees are identical in content and metadata (directory times excepted
/// to the nanosecond).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, db) = (describe(a), describe(b));
    let ka: Vec<_> = da.keys().collect();
    let kb: Vec<_> = db.keys().collect();
    assert_eq!(ka, kb, "different paths");
    for (k, ea) in &da {
        assert_eq!(Some(ea), db.get(k), "{} differs", k.display());
    }
}

/// Writes a file with the given content, mode and mtime.
pub fn write_file(path: &Path, data: &[u8], mode: u32, mtime: i64) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(mtime, 123_456_789)).unwrap();
}

/// Backs up `src` (the snapshot must have no warnings).
pub fn do_backup(repo: &Repository, src: &Path) -> Snapshot {
    let opts = BackupOptions {
        source: src.to_path_buf(),
        ..Default::default()
    };
    let out = backup::backup(repo, &opts, &Arc::new(Progress::new())).unwrap();
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    out.snapshot
}

/// Restores `path` of `snap` into `target`.
pub fn do_restore(
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    path: &str,
) -> ferry_repo::Result<restore::RestoreOutcome> {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        path: path.to_string(),
        ..Default::default()
    };
    restore::restore(repo, snap, &opts, &Arc::new(Progress::new()))
}

/// Checks the repository and returns the report.
pub fn check_repo(repo: &Repository, read_data: bool) -> check::CheckReport {
    check::check(
        repo,
        &CheckOptions {
            read_data,
            threads: None,
        },
        &Arc::new(Progress::new()),
    )
    .unwrap()
}

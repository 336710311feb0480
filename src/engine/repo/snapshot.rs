//! Snapshots: the manifest of one backup.
//!
//! A snapshot names a root tree and, for jobs that store several things at once (a
//! Kubernetes capture stores manifests and several volumes), named items that each
//! point to a subtree with free-form metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::backend::FileKind;
use super::id::Id;
use super::{Error, Repository, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// The snapshot's file name (the hash of the stored file); not serialised.
    #[serde(skip)]
    pub id: Id,
    pub version: u32,
    pub time: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub username: String,
    /// What was backed up (for file backups, the source folders).
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<Id>,
    /// The root tree.
    pub tree: Id,
    /// Named parts of the snapshot, each a subtree with its own metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<String, Item>,
    /// Free-form metadata (e.g. the source cluster's facts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub summary: Summary,
    pub program: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub kind: String,
    pub tree: Id,
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// What the backup that made a snapshot did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    /// Bytes of new blobs, file content and trees (after deduplication).
    pub bytes_new: u64,
    /// Bytes those took in storage (after compression and encryption).
    pub bytes_stored: u64,
    pub blobs_new: u64,
    /// Files or folders skipped because they could not be read.
    pub warnings: u64,
    pub duration_secs: f64,
}

impl Snapshot {
    /// Stores the snapshot; sets and returns its ID.
    pub fn save(&mut self, repo: &Repository) -> Result<Id> {
        self.id = repo.save_json(FileKind::Snapshot, self)?;
        Ok(self.id)
    }

    /// Every tree that roots part of this snapshot.
    pub fn roots(&self) -> Vec<Id> {
        let mut r = vec![self.tree];
        r.extend(self.items.values().map(|i| i.tree));
        r.sort();
        r.dedup();
        r
    }
}

/// Snapshot files that could not be read, with why.
pub type Unreadable = Vec<(String, Error)>;

/// All snapshots, oldest first. Unreadable snapshot files are returned as errors in the
/// second list, so one damaged file does not hide the others.
pub fn list(repo: &Repository) -> Result<(Vec<Snapshot>, Unreadable)> {
    let files = repo.block_on(repo.backend().list(FileKind::Snapshot))?;
    let mut out = Vec::with_capacity(files.len());
    let mut bad = Vec::new();
    for f in files {
        let loaded = repo
            .load_json::<Snapshot>(FileKind::Snapshot, &f.name)
            .and_then(|s| {
                if s.version > super::repo::FORMAT_VERSION {
                    Err(Error::UnsupportedVersion {
                        found: s.version,
                        supported: super::repo::FORMAT_VERSION,
                    })
                } else {
                    Ok(s)
                }
            });
        match loaded {
            Ok(mut s) => match f.name.parse() {
                Ok(id) => {
                    s.id = id;
                    out.push(s);
                }
                Err(_) => {
                    tracing::warn!(name = %f.name, "ignoring snapshot file with a foreign name")
                }
            },
            Err(e) => bad.push((f.name, e)),
        }
    }
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    Ok((out, bad))
}

/// Finds a snapshot by ID prefix, or `latest`.
pub fn find(repo: &Repository, spec: &str) -> Result<Snapshot> {
    let (all, _) = list(repo)?;
    resolve(&all, spec).cloned()
}

/// Resolves `spec` (`latest` or an ID prefix) within `all`.
pub fn resolve<'a>(all: &'a [Snapshot], spec: &str) -> Result<&'a Snapshot> {
    if spec == "latest" {
        return all.last().ok_or(Error::NoSnapshots);
    }
    let spec_l = spec.to_ascii_lowercase();
    let m: Vec<_> = all
        .iter()
        .filter(|s| s.id.to_hex().starts_with(&spec_l))
        .collect();
    match m.as_slice() {
        [] => Err(Error::SnapshotNotFound(spec.to_string())),
        [one] => Ok(one),
        _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
    }
}

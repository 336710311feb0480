//! A repository backend that keeps its files in memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use ferry_repo::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};

/// A repository's files in memory. Clones share the same files, so two repository
/// handles opened on clones see each other's writes, as two processes would.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    files: Arc<Mutex<HashMap<(FileKind, String), Bytes>>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// The names of the files of one kind, sorted.
    pub fn names(&self, kind: FileKind) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .lock()
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// A file's content, if it exists.
    pub fn get(&self, kind: FileKind, name: &str) -> Option<Bytes> {
        self.files.lock().get(&(kind, name.to_string())).cloned()
    }

    /// Replaces a file's content (to damage it on purpose).
    pub fn put(&self, kind: FileKind, name: &str, data: Bytes) {
        self.files.lock().insert((kind, name.to_string()), data);
    }

    fn not_found(&self, kind: FileKind, name: &str) -> BackendError {
        BackendError::NotFound {
            kind,
            name: name.to_string(),
            location: self.location(),
        }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn connections(&self) -> usize {
        2
    }

    async fn create(&self) -> BackendResult<()> {
        if !self.names(FileKind::Config).is_empty() {
            return Err(BackendError::InvalidLocation {
                location: self.location(),
                reason: "a repository exists here already".into(),
            });
        }
        Ok(())
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        Ok(self
            .files
            .lock()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| FileInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        self.get(kind, name)
            .ok_or_else(|| self.not_found(kind, name))
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        let data = self.read(kind, name).await?;
        let end = offset.saturating_add(length);
        if end > data.len() as u64 {
            return Err(BackendError::Remote {
                location: self.location(),
                detail: format!(
                    "{kind} file {name} is {} bytes: cannot read {length} at {offset}",
                    data.len()
                ),
                transient: false,
            });
        }
        Ok(data.slice(offset as usize..end as usize))
    }

    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        self.put(kind, name, data);
        Ok(())
    }

    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        let io = |source| BackendError::Io {
            path: path.to_path_buf(),
            source,
        };
        let data = tokio::fs::read(path).await.map_err(io)?;
        tokio::fs::remove_file(path).await.map_err(io)?;
        self.put(kind, name, Bytes::from(data));
        Ok(())
    }

    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.files.lock().remove(&(kind, name.to_string()));
        Ok(())
    }

    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        Ok(self.read(kind, name).await?.len() as u64)
    }
}

//! A backend wrapper that limits upload and download bandwidth.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Backend, BackendResult, DynBackend, FileInfo, FileKind, PartialRead, StoreStatus};
use crate::rate::RateLimit;

#[derive(Debug)]
pub struct Throttled {
    inner: DynBackend,
    upload: Option<Arc<RateLimit>>,
    download: Option<Arc<RateLimit>>,
}

impl Throttled {
    /// Wraps `inner`; returns it unchanged when neither limit is set.
    pub fn wrap(inner: DynBackend, upload: Option<u64>, download: Option<u64>) -> DynBackend {
        if upload.is_none() && download.is_none() {
            return inner;
        }
        Arc::new(Throttled {
            inner,
            upload: upload.map(|r| Arc::new(RateLimit::new(r))),
            download: download.map(|r| Arc::new(RateLimit::new(r))),
        })
    }

    async fn up(&self, n: u64) {
        if let Some(t) = &self.upload {
            t.acquire(n).await;
        }
    }

    async fn down(&self, n: u64) {
        if let Some(t) = &self.download {
            t.acquire(n).await;
        }
    }
}

#[async_trait]
impl Backend for Throttled {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn remote(&self) -> Option<super::RemoteStore> {
        self.inner.remote()
    }
    async fn remote_credentials(&self) -> BackendResult<Option<super::RemoteCredentials>> {
        self.inner.remote_credentials().await
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
    fn staging_dir(&self) -> Option<PathBuf> {
        self.inner.staging_dir()
    }
    async fn create(&self) -> BackendResult<()> {
        self.inner.create().await
    }
    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.inner.list(kind).await
    }
    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let data = self.inner.read(kind, name).await?;
        self.down(data.len() as u64).await;
        Ok(data)
    }
    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        self.down(length).await;
        self.inner.read_range(kind, name, offset, length).await
    }
    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        self.up(data.len() as u64).await;
        self.inner.write(kind, name, data).await
    }
    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        let len = tokio::fs::metadata(path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        self.up(len).await;
        self.inner.write_file(kind, name, path).await
    }
    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.inner.remove(kind, name).await
    }
    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        self.inner.size(kind, name).await
    }
    async fn read_resumable(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
        part: &mut PartialRead,
    ) -> BackendResult<()> {
        let before = part.data.len();
        let result = self
            .inner
            .read_resumable(kind, name, offset, length, part)
            .await;
        self.down(part.data.len().saturating_sub(before) as u64)
            .await;
        result
    }
    fn status(&self) -> Option<Arc<StoreStatus>> {
        self.inner.status()
    }
    async fn clean_incomplete_uploads(
        &self,
        older_than: std::time::Duration,
    ) -> BackendResult<usize> {
        self.inner.clean_incomplete_uploads(older_than).await
    }
}

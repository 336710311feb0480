//! A repository in a local folder.
//!
//! Every write goes to a temporary file in `tmp/`, is fsynced, renamed into place and
//! the folder fsynced, so a crash leaves either the whole file or none of it. Staged
//! packs are built in `tmp/` too, so storing one is a rename.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, FileInfo, FileKind};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    fn io(path: &Path, source: std::io::Error) -> BackendError {
        BackendError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn not_found(
        &self,
        kind: FileKind,
        name: &str,
        e: std::io::Error,
        path: &Path,
    ) -> BackendError {
        if e.kind() == std::io::ErrorKind::NotFound {
            if !self.root.join("config").exists() {
                return BackendError::NoRepository {
                    location: self.location(),
                };
            }
            BackendError::NotFound {
                kind,
                name: name.to_string(),
                location: self.location(),
            }
        } else if e.kind() == std::io::ErrorKind::PermissionDenied {
            BackendError::PermissionDenied {
                location: path.display().to_string(),
                detail: e.to_string(),
            }
        } else {
            Self::io(path, e)
        }
    }

    /// Opens a repository file for reading. The open does not block on what is not a
    /// regular file (a FIFO in the folder would otherwise hang every command), and
    /// anything but a regular file is refused. Returns the file and its size.
    fn open_regular(
        &self,
        kind: FileKind,
        name: &str,
        path: &Path,
    ) -> BackendResult<(std::fs::File, u64)> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| self.not_found(kind, name, e, path))?;
        let meta = f.metadata().map_err(|e| Self::io(path, e))?;
        if !meta.is_file() {
            return Err(Self::io(
                path,
                std::io::Error::other(
                    "not a regular file: the repository folder was altered; move it aside",
                ),
            ));
        }
        Ok((f, meta.len()))
    }

    /// Reads a whole file, refusing one larger than its kind can be.
    fn read_sync(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let p = self.file(kind, name);
        let (f, size) = self.open_regular(kind, name, &p)?;
        let limit = kind.read_limit();
        let too_large = |size| BackendError::TooLarge {
            kind,
            name: name.to_string(),
            location: self.location(),
            size,
            limit,
        };
        if size > limit {
            return Err(too_large(size));
        }
        let mut buf = Vec::with_capacity(size as usize);
        // `take`: the file may have grown since it was measured.
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Self::io(&p, e))?;
        if buf.len() as u64 > limit {
            return Err(too_large(buf.len() as u64));
        }
        Ok(Bytes::from(buf))
    }

    fn tmp_path(&self) -> BackendResult<PathBuf> {
        let name = staging_name().map_err(|e| Self::io(&self.root, std::io::Error::other(e)))?;
        Ok(self.root.join("tmp").join(name))
    }

    fn sync_dir(dir: &Path) -> BackendResult<()> {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Self::io(dir, e))
    }

    fn place(&self, tmp: &Path, kind: FileKind, name: &str) -> BackendResult<()> {
        let dest = self.file(kind, name);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        if let Err(e) = std::fs::rename(tmp, &dest) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Self::io(&dest, e));
            }
            std::fs::create_dir_all(&dir).map_err(|e| Self::io(&dir, e))?;
            std::fs::rename(tmp, &dest).map_err(|e| Self::io(&dest, e))?;
        }
        Self::sync_dir(&dir)
    }

    fn write_sync(&self, kind: FileKind, name: &str, data: &[u8]) -> BackendResult<()> {
        let tmp = self.tmp_path()?;
        let res = (|| {
            let mut f =
                std::fs::File::create(&tmp).map_err(|e| self.not_found(kind, name, e, &tmp))?;
            f.write_all(data).map_err(|e| Self::io(&tmp, e))?;
            f.sync_all().map_err(|e| Self::io(&tmp, e))?;
            self.place(&tmp, kind, name)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn list_sync(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        if !self.root.exists() {
            return Err(BackendError::NoRepository {
                location: self.location(),
            });
        }
        let mut out = Vec::new();
        if kind == FileKind::Config {
            if let Ok(m) = std::fs::metadata(self.root.join("config")) {
                out.push(FileInfo {
                    name: "config".to_string(),
                    size: m.len(),
                });
            }
            return Ok(out);
        }
        let dir = self.root.join(kind.dir());
        let mut dirs = vec![dir.clone()];
        if kind == FileKind::Pack {
            dirs.clear();
            match std::fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.map_err(|e| Self::io(&dir, e))?;
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            dirs.push(e.path());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(Self::io(&dir, e)),
            }
        }
        for d in dirs {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Self::io(&d, e)),
            };
            for e in rd {
                let e = e.map_err(|e| Self::io(&d, e))?;
                let meta = e.metadata().map_err(|err| Self::io(&e.path(), err))?;
                if !meta.is_file() {
                    continue;
                }
                if let Some(name) = e.file_name().to_str() {
                    out.push(FileInfo {
                        name: name.to_string(),
                        size: meta.len(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Runs blocking file-system work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BackendResult<T> + Send + 'static,
) -> BackendResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(BackendError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(format!("storage worker failed: {e}")),
        }),
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn connections(&self) -> usize {
        2
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.root.join("tmp"))
    }

    async fn create(&self) -> BackendResult<()> {
        let this = self.clone();
        blocking(move || {
            if this.root.join("config").exists() {
                return Err(BackendError::InvalidLocation {
                    location: this.location(),
                    reason: "a repository already exists there".to_string(),
                });
            }
            for d in ["keys", "snapshots", "index", "data", "locks", "tmp"] {
                let p = this.root.join(d);
                std::fs::create_dir_all(&p).map_err(|e| Self::io(&p, e))?;
            }
            let data = this.root.join("data");
            for i in 0..=255u8 {
                let p = data.join(hex::encode([i]));
                std::fs::create_dir_all(&p).map_err(|e| Self::io(&p, e))?;
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let this = self.clone();
        blocking(move || this.list_sync(kind)).await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let this = self.clone();
        let name = name.to_string();
        blocking(move || this.read_sync(kind, &name)).await
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        let this = self.clone();
        let name = name.to_string();
        blocking(move || {
            let p = this.file(kind, &name);
            let (mut f, _) = this.open_regular(kind, &name, &p)?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| Self::io(&p, e))?;
            let len = usize::try_from(length)
                .map_err(|_| Self::io(&p, std::io::Error::other("range too large")))?;
            let mut buf = vec![0u8; len];
            f.read_exact(&mut buf).map_err(|e| Self::io(&p, e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let this = self.clone();
        let name = name.to_string();
        blocking(move || this.write_sync(kind, &name, &data)).await
    }

    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        let this = self.clone();
        let name = name.to_string();
        let path = path.to_path_buf();
        blocking(move || {
            // Staged in our own tmp/ (same file system): a rename. Anywhere else: copy.
            if path.parent() == Some(this.root.join("tmp").as_path()) {
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Self::io(&path, e))?;
                this.place(&path, kind, &name)
            } else {
                let data = std::fs::read(&path).map_err(|e| Self::io(&path, e))?;
                this.write_sync(kind, &name, &data)?;
                std::fs::remove_file(&path).map_err(|e| Self::io(&path, e))
            }
        })
        .await
    }

    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let this = self.clone();
        let name = name.to_string();
        blocking(move || {
            let p = this.file(kind, &name);
            match std::fs::remove_file(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Self::io(&p, e)),
            }
        })
        .await
    }

    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        let this = self.clone();
        let name = name.to_string();
        blocking(move || {
            let p = this.file(kind, &name);
            std::fs::metadata(&p)
                .map(|m| m.len())
                .map_err(|e| this.not_found(kind, &name, e, &p))
        })
        .await
    }
}

/// A fresh name for a staging file: `<host tag>.<pid>.<random>`, so that cleanup can tell
/// which files belong to dead processes of this host (a repository folder may be shared
/// by several hosts; their files are left alone).
pub fn staging_name() -> Result<String, String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    Ok(format!(
        "{}.{}.{}",
        host_tag(),
        std::process::id(),
        hex::encode(b)
    ))
}

fn host_tag() -> String {
    hex::encode(&blake3::hash(crate::hostname().as_bytes()).as_bytes()[..4])
}

/// Removes staging files in `tmp/` left by processes of this host that no longer run.
pub fn clean_stale_staging(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let tag = host_tag();
    for e in rd.flatten() {
        let name = e.file_name();
        let mut parts = name.to_str().unwrap_or("").split('.');
        let (Some(host), Some(pid)) = (
            parts.next(),
            parts.next().and_then(|p| p.parse::<u32>().ok()),
        ) else {
            continue;
        };
        if host == tag && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

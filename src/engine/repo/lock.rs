//! Repository locks: many shared holders (backup, restore, check) or one exclusive
//! holder (prune, forget), with stale-lock detection.
//!
//! A lock is an encrypted file in `locks/` naming its host, process and time. It is
//! refreshed every five minutes while held. A lock is stale, and is removed by the next
//! job that meets it, when its process is gone from this host or it has not been
//! refreshed for thirty minutes (a crashed job on another host).
//!
//! Jobs that only read take their lock with [`acquire_for_reading`], which goes on
//! without one (and says so) when the storage cannot be written at all.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use super::backend::{BackendError, FileKind};
use super::progress::Progress;
use super::{Error, Repository, Result};

pub const REFRESH: Duration = Duration::from_secs(5 * 60);
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub time: chrono::DateTime<chrono::Utc>,
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub username: String,
    /// What holds it (e.g. "backup").
    pub purpose: String,
}

impl LockInfo {
    /// Whether this lock's holder is certainly gone.
    pub fn is_stale(&self) -> bool {
        let age = chrono::Utc::now().signed_duration_since(self.time);
        if age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false) {
            return true;
        }
        self.host == super::hostname()
            && self.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({} lock) of {}@{} pid {} since {}",
            self.purpose,
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.username,
            self.host,
            self.pid,
            self.time.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    repo: Repository,
    state: Arc<(Mutex<Option<String>>, Condvar)>,
    refresher: Option<std::thread::JoinHandle<()>>,
    /// Why no lock is held: the storage cannot be written (see [`acquire_for_reading`]).
    unlocked: Option<String>,
}

impl LockGuard {
    /// Why this job runs without a lock (read-only storage), if it does.
    pub fn unlocked(&self) -> Option<&str> {
        self.unlocked.as_deref()
    }
}

/// Lists the locks in the repository (unreadable lock files are skipped).
pub fn list(repo: &Repository) -> Result<Vec<(String, LockInfo)>> {
    let files = repo.block_on(repo.backend().list(FileKind::Lock))?;
    let mut out = Vec::new();
    for f in files {
        match repo.load_json::<LockInfo>(FileKind::Lock, &f.name) {
            Ok(l) => out.push((f.name, l)),
            Err(e) if matches!(&e, Error::Backend(b) if b.is_not_found()) => {}
            Err(e) => tracing::warn!(lock = %f.name, error = %e, "unreadable lock file"),
        }
    }
    Ok(out)
}

fn conflicts(
    repo: &Repository,
    exclusive: bool,
    own: Option<&str>,
    reading: bool,
) -> Result<Option<LockInfo>> {
    for (name, l) in list(repo)? {
        if Some(name.as_str()) == own {
            continue;
        }
        if l.is_stale() {
            tracing::info!(lock = %name, holder = %l.describe(), "removing stale lock");
            match repo.block_on(repo.backend().remove(FileKind::Lock, &name)) {
                Ok(()) => {}
                // A reader of storage it cannot write leaves the stale lock alone.
                Err(e) if reading && read_only_reason(&e).is_some() => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        if exclusive || l.exclusive {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

fn write_lock(repo: &Repository, exclusive: bool, purpose: &str) -> Result<String> {
    let info = LockInfo {
        time: chrono::Utc::now(),
        exclusive,
        host: super::hostname(),
        pid: std::process::id(),
        username: super::username(),
        purpose: purpose.to_string(),
    };
    Ok(repo.save_json(FileKind::Lock, &info)?.to_hex())
}

/// Why storage refuses every write here (a read-only mount, credentials that only
/// read), or `None` for any other failure.
fn read_only_reason(e: &BackendError) -> Option<String> {
    use nix::libc::{EACCES, EPERM, EROFS};
    match e {
        BackendError::PermissionDenied { detail, .. } => Some(detail.clone()),
        BackendError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(EROFS | EACCES | EPERM))
                || source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Some(source.to_string())
        }
        _ => None,
    }
}

/// Takes a lock, or fails with [`Error::Locked`] naming the holder.
pub fn acquire(repo: &Repository, exclusive: bool, purpose: &str) -> Result<LockGuard> {
    acquire_inner(repo, exclusive, purpose, false)
}

/// Takes a shared lock for a job that only reads (restore, check). When the storage
/// cannot be written at all (a read-only mount, credentials that only read), the job
/// goes on without a lock and `progress` gets a warning saying so: it cannot change
/// the repository, but a prune running elsewhere meanwhile could remove data it reads.
/// A live exclusive lock still stops it.
pub fn acquire_for_reading(
    repo: &Repository,
    purpose: &str,
    progress: &Progress,
) -> Result<LockGuard> {
    let guard = acquire_inner(repo, false, purpose, true)?;
    if let Some(why) = &guard.unlocked {
        progress.warn(format!(
            "the repository at {} cannot be written ({why}): {purpose} goes on without a lock, so a prune or forget running elsewhere meanwhile could remove what it reads",
            repo.location()
        ));
    }
    Ok(guard)
}

fn acquire_inner(
    repo: &Repository,
    exclusive: bool,
    purpose: &str,
    reading: bool,
) -> Result<LockGuard> {
    if let Some(holder) = conflicts(repo, exclusive, None, reading)? {
        return Err(Error::Locked {
            holder: holder.describe(),
        });
    }
    let name = match write_lock(repo, exclusive, purpose) {
        Ok(name) => name,
        Err(Error::Backend(e)) if reading && read_only_reason(&e).is_some() => {
            let why = read_only_reason(&e).unwrap_or_default();
            tracing::warn!(location = %repo.location(), error = %e, "read-only repository: reading without a lock");
            return Ok(LockGuard {
                repo: repo.clone(),
                state: Arc::new((Mutex::new(None), Condvar::new())),
                refresher: None,
                unlocked: Some(why),
            });
        }
        Err(e) => return Err(e),
    };
    // Two jobs may have checked at the same time: look again now that ours is visible.
    if let Some(holder) = conflicts(repo, exclusive, Some(&name), reading)? {
        repo.block_on(repo.backend().remove(FileKind::Lock, &name))?;
        return Err(Error::Locked {
            holder: holder.describe(),
        });
    }
    let state = Arc::new((Mutex::new(Some(name.clone())), Condvar::new()));
    let refresher = {
        let repo = repo.clone();
        let state = state.clone();
        let purpose = purpose.to_string();
        std::thread::Builder::new()
            .name("ferry-lock".into())
            .spawn(move || refresh_loop(&repo, &state, exclusive, &purpose))
    };
    // Without its refresher the lock would go stale under a long job: give up now.
    let refresher = match refresher {
        Ok(h) => Some(h),
        Err(e) => {
            repo.block_on(repo.backend().remove(FileKind::Lock, &name))?;
            return Err(Error::InvalidOption(format!(
                "cannot start the lock refresher thread: {e}"
            )));
        }
    };
    Ok(LockGuard {
        repo: repo.clone(),
        state,
        refresher,
        unlocked: None,
    })
}

fn refresh_loop(
    repo: &Repository,
    state: &(Mutex<Option<String>>, Condvar),
    exclusive: bool,
    purpose: &str,
) {
    let (lock, cv) = state;
    let mut guard = lock.lock();
    loop {
        if guard.is_none() {
            return;
        }
        let timed_out = cv.wait_for(&mut guard, REFRESH).timed_out();
        let Some(old) = guard.clone() else { return };
        if !timed_out {
            continue;
        }
        match write_lock(repo, exclusive, purpose) {
            Ok(new) => {
                *guard = Some(new);
                if let Err(e) = repo.block_on(repo.backend().remove(FileKind::Lock, &old)) {
                    tracing::warn!(error = %e, "could not remove the previous lock file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not refresh the repository lock"),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let name = self.state.0.lock().take();
        self.state.1.notify_all();
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        if let Some(name) = name
            && let Err(e) = self
                .repo
                .block_on(self.repo.backend().remove(FileKind::Lock, &name))
        {
            tracing::warn!(error = %e, lock = %name, "could not remove the lock file");
        }
    }
}

/// Removes stale locks (or every lock, with `all`). Returns how many were removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<usize> {
    let mut n = 0;
    for (name, l) in list(repo)? {
        if all || l.is_stale() {
            repo.block_on(repo.backend().remove(FileKind::Lock, &name))?;
            n += 1;
        }
    }
    Ok(n)
}

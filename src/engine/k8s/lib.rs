//! Moving Kubernetes workloads as one unit: their objects and their volume data.
//!
//! - [`objects`]: object references, discovery of what a cluster serves, paged lists;
//! - [`graph`]: what an object refers to: dependency closure and restore order;
//! - [`capture`]: a backup of namespaces, workloads or a selection into a snapshot;
//! - [`cluster`]: storage classes, and kube-rs errors in words;
//! - [`mover`]: short-lived pods that read and write volume data through the exec API;
//! - [`listing`]: the movers' exec protocol, safe for any file name and busybox's tools;
//! - [`lease`]: jobs' temporaries in a cluster, their leases, and dead jobs' cleanup;
//! - [`transform`]: what changes on the way to another cluster (namespaces, storage
//!   classes, server-populated fields);
//! - [`modifiers`]: Velero's resource modifiers, the user's own rules of what changes;
//! - [`references`]: DNS names of services in configuration, rewritten when their
//!   namespace is mapped, and what in a copy still points at the source;
//! - [`helm`]: Helm's release records follow their namespace, manifests and all;
//! - [`plan`]: the dry run of a restore, checked against the target;
//! - [`apply`]: carrying out a plan, volumes before the workloads that use them.
//!
//! Everything goes through kube-rs over the wire: the same code talks to EKS, AKS and
//! the sandbox. Jobs are async (they talk to clusters) and hand repository work to
//! blocking threads. Progress is reported through [`JobProgress`], which front ends
//! sample at their own pace.

pub mod agent;
pub mod apply;
pub mod capture;
mod checks;
pub mod cluster;
pub mod graph;
pub mod helm;
pub mod lease;
pub mod listing;
pub mod modifiers;
pub mod mover;
pub mod objects;
pub mod pipe;
pub mod placement;
pub mod plan;
pub mod podsec;
pub mod references;
pub mod scope;
pub mod transform;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use ferry_repo::progress::Progress;

pub use objects::ObjRef;

/// The snapshot `meta` key under which a capture records what it holds.
pub const META_KEY: &str = "kubernetes";
/// Folder of the snapshot tree holding object documents.
pub const RESOURCES_DIR: &str = "resources";
/// Folder of the snapshot tree holding volume contents (`volumes/<ns>/<pvc>/`).
pub const VOLUMES_DIR: &str = "volumes";
/// Label on everything Ferry creates for its own use (mover pods, snapshots).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ferry");
/// Annotation a restored PVC carries once its data is in place: `<snapshot>:<tree>`.
pub const RESTORED_ANNOTATION: &str = "ferry.dev/restored-from";
/// Annotation a PVC carries from the moment a restore creates it: `<snapshot>:<tree>`,
/// the data it is to receive. A claim with this but without [`RESTORED_ANNOTATION`]
/// lost its transfer midway, and a retry fills it again.
pub const RESTORING_ANNOTATION: &str = "ferry.dev/restoring";

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("{context}: {detail}")]
    Api { context: String, detail: String },
    #[error(transparent)]
    Repository(#[from] ferry_repo::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("volume {pvc}: {detail}")]
    Volume { pvc: String, detail: String },
    #[error(
        "the plan has {0} problem(s) that stop the restore: see the plan (`ferry plan`), fix them or change the mapping"
    )]
    PlanBlocked(usize),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("cannot save the restore report {path}: {detail}")]
    Report { path: String, detail: String },
    /// The cluster stopped answering (a dropped or stalled connection).
    #[error(
        "{what}: the cluster did not answer for {secs} s (the connection dropped or stalled); check it and run the job again, it resumes"
    )]
    Unreachable { what: String, secs: u64 },
}

impl K8sError {
    /// The job was cancelled, here or in the repository engine under it (a capture's
    /// snapshot writer stops with the engine's own `Cancelled`).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            K8sError::Cancelled | K8sError::Repository(ferry_repo::Error::Cancelled)
        )
    }

    /// An API error with what Ferry was doing and what the cluster said.
    pub fn api(context: impl Into<String>, e: &kube::Error) -> K8sError {
        K8sError::Api {
            context: context.into(),
            detail: crate::cluster::explain(e),
        }
    }
}

pub type Result<T, E = K8sError> = std::result::Result<T, E>;

/// Waits for one request at most `limit`: a cluster that stops answering is an error,
/// not a hang (Kubernetes clients set no read timeout, so a silent connection waits
/// forever).
pub(crate) async fn within<T>(
    limit: Duration,
    what: impl FnOnce() -> String,
    request: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, request).await {
        Ok(r) => r,
        Err(_) => Err(K8sError::Unreachable {
            what: what(),
            secs: limit.as_secs(),
        }),
    }
}

/// Runs `work` for as long as `moved` keeps changing; `None` once it has stood still
/// for `limit` (the stream's connection dropped or stalled).
pub(crate) async fn unless_stalled<T>(
    limit: Duration,
    moved: impl Fn() -> u64,
    work: impl Future<Output = T>,
) -> Option<T> {
    match watched(limit, moved, || false, work).await {
        Streamed::Done(t) => Some(t),
        Streamed::Stalled | Streamed::Cancelled => None,
    }
}

/// How a watched stream ended.
pub(crate) enum Streamed<T> {
    Done(T),
    /// Nothing moved for the stall limit.
    Stalled,
    /// The job was cancelled: the work was dropped at once, not drained.
    Cancelled,
}

impl<T> Streamed<T> {
    /// The work's output; otherwise the exec'd process `p` is stopped and the job ends
    /// with `stalled()` or as cancelled.
    pub(crate) fn or_stop(
        self,
        p: &mut kube::api::AttachedProcess,
        stalled: impl FnOnce() -> K8sError,
    ) -> Result<T> {
        match self {
            Streamed::Done(t) => Ok(t),
            Streamed::Stalled => {
                p.abort();
                Err(stalled())
            }
            Streamed::Cancelled => {
                p.abort();
                Err(K8sError::Cancelled)
            }
        }
    }
}

/// Runs a job's stream `work` while its data moves and the job is not cancelled: a
/// cancel ends it within a tenth of a second, whatever the stream still holds (a
/// volume's remaining gigabytes are not read to the end first).
pub(crate) async fn streaming<T>(
    limit: Duration,
    data: &Progress,
    work: impl Future<Output = T>,
) -> Streamed<T> {
    watched(limit, || data.activity(), || data.is_cancelled(), work).await
}

async fn watched<T>(
    limit: Duration,
    moved: impl Fn() -> u64,
    cancelled: impl Fn() -> bool,
    work: impl Future<Output = T>,
) -> Streamed<T> {
    tokio::pin!(work);
    let tick = (limit / 8).clamp(Duration::from_millis(20), Duration::from_millis(100));
    let mut last = moved();
    let mut since = std::time::Instant::now();
    loop {
        tokio::select! {
            out = &mut work => return Streamed::Done(out),
            () = tokio::time::sleep(tick) => {
                if cancelled() {
                    return Streamed::Cancelled;
                }
                let now = moved();
                if now != last {
                    last = now;
                    since = std::time::Instant::now();
                } else if since.elapsed() >= limit {
                    return Streamed::Stalled;
                }
            }
        }
    }
}

/// How one volume's transfer goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeStatus {
    pub namespace: String,
    pub pvc: String,
    pub state: String,
    pub files: u64,
    pub bytes: u64,
    pub files_total: u64,
    pub bytes_total: u64,
    /// While its data streams: the job's file and byte counters when it started, so
    /// what was read since counts as this volume's (`files`/`bytes` hold what was
    /// done before the stream: files unchanged since the parent).
    #[serde(skip)]
    pub streaming_from: Option<(u64, u64)>,
}

/// Live progress of a capture, restore or migration. The byte and file counters of the
/// volume data are in `data` (the engine's own progress, with its rate and ETA).
#[derive(Debug, Default)]
pub struct JobProgress {
    pub data: Arc<Progress>,
    pub objects_total: AtomicU64,
    pub objects_done: AtomicU64,
    phase: Mutex<String>,
    volumes: Mutex<Vec<VolumeStatus>>,
    log: Mutex<std::collections::VecDeque<String>>,
}

impl JobProgress {
    pub fn new() -> Arc<JobProgress> {
        Arc::new(JobProgress::default())
    }

    /// A job whose data counters are `data` (e.g. one that Ctrl-C cancels).
    pub fn with_data(data: Arc<Progress>) -> Arc<JobProgress> {
        Arc::new(JobProgress {
            data,
            ..JobProgress::default()
        })
    }

    pub fn set_phase(&self, p: impl Into<String>) {
        let p = p.into();
        tracing::info!(phase = %p, "job phase");
        *self.phase.lock() = p;
    }

    pub fn phase(&self) -> String {
        self.phase.lock().clone()
    }

    pub fn add_objects(&self, total: u64, done: u64) {
        self.objects_total.fetch_add(total, Relaxed);
        self.objects_done.fetch_add(done, Relaxed);
    }

    pub fn objects(&self) -> (u64, u64) {
        (
            self.objects_done.load(Relaxed),
            self.objects_total.load(Relaxed),
        )
    }

    /// Adds a line to the job's log (shown by the console's log pane).
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(%line, "job");
        let mut l = self.log.lock();
        l.push_back(line);
        // The last thousand lines (a whole cluster logs one per object).
        while l.len() > 1000 {
            l.pop_front();
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().iter().cloned().collect()
    }

    pub fn volume(&self, namespace: &str, pvc: &str, f: impl FnOnce(&mut VolumeStatus)) {
        let mut v = self.volumes.lock();
        let idx = match v
            .iter()
            .position(|s| s.namespace == namespace && s.pvc == pvc)
        {
            Some(i) => i,
            None => {
                v.push(VolumeStatus {
                    namespace: namespace.into(),
                    pvc: pvc.into(),
                    ..VolumeStatus::default()
                });
                v.len() - 1
            }
        };
        if let Some(s) = v.get_mut(idx) {
            f(s);
        }
    }

    /// Every volume's status, with what a streaming volume has read so far (never
    /// more than its totals).
    pub fn volumes(&self) -> Vec<VolumeStatus> {
        let mut all = self.volumes.lock().clone();
        if all.iter().any(|v| v.streaming_from.is_some()) {
            let now = self.data.snapshot();
            for v in &mut all {
                if let Some((files, bytes)) = v.streaming_from {
                    v.files = (v.files + now.files_done.saturating_sub(files)).min(v.files_total);
                    v.bytes = (v.bytes + now.bytes_done.saturating_sub(bytes)).min(v.bytes_total);
                }
            }
        }
        all
    }

    /// Notes that `ns/pvc`'s data starts streaming now, `files` and `bytes` of it
    /// being done already.
    pub fn volume_streaming(&self, ns: &str, pvc: &str, files: u64, bytes: u64) {
        let now = self.data.snapshot();
        self.volume(ns, pvc, |s| {
            s.files = files;
            s.bytes = bytes;
            s.streaming_from = Some((now.files_done, now.bytes_done));
        });
    }

    pub fn cancel(&self) {
        self.data.cancel();
    }

    /// Pauses the job's volume data streams (see [`Progress::pause`]).
    pub fn pause(&self) {
        self.data.pause();
        self.log("paused");
    }

    pub fn resume(&self) {
        self.data.resume();
        self.log("resumed");
    }

    pub fn is_paused(&self) -> bool {
        self.data.is_paused()
    }

    pub fn check(&self) -> Result<()> {
        if self.data.is_cancelled() {
            Err(K8sError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log keeps its last thousand lines, oldest first.
    #[test]
    fn the_job_log_keeps_its_last_thousand_lines_in_order() {
        let p = JobProgress::new();
        for n in 0..2500 {
            p.log(format!("line {n}"));
        }
        let l = p.log_lines();
        assert_eq!(l.len(), 1000);
        assert_eq!(l[0], "line 1500");
        assert_eq!(l[999], "line 2499");
    }

    /// A streaming volume counts what the job reads after it started (on top of the
    /// files its parent gave), never more than its totals; a done volume keeps its own.
    #[test]
    fn a_streaming_volume_counts_what_was_read_since_it_started() {
        let p = JobProgress::new();
        p.data.add_done(5, 500); // an earlier volume
        p.volume("shop", "data", |s| {
            s.files_total = 10;
            s.bytes_total = 1000;
        });
        p.volume_streaming("shop", "data", 2, 200);
        let v = &p.volumes()[0];
        assert_eq!((v.files, v.bytes), (2, 200));
        p.data.add_done(3, 300);
        let v = &p.volumes()[0];
        assert_eq!((v.files, v.bytes), (5, 500));
        p.data.add_done(100, 10_000);
        let v = &p.volumes()[0];
        assert_eq!((v.files, v.bytes), (10, 1000), "never past the totals");
        p.volume("shop", "data", |s| {
            s.files = 10;
            s.bytes = 1000;
            s.streaming_from = None;
        });
        p.data.add_done(1, 1);
        let v = &p.volumes()[0];
        assert_eq!((v.files, v.bytes), (10, 1000));
    }
}

//! The jobs both front ends run, the command line and the console alike, each one typed
//! call: options and a progress handle in, a typed outcome (or [`Failed`]) out.
//!
//! - [`backup`]: a capture of a cluster's namespaces or workloads into the repository.
//! - [`stage_restore`] (a capture into a cluster) and [`stage_move`] (a migrate or clone:
//!   the source captured first) check the policy and plan; the [`Staged`] job shows its
//!   plan and is then carried out ([`Staged::run`]), declined ([`Staged::decline`]) or
//!   abandoned ([`Staged::abandon`]).
//! - [`create_and_restore`]: a new EKS or AKS cluster, then a restore or move into it.
//! - [`delete_snapshots`]: removing captures (the policy's `delete-snapshots`).
//!
//! Everything that reads a cluster for a job or changes one goes through a [`Permit`],
//! and only [`authorize`] issues one: it runs the policy gate
//! ([`ferry_policy::gate::check`]: the verified policy, the user's identity on each
//! cluster, a decision per namespace pair) and records a refusal. The permit's steps
//! (capture, plan with the policy's scrub rules applied, apply, the audit record) are
//! private to this crate, so a front end cannot skip the check, and every job writes
//! its audit record here, whether it succeeds, fails or is abandoned; a record that
//! could not be written comes back as a warning (`unrecorded`) for the front end to
//! show. Front ends only word what happened; they never call the engines' capture, plan
//! or apply themselves (`tests/console/layering.rs` checks).
//!
//! [`dry_run`] is the one plan without a permit: it changes nothing and records
//! nothing, and says what the policy would decide. Folder backups and restores into a
//! folder are one `ferry_repo` call each (`backup::backup`, `restore::restore`) that
//! the front ends make directly: no cluster, no policy.

use std::sync::Arc;

use serde_json::Value;

use ferry_k8s::apply::{self, Report};
use ferry_k8s::capture::{self, CaptureMeta, CaptureOptions, CaptureOutcome};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Plan, PlanOptions};
use ferry_k8s::{JobProgress, K8sError};
use ferry_policy::gate::{self, Gate, Place};
use ferry_policy::scrub::Scrubbed;
use ferry_policy::{Action, Decision, PolicyError};
use ferry_providers::kubeconfig::{KubeconfigError, LinkedCluster};
use ferry_repo::Repository;
use ferry_repo::snapshot::Snapshot;
use ferry_repo::units;

mod create;
mod moving;

pub use create::{CreateAndRestore, NewCluster, Payload, create_and_restore};
pub use moving::{
    Captured, Deleted, MoveJob, Removal, RestoreJob, Restored, Staged, backup, delete_snapshots,
    stage_move, stage_restore,
};

/// Why a job did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The policy refused the job, or could not be checked.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Capturing, planning or applying failed.
    #[error(transparent)]
    Kubernetes(#[from] K8sError),
    /// The repository could not be read.
    #[error(transparent)]
    Repository(#[from] ferry_repo::Error),
    /// A cluster could not be reached (no client could be made).
    #[error(transparent)]
    Cluster(#[from] KubeconfigError),
    /// The plan has blocking problems, so it was not carried out: nothing was changed
    /// on `target`. `capture` is the snapshot a move captured first.
    #[error(
        "the plan has {} blocking problem(s) (above): nothing was changed{}",
        .problems.len(),
        blocked_tail(.target, .capture)
    )]
    Blocked {
        /// The blocking problems, in words.
        problems: Vec<String>,
        /// The cluster the plan was for.
        target: String,
        /// The short ID of the snapshot a move captured.
        capture: Option<String>,
    },
    /// A new cluster could not be created (in words, with how to start again).
    #[error("{0}")]
    Create(String),
}

impl JobError {
    /// The user cancelled the job (it is not a failure of the job).
    pub fn is_cancelled(&self) -> bool {
        match self {
            JobError::Kubernetes(e) => e.is_cancelled(),
            JobError::Repository(e) => matches!(e, ferry_repo::Error::Cancelled),
            _ => false,
        }
    }
}

fn blocked_tail(target: &str, capture: &Option<String>) -> String {
    match capture {
        Some(snap) => format!(" on {target}; the capture is snapshot {snap}"),
        None => String::new(),
    }
}

/// A job that failed: why, and what it leaves behind.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: JobError,
    /// The step that failed, in words (`capture from prod failed`), when it was past
    /// the policy check.
    pub context: Option<String>,
    /// The capture a move had taken before it failed (it stays in the repository).
    pub capture: Option<Box<CaptureOutcome>>,
    /// Why the job's audit record could not be written, when it could not.
    pub unrecorded: Option<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(f, "{c}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl From<JobError> for Failed {
    /// A failure before the policy allowed the job (nothing to record beyond what the
    /// gate recorded itself).
    fn from(error: JobError) -> Failed {
        Failed {
            error,
            context: None,
            capture: None,
            unrecorded: None,
        }
    }
}

impl From<PolicyError> for Failed {
    fn from(e: PolicyError) -> Failed {
        JobError::from(e).into()
    }
}

/// `e` and its sources, as `anyhow` shows a chain: `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A cluster a job reads or changes: as linked, and a client to it.
#[derive(Clone)]
pub struct Endpoint {
    /// The cluster as the kubeconfig or a cloud account links it.
    pub cluster: LinkedCluster,
    /// A client to it.
    pub client: kube::Client,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("cluster", &self.cluster.name)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Connects to `cluster`.
    pub async fn connect(cluster: LinkedCluster) -> Result<Endpoint, JobError> {
        let client = cluster.client().await?;
        Ok(Endpoint { cluster, client })
    }

    /// The cluster as the policy sees it (asking it who the user is).
    fn place(&self) -> Place {
        Place::new(&self.cluster, Some(&self.client))
    }
}

/// The (source namespace, target namespace) pairs of a restore of `namespaces` under
/// `opts`' mapping, as the policy decides them.
pub fn restore_pairs(
    namespaces: &[String],
    opts: &PlanOptions,
) -> Vec<(Option<String>, Option<String>)> {
    namespaces
        .iter()
        .map(|n| (Some(n.clone()), Some(opts.mapping.namespace(n).to_string())))
        .collect()
}

/// The source namespaces a restore of a capture takes: those asked for, else all.
pub fn restored_namespaces<'a>(meta: &'a CaptureMeta, opts: &'a PlanOptions) -> &'a [String] {
    if opts.namespaces.is_empty() {
        &meta.namespaces
    } else {
        &opts.namespaces
    }
}

/// A job the policy allowed: what it may do, what to scrub, and its audit record so
/// far. Only [`authorize`] makes one; its steps are this crate's own.
#[derive(Debug, Clone)]
pub struct Permit {
    repo: Repository,
    gate: Gate,
}

/// Decides whether a job may run ([`gate::check`]) before it reads or changes anything.
/// `pairs` are its (source namespace, target namespace) pairs. A refusal is in the audit
/// trail already and comes back as [`PolicyError::Denied`] (or why the policy could not
/// be checked).
pub async fn authorize(
    repo: &Repository,
    action: Action,
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Result<Permit, PolicyError> {
    let gate = gate::check(repo, action, from, to, pairs).await?;
    Ok(Permit {
        repo: repo.clone(),
        gate,
    })
}

impl Permit {
    /// The policy's decisions (one per namespace pair; one "no policy" decision when the
    /// repository has none).
    pub fn decisions(&self) -> &[Decision] {
        &self.gate.decisions
    }

    /// Whether a policy decided (false: the repository has none).
    pub fn has_policy(&self) -> bool {
        self.gate.has_policy
    }

    /// Why the policy allowed the job (its first decision); `None` when the repository
    /// has no policy.
    pub fn allowed(&self) -> Option<String> {
        if !self.has_policy() {
            return None;
        }
        self.decisions().first().map(|d| d.reason.clone())
    }

    /// The repository the job works in.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// Notes the snapshot the job restores or wrote in its audit record.
    fn note_snapshot(&mut self, snap: &Snapshot) {
        self.gate.record.snapshot = Some(snap.id.to_hex());
    }

    /// Captures from `client` into the repository (a backup, or the first half of a
    /// migration or clone); the snapshot and its size go into the audit record.
    async fn capture(
        &mut self,
        client: &kube::Client,
        opts: &CaptureOptions,
        progress: &Arc<JobProgress>,
    ) -> Result<CaptureOutcome, JobError> {
        let out = capture::capture(client, &self.repo, opts, progress).await?;
        self.note_snapshot(&out.snapshot);
        self.gate.record.bytes += out.snapshot.summary.bytes;
        if let Some(d) = &out.meta.data_path {
            self.gate.record.data_path = Some(format!("capture: {} ({})", d.path, d.why));
        }
        Ok(out)
    }

    /// The policy's scrub rules applied to captured objects: what is kept, and what
    /// was scrubbed (for the front end to say).
    fn scrub(&self, objects: Vec<Value>) -> (Vec<Value>, Vec<Scrubbed>) {
        let (kept, done) = ferry_policy::scrub::apply(&self.gate.scrub, objects);
        for s in &done {
            tracing::info!(object = %s.object, mode = ?s.mode, "scrubbed by the policy");
        }
        (kept, done)
    }

    /// Plans the restore of `snap` into the cluster of `client` (`target` is its name):
    /// the snapshot's objects are read and scrubbed first, and the plan is noted in the
    /// audit record. Returns the plan and what was scrubbed.
    async fn plan(
        &mut self,
        client: &kube::Client,
        target: &str,
        snap: &Snapshot,
        meta: &CaptureMeta,
        opts: &PlanOptions,
    ) -> Result<(Plan, Vec<Scrubbed>), JobError> {
        self.note_snapshot(snap);
        let objects = read_objects(&self.repo, snap).await?;
        let (objects, scrubbed) = self.scrub(objects);
        let mut plan = plan::build(client, target, snap, meta, objects, opts).await?;
        plan.choose_data_path(&self.repo, &opts.mover.agent).await;
        self.gate.plan(&plan);
        Ok((plan, scrubbed))
    }

    /// Carries out `plan` in the cluster of `client`; the volume data restored goes
    /// into the audit record. A plan with blocking problems is refused unchanged.
    async fn apply(
        &mut self,
        client: &kube::Client,
        plan: &Plan,
        mover: &MoverOptions,
        progress: &Arc<JobProgress>,
    ) -> Result<Report, JobError> {
        let report = apply::apply(client, &self.repo, plan, mover, progress).await?;
        self.gate.record.bytes += report.bytes_restored;
        Ok(report)
    }

    /// Appends the job's audit record: `Ok(true)` succeeded, `Ok(false)` finished with
    /// failed parts, `Err` failed with that reason. Returns a warning for the user when
    /// the record could not be written.
    async fn finish(self, outcome: Result<bool, String>) -> Option<String> {
        gate::finish(&self.repo, self.gate.record, outcome).await
    }

    /// Records the job as failed at the step `context` (the record's detail is the
    /// context and the whole error chain) and returns the failure for the front end.
    async fn fail(
        self,
        error: JobError,
        context: Option<String>,
        capture: Option<CaptureOutcome>,
    ) -> Failed {
        let detail = match &context {
            Some(c) => format!("{c}: {}", chain(&error)),
            None => chain(&error),
        };
        let unrecorded = if error.is_cancelled() {
            self.cancelled().await
        } else {
            self.finish(Err(detail)).await
        };
        Failed {
            error,
            context,
            capture: capture.map(Box::new),
            unrecorded,
        }
    }

    /// Appends the audit record of a job the user cancelled while it ran.
    async fn cancelled(self) -> Option<String> {
        let mut record = self.gate.record;
        record.outcome = ferry_policy::audit::Outcome::Cancelled;
        record.detail = Some("cancelled by the user while it ran; what it had done stays".into());
        record.time = chrono::Utc::now();
        gate::append(&self.repo, record).await
    }

    /// Appends the audit record of a job whose plan the user did not confirm: nothing
    /// was restored (a move had read its source).
    async fn abandon(self, captured: bool) -> Option<String> {
        let mut record = self.gate.record;
        record.outcome = ferry_policy::audit::Outcome::Abandoned;
        record.detail = Some(
            if captured {
                "captured, but the plan was not confirmed: nothing was restored"
            } else {
                "the plan was not confirmed: nothing was restored"
            }
            .into(),
        );
        record.time = chrono::Utc::now();
        gate::append(&self.repo, record).await
    }
}

/// What a capture saved, in words: objects, volumes, files and sizes.
pub fn capture_summary(out: &CaptureOutcome) -> String {
    let s = &out.snapshot.summary;
    format!(
        "{} objects, {} volume(s), {} files, {} ({} new, {} stored)",
        out.meta.objects,
        out.meta.volumes.len(),
        s.files,
        units::bytes(s.bytes),
        units::bytes(s.bytes_new),
        units::bytes(s.bytes_stored)
    )
}

/// Reads a capture's objects on a blocking thread.
pub async fn read_objects(repo: &Repository, snap: &Snapshot) -> Result<Vec<Value>, JobError> {
    let repo = repo.clone();
    let snap = snap.clone();
    tokio::task::spawn_blocking(move || capture::read_objects(&repo, &snap))
        .await
        .map_err(|e| K8sError::Invalid(format!("reading the snapshot stopped: {e}")))?
        .map_err(JobError::from)
}

/// The cloud envelope of a managed source cluster, for the capture to record; a
/// failure to read it is a warning on `progress` and the capture goes on without it.
async fn envelope(cluster: &LinkedCluster, progress: &JobProgress) -> Option<Value> {
    match cluster.envelope().await {
        Ok(e) => e,
        Err(e) => {
            progress
                .data
                .warn(format!("the capture records no cloud envelope: {e}"));
            None
        }
    }
}

/// A plan without a permit, for `ferry plan`: nothing changes and nothing is recorded
/// (the policy's scrub rules are not known without its check). Returns the plan and,
/// when the policy would refuse to carry it out, why.
pub async fn dry_run(
    repo: &Repository,
    origin: &Place,
    target: &Place,
    client: &kube::Client,
    snap: &Snapshot,
    meta: &CaptureMeta,
    opts: &PlanOptions,
) -> Result<(Plan, Option<String>), JobError> {
    let objects = read_objects(repo, snap).await?;
    let mut plan = plan::build(client, &target.base.cluster, snap, meta, objects, opts).await?;
    plan.choose_data_path(repo, &opts.mover.agent).await;
    let pairs = restore_pairs(restored_namespaces(meta, opts), opts);
    let denied = gate::preview(repo, Action::Restore, Some(origin), Some(target), &pairs).await;
    Ok((plan, denied))
}

//! The jobs both front ends run, the command line and the console alike: a policy
//! check, then capture, scrub, plan, apply, and the audit record at the end.
//!
//! Everything that reads a cluster for a job or changes one goes through a [`Permit`],
//! and only [`authorize`] issues one: it runs the policy gate
//! ([`ferry_policy::gate::check`]: the verified policy, the user's identity on each
//! cluster, a decision per namespace pair) and records a refusal. The permit then
//! captures ([`Permit::capture`]), plans with the policy's scrub rules applied
//! ([`Permit::plan`]), carries a plan out ([`Permit::apply`]) and writes the job's
//! audit record when it ends ([`Permit::finish`], [`Permit::abandon`]). Front ends
//! word what happened (a terminal line, a console message); they never call the
//! engines' capture, plan or apply themselves (`tests/console/layering.rs` checks).
//!
//! [`dry_run`] is the one plan without a permit: it changes nothing and records
//! nothing, and says what the policy would decide.

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
use ferry_repo::Repository;
use ferry_repo::snapshot::Snapshot;

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
/// far. Only [`authorize`] makes one.
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

    /// The repository the job works in.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// Notes the snapshot the job restores or wrote in its audit record.
    pub fn note_snapshot(&mut self, snap: &Snapshot) {
        self.gate.record.snapshot = Some(snap.id.to_hex());
    }

    /// Captures from `client` into the repository (a backup, or the first half of a
    /// migration or clone); the snapshot and its size go into the audit record.
    pub async fn capture(
        &mut self,
        client: &kube::Client,
        opts: &CaptureOptions,
        progress: &Arc<JobProgress>,
    ) -> Result<CaptureOutcome, JobError> {
        let out = capture::capture(client, &self.repo, opts, progress).await?;
        self.note_snapshot(&out.snapshot);
        self.gate.record.bytes += out.snapshot.summary.bytes;
        Ok(out)
    }

    /// The policy's scrub rules applied to captured objects: what is kept, and what
    /// was scrubbed (for the front end to say).
    pub fn scrub(&self, objects: Vec<Value>) -> (Vec<Value>, Vec<Scrubbed>) {
        let (kept, done) = ferry_policy::scrub::apply(&self.gate.scrub, objects);
        for s in &done {
            tracing::info!(object = %s.object, mode = ?s.mode, "scrubbed by the policy");
        }
        (kept, done)
    }

    /// Plans the restore of `snap` into the cluster of `client` (`target` is its name):
    /// the snapshot's objects are read and scrubbed first, and the plan is noted in the
    /// audit record. Returns the plan and what was scrubbed.
    pub async fn plan(
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
        let plan = plan::build(client, target, snap, meta, &objects, opts).await?;
        self.gate.plan(&plan);
        Ok((plan, scrubbed))
    }

    /// Carries out `plan` in the cluster of `client`; the volume data restored goes
    /// into the audit record. A plan with blocking problems is refused unchanged.
    pub async fn apply(
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
    pub async fn finish(self, outcome: Result<bool, String>) -> Option<String> {
        gate::finish(&self.repo, self.gate.record, outcome).await
    }

    /// Appends the audit record of a job that captured but whose plan the user did not
    /// confirm: data was read from the source, nothing was restored.
    pub async fn abandon(self) -> Option<String> {
        let mut record = self.gate.record;
        record.outcome = ferry_policy::audit::Outcome::Abandoned;
        record.detail =
            Some("captured, but the plan was not confirmed: nothing was restored".into());
        record.time = chrono::Utc::now();
        gate::append(&self.repo, record).await
    }
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
    let plan = plan::build(client, &target.base.cluster, snap, meta, &objects, opts).await?;
    let pairs = restore_pairs(restored_namespaces(meta, opts), opts);
    let denied = gate::preview(repo, Action::Restore, Some(origin), Some(target), &pairs).await;
    Ok((plan, denied))
}

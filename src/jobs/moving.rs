//! The jobs that move workloads: a backup of a cluster, a restore of a capture, a
//! migrate or clone (staged: checked and planned, then carried out), and the removal of
//! captures. Each runs the policy gate first and writes its audit record however it
//! ends.

use std::sync::Arc;

use ferry_k8s::apply::Report;
use ferry_k8s::capture::{CaptureMeta, CaptureOptions, CaptureOutcome};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{Plan, PlanOptions};
use ferry_k8s::{JobProgress, K8sError};
use ferry_policy::Action;
use ferry_policy::gate::Place;
use ferry_policy::scrub::Scrubbed;
use ferry_repo::snapshot::Snapshot;
use ferry_repo::{Id, Repository};

use crate::{Endpoint, Failed, JobError, Permit, authorize, restore_pairs, restored_namespaces};

/// What a backup of a cluster saved.
#[derive(Debug)]
pub struct Captured {
    /// The snapshot, its capture metadata and the capture's warnings.
    pub capture: CaptureOutcome,
    /// Why the policy allowed the backup (`None`: the repository has no policy).
    pub allowed: Option<String>,
    /// Why the audit record could not be written, when it could not.
    pub unrecorded: Option<String>,
}

/// Backs up `opts`' scope of `source` into the repository: the policy's check (nothing
/// is read when it refuses), the capture with the cluster's cloud envelope, and the
/// audit record (a capture with warnings is recorded as partial).
pub async fn backup(
    repo: &Repository,
    source: &Endpoint,
    mut opts: CaptureOptions,
    progress: &Arc<JobProgress>,
) -> Result<Captured, Failed> {
    let pairs: Vec<_> = opts
        .scope
        .namespaces()
        .into_iter()
        .map(|n| (Some(n), None))
        .collect();
    let mut permit = authorize(repo, Action::Backup, Some(&source.place()), None, &pairs).await?;
    let allowed = permit.allowed();
    opts.envelope = crate::envelope(&source.cluster, progress).await;
    opts.server = Some(source.cluster.server.clone());
    match permit.capture(&source.client, &opts, progress).await {
        Ok(capture) => {
            let unrecorded = permit.finish(Ok(capture.warnings.is_empty())).await;
            Ok(Captured {
                capture,
                allowed,
                unrecorded,
            })
        }
        Err(e) => {
            let context = format!("backup from {} failed", source.cluster.name);
            Err(permit.fail(e, Some(context), None).await)
        }
    }
}

/// A capture in the repository to restore, and where it was taken.
#[derive(Debug, Clone)]
pub struct RestoreJob {
    /// The capture.
    pub snapshot: Snapshot,
    /// Its capture metadata.
    pub meta: CaptureMeta,
    /// The cluster it was taken from, as the policy sees it.
    pub origin: Place,
    /// How the restore maps and transforms (the mover included).
    pub options: PlanOptions,
}

/// A live selection to capture and restore into another cluster (or another namespace
/// of the same one).
#[derive(Debug, Clone)]
pub struct MoveJob {
    /// Migrate or clone, as the policy decides it.
    pub action: Action,
    /// What to capture from the source (the envelope is read by the job).
    pub capture: CaptureOptions,
    /// How the restore maps and transforms (the mover included).
    pub options: PlanOptions,
}

/// A restore or move the policy allowed and whose plan is built: nothing has changed
/// on the target yet. Show [`Staged::plan`], then [`Staged::run`] it, or end it
/// unconfirmed with [`Staged::decline`] or [`Staged::abandon`]: each writes the audit
/// record.
#[derive(Debug, Clone)]
pub struct Staged {
    permit: Permit,
    target: Endpoint,
    plan: Plan,
    mover: MoverOptions,
    scrubbed: Vec<Scrubbed>,
    capture: Option<Arc<CaptureOutcome>>,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Each object's and volume's outcome (for the front end to show and save).
    pub report: Report,
    /// Why the audit record could not be written, when it could not.
    pub unrecorded: Option<String>,
}

/// Checks the policy for restoring `job`'s capture into `target` (nothing is read when
/// it refuses), then reads and scrubs the capture's objects and plans the restore.
pub async fn stage_restore(
    repo: &Repository,
    target: &Endpoint,
    job: RestoreJob,
) -> Result<Staged, Failed> {
    let RestoreJob {
        snapshot,
        meta,
        origin,
        options,
    } = job;
    let pairs = restore_pairs(restored_namespaces(&meta, &options), &options);
    let mut permit = authorize(
        repo,
        Action::Restore,
        Some(&origin),
        Some(&target.place()),
        &pairs,
    )
    .await?;
    permit.note_snapshot(&snapshot);
    stage(permit, target, &snapshot, &meta, options, None).await
}

/// Checks the policy for `job` from `source` into `target` (nothing is captured when it
/// refuses), captures the source with its cloud envelope, then reads and scrubs the
/// capture's objects and plans the restore. A failure after the capture returns it in
/// [`Failed::capture`].
pub async fn stage_move(
    repo: &Repository,
    source: &Endpoint,
    target: &Endpoint,
    job: MoveJob,
    progress: &Arc<JobProgress>,
) -> Result<Staged, Failed> {
    let MoveJob {
        action,
        mut capture,
        options,
    } = job;
    let pairs = restore_pairs(&capture.scope.namespaces(), &options);
    let mut permit = authorize(
        repo,
        action,
        Some(&source.place()),
        Some(&target.place()),
        &pairs,
    )
    .await?;
    capture.envelope = crate::envelope(&source.cluster, progress).await;
    capture.server = Some(source.cluster.server.clone());
    let out = match permit.capture(&source.client, &capture, progress).await {
        Ok(o) => o,
        Err(e) => {
            let context = format!("capture from {} failed", source.cluster.name);
            return Err(permit.fail(e, Some(context), None).await);
        }
    };
    progress.set_phase("planning the restore");
    let (snapshot, meta) = (out.snapshot.clone(), out.meta.clone());
    stage(permit, target, &snapshot, &meta, options, Some(out)).await
}

/// Plans the restore of `snapshot` into `target` under `permit`; a failure is recorded.
async fn stage(
    mut permit: Permit,
    target: &Endpoint,
    snapshot: &Snapshot,
    meta: &CaptureMeta,
    options: PlanOptions,
    capture: Option<CaptureOutcome>,
) -> Result<Staged, Failed> {
    let planned = permit
        .plan(
            &target.client,
            &target.cluster.name,
            snapshot,
            meta,
            &options,
        )
        .await;
    match planned {
        Ok((plan, scrubbed)) => Ok(Staged {
            permit,
            target: target.clone(),
            plan,
            mover: options.mover,
            scrubbed,
            capture: capture.map(Arc::new),
        }),
        Err(e) => {
            let context = format!("cannot plan the restore into {}", target.cluster.name);
            Err(permit.fail(e, Some(context), capture).await)
        }
    }
}

impl Staged {
    /// The plan: what the restore would create, update and skip, and its problems.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// What the policy's scrub rules took out of the objects to restore.
    pub fn scrubbed(&self) -> &[Scrubbed] {
        &self.scrubbed
    }

    /// The capture a move took (`None` for a restore of a capture).
    pub fn capture(&self) -> Option<&CaptureOutcome> {
        self.capture.as_deref()
    }

    /// Why the policy allowed the job (`None`: the repository has no policy).
    pub fn allowed(&self) -> Option<String> {
        self.permit.allowed()
    }

    /// Carries the plan out (refusing it unchanged when it has blocking problems,
    /// [`JobError::Blocked`]) and writes the audit record (partial when parts failed).
    pub async fn run(self, progress: &Arc<JobProgress>) -> Result<Restored, Failed> {
        let Staged {
            mut permit,
            target,
            plan,
            mover,
            capture,
            ..
        } = self;
        if plan.blocking() > 0 {
            let error = JobError::Blocked {
                problems: plan
                    .problems
                    .iter()
                    .filter(|p| p.blocking)
                    .map(|p| p.message.clone())
                    .collect(),
                target: target.cluster.name.clone(),
                capture: capture.as_ref().map(|c| c.snapshot.id.short()),
            };
            return Err(permit.fail(error, None, None).await);
        }
        match permit.apply(&target.client, &plan, &mover, progress).await {
            Ok(report) => {
                let unrecorded = permit.finish(Ok(report.failed().is_empty())).await;
                Ok(Restored { report, unrecorded })
            }
            Err(e) => {
                let context = format!("restore into {} failed", target.cluster.name);
                Err(permit.fail(e, Some(context), None).await)
            }
        }
    }

    /// Ends the job unconfirmed, recorded as abandoned: nothing was restored. Returns
    /// why the record could not be written, when it could not.
    pub async fn abandon(self) -> Option<String> {
        let captured = self.capture.is_some();
        self.permit.abandon(captured).await
    }

    /// Ends the job without carrying the plan out, recorded as failed with `why` (the
    /// user said no, or could not be asked). Returns why the record could not be
    /// written, when it could not.
    pub async fn decline(self, why: String) -> Option<String> {
        self.permit.finish(Err(why)).await
    }
}

/// The captures of one cluster a removal takes, checked as one `delete-snapshots` job.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The cluster the captures came from.
    pub from: Place,
    /// Their namespaces (none: the cluster as a whole).
    pub namespaces: Vec<String>,
}

/// What a removal of snapshots did.
#[derive(Debug)]
pub struct Deleted {
    /// Why the policy allowed each cluster's part (none without a policy).
    pub allowed: Vec<String>,
    /// Audit records that could not be written, and why.
    pub unrecorded: Vec<String>,
}

/// Removes the snapshots `ids`: first the policy's `delete-snapshots` check for each
/// cluster whose captures are among them (the first refusal stops the job before
/// anything is removed), then the removal, recorded once per cluster.
pub async fn delete_snapshots(
    repo: &Repository,
    removals: &[Removal],
    ids: Vec<Id>,
) -> Result<Deleted, Failed> {
    let mut permits = Vec::new();
    for r in removals {
        let pairs: Vec<_> = if r.namespaces.is_empty() {
            vec![(None, None)]
        } else {
            r.namespaces
                .iter()
                .map(|n| (Some(n.clone()), None))
                .collect()
        };
        permits.push(authorize(repo, Action::DeleteSnapshots, Some(&r.from), None, &pairs).await?);
    }
    let allowed = permits.iter().filter_map(Permit::allowed).collect();
    let repo2 = repo.clone();
    let removed =
        match tokio::task::spawn_blocking(move || ferry_repo::forget::forget_ids(&repo2, &ids))
            .await
        {
            Ok(r) => r.map_err(JobError::from),
            Err(e) => Err(JobError::from(K8sError::Invalid(format!(
                "removing the snapshots stopped: {e}"
            )))),
        };
    let outcome = match &removed {
        Ok(()) => Ok(true),
        Err(e) => Err(e.to_string()),
    };
    let mut unrecorded = Vec::new();
    for p in permits {
        unrecorded.extend(p.finish(outcome.clone()).await);
    }
    match removed {
        Ok(()) => Ok(Deleted {
            allowed,
            unrecorded,
        }),
        Err(error) => Err(Failed {
            error,
            context: None,
            capture: None,
            unrecorded: (!unrecorded.is_empty()).then(|| unrecorded.join("; ")),
        }),
    }
}

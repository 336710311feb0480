//! A new managed cluster as a restore target, then the restore or move into it: one
//! job. The cloud call itself is `create_cluster`, the one place that asks a cloud
//! ([`ferry_providers::cloud::ClusterRequest`]) to create a cluster.

use std::sync::Arc;

use ferry_k8s::JobProgress;
use ferry_k8s::capture::{CaptureMeta, CaptureOptions, CaptureOutcome};
use ferry_k8s::plan::PlanOptions;
use ferry_policy::Action;
use ferry_policy::gate::Place;
use ferry_providers::cloud::{ClusterRequest, CreateEvent};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_repo::Repository;
use ferry_repo::snapshot::Snapshot;

use crate::moving::{MoveJob, RestoreJob, Restored, stage_move, stage_restore};
use crate::{Endpoint, Failed, JobError};

/// A cluster to create, of any cloud: its own spec, the account and place it goes to,
/// and the source's version (the floor for the new one's).
pub type NewCluster = Box<dyn ClusterRequest>;

/// What goes into a new cluster once it exists.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A capture in the repository, taken at `origin`: checked as a restore.
    Snapshot {
        /// The capture.
        snapshot: Box<Snapshot>,
        /// Its capture metadata.
        meta: Box<CaptureMeta>,
        /// The cluster it was taken from, as the policy sees it.
        origin: Box<Place>,
    },
    /// A live selection of `source`, checked as `action` (migrate or clone) and
    /// captured only then.
    Live {
        /// The source cluster.
        source: Box<LinkedCluster>,
        /// What to capture from it.
        capture: Box<CaptureOptions>,
        /// Migrate or clone.
        action: Action,
    },
}

/// A cluster to create and what to restore into it.
#[derive(Debug)]
pub struct CreateAndRestore {
    /// The cluster to create.
    pub cluster: NewCluster,
    /// What goes into it.
    pub payload: Payload,
    /// How the restore maps and transforms (the mover included).
    pub options: PlanOptions,
    /// How the user starts a creation that failed half-way again (the provider reuses
    /// what exists), for the creation's error.
    pub again: String,
}

/// Creates the cluster (its progress in `progress`' phase and log) and calls `created`
/// with it once it exists, then checks the policy, captures a live source, plans the
/// restore into the new cluster (a plan with blocking problems is refused) and carries
/// it out, with the audit record written however it ends once the policy allowed it.
/// The error is [`JobError::Create`] when the cluster was not created; any other error
/// leaves the new cluster behind.
pub async fn create_and_restore(
    repo: &Repository,
    job: CreateAndRestore,
    progress: &Arc<JobProgress>,
    created: impl FnOnce(&LinkedCluster) + Send,
) -> Result<Restored, Failed> {
    let CreateAndRestore {
        cluster,
        payload,
        options,
        again,
    } = job;
    let target = create_cluster(cluster.as_ref(), &again, progress).await?;
    created(&target);
    progress.set_phase("checking the policy");
    let target = Endpoint::connect(target).await?;
    let staged = match payload {
        Payload::Snapshot {
            snapshot,
            meta,
            origin,
        } => {
            let job = RestoreJob {
                snapshot: *snapshot,
                meta: *meta,
                origin: *origin,
                options,
            };
            stage_restore(repo, &target, job).await?
        }
        Payload::Live {
            source,
            capture,
            action,
        } => {
            let source = Endpoint::connect(*source).await?;
            let job = MoveJob {
                action,
                capture: *capture,
                options,
            };
            match stage_move(repo, &source, &target, job, progress).await {
                Ok(s) => {
                    if let Some(out) = s.capture() {
                        log_capture(progress, out);
                    }
                    s
                }
                Err(f) => {
                    if let Some(out) = &f.capture {
                        log_capture(progress, out);
                    }
                    return Err(f);
                }
            }
        }
    };
    if staged.plan().blocking() == 0 {
        for l in staged.plan().render_text().lines() {
            progress.log(l.to_string());
        }
    }
    staged.run(progress).await
}

/// What a move's capture saved, into the job's log.
fn log_capture(progress: &JobProgress, out: &CaptureOutcome) {
    progress.log(format!(
        "captured snapshot {}: {}",
        out.snapshot.id.short(),
        crate::capture_summary(out)
    ));
    for w in &out.warnings {
        progress.log(format!("warning: {w}"));
    }
}

/// Creation events into the job's phase and log (the same for every cloud).
fn into_progress(progress: &Arc<JobProgress>) -> impl Fn(CreateEvent) + Send + Sync + use<> {
    let p = progress.clone();
    move |e: CreateEvent| match e {
        CreateEvent::Step(s) => {
            p.set_phase(&s);
            p.log(s);
        }
        CreateEvent::Status { what, status } => {
            p.set_phase(format!("{what}: {status}"));
            p.log(format!("{what}: {status}"));
        }
        CreateEvent::Ready(what) => p.log(format!("{what} is ready")),
    }
}

/// Creates `new` with its cloud's API and links it; `again` says how to start a
/// creation that failed half-way again. The one call into the providers' creation.
async fn create_cluster(
    new: &dyn ClusterRequest,
    again: &str,
    progress: &Arc<JobProgress>,
) -> Result<LinkedCluster, JobError> {
    progress.set_phase("creating the cluster");
    let events = into_progress(progress);
    let created = new.create(&events).await.map_err(|e| {
        JobError::Create(format!(
            "cannot create the {} cluster {}: {}",
            new.kind(),
            new.name(),
            e.explain(again)
        ))
    })?;
    progress.log(created.ready);
    Ok(created.cluster)
}

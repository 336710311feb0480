//! A restore's volumes filled by in-cluster agents (`agent.rs`): each reads its
//! folder from the repository and writes it into the target claim, several at once.

use std::sync::Arc;

use futures::StreamExt as _;

use super::mark_restored;
use crate::agent::{self, AgentAccess, Volume, Work};
use crate::lease::JobLease;
use crate::mover::MoverOptions;
use crate::placement::NodeSlots;
use crate::plan::{Plan, VolumePlan};
use crate::{JobProgress, K8sError, Result};
use ferry_repo::agent::AgentLine;

/// Fills `due`'s claims through agents, at most `per_job` at once; each claim's
/// outcome (bytes restored) in the order given.
pub(super) async fn restore<'p>(
    client: &kube::Client,
    access: &AgentAccess,
    plan: &Plan,
    due: Vec<&'p VolumePlan>,
    opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
) -> Vec<(&'p VolumePlan, Result<u64>)> {
    let per_job = opts.agent.per_job.max(1);
    let sharing = per_job.min(due.len()).max(1);
    // By position: a stream of borrowed items is not provably `Send` to the compiler
    // (rust-lang/rust#110338), one that borrows them is.
    let due = &due;
    let namespaces: std::collections::HashSet<Option<&str>> =
        due.iter().map(|v| v.target.namespace.as_deref()).collect();
    let slots = &NodeSlots::new(opts.agent.per_node, namespaces.len() > 1);
    let mut out: Vec<(usize, Result<u64>)> = futures::stream::iter(0..due.len())
        .map(|n| async move {
            let r = one(
                client, access, plan, due[n], opts, lease, progress, sharing, slots,
            )
            .await;
            (n, r)
        })
        .buffer_unordered(per_job)
        .collect()
        .await;
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(n, r)| (due[n], r)).collect()
}

#[allow(clippy::too_many_arguments)]
async fn one(
    client: &kube::Client,
    access: &AgentAccess,
    plan: &Plan,
    v: &VolumePlan,
    opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
    sharing: usize,
    slots: &NodeSlots,
) -> Result<u64> {
    progress.check()?;
    let ns = v.target.namespace.clone().unwrap_or_default();
    let tree = v.stored_tree()?;
    progress.volume(&ns, &v.target.name, |s| {
        s.files_total = v.files;
        s.bytes_total = v.bytes;
    });
    if let Some(other) =
        crate::lease::writer_of(client, &ns, &v.target.name, lease.id(), opts.stall_timeout).await
    {
        return Err(K8sError::Volume {
            pvc: v.target.to_string(),
            detail: format!(
                "another Ferry job ({other}) is writing to this claim right now: wait until it ends, or cancel it, then run this job again"
            ),
        });
    }
    // The user (where Pod Security refuses root) and placement of the workload
    // restored with the claim, else of the pods using it now.
    let (user, placement) =
        crate::apply::workload_fit(client, plan, &ns, &v.target.name, opts, progress).await;
    // At most `per_node` of the job's agents on a node.
    let held = slots.take();
    let job = Volume {
        namespace: &ns,
        claim: &v.target.name,
        shown: &v.target.name,
        node: None,
        work: Work::Restore { tree },
        sharing,
        user: user.as_ref(),
        placement: &placement,
        slot: Some(&held),
    };
    let ran = agent::run(client, access, &job, &opts.agent, lease, progress).await;
    drop(held);
    let bytes = match ran? {
        AgentLine::Restored { bytes, .. } => bytes,
        _ => {
            return Err(K8sError::Volume {
                pvc: v.target.to_string(),
                detail: "the agent answered a restore with another report".into(),
            });
        }
    };
    mark_restored(client, plan, v, tree, opts, progress, bytes).await?;
    Ok(bytes)
}

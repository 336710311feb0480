//! A capture's volumes read by in-cluster agents (`agent.rs`): each claim (or a claim
//! made from its CSI snapshot) is stored into the repository by an agent next to it,
//! several at once, and the folder the agent stored is grafted into the snapshot at
//! `volumes/<ns>/<pvc>`. Nothing of the data passes through this machine.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;

use super::VolumeRecord;
use super::volumes::{delete_snapshot_claim, record_of, snapshot_claim};
use super::writer::{Cmd, Writer};
use crate::agent::{self, AgentAccess, Volume, Work};
use crate::lease::JobLease;
use crate::mover::MoverOptions;
use crate::objects::ObjRef;
use crate::placement::NodeSlots;
use crate::{JobProgress, K8sError, Result, VOLUMES_DIR};
use ferry_repo::Id;
use ferry_repo::agent::AgentLine;

/// One claim to read: the claim, its snapshot class (when the driver has one), and the
/// tree of its copy in the parent snapshot.
pub(super) struct Claim {
    pub(super) pvc: Value,
    pub(super) snapshot_class: Option<String>,
    pub(super) parent: Option<Id>,
    pub(super) driver: Option<String>,
}

/// A claim's record and its warnings, or why it failed.
type Captured = Result<(VolumeRecord, Vec<String>)>;

/// Reads `claims` through agents, at most `per_job` at once and `per_node` on one
/// node; each claim's outcome in the order given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn capture(
    client: &kube::Client,
    writer: &Writer,
    access: &AgentAccess,
    claims: Vec<Claim>,
    opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
) -> Vec<(ObjRef, Captured)> {
    let per_job = opts.agent.per_job.max(1);
    let sharing = per_job.min(claims.len()).max(1);
    let namespaces: HashSet<&str> = claims
        .iter()
        .filter_map(|c| c.pvc["metadata"]["namespace"].as_str())
        .collect();
    let slots = &NodeSlots::new(opts.agent.per_node, namespaces.len() > 1);
    // By position (see `apply/agents.rs`).
    let claims = &claims;
    let mut out: Vec<(usize, Captured)> = futures::stream::iter(0..claims.len())
        .map(|n| async move {
            let res = one(
                client, writer, access, &claims[n], opts, lease, progress, sharing, slots,
            )
            .await;
            (n, res)
        })
        .buffer_unordered(per_job)
        .collect()
        .await;
    out.sort_by_key(|(n, _)| *n);
    out.into_iter()
        .map(|(n, res)| (ObjRef::of(&claims[n].pvc), res))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn one(
    client: &kube::Client,
    writer: &Writer,
    access: &AgentAccess,
    c: &Claim,
    opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
    sharing: usize,
    slots: &NodeSlots,
) -> Captured {
    progress.check()?;
    let r = ObjRef::of(&c.pvc);
    let ns = r.namespace.clone().unwrap_or_default();
    let mut rec = record_of(&c.pvc);
    rec.driver = c.driver.clone();
    let mut warnings = Vec::new();
    let mut temp: Option<(String, String)> = None;
    if let Some(class) = &c.snapshot_class {
        progress.volume(&ns, &r.name, |s| s.state = "snapshotting".into());
        match snapshot_claim(client, &c.pvc, class, lease, progress).await {
            Ok(t) => {
                rec.consistency = "snapshot".into();
                temp = Some(t);
            }
            Err(e) if e.is_cancelled() => return Err(K8sError::Cancelled),
            Err(e) => warnings.push(format!("{r}: {e}; reading the live volume instead")),
        }
    }
    // The pods using the claim: the node of a ReadWriteOnce claim, and the user an
    // agent runs as where Pod Security refuses root.
    let holders = crate::mover::holders(client, &ns, &r.name).await;
    let (claim, node) = match &temp {
        Some((claim, _)) => (claim.clone(), None),
        None => {
            progress.log(format!("{r}: reading the live volume (no CSI snapshot class for its driver): files changing during the read may be inconsistent"));
            let rwo = rec
                .access_modes
                .iter()
                .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod");
            (r.name.clone(), holders.node.clone().filter(|_| rwo))
        }
    };
    // A slot: at most `per_node` of the job's agents on a node, pinned or not.
    let held = match &node {
        Some(n) => loop {
            if let Some(s) = slots.take_on(n) {
                break s;
            }
            progress.volume(&ns, &r.name, |s| {
                s.state = format!("waiting for a slot on {n}")
            });
            progress.check()?;
            slots.wait_freed(Duration::from_millis(500)).await;
        },
        None => slots.take(),
    };
    let placement = holders.placement.tolerating(&opts.tolerations);
    let v = Volume {
        namespace: &ns,
        claim: &claim,
        shown: &r.name,
        node: node.as_deref(),
        work: Work::Backup {
            parent: c.parent,
            from_copy: temp.is_some(),
        },
        sharing,
        user: holders.user.as_ref(),
        placement: &placement,
        slot: Some(&held),
    };
    let ran = agent::run(client, access, &v, &opts.agent, lease, progress).await;
    drop(held);
    if let Some((claim, snap)) = &temp {
        delete_snapshot_claim(client, &ns, claim, snap).await;
    }
    let AgentLine::Stored {
        root,
        files,
        bytes,
        files_read,
        bytes_new,
        bytes_stored,
        ..
    } = ran?
    else {
        return Err(K8sError::Volume {
            pvc: r.to_string(),
            detail: "the agent answered a backup with another report".into(),
        });
    };
    writer.send(Cmd::Graft {
        path: format!("{VOLUMES_DIR}/{ns}/{}", r.name).into_bytes(),
        node: *root,
    })?;
    progress.data.add_new(bytes_new, bytes_stored);
    rec.files = files;
    rec.bytes = bytes;
    rec.files_transferred = files_read;
    progress.volume(&ns, &r.name, |s| {
        s.state = "done".into();
        s.files = files;
        s.bytes = bytes;
        s.files_total = files;
        s.bytes_total = bytes;
    });
    Ok((rec, warnings))
}

//! The console's background work: each function spawns a tokio task (disk work inside
//! it on a blocking thread) that sends its result to the app as a [`Msg`]. Nothing here
//! touches the terminal or the app's state.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::runtime::Handle;

use crate::engine::Repository;
use crate::engine::k8s::JobProgress;
use crate::engine::k8s::apply;
use crate::engine::k8s::capture::{self, CaptureMeta, CaptureOptions};
use crate::engine::k8s::mover::MoverOptions;
use crate::engine::k8s::objects::{self, Catalog};
use crate::engine::k8s::plan::{self, Plan, RestoreOptions};
use crate::engine::snapshot::{self, Snapshot};
use crate::providers::kubeconfig::LinkedCluster;
use crate::providers::probe;
use crate::ui::app::{JobEnd, Msg, NsSummary};
use crate::ui::format;

/// A plan ready to be confirmed, with what it was built from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub snapshot: Snapshot,
    pub meta: CaptureMeta,
    pub plan: Plan,
}

fn send(tx: &Sender<Msg>, m: Msg) {
    // The app has quit when the receiver is gone: nothing to tell.
    let _ = tx.send(m);
}

pub fn probe(rt: &Handle, tx: &Sender<Msg>, cluster: LinkedCluster) {
    let tx = tx.clone();
    rt.spawn(async move {
        let p = probe::probe(&cluster).await;
        send(&tx, Msg::Probe(cluster.name.clone(), p.facts));
    });
}

async fn client(cluster: &LinkedCluster) -> Result<kube::Client, String> {
    cluster.client().await.map_err(|e| e.to_string())
}

fn requested(c: &PersistentVolumeClaim) -> u64 {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| plan::parse_quantity(&q.0))
        .unwrap_or(0)
}

async fn list_namespaces(cluster: &LinkedCluster) -> Result<Vec<NsSummary>, String> {
    let client = client(cluster).await?;
    let lp = ListParams::default();
    let nss = Api::<Namespace>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| {
            format!(
                "cannot list the namespaces of {}: {}. Open one directly with :ns NAME",
                cluster.name,
                probe::explain(&e)
            )
        })?;
    let (a1, a2, a3, a4, a5) = (
        Api::<PersistentVolumeClaim>::all(client.clone()),
        Api::<Pod>::all(client.clone()),
        Api::<Deployment>::all(client.clone()),
        Api::<StatefulSet>::all(client.clone()),
        Api::<DaemonSet>::all(client.clone()),
    );
    let (pvcs, pods, deps, sts, dss) = tokio::join!(
        a1.list(&lp),
        a2.list(&lp),
        a3.list(&lp),
        a4.list(&lp),
        a5.list(&lp),
    );
    let ns_of = |m: &kube::api::ObjectMeta| m.namespace.clone().unwrap_or_default();
    let mut out: Vec<NsSummary> = nss
        .items
        .into_iter()
        .map(|n| NsSummary {
            name: n.metadata.name.unwrap_or_default(),
            status: n.status.and_then(|s| s.phase).unwrap_or_default(),
            ..NsSummary::default()
        })
        .collect();
    let bump = |out: &mut Vec<NsSummary>, ns: String, f: &dyn Fn(&mut NsSummary)| {
        if let Some(s) = out.iter_mut().find(|s| s.name == ns) {
            f(s);
        }
    };
    for c in pvcs.map(|l| l.items).unwrap_or_default() {
        let r = requested(&c);
        bump(&mut out, ns_of(&c.metadata), &|s| {
            s.pvcs += 1;
            s.requested += r;
        });
    }
    for p in pods.map(|l| l.items).unwrap_or_default() {
        bump(&mut out, ns_of(&p.metadata), &|s| s.pods += 1);
    }
    for m in deps
        .map(|l| l.items.into_iter().map(|d| d.metadata).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(
            sts.map(|l| l.items.into_iter().map(|d| d.metadata).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .chain(
            dss.map(|l| l.items.into_iter().map(|d| d.metadata).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
    {
        bump(&mut out, ns_of(&m), &|s| s.workloads += 1);
    }
    Ok(out)
}

pub fn namespaces(rt: &Handle, tx: &Sender<Msg>, cluster: LinkedCluster) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = list_namespaces(&cluster).await;
        send(&tx, Msg::Namespaces(cluster.name.clone(), r));
    });
}

/// Every object of a namespace (as `ferry workloads` lists them), Events left out.
async fn namespace_objects(cluster: &LinkedCluster, ns: &str) -> Result<Vec<Value>, String> {
    let client = client(cluster).await?;
    let catalog = Catalog::discover(&client)
        .await
        .map_err(|e| format!("cannot discover the types of {}: {e}", cluster.name))?;
    let mut all = Vec::new();
    for r in catalog
        .resources
        .iter()
        .filter(|r| r.namespaced && r.listable && r.ar.kind != "Event")
    {
        if let Ok(items) = objects::list_all(&client, r, Some(ns), None).await {
            all.extend(items);
        }
    }
    Ok(all)
}

pub fn ns_objects(rt: &Handle, tx: &Sender<Msg>, cluster: LinkedCluster, ns: String) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = namespace_objects(&cluster, &ns).await;
        send(&tx, Msg::NsObjects(cluster.name.clone(), ns, r));
    });
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error: {e}"))?
}

pub fn snapshots(rt: &Handle, tx: &Sender<Msg>, repo: Result<Repository, String>) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = match repo {
            Ok(repo) => {
                blocking(move || {
                    snapshot::list(&repo)
                        .map(|(all, _)| {
                            let mut all = all;
                            all.reverse();
                            all
                        })
                        .map_err(|e| format!("cannot list the snapshots: {e}"))
                })
                .await
            }
            Err(e) => Err(e),
        };
        send(&tx, Msg::Snapshots(r));
    });
}

pub fn snapshot_objects(
    rt: &Handle,
    tx: &Sender<Msg>,
    repo: Result<Repository, String>,
    snap: Snapshot,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let id = snap.id.to_hex();
        let r = match repo {
            Ok(repo) => {
                blocking(move || {
                    capture::read_objects(&repo, &snap)
                        .map_err(|e| format!("cannot read the snapshot's objects: {e}"))
                })
                .await
            }
            Err(e) => Err(e),
        };
        send(&tx, Msg::SnapshotObjects(id, r));
    });
}

fn ended(r: Result<JobEnd, String>, progress: &JobProgress) -> JobEnd {
    match r {
        Ok(e) => e,
        Err(_) if progress.data.is_cancelled() => JobEnd::Cancelled,
        Err(e) => {
            progress.log(format!("failed: {e}"));
            JobEnd::Failed(e)
        }
    }
}

fn captured(out: &capture::CaptureOutcome) -> JobEnd {
    let s = &out.snapshot.summary;
    JobEnd::Captured {
        snapshot: out.snapshot.id.short(),
        summary: format!(
            "{} objects, {} volume(s), {} files, {} ({} new, {} stored)",
            out.meta.objects,
            out.meta.volumes.len(),
            s.files,
            format::bytes(s.bytes),
            format::bytes(s.bytes_new),
            format::bytes(s.bytes_stored)
        ),
        warnings: out.warnings.clone(),
    }
}

/// The cloud envelope of a managed source cluster, for the capture to record; a failure
/// to read it is logged and the capture goes on without it.
async fn envelope(cluster: &LinkedCluster) -> Option<serde_json::Value> {
    match cluster.envelope().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(cluster = %cluster.name, "no envelope recorded: {e}");
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn backup(
    rt: &Handle,
    tx: &Sender<Msg>,
    id: usize,
    cluster: LinkedCluster,
    repo: Repository,
    mut opts: CaptureOptions,
    progress: Arc<JobProgress>,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = async {
            let client = client(&cluster).await?;
            opts.envelope = envelope(&cluster).await;
            let out = capture::capture(&client, &repo, &opts, &progress)
                .await
                .map_err(|e| format!("backup from {} failed: {e}", cluster.name))?;
            Ok(captured(&out))
        }
        .await;
        send(&tx, Msg::JobDone(id, ended(r, &progress)));
    });
}

/// Which storage classes the claims of a live source use.
pub fn live_classes(
    rt: &Handle,
    tx: &Sender<Msg>,
    generation: u64,
    cluster: LinkedCluster,
    namespaces: Vec<String>,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = async {
            let client = client(&cluster).await?;
            let mut classes = Vec::new();
            for ns in &namespaces {
                let l = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| {
                        format!("cannot list the claims of {ns}: {}", probe::explain(&e))
                    })?;
                classes.extend(
                    l.items
                        .into_iter()
                        .filter_map(|c| c.spec.and_then(|s| s.storage_class_name)),
                );
            }
            classes.sort();
            classes.dedup();
            Ok(classes)
        }
        .await;
        send(&tx, Msg::WizardClasses(generation, r));
    });
}

async fn read(repo: &Repository, snap: &Snapshot) -> Result<Vec<Value>, String> {
    let (repo, snap) = (repo.clone(), snap.clone());
    blocking(move || {
        capture::read_objects(&repo, &snap).map_err(|e| format!("cannot read the snapshot: {e}"))
    })
    .await
}

#[allow(clippy::too_many_arguments)]
pub fn plan_snapshot(
    rt: &Handle,
    tx: &Sender<Msg>,
    generation: u64,
    repo: Repository,
    target: LinkedCluster,
    snap: Snapshot,
    meta: CaptureMeta,
    opts: RestoreOptions,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = async {
            let objects = read(&repo, &snap).await?;
            let client = client(&target).await?;
            let plan = plan::build(&client, &target.name, &snap, &meta, &objects, &opts)
                .await
                .map_err(|e| format!("cannot plan the restore into {}: {e}", target.name))?;
            Ok(Box::new(Prepared {
                snapshot: snap,
                meta,
                plan,
            }))
        }
        .await;
        send(&tx, Msg::Plan(generation, r));
    });
}

/// Captures a live selection (a job of its own), then plans its restore.
#[allow(clippy::too_many_arguments)]
pub fn plan_live(
    rt: &Handle,
    tx: &Sender<Msg>,
    generation: u64,
    job: usize,
    repo: Repository,
    source: LinkedCluster,
    target: LinkedCluster,
    mut copts: CaptureOptions,
    ropts: RestoreOptions,
    progress: Arc<JobProgress>,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let out = async {
            let client = client(&source).await?;
            copts.envelope = envelope(&source).await;
            capture::capture(&client, &repo, &copts, &progress)
                .await
                .map_err(|e| format!("capture from {} failed: {e}", source.name))
        }
        .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let end = ended(Err(e.clone()), &progress);
                send(&tx, Msg::JobDone(job, end));
                send(&tx, Msg::Plan(generation, Err(e)));
                return;
            }
        };
        send(&tx, Msg::JobDone(job, captured(&out)));
        let r = async {
            let objects = read(&repo, &out.snapshot).await?;
            let client = client(&target).await?;
            let plan = plan::build(
                &client,
                &target.name,
                &out.snapshot,
                &out.meta,
                &objects,
                &ropts,
            )
            .await
            .map_err(|e| format!("cannot plan the restore into {}: {e}", target.name))?;
            Ok(Box::new(Prepared {
                snapshot: out.snapshot.clone(),
                meta: out.meta.clone(),
                plan,
            }))
        }
        .await;
        send(&tx, Msg::Plan(generation, r));
    });
}

#[allow(clippy::too_many_arguments)]
pub fn apply(
    rt: &Handle,
    tx: &Sender<Msg>,
    id: usize,
    repo: Repository,
    target: LinkedCluster,
    prepared: Box<Prepared>,
    mover: MoverOptions,
    progress: Arc<JobProgress>,
) {
    let tx = tx.clone();
    rt.spawn(async move {
        let r = async {
            let client = client(&target).await?;
            apply::apply(&client, &repo, &prepared.plan, &mover, &progress)
                .await
                .map(JobEnd::Restored)
                .map_err(|e| format!("restore into {} failed: {e}", target.name))
        }
        .await;
        send(&tx, Msg::JobDone(id, ended(r, &progress)));
    });
}

//! Capture: a backup of namespaces, chosen workloads with everything they depend on,
//! or a label selection, with the cluster-scoped objects they need and their
//! persistent-volume data, into one snapshot.
//!
//! The snapshot tree holds `resources/<namespace or _cluster>/<group>/<plural>/<name>.json`
//! (one document per object, deduplicated across snapshots like any file) and
//! `volumes/<namespace>/<claim>/` (the claim's files). Its `meta["kubernetes"]` is a
//! [`CaptureMeta`]: the source cluster, its version and storage classes, node zones,
//! the scope and every volume's record. Each volume is also an item of the snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph;
use super::lease::{self, JobLease};
use super::mover::MoverOptions;
use super::objects::{self, Catalog, ObjRef, Resource};
use super::{JobProgress, K8sError, META_KEY, RESOURCES_DIR, Result, VOLUMES_DIR};
use crate::cluster::StorageClassInfo;
use ferry_repo::snapshot::{self, Item, Snapshot, Summary};
use ferry_repo::tree::Node;
use ferry_repo::{self as eng, Id, Repository};

use crate::scope::{self as scoping, Resources};
pub use crate::scope::{Scope, parse_selector};

mod volumes;
mod writer;

use volumes::{capture_volume, parent_volume};

mod agents;
use writer::{Cmd, Writer};

/// How a capture runs.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The linked cluster's name, recorded as the source.
    pub cluster: String,
    pub scope: Scope,
    pub include_volumes: bool,
    /// Read from a CSI snapshot of each claim where the cluster can make one.
    pub use_snapshots: bool,
    pub mover: MoverOptions,
    pub tags: Vec<String>,
    /// Use this snapshot as the parent instead of the newest one of the same scope.
    pub parent: Option<String>,
    /// Compare with no parent: transfer every file.
    pub no_parent: bool,
    /// The source's cloud envelope (e.g. `ferry_providers::eks::envelope`), recorded as is.
    pub envelope: Option<Value>,
    /// The address the source's API server is reached at (its kubeconfig's
    /// `server`), recorded so a restore elsewhere can find objects that still name it.
    pub server: Option<String>,
    /// The resource types taken, and whether every cluster-scoped object comes along.
    pub resources: Resources,
}

/// What a capture recorded about one volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub namespace: String,
    pub pvc: String,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub capacity: Option<String>,
    #[serde(default)]
    pub access_modes: Vec<String>,
    #[serde(default)]
    pub driver: Option<String>,
    /// `snapshot` (read from a CSI snapshot) or `live` (read while in use).
    pub consistency: String,
    pub files: u64,
    pub bytes: u64,
    /// Files transferred this time (the rest were unchanged since the parent).
    pub files_transferred: u64,
}

/// What a capture snapshot holds, stored in its `meta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaptureMeta {
    pub cluster: String,
    pub server_version: String,
    pub scope: Scope,
    pub namespaces: Vec<String>,
    pub storage_classes: Vec<StorageClassInfo>,
    #[serde(default)]
    pub snapshot_classes: Vec<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    pub objects: u64,
    pub volumes: Vec<VolumeRecord>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The source cluster's cloud envelope when it is a managed cluster (EKS):
    /// version, networking, node groups, add-ons... (see docs/FORMAT.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Value>,
    /// The source's API server address, as its kubeconfig names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Claims whose data could not be read: the snapshot holds none of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_volumes: Vec<FailedVolume>,
    /// Objects a selection (`-w`, `-l`) pulled in, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included: Vec<Included>,
    /// The resource types taken (`--include-resources`, `--exclude-resources`,
    /// `--include-cluster-resources`); absent: all namespaced types, and the
    /// cluster-scoped objects they need.
    #[serde(default, skip_serializing_if = "Resources::is_default")]
    pub resources: Resources,
    /// How the volumes' data travelled: through agents or exec, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<crate::agent::DataPathChoice>,
}

/// An object a selection pulled in, and why (`Deployment shop/web names it in
/// containers[app].env[DB_HOST]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Included {
    pub object: ObjRef,
    pub why: String,
}

/// A claim whose data a capture could not read, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailedVolume {
    pub namespace: String,
    pub pvc: String,
    pub error: String,
}

impl CaptureMeta {
    pub fn of(snap: &Snapshot) -> Option<CaptureMeta> {
        snap.meta
            .get(META_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[derive(Debug)]
pub struct CaptureOutcome {
    pub snapshot: Snapshot,
    pub meta: CaptureMeta,
    pub warnings: Vec<String>,
}

/// Types never captured: they describe the moment, not the workload.
fn skipped_type(r: &Resource) -> bool {
    matches!(
        (r.ar.group.as_str(), r.ar.kind.as_str()),
        ("", "Event")
            | ("events.k8s.io", "Event")
            | ("metrics.k8s.io", _)
            | ("authorization.k8s.io", _)
            | ("authentication.k8s.io", _)
            | ("", "Binding")
            | ("", "ComponentStatus")
    )
}

/// The CSI driver of a claim's volume, and the snapshot class for that driver.
fn driver_and_class(
    pvc: &Value,
    cluster_objects: &[Value],
    snapshot_classes: &[(String, String)],
) -> (Option<String>, Option<String>) {
    let pv = cluster_objects.iter().find(|o| {
        ObjRef::of(o).is("", "PersistentVolume")
            && Some(o["metadata"]["name"].as_str().unwrap_or(""))
                == pvc["spec"]["volumeName"].as_str()
    });
    let driver = pv
        .and_then(|p| p["spec"]["csi"]["driver"].as_str())
        .map(str::to_string);
    let class = driver.as_ref().and_then(|d| {
        snapshot_classes
            .iter()
            .find(|(_, drv)| drv == d)
            .map(|(n, _)| n.clone())
    });
    (driver, class)
}

/// The document path of an object inside the snapshot tree.
pub fn document_path(r: &ObjRef, plural: &str) -> String {
    let group = if r.group.is_empty() { "core" } else { &r.group };
    let ns = r.namespace.as_deref().unwrap_or("_cluster");
    format!("{RESOURCES_DIR}/{ns}/{group}/{plural}/{}.json", r.name)
}

/// Captures `opts.scope` of the cluster `client` talks to into a new snapshot. What
/// dead jobs left on the cluster is removed first; what this job creates there is
/// labelled with its ID and covered by its lease ([`lease`]).
pub async fn capture(
    client: &kube::Client,
    repo: &Repository,
    opts: &CaptureOptions,
    progress: &Arc<JobProgress>,
) -> Result<CaptureOutcome> {
    let limit = opts.mover.stall_timeout;
    progress.set_phase("cleaning up");
    let swept = lease::sweep(client, &opts.scope.namespaces(), false, limit).await;
    for f in &swept.removed {
        progress.log(format!(
            "removed {f}, left behind by a job that did not finish"
        ));
    }
    for p in &swept.problems {
        progress.log(format!("cleanup of earlier jobs' leftovers: {p}"));
    }
    let lease = JobLease::start(client, limit);
    let r = capture_with(client, repo, opts, progress, &lease).await;
    lease.release().await;
    r
}

async fn capture_with(
    client: &kube::Client,
    repo: &Repository,
    opts: &CaptureOptions,
    progress: &Arc<JobProgress>,
    lease: &JobLease,
) -> Result<CaptureOutcome> {
    let started = Instant::now();
    let mut warnings: Vec<String> = Vec::new();
    progress.set_phase("discovering");
    let catalog = Catalog::discover(client).await?;
    let version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .map_err(|e| K8sError::api("cannot read the server version", &e))?;

    let namespaces = opts.scope.namespaces();
    if namespaces.is_empty() {
        return Err(K8sError::Invalid(
            "name at least one namespace to capture".into(),
        ));
    }
    let ns_res = catalog
        .find("", "Namespace")
        .ok_or_else(|| K8sError::Invalid("the cluster serves no namespaces".into()))?
        .clone();
    let mut ns_objects = Vec::new();
    for ns in &namespaces {
        match objects::api(client, &ns_res, None).get(ns).await {
            Ok(o) => ns_objects.push(objects::to_document(&ns_res.ar, &o)),
            Err(e) if objects::is_not_found(&e) => {
                return Err(K8sError::Invalid(format!(
                    "the namespace {ns:?} does not exist on {}: list them with `ferry namespaces --context {}`",
                    opts.cluster, opts.cluster
                )));
            }
            Err(e) => return Err(K8sError::api(format!("cannot read namespace {ns}"), &e)),
        }
    }

    opts.resources.check(&catalog, &opts.cluster)?;

    // Every namespaced type the cluster lists (of those taken), a few at a time.
    progress.set_phase("listing objects");
    let types: Vec<Resource> = catalog
        .resources
        .iter()
        .filter(|r| r.namespaced && r.listable && !skipped_type(r) && opts.resources.takes(&r.ar))
        .cloned()
        .collect();
    let listed = list_namespaced(client, &types, &namespaces).await;
    let mut all: Vec<Value> = Vec::new();
    let mut plural_of: HashMap<(String, String), String> = HashMap::new();
    for (ns, t, r) in listed {
        plural_of.insert((t.ar.group.clone(), t.ar.kind.clone()), t.ar.plural.clone());
        match r {
            Ok(items) => {
                // Ferry's own temporaries (movers, snapshot claims, leases) are never
                // part of what is captured.
                let items: Vec<Value> = items
                    .into_iter()
                    .filter(|o| !lease::is_temporary(o))
                    .collect();
                progress.add_objects(items.len() as u64, 0);
                all.extend(items);
            }
            Err(e) => warnings.push(format!("skipped {} in {ns}: {e}", t.ar.plural)),
        }
    }
    for r in &catalog.resources {
        plural_of.insert((r.ar.group.clone(), r.ar.kind.clone()), r.ar.plural.clone());
    }

    // The selection, and why each object of a closure is in it.
    let (chosen, included): (Vec<Value>, BTreeMap<ObjRef, String>) = match &opts.scope {
        Scope::Namespaces(_) => (all, BTreeMap::new()),
        Scope::Workloads {
            namespace,
            workloads,
        } => {
            let mut seeds = Vec::new();
            for w in workloads {
                seeds.push(resolve_workload(&catalog, &all, namespace, w)?);
            }
            let keep = graph::closure(&all, &seeds);
            let chosen = all
                .into_iter()
                .filter(|o| keep.contains_key(&ObjRef::of(o)))
                .collect();
            (chosen, keep)
        }
        Scope::Selector { selector, .. } => {
            let sels = scoping::parse_selectors(selector)?;
            let seeds: Vec<ObjRef> = all
                .iter()
                .filter(|o| {
                    o["metadata"]["labels"]
                        .as_object()
                        .is_some_and(|l| sels.iter().any(|sel| graph::selects(sel, l)))
                })
                .filter(|o| graph::controller_owner(o).is_none())
                .map(ObjRef::of)
                .collect();
            let keep = graph::closure(&all, &seeds);
            let chosen = all
                .into_iter()
                .filter(|o| keep.contains_key(&ObjRef::of(o)))
                .collect();
            (chosen, keep)
        }
    };

    // Cluster-scoped objects the selection needs.
    progress.set_phase("collecting cluster-scoped objects");
    let mut cluster_objects = ns_objects;
    let cluster_refs: BTreeSet<ObjRef> = chosen
        .iter()
        .flat_map(graph::references)
        .filter(|r| r.namespace.is_none() && r.kind != "Namespace")
        .collect();
    let sas: BTreeSet<(String, String)> = chosen
        .iter()
        .map(ObjRef::of)
        .filter(|r| r.is("", "ServiceAccount"))
        .filter_map(|r| r.namespace.map(|n| (n, r.name)))
        .collect();
    // CRDs of captured custom resources.
    let mut wanted: BTreeSet<ObjRef> = cluster_refs;
    let builtin_groups = builtin_groups();
    let cr_groups: BTreeSet<(String, String)> = chosen
        .iter()
        .map(ObjRef::of)
        .filter(|r| !builtin_groups.contains(r.group.as_str()))
        .map(|r| (r.group, r.kind))
        .collect();
    for (g, k) in &cr_groups {
        if let Some(p) = plural_of.get(&(g.clone(), k.clone())) {
            wanted.insert(ObjRef::new(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                &format!("{p}.{g}"),
            ));
        }
    }
    // ClusterRoleBindings granting to captured service accounts, and their roles.
    if !sas.is_empty()
        && let Some(crb) = catalog.find("rbac.authorization.k8s.io", "ClusterRoleBinding")
    {
        match objects::list_all(client, crb, None, None).await {
            Ok(list) => {
                for b in list {
                    let grants = b["subjects"].as_array().into_iter().flatten().any(|s| {
                        s["kind"] == "ServiceAccount"
                            && sas.contains(&(
                                s["namespace"].as_str().unwrap_or("").to_string(),
                                s["name"].as_str().unwrap_or("").to_string(),
                            ))
                    });
                    if grants {
                        wanted.extend(graph::references(&b));
                        cluster_objects.push(b);
                    }
                }
            }
            Err(e) => warnings.push(format!("skipped cluster role bindings: {e}")),
        }
    }
    for r in &wanted {
        let Some(res) = catalog.find(&r.group, &r.kind) else {
            continue;
        };
        if cluster_objects.iter().any(|o| &ObjRef::of(o) == r) {
            continue;
        }
        match objects::api(client, res, None).get(&r.name).await {
            Ok(o) => cluster_objects.push(objects::to_document(&res.ar, &o)),
            Err(e) if objects::is_not_found(&e) => {
                if r.kind != "ServiceAccount" {
                    warnings.push(format!("{r} is referenced but does not exist"));
                }
            }
            Err(e) => warnings.push(format!("skipped {r}: {}", crate::cluster::explain(&e))),
        }
    }
    if opts.resources.cluster {
        progress.set_phase("listing cluster-scoped objects");
        for res in catalog.resources.iter().filter(|r| {
            !r.namespaced
                && r.listable
                && !skipped_type(r)
                && !scoping::never_captured(&r.ar)
                && opts.resources.takes(&r.ar)
        }) {
            match objects::list_all(client, res, None, None).await {
                Ok(items) => {
                    for o in items {
                        let r = ObjRef::of(&o);
                        if !cluster_objects.iter().any(|c| ObjRef::of(c) == r) {
                            cluster_objects.push(o);
                        }
                    }
                }
                Err(e) => warnings.push(format!("skipped {}: {e}", res.ar.plural)),
            }
        }
    }
    // The types left out are left out of the cluster-scoped objects too (namespaces
    // always come along).
    cluster_objects.retain(|o| {
        let r = ObjRef::of(o);
        r.kind == "Namespace"
            || catalog
                .find(&r.group, &r.kind)
                .is_none_or(|res| opts.resources.takes(&res.ar))
    });

    // Cluster facts for the restore.
    let storage_classes: Vec<StorageClassInfo> =
        match catalog.find("storage.k8s.io", "StorageClass") {
            Some(res) => objects::list_all(client, res, None, None)
                .await
                .map(|l| {
                    l.iter()
                        .filter_map(|v| serde_json::from_value(v.clone()).ok())
                        .map(|sc| StorageClassInfo::from_class(&sc))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
    let snapshot_classes: Vec<(String, String)> =
        match catalog.find("snapshot.storage.k8s.io", "VolumeSnapshotClass") {
            Some(res) => objects::list_all(client, res, None, None)
                .await
                .map(|l| {
                    l.iter()
                        .map(|v| {
                            (
                                v["metadata"]["name"].as_str().unwrap_or("").to_string(),
                                v["driver"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
    let zones = match catalog.find("", "Node") {
        Some(res) => {
            let mut z: Vec<String> = objects::list_all(client, res, None, None)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|n| {
                    n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            z.sort();
            z.dedup();
            z
        }
        None => Vec::new(),
    };

    // Parent snapshot: the newest of the same cluster and scope.
    let paths = opts.scope.paths(&opts.cluster);
    let parent: Option<Snapshot> = {
        let repo = repo.clone();
        let want = paths.clone();
        let cluster = opts.cluster.clone();
        let namespaces = namespaces.clone();
        let spec = opts.parent.clone();
        let no_parent = opts.no_parent;
        tokio::task::spawn_blocking(move || -> eng::Result<Option<Snapshot>> {
            if no_parent {
                return Ok(None);
            }
            if let Some(s) = spec {
                return snapshot::find(&repo, &s).map(Some);
            }
            let (all, _) = snapshot::list(&repo)?;
            // The newest of the same scope; else the newest capture of the same
            // cluster holding one of these namespaces (a whole-cluster capture after a
            // namespace was added): its volumes' files are compared, the others read.
            let same = all
                .iter()
                .rev()
                .find(|s| s.paths == want && s.meta.contains_key(META_KEY));
            let near = || {
                all.iter().rev().find(|s| {
                    CaptureMeta::of(s).is_some_and(|m| {
                        m.cluster == cluster && m.namespaces.iter().any(|n| namespaces.contains(n))
                    })
                })
            };
            Ok(same.or_else(near).cloned())
        })
        .await
        .map_err(|e| K8sError::Invalid(e.to_string()))??
    };

    // Documents.
    progress.set_phase("storing objects");
    let writer = Writer::start(repo, progress.data.clone());
    let mut objects_stored = 0u64;
    let mut pvcs: Vec<Value> = Vec::new();
    for o in chosen.iter().chain(cluster_objects.iter()) {
        let r = ObjRef::of(o);
        let plural = plural_of
            .get(&(r.group.clone(), r.kind.clone()))
            .cloned()
            .unwrap_or_else(|| r.kind.to_ascii_lowercase());
        let bytes = serde_json::to_vec_pretty(o).unwrap_or_default();
        writer.send(Cmd::Doc {
            path: document_path(&r, &plural),
            bytes,
        })?;
        objects_stored += 1;
        progress.add_objects(0, 1);
        if r.is("", "PersistentVolumeClaim") {
            pvcs.push(o.clone());
        }
    }
    progress.add_objects(cluster_objects.len() as u64, 0);

    // Volumes.
    let mut volumes = Vec::new();
    let mut failed_volumes = Vec::new();
    let mut data_path = None;
    if opts.include_volumes && !pvcs.is_empty() {
        let (access, choice) = crate::agent::AgentAccess::of(repo, &opts.mover.agent).await?;
        progress.log(format!("volume data: {} ({})", choice.path, choice.why));
        data_path = Some(choice);
        if let Some(access) = access {
            progress.set_phase("reading volumes (agents)");
            let mut claims = Vec::new();
            for pvc in &pvcs {
                let r = ObjRef::of(pvc);
                let ns = r.namespace.clone().unwrap_or_default();
                if pvc["status"]["phase"].as_str() != Some("Bound") {
                    warnings.push(format!("{r} is not bound: no data to read"));
                    continue;
                }
                let (driver, snap_class) =
                    driver_and_class(pvc, &cluster_objects, &snapshot_classes);
                let parent_tree = match &parent {
                    Some(p) => volumes::parent_tree(repo, p, &ns, &r.name).await?,
                    None => None,
                };
                claims.push(agents::Claim {
                    pvc: pvc.clone(),
                    snapshot_class: snap_class.filter(|_| opts.use_snapshots),
                    parent: parent_tree,
                    driver,
                });
            }
            let done = agents::capture(
                client,
                &writer,
                &access,
                claims,
                &opts.mover,
                lease,
                progress,
            )
            .await;
            for (r, res) in done {
                let ns = r.namespace.clone().unwrap_or_default();
                match res {
                    Ok((rec, w)) => {
                        warnings.extend(w);
                        volumes.push(rec);
                    }
                    Err(e) if e.is_cancelled() => return Err(K8sError::Cancelled),
                    Err(e) => {
                        progress.volume(&ns, &r.name, |s| s.state = format!("failed: {e}"));
                        warnings.push(format!("volume {ns}/{}: {e}", r.name));
                        failed_volumes.push(FailedVolume {
                            namespace: ns.clone(),
                            pvc: r.name.clone(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
    }
    if opts.include_volumes && data_path.as_ref().is_some_and(|d| d.path == "exec") {
        progress.set_phase("reading volumes");
        for pvc in &pvcs {
            progress.check()?;
            let r = ObjRef::of(pvc);
            let ns = r.namespace.clone().unwrap_or_default();
            if pvc["status"]["phase"].as_str() != Some("Bound") {
                warnings.push(format!("{r} is not bound: no data to read"));
                continue;
            }
            let (driver, snap_class) = driver_and_class(pvc, &cluster_objects, &snapshot_classes);
            let parent_nodes = match &parent {
                Some(p) => parent_volume(repo, p, &ns, &r.name).await?,
                None => HashMap::new(),
            };
            let rec = capture_volume(
                client,
                &writer,
                pvc,
                snap_class.filter(|_| opts.use_snapshots),
                &parent_nodes,
                &opts.mover,
                lease,
                progress,
                &mut warnings,
            )
            .await;
            match rec {
                Ok(mut rec) => {
                    rec.driver = driver;
                    volumes.push(rec);
                }
                Err(e) if e.is_cancelled() => return Err(K8sError::Cancelled),
                Err(e) => {
                    // Nothing of a volume that failed half-way stays in the snapshot.
                    writer.send(Cmd::Remove {
                        path: format!("{VOLUMES_DIR}/{ns}/{}", r.name).into_bytes(),
                    })?;
                    progress.volume(&ns, &r.name, |s| {
                        s.state = format!("failed: {e}");
                        s.streaming_from = None;
                    });
                    warnings.push(format!("volume {ns}/{}: {e}", r.name));
                    failed_volumes.push(FailedVolume {
                        namespace: ns.clone(),
                        pvc: r.name.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
    }

    progress.set_phase("finishing");
    let (root, stats, w) = writer.finish().await?;
    warnings.extend(w);

    let meta = CaptureMeta {
        cluster: opts.cluster.clone(),
        server_version: version,
        scope: opts.scope.clone(),
        namespaces: namespaces.clone(),
        storage_classes,
        snapshot_classes: snapshot_classes.into_iter().map(|(n, _)| n).collect(),
        zones,
        objects: objects_stored,
        volumes: volumes.clone(),
        warnings: warnings.clone(),
        envelope: opts.envelope.clone(),
        server: opts.server.clone(),
        included: included
            .into_iter()
            .filter(|(_, why)| why != "chosen")
            .map(|(object, why)| Included { object, why })
            .collect(),
        failed_volumes,
        resources: opts.resources.clone(),
        data_path,
    };
    let snap = {
        let repo = repo.clone();
        let meta = meta.clone();
        let tags = opts.tags.clone();
        let parent_id = parent.as_ref().map(|p| p.id);
        let dp = progress.data.snapshot();
        let files_read: u64 = volumes.iter().map(|v| v.files_transferred).sum();
        // Files and bytes of the volumes agents stored (the writer saw none of them),
        // and how many of their files were unchanged.
        let by_agents = if meta.data_path.as_ref().is_some_and(|d| d.path == "agent") {
            volumes.iter().fold((0, 0, 0), |(f, b, u), v| {
                (
                    f + v.files,
                    b + v.bytes,
                    u + v.files.saturating_sub(v.files_transferred),
                )
            })
        } else {
            (0, 0, 0)
        };
        tokio::task::spawn_blocking(move || -> eng::Result<Snapshot> {
            // The agents' blobs, for whatever this process reads next (a migration's
            // restore, a check).
            if meta.data_path.as_ref().is_some_and(|d| d.path == "agent") {
                repo.load_index()?;
            }
            let mut items = BTreeMap::new();
            for v in &meta.volumes {
                let path = format!("{VOLUMES_DIR}/{}/{}", v.namespace, v.pvc);
                if let Some(n) = ferry_repo::tree::find_path(&repo, &root, &path)?
                    && let Some(t) = n.subtree
                {
                    items.insert(
                        format!("volume:{}/{}", v.namespace, v.pvc),
                        Item {
                            kind: "volume".into(),
                            tree: t,
                            meta: serde_json::to_value(v).unwrap_or(Value::Null),
                        },
                    );
                }
            }
            let mut m = BTreeMap::new();
            m.insert(
                META_KEY.to_string(),
                serde_json::to_value(&meta).unwrap_or(Value::Null),
            );
            let mut snap = Snapshot {
                id: Id::default(),
                version: ferry_repo::repo::FORMAT_VERSION,
                time: chrono::Utc::now(),
                host: eng::hostname(),
                username: eng::username(),
                paths,
                tags,
                parent: parent_id,
                tree: root,
                items,
                meta: m,
                summary: Summary {
                    files: stats.files + by_agents.0,
                    dirs: stats.dirs,
                    bytes: stats.bytes + by_agents.1,
                    files_new: files_read,
                    files_changed: 0,
                    files_unmodified: stats.files_reused + by_agents.2,
                    bytes_new: dp.bytes_new,
                    bytes_stored: dp.bytes_stored,
                    blobs_new: stats.blobs_new,
                    warnings: meta.warnings.len() as u64,
                    duration_secs: started.elapsed().as_secs_f64(),
                },
                program: format!("ferry {}", env!("CARGO_PKG_VERSION")),
            };
            snap.save(&repo)?;
            Ok(snap)
        })
        .await
        .map_err(|e| K8sError::Invalid(e.to_string()))??
    };
    progress.set_phase("done");
    progress.log(format!(
        "snapshot {} of {}: {} objects, {} volume(s)",
        snap.id.short(),
        opts.cluster,
        meta.objects,
        meta.volumes.len()
    ));
    Ok(CaptureOutcome {
        snapshot: snap,
        meta,
        warnings,
    })
}

/// Built-in API groups: objects of other groups are custom resources.
fn builtin_groups() -> BTreeSet<&'static str> {
    [
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "discovery.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "scheduling.k8s.io",
        "node.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "snapshot.storage.k8s.io",
        "apiregistration.k8s.io",
        "resource.k8s.io",
    ]
    .into_iter()
    .collect()
}

/// `kind/name` (kind by name, short name or plural, any case) to a reference.
fn resolve_workload(catalog: &Catalog, all: &[Value], ns: &str, spec: &str) -> Result<ObjRef> {
    let (kind, name) = spec.split_once('/').ok_or_else(|| {
        K8sError::Invalid(format!(
            "{spec:?} is not kind/name: write e.g. deployment/web or statefulset/postgres"
        ))
    })?;
    let k = kind.to_ascii_lowercase();
    fn short(s: &str) -> &str {
        match s {
            "deploy" => "deployment",
            "sts" => "statefulset",
            "ds" => "daemonset",
            "cj" => "cronjob",
            "po" => "pod",
            "rs" => "replicaset",
            o => o,
        }
    }
    let k = short(k.split('.').next().unwrap_or(&k)).to_string();
    let res = catalog
        .resources
        .iter()
        .find(|r| r.ar.kind.to_ascii_lowercase() == k || r.ar.plural == k)
        .ok_or_else(|| K8sError::Invalid(format!("the cluster serves no kind {kind:?}")))?;
    let r = ObjRef::new(&res.ar.group, &res.ar.kind, Some(ns), name);
    if !all.iter().any(|o| ObjRef::of(o) == r) {
        return Err(K8sError::Invalid(format!("{r} does not exist")));
    }
    Ok(r)
}

/// Above this many namespaces, each type is listed across the cluster once and its
/// objects kept by namespace, rather than listed in each namespace.
const LIST_ACROSS: usize = 4;

/// Lists `types` in `namespaces`: per namespace, or across the cluster once per type
/// when there are many (a whole-cluster job), falling back to per namespace where the
/// user may not list across the cluster. Each result is the objects of one type in one
/// namespace.
async fn list_namespaced(
    client: &kube::Client,
    types: &[Resource],
    namespaces: &[String],
) -> Vec<(String, Resource, Result<Vec<Value>>)> {
    let per_namespace = |types: Vec<Resource>| {
        let jobs: Vec<(String, Resource)> = namespaces
            .iter()
            .flat_map(|ns| types.iter().map(move |t| (ns.clone(), t.clone())))
            .collect();
        futures::stream::iter(jobs)
            .map(|(ns, t)| async move {
                let r = objects::list_all(client, &t, Some(&ns), None).await;
                (ns, t, r)
            })
            .buffer_unordered(8)
    };
    if namespaces.len() <= LIST_ACROSS {
        return per_namespace(types.to_vec()).collect().await;
    }
    let across: Vec<(Resource, Result<Vec<Value>>)> = futures::stream::iter(types.to_vec())
        .map(|t| async move {
            let r = objects::list_all(client, &t, None, None).await;
            (t, r)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let wanted: BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for (t, r) in across {
        match r {
            Ok(items) => {
                let mut by_ns: BTreeMap<String, Vec<Value>> =
                    namespaces.iter().map(|n| (n.clone(), Vec::new())).collect();
                for o in items {
                    let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
                    if wanted.contains(ns)
                        && let Some(v) = by_ns.get_mut(ns)
                    {
                        v.push(o);
                    }
                }
                out.extend(by_ns.into_iter().map(|(ns, v)| (ns, t.clone(), Ok(v))));
            }
            Err(_) => refused.push(t),
        }
    }
    out.extend(per_namespace(refused).collect::<Vec<_>>().await);
    out
}

/// Every object document stored in a capture snapshot.
pub fn read_objects(repo: &Repository, snap: &Snapshot) -> eng::Result<Vec<Value>> {
    let Some(top) = ferry_repo::tree::find_path(repo, &snap.tree, RESOURCES_DIR)? else {
        return Ok(Vec::new());
    };
    let Some(sub) = top.subtree else {
        return Ok(Vec::new());
    };
    let files = ferry_repo::tree::files_below(repo, &sub)?;
    // Every document's blobs in one read by pack, then parsed on every core: the
    // documents of a whole cluster are tens of thousands of small files.
    let ids: Vec<_> = files
        .iter()
        .flat_map(|f| f.content.iter().copied())
        .collect();
    let mut blobs = ferry_repo::reads::load_blobs(repo, &ids, None)?.into_iter();
    let docs: Vec<(Node, Vec<u8>)> = files
        .into_iter()
        .map(|f| {
            let bytes = match f.content.len() {
                1 => blobs.next().unwrap_or_default(),
                n => blobs.by_ref().take(n).flatten().collect(),
            };
            (f, bytes)
        })
        .collect();
    docs.into_par_iter()
        .map(|(f, bytes)| {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| eng::Error::Damaged {
                what: format!("object document {}", f.name.lossy()),
                detail: e.to_string(),
            })
        })
        .collect()
}

//! The plan of a restore: every object with its action (create, update, skip) and the
//! transformations applied, every volume with its class and data, and the problems the
//! target has (types it does not serve, missing storage classes, names taken, objects
//! its server-side dry run refuses). Nothing in the target changes while planning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt as _;
use kube::api::{DynamicObject, PostParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::capture::{CaptureMeta, VolumeRecord};
use super::checks::{existing_on_target, mapping_mistakes, quota_problems, shared_on_target};
use super::graph;
use super::modifiers::{self, Modifiers};
use super::mover::MoverOptions;
use super::objects::{self, Catalog, ObjRef};
use super::references::{self, Finding, Services};
use super::transform::{self, Mapping};
use super::{K8sError, RESTORED_ANNOTATION, RESTORING_ANNOTATION, Result};
use crate::cluster::StorageClassInfo;
use ferry_repo::Id;
use ferry_repo::snapshot::Snapshot;

mod render;

/// What to do with an object that already exists on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conflict {
    /// Leave the existing object as it is.
    #[default]
    Skip,
    /// Replace it with the captured one.
    Update,
    /// Refuse the restore.
    Fail,
}

impl std::str::FromStr for Conflict {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Conflict, String> {
        match s {
            "skip" => Ok(Conflict::Skip),
            "update" => Ok(Conflict::Update),
            "fail" => Ok(Conflict::Fail),
            o => Err(format!(
                "{o:?} is not a conflict policy: use skip, update or fail"
            )),
        }
    }
}

/// How a restore of workloads is planned and carried out: mappings, conflicts, volumes.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub mapping: Mapping,
    pub conflict: Conflict,
    pub include_volumes: bool,
    pub mover: MoverOptions,
    /// Restore only these (target) objects: a retry of what failed.
    pub only: Option<BTreeSet<ObjRef>>,
    /// Restore only objects of these source namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// The user's rules of what changes (Velero's resource modifiers), applied to
    /// each object after the mapping; each change is listed with the object's.
    pub modifiers: Option<Arc<Modifiers>>,
}

/// What a plan does to one object in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Skip,
}

/// One object of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    pub source: ObjRef,
    pub target: ObjRef,
    pub action: Change,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Why a selection (`-w`, `-l`) pulled it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<String>,
    /// The wave it is created in (0 first).
    pub wave: usize,
    /// The object as it will be sent.
    #[serde(skip)]
    pub object: Value,
    /// The source's `metadata.managedFields` (which [`transform::transform`] leaves out), put back
    /// once the object is in place so its field managers keep owning what they set.
    #[serde(skip)]
    pub managed_fields: Vec<Value>,
}

/// One volume of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumePlan {
    pub source: ObjRef,
    pub target: ObjRef,
    pub storage_class: Option<String>,
    pub target_storage_class: Option<String>,
    pub files: u64,
    pub bytes: u64,
    /// Restore the data (false: the claim already holds it, or is skipped).
    pub restore_data: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    pub tree: Option<Id>,
}

impl VolumePlan {
    /// The stored folder to restore, which a volume the snapshot holds no data for
    /// lacks.
    pub fn stored_tree(&self) -> Result<Id> {
        self.tree.ok_or_else(|| K8sError::Volume {
            pvc: self.target.to_string(),
            detail: "the snapshot holds no data for it".into(),
        })
    }
}

/// Something the target lacks or refuses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    /// A blocking problem stops the restore until fixed.
    pub blocking: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjRef>,
    pub message: String,
}

/// A restore plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub snapshot: String,
    pub source_cluster: String,
    pub target_cluster: String,
    pub target_version: String,
    pub conflict: Conflict,
    pub storage_class_mapping: BTreeMap<String, String>,
    pub namespace_mapping: BTreeMap<String, String>,
    pub items: Vec<PlanItem>,
    pub volumes: Vec<VolumePlan>,
    pub problems: Vec<Problem>,
    /// What in the copy would still point at the source (the isolation check).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// How the volumes' data will travel, and why ([`Plan::choose_data_path`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<crate::agent::DataPathChoice>,
    /// The mapping as planned (with the Services that come along), for the scan of
    /// what the restore created.
    #[serde(skip)]
    pub mapping: Mapping,
}

impl Plan {
    pub fn blocking(&self) -> usize {
        self.problems.iter().filter(|p| p.blocking).count()
    }

    pub fn count(&self, a: Change) -> usize {
        self.items.iter().filter(|i| i.action == a).count()
    }

    /// Decides how the data of the volumes to restore travels from `repo` (agents or
    /// exec): the plan says which and why; a data path that cannot be taken is a
    /// blocking problem.
    pub async fn choose_data_path(
        &mut self,
        repo: &ferry_repo::Repository,
        opts: &crate::agent::AgentOptions,
    ) {
        if !self.volumes.iter().any(|v| v.restore_data) {
            return;
        }
        match crate::agent::AgentAccess::of(repo, opts).await {
            Ok((_, choice)) => self.data_path = Some(choice),
            Err(e) => self.problems.push(Problem {
                blocking: true,
                object: None,
                message: e.to_string(),
            }),
        }
    }

    /// Object references of each wave, in order (skipped objects left out).
    pub fn waves(&self) -> Vec<Vec<&PlanItem>> {
        let mut w: BTreeMap<usize, Vec<&PlanItem>> = BTreeMap::new();
        for i in self.items.iter().filter(|i| i.action != Change::Skip) {
            w.entry(i.wave).or_default().push(i);
        }
        w.into_values().collect()
    }
}

/// The CRD that defines a custom resource type, among `objects`.
pub fn crd_for(objects: &[Value], r: &ObjRef) -> Option<ObjRef> {
    objects
        .iter()
        .filter(|o| ObjRef::of(o).is("apiextensions.k8s.io", "CustomResourceDefinition"))
        .find(|c| {
            c["spec"]["group"] == r.group.as_str() && c["spec"]["names"]["kind"] == r.kind.as_str()
        })
        .map(ObjRef::of)
}

/// An object's claims: a claim itself, or a StatefulSet's `volumeClaimTemplates`.
fn claims_of<'a>(o: &'a Value, r: &ObjRef) -> Vec<&'a Value> {
    if r.is("", "PersistentVolumeClaim") {
        vec![o]
    } else if r.is("apps", "StatefulSet") {
        o["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    } else {
        Vec::new()
    }
}

/// The storage class each of an object's claims names, in order (`None` where one
/// names none).
fn claim_classes(o: &Value, r: &ObjRef) -> Vec<Option<String>> {
    claims_of(o, r)
        .into_iter()
        .map(|c| transform::claim_class(c).map(str::to_string))
        .collect()
}

/// Builds the plan of restoring `objects` (read from `snap`) into the cluster `client`
/// talks to. The objects are taken, not borrowed: each source document is dropped once
/// its transformed copy is in the plan, so a whole cluster is held about once.
pub async fn build(
    client: &kube::Client,
    target_cluster: &str,
    snap: &Snapshot,
    meta: &CaptureMeta,
    mut objects: Vec<Value>,
    opts: &PlanOptions,
) -> Result<Plan> {
    let catalog = Catalog::discover(client).await?;
    let target_version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .map_err(|e| K8sError::api(format!("cannot reach {target_cluster}"), &e))?;
    let target_classes: Vec<StorageClassInfo> = match catalog.find("storage.k8s.io", "StorageClass")
    {
        Some(res) => objects::list_all(client, res, None, None)
            .await?
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .map(|sc| StorageClassInfo::from_class(&sc))
            .collect(),
        None => Vec::new(),
    };
    let mut problems = Vec::new();

    // Only the chosen namespaces (and cluster-scoped objects).
    if !opts.namespaces.is_empty() {
        objects.retain(|o| {
            let r = ObjRef::of(o);
            let ns = if r.kind == "Namespace" {
                Some(r.name)
            } else {
                r.namespace
            };
            ns.is_none_or(|n| opts.namespaces.contains(&n))
        });
    }
    let objs = &objects;

    // Storage-class mapping: explicit entries, then suggestions for every class used.
    let source_default = meta
        .storage_classes
        .iter()
        .find(|c| c.default)
        .map(|c| c.name.clone());
    let used: Vec<String> = {
        let mut u: BTreeSet<String> = BTreeSet::new();
        for o in objs {
            for c in claims_of(o, &ObjRef::of(o)) {
                match transform::claim_class(c) {
                    Some("") => {}
                    Some(name) => {
                        u.insert(name.to_string());
                    }
                    // No class named: the source's default made it.
                    None => {
                        if let Some(d) = &source_default {
                            u.insert(d.clone());
                        }
                    }
                }
            }
        }
        u.into_iter().collect()
    };
    let mut mapping = opts.mapping.clone();
    // A prefix or suffix names every namespace not mapped by name.
    if !mapping.namespace_prefix.is_empty() || !mapping.namespace_suffix.is_empty() {
        for r in objs
            .iter()
            .map(ObjRef::of)
            .filter(|r| r.kind == "Namespace")
        {
            let to = format!(
                "{}{}{}",
                mapping.namespace_prefix, r.name, mapping.namespace_suffix
            );
            mapping.namespaces.entry(r.name).or_insert(to);
        }
    }
    mapping.services = Services::of(objs);
    mapping.source_default_class = source_default.clone();
    // On the source cluster itself its address is the target's own.
    mapping.source_server = meta
        .server
        .clone()
        .filter(|_| meta.cluster != target_cluster);
    problems.extend(mapping_mistakes(meta, objs, &opts.mapping, &used));
    let suggested =
        transform::suggest_storage_classes(&meta.storage_classes, &used, &target_classes);
    for c in &used {
        if !mapping.storage_classes.contains_key(c)
            && let Some(t) = suggested.get(c)
        {
            mapping.storage_classes.insert(c.clone(), t.clone());
        }
    }
    for (from, to) in &mapping.storage_classes {
        if !target_classes.iter().any(|t| &t.name == to) && used.contains(from) {
            problems.push(Problem {
                blocking: true,
                object: None,
                message: format!(
                    "storage class {to} (for {from}) does not exist on {target_cluster}; it has: {}. Map {from} to one of them (--map-storage-class {from}=NAME)",
                    names(&target_classes)
                ),
            });
        }
    }
    for c in &used {
        if !mapping.storage_classes.contains_key(c) {
            problems.push(Problem {
                blocking: true,
                object: None,
                message: format!(
                    "no storage class on {target_cluster} for {c} and no default class: map it (--map-storage-class {c}=NAME); the target has: {}",
                    names(&target_classes)
                ),
            });
        }
    }

    // Namespace names must be DNS labels.
    for (from, to) in &mapping.namespaces {
        if !is_dns_label(to) {
            problems.push(Problem {
                blocking: true,
                object: None,
                message: format!("{to:?} (for namespace {from}) is not a valid namespace name: use lower-case letters, digits and '-', at most 63 characters"),
            });
        }
    }

    // Transform, and skip what the target makes itself.
    // The snapshot's CRDs (few), for the types they define.
    let crds_in_snapshot: Vec<Value> = objs
        .iter()
        .filter(|o| ObjRef::of(o).is("apiextensions.k8s.io", "CustomResourceDefinition"))
        .cloned()
        .collect();
    // The namespaces restored (their source names), for the cluster-scoped objects'
    // rules.
    let restored: Vec<String> = objs
        .iter()
        .map(ObjRef::of)
        .filter(|r| r.kind == "Namespace")
        .map(|r| r.name)
        .collect();
    // Why each object a selection pulled in came along.
    let included: HashMap<&ObjRef, &str> = meta
        .included
        .iter()
        .map(|i| (&i.object, i.why.as_str()))
        .collect();
    // Each object on its own, on every core (a whole cluster is tens of thousands).
    let one = |mut o: Value| -> (PlanItem, Vec<Problem>) {
        let mut problems = Vec::new();
        let source = ObjRef::of(&o);
        // The source's field managers move into the plan item (the transformed copy
        // leaves them out); the source document is dropped at the end of the turn.
        let managed_fields = take_managed_fields(&mut o);
        let (mut obj, mut changes) = transform::transform(&o, &mapping);
        for c in changes
            .iter()
            .filter(|c| c.starts_with("helm release record could not"))
        {
            problems.push(Problem {
                blocking: false,
                object: Some(source.clone()),
                message: format!(
                    "{c}: `helm` in the target would act on the source's namespace; restore it and run `helm upgrade` there, or leave the record out"
                ),
            });
        }
        let skip: Option<String> = match transform::skip_reason(&o, &mapping) {
            Some(why) => Some(why.into()),
            None if source.kind != "Namespace" && source.namespace.is_none() => {
                crate::scope::cluster_rule(&o, &restored)
            }
            None => None,
        };
        // The user's rules, on what is restored, as Velero applies them: after the
        // namespace is mapped, matching the namespace and name the snapshot holds.
        if skip.is_none()
            && let Some(m) = &opts.modifiers
        {
            let group_resource = modifiers::group_resource(
                &source.group,
                &plural_of(&catalog, &crds_in_snapshot, &source),
            );
            let classes = claim_classes(&obj, &source);
            match m.apply(&mut obj, &group_resource, &source) {
                Ok(said) => changes.extend(said),
                Err(e) => problems.push(Problem {
                    blocking: true,
                    object: Some(source.clone()),
                    message: e.to_string(),
                }),
            }
            let set = claim_classes(&obj, &source);
            for to in set.iter().enumerate().filter_map(|(n, to)| {
                let to = to.as_deref().filter(|to| !to.is_empty())?;
                (classes.get(n).and_then(Option::as_deref) != Some(to)
                    && !target_classes.iter().any(|t| t.name == to))
                .then_some(to)
            }) {
                problems.push(Problem {
                    blocking: true,
                    object: Some(source.clone()),
                    message: format!(
                        "the resource modifiers ({}) set its storage class to {to}, which {target_cluster} does not have; it has: {}. Change the rule",
                        m.file(),
                        names(&target_classes)
                    ),
                });
            }
        }
        let target = ObjRef::of(&obj);
        let mut item = PlanItem {
            source: source.clone(),
            target,
            action: Change::Create,
            reason: None,
            changes,
            included: included.get(&source).map(|why| why.to_string()),
            wave: 0,
            object: obj,
            managed_fields,
        };
        if let Some(why) = skip {
            item.action = Change::Skip;
            item.reason = Some(why);
        } else if let Some(only) = &opts.only
            && !only.contains(&item.target)
        {
            item.action = Change::Skip;
            item.reason = Some("not part of this retry".into());
        }
        (item, problems)
    };
    let mut items: Vec<PlanItem> = Vec::with_capacity(objects.len());
    for (item, found) in objects.into_par_iter().map(one).collect::<Vec<_>>() {
        items.push(item);
        problems.extend(found);
    }

    // Served types: a custom resource is fine when its CRD comes along.
    for i in items.iter().filter(|i| i.action != Change::Skip) {
        let av = i.object["apiVersion"].as_str().unwrap_or("");
        if !catalog.serves(av, &i.target.kind) && crd_for(&crds_in_snapshot, &i.source).is_none() {
            problems.push(Problem {
                blocking: true,
                object: Some(i.source.clone()),
                message: format!(
                    "{target_cluster} does not serve {av} {}: install what provides it (its CRD or operator) or leave it out",
                    i.target.kind
                ),
            });
        }
    }

    // What exists already, asked concurrently.
    let existing = existing_on_target(
        client,
        &catalog,
        items
            .iter()
            .filter(|i| i.action != Change::Skip)
            .map(|i| i.target.clone())
            .collect(),
    )
    .await;
    for i in items.iter_mut().filter(|i| i.action != Change::Skip) {
        if let Some(cur) = existing.get(&i.target) {
            if i.target.kind == "Namespace" {
                i.action = Change::Skip;
                i.reason = Some("exists on the target".into());
                continue;
            }
            match opts.conflict {
                Conflict::Skip => {
                    i.action = Change::Skip;
                    i.reason = Some("exists on the target (conflicts: skip)".into());
                }
                Conflict::Update if i.target.is("", "PersistentVolumeClaim") => {
                    // A bound claim's spec is immutable: keep it, refresh its data.
                    i.action = Change::Skip;
                    i.reason = Some(
                        "exists on the target; a claim is kept and its data refreshed".into(),
                    );
                }
                Conflict::Update => {
                    i.action = Change::Update;
                    i.object["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                    if i.target.is("", "Service") {
                        // Immutable on update: keep the target's allocation.
                        i.object["spec"]["clusterIP"] = cur["spec"]["clusterIP"].clone();
                    }
                }
                Conflict::Fail => problems.push(Problem {
                    blocking: true,
                    object: Some(i.target.clone()),
                    message: "exists on the target (conflicts: fail): delete it, or restore with --conflict skip or update".into(),
                }),
            }
        }
    }

    // Server-side dry run of each creation whose namespace exists already.
    let ns_exists =
        |ns: &str| existing.contains_key(&ObjRef::new("", "Namespace", None, ns)) || ns.is_empty();
    // Each object is encoded for its request as the request goes (not all at once).
    let dry: Vec<&PlanItem> = items
        .iter()
        .filter(|i| i.action == Change::Create)
        .filter(|i| i.target.namespace.as_deref().is_none_or(ns_exists))
        .filter(|i| catalog.find(&i.target.group, &i.target.kind).is_some())
        .collect();
    let catalog_ref = &catalog;
    // By position: a stream of borrowed items is not provably `Send` to the compiler
    // (rust-lang/rust#110338), one that borrows them is.
    let dry = &dry;
    let dry_results: Vec<(ObjRef, String)> = futures::stream::iter(0..dry.len())
        .map(|n| async move {
            let i = dry[n];
            let r = &i.target;
            let res = catalog_ref.find(&r.group, &r.kind)?;
            let api = objects::api(client, res, r.namespace.as_deref());
            let dynobj = DynamicObject::deserialize(&i.object).ok()?;
            let pp = PostParams {
                dry_run: true,
                field_manager: Some("ferry".into()),
            };
            match api.create(&pp, &dynobj).await {
                Ok(_) => None,
                Err(e) if objects::is_conflict(&e) => None,
                Err(e) => Some((r.clone(), crate::cluster::explain(&e))),
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    for (r, msg) in dry_results {
        problems.push(Problem {
            blocking: true,
            object: Some(r),
            message: format!("the target's dry run refuses it: {msg}"),
        });
    }

    // Volumes and their data.
    let mut volumes = Vec::new();
    for i in items
        .iter()
        .filter(|i| i.source.is("", "PersistentVolumeClaim"))
    {
        let rec: Option<&VolumeRecord> = meta.volumes.iter().find(|v| {
            Some(v.namespace.as_str()) == i.source.namespace.as_deref() && v.pvc == i.source.name
        });
        let key = format!(
            "volume:{}/{}",
            i.source.namespace.as_deref().unwrap_or(""),
            i.source.name
        );
        let tree = snap.items.get(&key).map(|it| it.tree);
        let mut vp = VolumePlan {
            source: i.source.clone(),
            target: i.target.clone(),
            storage_class: rec.and_then(|r| r.storage_class.clone()),
            target_storage_class: i.object["spec"]["storageClassName"]
                .as_str()
                .map(str::to_string),
            files: rec.map(|r| r.files).unwrap_or(0),
            bytes: rec.map(|r| r.bytes).unwrap_or(0),
            restore_data: opts.include_volumes && tree.is_some(),
            reason: None,
            tree,
        };
        let failed = meta.failed_volumes.iter().find(|f| {
            Some(f.namespace.as_str()) == i.source.namespace.as_deref() && f.pvc == i.source.name
        });
        if let Some(f) = failed {
            vp.reason = Some(format!("its data could not be captured: {}", f.error));
            if opts.include_volumes && i.action != Change::Skip {
                problems.push(Problem {
                    blocking: true,
                    object: Some(i.source.clone()),
                    message: format!(
                        "the capture could not read this claim's data ({}): restoring would leave it empty. Capture again, or restore without volume data (--no-volume-data) to take the objects only",
                        f.error
                    ),
                });
            }
        } else if tree.is_none() {
            vp.reason = Some("the snapshot holds no data for it".into());
        } else if !opts.include_volumes {
            vp.reason = Some("volume data not requested".into());
        }
        let marker = tree.map(|t| format!("{}:{}", snap.id.short(), t.short()));
        if let Some(cur) = existing.get(&i.target) {
            let done =
                cur["metadata"]["annotations"][RESTORED_ANNOTATION].as_str() == marker.as_deref();
            let interrupted =
                cur["metadata"]["annotations"][RESTORING_ANNOTATION].as_str() == marker.as_deref();
            if done {
                vp.restore_data = false;
                vp.reason = Some("already restored from this snapshot".into());
            } else if interrupted && vp.restore_data {
                vp.reason =
                    Some("its data did not all arrive in an earlier run: sent again".into());
            } else if opts.conflict != Conflict::Update && vp.restore_data {
                vp.restore_data = false;
                vp.reason =
                    Some("the claim exists on the target and is kept (conflicts: skip)".into());
            }
        } else if i.action == Change::Skip {
            vp.restore_data = false;
            vp.reason = i.reason.clone();
        }
        volumes.push(vp);
    }
    // Each claim's plan item, by target (thousands of claims among tens of thousands of
    // objects).
    let claim_at: HashMap<ObjRef, usize> = items
        .iter()
        .enumerate()
        .rev() // the first item of a target wins, as a search would find it
        .filter(|(_, i)| i.target.is("", "PersistentVolumeClaim"))
        .map(|(n, i)| (i.target.clone(), n))
        .collect();
    // Claims created here say which data they wait for, so a retry knows its own.
    for v in volumes.iter().filter(|v| v.restore_data) {
        let item = claim_at.get(&v.target).and_then(|n| items.get_mut(*n));
        if let (Some(i), Some(tree)) = (item, v.tree)
            && i.action == Change::Create
            && i.object["metadata"].is_object()
        {
            let marker = format!("{}:{}", snap.id.short(), tree.short());
            let meta = &mut i.object["metadata"];
            if !meta["annotations"].is_object() {
                meta["annotations"] = serde_json::json!({});
            }
            meta["annotations"][RESTORING_ANNOTATION] = serde_json::Value::String(marker);
        }
    }
    // Claims that must grow to hold their data.
    for v in &volumes {
        if let Some(i) = claim_at.get(&v.target).and_then(|n| items.get_mut(*n))
            && let Some(req) = i.object["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .map(str::to_string)
            && let Some(req_bytes) = parse_quantity(&req)
            && v.bytes > req_bytes
        {
            let need = (v.bytes as f64 * 1.2) as u64;
            let gi = need.div_ceil(1 << 30);
            i.object["spec"]["resources"]["requests"]["storage"] = json!(format!("{gi}Gi"));
            i.changes
                .push(format!("size {req} -> {gi}Gi to hold its data"));
        }
    }

    problems.extend(quota_problems(client, &items).await);
    let shared = shared_on_target(client, &catalog, &mut items).await;

    // Order.
    let placed: Vec<(&ObjRef, &Value)> = items
        .iter()
        .filter(|i| i.action != Change::Skip)
        .map(|i| (&i.target, &i.object))
        .collect();
    let source_of: HashMap<&ObjRef, &ObjRef> =
        items.iter().map(|i| (&i.target, &i.source)).collect();
    let crd_of = |r: &ObjRef| {
        if crds_in_snapshot.is_empty() {
            return None;
        }
        crd_for(&crds_in_snapshot, source_of.get(r)?)
    };
    let waves = graph::waves(&placed, &crd_of);
    let wave_of: HashMap<&ObjRef, usize> = waves
        .iter()
        .enumerate()
        .flat_map(|(n, w)| w.iter().map(move |r| (r, n)))
        .collect();
    for i in items.iter_mut() {
        i.wave = wave_of.get(&i.target).copied().unwrap_or(0);
    }
    items.sort_by(|a, b| (a.wave, &a.target).cmp(&(b.wave, &b.target)));

    if items.iter().all(|i| i.action == Change::Skip) && volumes.iter().all(|v| !v.restore_data) {
        problems.push(Problem {
            blocking: false,
            object: None,
            message: "nothing to do: everything exists on the target already".into(),
        });
    }

    let mut findings: Vec<Finding> = items
        .par_iter()
        .filter(|i| i.action != Change::Skip)
        .flat_map_iter(|i| references::scan(&i.object, &mapping))
        .collect();
    findings.extend(shared);

    Ok(Plan {
        findings,
        snapshot: snap.id.short(),
        source_cluster: meta.cluster.clone(),
        target_cluster: target_cluster.into(),
        target_version,
        conflict: opts.conflict,
        storage_class_mapping: mapping.storage_classes.clone(),
        namespace_mapping: mapping.namespaces.clone(),
        items,
        volumes,
        problems,
        mapping,
        data_path: None,
    })
}

/// Takes `metadata.managedFields` out of a captured object: the source's field managers,
/// which the restore gives back once the object is in place (none when the object has
/// no such list).
fn take_managed_fields(obj: &mut Value) -> Vec<Value> {
    match obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
    {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// The plural of a kind: as the target serves it, else as a CRD of the snapshot names
/// it, else as Kubernetes guesses one it is not told (`Kind` -> `kinds`, `Policy` ->
/// `policies`, `Class` -> `classes`).
fn plural_of(catalog: &Catalog, crds: &[Value], r: &ObjRef) -> String {
    catalog
        .find(&r.group, &r.kind)
        .map(|res| res.ar.plural.clone())
        .or_else(|| {
            crds.iter()
                .find(|c| {
                    c["spec"]["group"] == r.group.as_str()
                        && c["spec"]["names"]["kind"] == r.kind.as_str()
                })
                .and_then(|c| c["spec"]["names"]["plural"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| {
            let k = r.kind.to_ascii_lowercase();
            if k.ends_with('s') {
                format!("{k}es")
            } else if let Some(stem) = k.strip_suffix('y') {
                format!("{stem}ies")
            } else {
                format!("{k}s")
            }
        })
}

fn names(classes: &[StorageClassInfo]) -> String {
    if classes.is_empty() {
        return "no storage classes".into();
    }
    classes
        .iter()
        .map(|c| {
            if c.default {
                format!("{} (default)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `s` is a DNS label (a valid namespace name).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses a Kubernetes quantity of bytes (`10Gi`, `500M`, `1024`).
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_labels() {
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("12"), Some(12));
        assert_eq!(parse_quantity("1x"), None);
        assert!(is_dns_label("shop-qa"));
        assert!(!is_dns_label("Shop"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}

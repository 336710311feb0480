//! What changes on an object's way into another cluster: server-populated fields go,
//! namespaces and storage classes are mapped, and options (scale to zero, extra
//! labels, image registries) apply. Each change is recorded in words so the plan can
//! show it. Objects a cluster makes by itself are not restored (see [`skip_reason`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::graph;
use super::objects::ObjRef;
use super::references::{LAST_APPLIED, Rewriter, Services};
use crate::cluster::StorageClassInfo;

/// How a restore transforms objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// Source namespace to target namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// Put before the name of every namespace not mapped by name (`--namespace-prefix`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_prefix: String,
    /// Put after the name of every namespace not mapped by name (`--namespace-suffix`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_suffix: String,
    /// Source storage class to target storage class.
    #[serde(default)]
    pub storage_classes: BTreeMap<String, String>,
    /// Set replicas of workloads to 0 and suspend CronJobs.
    #[serde(default)]
    pub scale_to_zero: bool,
    /// Labels added to every restored object.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Image registry prefixes to replace (`docker.io/library` -> `registry.qa/lib`).
    #[serde(default)]
    pub registries: BTreeMap<String, String>,
    /// Leave DNS names of mapped namespaces as they are (the plan lists them).
    #[serde(default)]
    pub keep_references: bool,
    /// Restore Jobs that completed on the source (they run again).
    #[serde(default)]
    pub include_completed_jobs: bool,
    /// Restore CronJobs suspended.
    #[serde(default)]
    pub suspend_cronjobs: bool,
    /// The Services that come along in this restore: names of these follow the
    /// namespace mapping (filled in by the plan).
    #[serde(skip)]
    pub services: Services,
    /// The source's default storage class: claims and templates without a class get
    /// what it maps to (filled in by the plan).
    #[serde(skip)]
    pub source_default_class: Option<String>,
    /// The source cluster's API server address when the target is another cluster:
    /// objects that still name it are findings (filled in by the plan).
    #[serde(skip)]
    pub source_server: Option<String>,
}

impl Mapping {
    pub fn namespace<'a>(&'a self, ns: &'a str) -> &'a str {
        self.namespaces.get(ns).map(String::as_str).unwrap_or(ns)
    }
}

/// Whether a Job finished successfully (its `Complete` condition is true).
pub fn job_completed(obj: &Value) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Complete" && c["status"] == "True")
}

/// Why an object is not restored (the target makes it itself, or it would do again
/// what it did on the source), if so. Completed Jobs are restored when
/// `map.include_completed_jobs`.
pub fn skip_reason(obj: &Value, map: &Mapping) -> Option<&'static str> {
    skip_reason_of(obj, map).or_else(|| {
        (ObjRef::of(obj).is("batch", "Job") && job_completed(obj) && !map.include_completed_jobs)
            .then_some("completed on the source: not run again (--include-completed-jobs runs it)")
    })
}

fn skip_reason_of(obj: &Value, map: &Mapping) -> Option<&'static str> {
    let r = ObjRef::of(obj);
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Service") if r.name == "kubernetes" && r.namespace.as_deref() == Some("default") => {
            Some("the API server's own Service: every cluster has it")
        }
        ("", "Event") | ("events.k8s.io", "Event") => Some("events describe the source's past"),
        ("", "Endpoints") => Some("endpoints follow their Service on the target"),
        ("discovery.k8s.io", "EndpointSlice") => {
            Some("endpoint slices follow their Service on the target")
        }
        ("coordination.k8s.io", "Lease") => Some("leases belong to the source's controllers"),
        ("apps", "ControllerRevision") => Some("controller revisions are made by their owner"),
        ("", "PersistentVolume") => Some("volumes are provisioned for their claims on the target"),
        ("storage.k8s.io", "StorageClass") => Some("storage classes are mapped, not copied"),
        ("", "ServiceAccount") if r.name == "default" => {
            Some("every namespace gets its own default service account")
        }
        ("", "ConfigMap") if r.name == "kube-root-ca.crt" => {
            Some("each cluster publishes its own root CA")
        }
        ("", "Secret")
            if obj["type"] == "kubernetes.io/service-account-token"
                && r.name.contains("-token-") =>
        {
            Some("service account tokens are issued by the target")
        }
        _ => {
            if graph::controller_owner(obj).is_some() {
                Some("made by its owner, which is restored")
            } else if r.kind == "Namespace"
                && matches!(
                    r.name.as_str(),
                    "default" | "kube-system" | "kube-public" | "kube-node-lease"
                )
                // Renamed, it is a namespace like any other, which the target lacks.
                && map.namespace(&r.name) == r.name
            {
                Some("system namespaces exist on every cluster")
            } else {
                None
            }
        }
    }
}

fn remove(m: &mut Map<String, Value>, key: &str, changes: &mut Vec<String>, why: &str) {
    if m.remove(key).is_some() && !why.is_empty() {
        changes.push(why.to_string());
    }
}

/// Transforms a captured object for the target; returns the new object and what
/// changed, in words.
pub fn transform(obj: &Value, map: &Mapping) -> (Value, Vec<String>) {
    transform_at(obj, map, true)
}

/// [`transform`]; `nested` objects (the one `kubectl apply` recorded) are transformed
/// too, once.
fn transform_at(obj: &Value, map: &Mapping, nested: bool) -> (Value, Vec<String>) {
    let mut o = obj.clone();
    let mut changes = Vec::new();
    // The object `kubectl apply` recorded is transformed alike, so a later apply in
    // the target compares with what the target holds; one that cannot be read goes.
    if let Some(a) = o
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && let Some(v) = a.get_mut(LAST_APPLIED)
    {
        match v.as_str().map(serde_json::from_str::<Value>) {
            Some(Ok(applied)) if nested && applied.is_object() => {
                *v = json!(transform_at(&applied, map, false).0.to_string());
            }
            _ => {
                a.remove(LAST_APPLIED);
                if nested {
                    changes.push(format!("{LAST_APPLIED} dropped: it is not an object"));
                }
            }
        }
    }
    let r = ObjRef::of(obj);
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    // Metadata the source server populated. The restore puts managedFields back once
    // the object exists (`PlanItem::managed_fields`): a create would make them Ferry's.
    if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            md.remove(k);
        }
        if let Some(a) = md.get_mut("annotations").and_then(Value::as_object_mut) {
            for k in [
                "deployment.kubernetes.io/revision",
                "pv.kubernetes.io/bind-completed",
                "pv.kubernetes.io/bound-by-controller",
                "volume.kubernetes.io/selected-node",
                "volume.beta.kubernetes.io/storage-provisioner",
                "volume.kubernetes.io/storage-provisioner",
                "control-plane.alpha.kubernetes.io/leader",
                // Ferry's own marks of an earlier restore say nothing about this one.
                super::RESTORED_ANNOTATION,
                super::RESTORING_ANNOTATION,
            ] {
                remove(a, k, &mut changes, "");
            }
        }
        // Namespace mapping.
        if let Some(ns) = md
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let to = map.namespace(&ns).to_string();
            if to != ns {
                md.insert("namespace".into(), json!(to));
                changes.push(format!("namespace {ns} -> {to}"));
            }
        }
        if r.is("", "Namespace") {
            let to = map.namespace(&r.name).to_string();
            if to != r.name {
                md.insert("name".into(), json!(to));
                changes.push(format!("renamed {} -> {to}", r.name));
            }
            // The labels that spell the namespace's name follow it.
            if let Some(l) = md.get_mut("labels").and_then(Value::as_object_mut) {
                l.insert("kubernetes.io/metadata.name".into(), json!(to));
                if to != r.name && l.get("name").and_then(Value::as_str) == Some(&r.name) {
                    l.insert("name".into(), json!(to));
                    changes.push(format!("label name={} -> name={to}", r.name));
                }
            }
        }
        if !map.labels.is_empty() {
            let l = md.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = l.as_object_mut() {
                for (k, v) in &map.labels {
                    l.insert(k.clone(), json!(v));
                }
                changes.push(format!(
                    "labels added: {}",
                    map.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
        }
    }
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Service") => {
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
                if !headless {
                    remove(
                        spec,
                        "clusterIP",
                        &mut changes,
                        "cluster IP left to the target",
                    );
                    spec.remove("clusterIPs");
                }
                // Node ports the user did not choose (not in the last applied
                // configuration) are the source's allocation.
                let chosen = last_applied(obj)
                    .map(|l| {
                        l["spec"]["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["nodePort"].is_number())
                    })
                    .unwrap_or(false);
                if !chosen && let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut)
                {
                    let mut any = false;
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        any |= p.remove("nodePort").is_some();
                    }
                    if any {
                        changes.push("node ports left to the target".into());
                    }
                }
                spec.remove("healthCheckNodePort");
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                remove(
                    spec,
                    "volumeName",
                    &mut changes,
                    "bound volume left to the target's provisioner",
                );
                spec.remove("dataSource");
                spec.remove("dataSourceRef");
            }
            map_claim_class(&mut o, map, "", &mut changes);
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => {
            // A webhook calls its service in the namespace it moved to.
            for h in o
                .get_mut("webhooks")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let svc = &mut h["clientConfig"]["service"];
                if let Some(ns) = svc["namespace"].as_str().map(str::to_string) {
                    let to = map.namespace(&ns).to_string();
                    if to != ns {
                        svc["namespace"] = json!(to);
                        changes.push(format!("webhook service namespace {ns} -> {to}"));
                    }
                }
            }
        }
        ("rbac.authorization.k8s.io", kind @ ("RoleBinding" | "ClusterRoleBinding")) => {
            let mut moved_to: Vec<String> = Vec::new();
            if let Some(subs) = o.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subs.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some((ns, new)) = s
                        .get("name")
                        .and_then(Value::as_str)
                        .and_then(|n| subject_name(n, map))
                    {
                        changes.push(format!(
                            "subject {} -> {new}",
                            s["name"].as_str().unwrap_or("")
                        ));
                        s.insert("name".into(), json!(new));
                        moved_to.push(map.namespace(&ns).to_string());
                    }
                    if let Some(ns) = s
                        .get("namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                    {
                        let to = map.namespace(&ns).to_string();
                        if to != ns {
                            s.insert("namespace".into(), json!(to));
                            changes.push(format!("subject namespace {ns} -> {to}"));
                            moved_to.push(to);
                        }
                    }
                }
            }
            // A cluster-wide binding for a renamed namespace gets a name of its own: a
            // clone into the same cluster must not take over (or be refused by) the
            // source namespace's binding.
            moved_to.sort();
            moved_to.dedup();
            if kind == "ClusterRoleBinding"
                && !moved_to.is_empty()
                && let Some(name) = o["metadata"]["name"].as_str().map(str::to_string)
            {
                let renamed = format!("{name}-{}", moved_to.join("-"));
                o["metadata"]["name"] = json!(renamed);
                changes.push(format!("renamed {name} -> {renamed}"));
            }
        }
        ("", "Secret") if obj["type"] == "kubernetes.io/service-account-token" => {
            // No credential of the source arrives: the target's token controller
            // fills the Secret for the account it names.
            if let Some(m) = o.as_object_mut() {
                let had = m.remove("data").is_some() | m.remove("stringData").is_some();
                if had {
                    changes.push("token data left out: the target issues its own".into());
                }
            }
            if let Some(a) = o["metadata"]
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                a.remove("kubernetes.io/service-account.uid");
            }
        }
        ("", "ServiceAccount") => {
            if let Some(m) = o.as_object_mut() {
                // Token secrets are issued anew on the target.
                if let Some(secrets) = m.get_mut("secrets").and_then(Value::as_array_mut) {
                    let before = secrets.len();
                    secrets.retain(|s| !s["name"].as_str().unwrap_or("").contains("-token-"));
                    if secrets.len() != before {
                        changes.push("token secret references dropped".into());
                    }
                }
            }
        }
        _ => {}
    }
    // Pods and pod templates.
    let spec_path = match (r.group.as_str(), r.kind.as_str()) {
        ("", "Pod") => Some("/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ if graph::pod_spec(obj).is_some() => Some("/spec/template/spec"),
        _ => None,
    };
    if let Some(p) = spec_path
        && let Some(spec) = o.pointer_mut(p).and_then(Value::as_object_mut)
    {
        if r.kind == "Pod" {
            remove(
                spec,
                "nodeName",
                &mut changes,
                "node assignment left to the target's scheduler",
            );
            // Projected service account token volumes are injected by the target.
            let mut dropped = Vec::new();
            if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
                vols.retain(|v| {
                    let n = v["name"].as_str().unwrap_or("");
                    let token = n.starts_with("kube-api-access-");
                    if token {
                        dropped.push(n.to_string());
                    }
                    !token
                });
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut() {
                        if let Some(ms) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                            ms.retain(|m| !dropped.iter().any(|d| m["name"] == d.as_str()));
                        }
                    }
                }
            }
            if !dropped.is_empty() {
                changes.push("service account token volume left to the target".into());
            }
        }
        if !map.registries.is_empty() {
            for list in ["containers", "initContainers"] {
                if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(img) =
                            c.get("image").and_then(Value::as_str).map(str::to_string)
                            && let Some(new) = replace_registry(&img, &map.registries)
                        {
                            changes.push(format!("image {img} -> {new}"));
                            c.insert("image".into(), json!(new));
                        }
                    }
                }
            }
        }
    }
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut)
        && r.is("apps", "StatefulSet")
        && let Some(tpls) = spec
            .get_mut("volumeClaimTemplates")
            .and_then(Value::as_array_mut)
    {
        for t in tpls.iter_mut() {
            let name = t["metadata"]["name"].as_str().unwrap_or("").to_string();
            map_claim_class(t, map, &format!("claim template {name}: "), &mut changes);
            if let Some(m) = t.as_object_mut() {
                m.remove("status");
            }
        }
    }
    if map.suspend_cronjobs
        && r.is("batch", "CronJob")
        && o["spec"].is_object()
        && o["spec"]["suspend"] != json!(true)
    {
        o["spec"]["suspend"] = json!(true);
        changes.push("suspended (--suspend-cronjobs)".into());
    }
    if map.scale_to_zero {
        match (r.group.as_str(), r.kind.as_str()) {
            ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => {
                o["spec"]["replicas"] = json!(0);
                changes.push("scaled to zero".into());
            }
            ("batch", "CronJob") => {
                o["spec"]["suspend"] = json!(true);
                changes.push("suspended".into());
            }
            _ => {}
        }
    }
    // Helm's marks on its objects, and its release records, which name their namespace
    // and objects inside their payload.
    changes.extend(super::helm::follow_release_namespace(
        &mut o,
        &map.namespaces,
    ));
    if let Some(from) = obj["metadata"]["namespace"].as_str() {
        let to = map.namespace(from);
        if to != from {
            match super::helm::rewrite_release(&o, from, to, &|d| transform(d, map)) {
                Ok(Some((record, lines))) => {
                    o = record;
                    changes.extend(lines);
                }
                Ok(None) => {}
                Err(e) => changes.push(format!(
                    "helm release record could not be rewritten, it still names namespace {from}: {e}"
                )),
            }
        }
    }
    changes.sort();
    changes.dedup();
    // Names of services that come along follow them (after the sort: in field order).
    let mut refs = Vec::new();
    Rewriter::new(map).object(&mut o, &mut refs);
    for r in refs {
        if let Some(new) = r.rewritten {
            changes.push(format!("{}: {} -> {new}", r.path, r.found));
        }
    }
    (o, changes)
}

/// The annotation older clusters (and some charts) name a claim's class with.
pub const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Maps the class of a claim or claim template: `spec.storageClassName` and the beta
/// annotation alike; one with neither gets what the source's default class maps to.
fn map_claim_class(c: &mut Value, map: &Mapping, what: &str, changes: &mut Vec<String>) {
    let mapped = |sc: &str| map.storage_classes.get(sc).filter(|to| *to != sc).cloned();
    let mut named = false;
    if let Some(sc) = c["spec"]["storageClassName"].as_str().map(str::to_string) {
        named = true;
        if let Some(to) = mapped(&sc) {
            c["spec"]["storageClassName"] = json!(to);
            changes.push(format!("{what}storage class {sc} -> {to}"));
        }
    }
    if let Some(a) = c["metadata"]
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        && let Some(sc) = a
            .get(BETA_CLASS)
            .and_then(Value::as_str)
            .map(str::to_string)
    {
        named = true;
        if let Some(to) = mapped(&sc) {
            a.insert(BETA_CLASS.into(), json!(to));
            changes.push(format!(
                "{what}storage class (annotation {BETA_CLASS}) {sc} -> {to}"
            ));
        }
    }
    if !named
        && c["spec"].is_object()
        && let Some(def) = &map.source_default_class
        && let Some(to) = mapped(def)
    {
        c["spec"]["storageClassName"] = json!(to);
        changes.push(format!(
            "{what}storage class: none named, so the source's default {def} -> {to}"
        ));
    }
}

/// The class a claim or claim template names (`spec.storageClassName`, else the beta
/// annotation); `None` when it names none (the cluster's default applies).
pub fn claim_class(c: &Value) -> Option<&str> {
    c["spec"]["storageClassName"]
        .as_str()
        .or_else(|| c["metadata"]["annotations"][BETA_CLASS].as_str())
}

/// An RBAC subject name that spells a renamed namespace (`system:serviceaccounts:shop`,
/// `system:serviceaccount:shop:web`): the namespace and the new name.
fn subject_name(name: &str, map: &Mapping) -> Option<(String, String)> {
    if let Some(ns) = name.strip_prefix("system:serviceaccounts:") {
        let to = map.namespace(ns);
        return (to != ns).then(|| (ns.to_string(), format!("system:serviceaccounts:{to}")));
    }
    let (ns, sa) = name
        .strip_prefix("system:serviceaccount:")?
        .split_once(':')?;
    let to = map.namespace(ns);
    (to != ns).then(|| (ns.to_string(), format!("system:serviceaccount:{to}:{sa}")))
}

fn last_applied(obj: &Value) -> Option<Value> {
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
}

fn replace_registry(image: &str, registries: &BTreeMap<String, String>) -> Option<String> {
    registries
        .iter()
        .filter(|(from, _)| image.starts_with(&format!("{from}/")))
        .max_by_key(|(from, _)| from.len())
        .map(|(from, to)| format!("{to}{}", &image[from.len()..]))
}

/// The Azure Disk CSI driver, whose `managed-csi` class AKS targets are offered.
const AZURE_DISK_PROVISIONER: &str = "disk.csi.azure.com";

/// The kind of disk a class provisions, by the parameter its driver reads: EBS's
/// `type` (`gp3`), Azure Disk's `skuName` (`Premium_LRS`; the key in any case, as the
/// driver accepts it). Lowercased.
fn disk_type(c: &StorageClassInfo) -> Option<String> {
    c.parameters
        .iter()
        .find(|(k, _)| *k == "type" || k.eq_ignore_ascii_case("skuname"))
        .map(|(_, v)| v.to_ascii_lowercase())
}

/// Suggests a target class for each source class: the same name, else the same
/// provisioner with the same kind of disk (EBS `type`, Azure Disk `skuName`), else the
/// same provisioner's default, else the same provisioner, else a class whose name
/// equals the source's `type` parameter (`gp3`), else, on an AKS target (Azure Disk
/// CSI), `managed-csi`, else the default.
pub fn suggest_storage_classes(
    source: &[StorageClassInfo],
    used: &[String],
    target: &[StorageClassInfo],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in used {
        let src = source.iter().find(|s| &s.name == name);
        let pick = target
            .iter()
            .find(|t| &t.name == name)
            .or_else(|| {
                src.and_then(|s| {
                    let ty = disk_type(s)?;
                    target.iter().find(|t| {
                        t.provisioner == s.provisioner && disk_type(t).as_ref() == Some(&ty)
                    })
                })
            })
            .or_else(|| {
                src.and_then(|s| {
                    let ty = s.parameters.get("type")?;
                    target.iter().find(|t| &t.name == ty)
                })
            })
            .or_else(|| {
                src.and_then(|s| {
                    target
                        .iter()
                        .find(|t| t.provisioner == s.provisioner && t.default)
                })
            })
            .or_else(|| src.and_then(|s| target.iter().find(|t| t.provisioner == s.provisioner)))
            .or_else(|| {
                target
                    .iter()
                    .find(|t| t.provisioner == AZURE_DISK_PROVISIONER && t.name == "managed-csi")
            })
            .or_else(|| target.iter().find(|t| t.default));
        if let Some(t) = pick {
            out.insert(name.clone(), t.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_role_bindings_of_a_renamed_namespace_get_their_own_name() {
        let crb = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "shop-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
        });
        let map = Mapping {
            namespaces: [("shop".to_string(), "shop-copy".to_string())].into(),
            ..Mapping::default()
        };
        let (o, changes) = transform(&crb, &map);
        assert_eq!(o["metadata"]["name"], "shop-reader-shop-copy");
        assert_eq!(o["subjects"][0]["namespace"], "shop-copy");
        assert!(changes.iter().any(|c| c.contains("renamed")), "{changes:?}");
        // Same namespace on another cluster: the name stays.
        let (o, _) = transform(&crb, &Mapping::default());
        assert_eq!(o["metadata"]["name"], "shop-reader");
    }

    use super::*;

    fn sc(name: &str, prov: &str, ty: Option<&str>, default: bool) -> StorageClassInfo {
        StorageClassInfo {
            name: name.into(),
            provisioner: prov.into(),
            parameters: ty
                .map(|t| [("type".to_string(), t.to_string())].into())
                .unwrap_or_default(),
            default,
            binding_mode: "WaitForFirstConsumer".into(),
            allow_expansion: true,
        }
    }

    #[test]
    fn storage_classes_map_by_name_then_parameters_then_default() {
        let src = vec![
            sc("ebs-sc", "ebs.csi.aws.com", Some("gp3"), true),
            sc("fast", "x.csi", None, false),
        ];
        let tgt = vec![
            sc("gp2", "ebs.csi.aws.com", Some("gp2"), true),
            sc("gp3", "ebs.csi.aws.com", Some("gp3"), false),
        ];
        let m = suggest_storage_classes(&src, &["ebs-sc".into(), "fast".into()], &tgt);
        assert_eq!(m["ebs-sc"], "gp3");
        assert_eq!(m["fast"], "gp2");
        let same = suggest_storage_classes(&src, &["ebs-sc".into()], &src);
        assert_eq!(same["ebs-sc"], "ebs-sc");
        // An AKS target: EBS classes go to managed-csi, even when another is default.
        let aks = vec![
            sc("managed-csi-premium", "disk.csi.azure.com", None, true),
            sc("managed-csi", "disk.csi.azure.com", None, false),
        ];
        let m = suggest_storage_classes(&src, &["ebs-sc".into(), "fast".into()], &aks);
        assert_eq!(m["ebs-sc"], "managed-csi");
        assert_eq!(m["fast"], "managed-csi");
        // Azure Disk classes keep their SKU: a premium class goes to the target's
        // premium class although another is the default (the key's case as written).
        let sku = |name: &str, key: &str, v: &str, default: bool| StorageClassInfo {
            parameters: [(key.to_string(), v.to_string())].into(),
            ..sc(name, "disk.csi.azure.com", None, default)
        };
        let src = vec![sku("azure-disk-premium", "skuName", "Premium_LRS", true)];
        let aks = vec![
            sku("managed-csi", "skuname", "StandardSSD_LRS", true),
            sku("managed-csi-premium", "skuname", "Premium_LRS", false),
        ];
        let m = suggest_storage_classes(&src, &["azure-disk-premium".into()], &aks);
        assert_eq!(m["azure-disk-premium"], "managed-csi-premium");
        let src = vec![sku("azure-disk-hdd", "skuName", "Standard_LRS", true)];
        let m = suggest_storage_classes(&src, &["azure-disk-hdd".into()], &aks);
        assert_eq!(
            m["azure-disk-hdd"], "managed-csi",
            "no Standard_LRS: the default"
        );
    }

    #[test]
    fn services_lose_allocated_ips_and_ports_but_keep_chosen_ones() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "5"},
            "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 31234}]},
            "status": {"loadBalancer": {}}});
        let map = Mapping {
            namespaces: [("shop".into(), "shop-qa".into())].into(),
            ..Mapping::default()
        };
        let (o, changes) = transform(&svc, &map);
        assert!(o["spec"]["clusterIP"].is_null() && o["spec"]["ports"][0]["nodePort"].is_null());
        assert!(o["metadata"]["uid"].is_null() && o["status"].is_null());
        assert_eq!(o["metadata"]["namespace"], "shop-qa");
        assert!(
            changes
                .iter()
                .any(|c| c.contains("namespace shop -> shop-qa"))
        );
        let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None"}});
        assert_eq!(transform(&headless, &map).0["spec"]["clusterIP"], "None");
    }

    #[test]
    fn claims_are_unbound_and_mapped_and_owned_objects_skipped() {
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"storageClassName": "ebs-sc", "volumeName": "pvc-1", "accessModes": ["ReadWriteOnce"]}});
        let map = Mapping {
            storage_classes: [("ebs-sc".into(), "gp2".into())].into(),
            ..Mapping::default()
        };
        let (o, _) = transform(&pvc, &map);
        assert_eq!(o["spec"]["storageClassName"], "gp2");
        assert!(o["spec"]["volumeName"].is_null());
        assert!(o["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"].is_null());
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "shop",
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}});
        assert!(skip_reason(&rs, &Mapping::default()).is_some());
        assert!(skip_reason(&pvc, &Mapping::default()).is_none());
    }

    #[test]
    fn system_namespaces_are_skipped_unless_renamed() {
        let default =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        assert!(skip_reason(&default, &Mapping::default()).is_some());
        let renamed = Mapping {
            namespaces: [("default".into(), "default-qa".into())].into(),
            ..Mapping::default()
        };
        assert_eq!(skip_reason(&default, &renamed), None);
        // The API server's own Service is skipped wherever its namespace goes.
        let api = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {"ports": [{"port": 443}]}});
        assert!(skip_reason(&api, &renamed).is_some());
        let other = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "shop"}, "spec": {"ports": [{"port": 443}]}});
        assert_eq!(skip_reason(&other, &renamed), None);
    }

    #[test]
    fn registries_and_scale_to_zero() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "docker.io/library/nginx:1"}]}}}});
        let map = Mapping {
            scale_to_zero: true,
            registries: [("docker.io/library".into(), "registry.qa".into())].into(),
            ..Mapping::default()
        };
        let (o, _) = transform(&d, &map);
        assert_eq!(o["spec"]["replicas"], 0);
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.qa/nginx:1"
        );
    }

    fn qa() -> Mapping {
        Mapping {
            namespaces: [("shop".to_string(), "shop-qa".to_string())].into(),
            storage_classes: [("standard".to_string(), "gp2".to_string())].into(),
            source_default_class: Some("standard".into()),
            ..Mapping::default()
        }
    }

    #[test]
    fn subjects_tokens_namespaces_and_jobs_follow_the_mapping() {
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:shop"},
                         {"kind": "User", "name": "system:serviceaccount:shop:web"},
                         {"kind": "Group", "name": "system:serviceaccounts:other"}]});
        let (o, changes) = transform(&rb, &qa());
        assert_eq!(o["subjects"][0]["name"], "system:serviceaccounts:shop-qa");
        assert_eq!(
            o["subjects"][1]["name"],
            "system:serviceaccount:shop-qa:web"
        );
        assert_eq!(o["subjects"][2]["name"], "system:serviceaccounts:other");
        assert!(
            changes
                .iter()
                .any(|c| c.contains("subject system:serviceaccounts:shop ->")),
            "{changes:?}"
        );

        let token = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "ci-token", "namespace": "shop", "annotations": {
                "kubernetes.io/service-account.name": "ci", "kubernetes.io/service-account.uid": "u-1"}},
            "data": {"token": "c2VjcmV0", "ca.crt": "Y2E="}});
        assert!(skip_reason(&token, &qa()).is_none());
        let (o, _) = transform(&token, &qa());
        assert!(o.get("data").is_none(), "no credential of the source: {o}");
        assert!(o["metadata"]["annotations"]["kubernetes.io/service-account.uid"].is_null());
        assert_eq!(
            o["metadata"]["annotations"]["kubernetes.io/service-account.name"],
            "ci"
        );

        let applied = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"labels":{"name":"shop"},"name":"shop"}}"#;
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop",
            "labels": {"name": "shop", "kubernetes.io/metadata.name": "shop", "team": "a"},
            "annotations": {LAST_APPLIED: applied}}});
        let (o, _) = transform(&ns, &qa());
        assert_eq!(o["metadata"]["labels"]["name"], "shop-qa");
        assert_eq!(
            o["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "shop-qa"
        );
        let la: Value =
            serde_json::from_str(o["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap())
                .unwrap();
        assert_eq!(la["metadata"]["name"], "shop-qa");
        assert_eq!(la["metadata"]["labels"]["name"], "shop-qa");

        let dep_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"}}"#;
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
            "annotations": {LAST_APPLIED: dep_applied}}, "spec": {}});
        let (o, _) = transform(&d, &qa());
        let la: Value =
            serde_json::from_str(o["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap())
                .unwrap();
        assert_eq!(la["metadata"]["namespace"], "shop-qa");

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "shop"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}});
        assert!(skip_reason(&job, &qa()).is_some());
        let mut all = qa();
        all.include_completed_jobs = true;
        assert!(skip_reason(&job, &all).is_none());
        let running = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m", "namespace": "shop"}, "status": {"active": 1}});
        assert!(skip_reason(&running, &qa()).is_none());
    }

    #[test]
    fn the_beta_class_annotation_and_unnamed_classes_are_mapped() {
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop", "annotations": {BETA_CLASS: "standard"}},
            "spec": {"accessModes": ["ReadWriteOnce"]}});
        assert_eq!(claim_class(&pvc), Some("standard"));
        let (o, _) = transform(&pvc, &qa());
        assert_eq!(o["metadata"]["annotations"][BETA_CLASS], "gp2");
        assert!(
            o["spec"]["storageClassName"].is_null(),
            "the annotation alone names it"
        );
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": []}}, "volumeClaimTemplates": [
                {"metadata": {"name": "a"}, "spec": {}},
                {"metadata": {"name": "b", "annotations": {BETA_CLASS: "standard"}}, "spec": {}},
                {"metadata": {"name": "c"}, "spec": {"storageClassName": ""}}]}});
        let mut map = qa();
        map.suspend_cronjobs = true;
        let (o, changes) = transform(&sts, &map);
        let t = &o["spec"]["volumeClaimTemplates"];
        assert_eq!(t[0]["spec"]["storageClassName"], "gp2", "{changes:?}");
        assert_eq!(t[1]["metadata"]["annotations"][BETA_CLASS], "gp2");
        assert!(t[1]["spec"]["storageClassName"].is_null());
        assert_eq!(
            t[2]["spec"]["storageClassName"], "",
            "no class on purpose stays so"
        );
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "shop"}, "spec": {"schedule": "* * * * *"}});
        assert_eq!(transform(&cj, &map).0["spec"]["suspend"], true);
        assert!(transform(&cj, &qa()).0["spec"]["suspend"].is_null());
    }
}

//! What an object refers to, which objects select others, the dependency closure of
//! chosen workloads and the order a restore creates objects in.
//!
//! References are read from the objects themselves (pod templates, role bindings,
//! ingress backends, HPA targets, claims and classes), so the order of a restore
//! follows the actual graph: an object is created after everything it refers to.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use serde_json::{Map, Value};

use super::objects::ObjRef;

/// The pod spec inside a workload, if it has one.
pub fn pod_spec(obj: &Value) -> Option<&Value> {
    let r = ObjRef::of(obj);
    let p = match (r.group.as_str(), r.kind.as_str()) {
        ("", "Pod") => "/spec",
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            "/spec/template/spec"
        }
        ("", "ReplicationController") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    obj.pointer(p).filter(|v| v.is_object())
}

/// The names of the volumes by which the pods of `obj` (a Pod, or a workload's pod
/// template) mount `claim`: a volume naming it, or a StatefulSet's
/// `volumeClaimTemplates`, whose claims are `<template>-<set>-<ordinal>`.
pub fn claim_volumes<'a>(obj: &'a Value, claim: &str) -> Vec<&'a str> {
    let Some(spec) = pod_spec(obj) else {
        return Vec::new();
    };
    let mut volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some(claim))
        .filter_map(|v| v["name"].as_str())
        .collect();
    if obj["kind"] == "StatefulSet"
        && let Some(set) = obj["metadata"]["name"].as_str()
    {
        for t in obj["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(tn) = t["metadata"]["name"].as_str() else {
                continue;
            };
            let ordinal = claim.strip_prefix(&format!("{tn}-{set}-"));
            if ordinal.is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit())) {
                volumes.push(tn);
            }
        }
    }
    volumes
}

/// The labels pods of a workload carry.
pub fn pod_labels(obj: &Value) -> Option<&Map<String, Value>> {
    let r = ObjRef::of(obj);
    let p = match r.kind.as_str() {
        "Pod" => "/metadata/labels",
        "CronJob" => "/spec/jobTemplate/spec/template/metadata/labels",
        _ => "/spec/template/metadata/labels",
    };
    obj.pointer(p).and_then(Value::as_object)
}

/// Whether a workload kind runs pods (and so is a unit the user can pick).
pub fn is_workload(r: &ObjRef) -> bool {
    matches!(
        (r.group.as_str(), r.kind.as_str()),
        ("", "Pod")
            | (
                "apps",
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
            )
            | ("batch", "Job" | "CronJob")
    )
}

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

fn arr(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// Everything `obj` refers to by name. Cluster-scoped targets have no namespace.
pub fn references(obj: &Value) -> Vec<ObjRef> {
    let me = ObjRef::of(obj);
    let ns = me.namespace.as_deref();
    let mut out = Vec::new();
    let mut push = |group: &str, kind: &str, namespace: Option<&str>, name: Option<&str>| {
        if let Some(n) = name {
            out.push(ObjRef::new(group, kind, namespace, n));
        }
    };
    if let Some(n) = ns {
        push("", "Namespace", None, Some(n));
    }
    if let Some(spec) = pod_spec(obj) {
        for v in arr(&spec["volumes"]) {
            push("", "ConfigMap", ns, s(&v["configMap"]["name"]));
            push("", "Secret", ns, s(&v["secret"]["secretName"]));
            push(
                "",
                "PersistentVolumeClaim",
                ns,
                s(&v["persistentVolumeClaim"]["claimName"]),
            );
            for src in arr(&v["projected"]["sources"]) {
                push("", "ConfigMap", ns, s(&src["configMap"]["name"]));
                push("", "Secret", ns, s(&src["secret"]["name"]));
            }
        }
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            for c in arr(&spec[list]) {
                for e in arr(&c["env"]) {
                    push(
                        "",
                        "ConfigMap",
                        ns,
                        s(&e["valueFrom"]["configMapKeyRef"]["name"]),
                    );
                    push("", "Secret", ns, s(&e["valueFrom"]["secretKeyRef"]["name"]));
                }
                for e in arr(&c["envFrom"]) {
                    push("", "ConfigMap", ns, s(&e["configMapRef"]["name"]));
                    push("", "Secret", ns, s(&e["secretRef"]["name"]));
                }
            }
        }
        for p in arr(&spec["imagePullSecrets"]) {
            push("", "Secret", ns, s(&p["name"]));
        }
        let sa = s(&spec["serviceAccountName"])
            .or_else(|| s(&spec["serviceAccount"]))
            .unwrap_or("default");
        push("", "ServiceAccount", ns, Some(sa));
        if let Some(pc) = s(&spec["priorityClassName"]) {
            push("scheduling.k8s.io", "PriorityClass", None, Some(pc));
        }
    }
    match (me.group.as_str(), me.kind.as_str()) {
        ("apps", "StatefulSet") => {
            push("", "Service", ns, s(&obj["spec"]["serviceName"]));
            let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
            for t in arr(&obj["spec"]["volumeClaimTemplates"]) {
                if let Some(tn) = s(&t["metadata"]["name"]) {
                    for i in 0..replicas {
                        let name = format!("{tn}-{}-{i}", me.name);
                        push("", "PersistentVolumeClaim", ns, Some(&name));
                    }
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let rr = &obj["roleRef"];
            match s(&rr["kind"]) {
                Some("Role") => push("rbac.authorization.k8s.io", "Role", ns, s(&rr["name"])),
                Some("ClusterRole") => push(
                    "rbac.authorization.k8s.io",
                    "ClusterRole",
                    None,
                    s(&rr["name"]),
                ),
                _ => {}
            }
            for sub in arr(&obj["subjects"]) {
                if s(&sub["kind"]) == Some("ServiceAccount") {
                    let sns = s(&sub["namespace"]).or(ns);
                    push("", "ServiceAccount", sns, s(&sub["name"]));
                }
            }
        }
        ("networking.k8s.io", "Ingress") => {
            push(
                "",
                "Service",
                ns,
                s(&obj["spec"]["defaultBackend"]["service"]["name"]),
            );
            for rule in arr(&obj["spec"]["rules"]) {
                for p in arr(&rule["http"]["paths"]) {
                    push("", "Service", ns, s(&p["backend"]["service"]["name"]));
                }
            }
            for t in arr(&obj["spec"]["tls"]) {
                push("", "Secret", ns, s(&t["secretName"]));
            }
            if let Some(c) = s(&obj["spec"]["ingressClassName"]) {
                push("networking.k8s.io", "IngressClass", None, Some(c));
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let t = &obj["spec"]["scaleTargetRef"];
            let group = s(&t["apiVersion"])
                .and_then(|v| v.rsplit_once('/').map(|(g, _)| g))
                .unwrap_or("");
            push(group, t["kind"].as_str().unwrap_or(""), ns, s(&t["name"]));
        }
        ("", "PersistentVolumeClaim") => {
            push(
                "storage.k8s.io",
                "StorageClass",
                None,
                s(&obj["spec"]["storageClassName"]),
            );
            push("", "PersistentVolume", None, s(&obj["spec"]["volumeName"]));
        }
        ("", "PersistentVolume") => {
            push(
                "storage.k8s.io",
                "StorageClass",
                None,
                s(&obj["spec"]["storageClassName"]),
            );
        }
        ("", "ServiceAccount") => {
            for x in arr(&obj["secrets"]).chain(arr(&obj["imagePullSecrets"])) {
                push("", "Secret", ns, s(&x["name"]));
            }
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out.retain(|r| r != &me);
    out
}

/// Whether a label selector (`matchLabels`/`matchExpressions`, or a plain map as
/// Services use) selects `labels`. An empty selector selects everything.
pub fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let Some(sel) = selector.as_object() else {
        return false;
    };
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let structured = sel.contains_key("matchLabels") || sel.contains_key("matchExpressions");
    if !structured {
        return sel.iter().all(|(k, v)| get(k) == v.as_str());
    }
    let ml_ok = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let me_ok = arr(sel.get("matchExpressions").unwrap_or(&Value::Null)).all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = arr(&e["values"]).filter_map(Value::as_str).collect();
        match e["operator"].as_str().unwrap_or("") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    });
    ml_ok && me_ok
}

/// Objects that act on a workload without it naming them: Services, NetworkPolicies
/// and PodDisruptionBudgets selecting its pods, HPAs scaling it.
fn selects_workload(candidate: &Value, workload: &Value) -> bool {
    let c = ObjRef::of(candidate);
    let w = ObjRef::of(workload);
    if c.namespace != w.namespace {
        return false;
    }
    let Some(labels) = pod_labels(workload) else {
        return false;
    };
    match (c.group.as_str(), c.kind.as_str()) {
        ("", "Service") => {
            let sel = &candidate["spec"]["selector"];
            sel.as_object().is_some_and(|m| !m.is_empty()) && selects(sel, labels)
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            selects(&candidate["spec"]["podSelector"], labels)
        }
        ("policy", "PodDisruptionBudget") => {
            let sel = &candidate["spec"]["selector"];
            !sel.is_null() && selects(sel, labels)
        }
        _ => false,
    }
}

/// The dependency closure of `seeds` among `all` (one or more namespaces' objects):
/// what they refer to, the Services they name in their configuration and the
/// workloads behind those, and what refers to or selects them (Services, Ingresses to
/// those Services, HPAs, PDBs, NetworkPolicies, RoleBindings for their
/// ServiceAccounts). Each object comes with why it is included, in words.
pub fn closure(all: &[Value], seeds: &[ObjRef]) -> BTreeMap<ObjRef, String> {
    Graph::new(all).closure(seeds)
}

/// Objects indexed for [`Graph::closure`]: built once, asked for the closure of many
/// seeds (each workload of a namespace) without reading every object again.
pub struct Graph<'a> {
    by_ref: HashMap<ObjRef, &'a Value>,
    refs: Vec<(ObjRef, Vec<ObjRef>)>,
    namespaces: BTreeSet<&'a str>,
}

impl<'a> Graph<'a> {
    pub fn new(all: &'a [Value]) -> Graph<'a> {
        Graph {
            by_ref: all.iter().map(|o| (ObjRef::of(o), o)).collect(),
            refs: all.iter().map(|o| (ObjRef::of(o), references(o))).collect(),
            namespaces: all
                .iter()
                .filter_map(|o| o["metadata"]["namespace"].as_str())
                .collect(),
        }
    }

    /// See [`closure`].
    pub fn closure(&self, seeds: &[ObjRef]) -> BTreeMap<ObjRef, String> {
        let Graph {
            by_ref,
            refs,
            namespaces,
        } = self;
        closure_in(by_ref, refs, namespaces, seeds)
    }
}

fn closure_in(
    by_ref: &HashMap<ObjRef, &Value>,
    refs: &[(ObjRef, Vec<ObjRef>)],
    namespaces: &BTreeSet<&str>,
    seeds: &[ObjRef],
) -> BTreeMap<ObjRef, String> {
    let mut out: BTreeMap<ObjRef, String> = seeds
        .iter()
        .filter(|r| by_ref.contains_key(r))
        .map(|r| (r.clone(), "chosen".to_string()))
        .collect();
    let mut queue: Vec<ObjRef> = out.keys().cloned().collect();
    let service_exists =
        |ns: &str, name: &str| by_ref.contains_key(&ObjRef::new("", "Service", Some(ns), name));
    // Services included only because they select an included workload: the other
    // workloads they select are not pulled in through them.
    let mut selecting: BTreeSet<ObjRef> = BTreeSet::new();
    while let Some(cur) = queue.pop() {
        let Some(obj) = by_ref.get(&cur) else {
            continue;
        };
        let named = cur.is("", "Service") && !selecting.contains(&cur);
        let mut add = |r: ObjRef, why: String| -> bool {
            let new = by_ref.contains_key(&r) && !out.contains_key(&r);
            if new {
                out.insert(r.clone(), why);
                queue.push(r);
            }
            new
        };
        for r in references(obj) {
            // Namespaces come along separately; a workload pulls in what it uses.
            if r.kind != "Namespace" {
                add(r, format!("{cur} uses it"));
            }
        }
        for (svc, path) in super::references::services_named(obj, namespaces, &service_exists) {
            add(svc, format!("{cur} names it in {path}"));
        }
        // What refers to or selects the current object.
        for (other, other_refs) in refs {
            let pulls = match (other.group.as_str(), other.kind.as_str()) {
                ("networking.k8s.io", "Ingress")
                | ("autoscaling", "HorizontalPodAutoscaler")
                | ("rbac.authorization.k8s.io", "RoleBinding") => other_refs.contains(&cur),
                ("", "Service")
                | ("networking.k8s.io", "NetworkPolicy")
                | ("policy", "PodDisruptionBudget") => {
                    by_ref.get(other).is_some_and(|o| selects_workload(o, obj))
                }
                // The workloads behind a Service that is included.
                _ if named && is_workload(other) => by_ref
                    .get(other)
                    .is_some_and(|o| controller_owner(o).is_none() && selects_workload(obj, o)),
                _ => false,
            };
            if pulls {
                let behind = named && is_workload(other);
                let why = if behind {
                    format!("behind {cur}")
                } else {
                    format!("acts on {cur}")
                };
                if add(other.clone(), why) && !behind && other.is("", "Service") {
                    selecting.insert(other.clone());
                }
            }
        }
    }
    out
}

/// Objects made by a controller from another object (ReplicaSets of Deployments, pods
/// of workloads, Jobs of CronJobs, Endpoints): a restore recreates them through
/// their owner, so they are not restored themselves when the owner is.
pub fn controller_owner(obj: &Value) -> Option<(String, String)> {
    arr(&obj["metadata"]["ownerReferences"])
        .find(|o| o["controller"].as_bool() == Some(true))
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or("").to_string(),
                o["name"].as_str().unwrap_or("").to_string(),
            )
        })
}

/// A rank for objects no reference orders, mirroring what clusters expect: types
/// before instances, storage and identity before workloads, routing last.
fn kind_rank(r: &ObjRef) -> u32 {
    match (r.group.as_str(), r.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "Namespace") => 1,
        ("storage.k8s.io", _) | ("scheduling.k8s.io", _) => 2,
        ("", "ServiceAccount") | ("rbac.authorization.k8s.io", _) => 3,
        ("", "ConfigMap" | "Secret" | "LimitRange" | "ResourceQuota") => 4,
        ("", "PersistentVolume" | "PersistentVolumeClaim") => 5,
        ("", "Service") => 6,
        _ if is_workload(r) => 7,
        ("networking.k8s.io", _) | ("autoscaling", _) | ("policy", _) => 9,
        _ => 8,
    }
}

/// Orders `objects` so that each comes after what it refers to (and custom resources
/// after their definitions). Returns waves: the objects of one wave depend only on
/// earlier waves and may be created together; each wave is sorted. Objects are known by
/// their position while ordering (a whole cluster is tens of thousands of them).
pub fn waves(
    objects: &[(&ObjRef, &Value)],
    crd_of: &(dyn Fn(&ObjRef) -> Option<ObjRef> + Sync),
) -> Vec<Vec<ObjRef>> {
    let at: HashMap<&ObjRef, usize> = objects
        .iter()
        .enumerate()
        .map(|(n, (r, _))| (*r, n))
        .collect();
    let deps: Vec<Vec<usize>> = objects
        .par_iter()
        .map(|&(r, obj)| {
            let mut d: Vec<usize> = references(obj)
                .iter()
                .filter_map(|x| at.get(x).copied())
                .collect();
            d.extend(crd_of(r).and_then(|c| at.get(&c).copied()));
            d
        })
        .collect();
    // Depth = 1 + deepest dependency; a cycle (which Kubernetes objects may form, e.g.
    // a ServiceAccount and its token Secret) is cut where it closes.
    fn visit(
        n: usize,
        objects: &[(&ObjRef, &Value)],
        deps: &[Vec<usize>],
        depth: &mut [Option<u32>],
        on_stack: &mut [bool],
    ) -> u32 {
        if let Some(d) = depth[n] {
            return d;
        }
        if on_stack[n] {
            return 0;
        }
        on_stack[n] = true;
        let mut d = kind_rank(objects[n].0);
        for &x in &deps[n] {
            d = d.max(visit(x, objects, deps, depth, on_stack) + 1);
        }
        on_stack[n] = false;
        depth[n] = Some(d);
        d
    }
    let mut depth = vec![None; objects.len()];
    let mut on_stack = vec![false; objects.len()];
    let mut waves: BTreeMap<u32, Vec<ObjRef>> = BTreeMap::new();
    for n in 0..objects.len() {
        let d = visit(n, objects, &deps, &mut depth, &mut on_stack);
        waves.entry(d).or_default().push(objects[n].0.clone());
    }
    waves
        .into_values()
        .map(|mut w| {
            w.sort();
            w.dedup();
            w
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_claims_volumes_are_named_by_the_pods_or_the_sets_templates() {
        let set = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                "template": {"spec": {
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "containers": [{"name": "db"}],
                }},
            },
        });
        assert_eq!(claim_volumes(&set, "data-db-1"), vec!["data"]);
        assert!(claim_volumes(&set, "data-other-1").is_empty());
        assert!(claim_volumes(&set, "data-db-x").is_empty());
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "web-data"}}],
                "containers": [{"name": "web"}],
            }}},
        });
        assert_eq!(claim_volumes(&deploy, "web-data"), vec!["v"]);
    }

    #[test]
    fn waves_put_what_is_referred_to_first_and_cut_cycles() {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": "shop"},
            "secrets": [{"name": "web-token"}]});
        let token = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "web-token", "namespace": "shop",
                "annotations": {"kubernetes.io/service-account.name": "web"}}});
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"serviceAccountName": "web",
                "containers": [{"name": "web", "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}});
        let settings = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop"}});
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        let objects = [&deployment, &settings, &token, &account, &namespace];
        let refs: Vec<ObjRef> = objects.iter().map(|o| ObjRef::of(o)).collect();
        let placed: Vec<(&ObjRef, &Value)> = refs.iter().zip(objects).collect();
        let waves = waves(&placed, &|_| None);
        let wave_of = |r: &ObjRef| waves.iter().position(|w| w.contains(r));
        let [deployment, settings, token, account, namespace] =
            [0, 1, 2, 3, 4].map(|n| wave_of(&refs[n]));
        assert!(namespace < account && namespace < settings);
        assert!(settings < deployment && account < deployment);
        assert!(token.is_some() && account.is_some());
        assert_eq!(waves.iter().map(Vec::len).sum::<usize>(), 5);
        assert!(waves.iter().all(|w| w.windows(2).all(|p| p[0] < p[1])));
    }
}

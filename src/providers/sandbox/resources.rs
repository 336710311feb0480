//! What the sandbox serves: the built-in resource types a migration meets, the custom
//! resources of established CRDs, and the discovery documents (`/version`, `/api`,
//! `/apis`, `/api/v1`, `/apis/<group>/<version>`) that describe them.
//!
//! Owns the resource table and discovery JSON. Must not touch objects other than reading
//! CRDs from the store.

use serde_json::{Value, json};

use super::rbac::REVIEWS;
use super::store::Store;

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRDS: &str = "customresourcedefinitions";

/// One resource type as served at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub status: bool,
    pub scale: bool,
}

impl ResourceInfo {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
);

/// (group/version, plural, singular, kind, namespaced, short names, status, scale)
const BUILTIN: &[Row] = &[
    (
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        true,
        false,
    ),
    (
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        false,
        false,
    ),
    ("v1", "secrets", "secret", "Secret", true, &[], false, false),
    (
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        false,
    ),
    (
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        true,
        false,
    ),
    (
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    ("v1", "pods", "pod", "Pod", true, &["po"], true, false),
    (
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
        false,
    ),
    (
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        true,
        false,
    ),
    (
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        false,
        false,
    ),
    (
        "v1",
        "limitranges",
        "limitrange",
        "LimitRange",
        true,
        &["limits"],
        false,
        false,
    ),
    (
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        &["quota"],
        true,
        false,
    ),
    ("v1", "nodes", "node", "Node", false, &["no"], true, false),
    (
        "apps/v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
    ),
    (
        "apps/v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
    ),
    (
        "apps/v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        true,
        true,
    ),
    (
        "apps/v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        true,
        false,
    ),
    ("batch/v1", "jobs", "job", "Job", true, &[], true, false),
    (
        "batch/v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        true,
        false,
    ),
    (
        "networking.k8s.io/v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        true,
        false,
    ),
    (
        "networking.k8s.io/v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
        false,
    ),
    (
        "networking.k8s.io/v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        &[],
        false,
        false,
    ),
    (
        "scheduling.k8s.io/v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        &["pc"],
        false,
        false,
    ),
    (
        "policy/v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
        false,
    ),
    (
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "roles",
        "role",
        "Role",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        false,
        false,
    ),
    (
        "storage.k8s.io/v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        false,
        false,
    ),
    // Stored and served; the sandbox calls no admission webhook.
    (
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        &[],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        &[],
        false,
        false,
    ),
    (
        "node.k8s.io/v1",
        "runtimeclasses",
        "runtimeclass",
        "RuntimeClass",
        false,
        &[],
        false,
        false,
    ),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        false,
    ),
    (
        "snapshot.storage.k8s.io/v1",
        "volumesnapshots",
        "volumesnapshot",
        "VolumeSnapshot",
        true,
        &["vs"],
        true,
        false,
    ),
    (
        "snapshot.storage.k8s.io/v1",
        "volumesnapshotclasses",
        "volumesnapshotclass",
        "VolumeSnapshotClass",
        false,
        &["vsclass", "vsclasses"],
        false,
        false,
    ),
    (
        "snapshot.storage.k8s.io/v1",
        "volumesnapshotcontents",
        "volumesnapshotcontent",
        "VolumeSnapshotContent",
        false,
        &["vsc", "vscs"],
        true,
        false,
    ),
    (
        "coordination.k8s.io/v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        false,
        false,
    ),
];

fn builtin() -> impl Iterator<Item = ResourceInfo> {
    BUILTIN.iter().map(
        |&(gv, plural, singular, kind, namespaced, shorts, status, scale)| {
            let (group, version) = gv.split_once('/').unwrap_or(("", gv));
            ResourceInfo {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular: singular.to_string(),
                kind: kind.to_string(),
                list_kind: format!("{kind}List"),
                namespaced,
                short_names: shorts.iter().map(|s| s.to_string()).collect(),
                status,
                scale,
            }
        },
    )
}

/// True when `info` comes from a CRD rather than the built-in table.
pub fn crd_defined(info: &ResourceInfo) -> bool {
    !builtin().any(|b| b == *info)
}

/// The resources one CRD defines, one per served version.
pub fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let kind = s(&names["kind"]);
    let plural = s(&names["plural"]);
    let mut singular = s(&names["singular"]);
    if singular.is_empty() {
        singular = kind.to_lowercase();
    }
    let mut list_kind = s(&names["listKind"]);
    if list_kind.is_empty() {
        list_kind = format!("{kind}List");
    }
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceInfo {
            group: s(&spec["group"]),
            version: s(&v["name"]),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            status: v["subresources"]["status"].is_object(),
            scale: v["subresources"]["scale"].is_object(),
        })
        .collect()
}

/// Every resource served now: the built-in ones, then those of the CRDs in the store.
pub fn all(store: &Store) -> Vec<ResourceInfo> {
    let mut out: Vec<ResourceInfo> = builtin().collect();
    for (_, crd) in store.list(CRD_GROUP, CRDS, None) {
        if crd["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        out.extend(crd_resources(crd));
    }
    out
}

/// The resource `plural` of `group`/`version`, if served.
pub fn find(store: &Store, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
    if let Some(r) =
        builtin().find(|r| r.group == group && r.version == version && r.plural == plural)
    {
        return Some(r);
    }
    if builtin().any(|r| r.group == group) {
        return None;
    }
    all(store)
        .into_iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// True when `group`/`version` is served.
pub fn serves_group_version(store: &Store, group: &str, version: &str) -> bool {
    (version == "v1" && REVIEWS.iter().any(|(g, _, _)| *g == group))
        || all(store)
            .iter()
            .any(|r| r.group == group && r.version == version)
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-ferry-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]
    })
}

/// `/apis`: every group but the core one, with its versions.
pub fn api_group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in all(store) {
        if r.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    for (g, _, _) in REVIEWS {
        if !groups.iter().any(|(name, _)| name == g) {
            groups.push((g.to_string(), vec!["v1".to_string()]));
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            let preferred = vs.first().cloned().unwrap_or(Value::Null);
            json!({"name": name, "versions": vs, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn api_resource_list(store: &Store, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for (g, plural, kind) in REVIEWS {
        if *g == group && version == "v1" {
            resources.push(
                json!({"name": plural, "singularName": "", "namespaced": false,
                                  "kind": kind, "verbs": ["create"]}),
            );
        }
    }
    for r in all(store) {
        if r.group != group || r.version != version {
            continue;
        }
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        const ALL: &[&str] = &[
            "pods",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "services",
            "jobs",
            "cronjobs",
        ];
        if ALL.contains(&r.plural.as_str()) && builtin().any(|b| b == r) {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.scale {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// The aggregated discovery version an `Accept` header asks for (`v2` or `v2beta1`),
/// if it asks for one: kubectl then learns every group's resources in one request.
pub fn aggregated_wanted(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let asks = params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"as=APIGroupDiscoveryList");
        if !asks {
            return None;
        }
        if params.contains(&"v=v2") {
            Some("v2")
        } else if params.contains(&"v=v2beta1") {
            Some("v2beta1")
        } else {
            None
        }
    })
}

/// One group-version's resources in aggregated form: each resource with its
/// subresources folded in.
fn discovery_version(store: &Store, group: &str, version: &str) -> Value {
    let list = api_resource_list(store, group, version);
    let entries = list["resources"].as_array().cloned().unwrap_or_default();
    let mut resources: Vec<Value> = Vec::new();
    for e in &entries {
        let name = e["name"].as_str().unwrap_or("");
        if name.contains('/') {
            continue;
        }
        let singular = match e["singularName"].as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => e["kind"].as_str().unwrap_or("").to_lowercase(),
        };
        let subresources: Vec<Value> = entries
            .iter()
            .filter_map(|s| {
                let sub = s["name"].as_str()?.strip_prefix(&format!("{name}/"))?;
                Some(json!({
                    "subresource": sub,
                    "responseKind": {
                        "group": s["group"].as_str().unwrap_or(group),
                        "version": s["version"].as_str().unwrap_or(version),
                        "kind": s["kind"],
                    },
                    "verbs": s["verbs"],
                }))
            })
            .collect();
        let mut r = json!({
            "resource": name,
            "responseKind": {"group": group, "version": version, "kind": e["kind"]},
            "scope": if e["namespaced"].as_bool() == Some(true) { "Namespaced" } else { "Cluster" },
            "singularResource": singular,
            "verbs": e["verbs"],
        });
        for key in ["shortNames", "categories"] {
            if e[key].is_array() {
                r[key] = e[key].clone();
            }
        }
        if !subresources.is_empty() {
            r["subresources"] = json!(subresources);
        }
        resources.push(r);
    }
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery (`apidiscovery.k8s.io` `APIGroupDiscoveryList`, `v2` or
/// `v2beta1`): for `/api` the core group, for `/apis` every other group, each with
/// all its versions and their resources.
pub fn aggregated_discovery(store: &Store, core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {"name": ""}, "versions": [discovery_version(store, "", "v1")]})]
    } else {
        let groups = api_group_list(store);
        groups["groups"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|g| {
                let name = g["name"].as_str().unwrap_or("");
                let versions: Vec<Value> = g["versions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| v["version"].as_str())
                    .map(|v| discovery_version(store, name, v))
                    .collect();
                json!({"metadata": {"name": name}, "versions": versions})
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// `/openapi/v3`: where each group-version's document is. kubectl reads it to learn that
/// the server validates fields itself (so it needs no client-side schema).
pub fn openapi_v3_root(store: &Store) -> Value {
    let mut paths = serde_json::Map::new();
    for r in all(store) {
        let key = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        let url = format!("/openapi/v3/{key}");
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`: a skeleton that lists
/// each resource's PATCH operation with its `fieldValidation` parameter, no schemas.
pub fn openapi_v3_group_version(store: &Store, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in all(store) {
        if r.group != group || r.version != version {
            continue;
        }
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let op = json!({
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_consistent() {
        let s = Store::new();
        let all = all(&s);
        assert!(all.len() >= 33);
        let deploy = find(&s, "apps", "v1", "deployments").unwrap();
        assert!(deploy.namespaced && deploy.scale && deploy.status);
        assert!(find(&s, "apps", "v1", "nothing").is_none());
        let list = api_resource_list(&s, "", "v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"pods/status"));
        assert!(names.contains(&"configmaps"));
    }
}

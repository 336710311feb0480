//! Object references, what a cluster serves (discovery at preferred versions) and
//! paged listing of any resource as plain JSON documents.

use std::fmt;

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{K8sError, Result};

/// Which object: group, kind, namespace (none for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjRef {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjRef {
    pub fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjRef {
        ObjRef {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    /// The reference of a document (its apiVersion, kind and metadata).
    pub fn of(obj: &Value) -> ObjRef {
        let api_version = obj["apiVersion"].as_str().unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        ObjRef {
            group: group.into(),
            kind: obj["kind"].as_str().unwrap_or("").into(),
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            name: obj["metadata"]["name"].as_str().unwrap_or("").into(),
        }
    }

    /// `Kind.group` (or `Kind` for the core group), as kubectl spells resource types.
    pub fn type_name(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.type_name(), ns, self.name),
            None => write!(f, "{} {}", self.type_name(), self.name),
        }
    }
}

/// A resource type a cluster serves, at its preferred version.
#[derive(Debug, Clone)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub listable: bool,
    /// Whether the API serves `watch` for it (a list that can be followed).
    pub watchable: bool,
    pub creatable: bool,
    pub subresources: Vec<String>,
}

/// Everything a cluster serves.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub resources: Vec<Resource>,
}

impl Catalog {
    /// Asks the cluster what it serves. Groups that fail to answer (an unavailable
    /// aggregated API) are left out, as kubectl does.
    pub async fn discover(client: &kube::Client) -> Result<Catalog> {
        // Aggregated discovery (one request per root) where served, else per group.
        // A server without it may answer with the legacy documents, which parse as
        // nothing: fall back then too.
        let d = match Discovery::new(client.clone()).run_aggregated().await {
            Ok(d) if d.groups().any(|g| g.name() == "") && d.groups().count() > 1 => d,
            _ => Discovery::new(client.clone())
                .run()
                .await
                .map_err(|e| K8sError::api("cannot discover the cluster's API", &e))?,
        };
        let mut resources = Vec::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                resources.push(resource(ar, &caps));
            }
        }
        resources.sort_by(|a, b| (&a.ar.group, &a.ar.kind).cmp(&(&b.ar.group, &b.ar.kind)));
        Ok(Catalog { resources })
    }

    pub fn find(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.ar.group == group && r.ar.kind == kind)
    }

    /// Whether the cluster serves `apiVersion` `kind` (exactly that version).
    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .any(|r| r.ar.group == group && r.ar.kind == kind && r.ar.version == version)
    }
}

fn resource(ar: ApiResource, caps: &ApiCapabilities) -> Resource {
    Resource {
        namespaced: caps.scope == Scope::Namespaced,
        listable: caps.supports_operation(verbs::LIST),
        watchable: caps.supports_operation(verbs::WATCH),
        creatable: caps.supports_operation(verbs::CREATE),
        subresources: caps
            .subresources
            .iter()
            .map(|(s, _)| s.plural.clone())
            .collect(),
        ar,
    }
}

/// The dynamic API of `res` in `ns` (or cluster-wide).
pub fn api(client: &kube::Client, res: &Resource, ns: Option<&str>) -> Api<DynamicObject> {
    match (res.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &res.ar),
        _ => Api::all_with(client.clone(), &res.ar),
    }
}

/// A dynamic object as a document with its apiVersion and kind set (list items come
/// without them).
pub fn to_document(res: &ApiResource, obj: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(res.api_version.clone()));
        m.insert("kind".into(), Value::String(res.kind.clone()));
    }
    v
}

/// Page size of lists: big enough to be quick, small enough for memory.
const PAGE: u32 = 500;

/// Lists every object of `res` in `ns` (all namespaces for `None`), page by page.
pub async fn list_all(
    client: &kube::Client,
    res: &Resource,
    ns: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>> {
    let api = api(client, res, ns);
    let mut lp = ListParams::default().limit(PAGE);
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await.map_err(|e| {
            K8sError::api(
                format!(
                    "cannot list {}{}",
                    res.ar.plural,
                    ns.map(|n| format!(" in {n}")).unwrap_or_default()
                ),
                &e,
            )
        })?;
        out.extend(page.items.iter().map(|o| to_document(&res.ar, o)));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    Ok(out)
}

/// Whether a kube-rs error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube-rs error is a 403.
pub fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// Whether a kube-rs error is a 409.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

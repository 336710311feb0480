//! What Ferry shows about each linked cluster: reachable or not (and why), server
//! version, node count and zones, storage classes and the default one, and what the
//! user may do there. Probes run concurrently with a short timeout, so a broken
//! cluster never holds up the others.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;

use super::kubeconfig::LinkedCluster;

/// How long one cluster's probe may take in all.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// A storage class as restore mapping needs it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StorageClassInfo {
    pub name: String,
    pub provisioner: String,
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, String>,
    pub default: bool,
    #[serde(default)]
    pub binding_mode: String,
    #[serde(default)]
    pub allow_expansion: bool,
}

impl StorageClassInfo {
    pub fn from_class(sc: &StorageClass) -> StorageClassInfo {
        let annotations = sc.metadata.annotations.clone().unwrap_or_default();
        StorageClassInfo {
            name: sc.metadata.name.clone().unwrap_or_default(),
            provisioner: sc.provisioner.clone(),
            parameters: sc.parameters.clone().unwrap_or_default(),
            default: annotations
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true"),
            binding_mode: sc
                .volume_binding_mode
                .clone()
                .unwrap_or_else(|| "Immediate".into()),
            allow_expansion: sc.allow_volume_expansion.unwrap_or(false),
        }
    }
}

/// What the user may do on a cluster, as the cluster itself answers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Permissions {
    /// Read everything needed for a backup (list namespaces, secrets, PVCs).
    pub backup: Option<bool>,
    /// Create namespaces and workloads (restore).
    pub restore: Option<bool>,
    /// Exec into pods (volume data).
    pub volume_data: Option<bool>,
}

impl Permissions {
    pub fn summary(&self) -> String {
        let f = |v: Option<bool>, s: &str| match v {
            Some(true) => s.to_string(),
            Some(false) => format!("no-{s}"),
            None => format!("{s}?"),
        };
        format!(
            "{} {} {}",
            f(self.backup, "backup"),
            f(self.restore, "restore"),
            f(self.volume_data, "data")
        )
    }
}

/// A reachable cluster's facts.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub version: String,
    pub platform: String,
    pub nodes: usize,
    pub zones: Vec<String>,
    pub storage_classes: Vec<StorageClassInfo>,
    pub permissions: Permissions,
    pub latency_ms: u64,
}

impl Facts {
    pub fn default_storage_class(&self) -> Option<&str> {
        self.storage_classes
            .iter()
            .find(|s| s.default)
            .map(|s| s.name.as_str())
    }
}

/// The result of probing one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub name: String,
    pub server: String,
    pub facts: Result<Facts, String>,
}

/// Probes one cluster within [`PROBE_TIMEOUT`].
pub async fn probe(cluster: &LinkedCluster) -> Probe {
    let facts = match tokio::time::timeout(PROBE_TIMEOUT, probe_inner(cluster)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} s: check the network path to {}",
            PROBE_TIMEOUT.as_secs(),
            cluster.server
        )),
    };
    Probe {
        name: cluster.name.clone(),
        server: cluster.server.clone(),
        facts,
    }
}

/// Probes every cluster concurrently; results in the clusters' order.
pub async fn probe_all(clusters: &[LinkedCluster]) -> Vec<Probe> {
    futures::future::join_all(clusters.iter().map(probe)).await
}

/// Says why a kube-rs error happened, in words for the user.
pub fn explain(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 401 => {
            "the cluster rejected the credentials (401): log in again or renew the token".into()
        }
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        kube::Error::HyperError(e) => format!("cannot connect: {e}"),
        kube::Error::Service(e) => format!("cannot connect: {e}"),
        other => other.to_string(),
    }
}

async fn probe_inner(cluster: &LinkedCluster) -> Result<Facts, String> {
    let client = cluster.client().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let v = client.apiserver_version().await.map_err(|e| explain(&e))?;
    let latency_ms = started.elapsed().as_millis() as u64;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let sc_api: Api<StorageClass> = Api::all(client.clone());
    let lp = ListParams::default();
    let (nodes, classes, permissions) =
        tokio::join!(nodes_api.list(&lp), sc_api.list(&lp), permissions(&client));
    let (node_count, zones) = match nodes {
        Ok(l) => {
            let mut zones: Vec<String> = l
                .items
                .iter()
                .filter_map(|n| {
                    n.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("topology.kubernetes.io/zone").cloned())
                })
                .collect();
            zones.sort();
            zones.dedup();
            (l.items.len(), zones)
        }
        Err(_) => (0, Vec::new()),
    };
    let storage_classes = classes
        .map(|l| l.items.iter().map(StorageClassInfo::from_class).collect())
        .unwrap_or_default();
    Ok(Facts {
        version: v.git_version,
        platform: v.platform,
        nodes: node_count,
        zones,
        storage_classes,
        permissions,
        latency_ms,
    })
}

/// Asks the cluster whether the user may do one thing anywhere; `None` when the
/// cluster does not answer access reviews.
pub async fn may(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    sub: Option<&str>,
) -> Option<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    api.create(&PostParams::default(), &review)
        .await
        .ok()
        .and_then(|r| r.status.map(|s| s.allowed))
}

async fn permissions(client: &kube::Client) -> Permissions {
    let (ls, lp, cn, cd, ex) = tokio::join!(
        may(client, "list", "", "secrets", None),
        may(client, "list", "", "persistentvolumeclaims", None),
        may(client, "create", "", "namespaces", None),
        may(client, "create", "apps", "deployments", None),
        may(client, "create", "", "pods", Some("exec")),
    );
    let both = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (Some(x), Some(y)) => Some(x && y),
        _ => None,
    };
    Permissions {
        backup: both(ls, lp),
        restore: both(cn, cd),
        volume_data: ex,
    }
}

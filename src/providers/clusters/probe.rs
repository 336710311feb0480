//! What Ferry shows about each linked cluster: reachable or not (and why), server
//! version, node count and zones, storage classes and the default one, and what the
//! user may do there. Each probe is a task of its own with its own timeouts (making the
//! client, credential plugin included, then [`PROBE_TIMEOUT`] for the questions), so a
//! broken cluster or a plugin that never returns holds up no other cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;

pub use ferry_k8s::cluster::{StorageClassInfo, explain};
use ferry_k8s::cluster::{Worded, classify};

use super::client::ApiError;

use super::exec_plugin::{self, seconds};
use super::kubeconfig::{KubeconfigError, LinkedCluster};

/// Why a cluster could not be probed, with what to do. Cheap to clone (the console keeps
/// it as the cluster's state).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// No client could be made for the context (its kubeconfig, credentials, plugin).
    #[error(transparent)]
    Client(Arc<KubeconfigError>),
    /// Making the client (a credential plugin, most likely) did not finish in time.
    #[error(
        "making a client for context {context:?} took longer than {}: check its user's credentials in {source_label}",
        seconds(*limit)
    )]
    ClientTimeout {
        context: String,
        limit: Duration,
        source_label: String,
    },
    /// The API server answered with an error, or could not be reached.
    #[error("{}", explain(.0))]
    Api(Arc<kube::Error>),
    /// The API server did not answer the probe's questions in time.
    #[error(
        "timed out after {} waiting for the API server {server} (context {context:?}) to answer: check that the cluster is healthy and the network path to it",
        seconds(*limit)
    )]
    Timeout {
        server: String,
        context: String,
        limit: Duration,
    },
    /// The probe's task ended without an answer (a bug: see the log).
    #[error("the probe stopped unexpectedly: {0}")]
    Stopped(Arc<tokio::task::JoinError>),
}

impl ProbeError {
    /// What failed in a word or two, for a status column: `refused`, `timed out`,
    /// `TLS failed`, `unauthorised`, `forbidden`, `no such host`...
    pub fn word(&self) -> &'static str {
        match self {
            ProbeError::Client(_) => "no client",
            ProbeError::ClientTimeout { .. } => "no client",
            ProbeError::Timeout { .. } => "timed out",
            ProbeError::Stopped(_) => "failed",
            ProbeError::Api(e) => match &**e {
                kube::Error::Api(s) if s.code == 401 => "unauthorised",
                kube::Error::Api(s) if s.code == 403 => "forbidden",
                kube::Error::Api(s) if s.code >= 500 => "server error",
                kube::Error::Api(_) => "API error",
                kube::Error::Service(inner) => inner
                    .downcast_ref::<Worded>()
                    .and_then(|w| w.inner().downcast_ref::<ApiError>())
                    .map(ApiError::word)
                    .unwrap_or_else(|| classify(&**inner).cause.word()),
                kube::Error::HyperError(h) => classify(h).cause.word(),
                _ => "unreachable",
            },
        }
    }
}

/// How long one cluster may take to answer the probe's questions (its client made).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

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
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub server: String,
    pub facts: Result<Facts, ProbeError>,
}

/// Probes one cluster: its client within the credential plugin's timeout (and a little
/// more, in case anything else in making it stalls), then its answers within
/// [`PROBE_TIMEOUT`].
pub async fn probe(cluster: &LinkedCluster) -> Probe {
    Probe {
        name: cluster.name.clone(),
        server: cluster.server.clone(),
        facts: probe_inner(cluster).await,
    }
}

/// Probes every cluster concurrently, each in a task of its own; results in the
/// clusters' order.
pub async fn probe_all(clusters: &[LinkedCluster]) -> Vec<Probe> {
    let tasks = clusters.iter().cloned().map(|c| {
        let name = c.name.clone();
        let server = c.server.clone();
        let task = tokio::spawn(async move { probe(&c).await });
        async move {
            task.await.unwrap_or_else(|e| Probe {
                name,
                server,
                facts: Err(ProbeError::Stopped(Arc::new(e))),
            })
        }
    });
    futures::future::join_all(tasks).await
}

async fn probe_inner(cluster: &LinkedCluster) -> Result<Facts, ProbeError> {
    let limit = exec_plugin::timeout() + Duration::from_secs(2);
    let client = match tokio::time::timeout(limit, cluster.client()).await {
        Ok(c) => c.map_err(|e| ProbeError::Client(Arc::new(e)))?,
        Err(_) => {
            return Err(ProbeError::ClientTimeout {
                context: cluster.context.clone(),
                limit,
                source_label: cluster.source_label(),
            });
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, ask(&client)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout {
            server: cluster.server.clone(),
            context: cluster.context.clone(),
            limit: PROBE_TIMEOUT,
        }),
    }
}

async fn ask(client: &kube::Client) -> Result<Facts, ProbeError> {
    let started = Instant::now();
    let v = client
        .apiserver_version()
        .await
        .map_err(|e| ProbeError::Api(Arc::new(e)))?;
    let latency_ms = started.elapsed().as_millis() as u64;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let sc_api: Api<StorageClass> = Api::all(client.clone());
    let lp = ListParams::default();
    let (nodes, classes, permissions) =
        tokio::join!(nodes_api.list(&lp), sc_api.list(&lp), permissions(client));
    // `/version` answers anyone: a list says whether the credentials are taken.
    for r in [nodes.as_ref().err(), classes.as_ref().err()] {
        if let Some(kube::Error::Api(s)) = r
            && s.code == 401
        {
            let e = kube::Error::Api(s.clone());
            return Err(ProbeError::Api(Arc::new(e)));
        }
    }
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

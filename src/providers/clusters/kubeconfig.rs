//! Linked clusters from kubeconfig files: every context of every file the user has
//! (`KUBECONFIG`, a list merged the way kubectl merges it, `~/.kube/config`, and the
//! files and folders named in Ferry's settings), one entry per cluster even when two
//! files reach it, each with the sources it came from.
//!
//! A context keeps the users and clusters of the file that defined it, so nothing is
//! lost when files are merged (exec plugins, token files and relative certificate paths
//! resolve against their own file).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::config::Kubeconfig;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::aks::{self, AksCluster, AzureSubscription};
use crate::client::{ClientError, client_for};
use crate::eks::{self, AwsAccount, EksCluster};
use crate::exec_plugin::PluginError;

pub use crate::client::CONNECT_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("cannot read the kubeconfig {path}: {detail}. Fix or remove the file")]
    Read { path: PathBuf, detail: String },
    #[error("no linked cluster is called {0:?}: list them with `ferry clusters`")]
    UnknownCluster(String),
    #[error(
        "the context {context:?} (from {source_file}) cannot be used: {detail}. Check its cluster, user and credentials in that file"
    )]
    Context {
        context: String,
        source_file: String,
        detail: String,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Eks(#[from] crate::eks::EksError),
    #[error(transparent)]
    Aks(#[from] crate::aks::AksError),
}

/// A cluster found in a cloud account rather than a kubeconfig file.
#[derive(Debug, Clone)]
pub enum CloudCluster {
    Eks(AwsAccount, EksCluster),
    Aks(AzureSubscription, AksCluster),
}

/// Where the clusters come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files and folders (every file in a folder) to read, in kubectl's order.
    pub paths: Vec<PathBuf>,
}

impl Sources {
    /// The user's kubeconfig files: `KUBECONFIG` if set (a `:`-separated list), else
    /// `~/.kube/config`; then the `extra` files and folders from Ferry's settings.
    pub fn from_environment(extra: &[PathBuf]) -> Sources {
        let mut paths = Vec::new();
        match std::env::var_os("KUBECONFIG") {
            Some(v) if !v.is_empty() => paths.extend(std::env::split_paths(&v)),
            _ => {
                if let Some(home) = std::env::var_os("HOME") {
                    paths.push(PathBuf::from(home).join(".kube").join("config"));
                }
            }
        }
        paths.extend(extra.iter().cloned());
        Sources { paths }
    }

    /// Every existing file named, folders expanded (sorted), duplicates dropped.
    fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in &self.paths {
            if p.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.path())
                            .filter(|p| p.is_file())
                            .collect()
                    })
                    .unwrap_or_default();
                entries.sort();
                out.extend(entries);
            } else if p.is_file() {
                out.push(p.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
        out
    }
}

/// Who a cluster is, in terms that renaming or editing a kubeconfig context cannot
/// fake: the API server Ferry connects to with the CA certificates its TLS connection
/// is verified against (a kubeconfig that names another server or CA reaches another
/// cluster, or none), an EKS cluster's ARN or an AKS cluster's resource ID as the cloud's
/// API reports them. Policies match environments on it (docs/FORMAT.md, "The policy
/// document"); audit records carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentity {
    /// The API server as TLS checks it: the kubeconfig's URL, its host replaced by the
    /// cluster's `tls-server-name` when one is set. Empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// `sha256:<64 hex digits>` of each CA certificate the connection is verified
    /// against, sorted. Empty when it is not verified against the kubeconfig's own CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca: Vec<String>,
    /// Why `ca` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
    /// An EKS cluster's ARN, from `DescribeCluster` (never from a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks_arn: Option<String>,
    /// An AKS cluster's ARM resource ID, from ARM (never from a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks_id: Option<String>,
}

impl ClusterIdentity {
    /// `sha256:` and the hex SHA-256 of a DER certificate.
    pub fn fingerprint(der: &[u8]) -> String {
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))
    }

    /// The identity of `kc`'s current context, from the very configuration kube-rs
    /// builds its client from (the same CA bundle parsing, the same TLS settings).
    pub fn of_kubeconfig(kc: &Kubeconfig) -> ClusterIdentity {
        let raw_server = || {
            let ctx = kc
                .current_context
                .as_ref()
                .and_then(|n| kc.contexts.iter().find(|c| &c.name == n))
                .and_then(|c| c.context.as_ref());
            ctx.and_then(|c| kc.clusters.iter().find(|n| n.name == c.cluster))
                .and_then(|n| n.cluster.as_ref())
                .and_then(|c| c.server.clone())
                .unwrap_or_default()
        };
        let config = match kube::Config::try_from(kc.clone()) {
            Ok(c) => c,
            Err(e) => {
                return ClusterIdentity {
                    server: raw_server(),
                    unverified: Some(format!("the kubeconfig cannot be used: {e}")),
                    ..ClusterIdentity::default()
                };
            }
        };
        let url = &config.cluster_url;
        let host = config
            .tls_server_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| url.host().map(str::to_string))
            .unwrap_or_default();
        let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        let server = format!(
            "{}://{host}{port}{path}",
            url.scheme_str().unwrap_or("https")
        );
        let (ca, unverified) = if config.accept_invalid_certs {
            (
                Vec::new(),
                Some(
                    "the kubeconfig sets insecure-skip-tls-verify, so the server is not verified"
                        .into(),
                ),
            )
        } else {
            match config.root_cert.as_deref() {
                Some(certs) if !certs.is_empty() => {
                    let mut v: Vec<String> =
                        certs.iter().map(|d| ClusterIdentity::fingerprint(d)).collect();
                    v.sort();
                    v.dedup();
                    (v, None)
                }
                _ => (
                    Vec::new(),
                    Some("the kubeconfig names no certificate-authority for this cluster (the system's CAs are trusted)".into()),
                ),
            }
        };
        ClusterIdentity {
            server,
            ca,
            unverified,
            eks_arn: None,
            aks_id: None,
        }
    }

    /// Whether anything a kubeconfig cannot fake is known.
    pub fn is_pinned(&self) -> bool {
        !self.ca.is_empty() || self.eks_arn.is_some() || self.aks_id.is_some()
    }

    /// A `match:` entry that pins this cluster in a version 2 policy (YAML flow
    /// mapping), or why there is none.
    pub fn selector(&self) -> Result<String, String> {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        if let Some(arn) = &self.eks_arn {
            return Ok(format!("{{eksArn: {}}}", q(arn)));
        }
        if let Some(id) = &self.aks_id {
            return Ok(format!("{{aksId: {}}}", q(id)));
        }
        if self.ca.is_empty() {
            return Err(self
                .unverified
                .clone()
                .unwrap_or_else(|| "nothing is known about it".into()));
        }
        let ca = if self.ca.len() == 1 {
            q(&self.ca[0])
        } else {
            format!(
                "[{}]",
                self.ca.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
            )
        };
        Ok(format!("{{server: {}, ca: {ca}}}", q(&self.server)))
    }
}

impl std::fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |c: &str| c.chars().take(7 + 16).collect::<String>() + "…";
        if let Some(arn) = &self.eks_arn {
            return write!(f, "EKS {arn}");
        }
        if let Some(id) = &self.aks_id {
            return write!(f, "AKS {id}");
        }
        if self.server.is_empty() {
            return f.write_str("unknown cluster");
        }
        match self.ca.as_slice() {
            [] => write!(f, "{} (CA not verified)", self.server),
            [one] => write!(f, "{} (CA {})", self.server, short(one)),
            many => write!(
                f,
                "{} (CAs {})",
                self.server,
                many.iter().map(|c| short(c)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// One linked cluster: a context and what it points at.
#[derive(Debug, Clone)]
pub struct LinkedCluster {
    /// The name Ferry shows and accepts (`--context`): the context's name, with the
    /// file's name appended when two files define different clusters under one name.
    pub name: String,
    pub context: String,
    pub server: String,
    pub user: String,
    pub namespace: Option<String>,
    /// The kubeconfig files that reach this cluster, the first one used.
    pub sources: Vec<PathBuf>,
    /// Whether it is the current context of the first file.
    pub current: bool,
    /// Who the cluster is (server and CA, EKS ARN, AKS resource ID), for policies.
    pub identity: ClusterIdentity,
    config: Kubeconfig,
    /// Set for a cluster found in a cloud account rather than a kubeconfig file.
    cloud: Option<Box<CloudCluster>>,
}

/// Where linked clusters come from: a kubeconfig file, or a cloud account's region
/// (the console and `ferry clusters` group by it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Kubeconfig(PathBuf),
    /// Provider (`aws`, `azure`), account (profile or subscription), region (empty for
    /// Azure, whose subscriptions span regions).
    Cloud {
        provider: String,
        account: String,
        region: String,
    },
}

impl Origin {
    /// `kubeconfig <path>`, `aws <profile> <region>`, `azure <subscription>`.
    pub fn label(&self) -> String {
        match self {
            Origin::Kubeconfig(p) => format!("kubeconfig {}", p.display()),
            Origin::Cloud {
                provider,
                account,
                region,
            } => format!("{provider} {account} {region}")
                .trim_end()
                .to_string(),
        }
    }
}

/// A source that could not be used: a kubeconfig file that does not parse, a cloud
/// account whose clusters could not be listed (why, and what to do, in `error`).
#[derive(Debug, Clone)]
pub struct BrokenSource {
    pub origin: Origin,
    pub error: String,
}

/// Every linked cluster, in the order the files name them.
#[derive(Debug, Clone, Default)]
pub struct Linked {
    pub clusters: Vec<LinkedCluster>,
    pub broken: Vec<BrokenSource>,
    pub files: Vec<PathBuf>,
    /// What was read (to read it again).
    pub sources: Sources,
}

impl Linked {
    /// Reads every source. A broken file is reported, never fatal.
    pub fn load(sources: &Sources) -> Linked {
        let mut linked = Linked {
            sources: sources.clone(),
            ..Linked::default()
        };
        let mut first_current: Option<String> = None;
        for path in sources.files() {
            let kc = match Kubeconfig::read_from(&path) {
                Ok(k) => k,
                Err(e) => {
                    linked.broken.push(BrokenSource {
                        origin: Origin::Kubeconfig(path.clone()),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            linked.files.push(path.clone());
            if first_current.is_none() {
                first_current = kc.current_context.clone();
            }
            for ctx in &kc.contexts {
                let Some(c) = &ctx.context else { continue };
                let server = kc
                    .clusters
                    .iter()
                    .find(|n| n.name == c.cluster)
                    .and_then(|n| n.cluster.as_ref())
                    .and_then(|c| c.server.clone())
                    .unwrap_or_default();
                let user = c.user.clone().unwrap_or_default();
                if let Some(existing) = linked
                    .clusters
                    .iter_mut()
                    .find(|l| l.context == ctx.name && l.server == server && l.user == user)
                {
                    existing.sources.push(path.clone());
                    continue;
                }
                let mut name = ctx.name.clone();
                if linked.clusters.iter().any(|l| l.name == name) {
                    let stem = path
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    name = format!("{name}@{stem}");
                }
                let config = single_context(&kc, &ctx.name);
                linked.clusters.push(LinkedCluster {
                    name,
                    context: ctx.name.clone(),
                    server,
                    user,
                    namespace: c.namespace.clone(),
                    sources: vec![path.clone()],
                    current: false,
                    identity: ClusterIdentity::of_kubeconfig(&config),
                    config,
                    cloud: None,
                });
            }
        }
        if let Some(cur) = first_current
            && let Some(c) = linked.clusters.iter_mut().find(|c| c.context == cur)
        {
            c.current = true;
        }
        linked
    }

    /// Adds clusters found elsewhere (a cloud account), skipping names already linked.
    pub fn add(&mut self, clusters: Vec<LinkedCluster>) {
        for c in clusters {
            if !self.clusters.iter().any(|l| l.name == c.name) {
                self.clusters.push(c);
            }
        }
    }

    pub fn get(&self, name: &str) -> Result<&LinkedCluster, KubeconfigError> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.clusters.iter().find(|c| c.context == name))
            .ok_or_else(|| KubeconfigError::UnknownCluster(name.to_string()))
    }

    /// The cluster of the current context, else the only one.
    pub fn current(&self) -> Option<&LinkedCluster> {
        self.clusters
            .iter()
            .find(|c| c.current)
            .or(if self.clusters.len() == 1 {
                self.clusters.first()
            } else {
                None
            })
    }
}

/// The part of `kc` that context `name` needs: itself, its cluster and its user.
fn single_context(kc: &Kubeconfig, name: &str) -> Kubeconfig {
    let ctx = kc.contexts.iter().find(|c| c.name == name).cloned();
    let (cluster, user) = ctx
        .as_ref()
        .and_then(|c| c.context.as_ref())
        .map(|c| (c.cluster.clone(), c.user.clone().unwrap_or_default()))
        .unwrap_or_default();
    Kubeconfig {
        clusters: kc
            .clusters
            .iter()
            .filter(|c| c.name == cluster)
            .cloned()
            .collect(),
        auth_infos: kc
            .auth_infos
            .iter()
            .filter(|a| a.name == user)
            .cloned()
            .collect(),
        contexts: ctx.into_iter().collect(),
        current_context: Some(name.to_string()),
        ..Kubeconfig::default()
    }
}

impl LinkedCluster {
    /// An EKS cluster as a linked cluster: reached with a client built from its
    /// endpoint, CA and generated tokens, no kubeconfig involved.
    pub fn from_eks(account: &AwsAccount, c: &EksCluster) -> LinkedCluster {
        let name = eks::context_name(&account.label(), &c.region, &c.name);
        // The client is made from the endpoint and CA `DescribeCluster` returned (see
        // `eks::client_with`): the identity is computed from the same two.
        let kc: Kubeconfig = serde_json::from_value(serde_json::json!({
            "clusters": [{"name": "eks", "cluster": {"server": c.endpoint, "certificate-authority-data": c.certificate_authority}}],
            "users": [{"name": "eks", "user": {}}],
            "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
            "current-context": "eks",
        }))
        .unwrap_or_default();
        let mut identity = ClusterIdentity::of_kubeconfig(&kc);
        identity.eks_arn = Some(c.arn.clone()).filter(|a| !a.is_empty());
        LinkedCluster {
            name: name.clone(),
            context: name,
            server: c.endpoint.clone(),
            user: account.label(),
            namespace: None,
            sources: Vec::new(),
            current: false,
            identity,
            config: Kubeconfig::default(),
            cloud: Some(Box::new(CloudCluster::Eks(account.clone(), c.clone()))),
        }
    }

    /// An AKS cluster as a linked cluster: reached through the user kubeconfig AKS
    /// hands out (`listClusterUserCredential`, fetched when a client is made), by the
    /// same code as a kubeconfig context.
    pub fn from_aks(sub: &AzureSubscription, c: &AksCluster) -> LinkedCluster {
        let name = aks::context_name(&sub.label(), &c.resource_group, &c.name);
        LinkedCluster {
            name: name.clone(),
            context: name,
            server: if c.fqdn.is_empty() {
                String::new()
            } else {
                format!("https://{}", c.fqdn)
            },
            user: sub.label(),
            namespace: None,
            sources: Vec::new(),
            current: false,
            identity: ClusterIdentity {
                server: if c.fqdn.is_empty() {
                    String::new()
                } else {
                    format!("https://{}", c.fqdn)
                },
                unverified: Some(
                    "the CA comes with the credentials AKS hands out when Ferry connects".into(),
                ),
                aks_id: Some(c.id.clone()).filter(|i| !i.is_empty()),
                ..ClusterIdentity::default()
            },
            config: Kubeconfig::default(),
            cloud: Some(Box::new(CloudCluster::Aks(sub.clone(), c.clone()))),
        }
    }

    /// The cloud account and cluster; `None` for a kubeconfig context.
    pub fn cloud(&self) -> Option<&CloudCluster> {
        self.cloud.as_deref()
    }

    /// What `ferry clusters --json` says of a cloud cluster, under the key of its
    /// cloud ([`crate::cloud::Cloud::prefix`]); `None` for a kubeconfig context.
    pub fn cloud_facts(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(match self.cloud()? {
            CloudCluster::Eks(a, e) => (
                "eks",
                serde_json::json!({
                    "profile": a.label(), "region": e.region, "cluster": e.name,
                    "status": e.status, "version": e.version, "arn": e.arn,
                }),
            ),
            CloudCluster::Aks(s, k) => (
                "aks",
                serde_json::json!({
                    "subscription": s.label(), "subscriptionId": s.id,
                    "resourceGroup": k.resource_group, "cluster": k.name,
                    "location": k.location, "provisioningState": k.provisioning_state,
                    "version": k.version, "id": k.id,
                }),
            ),
        })
    }

    /// The group of a cloud cluster in listings: (provider, account, region);
    /// `None` for a kubeconfig context. AKS clusters group by subscription alone.
    pub fn origin(&self) -> Origin {
        match self.cloud() {
            Some(CloudCluster::Eks(a, c)) => eks::origin(a, &c.region),
            Some(CloudCluster::Aks(s, _)) => aks::origin(s),
            None => Origin::Kubeconfig(self.sources.first().cloned().unwrap_or_default()),
        }
    }

    /// The cloud envelope of the cluster (see [`eks::envelope`], [`aks::envelope`]);
    /// `None` for clusters that come from a kubeconfig.
    pub async fn envelope(&self) -> Result<Option<serde_json::Value>, KubeconfigError> {
        match self.cloud() {
            Some(CloudCluster::Eks(a, c)) => Ok(Some(eks::envelope(a, &c.region, &c.name).await?)),
            Some(CloudCluster::Aks(s, c)) => {
                Ok(Some(aks::envelope(s, &c.resource_group, &c.name).await?))
            }
            None => Ok(None),
        }
    }

    /// A kube-rs client for this cluster, with Ferry's timeouts; a credential plugin
    /// runs bounded (see [`crate::exec_plugin`]).
    pub async fn client(&self) -> Result<kube::Client, KubeconfigError> {
        let bad = |e: ClientError| match e {
            ClientError::Plugin(p) => KubeconfigError::Plugin(p),
            ClientError::Config(detail) => KubeconfigError::Context {
                context: self.context.clone(),
                source_file: self
                    .sources
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| self.source_label()),
                detail,
            },
        };
        match self.cloud() {
            Some(CloudCluster::Eks(account, cluster)) => Ok(eks::client(account, cluster).await?),
            Some(CloudCluster::Aks(sub, c)) => {
                let text = aks::user_kubeconfig(sub, &c.resource_group, &c.name).await?;
                let kc = aks::parse_kubeconfig(&c.name, &text)?;
                client_for(kc, None).await.map_err(bad)
            }
            None => client_for(self.config.clone(), Some(self.context.clone()))
                .await
                .map_err(bad),
        }
    }

    /// Where the first source lives, in words: a kubeconfig file's path, `aws <profile>
    /// <region>` for an EKS cluster, `azure <subscription>` for an AKS one.
    pub fn source_label(&self) -> String {
        match self.origin() {
            Origin::Kubeconfig(p) => p.display().to_string(),
            cloud => cloud.label(),
        }
    }
}

/// A kube-rs client from a kubeconfig (its `context`, else its current one), with
/// Ferry's timeouts and bounded credential plugins ([`client_for`]), the error in
/// words.
pub async fn client_from_kubeconfig(
    kc: Kubeconfig,
    context: Option<String>,
) -> Result<kube::Client, String> {
    client_for(kc, context).await.map_err(|e| e.to_string())
}

/// Groups clusters by their first source file (the console's grouping).
pub fn by_source(linked: &Linked) -> BTreeMap<String, Vec<&LinkedCluster>> {
    let mut m: BTreeMap<String, Vec<&LinkedCluster>> = BTreeMap::new();
    for c in &linked.clusters {
        m.entry(c.source_label()).or_default().push(c);
    }
    m
}

//! Azure subscriptions and their AKS clusters: OAuth2 tokens for Azure Resource Manager
//! (an environment service principal, else the Azure CLI's login; cached and replaced
//! before they expire), the ARM calls Ferry needs (list managed clusters across pages,
//! get one, `listClusterUserCredential`) with retries of throttled answers, a cluster's
//! "envelope" (version, node pools, network, identity, tags, location) recorded in
//! captures, and `aks:<subscription>/<resourceGroup>/<name>` names.
//!
//! A kube client for an AKS cluster is built from the kubeconfig AKS hands out, through
//! the same code as any kubeconfig context (`kubeconfig::LinkedCluster::client`).
//! Creating clusters is in `aks/create.rs`; the HTTP plumbing (client, tokens, retries,
//! paging, long-running operations) in `aks/arm.rs`.
//!
//! [`Azure`] is Azure as a [`Cloud`] (listing, finding clusters by their `aks:` names);
//! [`AksRequest`] a cluster to create.
//!
//! Owns the Azure side only; no terminal code.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cloud::{Cloud, CloudError, Found, Listed};
use crate::kubeconfig::{LinkedCluster, Origin};
use crate::spec::{AGAIN, SpecError};

mod arm;
mod create;

/// Progress of a creation (the same events for every cloud).
pub use crate::cloud::CreateEvent;
pub use arm::{Arm, OperationStatus, ServicePrincipal, paged, poll_operation};
pub use create::{
    AZURE_DISK_PROVISIONER, AksRequest, AksSpec, CreateOptions, NodePoolSpec, STORAGE_CLASSES,
    create_cluster,
};

/// The ARM API version Ferry speaks for managed clusters.
pub const API_VERSION: &str = "2024-05-01";
/// Azure Resource Manager, unless a subscription names another endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Microsoft Entra ID's token endpoint host, unless a subscription names another.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The OAuth2 scope of ARM tokens.
pub const SCOPE: &str = "https://management.azure.com/.default";

const HINT_LOGIN: &str = "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal, or log in with `az login`";

#[derive(Debug, thiserror::Error)]
pub enum AksError {
    #[error("no Azure credentials for subscription {subscription}: {detail}. To fix: {HINT_LOGIN}")]
    NoCredentials {
        subscription: String,
        detail: String,
    },
    #[error(
        "Azure refused the credentials for subscription {subscription} ({detail}): check the service principal's tenant, client ID and secret (or run `az login` again if you use the Azure CLI); expired secrets are renewed with `az ad sp credential reset`"
    )]
    Credentials {
        subscription: String,
        detail: String,
    },
    #[error(
        "the Azure identity has no rights on subscription {subscription} ({detail}): give it a role such as \"Azure Kubernetes Service Contributor\" (or Reader plus \"Azure Kubernetes Service Cluster User\" to list and connect) with `az role assignment create`, or link another subscription"
    )]
    NoAccess {
        subscription: String,
        detail: String,
    },
    #[error(
        "subscription {subscription} was not found ({detail}): check the id under `azure:` in config.yaml against `az account list -o table`, and that the identity belongs to its tenant"
    )]
    SubscriptionNotFound {
        subscription: String,
        detail: String,
    },
    #[error(
        "{what} was not found in subscription {subscription} ({detail}): check `ferry clusters` or `az aks list -o table`"
    )]
    NotFound {
        subscription: String,
        what: String,
        detail: String,
    },
    #[error(
        "Azure Resource Manager kept throttling Ferry's requests for subscription {subscription} ({detail}) after retrying with backoff: wait a minute and try again"
    )]
    Throttled {
        subscription: String,
        detail: String,
    },
    #[error("{what} (subscription {subscription}): HTTP {status}: {detail}")]
    Api {
        subscription: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error(
        "cannot reach {url}: {detail}. Check the network and the `endpoint`/`authority` of the subscription in config.yaml"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "{0:?} is not an AKS cluster name: use aks:<subscription>/<resourceGroup>/<cluster> (see `ferry clusters`)"
    )]
    BadName(String),
    #[error("the AKS cluster {cluster} cannot be reached: {detail}")]
    Kube { cluster: String, detail: String },
    #[error("invalid cluster request: {0}")]
    Invalid(#[from] SpecError),
    #[error("{0}")]
    Create(Box<CreateFailure>),
}

impl AksError {
    /// The message, with the advice of a creation that failed half-way worded for the
    /// caller's front end: `again` is how its user starts the same creation again
    /// ("run the same command again" on the command line). Other errors read as
    /// displayed.
    pub fn explain(&self, again: &str) -> String {
        match self {
            AksError::Create(f) => f.explain(again),
            other => other.to_string(),
        }
    }
}

/// A creation that failed after something was made.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFailure {
    pub subscription: String,
    pub resource_group: String,
    pub cluster: String,
    pub step: String,
    pub detail: String,
    /// What exists now (`managed cluster <name>`).
    pub created: Vec<String>,
}

impl CreateFailure {
    /// What failed, what exists and how to remove it; `again` is how the user starts
    /// the same creation again ("run the same command again").
    pub fn explain(&self, again: &str) -> String {
        let head = format!(
            "creating the AKS cluster {} (resource group {}) failed while {}: {}",
            self.cluster,
            self.resource_group,
            self.step,
            // Often a sentence of its own: Azure's messages end in '.'.
            self.detail.trim_end_matches('.')
        );
        if self.created.is_empty() {
            return format!("{head}. Nothing was created: fix the cause and {again}");
        }
        format!(
            "{head}. Already created: {}. To continue, {again} (the cluster is updated in place), or remove it with: az aks delete --subscription {} --resource-group {} --name {} --yes",
            self.created.join(", "),
            self.subscription,
            self.resource_group,
            self.cluster
        )
    }
}

impl std::fmt::Display for CreateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explain(AGAIN))
    }
}

pub type Result<T, E = AksError> = std::result::Result<T, E>;

/// A linked Azure subscription (`azure:` in config.yaml).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureSubscription {
    /// The subscription ID.
    pub id: String,
    /// A label for it in cluster names (`aks:<name>/...`); the ID when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The ARM base URL (a local test server); `https://management.azure.com` by default.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The token endpoint host, like the SDKs' `AZURE_AUTHORITY_HOST`;
    /// `https://login.microsoftonline.com` by default.
    #[serde(default)]
    pub authority: Option<String>,
    /// Fixed service principal credentials instead of the environment's (tests).
    #[serde(skip)]
    pub service_principal: Option<ServicePrincipal>,
}

impl std::fmt::Debug for AzureSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSubscription")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl AzureSubscription {
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.clone())
    }

    pub fn endpoint(&self) -> String {
        self.endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }

    pub fn authority(&self) -> String {
        self.authority
            .clone()
            .or_else(|| std::env::var("AZURE_AUTHORITY_HOST").ok())
            .unwrap_or_else(|| DEFAULT_AUTHORITY.into())
            .trim_end_matches('/')
            .to_string()
    }
}

/// An AKS cluster as Ferry lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AksCluster {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    /// The ARM resource ID.
    pub id: String,
    pub location: String,
    pub version: String,
    pub provisioning_state: String,
    pub power_state: String,
    pub fqdn: String,
    pub tags: BTreeMap<String, String>,
}

/// The resource group named in an ARM resource ID.
pub fn resource_group_of(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("resourceGroups"))
        .and_then(|i| parts.get(i + 1))
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// A managed cluster resource as Ferry keeps it.
pub fn cluster_of(subscription: &str, v: &Value) -> AksCluster {
    let p = &v["properties"];
    let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
    let id = s(&v["id"]);
    AksCluster {
        subscription: subscription.into(),
        resource_group: resource_group_of(&id),
        name: s(&v["name"]),
        id,
        location: s(&v["location"]),
        version: p["currentKubernetesVersion"]
            .as_str()
            .or(p["kubernetesVersion"].as_str())
            .unwrap_or_default()
            .into(),
        provisioning_state: s(&p["provisioningState"]),
        power_state: s(&p["powerState"]["code"]),
        fqdn: s(&p["fqdn"]),
        tags: v["tags"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn clusters_url(sub: &AzureSubscription) -> String {
    format!(
        "{}/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters?api-version={API_VERSION}",
        sub.endpoint(),
        sub.id
    )
}

/// The ARM URL of one managed cluster (with `suffix`, e.g. `/listClusterUserCredential`).
pub fn cluster_url(sub: &AzureSubscription, rg: &str, name: &str, suffix: &str) -> String {
    format!(
        "{}/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}{suffix}?api-version={API_VERSION}",
        sub.endpoint(),
        sub.id
    )
}

/// Every managed cluster of the subscription (all pages), sorted by resource group and
/// name.
pub async fn list_clusters(sub: &AzureSubscription) -> Result<Vec<AksCluster>> {
    let arm = Arm::new(sub)?;
    let items = paged(clusters_url(sub), |url| {
        let arm = &arm;
        async move { arm.get_json(&url, "cannot list AKS clusters").await }
    })
    .await?;
    let mut out: Vec<AksCluster> = items.iter().map(|v| cluster_of(&sub.id, v)).collect();
    out.sort_by(|a, b| (&a.resource_group, &a.name).cmp(&(&b.resource_group, &b.name)));
    Ok(out)
}

/// One subscription's clusters, as [`list_clusters`] but giving up after 60 s (the
/// Azure CLI's token may take that long).
pub async fn list_subscription(sub: &AzureSubscription) -> Result<Vec<AksCluster>> {
    tokio::time::timeout(Duration::from_secs(60), list_clusters(sub))
        .await
        .unwrap_or_else(|_| {
            Err(AksError::Unreachable {
                url: sub.endpoint(),
                detail: "no answer within 60 s".into(),
            })
        })
}

/// The managed cluster resource as ARM returns it.
pub async fn get_resource(sub: &AzureSubscription, rg: &str, name: &str) -> Result<Value> {
    let arm = Arm::new(sub)?;
    arm.get_json(
        &cluster_url(sub, rg, name, ""),
        &format!("cannot read the AKS cluster {rg}/{name}"),
    )
    .await
}

/// One cluster.
pub async fn get_cluster(sub: &AzureSubscription, rg: &str, name: &str) -> Result<AksCluster> {
    Ok(cluster_of(&sub.id, &get_resource(sub, rg, name).await?))
}

/// The user kubeconfig of a cluster (`listClusterUserCredential`), as YAML text.
pub async fn user_kubeconfig(sub: &AzureSubscription, rg: &str, name: &str) -> Result<String> {
    let arm = Arm::new(sub)?;
    let what = format!("cannot get the credentials of the AKS cluster {rg}/{name}");
    let v = arm
        .send_json(
            http::Method::POST,
            &cluster_url(sub, rg, name, "/listClusterUserCredential"),
            Some(&json!({})),
            &what,
        )
        .await?
        .1;
    let b64 = v["kubeconfigs"][0]["value"]
        .as_str()
        .ok_or_else(|| AksError::Kube {
            cluster: name.into(),
            detail: "AKS returned no kubeconfig".into(),
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| AksError::Kube {
            cluster: name.into(),
            detail: format!("the kubeconfig is not base64: {e}"),
        })?;
    String::from_utf8(bytes).map_err(|e| AksError::Kube {
        cluster: name.into(),
        detail: format!("the kubeconfig is not text: {e}"),
    })
}

/// The cluster's envelope: what a capture records so the cluster can be recreated.
pub async fn envelope(sub: &AzureSubscription, rg: &str, name: &str) -> Result<Value> {
    Ok(envelope_of(&get_resource(sub, rg, name).await?))
}

/// The envelope of a managed cluster resource.
pub fn envelope_of(v: &Value) -> Value {
    let p = &v["properties"];
    let pools: Vec<Value> = p["agentPoolProfiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|ap| {
                    json!({
                        "name": ap["name"],
                        "vmSize": ap["vmSize"],
                        "count": ap["count"],
                        "enableAutoScaling": ap["enableAutoScaling"].as_bool().unwrap_or(false),
                        "minCount": ap["minCount"],
                        "maxCount": ap["maxCount"],
                        "availabilityZones": ap.get("availabilityZones").cloned().unwrap_or(json!([])),
                        "mode": ap["mode"],
                        "osType": ap["osType"],
                        "osSKU": ap["osSKU"],
                        "osDiskSizeGB": ap["osDiskSizeGB"],
                        "maxPods": ap["maxPods"],
                        "nodeLabels": ap.get("nodeLabels").cloned().unwrap_or(json!({})),
                        "nodeTaints": ap.get("nodeTaints").cloned().unwrap_or(json!([])),
                        "orchestratorVersion": ap["orchestratorVersion"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "aks",
        "name": v["name"],
        "id": v["id"],
        "resourceGroup": resource_group_of(v["id"].as_str().unwrap_or_default()),
        "location": v["location"],
        "version": p["currentKubernetesVersion"].as_str().or(p["kubernetesVersion"].as_str()),
        "sku": v["sku"],
        "dnsPrefix": p["dnsPrefix"],
        "nodeResourceGroup": p["nodeResourceGroup"],
        "nodePools": pools,
        "networkProfile": p["networkProfile"],
        "identity": v["identity"],
        "aadProfile": p["aadProfile"],
        "enableRBAC": p["enableRBAC"],
        "tags": v.get("tags").cloned().unwrap_or(json!({})),
    })
}

/// The name Ferry gives an AKS cluster wherever a cluster is named:
/// `aks:<subscription label>/<resource group>/<cluster>`.
pub fn context_name(subscription: &str, rg: &str, cluster: &str) -> String {
    format!("aks:{subscription}/{rg}/{cluster}")
}

/// The (subscription label, resource group, cluster) of an `aks:` name; `None` for
/// names that are not AKS names at all.
pub fn parse_context_name(name: &str) -> Option<Result<(String, String, String)>> {
    let rest = name.strip_prefix("aks:")?;
    let parts: Vec<&str> = rest.split('/').collect();
    Some(match parts.as_slice() {
        [s, g, c] if !s.is_empty() && !g.is_empty() && !c.is_empty() => {
            Ok((s.to_string(), g.to_string(), c.to_string()))
        }
        _ => Err(AksError::BadName(name.to_string())),
    })
}

/// Azure as a [`Cloud`]: the linked subscriptions (`azure:` in config.yaml), each
/// listed whole (a subscription spans regions).
#[derive(Debug, Clone, Default)]
pub struct Azure {
    pub subscriptions: Vec<AzureSubscription>,
}

impl Azure {
    pub fn new(subscriptions: Vec<AzureSubscription>) -> Azure {
        Azure { subscriptions }
    }

    /// The linked subscription whose label (or ID) is `label`; one with just that ID
    /// when the settings do not name it.
    pub fn subscription(&self, label: &str) -> AzureSubscription {
        self.subscriptions
            .iter()
            .find(|s| s.label() == label)
            .or_else(|| self.subscriptions.iter().find(|s| s.id == label))
            .cloned()
            .unwrap_or_else(|| AzureSubscription {
                id: label.to_string(),
                ..Default::default()
            })
    }
}

/// Where the clusters of the subscription are grouped (it spans regions).
pub(crate) fn origin(sub: &AzureSubscription) -> Origin {
    Origin::Cloud {
        provider: "azure".into(),
        account: sub.label(),
        region: String::new(),
    }
}

impl Cloud for Azure {
    fn provider(&self) -> &'static str {
        "azure"
    }

    fn kind(&self) -> &'static str {
        "AKS"
    }

    fn prefix(&self) -> &'static str {
        "aks"
    }

    fn is_linked(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    fn origins(&self) -> Vec<Origin> {
        self.subscriptions.iter().map(origin).collect()
    }

    fn list(&self) -> Vec<BoxFuture<'static, Listed>> {
        self.subscriptions
            .iter()
            .map(|s| {
                let s = s.clone();
                let job: BoxFuture<'static, Listed> = Box::pin(async move {
                    let res = list_subscription(&s)
                        .await
                        .map(|cs| cs.iter().map(|c| LinkedCluster::from_aks(&s, c)).collect())
                        .map_err(|e| e.to_string());
                    (origin(&s), res)
                });
                job
            })
            .collect()
    }

    fn find(&self, name: &str) -> Option<std::result::Result<Found, CloudError>> {
        let (label, rg, cluster) = match parse_context_name(name)? {
            Ok(p) => p,
            Err(e) => return Some(Err(e.into())),
        };
        let sub = self.subscription(&label);
        Some(Ok(Box::pin(async move {
            let c = get_cluster(&sub, &rg, &cluster).await?;
            Ok(LinkedCluster::from_aks(&sub, &c))
        })))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A kubeconfig text as kube-rs reads it.
pub fn parse_kubeconfig(cluster: &str, text: &str) -> Result<kube::config::Kubeconfig> {
    kube::config::Kubeconfig::from_yaml(text).map_err(|e| AksError::Kube {
        cluster: cluster.into(),
        detail: format!("the kubeconfig AKS returned is not readable: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_resource_ids() {
        assert_eq!(
            parse_context_name("aks:prod/rg-shop/shop")
                .unwrap()
                .unwrap(),
            ("prod".into(), "rg-shop".into(), "shop".into())
        );
        assert!(parse_context_name("aks:prod/shop").unwrap().is_err());
        assert!(parse_context_name("eks:a/b/c").is_none());
        assert_eq!(
            resource_group_of(
                "/subscriptions/s/resourcegroups/RG-1/providers/Microsoft.ContainerService/managedClusters/x"
            ),
            "RG-1"
        );
    }

    #[test]
    fn an_envelope_keeps_pools_network_identity_and_tags() {
        let v = json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
            "name": "c", "location": "westeurope", "tags": {"team": "shop"},
            "identity": {"type": "SystemAssigned"},
            "properties": {"kubernetesVersion": "1.31", "currentKubernetesVersion": "1.31.2",
                "networkProfile": {"networkPlugin": "azure", "serviceCidr": "10.0.0.0/16"},
                "agentPoolProfiles": [{"name": "system", "vmSize": "Standard_D4s_v5", "count": 2,
                    "enableAutoScaling": true, "minCount": 1, "maxCount": 5, "availabilityZones": ["1", "2"],
                    "mode": "System", "osType": "Linux"}]}
        });
        let e = envelope_of(&v);
        assert_eq!(e["kind"], "aks");
        assert_eq!(e["version"], "1.31.2");
        assert_eq!(e["resourceGroup"], "rg");
        assert_eq!(e["nodePools"][0]["maxCount"], 5);
        assert_eq!(e["nodePools"][0]["availabilityZones"][1], "2");
        assert_eq!(e["networkProfile"]["networkPlugin"], "azure");
        assert_eq!(e["identity"]["type"], "SystemAssigned");
        assert_eq!(e["tags"]["team"], "shop");
        let c = cluster_of("s", &v);
        assert_eq!(
            (c.resource_group.as_str(), c.version.as_str()),
            ("rg", "1.31.2")
        );
    }
}

//! Creating an AKS cluster as a restore target: one `PUT` of the managed cluster (its
//! node pools, network profile, identity and tags), the long-running operation polled
//! through its `Azure-AsyncOperation` (or `Location`) URL, then the user credentials and
//! a check that the Azure Disk classes (`managed-csi`, `managed-csi-premium`) exist.
//! Progress goes out as [`CreateEvent`]s; a failure says what exists and how to delete
//! it, and running the same creation again continues (a cluster that exists is reused
//! when it succeeded, updated in place otherwise).
//!
//! No terminal code here: the caller renders the events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::arm::{Arm, operation_urls};
use super::{
    AksCluster, AksError, AzureSubscription, CreateEvent, CreateFailure, Result, cluster_of,
    cluster_url, parse_kubeconfig, poll_operation, user_kubeconfig,
};
use crate::cloud::{CloudError, ClusterRequest, Created};
use crate::kubeconfig::LinkedCluster;
use crate::probe::StorageClassInfo;
use crate::spec::{Field, SpecError, bad_version, check_version, parse_version};

/// The Azure Disk CSI driver's provisioner.
pub const AZURE_DISK_PROVISIONER: &str = "disk.csi.azure.com";
/// The storage classes every AKS cluster has (`managed-csi` is the default).
pub const STORAGE_CLASSES: &[&str] = &["managed-csi", "managed-csi-premium"];

/// A node pool to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolSpec {
    /// 1 to 12 lowercase letters and digits, starting with a letter.
    pub name: String,
    pub vm_size: String,
    pub count: i32,
    #[serde(default)]
    pub enable_auto_scaling: bool,
    #[serde(default)]
    pub min_count: Option<i32>,
    #[serde(default)]
    pub max_count: Option<i32>,
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// `System` or `User`.
    pub mode: String,
    /// `Linux` or `Windows`.
    pub os_type: String,
    #[serde(default)]
    pub os_sku: Option<String>,
    #[serde(default)]
    pub max_pods: Option<i32>,
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,
    /// `key=value:Effect`
    #[serde(default)]
    pub node_taints: Vec<String>,
}

/// A cluster to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AksSpec {
    pub name: String,
    pub resource_group: String,
    pub location: String,
    /// `major.minor` (or a full patch version).
    pub version: String,
    /// The cluster's DNS prefix; `<name>-dns` when absent.
    #[serde(default)]
    pub dns_prefix: Option<String>,
    pub node_pools: Vec<NodePoolSpec>,
    /// The `networkProfile` as ARM takes it (`networkPlugin`, `serviceCidr`, ...).
    #[serde(default)]
    pub network_profile: Option<Value>,
    /// `SystemAssigned` unless the envelope says otherwise.
    pub identity_type: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn int(v: &Value) -> Option<i32> {
    v.as_i64().and_then(|n| i32::try_from(n).ok())
}

impl AksSpec {
    /// A spec with one System pool of two `Standard_D4s_v5` nodes.
    pub fn new(name: &str, resource_group: &str, location: &str, version: &str) -> AksSpec {
        AksSpec {
            name: name.into(),
            resource_group: resource_group.into(),
            location: location.into(),
            version: version.into(),
            dns_prefix: None,
            node_pools: vec![NodePoolSpec {
                name: "system".into(),
                vm_size: "Standard_D4s_v5".into(),
                count: 2,
                mode: "System".into(),
                os_type: "Linux".into(),
                ..NodePoolSpec::default()
            }],
            network_profile: None,
            identity_type: "SystemAssigned".into(),
            tags: BTreeMap::new(),
        }
    }

    /// A spec pre-filled from a recorded envelope (see [`super::envelope`]): version
    /// (major.minor), location, resource group, node pools, network profile, identity
    /// and tags of the source; `name` is the new cluster's.
    pub fn from_envelope(env: &Value, name: &str) -> AksSpec {
        let version = env["version"]
            .as_str()
            .and_then(parse_version)
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_default();
        let node_pools = env["nodePools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| NodePoolSpec {
                        name: p["name"].as_str().unwrap_or("system").into(),
                        vm_size: p["vmSize"].as_str().unwrap_or("Standard_D4s_v5").into(),
                        count: int(&p["count"]).unwrap_or(2),
                        enable_auto_scaling: p["enableAutoScaling"].as_bool().unwrap_or(false),
                        min_count: int(&p["minCount"]),
                        max_count: int(&p["maxCount"]),
                        availability_zones: strs(&p["availabilityZones"]),
                        mode: p["mode"].as_str().unwrap_or("System").into(),
                        os_type: p["osType"].as_str().unwrap_or("Linux").into(),
                        os_sku: p["osSKU"].as_str().map(str::to_string),
                        max_pods: int(&p["maxPods"]),
                        node_labels: p["nodeLabels"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.into())))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        node_taints: strs(&p["nodeTaints"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Only the settings a new cluster takes; what Azure fills in (IPs, outbound
        // resources) stays behind.
        let network_profile = env["networkProfile"].as_object().map(|n| {
            let keep = [
                "networkPlugin",
                "networkPluginMode",
                "networkPolicy",
                "networkDataplane",
                "serviceCidr",
                "dnsServiceIP",
                "podCidr",
                "outboundType",
                "loadBalancerSku",
                "ipFamilies",
            ];
            Value::Object(
                n.iter()
                    .filter(|(k, v)| keep.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        });
        AksSpec {
            name: name.into(),
            resource_group: env["resourceGroup"].as_str().unwrap_or_default().into(),
            location: env["location"].as_str().unwrap_or_default().into(),
            version,
            dns_prefix: None,
            node_pools,
            network_profile,
            identity_type: env["identity"]["type"]
                .as_str()
                .unwrap_or("SystemAssigned")
                .into(),
            tags: env["tags"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.into())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Checks what ARM would refuse, before anything is created.
    pub fn validate(&self) -> Result<(), SpecError> {
        let n = &self.name;
        let name_ok = (1..=63).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(SpecError::new(
                Field::Name,
                format!("{n:?} is not a valid AKS cluster name"),
                "1 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit",
            ));
        }
        if self.resource_group.is_empty() {
            return Err(SpecError::new(
                Field::ResourceGroup,
                "no resource group is given",
                "the resource group to create the cluster in",
            ));
        }
        if self.location.is_empty() {
            return Err(SpecError::new(
                Field::Location,
                "no Azure region is given",
                "an Azure region such as westeurope",
            ));
        }
        if parse_version(&self.version).is_none() {
            return Err(bad_version(&self.version));
        }
        if !self.node_pools.iter().any(|p| p.mode == "System") {
            return Err(SpecError::new(
                Field::NodePools,
                "AKS needs at least one node pool in System mode",
                "a System pool",
            ));
        }
        for p in &self.node_pools {
            let name_ok = (1..=12).contains(&p.name.len())
                && p.name.starts_with(|c: char| c.is_ascii_lowercase())
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !name_ok {
                return Err(SpecError::new(
                    Field::NodePools,
                    format!("{:?} is not a valid node pool name", p.name),
                    "1 to 12 lowercase letters and digits, starting with a letter",
                )
                .of_pool(&p.name));
            }
            if !matches!(p.mode.as_str(), "System" | "User") {
                return Err(SpecError::new(
                    Field::NodePools,
                    format!("node pool {} has mode {:?}", p.name, p.mode),
                    "System or User",
                )
                .of_pool(&p.name));
            }
            if p.count < 0 || (p.mode == "System" && p.count < 1) {
                return Err(SpecError::new(
                    Field::NodeCounts,
                    format!("node pool {} cannot have {} nodes", p.name, p.count),
                    if p.mode == "System" {
                        "at least 1 node (a System pool runs the cluster's own pods)"
                    } else {
                        "0 nodes or more"
                    },
                )
                .of_pool(&p.name));
            }
            if p.enable_auto_scaling {
                match (p.min_count, p.max_count) {
                    (Some(min), Some(max)) if min <= p.count && p.count <= max && min >= 0 => {}
                    (min, max) => {
                        let shown =
                            |n: Option<i32>| n.map_or("none".to_string(), |n| n.to_string());
                        return Err(SpecError::new(
                            Field::NodeCounts,
                            format!(
                                "node pool {} autoscales but has min {}, {} nodes and max {}",
                                p.name,
                                shown(min),
                                p.count,
                                shown(max)
                            ),
                            "counts where 0 <= min <= nodes <= max",
                        )
                        .of_pool(&p.name));
                    }
                }
            }
        }
        Ok(())
    }

    /// The storage classes every new cluster has: the Azure Disk classes of
    /// [`STORAGE_CLASSES`] (`managed-csi` the default).
    pub fn storage_classes(&self) -> Vec<StorageClassInfo> {
        STORAGE_CLASSES
            .iter()
            .map(|name| StorageClassInfo {
                name: (*name).into(),
                provisioner: AZURE_DISK_PROVISIONER.into(),
                parameters: [(
                    "skuname".to_string(),
                    if *name == "managed-csi" {
                        "StandardSSD_LRS"
                    } else {
                        "Premium_LRS"
                    }
                    .to_string(),
                )]
                .into(),
                default: *name == "managed-csi",
                binding_mode: "WaitForFirstConsumer".into(),
                allow_expansion: true,
            })
            .collect()
    }

    /// The managed cluster resource to `PUT`.
    pub fn resource(&self) -> Value {
        let pools: Vec<Value> = self
            .node_pools
            .iter()
            .map(|p| {
                let mut v = json!({
                    "name": p.name,
                    "vmSize": p.vm_size,
                    "count": p.count,
                    "enableAutoScaling": p.enable_auto_scaling,
                    "mode": p.mode,
                    "osType": p.os_type,
                    "type": "VirtualMachineScaleSets",
                });
                if p.enable_auto_scaling {
                    v["minCount"] = json!(p.min_count);
                    v["maxCount"] = json!(p.max_count);
                }
                if !p.availability_zones.is_empty() {
                    v["availabilityZones"] = json!(p.availability_zones);
                }
                if let Some(s) = &p.os_sku {
                    v["osSKU"] = json!(s);
                }
                if let Some(m) = p.max_pods {
                    v["maxPods"] = json!(m);
                }
                if !p.node_labels.is_empty() {
                    v["nodeLabels"] = json!(p.node_labels);
                }
                if !p.node_taints.is_empty() {
                    v["nodeTaints"] = json!(p.node_taints);
                }
                v
            })
            .collect();
        let mut props = json!({
            "kubernetesVersion": self.version,
            "dnsPrefix": self.dns_prefix.clone().unwrap_or_else(|| format!("{}-dns", self.name)),
            "agentPoolProfiles": pools,
            "enableRBAC": true,
        });
        if let Some(n) = &self.network_profile {
            props["networkProfile"] = n.clone();
        }
        json!({
            "location": self.location,
            "tags": self.tags,
            "identity": {"type": self.identity_type},
            "properties": props,
        })
    }
}

/// How creation waits.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The first pause between looks (unless the server says `Retry-After`); it doubles
    /// up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
    /// How long the cluster may take, and then its storage classes.
    pub limit: Duration,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(15),
            limit: Duration::from_secs(40 * 60),
        }
    }
}

/// Creates the cluster `spec` in the subscription and waits until it has succeeded
/// and has its storage classes. `source_version` (the recorded source's) refuses an
/// older `spec.version` before anything is made. A cluster of that name that exists and
/// succeeded is reused; one that failed is updated with the spec (`PUT` again).
pub async fn create_cluster(
    sub: &AzureSubscription,
    spec: &AksSpec,
    source_version: Option<&str>,
    opts: &CreateOptions,
    events: &(dyn Fn(CreateEvent) + Send + Sync),
) -> Result<AksCluster> {
    spec.validate()?;
    if let Some(src) = source_version {
        check_version(&spec.version, src)?;
    }
    let arm = Arm::new(sub)?;
    let (rg, name) = (spec.resource_group.as_str(), spec.name.as_str());
    let url = cluster_url(sub, rg, name, "");
    let mut created: Vec<String> = Vec::new();
    let fail = |created: &[String], step: &str, detail: String| {
        AksError::Create(Box::new(CreateFailure {
            subscription: sub.id.clone(),
            resource_group: rg.into(),
            cluster: name.into(),
            step: step.into(),
            detail,
            created: created.to_vec(),
        }))
    };
    let what = format!("cluster {name}");

    let existing = match arm.get_json(&url, "cannot read the cluster").await {
        Ok(v) => Some(v),
        Err(AksError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let reuse = existing
        .as_ref()
        .is_some_and(|v| v["properties"]["provisioningState"] == "Succeeded");
    if let Some(v) = &existing {
        created.push(format!("managed cluster {name}"));
        let state = v["properties"]["provisioningState"].as_str().unwrap_or("?");
        events(CreateEvent::Step(if reuse {
            format!("cluster {name} exists: reusing it")
        } else {
            format!("cluster {name} exists ({state}): updating it")
        }));
    }
    if !reuse {
        if existing.is_none() {
            events(CreateEvent::Step(format!(
                "creating cluster {name} in {rg} ({})",
                spec.location
            )));
        }
        let (_, headers, _) = arm
            .send(
                Method::PUT,
                &url,
                Some(&spec.resource()),
                &format!("cannot create the AKS cluster {name}"),
            )
            .await
            .map_err(|e| {
                if created.is_empty() {
                    e
                } else {
                    fail(&created, "updating the cluster", e.to_string())
                }
            })?;
        if existing.is_none() {
            created.push(format!("managed cluster {name}"));
        }
        let (async_op, location) = operation_urls(&headers);
        let arm = &arm;
        let (async_op, location, url) = (async_op.as_deref(), location.as_deref(), url.as_str());
        poll_operation(
            &what,
            || async move {
                if async_op.is_some() || location.is_some() {
                    arm.operation_status(async_op, location, "cannot read the operation")
                        .await
                } else {
                    // No operation URL: the resource's provisioning state tells.
                    let v = arm.get_json(url, "cannot read the cluster").await?;
                    Ok(super::arm::OperationStatus {
                        status: v["properties"]["provisioningState"]
                            .as_str()
                            .unwrap_or("Creating")
                            .into(),
                        error: None,
                        retry_after: None,
                    })
                }
            },
            opts.poll,
            opts.max_poll,
            opts.limit,
            events,
        )
        .await
        .map_err(|d| fail(&created, "waiting for the cluster", d))?;
    }

    let resource = arm
        .get_json(&url, "cannot read the new cluster")
        .await
        .map_err(|e| fail(&created, "reading the new cluster", e.to_string()))?;
    let cluster = cluster_of(&sub.id, &resource);
    if cluster.provisioning_state != "Succeeded" {
        return Err(fail(
            &created,
            "reading the new cluster",
            format!("it is {}", cluster.provisioning_state),
        ));
    }

    events(CreateEvent::Step("checking the storage classes".into()));
    let client = async {
        let text = user_kubeconfig(sub, rg, name).await?;
        let kc = parse_kubeconfig(name, &text)?;
        crate::kubeconfig::client_from_kubeconfig(kc, None)
            .await
            .map_err(|e| AksError::Kube {
                cluster: name.into(),
                detail: e,
            })
    }
    .await
    .map_err(|e| fail(&created, "connecting to the new cluster", e.to_string()))?;
    wait_storage_classes(&client, opts)
        .await
        .map_err(|d| fail(&created, "checking the storage classes", d))?;
    events(CreateEvent::Ready(format!(
        "StorageClasses {}",
        STORAGE_CLASSES.join(", ")
    )));
    Ok(cluster)
}

/// An AKS cluster to create: the spec, the subscription it goes to, and the source's
/// version (the floor for `spec.version`).
#[derive(Debug, Clone)]
pub struct AksRequest {
    pub subscription: AzureSubscription,
    pub spec: AksSpec,
    pub source_version: Option<String>,
}

impl ClusterRequest for AksRequest {
    fn kind(&self) -> &'static str {
        "AKS"
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn storage_classes(&self) -> Vec<StorageClassInfo> {
        self.spec.storage_classes()
    }

    fn create<'a>(
        &'a self,
        events: &'a (dyn Fn(CreateEvent) + Send + Sync),
    ) -> futures::future::BoxFuture<'a, Result<Created, CloudError>> {
        Box::pin(async move {
            let cluster = create_cluster(
                &self.subscription,
                &self.spec,
                self.source_version.as_deref(),
                &CreateOptions::default(),
                events,
            )
            .await?;
            Ok(Created {
                ready: format!(
                    "AKS cluster {} has succeeded (Kubernetes {})",
                    cluster.name, cluster.version
                ),
                cluster: LinkedCluster::from_aks(&self.subscription, &cluster),
            })
        })
    }

    fn leftover(&self, again: &str) -> String {
        let spec = &self.spec;
        format!(
            "the AKS cluster {} (resource group {}) was created and stays: {again}, or remove it with: az aks delete --subscription {} --resource-group {} --name {} --yes",
            spec.name, spec.resource_group, self.subscription.id, spec.resource_group, spec.name
        )
    }
}

/// Waits until the cluster has the Azure Disk classes on `disk.csi.azure.com`.
async fn wait_storage_classes(
    client: &kube::Client,
    opts: &CreateOptions,
) -> std::result::Result<(), String> {
    use k8s_openapi::api::storage::v1::StorageClass;
    let api: kube::Api<StorageClass> = kube::Api::all(client.clone());
    let started = Instant::now();
    let mut pause = opts.poll;
    loop {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| crate::probe::explain(&e))?;
        let missing: Vec<&str> = STORAGE_CLASSES
            .iter()
            .copied()
            .filter(|want| {
                !list.items.iter().any(|s| {
                    s.metadata.name.as_deref() == Some(*want)
                        && s.provisioner == AZURE_DISK_PROVISIONER
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() > opts.limit.min(Duration::from_secs(10 * 60)) {
            return Err(format!(
                "the cluster has no {} class on {AZURE_DISK_PROVISIONER} (is the Azure Disk CSI driver disabled? enable it with `az aks update --enable-disk-driver`)",
                missing.join(", ")
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(opts.max_poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_from_an_envelope_keeps_pools_and_network() {
        let env = json!({
            "kind": "aks", "version": "1.31.2", "location": "westeurope", "resourceGroup": "rg",
            "identity": {"type": "SystemAssigned"}, "tags": {"team": "shop"},
            "networkProfile": {"networkPlugin": "azure", "serviceCidr": "10.0.0.0/16", "loadBalancerProfile": {"x": 1}},
            "nodePools": [{"name": "system", "vmSize": "Standard_D4s_v5", "count": 2, "enableAutoScaling": true,
                           "minCount": 1, "maxCount": 4, "availabilityZones": ["1", "2"], "mode": "System", "osType": "Linux"}],
        });
        let s = AksSpec::from_envelope(&env, "new");
        assert_eq!(s.version, "1.31");
        assert_eq!(s.node_pools[0].max_count, Some(4));
        assert_eq!(s.node_pools[0].availability_zones, ["1", "2"]);
        let net = s.network_profile.clone().unwrap();
        assert_eq!(net["networkPlugin"], "azure");
        assert!(net.get("loadBalancerProfile").is_none());
        s.validate().unwrap();
        let r = s.resource();
        assert_eq!(r["properties"]["agentPoolProfiles"][0]["minCount"], 1);
        assert_eq!(r["properties"]["dnsPrefix"], "new-dns");
        let field_of = |f: &dyn Fn(&mut AksSpec)| {
            let mut bad = s.clone();
            f(&mut bad);
            bad.validate().unwrap_err()
        };
        let e = field_of(&|b| b.node_pools[0].mode = "User".into());
        assert_eq!(e.field, Field::NodePools);
        assert!(e.problem.contains("System mode"), "{e}");
        let e = field_of(&|b| b.node_pools[0].count = 9);
        assert_eq!(
            (e.field, e.pool.as_deref()),
            (Field::NodeCounts, Some("system"))
        );
        let e = field_of(&|b| b.node_pools[0].count = 0);
        assert_eq!(e.field, Field::NodeCounts);
        assert!(e.want.contains("at least 1"), "{e}");
        assert_eq!(field_of(&|b| b.name = "-x".into()).field, Field::Name);
        assert_eq!(field_of(&|b| b.location.clear()).field, Field::Location);
        assert_eq!(field_of(&|b| b.version = "1".into()).field, Field::Version);
        let e = field_of(&|b| b.resource_group.clear());
        assert_eq!(e.field, Field::ResourceGroup);
        assert!(!e.to_string().contains("--"), "no flag in {e}");
    }
}

//! Creating an EKS cluster as a restore target: the cluster, its managed node groups and
//! add-ons (the EBS CSI driver), each waited for until ACTIVE, then a `gp3` StorageClass
//! through the cluster's own API. Progress goes out as [`CreateEvent`]s; a failure says
//! what already exists so the user can run the command again (existing parts are
//! reused) or remove them.
//!
//! No terminal code here: the caller renders the events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_eks::error::ProvideErrorMetadata as _;
use aws_sdk_eks::types::{
    AddonStatus, ClusterStatus, NodegroupScalingConfig, NodegroupStatus, Taint, TaintEffect,
    VpcConfigRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AwsAccount, EksCluster, EksError, Result, cluster_of, sdk_err};
use crate::cloud::{CloudError, ClusterRequest, CreateEvent, Created};
use crate::kubeconfig::LinkedCluster;
use crate::probe::StorageClassInfo;
use crate::spec::{Field, SpecError, bad_version, check_version, parse_version};

/// The EBS CSI driver add-on, which `gp3` volumes need.
pub const EBS_CSI_ADDON: &str = "aws-ebs-csi-driver";
/// The provisioner of EBS volumes.
pub const EBS_PROVISIONER: &str = "ebs.csi.aws.com";

/// A node taint as EKS takes it (`effect`: NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
}

/// A managed node group to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodegroupSpec {
    pub name: String,
    pub instance_types: Vec<String>,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_size: i32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<TaintSpec>,
    /// The cluster's subnets when empty.
    #[serde(default)]
    pub subnets: Vec<String>,
    pub node_role: String,
    #[serde(default)]
    pub ami_type: Option<String>,
    #[serde(default)]
    pub capacity_type: Option<String>,
    #[serde(default)]
    pub disk_size: Option<i32>,
}

/// A cluster to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub name: String,
    /// `major.minor`, e.g. `1.31`.
    pub version: String,
    pub role_arn: String,
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    #[serde(default)]
    pub service_ipv4_cidr: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub nodegroups: Vec<NodegroupSpec>,
    /// Add-ons to install (the EBS CSI driver by default).
    pub addons: Vec<String>,
    /// A StorageClass to create on the EBS CSI driver (`gp3`), made the default.
    pub storage_class: Option<String>,
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

fn map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn int(v: &Value, default: i32) -> i32 {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(default)
}

impl ClusterSpec {
    /// A spec for a cluster `name` with no node groups yet: public endpoint, the EBS
    /// CSI add-on and a default `gp3` class.
    pub fn new(name: &str) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            endpoint_public_access: true,
            addons: vec![EBS_CSI_ADDON.into()],
            storage_class: Some("gp3".into()),
            ..ClusterSpec::default()
        }
    }

    /// The storage classes the new cluster will have: the `gp3` class on the EBS CSI
    /// driver (default, WaitForFirstConsumer, expandable) when the spec makes one.
    pub fn storage_classes(&self) -> Vec<StorageClassInfo> {
        self.storage_class
            .iter()
            .map(|c| StorageClassInfo {
                name: c.clone(),
                provisioner: EBS_PROVISIONER.into(),
                parameters: [("type".to_string(), "gp3".to_string())].into(),
                default: true,
                binding_mode: "WaitForFirstConsumer".into(),
                allow_expansion: true,
            })
            .collect()
    }

    /// A spec pre-filled from a recorded envelope (see [`super::envelope`]): version,
    /// role, networking, tags, node groups and add-ons of the source cluster; `name` is
    /// the new cluster's. The EBS CSI add-on and a `gp3` class are always included.
    pub fn from_envelope(env: &Value, name: &str) -> ClusterSpec {
        let net = &env["networking"];
        let mut addons: Vec<String> = env["addons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !addons.iter().any(|a| a == EBS_CSI_ADDON) {
            addons.push(EBS_CSI_ADDON.into());
        }
        let nodegroups = env["nodegroups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|ng| NodegroupSpec {
                        name: ng["name"].as_str().unwrap_or("general").to_string(),
                        instance_types: strs(&ng["instanceTypes"]),
                        min_size: int(&ng["scaling"]["min"], 1),
                        max_size: int(&ng["scaling"]["max"], 3),
                        desired_size: int(&ng["scaling"]["desired"], 2),
                        labels: map(&ng["labels"]),
                        taints: ng["taints"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .map(|t| TaintSpec {
                                        key: t["key"].as_str().unwrap_or_default().into(),
                                        value: t["value"].as_str().map(str::to_string),
                                        effect: t["effect"]
                                            .as_str()
                                            .unwrap_or("NO_SCHEDULE")
                                            .into(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        subnets: strs(&ng["subnets"]),
                        node_role: ng["nodeRole"].as_str().unwrap_or_default().into(),
                        ami_type: ng["amiType"].as_str().map(str::to_string),
                        capacity_type: ng["capacityType"].as_str().map(str::to_string),
                        disk_size: ng["diskSize"].as_i64().and_then(|n| i32::try_from(n).ok()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ClusterSpec {
            name: name.into(),
            version: env["version"].as_str().unwrap_or_default().into(),
            role_arn: env["roleArn"].as_str().unwrap_or_default().into(),
            subnet_ids: strs(&net["subnetIds"]),
            security_group_ids: strs(&net["securityGroupIds"]),
            endpoint_public_access: net["endpointPublicAccess"].as_bool().unwrap_or(true),
            endpoint_private_access: net["endpointPrivateAccess"].as_bool().unwrap_or(false),
            service_ipv4_cidr: net["serviceIpv4Cidr"].as_str().map(str::to_string),
            tags: map(&env["tags"]),
            nodegroups,
            addons,
            storage_class: Some("gp3".into()),
        }
    }

    /// Checks what EKS would refuse, before anything is created.
    pub fn validate(&self) -> Result<(), SpecError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 100
            && self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(SpecError::new(
                Field::Name,
                format!("{:?} is not a valid EKS cluster name", self.name),
                "1 to 100 letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        if parse_version(&self.version).is_none() {
            return Err(bad_version(&self.version));
        }
        if !self.role_arn.starts_with("arn:") {
            return Err(SpecError::new(
                Field::RoleArn,
                format!(
                    "the cluster role {:?} is not an IAM role ARN",
                    self.role_arn
                ),
                ROLE_ARN,
            ));
        }
        if self.subnet_ids.len() < 2 {
            return Err(SpecError::new(
                Field::Subnets,
                "EKS needs subnets in at least two availability zones",
                "two or more subnets in different availability zones",
            ));
        }
        for ng in &self.nodegroups {
            if ng.node_role.is_empty() {
                return Err(SpecError::new(
                    Field::NodeRole,
                    format!("node group {} has no node role", ng.name),
                    ROLE_ARN,
                )
                .of_pool(&ng.name));
            }
            if ng.min_size < 0
                || ng.min_size > ng.desired_size
                || ng.desired_size > ng.max_size
                || ng.max_size < 1
            {
                return Err(SpecError::new(
                    Field::NodeCounts,
                    format!(
                        "node group {} cannot have min {}, desired {} and max {} nodes",
                        ng.name, ng.min_size, ng.desired_size, ng.max_size
                    ),
                    "counts where 0 <= min <= desired <= max and max >= 1",
                )
                .of_pool(&ng.name));
            }
            for t in &ng.taints {
                if !TaintEffect::values().contains(&t.effect.as_str()) {
                    return Err(SpecError::new(
                        Field::Taints,
                        format!(
                            "node group {}: taint effect {:?} is not one EKS knows",
                            ng.name, t.effect
                        ),
                        "NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE",
                    )
                    .of_pool(&ng.name));
                }
            }
        }
        Ok(())
    }
}

/// What an IAM role field should hold.
const ROLE_ARN: &str = "an IAM role ARN (arn:aws:iam::<account>:role/<name>)";

/// How creation waits.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The first pause between status checks; it doubles up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
    /// How long each cluster, node group or add-on may take to become ACTIVE.
    pub limit: Duration,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(15),
            limit: Duration::from_secs(40 * 60),
        }
    }
}

struct Run<'a> {
    region: &'a str,
    cluster: String,
    created: Vec<String>,
    events: &'a (dyn Fn(CreateEvent) + Send + Sync),
    opts: &'a CreateOptions,
}

impl Run<'_> {
    /// Turns an error into one that lists what exists; before anything exists, the
    /// error itself says it best (credentials, permissions, throttling).
    fn fail(&self, step: &str, e: EksError) -> EksError {
        if self.created.is_empty() {
            return e;
        }
        EksError::Create {
            cluster: self.cluster.clone(),
            region: self.region.into(),
            step: step.into(),
            detail: e.to_string(),
            created: self.created.clone(),
        }
    }

    fn failed(&self, step: &str, detail: String) -> EksError {
        EksError::Create {
            cluster: self.cluster.clone(),
            region: self.region.into(),
            step: step.into(),
            detail,
            created: self.created.clone(),
        }
    }

    /// Polls `status` until it says ACTIVE (`Ok(true)`), a failure (`Err`), or time is up.
    async fn wait<F, Fut>(&self, what: &str, mut status: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Option<String>)>>,
    {
        let started = Instant::now();
        let mut pause = self.opts.poll;
        let mut last = String::new();
        loop {
            let (s, problem) = status()
                .await
                .map_err(|e| self.fail(&format!("waiting for {what}"), e))?;
            if s != last {
                (self.events)(CreateEvent::Status {
                    what: what.into(),
                    status: s.clone(),
                });
                last = s.clone();
            }
            match s.as_str() {
                "ACTIVE" => {
                    (self.events)(CreateEvent::Ready(what.into()));
                    return Ok(());
                }
                "FAILED" | "CREATE_FAILED" | "DELETING" | "DELETE_FAILED" | "DEGRADED" => {
                    return Err(self.failed(
                        &format!("waiting for {what}"),
                        format!(
                            "it is {s}{}",
                            problem.map(|p| format!(": {p}")).unwrap_or_default()
                        ),
                    ));
                }
                _ => {}
            }
            if started.elapsed() > self.opts.limit {
                return Err(self.failed(
                    &format!("waiting for {what}"),
                    format!("still {s} after {} min", self.opts.limit.as_secs() / 60),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.opts.max_poll);
        }
    }
}

fn in_use(code: Option<&str>) -> bool {
    code == Some("ResourceInUseException")
}

/// Creates the cluster `spec` in `region`, its node groups and add-ons, waiting for each
/// to become ACTIVE, then the storage class. `source_version` (the recorded source's)
/// refuses an older `spec.version`. Parts that exist already (a rerun after a failure)
/// are reused.
pub async fn create_cluster(
    account: &AwsAccount,
    region: &str,
    spec: &ClusterSpec,
    source_version: Option<&str>,
    opts: &CreateOptions,
    events: &(dyn Fn(CreateEvent) + Send + Sync),
) -> Result<EksCluster> {
    spec.validate()?;
    if let Some(src) = source_version {
        check_version(&spec.version, src)?;
    }
    let cfg = account.sdk_config(region).await;
    let eks = aws_sdk_eks::Client::new(&cfg);
    let mut run = Run {
        region,
        cluster: spec.name.clone(),
        created: Vec::new(),
        events,
        opts,
    };
    let name = spec.name.as_str();

    events(CreateEvent::Step(format!("creating cluster {name}")));
    let mut req = eks
        .create_cluster()
        .name(name)
        .version(&spec.version)
        .role_arn(&spec.role_arn)
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .set_subnet_ids(Some(spec.subnet_ids.clone()))
                .set_security_group_ids(
                    (!spec.security_group_ids.is_empty()).then(|| spec.security_group_ids.clone()),
                )
                .endpoint_public_access(spec.endpoint_public_access)
                .endpoint_private_access(spec.endpoint_private_access)
                .build(),
        )
        .set_tags((!spec.tags.is_empty()).then(|| spec.tags.clone().into_iter().collect()));
    if let Some(cidr) = &spec.service_ipv4_cidr {
        req = req.kubernetes_network_config(
            aws_sdk_eks::types::KubernetesNetworkConfigRequest::builder()
                .service_ipv4_cidr(cidr)
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if in_use(e.code()) => {
            tracing::info!(cluster = name, "the EKS cluster exists already: reusing it");
            events(CreateEvent::Step(format!(
                "cluster {name} exists: reusing it"
            )));
        }
        Err(e) => {
            return Err(run.fail(
                "creating the cluster",
                sdk_err(
                    account,
                    &format!("cannot create EKS cluster {name}"),
                    region,
                    e,
                ),
            ));
        }
    }
    run.created.push(format!("cluster {name}"));

    let what = format!("cluster {name}");
    run.wait(&what, || async {
        let c = eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                sdk_err(
                    account,
                    &format!("cannot describe EKS cluster {name}"),
                    region,
                    e,
                )
            })?
            .cluster
            .ok_or_else(|| EksError::NotReady(name.into()))?;
        let s = c.status.clone().unwrap_or(ClusterStatus::Creating);
        Ok((s.as_str().to_string(), None))
    })
    .await?;

    for ng in &spec.nodegroups {
        events(CreateEvent::Step(format!(
            "creating node group {}",
            ng.name
        )));
        let subnets = if ng.subnets.is_empty() {
            spec.subnet_ids.clone()
        } else {
            ng.subnets.clone()
        };
        let taints: Vec<Taint> = ng
            .taints
            .iter()
            .map(|t| {
                Taint::builder()
                    .key(&t.key)
                    .set_value(t.value.clone())
                    .effect(TaintEffect::from(t.effect.as_str()))
                    .build()
            })
            .collect();
        let r = eks
            .create_nodegroup()
            .cluster_name(name)
            .nodegroup_name(&ng.name)
            .node_role(&ng.node_role)
            .set_subnets(Some(subnets))
            .set_instance_types((!ng.instance_types.is_empty()).then(|| ng.instance_types.clone()))
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(ng.min_size)
                    .max_size(ng.max_size)
                    .desired_size(ng.desired_size)
                    .build(),
            )
            .set_labels((!ng.labels.is_empty()).then(|| ng.labels.clone().into_iter().collect()))
            .set_taints((!taints.is_empty()).then_some(taints))
            .set_ami_type(ng.ami_type.as_deref().map(Into::into))
            .set_capacity_type(ng.capacity_type.as_deref().map(Into::into))
            .set_disk_size(ng.disk_size)
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if in_use(e.code()) => {
                events(CreateEvent::Step(format!(
                    "node group {} exists: reusing it",
                    ng.name
                )));
            }
            Err(e) => {
                return Err(run.fail(
                    &format!("creating node group {}", ng.name),
                    sdk_err(
                        account,
                        &format!("cannot create node group {}", ng.name),
                        region,
                        e,
                    ),
                ));
            }
        }
        run.created.push(format!("nodegroup {}", ng.name));
    }
    for ng in &spec.nodegroups {
        let what = format!("node group {}", ng.name);
        run.wait(&what, || async {
            let d = eks
                .describe_nodegroup()
                .cluster_name(name)
                .nodegroup_name(&ng.name)
                .send()
                .await
                .map_err(|e| {
                    sdk_err(
                        account,
                        &format!("cannot describe node group {}", ng.name),
                        region,
                        e,
                    )
                })?
                .nodegroup
                .ok_or_else(|| EksError::NotReady(ng.name.clone()))?;
            let s = d.status.clone().unwrap_or(NodegroupStatus::Creating);
            let issues = d
                .health
                .and_then(|h| h.issues)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.message.clone())
                .collect::<Vec<_>>();
            Ok((
                s.as_str().to_string(),
                (!issues.is_empty()).then(|| issues.join("; ")),
            ))
        })
        .await?;
    }

    for addon in &spec.addons {
        events(CreateEvent::Step(format!("installing add-on {addon}")));
        match eks
            .create_addon()
            .cluster_name(name)
            .addon_name(addon)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if in_use(e.code()) => {}
            Err(e) => {
                return Err(run.fail(
                    &format!("installing add-on {addon}"),
                    sdk_err(account, &format!("cannot create add-on {addon}"), region, e),
                ));
            }
        }
        run.created.push(format!("addon {addon}"));
        let what = format!("add-on {addon}");
        run.wait(&what, || async {
            let d = eks
                .describe_addon()
                .cluster_name(name)
                .addon_name(addon)
                .send()
                .await
                .map_err(|e| {
                    sdk_err(
                        account,
                        &format!("cannot describe add-on {addon}"),
                        region,
                        e,
                    )
                })?
                .addon
                .ok_or_else(|| EksError::NotReady(addon.clone()))?;
            let s = d.status.clone().unwrap_or(AddonStatus::Creating);
            let issues = d
                .health
                .and_then(|h| h.issues)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.message.clone())
                .collect::<Vec<_>>();
            Ok((
                s.as_str().to_string(),
                (!issues.is_empty()).then(|| issues.join("; ")),
            ))
        })
        .await?;
    }

    let cluster = eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| {
            run.fail(
                "reading the new cluster",
                sdk_err(
                    account,
                    &format!("cannot describe EKS cluster {name}"),
                    region,
                    e,
                ),
            )
        })?
        .cluster
        .map(|c| cluster_of(c, region))
        .ok_or_else(|| run.failed("reading the new cluster", "EKS returned no cluster".into()))?;

    if let Some(class) = &spec.storage_class {
        events(CreateEvent::Step(format!("creating StorageClass {class}")));
        let client = super::client(account, &cluster)
            .await
            .map_err(|e| run.fail(&format!("connecting to create StorageClass {class}"), e))?;
        ensure_gp3(&client, class)
            .await
            .map_err(|detail| run.failed(&format!("creating StorageClass {class}"), detail))?;
        run.created.push(format!("storageclass {class}"));
        events(CreateEvent::Ready(format!("StorageClass {class}")));
    }
    Ok(cluster)
}

/// An EKS cluster to create: the spec, the account and region it goes to, and the
/// source's version (the floor for `spec.version`).
#[derive(Debug, Clone)]
pub struct EksRequest {
    pub account: AwsAccount,
    pub region: String,
    pub spec: ClusterSpec,
    pub source_version: Option<String>,
}

impl ClusterRequest for EksRequest {
    fn kind(&self) -> &'static str {
        "EKS"
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
                &self.account,
                &self.region,
                &self.spec,
                self.source_version.as_deref(),
                &CreateOptions::default(),
                events,
            )
            .await?;
            Ok(Created {
                ready: format!(
                    "EKS cluster {} is ACTIVE (Kubernetes {})",
                    cluster.name, cluster.version
                ),
                cluster: LinkedCluster::from_eks(&self.account, &cluster),
            })
        })
    }

    fn leftover(&self, again: &str) -> String {
        let (region, spec) = (&self.region, &self.spec);
        let mut remove: Vec<String> = spec
            .nodegroups
            .iter()
            .map(|ng| {
                format!(
                    "aws eks delete-nodegroup --region {region} --cluster-name {} --nodegroup-name {}",
                    spec.name, ng.name
                )
            })
            .collect();
        remove.push(format!(
            "aws eks delete-cluster --region {region} --name {}",
            spec.name
        ));
        format!(
            "the EKS cluster {} and its node groups ({}) were created and stay: {again}, or remove them with: {}",
            spec.name,
            spec.nodegroups
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            remove.join("; ")
        )
    }
}

/// Creates the EBS `gp3` class (default, WaitForFirstConsumer, expandable) unless a
/// class of that name exists; the former default class stops being default.
pub async fn ensure_gp3(client: &kube::Client, name: &str) -> std::result::Result<(), String> {
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
    const DEFAULT: &str = "storageclass.kubernetes.io/is-default-class";
    let api: Api<StorageClass> = Api::all(client.clone());
    let existing = api
        .list(&ListParams::default())
        .await
        .map_err(|e| crate::probe::explain(&e))?;
    if existing
        .items
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(name))
    {
        return Ok(());
    }
    for sc in &existing.items {
        let is_default = sc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT))
            .is_some_and(|v| v == "true");
        if let (true, Some(n)) = (is_default, sc.metadata.name.as_deref()) {
            let patch = serde_json::json!({"metadata": {"annotations": {DEFAULT: "false"}}});
            api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| crate::probe::explain(&e))?;
        }
    }
    let sc: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": {DEFAULT: "true"}},
        "provisioner": EBS_PROVISIONER,
        "parameters": {"type": "gp3", "fsType": "ext4"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    }))
    .map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &sc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(crate::probe::explain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_from_an_envelope_keeps_node_groups_and_adds_storage() {
        let env = serde_json::json!({
            "version": "1.31", "roleArn": "arn:aws:iam::1:role/eks",
            "networking": {"subnetIds": ["a", "b"], "securityGroupIds": ["sg"], "endpointPublicAccess": true, "endpointPrivateAccess": false},
            "tags": {"team": "shop"},
            "nodegroups": [{"name": "general", "instanceTypes": ["m6i.large"], "scaling": {"min": 1, "max": 5, "desired": 2},
                            "labels": {"role": "web"}, "taints": [{"key": "k", "value": "v", "effect": "NO_SCHEDULE"}],
                            "subnets": ["a"], "nodeRole": "arn:aws:iam::1:role/node", "amiType": "AL2023_x86_64_STANDARD", "capacityType": "ON_DEMAND", "diskSize": 20}],
            "addons": [{"name": "vpc-cni"}],
        });
        let s = ClusterSpec::from_envelope(&env, "new");
        assert_eq!(s.name, "new");
        assert_eq!(s.nodegroups[0].desired_size, 2);
        assert_eq!(s.nodegroups[0].taints[0].effect, "NO_SCHEDULE");
        assert_eq!(s.addons, ["vpc-cni", EBS_CSI_ADDON]);
        assert_eq!(s.storage_class.as_deref(), Some("gp3"));
        s.validate().unwrap();
        let field_of = |f: &dyn Fn(&mut ClusterSpec)| {
            let mut bad = s.clone();
            f(&mut bad);
            bad.validate().unwrap_err()
        };
        let e = field_of(&|b| b.subnet_ids.truncate(1));
        assert_eq!(e.field, Field::Subnets);
        assert!(e.problem.contains("two availability zones"), "{e}");
        let e = field_of(&|b| b.nodegroups[0].taints[0].effect = "Sometimes".into());
        assert_eq!(
            (e.field, e.pool.as_deref()),
            (Field::Taints, Some("general"))
        );
        let e = field_of(&|b| b.nodegroups[0].min_size = 3);
        assert_eq!(e.field, Field::NodeCounts);
        let e = field_of(&|b| b.nodegroups[0].node_role.clear());
        assert_eq!(
            (e.field, e.pool.as_deref()),
            (Field::NodeRole, Some("general"))
        );
        assert_eq!(
            field_of(&|b| b.role_arn = "eks".into()).field,
            Field::RoleArn
        );
        assert_eq!(
            field_of(&|b| b.version = "new".into()).field,
            Field::Version
        );
        let e = field_of(&|b| b.name = "-x".into());
        assert_eq!(e.field, Field::Name);
        assert!(!e.to_string().contains("--"), "no flag in {e}");
    }
}

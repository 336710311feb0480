//! `ferry cluster create eks|aks`: a new EKS or AKS cluster as a restore target,
//! pre-filled from the envelope a capture recorded (`--from-snapshot`), made by
//! `ferry_providers::eks::create_cluster` or `ferry_providers::aks::create_cluster` with its
//! progress printed here. Each cloud's flags are its form; another cloud is another
//! subcommand here.

use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};

use super::{Context, Exit};
use crate::config::Settings;
use ferry_k8s::capture::CaptureMeta;
use ferry_providers::aks::{self, AksError, AksSpec, Azure};
use ferry_providers::cloud::CreateEvent;
use ferry_providers::eks::{self, Aws, ClusterSpec, CreateOptions, EksError, NodegroupSpec};
use ferry_providers::spec::{Field, SpecError, parse_version};
use ferry_repo::snapshot;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a managed cluster (a restore target)
    #[command(subcommand)]
    Create(CreateCommand),
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// An EKS cluster with node groups, the EBS CSI add-on and a default gp3 class
    Eks(EksArgs),
    /// An AKS cluster with node pools (and its managed-csi storage classes)
    Aks(AksArgs),
}

#[derive(Debug, Args)]
pub struct AksArgs {
    /// The subscription: its name or ID under `azure:` in config.yaml, or an ID
    #[arg(long)]
    pub subscription: String,
    /// The resource group [default: the source's, from --from-snapshot]
    #[arg(long)]
    pub resource_group: Option<String>,
    /// The Azure region, e.g. westeurope [default: the source's]
    #[arg(long)]
    pub location: Option<String>,
    /// The new cluster's name
    #[arg(long)]
    pub name: String,
    /// Pre-fill from the envelope recorded in this capture (version, location, node
    /// pools, network, identity, tags); the flags below override it
    #[arg(long, value_name = "SNAPSHOT")]
    pub from_snapshot: Option<String>,
    /// Kubernetes version (major.minor); not older than the source's
    #[arg(long = "version", value_name = "VERSION")]
    pub k8s_version: Option<String>,
    /// A node pool NAME:VM_SIZE:COUNT (repeat; the first is the System pool) [default:
    /// from the envelope, else system:Standard_D4s_v5:2]
    #[arg(long = "node-pool", value_name = "NAME:VM_SIZE:COUNT")]
    pub node_pools: Vec<String>,
    /// VM size of every node pool
    #[arg(long)]
    pub vm_size: Option<String>,
    /// Node count of every node pool
    #[arg(long)]
    pub nodes: Option<i32>,
    /// Print the new cluster as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EksArgs {
    /// The AWS profile (see `aws:` in config.yaml) [default: the default chain]
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// The region
    #[arg(long)]
    pub region: String,
    /// The new cluster's name
    #[arg(long)]
    pub name: String,
    /// Pre-fill from the envelope recorded in this capture (version, role, subnets,
    /// node groups, add-ons); the flags below override it
    #[arg(long, value_name = "SNAPSHOT")]
    pub from_snapshot: Option<String>,
    /// Kubernetes version (major.minor); not older than the source's
    #[arg(long = "version", value_name = "VERSION")]
    pub k8s_version: Option<String>,
    /// The cluster's IAM role
    #[arg(long)]
    pub role_arn: Option<String>,
    /// A subnet (repeat; at least two availability zones)
    #[arg(long = "subnet")]
    pub subnets: Vec<String>,
    /// A security group (repeat)
    #[arg(long = "security-group")]
    pub security_groups: Vec<String>,
    /// The node groups' IAM role
    #[arg(long)]
    pub node_role: Option<String>,
    /// Instance type of the node group (repeat) [default: from the envelope, else m6i.large]
    #[arg(long = "instance-type")]
    pub instance_types: Vec<String>,
    /// Desired node count [default: from the envelope, else 2]
    #[arg(long)]
    pub nodes: Option<i32>,
    /// Do not install the EBS CSI add-on and the gp3 storage class
    #[arg(long)]
    pub no_storage: bool,
    /// Print the new cluster as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, cmd: ClusterCommand) -> anyhow::Result<Exit> {
    match cmd {
        ClusterCommand::Create(CreateCommand::Eks(a)) => create_eks(ctx, a),
        ClusterCommand::Create(CreateCommand::Aks(a)) => create_aks(ctx, a),
    }
}

/// The envelope and Kubernetes version recorded in a capture.
fn recorded(
    ctx: &Context,
    snapshot: &str,
) -> anyhow::Result<(Option<serde_json::Value>, String, String)> {
    let repo = ctx.open()?;
    let snap = snapshot::find(&repo, snapshot)?;
    let meta = CaptureMeta::of(&snap)
        .with_context(|| format!("snapshot {} is not a Kubernetes capture", snap.id.short()))?;
    let version = meta
        .envelope
        .as_ref()
        .and_then(|e| e["version"].as_str().map(str::to_string))
        .unwrap_or(meta.server_version.clone());
    Ok((meta.envelope, version, meta.cluster))
}

/// How a user of the command line starts a failed creation again.
const AGAIN: &str = "run the same command again";

/// A request error in the command line's words: the flag that sets the field.
fn flag_advice(e: &SpecError) -> String {
    let flag = match e.field {
        Field::Name => "--name",
        Field::Version => "--version",
        Field::RoleArn => "--role-arn",
        Field::Subnets => "--subnet (once per subnet)",
        Field::NodeRole => "--node-role",
        Field::NodeCounts => "--nodes",
        Field::ResourceGroup => "--resource-group",
        Field::Location => "--location",
        Field::NodePools => "--node-pool NAME:VM_SIZE:COUNT (the first is the System pool)",
        Field::Taints => {
            return format!(
                "{}: no flag sets {}; the snapshot's envelope gave it, so leave out --from-snapshot and give the cluster's settings as flags",
                e.problem, e.field
            );
        }
    };
    format!("{}: give {} with {flag}", e.problem, e.want)
}

/// An EKS creation error in the command line's words.
fn eks_error(e: EksError) -> anyhow::Error {
    match e {
        EksError::Invalid(s) => anyhow!(flag_advice(&s)),
        e @ EksError::Create { .. } => anyhow!(e.explain(AGAIN)),
        e => e.into(),
    }
}

/// An AKS creation error in the command line's words.
fn aks_error(e: AksError) -> anyhow::Error {
    match e {
        AksError::Invalid(s) => anyhow!(flag_advice(&s)),
        e @ AksError::Create(_) => anyhow!(e.explain(AGAIN)),
        e => e.into(),
    }
}

fn progress_printer(quiet: bool) -> impl Fn(CreateEvent) + Send + Sync {
    let started = Instant::now();
    move |e: CreateEvent| {
        if quiet {
            return;
        }
        let t = started.elapsed().as_secs();
        match e {
            CreateEvent::Step(s) => eprintln!("[{t:>4}s] {s}"),
            CreateEvent::Status { what, status } => eprintln!("[{t:>4}s] {what}: {status}"),
            CreateEvent::Ready(what) => eprintln!("[{t:>4}s] {what} is ready"),
        }
    }
}

fn create_aks(ctx: &Context, a: AksArgs) -> anyhow::Result<Exit> {
    let settings = Settings::load(&ctx.dirs)?;
    let sub = Azure::new(settings.azure).subscription(&a.subscription);
    let (mut spec, source_version) = match &a.from_snapshot {
        Some(s) => {
            let (envelope, version, source) = recorded(ctx, s)?;
            let spec = match envelope.filter(|e| e["kind"] == "aks") {
                Some(env) => AksSpec::from_envelope(&env, &a.name),
                None => {
                    eprintln!(
                        "note: snapshot {s} records no AKS envelope (its source {source} is not an AKS cluster): give the cluster's settings as flags"
                    );
                    AksSpec::new(&a.name, "", "", "")
                }
            };
            (spec, Some(version))
        }
        None => (AksSpec::new(&a.name, "", "", ""), None),
    };
    if let Some(rg) = &a.resource_group {
        spec.resource_group = rg.clone();
    }
    if let Some(l) = &a.location {
        spec.location = l.clone();
    }
    if let Some(v) = &a.k8s_version {
        spec.version = v.clone();
    }
    if spec.version.is_empty() {
        match &source_version {
            Some(v) => {
                let (maj, min) = parse_version(v).with_context(|| {
                    format!("the source's version {v:?} is not readable: give --version")
                })?;
                spec.version = format!("{maj}.{min}");
            }
            None => bail!("give the Kubernetes version with --version (e.g. 1.33)"),
        }
    }
    if !a.node_pools.is_empty() {
        spec.node_pools.clear();
        for (i, p) in a.node_pools.iter().enumerate() {
            let parts: Vec<&str> = p.split(':').collect();
            let [name, size, count] = parts.as_slice() else {
                bail!("--node-pool {p:?}: give NAME:VM_SIZE:COUNT, e.g. system:Standard_D4s_v5:2");
            };
            spec.node_pools.push(aks::NodePoolSpec {
                name: name.to_string(),
                vm_size: size.to_string(),
                count: count
                    .parse()
                    .with_context(|| format!("--node-pool {p:?}: {count:?} is not a count"))?,
                mode: if i == 0 { "System" } else { "User" }.into(),
                os_type: "Linux".into(),
                ..aks::NodePoolSpec::default()
            });
        }
    }
    for p in &mut spec.node_pools {
        if let Some(v) = &a.vm_size {
            p.vm_size = v.clone();
        }
        if let Some(n) = a.nodes {
            p.count = n;
            p.min_count = p.min_count.map(|m| m.min(n));
            p.max_count = p.max_count.map(|m| m.max(n));
        }
    }
    let events = progress_printer(ctx.global.quiet);
    let cluster = ctx
        .rt
        .block_on(aks::create_cluster(
            &sub,
            &spec,
            source_version.as_deref(),
            &aks::CreateOptions::default(),
            &events,
        ))
        .map_err(aks_error)
        .with_context(|| format!("cannot create the AKS cluster {}", a.name))?;
    let name = aks::context_name(&sub.label(), &cluster.resource_group, &cluster.name);
    if a.json {
        say!("{}", serde_json::to_string_pretty(&cluster)?);
    } else {
        say!(
            "AKS cluster {} has succeeded ({}, Kubernetes {})",
            cluster.name,
            cluster.location,
            cluster.version
        );
        say!("Use it as --context {name}");
        if let Some(s) = &a.from_snapshot {
            say!(
                "Restore into it: ferry restore {s} --context {name} --map-storage-class <source class>=managed-csi"
            );
        }
    }
    Ok(Exit::SUCCESS)
}

fn create_eks(ctx: &Context, a: EksArgs) -> anyhow::Result<Exit> {
    let settings = Settings::load(&ctx.dirs)?;
    let account = Aws::new(settings.aws).account(&a.profile, &a.region);
    // The recorded source: its envelope pre-fills the spec, its version is the floor.
    let (mut spec, source_version) = match &a.from_snapshot {
        Some(s) => {
            let repo = ctx.open()?;
            let snap = snapshot::find(&repo, s)?;
            let meta = CaptureMeta::of(&snap).with_context(|| {
                format!("snapshot {} is not a Kubernetes capture", snap.id.short())
            })?;
            let spec = match &meta.envelope {
                Some(env) => ClusterSpec::from_envelope(env, &a.name),
                None => {
                    eprintln!(
                        "note: snapshot {} records no EKS envelope (its source {} is not an EKS cluster): give the cluster's settings as flags",
                        snap.id.short(),
                        meta.cluster
                    );
                    ClusterSpec::new(&a.name)
                }
            };
            let version = meta
                .envelope
                .as_ref()
                .and_then(|e| e["version"].as_str().map(str::to_string))
                .unwrap_or(meta.server_version.clone());
            (spec, Some(version))
        }
        None => (ClusterSpec::new(&a.name), None),
    };
    if let Some(v) = &a.k8s_version {
        spec.version = v.clone();
    }
    if spec.version.is_empty() {
        match &source_version {
            Some(v) => {
                let (maj, min) = parse_version(v).with_context(|| {
                    format!("the source's version {v:?} is not readable: give --version")
                })?;
                spec.version = format!("{maj}.{min}");
            }
            None => bail!("give the Kubernetes version with --version (e.g. 1.33)"),
        }
    }
    if let Some(r) = &a.role_arn {
        spec.role_arn = r.clone();
    }
    if !a.subnets.is_empty() {
        spec.subnet_ids = a.subnets.clone();
        for ng in &mut spec.nodegroups {
            ng.subnets.clear();
        }
    }
    if !a.security_groups.is_empty() {
        spec.security_group_ids = a.security_groups.clone();
    }
    if spec.nodegroups.is_empty() {
        spec.nodegroups.push(NodegroupSpec {
            name: "general".into(),
            instance_types: vec!["m6i.large".into()],
            min_size: 1,
            max_size: 3,
            desired_size: 2,
            ..NodegroupSpec::default()
        });
    }
    for ng in &mut spec.nodegroups {
        if let Some(r) = &a.node_role {
            ng.node_role = r.clone();
        }
        if !a.instance_types.is_empty() {
            ng.instance_types = a.instance_types.clone();
        }
        if let Some(n) = a.nodes {
            ng.desired_size = n;
            ng.min_size = ng.min_size.min(n);
            ng.max_size = ng.max_size.max(n);
        }
    }
    if a.no_storage {
        spec.addons.retain(|x| x != eks::EBS_CSI_ADDON);
        spec.storage_class = None;
    }

    let events = progress_printer(ctx.global.quiet);
    let cluster = ctx
        .rt
        .block_on(eks::create_cluster(
            &account,
            &a.region,
            &spec,
            source_version.as_deref(),
            &CreateOptions::default(),
            &events,
        ))
        .map_err(eks_error)
        .with_context(|| format!("cannot create the EKS cluster {}", a.name))?;
    let name = eks::context_name(&account.label(), &a.region, &cluster.name);
    if a.json {
        say!("{}", serde_json::to_string_pretty(&cluster)?);
    } else {
        say!(
            "EKS cluster {} is ACTIVE ({}, Kubernetes {})",
            cluster.name,
            cluster.endpoint,
            cluster.version
        );
        say!("Use it as --context {name}");
        if let Some(s) = &a.from_snapshot {
            say!("Restore into it: ferry restore {s} --context {name}");
        }
    }
    Ok(Exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_name_the_flags() {
        let mut spec = AksSpec::new("shop", "", "westeurope", "1.31");
        let e = spec.validate().unwrap_err();
        assert_eq!(
            flag_advice(&e),
            "no resource group is given: give the resource group to create the cluster in with --resource-group"
        );
        spec.resource_group = "rg".into();
        let e = ferry_providers::spec::check_version("1.30", "1.31.2").unwrap_err();
        assert!(flag_advice(&e).ends_with("give 1.31 or newer with --version"));
        let e = ClusterSpec {
            name: "shop".into(),
            version: "1.31".into(),
            role_arn: "arn:aws:iam::1:role/eks".into(),
            subnet_ids: vec!["subnet-a".into()],
            ..ClusterSpec::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            flag_advice(&e).ends_with("with --subnet (once per subnet)"),
            "{}",
            flag_advice(&e)
        );
    }

    #[test]
    fn a_half_way_failure_says_to_run_the_command_again() {
        let e = eks_error(EksError::Create {
            cluster: "c".into(),
            region: "r".into(),
            step: "creating node group n".into(),
            detail: "boom".into(),
            created: vec!["cluster c".into()],
        });
        assert!(
            e.to_string()
                .contains("To continue, run the same command again (what exists is reused)"),
            "{e}"
        );
    }
}

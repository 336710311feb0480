//! `ferry clusters`, `ferry namespaces`, `ferry workloads`, `ferry pvcs`: what the
//! linked clusters hold.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{Context, Exit};
use crate::config::Settings;
use ferry_console::format;
use ferry_k8s::graph;
use ferry_k8s::objects::{self, Catalog, ObjRef};
use ferry_providers::kubeconfig::{BrokenSource, Linked, LinkedCluster, Sources};
use ferry_providers::probe;

/// Every linked cluster: kubeconfig contexts, then the EKS clusters of every linked AWS
/// account and region and the AKS clusters of every linked Azure subscription (all
/// listed concurrently; an account or subscription that fails is reported in `broken`,
/// never fatal). With no kubeconfig and no cloud account at all, the local sandbox
/// clusters are the embedded default (started if needed).
pub fn linked(ctx: &Context) -> anyhow::Result<Linked> {
    let settings = Settings::load(&ctx.dirs)?;
    let mut linked = kubeconfig_linked(ctx, &settings)?;
    let mut listed: Vec<_> = ctx
        .rt
        .block_on(settings.clouds().list().collect::<Vec<_>>());
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    for (origin, res) in listed {
        match res {
            Ok(clusters) => linked.add(clusters),
            Err(error) => linked.broken.push(BrokenSource { origin, error }),
        }
    }
    Ok(linked)
}

/// The kubeconfig contexts (or the sandbox default when there is nothing to link).
pub(super) fn kubeconfig_linked(ctx: &Context, settings: &Settings) -> anyhow::Result<Linked> {
    let linked = Linked::load(&Sources::from_environment(&settings.kubeconfig_paths()));
    if !linked.clusters.is_empty() || !linked.broken.is_empty() || settings.clouds().is_linked() {
        return Ok(linked);
    }
    let kc = ctx.dirs.data.join("sandbox").join("kubeconfig");
    let first_time = !kc.exists();
    let exe = std::env::current_exe().context("cannot find Ferry's own program file")?;
    eprintln!("no kubeconfig found: using the local sandbox clusters (`ferry sandbox up`)");
    let out = std::process::Command::new(&exe)
        .args(["sandbox", "up"])
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot start the sandbox")?;
    if !out.success() {
        anyhow::bail!("the sandbox did not start: run `ferry sandbox up` to see why");
    }
    // The first time, load the sample application so there is something to move.
    if first_time {
        eprintln!("loading the sample shop application into prod (`ferry sandbox seed`)");
        let seeded = std::process::Command::new(&exe)
            .args(["sandbox", "seed", "--cluster", "prod"])
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot seed the sandbox")?;
        if !seeded.success() {
            eprintln!(
                "warning: the sample application was not loaded: run `ferry sandbox seed` to see why"
            );
        }
    }
    Ok(Linked::load(&Sources { paths: vec![kc] }))
}

/// The cloud cluster named `eks:<profile>/<region>/<cluster>` (one `DescribeCluster`),
/// `aks:<subscription>/<resourceGroup>/<cluster>` (one ARM GET) or another cloud's name;
/// `None` for other names. The account's settings (an endpoint) apply when it is linked.
pub fn cloud_cluster(ctx: &Context, name: &str) -> anyhow::Result<Option<LinkedCluster>> {
    let settings = Settings::load(&ctx.dirs)?;
    let clouds = settings.clouds();
    let Some((cloud, found)) = clouds.find(name) else {
        return Ok(None);
    };
    let c = ctx
        .rt
        .block_on(found?)
        .with_context(|| format!("cannot find the {} cluster {name}", cloud.kind()))?;
    Ok(Some(c))
}

/// The linked cluster named `name` (or the current context's), and a client for it. An
/// `eks:` or `aks:` name is a cloud cluster, found in its account.
pub fn connect(ctx: &Context, name: Option<&str>) -> anyhow::Result<(LinkedCluster, kube::Client)> {
    if let Some(n) = name
        && let Some(cluster) = cloud_cluster(ctx, n)?
    {
        let client = ctx
            .rt
            .block_on(cluster.client())
            .with_context(|| format!("cannot connect to {n}"))?;
        return Ok((cluster, client));
    }
    let settings = Settings::load(&ctx.dirs)?;
    let linked = kubeconfig_linked(ctx, &settings)?;
    let cluster = match name {
        Some(n) => linked.get(n)?.clone(),
        None => linked
            .current()
            .cloned()
            .context("no current context: name a cluster with --context (see `ferry clusters`)")?,
    };
    let client = ctx.rt.block_on(cluster.client())?;
    Ok((cluster, client))
}

#[derive(Debug, Args)]
pub struct ClustersArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Do not contact the clusters: list the contexts only
    #[arg(long)]
    pub offline: bool,
}

pub fn clusters(ctx: &Context, a: ClustersArgs) -> anyhow::Result<Exit> {
    let linked = linked(ctx)?;
    for b in &linked.broken {
        eprintln!("warning: skipped {}: {}", b.origin.label(), b.error);
    }
    let probes = if a.offline {
        Vec::new()
    } else {
        ctx.rt.block_on(probe::probe_all(&linked.clusters))
    };
    if a.json {
        // Every cloud's key is there (null unless the cluster is of that cloud).
        let clouds = Settings::load(&ctx.dirs)?.clouds();
        let v: Vec<Value> = linked
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut row = serde_json::json!({
                    "name": c.name, "context": c.context, "server": c.server, "user": c.user,
                    "sources": c.sources, "current": c.current,
                    "identity": c.identity,
                    "probe": probes.get(i).map(|p| match &p.facts {
                        Ok(f) => serde_json::to_value(f).unwrap_or(Value::Null),
                        Err(e) => serde_json::json!({"error": e.to_string()}),
                    }),
                });
                for cloud in clouds.iter() {
                    row[cloud.prefix()] = Value::Null;
                }
                if let Some((key, facts)) = c.cloud_facts() {
                    row[key] = facts;
                }
                row
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::SUCCESS);
    }
    let mut rows = vec![vec![
        "".to_string(),
        "CLUSTER".into(),
        "STATUS".into(),
        "VERSION".into(),
        "NODES".into(),
        "DEFAULT CLASS".into(),
        "MAY".into(),
        "SERVER".into(),
    ]];
    for (source, group) in ferry_providers::kubeconfig::by_source(&linked) {
        rows.push(vec![format!("# {source}")]);
        for c in group {
            let p = linked
                .clusters
                .iter()
                .position(|x| x.name == c.name)
                .and_then(|i| probes.get(i));
            let (status, version, nodes, class, may) = match p.map(|p| &p.facts) {
                None => (
                    "-".to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
                Some(Ok(f)) => (
                    format!("ok {}ms", f.latency_ms),
                    f.version.clone(),
                    f.nodes.to_string(),
                    f.default_storage_class().unwrap_or("-").to_string(),
                    f.permissions.summary(),
                ),
                Some(Err(e)) => (
                    format!("unreachable: {e}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            rows.push(vec![
                if c.current { "*".into() } else { "".into() },
                c.name.clone(),
                status,
                version,
                nodes,
                class,
                may,
                c.server.clone(),
            ]);
        }
    }
    print!("{}", format::table(&rows));
    Ok(Exit::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ClusterArg {
    /// The linked cluster: a context name, eks:<profile>/<region>/<cluster> or
    /// aks:<subscription>/<resourceGroup>/<cluster> (see `ferry clusters`)
    /// [default: current context]
    #[arg(long = "context", short = 'c')]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct NamespacesArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub fn namespaces(ctx: &Context, a: NamespacesArgs) -> anyhow::Result<Exit> {
    let (_, client) = connect(ctx, a.cluster.context.as_deref())?;
    ctx.rt.block_on(async {
        let nss = Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| anyhow::anyhow!("cannot list namespaces: {}", probe::explain(&e)))?;
        let pvcs = Api::<PersistentVolumeClaim>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut rows = vec![vec![
            "NAMESPACE".to_string(),
            "STATUS".into(),
            "PODS".into(),
            "PVCS".into(),
            "REQUESTED".into(),
        ]];
        for ns in nss.items {
            let name = ns.metadata.name.unwrap_or_default();
            let in_ns = |m: &Option<String>| m.as_deref() == Some(name.as_str());
            let claims: Vec<&PersistentVolumeClaim> = pvcs
                .iter()
                .filter(|p| in_ns(&p.metadata.namespace))
                .collect();
            let requested: u64 = claims
                .iter()
                .filter_map(|c| {
                    c.spec
                        .as_ref()?
                        .resources
                        .as_ref()?
                        .requests
                        .as_ref()?
                        .get("storage")
                        .and_then(|q| ferry_k8s::plan::parse_quantity(&q.0))
                })
                .sum();
            rows.push(vec![
                name.clone(),
                ns.status.and_then(|s| s.phase).unwrap_or_default(),
                pods.iter()
                    .filter(|p| in_ns(&p.metadata.namespace))
                    .count()
                    .to_string(),
                claims.len().to_string(),
                format::bytes(requested),
            ]);
        }
        print!("{}", format::table(&rows));
        anyhow::Ok(())
    })?;
    Ok(Exit::SUCCESS)
}

#[derive(Debug, Args)]
pub struct WorkloadsArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// The namespace
    #[arg(short = 'n', long)]
    pub namespace: String,
    /// Show what each workload depends on
    #[arg(long)]
    pub deps: bool,
}

/// The namespace's objects of every type the cluster lists.
async fn namespace_objects(client: &kube::Client, ns: &str) -> anyhow::Result<Vec<Value>> {
    let catalog = Catalog::discover(client).await?;
    let mut all = Vec::new();
    for r in catalog
        .resources
        .iter()
        .filter(|r| r.namespaced && r.listable)
    {
        if matches!(r.ar.kind.as_str(), "Event") {
            continue;
        }
        if let Ok(items) = objects::list_all(client, r, Some(ns), None).await {
            all.extend(items);
        }
    }
    Ok(all)
}

pub fn workloads(ctx: &Context, a: WorkloadsArgs) -> anyhow::Result<Exit> {
    let (_, client) = connect(ctx, a.cluster.context.as_deref())?;
    let all = ctx.rt.block_on(namespace_objects(&client, &a.namespace))?;
    let mut rows = vec![vec![
        "KIND".to_string(),
        "NAME".into(),
        "READY".into(),
        "IMAGE".into(),
        "AGE".into(),
    ]];
    if a.deps {
        rows[0].push("DEPENDS ON".into());
    }
    let now = chrono::Utc::now();
    for o in all
        .iter()
        .filter(|o| graph::is_workload(&ObjRef::of(o)) && graph::controller_owner(o).is_none())
    {
        let r = ObjRef::of(o);
        let ready = match r.kind.as_str() {
            "Deployment" | "StatefulSet" | "ReplicaSet" => format!(
                "{}/{}",
                o["status"]["readyReplicas"].as_u64().unwrap_or(0),
                o["spec"]["replicas"].as_u64().unwrap_or(1)
            ),
            "DaemonSet" => format!(
                "{}/{}",
                o["status"]["numberReady"].as_u64().unwrap_or(0),
                o["status"]["desiredNumberScheduled"].as_u64().unwrap_or(0)
            ),
            "Job" => format!("{} done", o["status"]["succeeded"].as_u64().unwrap_or(0)),
            "Pod" => o["status"]["phase"].as_str().unwrap_or("-").to_string(),
            _ => "-".into(),
        };
        let image = graph::pod_spec(o)
            .and_then(|s| s["containers"][0]["image"].as_str())
            .unwrap_or("-")
            .to_string();
        let age = o["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                format::duration(
                    (now - t.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| "-".into());
        let mut row = vec![r.kind.clone(), r.name.clone(), ready, image, age];
        if a.deps {
            let deps = graph::closure(&all, std::slice::from_ref(&r));
            let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for d in deps.keys().filter(|d| **d != r) {
                by_kind
                    .entry(d.kind.clone())
                    .or_default()
                    .push(d.name.clone());
            }
            row.push(
                by_kind
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.join(",")))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        rows.push(row);
    }
    print!("{}", format::table(&rows));
    Ok(Exit::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PvcsArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// The namespace
    #[arg(short = 'n', long)]
    pub namespace: String,
}

pub fn pvcs(ctx: &Context, a: PvcsArgs) -> anyhow::Result<Exit> {
    let (_, client) = connect(ctx, a.cluster.context.as_deref())?;
    ctx.rt.block_on(async {
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &a.namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot list claims in {}: {}",
                    a.namespace,
                    probe::explain(&e)
                )
            })?;
        let pods = Api::<Pod>::namespaced(client.clone(), &a.namespace)
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut rows = vec![vec![
            "CLAIM".to_string(),
            "STATUS".into(),
            "SIZE".into(),
            "CLASS".into(),
            "ACCESS".into(),
            "VOLUME".into(),
            "USED BY".into(),
        ]];
        for c in claims.items {
            let name = c.metadata.name.clone().unwrap_or_default();
            let spec = c.spec.clone().unwrap_or_default();
            let users: Vec<String> = pods
                .iter()
                .filter(|p| {
                    p.spec.as_ref().is_some_and(|s| {
                        s.volumes.iter().flatten().any(|v| {
                            v.persistent_volume_claim
                                .as_ref()
                                .is_some_and(|x| x.claim_name == name)
                        })
                    })
                })
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            rows.push(vec![
                name,
                c.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
                spec.resources
                    .and_then(|r| r.requests)
                    .and_then(|r| r.get("storage").map(|q| q.0.clone()))
                    .unwrap_or_default(),
                spec.storage_class_name.unwrap_or_else(|| "-".into()),
                spec.access_modes.unwrap_or_default().join(","),
                spec.volume_name.unwrap_or_else(|| "-".into()),
                if users.is_empty() {
                    "-".into()
                } else {
                    users.join(",")
                },
            ]);
        }
        print!("{}", format::table(&rows));
        anyhow::Ok(())
    })?;
    Ok(Exit::SUCCESS)
}

//! Moving workloads: `ferry backup --context C -n NS`, `ferry plan`, `ferry restore
//! SNAP --context C`, `ferry migrate`, `ferry clone`, `ferry export`, `ferry inspect`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::kube::connect;
use super::policy::{Place, job_failed, origin, say_allowed, say_scrubbed, say_unrecorded};
use super::{Context, Exit};
use crate::config::Settings;
use ferry_console::{format, progress};
use ferry_jobs::{Endpoint, MoveJob, RestoreJob, Staged};
use ferry_k8s::JobProgress;
use ferry_k8s::apply::Report;
use ferry_k8s::capture::{self, CaptureMeta, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::modifiers::Modifiers;
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::objects::ObjRef;
use ferry_k8s::plan::{self, Conflict, Plan, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_policy::Action as PolicyAction;
use ferry_repo::snapshot::{self, Snapshot};
use ferry_repo::{Repository, progress::Phase};

/// What to capture from a cluster.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Namespace(s) to capture, or patterns like 'shop-*' (repeatable)
    #[arg(short = 'n', long = "namespace")]
    pub namespaces: Vec<String>,
    /// Every namespace of the cluster (system ones only with --include-system)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Leave out namespaces matching GLOB (repeatable)
    #[arg(long = "exclude-namespace", value_name = "GLOB")]
    pub exclude_namespaces: Vec<String>,
    /// Take system and add-on namespaces (kube-system, calico-system…) that -A or a
    /// pattern would leave out
    #[arg(long)]
    pub include_system: bool,
    /// Capture only these workloads and what they depend on: kind/name, e.g.
    /// deployment/web (repeatable; needs exactly one --namespace)
    #[arg(short = 'w', long = "workload")]
    pub workloads: Vec<String>,
    /// Capture objects matching this label selector ('app=web', 'tier in (a,b)') and
    /// what they depend on; repeated, an object matching any of them
    #[arg(short = 'l', long = "selector")]
    pub selectors: Vec<String>,
    /// Only these resource types: kinds, plurals, plural.group or globs
    /// (comma-separated or repeatable)
    #[arg(
        long = "include-resources",
        value_delimiter = ',',
        value_name = "TYPES"
    )]
    pub include_resources: Vec<String>,
    /// Leave out these resource types (as --include-resources)
    #[arg(
        long = "exclude-resources",
        value_delimiter = ',',
        value_name = "TYPES"
    )]
    pub exclude_resources: Vec<String>,
    /// Take every cluster-scoped object (CRDs, cluster roles and bindings, priority,
    /// ingress and runtime classes, webhooks…), not only those the namespaced objects need
    #[arg(long)]
    pub include_cluster_resources: bool,
    /// Objects only: leave the volumes' data out
    #[arg(long)]
    pub no_volumes: bool,
    /// Read live volumes even where a CSI snapshot could be made
    #[arg(long)]
    pub no_snapshots: bool,
    /// Image of the volume mover pods [default: settings' moverImage, else busybox:1.36]
    #[arg(long)]
    pub mover_image: Option<String>,
}

impl SelectArgs {
    /// Whether namespaces are chosen at all (else a folder backup).
    pub fn names_namespaces(&self) -> bool {
        !self.namespaces.is_empty() || self.all_namespaces
    }

    fn choice(&self) -> ferry_k8s::scope::Namespaces {
        ferry_k8s::scope::Namespaces {
            names: self.namespaces.clone(),
            all: self.all_namespaces,
            exclude: self.exclude_namespaces.clone(),
            include_system: self.include_system,
        }
    }

    pub fn resources(&self) -> ferry_k8s::scope::Resources {
        ferry_k8s::scope::Resources {
            include: self.include_resources.clone(),
            exclude: self.exclude_resources.clone(),
            cluster: self.include_cluster_resources,
        }
    }

    /// The scope, its namespaces resolved on `cluster` (which `client` reaches): -A,
    /// patterns and exclusions become the namespaces they name there.
    pub fn scope(
        &self,
        ctx: &Context,
        client: &kube::Client,
        cluster: &str,
    ) -> anyhow::Result<Scope> {
        let choice = self.choice();
        if choice.names.is_empty() && !choice.all {
            anyhow::bail!(
                "name the namespace(s) to capture with -n NAMESPACE (or a pattern, 'shop-*'), or take them all with -A"
            );
        }
        if !self.workloads.is_empty() && (self.namespaces.len() != 1 || choice.needs_listing()) {
            anyhow::bail!("--workload needs exactly one --namespace, named (no pattern, no -A)");
        }
        let namespaces = ctx.rt.block_on(choice.resolve(client, cluster))?;
        if !self.workloads.is_empty() {
            return Ok(Scope::Workloads {
                namespace: namespaces[0].clone(),
                workloads: self.workloads.clone(),
            });
        }
        if !self.selectors.is_empty() {
            let selector = self.selectors.join(" or ");
            ferry_k8s::scope::parse_selectors(&selector)?;
            return Ok(Scope::Selector {
                namespaces,
                selector,
            });
        }
        Ok(Scope::Namespaces(namespaces))
    }
}

fn mover(ctx: &Context, image: Option<&str>) -> anyhow::Result<MoverOptions> {
    let settings = Settings::load(&ctx.dirs)?;
    mover_options(ctx, &settings, image)
}

/// How movers and agents run: flags, then `config.yaml`, then defaults.
pub fn mover_options(
    ctx: &Context,
    settings: &Settings,
    image: Option<&str>,
) -> anyhow::Result<MoverOptions> {
    let mut m = MoverOptions::default();
    if let Some(i) = image.map(str::to_string).or(settings.mover_image.clone()) {
        m.image = i;
    }
    let g = &ctx.global;
    if let Some(n) = g.mover_streams.map(usize::from).or(settings.mover_streams) {
        m.streams = n.clamp(1, 32);
    }
    let configured = match &settings.start_timeout {
        Some(t) => Some(
            ferry_repo::backend::retry::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("startTimeout {t:?} in config.yaml: {e}"))?,
        ),
        None => None,
    };
    if let Some(t) = g.start_timeout.or(configured) {
        m.start_timeout = t;
    }
    m.tolerations = if g.tolerate.is_empty() {
        settings
            .tolerations
            .iter()
            .map(|t| {
                ferry_k8s::placement::parse_toleration(t)
                    .map_err(|e| anyhow::anyhow!("tolerations in config.yaml: {e}"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        g.tolerate.clone()
    };
    let s = &settings.agent;
    let a = &mut m.agent;
    a.endpoint = g.agent_endpoint.clone().or(s.endpoint.clone());
    if let Some(b) = g.retry_budget {
        a.retry_budget = b;
    }
    if let Some(p) = g.data_path.as_ref().or(s.data_path.as_ref()) {
        a.data_path = ferry_k8s::agent::DataPath::parse(p).ok_or_else(|| {
            anyhow::anyhow!("agent.dataPath {p:?} in config.yaml is not one of auto, agent, exec")
        })?;
    }
    if let Some(i) = g.agent_image.as_ref().or(s.image.as_ref()) {
        a.image = i.clone();
    }
    a.service_account = g
        .agent_service_account
        .clone()
        .or(s.service_account.clone());
    if let Some(n) = g.agents_per_job.map(usize::from).or(s.per_job) {
        a.per_job = n.max(1);
    }
    if let Some(n) = g.agents_per_node.map(usize::from).or(s.per_node) {
        a.per_node = n.max(1);
    }
    for (what, value) in [
        ("cpu", g.agent_cpu.as_ref().or(s.cpu.as_ref())),
        ("memory", g.agent_memory.as_ref().or(s.memory.as_ref())),
    ] {
        let Some(value) = value else { continue };
        let (request, limit) = match value.split_once(':') {
            Some((r, l)) => (r, Some(l)),
            None => (value.as_str(), None),
        };
        let ok = |q: &str| {
            !q.is_empty()
                && q.chars().next().is_some_and(|c| c.is_ascii_digit())
                && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        };
        if !ok(request) || limit.is_some_and(|l| !ok(l)) {
            anyhow::bail!(
                "agent {what} {value:?} is not a quantity: give a request (250m, 512Mi) or REQUEST:LIMIT (500m:2)"
            );
        }
        a.resources["requests"][what] = serde_json::json!(request);
        match limit {
            Some(l) => a.resources["limits"][what] = serde_json::json!(l),
            None => {
                if let Some(l) = a.resources["limits"].as_object_mut() {
                    l.remove(what);
                }
            }
        }
    }
    a.limit_upload = g.limit_upload;
    a.limit_download = g.limit_download;
    a.stall_timeout = m.stall_timeout;
    a.start_timeout = m.start_timeout;
    Ok(m)
}

/// How a restore maps and transforms.
#[derive(Debug, Args, Clone, Default)]
pub struct MapArgs {
    /// Map a namespace: SOURCE=TARGET (repeatable)
    #[arg(long = "map-namespace", value_parser = parse_pair)]
    pub map_namespace: Vec<(String, String)>,
    /// Put PREFIX before the name of every namespace not mapped by name
    #[arg(long, value_name = "PREFIX")]
    pub namespace_prefix: Option<String>,
    /// Put SUFFIX after the name of every namespace not mapped by name (e.g. -qa)
    #[arg(long, value_name = "SUFFIX", allow_hyphen_values = true)]
    pub namespace_suffix: Option<String>,
    /// Map a storage class: SOURCE=TARGET (repeatable) [default: suggested from the
    /// provisioner and parameters]
    #[arg(long = "map-storage-class", value_parser = parse_pair)]
    pub map_storage_class: Vec<(String, String)>,
    /// What to do with objects that exist on the target: skip, update or fail
    #[arg(long, default_value = "skip")]
    pub conflict: Conflict,
    /// Set workloads' replicas to zero (and suspend CronJobs)
    #[arg(long)]
    pub scale_to_zero: bool,
    /// Add a label to every restored object: KEY=VALUE (repeatable)
    #[arg(long = "label", value_parser = parse_pair)]
    pub labels: Vec<(String, String)>,
    /// Replace an image registry prefix: FROM=TO (repeatable)
    #[arg(long = "replace-registry", value_parser = parse_pair)]
    pub registries: Vec<(String, String)>,
    /// Objects only: leave the volumes' data out
    #[arg(long)]
    pub no_volume_data: bool,
    /// Restore only these source namespaces of the snapshot (repeatable)
    #[arg(long = "only-namespace")]
    pub only_namespaces: Vec<String>,
    /// Leave DNS names of renamed namespaces as they are (the plan lists each one that
    /// still points at the source)
    #[arg(long)]
    pub keep_references: bool,
    /// Restore Jobs that completed on the source too (they run again)
    #[arg(long)]
    pub include_completed_jobs: bool,
    /// Restore CronJobs suspended
    #[arg(long)]
    pub suspend_cronjobs: bool,
    /// Change objects as they are restored with the rules of a Velero resource
    /// modifiers file (version v1: resourceModifierRules with conditions and patches,
    /// mergePatches or strategicPatches); the plan lists each change
    #[arg(long = "resource-modifiers", value_name = "FILE")]
    pub resource_modifiers: Option<PathBuf>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{s:?} is not FROM=TO"))
}

impl MapArgs {
    /// The source namespaces the command names (mapped or chosen).
    fn wanted(&self) -> Vec<&str> {
        let mut w: Vec<&str> = self
            .map_namespace
            .iter()
            .map(|(a, _)| a.as_str())
            .chain(self.only_namespaces.iter().map(String::as_str))
            .collect();
        w.sort();
        w.dedup();
        w
    }

    /// The plan's options; the resource modifiers file is read and checked here,
    /// before anything is read from a cluster.
    fn options(&self, mover: MoverOptions) -> anyhow::Result<PlanOptions> {
        let m = |v: &[(String, String)]| v.iter().cloned().collect::<BTreeMap<_, _>>();
        let modifiers = match &self.resource_modifiers {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the resource modifiers file {}", path.display())
                })?;
                Some(Arc::new(Modifiers::parse(
                    &text,
                    &path.display().to_string(),
                )?))
            }
            None => None,
        };
        Ok(PlanOptions {
            mapping: Mapping {
                namespaces: m(&self.map_namespace),
                namespace_prefix: self.namespace_prefix.clone().unwrap_or_default(),
                namespace_suffix: self.namespace_suffix.clone().unwrap_or_default(),
                storage_classes: m(&self.map_storage_class),
                scale_to_zero: self.scale_to_zero,
                labels: m(&self.labels),
                registries: m(&self.registries),
                keep_references: self.keep_references,
                include_completed_jobs: self.include_completed_jobs,
                suspend_cronjobs: self.suspend_cronjobs,
                ..Mapping::default()
            },
            conflict: self.conflict,
            include_volumes: !self.no_volume_data,
            mover,
            only: None,
            namespaces: self.only_namespaces.clone(),
            modifiers,
        })
    }
}

/// Runs an async Kubernetes job with a progress line on the terminal.
fn run_job<T: Send>(
    ctx: &Context,
    job: &Arc<JobProgress>,
    f: impl std::future::Future<Output = T> + Send,
) -> T {
    let describe =
        |s: &ferry_repo::progress::ProgressSnapshot, r: f64| progress::job_line(job, s, r);
    progress::run_with_line(&job.data, ctx.global.quiet, &describe, || {
        ctx.rt.block_on(f)
    })
}

fn new_job(ctx: &Context) -> Arc<JobProgress> {
    let j = JobProgress::with_data(ctx.progress());
    j.data.set_phase(Phase::Transferring);
    j
}

fn print_capture(out: &CaptureOutcome) {
    let s = &out.snapshot.summary;
    say!(
        "snapshot {} saved: {} objects, {} volume(s) ({} files, {}) from {}",
        out.snapshot.id.short(),
        out.meta.objects,
        out.meta.volumes.len(),
        s.files,
        format::bytes(s.bytes),
        out.meta.cluster
    );
    for v in &out.meta.volumes {
        say!(
            "  volume {}/{}: {} files, {} ({} transferred, {})",
            v.namespace,
            v.pvc,
            v.files,
            format::bytes(v.bytes),
            v.files_transferred,
            v.consistency
        );
    }
    say!(
        "added {} of new data, {} stored, in {:.1}s",
        format::bytes(s.bytes_new),
        format::bytes(s.bytes_stored),
        s.duration_secs
    );
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
}

/// `ferry backup --context C -n NS ...`.
pub fn backup(
    ctx: &Context,
    cluster: Option<&str>,
    sel: &SelectArgs,
    tags: Vec<String>,
    parent: Option<String>,
    no_parent: bool,
) -> anyhow::Result<Exit> {
    let (cluster, client) = connect(ctx, cluster)?;
    let scope = sel.scope(ctx, &client, &cluster.name)?;
    let repo = ctx.open()?;
    let opts = CaptureOptions {
        cluster: cluster.name.clone(),
        scope,
        include_volumes: !sel.no_volumes,
        use_snapshots: !sel.no_snapshots,
        mover: mover(ctx, sel.mover_image.as_deref())?,
        tags,
        parent,
        no_parent,
        envelope: None,
        server: None,
        resources: sel.resources(),
    };
    let source = Endpoint { cluster, client };
    let job = new_job(ctx);
    let out = run_job(ctx, &job, ferry_jobs::backup(&repo, &source, opts, &job))
        .map_err(|f| job_failed(PolicyAction::Backup, &repo, f))?;
    say_allowed(out.allowed.as_deref());
    print_capture(&out.capture);
    say_unrecorded(out.unrecorded.as_deref());
    Ok(if out.capture.warnings.is_empty() {
        Exit::SUCCESS
    } else {
        Exit::from(3)
    })
}

/// Finds a capture snapshot and its metadata.
/// The capture `spec` names. `latest` is the newest Kubernetes capture (folder backups
/// are passed over) that holds every namespace of `wanted`; when none does, the error
/// says what the newest capture holds.
fn find_capture(
    repo: &Repository,
    spec: &str,
    wanted: &[&str],
) -> anyhow::Result<(Snapshot, CaptureMeta)> {
    if spec == "latest" {
        let (all, _) = snapshot::list(repo)?;
        let captures: Vec<(&Snapshot, CaptureMeta)> = all
            .iter()
            .rev()
            .filter_map(|s| CaptureMeta::of(s).map(|m| (s, m)))
            .collect();
        let holds = |m: &CaptureMeta| wanted.iter().all(|w| m.namespaces.iter().any(|n| n == w));
        if let Some((s, m)) = captures.iter().find(|(_, m)| holds(m)) {
            return Ok(((*s).clone(), m.clone()));
        }
        return Err(match captures.first() {
            None => anyhow::anyhow!(
                "the repository holds no Kubernetes capture: make one with `ferry backup --context C -n NAMESPACE`"
            ),
            Some((s, m)) => anyhow::anyhow!(
                "no capture holds namespace(s) {}: the newest, {} of {}, holds {}. Name a snapshot, or capture them first",
                wanted.join(", "),
                s.id.short(),
                m.cluster,
                m.namespaces.join(", ")
            ),
        });
    }
    let snap = snapshot::find(repo, spec)?;
    let meta = CaptureMeta::of(&snap).with_context(|| {
        format!(
            "snapshot {} is a folder backup, not a Kubernetes capture: restore it with `ferry restore {} -t DIR`",
            snap.id.short(),
            snap.id.short()
        )
    })?;
    Ok((snap, meta))
}

/// Loads a capture snapshot and its objects.
fn load_capture(
    ctx: &Context,
    repo: &Repository,
    spec: &str,
) -> anyhow::Result<(Snapshot, CaptureMeta, Vec<serde_json::Value>)> {
    let (snap, meta) = find_capture(repo, spec, &[])?;
    let repo2 = repo.clone();
    let snap2 = snap.clone();
    let objects = ctx
        .rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || capture::read_objects(&repo2, &snap2)).await
        })
        .context("cannot read the snapshot")??;
    Ok((snap, meta, objects))
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The snapshot (ID prefix or `latest`)
    pub snapshot: String,
    /// The target cluster (context name)
    #[arg(long = "context", short = 'c')]
    pub context: Option<String>,
    #[command(flatten)]
    pub map: MapArgs,
    /// Output: text, yaml or json
    #[arg(short = 'o', long, default_value = "text")]
    pub output: String,
}

/// Writes `plan` to `out` as `output` says (text, yaml or json). YAML and JSON are
/// written as they are encoded, never held whole: a whole cluster's plan is tens of
/// thousands of items.
fn render(plan: &Plan, output: &str, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    match output {
        "yaml" => serde_saphyr::to_io_writer(out, plan).map_err(|e| anyhow::anyhow!("{e}"))?,
        "json" => serde_json::to_writer_pretty(out, plan)?,
        "text" => out.write_all(plan.render_text().as_bytes())?,
        o => anyhow::bail!("unknown output {o:?}: use text, yaml or json"),
    }
    Ok(())
}

pub fn plan(ctx: &Context, a: PlanArgs) -> anyhow::Result<Exit> {
    let opts = a.map.options(mover(ctx, None)?)?;
    let repo = ctx.open()?;
    let (snap, meta) = find_capture(&repo, &a.snapshot, &a.map.wanted())?;
    let (linked, client) = connect(ctx, a.context.as_deref())?;
    // The plan, and what the policy would say of carrying it out (nothing is recorded
    // for a dry run).
    let (plan, denied) = ctx.rt.block_on(ferry_jobs::dry_run(
        &repo,
        &origin(ctx, &meta.cluster),
        &Place::new(&linked, Some(&client)),
        &client,
        &snap,
        &meta,
        &opts,
    ))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    render(&plan, &a.output, &mut out)?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    if let Some(why) = &denied {
        eprintln!("the policy would refuse this restore: {why}");
    }
    Ok(if plan.blocking() > 0 {
        Exit::from(2)
    } else if denied.is_some() {
        Exit::from(5)
    } else {
        Exit::SUCCESS
    })
}

#[derive(Debug, Args, Clone)]
pub struct K8sRestoreArgs {
    #[command(flatten)]
    pub map: MapArgs,
    /// Do not ask: carry out the plan
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Re-run only what failed in this report file (from an earlier restore)
    #[arg(long)]
    pub retry: Option<PathBuf>,
}

fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the plan above was not confirmed: pass --yes to carry it out without asking"
        );
    }
    let isolation = match plan.findings.len() {
        0 => String::new(),
        n => format!(" The copy keeps {n} reference(s) to the source (Isolation, above)."),
    };
    eprint!(
        "Carry out this plan on {} ({} to create, {} to update)?{isolation} [y/N] ",
        plan.target_cluster,
        plan.count(plan::Change::Create),
        plan.count(plan::Change::Update)
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed: nothing was changed")
    }
}

fn print_report(ctx: &Context, report: &Report) -> anyhow::Result<Exit> {
    let path = report.save(&Report::dir(&ctx.dirs.state))?;
    let failed = report.failed();
    say!(
        "restore into {}: {} succeeded, {} failed; {} of volume data in {:.1}s",
        report.target_cluster,
        report.succeeded(),
        failed.len(),
        format::bytes(report.bytes_restored),
        report.duration_secs
    );
    // A restore of several namespaces (a whole cluster) reports each.
    let mut by_ns: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for o in &report.objects {
        let ns = o.object.namespace.clone().unwrap_or_else(|| {
            if o.object.kind == "Namespace" {
                o.object.name.clone()
            } else {
                "(cluster-scoped)".into()
            }
        });
        let e = by_ns.entry(ns).or_default();
        if o.ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    if by_ns.len() > 1 {
        for (ns, (ok, bad)) in &by_ns {
            say!("  {ns}: {ok} succeeded, {bad} failed");
        }
    }
    for f in &failed {
        say!("  FAILED {}: {}", f.object, f.message);
        if let Some(r) = &f.remedy {
            say!("         -> {r}");
        }
    }
    if !report.findings.is_empty() {
        say!(
            "isolation: {} reference(s) in what was created still point at the source:",
            report.findings.len()
        );
        for f in &report.findings {
            say!("  {} {}: {}", f.object, f.path, f.message);
            say!("         -> {}", f.fix);
        }
    }
    say!("report: {}", path.display());
    if failed.is_empty() {
        Ok(Exit::SUCCESS)
    } else {
        say!(
            "retry what failed: {}",
            report.retry_command(&report.target_cluster, &path)
        );
        Ok(Exit::FAILURE)
    }
}

/// `ferry restore SNAP --context C`.
pub fn restore(
    ctx: &Context,
    snapshot: &str,
    context: Option<&str>,
    mover_image: Option<&str>,
    a: K8sRestoreArgs,
) -> anyhow::Result<Exit> {
    let mut opts = a.map.options(mover(ctx, mover_image)?)?;
    let repo = ctx.open()?;
    let (snap, meta) = find_capture(&repo, snapshot, &a.map.wanted())?;
    let (cluster, client) = connect(ctx, context)?;
    if let Some(path) = &a.retry {
        let r: Report = serde_json::from_slice(
            &std::fs::read(path)
                .with_context(|| format!("cannot read the report {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a restore report", path.display()))?;
        let failed: BTreeSet<ObjRef> = r.failed().into_iter().map(|o| o.object.clone()).collect();
        if failed.is_empty() {
            say!("nothing failed in {}: nothing to retry", path.display());
            return Ok(Exit::SUCCESS);
        }
        opts.only = Some(failed);
    }
    let job = RestoreJob {
        origin: origin(ctx, &meta.cluster),
        snapshot: snap,
        meta,
        options: opts,
    };
    let target = Endpoint { cluster, client };
    let staged = ctx
        .rt
        .block_on(ferry_jobs::stage_restore(&repo, &target, job))
        .map_err(|f| job_failed(PolicyAction::Restore, &repo, f))?;
    say_allowed(staged.allowed().as_deref());
    carry_out(ctx, PolicyAction::Restore, &repo, staged, a.yes)
}

/// Shows a staged job's plan, asks (unless `yes`), carries it out and says how it went.
fn carry_out(
    ctx: &Context,
    action: PolicyAction,
    repo: &Repository,
    staged: Staged,
    yes: bool,
) -> anyhow::Result<Exit> {
    say_scrubbed(staged.scrubbed());
    eprint!("{}", staged.plan().render_text());
    // A plan with blocking problems is not asked about: the job refuses it.
    if staged.plan().blocking() == 0
        && let Err(e) = confirm(staged.plan(), yes)
    {
        say_unrecorded(ctx.rt.block_on(staged.decline(format!("{e:#}"))).as_deref());
        return Err(e);
    }
    let job = new_job(ctx);
    let out = run_job(ctx, &job, staged.run(&job)).map_err(|f| job_failed(action, repo, f))?;
    let exit = print_report(ctx, &out.report);
    say_unrecorded(out.unrecorded.as_deref());
    exit
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The source cluster
    #[arg(long)]
    pub from: String,
    /// The target cluster [default: the source: a clone]
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub restore: K8sRestoreArgs,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// `ferry migrate` and `ferry clone` (`action`), which may name the one namespace's copy
/// (`clone_as`).
pub fn migrate(
    ctx: &Context,
    mut a: MigrateArgs,
    action: PolicyAction,
    clone_as: Option<String>,
) -> anyhow::Result<Exit> {
    if let Some(new) = &clone_as
        && (a.select.namespaces.len() != 1 || a.select.all_namespaces)
    {
        anyhow::bail!(
            "clone --as {new} copies one namespace: name it with -n (for several, leave --as out and use --namespace-suffix, --namespace-prefix or --map-namespace)"
        );
    }
    let to = a.to.clone().unwrap_or_else(|| a.from.clone());
    let mover_opts = mover(ctx, a.select.mover_image.as_deref())?;
    // A resource-modifier file that does not read is refused before any cluster is asked.
    a.restore.map.options(mover_opts.clone())?;
    let (src, src_client) = connect(ctx, Some(&a.from))?;
    let scope = a.select.scope(ctx, &src_client, &src.name)?;
    if let Some(new) = clone_as {
        a.restore
            .map
            .map_namespace
            .push((scope.namespaces()[0].clone(), new));
    }
    let map = &a.restore.map;
    let renamed = |n: &String| {
        map.map_namespace.iter().any(|(f, t)| f == n && t != n)
            || map.namespace_prefix.as_ref().is_some_and(|p| !p.is_empty())
            || map.namespace_suffix.as_ref().is_some_and(|p| !p.is_empty())
    };
    if to == a.from && !scope.namespaces().iter().all(renamed) {
        anyhow::bail!(
            "{} into the same cluster needs a new name for each namespace: use `ferry clone --as NEW`, --map-namespace, --namespace-prefix or --namespace-suffix",
            if action == PolicyAction::Clone {
                "cloning"
            } else {
                "migrating"
            }
        );
    }
    let options = a.restore.map.options(mover_opts.clone())?;
    let (dst, dst_client) = connect(ctx, Some(&to))?;
    let repo = ctx.open()?;
    let capture = CaptureOptions {
        cluster: src.name.clone(),
        scope,
        include_volumes: !a.select.no_volumes && !a.restore.map.no_volume_data,
        use_snapshots: !a.select.no_snapshots,
        mover: mover_opts.clone(),
        tags: a.tags.clone(),
        envelope: None,
        server: None,
        parent: None,
        no_parent: false,
        resources: a.select.resources(),
    };
    let job = MoveJob {
        action,
        capture,
        options,
    };
    let source = Endpoint {
        cluster: src,
        client: src_client,
    };
    let target = Endpoint {
        cluster: dst,
        client: dst_client,
    };
    // Capture first, then show the plan before anything changes on the target.
    let progress = new_job(ctx);
    let staged = run_job(
        ctx,
        &progress,
        ferry_jobs::stage_move(&repo, &source, &target, job, &progress),
    )
    .map_err(|f| {
        if let Some(c) = &f.capture {
            print_capture(c);
        }
        job_failed(action, &repo, f)
    })?;
    say_allowed(staged.allowed().as_deref());
    if let Some(c) = staged.capture() {
        print_capture(c);
    }
    carry_out(ctx, action, &repo, staged, a.restore.yes)
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The snapshot (ID prefix or `latest`)
    pub snapshot: String,
    /// Write one file per object into this folder instead of YAML on stdout
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub fn export(ctx: &Context, a: ExportArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let (_, _, objects) = load_capture(ctx, &repo, &a.snapshot)?;
    match &a.output {
        None => {
            for o in &objects {
                say!("---");
                print!(
                    "{}",
                    serde_saphyr::to_string(o).map_err(|e| anyhow::anyhow!("{e}"))?
                );
            }
        }
        Some(dir) => {
            for o in &objects {
                let r = ObjRef::of(o);
                let folder = dir.join(r.namespace.as_deref().unwrap_or("_cluster"));
                std::fs::create_dir_all(&folder)
                    .with_context(|| format!("cannot create {}", folder.display()))?;
                let file = folder.join(format!("{}.{}.yaml", r.type_name().to_lowercase(), r.name));
                std::fs::write(
                    &file,
                    serde_saphyr::to_string(o).map_err(|e| anyhow::anyhow!("{e}"))?,
                )
                .with_context(|| format!("cannot write {}", file.display()))?;
            }
            say!("{} objects written below {}", objects.len(), dir.display());
        }
    }
    Ok(Exit::SUCCESS)
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The snapshot (ID prefix or `latest`)
    pub snapshot: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(ctx: &Context, a: InspectArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let (snap, meta, objects) = load_capture(ctx, &repo, &a.snapshot)?;
    if a.json {
        say!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"snapshot": snap.id.to_hex(), "meta": meta, "objects": objects.iter().map(ObjRef::of).collect::<Vec<_>>()})
            )?
        );
        return Ok(Exit::SUCCESS);
    }
    say!(
        "snapshot {} taken {} from {} ({})",
        snap.id.short(),
        snap.time.format("%Y-%m-%d %H:%M:%S"),
        meta.cluster,
        meta.server_version
    );
    say!("namespaces: {}", meta.namespaces.join(", "));
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for o in &objects {
        *kinds.entry(ObjRef::of(o).type_name()).or_default() += 1;
    }
    say!("objects ({}):", objects.len());
    for (k, n) in kinds {
        say!("  {n:>5} {k}");
    }
    say!("volumes ({}):", meta.volumes.len());
    for v in &meta.volumes {
        say!(
            "  {}/{}: class {}, {} files, {} ({}) -> files below volumes/{}/{}",
            v.namespace,
            v.pvc,
            v.storage_class.as_deref().unwrap_or("-"),
            v.files,
            format::bytes(v.bytes),
            v.consistency,
            v.namespace,
            v.pvc
        );
    }
    say!(
        "storage classes of the source: {}",
        meta.storage_classes
            .iter()
            .map(|c| format!("{} ({})", c.name, c.provisioner))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in &meta.warnings {
        say!("warning: {w}");
    }
    Ok(Exit::SUCCESS)
}

//! The restore / migrate / clone wizard: source, target, namespace mapping,
//! storage-class mapping, options, then the plan. Each step checks its input when the
//! user moves on and says what is wrong in place; going back keeps what was entered.
//! Nothing changes on a cluster until the plan is confirmed (`Outcome::Confirm`).

use std::collections::{BTreeMap, BTreeSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{App, Load};
use crate::newcluster::NewCluster;
use crate::tasks::Prepared;
use ferry_k8s::capture::{CaptureMeta, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Conflict, PlanOptions};
use ferry_k8s::transform::{self, Mapping};
use ferry_providers::probe::StorageClassInfo;
use ferry_repo::snapshot::Snapshot;

/// What the wizard is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Restore,
    Migrate,
    Clone,
}

impl Purpose {
    /// The policy action a job of this purpose is checked as.
    pub fn action(self) -> ferry_policy::Action {
        match self {
            Purpose::Restore => ferry_policy::Action::Restore,
            Purpose::Migrate => ferry_policy::Action::Migrate,
            Purpose::Clone => ferry_policy::Action::Clone,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Purpose::Restore => "restore",
            Purpose::Migrate => "migrate",
            Purpose::Clone => "clone",
        }
    }

    /// "restoring", "migrating", "cloning".
    pub fn doing(self) -> &'static str {
        match self {
            Purpose::Restore => "restoring",
            Purpose::Migrate => "migrating",
            Purpose::Clone => "cloning",
        }
    }

    /// "restored", "migrated", "cloned".
    pub fn done(self) -> &'static str {
        match self {
            Purpose::Restore => "restored",
            Purpose::Migrate => "migrated",
            Purpose::Clone => "cloned",
        }
    }
}

/// Where the objects come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A capture in the repository.
    Snapshot {
        snap: Box<Snapshot>,
        meta: Box<CaptureMeta>,
    },
    /// A live selection, captured when the plan is built.
    Live { cluster: String, scope: Scope },
}

/// The kinds of target the target step lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A cluster linked through a kubeconfig.
    Linked,
    /// A cluster Ferry creates first: its form is `Wizard::new_cluster` (see
    /// [`crate::newcluster::NewCluster`], one variant per cloud).
    New,
}

#[derive(Debug, Clone)]
pub struct TargetOption {
    pub kind: TargetKind,
    pub name: String,
    /// Why the repository's policy denies this target, once checked (shown, never
    /// hidden; the plan step checks again).
    pub denied: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Target,
    /// The new cluster's form (only when the target is one to create).
    Cluster,
    Namespaces,
    StorageClasses,
    Options,
    Plan,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Target,
        Step::Cluster,
        Step::Namespaces,
        Step::StorageClasses,
        Step::Options,
        Step::Plan,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Step::Target => "target",
            Step::Cluster => "new cluster",
            Step::Namespaces => "namespaces",
            Step::StorageClasses => "storage classes",
            Step::Options => "options",
            Step::Plan => "plan",
        }
    }
}

/// A wizard's live capture (see [`Wizard::live_capture`]).
#[derive(Debug, Clone, Copy)]
pub enum LiveCapture<'a> {
    /// The capture job with this ID runs.
    Running(usize),
    /// It saved a snapshot, and the plan on it waits for confirmation.
    Saved(&'a ferry_jobs::Staged),
}

/// What the app should do after a wizard key.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Stay,
    Close,
    BuildPlan,
    Confirm,
    /// The user tried to go on with a target the policy denies: the wizard stays (with
    /// the reason shown) and the attempt goes to the audit trail.
    Refused,
}

/// The options step's rows.
pub const OPTION_ROWS: [&str; 7] = [
    "conflict policy",
    "include volume data",
    "scale workloads to zero",
    "labels",
    "suspend CronJobs",
    "re-run completed Jobs",
    "resource modifiers file",
];

/// The row of [`OPTION_ROWS`] the labels are typed in.
pub const LABELS_ROW: usize = 3;

/// The row of [`OPTION_ROWS`] a resource modifiers file's path is typed in.
pub const MODIFIERS_ROW: usize = 6;

#[derive(Debug, Clone)]
pub struct Wizard {
    pub generation: u64,
    pub purpose: Purpose,
    pub source: Source,
    pub step: Step,
    pub targets: Vec<TargetOption>,
    pub target: usize,
    /// Source namespace and the target name typed for it.
    pub ns: Vec<(String, String)>,
    pub ns_sel: usize,
    /// Source namespaces left out (`del` on the namespaces step).
    pub left_out: BTreeSet<String>,
    /// The whole cluster (from the clusters screen): every cluster-scoped object comes
    /// along too.
    pub whole: bool,
    pub classes_used: Load<Vec<String>>,
    /// Source class and the target class chosen for it ("" when none).
    pub sc: Vec<(String, String)>,
    /// The target the suggestions in `sc` were made for.
    sc_for: Option<String>,
    pub sc_sel: usize,
    pub conflict: Conflict,
    pub include_volumes: bool,
    pub scale_to_zero: bool,
    /// CronJobs arrive suspended (the default for clones: a copy does not run the
    /// source's schedules).
    pub suspend_cronjobs: bool,
    pub include_completed_jobs: bool,
    pub labels: String,
    /// The path of a resource modifiers file (Velero's format), or empty.
    pub modifiers_path: String,
    pub opt_sel: usize,
    pub plan: Option<Load<Box<Prepared>>>,
    pub plan_scroll: u16,
    /// The plan step's rows as last drawn: (all of them, those shown). Scrolling stops
    /// at the last row.
    pub plan_rows: std::cell::Cell<(usize, usize)>,
    /// What is wrong with the current step's input.
    pub error: Option<String>,
    /// The capture job of a live source.
    pub capture_job: Option<usize>,
    /// The forms of the clusters to create the target list offers (one per cloud).
    pub new_clusters: Vec<NewCluster>,
    /// A live source's cloud envelope, once fetched (a snapshot's is in its meta).
    pub envelope: Option<serde_json::Value>,
}

/// What the forms of new clusters are pre-filled from: the source's cloud envelope
/// (a capture's, or `live_envelope` for a live source) and its server version (a
/// capture's, or the live source's as probed; empty until known).
fn source_facts<'a>(
    app: &App,
    source: &'a Source,
    live_envelope: Option<&'a serde_json::Value>,
) -> (Option<&'a serde_json::Value>, String) {
    match source {
        Source::Snapshot { meta, .. } => (meta.envelope.as_ref(), meta.server_version.clone()),
        Source::Live { cluster, .. } => (
            live_envelope,
            app.cluster(cluster)
                .and_then(|c| c.facts.as_ref())
                .and_then(|f| f.as_ref().ok())
                .map(|f| f.version.clone())
                .unwrap_or_default(),
        ),
    }
}

/// The name a new cluster's form starts with: the source cluster's own (from its
/// envelope) or `ferry`, followed by what the wizard does (`shop-eks-migrate`).
fn new_cluster_name(envelope: Option<&serde_json::Value>, purpose: Purpose) -> String {
    let base = envelope.and_then(|e| e["name"].as_str()).unwrap_or("ferry");
    format!("{base}-{}", purpose.word())
}

impl Wizard {
    pub fn new(app: &App, generation: u64, purpose: Purpose, source: Source) -> Wizard {
        let targets: Vec<TargetOption> = app
            .clusters
            .iter()
            .map(|c| TargetOption {
                kind: TargetKind::Linked,
                name: c.linked.name.clone(),
                denied: None,
            })
            .collect();
        let mut targets = targets;
        // New clusters are offered whenever cloud accounts are linked: a live source's
        // envelope is fetched by the app and applied with [`Wizard::prefill`].
        let new_clusters = {
            let (envelope, version) = source_facts(app, &source, None);
            NewCluster::offered(
                &app.env.clouds,
                envelope,
                &version,
                &new_cluster_name(envelope, purpose),
            )
        };
        for n in &new_clusters {
            targets.push(TargetOption {
                kind: TargetKind::New,
                name: n.label().into(),
                denied: None,
            });
        }
        let source_cluster = match &source {
            Source::Live { cluster, .. } => Some(cluster.clone()),
            Source::Snapshot { meta, .. } => Some(meta.cluster.clone()),
        };
        let is_source = |t: &TargetOption| Some(&t.name) == source_cluster.as_ref();
        let target = match purpose {
            // Another linked cluster that answered first (prod into QA); the source
            // itself when there is none (a same-cluster clone).
            Purpose::Clone => targets
                .iter()
                .position(|t| {
                    t.kind == TargetKind::Linked
                        && !is_source(t)
                        && app
                            .cluster(&t.name)
                            .is_some_and(|c| matches!(c.facts, Some(Ok(_))))
                })
                .or_else(|| targets.iter().position(is_source)),
            _ => targets.iter().position(|t| !is_source(t)),
        }
        .unwrap_or(0);
        let (namespaces, classes_used) = match &source {
            Source::Snapshot { meta, .. } => {
                let mut c: Vec<String> = meta
                    .volumes
                    .iter()
                    .filter_map(|v| v.storage_class.clone())
                    .collect();
                c.sort();
                c.dedup();
                (meta.namespaces.clone(), Load::Ready(c))
            }
            Source::Live { scope, .. } => (scope.namespaces(), Load::Loading),
        };
        let ns = namespaces
            .into_iter()
            .map(|n| {
                let to = if purpose == Purpose::Clone {
                    format!("{n}-clone")
                } else {
                    n.clone()
                };
                (n, to)
            })
            .collect();
        Wizard {
            generation,
            purpose,
            source,
            step: Step::Target,
            targets,
            target,
            ns,
            ns_sel: 0,
            left_out: BTreeSet::new(),
            whole: false,
            classes_used,
            sc: Vec::new(),
            sc_for: None,
            sc_sel: 0,
            conflict: Conflict::Skip,
            include_volumes: true,
            scale_to_zero: false,
            suspend_cronjobs: purpose == Purpose::Clone,
            include_completed_jobs: false,
            labels: String::new(),
            modifiers_path: String::new(),
            opt_sel: 0,
            plan: None,
            plan_scroll: 0,
            plan_rows: std::cell::Cell::new((0, 0)),
            error: None,
            capture_job: None,
            new_clusters,
            envelope: None,
        }
    }

    /// Pre-fills the forms of the clusters to create again from what is known of the
    /// source now (a live source's envelope once fetched, its version once probed);
    /// a form the user has edited stays as typed, and all stay once the user has gone
    /// past the form (what was shown is what was accepted).
    pub fn prefill(&mut self, app: &App) {
        let (envelope, version) = source_facts(app, &self.source, self.envelope.as_ref());
        let fresh = NewCluster::offered(
            &app.env.clouds,
            envelope,
            &version,
            &new_cluster_name(envelope, self.purpose),
        );
        let past_form = self.step > Step::Cluster;
        for f in fresh {
            let Some(old) = self
                .new_clusters
                .iter_mut()
                .find(|o| o.label() == f.label())
            else {
                continue;
            };
            if past_form || old.edited() {
                // What the user typed (or already went past) stays; the source's version
                // still becomes the floor the creation checks.
                old.adopt_floor(&f);
            } else {
                let sel = old.selected();
                *old = f;
                old.select(sel);
            }
        }
    }

    /// The cluster to create, when that is the chosen target.
    pub fn creating(&self) -> Option<&NewCluster> {
        match self.targets.get(self.target) {
            Some(t) if t.kind == TargetKind::New => {
                self.new_clusters.iter().find(|n| n.label() == t.name)
            }
            _ => None,
        }
    }

    /// The form of the cluster to create, when that is the chosen target.
    pub fn creating_mut(&mut self) -> Option<&mut NewCluster> {
        match self.targets.get(self.target) {
            Some(t) if t.kind == TargetKind::New => {
                self.new_clusters.iter_mut().find(|n| n.label() == t.name)
            }
            _ => None,
        }
    }

    /// The steps this wizard goes through (the new cluster's form only when the target
    /// is one to create).
    pub fn steps(&self) -> Vec<Step> {
        Step::ALL
            .iter()
            .copied()
            .filter(|s| *s != Step::Cluster || self.creating().is_some())
            .collect()
    }

    pub fn source_namespaces(&self) -> Vec<String> {
        self.taken().map(|(a, _)| a.clone()).collect()
    }

    /// The namespaces taken (those not left out) and their target names.
    pub fn taken(&self) -> impl Iterator<Item = &(String, String)> {
        self.ns.iter().filter(|(a, _)| !self.left_out.contains(a))
    }

    pub fn source_cluster(&self) -> &str {
        match &self.source {
            Source::Live { cluster, .. } => cluster,
            Source::Snapshot { meta, .. } => &meta.cluster,
        }
    }

    pub fn source_label(&self) -> String {
        match &self.source {
            Source::Live { cluster, scope } => match scope {
                Scope::Workloads {
                    namespace,
                    workloads,
                } => format!("{cluster}/{namespace}/{}", workloads.join(",")),
                other => format!("{cluster}/{}", other.namespaces().join(",")),
            },
            Source::Snapshot { snap, meta } => format!(
                "snapshot {} ({}/{})",
                snap.id.short(),
                meta.cluster,
                meta.namespaces.join(",")
            ),
        }
    }

    pub fn target_name(&self) -> &str {
        self.targets
            .get(self.target)
            .map(|t| t.name.as_str())
            .unwrap_or("")
    }

    /// The target's storage classes, when it has been probed (a cluster to create:
    /// those it will have).
    pub fn target_classes(&self, app: &App) -> Option<Vec<StorageClassInfo>> {
        if let Some(n) = self.creating() {
            return Some(n.classes());
        }
        match app.cluster(self.target_name())?.facts.as_ref()? {
            Ok(f) => Some(f.storage_classes.clone()),
            Err(_) => None,
        }
    }

    fn source_classes(&self, app: &App) -> Vec<StorageClassInfo> {
        match &self.source {
            Source::Snapshot { meta, .. } => meta.storage_classes.clone(),
            Source::Live { cluster, .. } => app
                .cluster(cluster)
                .and_then(|c| c.facts.as_ref())
                .and_then(|f| f.as_ref().ok())
                .map(|f| f.storage_classes.clone())
                .unwrap_or_default(),
        }
    }

    /// Fills the class mapping with suggestions once the used classes and the target's
    /// classes are known; kept as entered while the target stays the same.
    pub fn sync_classes(&mut self, app: &App) {
        let Load::Ready(used) = &self.classes_used else {
            return;
        };
        let Some(target) = self.target_classes(app) else {
            return;
        };
        if self.sc_for.as_deref() == Some(self.target_name()) && self.sc.len() == used.len() {
            return;
        }
        let suggested =
            transform::suggest_storage_classes(&self.source_classes(app), used, &target);
        self.sc = used
            .iter()
            .map(|c| (c.clone(), suggested.get(c).cloned().unwrap_or_default()))
            .collect();
        self.sc_for = Some(self.target_name().to_string());
        self.sc_sel = self.sc_sel.min(self.sc.len().saturating_sub(1));
    }

    /// Parses `k=v, k2=v2`.
    pub fn parse_labels(&self) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for part in self
            .labels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("label {part:?} is not KEY=VALUE"))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(format!("label {part:?} has no key"));
            }
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }

    pub fn restore_options(&self, mover: &MoverOptions) -> PlanOptions {
        PlanOptions {
            mapping: Mapping {
                namespaces: self.taken().filter(|(a, b)| a != b).cloned().collect(),
                storage_classes: self
                    .sc
                    .iter()
                    .filter(|(_, b)| !b.is_empty())
                    .cloned()
                    .collect(),
                scale_to_zero: self.scale_to_zero,
                suspend_cronjobs: self.suspend_cronjobs,
                include_completed_jobs: self.include_completed_jobs,
                labels: self.parse_labels().unwrap_or_default(),
                registries: BTreeMap::new(),
                ..Mapping::default()
            },
            conflict: self.conflict,
            include_volumes: self.include_volumes,
            mover: mover.clone(),
            only: None,
            // Namespaces left out of a snapshot's restore are not planned.
            namespaces: if self.left_out.is_empty() {
                Vec::new()
            } else {
                self.source_namespaces()
            },
            // Checked when the options step was left (`validate`).
            modifiers: self.modifiers().ok().flatten(),
        }
    }

    /// Why the current step's input cannot go on, if it cannot.
    pub fn validate(&self, app: &App) -> Option<String> {
        match self.step {
            Step::Target => {
                let name = self.target_name();
                if let Some(reason) = self
                    .targets
                    .get(self.target)
                    .and_then(|t| t.denied.as_ref())
                {
                    return Some(format!("the policy denies {name}: {reason}"));
                }
                if self.creating().is_some() {
                    return None;
                }
                match app.cluster(name).and_then(|c| c.facts.as_ref()) {
                    None if name.is_empty() => {
                        Some("no cluster is linked: add a kubeconfig".into())
                    }
                    None => Some(format!("{name} is still being probed: wait a moment")),
                    Some(Err(e)) => Some(format!("{name} is unreachable: {e}")),
                    Some(Ok(_)) => None,
                }
            }
            Step::Cluster => self.creating().and_then(NewCluster::validate),
            Step::Namespaces => {
                if self.taken().next().is_none() {
                    return Some("every namespace is left out: take one again with del".into());
                }
                for (from, to) in self.taken() {
                    if !plan::is_dns_label(to) {
                        return Some(format!(
                            "{to:?} (for {from}) is not a DNS label: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit"
                        ));
                    }
                    if self.purpose == Purpose::Clone
                        && self.target_name() == self.source_cluster()
                        && from == to
                    {
                        return Some(format!(
                            "a clone into the same cluster needs a new name for {from}"
                        ));
                    }
                }
                None
            }
            Step::StorageClasses => {
                let target: Vec<String> = self
                    .target_classes(app)
                    .map(|t| t.into_iter().map(|c| c.name).collect())
                    .unwrap_or_default();
                match &self.classes_used {
                    Load::Loading => {
                        return Some("still reading which classes the claims use".into());
                    }
                    Load::Failed(e) => return Some(e.to_string()),
                    Load::Ready(_) => {}
                }
                for (from, to) in &self.sc {
                    if to.is_empty() {
                        return Some(format!(
                            "map {from} to a class of {}: ←/→ choose",
                            self.target_name()
                        ));
                    }
                    if !target.contains(to) {
                        return Some(format!("{} has no storage class {to}", self.target_name()));
                    }
                }
                None
            }
            Step::Options => self.parse_labels().err().or_else(|| self.modifiers().err()),
            Step::Plan => None,
        }
    }

    /// The resource modifiers file typed on the options step, read and checked (`~/`
    /// is the home folder); `None` when no path is typed.
    pub fn modifiers(
        &self,
    ) -> Result<Option<std::sync::Arc<ferry_k8s::modifiers::Modifiers>>, String> {
        let typed = self.modifiers_path.trim();
        if typed.is_empty() {
            return Ok(None);
        }
        let path = match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
            _ => std::path::PathBuf::from(typed),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the resource modifiers file {typed}: {e}"))?;
        ferry_k8s::modifiers::Modifiers::parse(&text, typed)
            .map(|m| Some(std::sync::Arc::new(m)))
            .map_err(|e| e.to_string())
    }

    fn next_step(&self) -> Option<Step> {
        self.steps().into_iter().find(|s| *s > self.step)
    }

    fn prev_step(&self) -> Option<Step> {
        self.steps().into_iter().rev().find(|s| *s < self.step)
    }

    /// Selects item `i` of the current step (a click on it); out of range does nothing.
    pub fn select(&mut self, i: usize) {
        match self.step {
            Step::Target if i < self.targets.len() => {
                if self.target != i {
                    self.error = None;
                }
                self.target = i;
            }
            Step::Cluster => {
                if let Some(n) = self.creating_mut() {
                    n.select(i)
                }
            }
            Step::Namespaces if i < self.ns.len() => self.ns_sel = i,
            Step::StorageClasses if i < self.sc.len() => self.sc_sel = i,
            Step::Options if i < OPTION_ROWS.len() => self.opt_sel = i,
            _ => {}
        }
    }

    /// Goes back a step (leaving the plan step drops its plan); false at the first.
    pub fn back(&mut self) -> bool {
        self.error = None;
        match self.prev_step() {
            Some(s) => {
                if self.step == Step::Plan {
                    self.plan = None;
                }
                self.step = s;
                true
            }
            None => false,
        }
    }

    /// The live capture of the plan step: still running (its job ID), or done with the
    /// plan built on it; `None` for a snapshot's restore or before the plan step.
    pub fn live_capture(&self) -> Option<LiveCapture<'_>> {
        if self.step != Step::Plan {
            return None;
        }
        match (&self.plan, self.capture_job) {
            (Some(Load::Ready(p)), _) if p.captured => Some(LiveCapture::Saved(&p.staged)),
            (None | Some(Load::Loading), Some(id)) => Some(LiveCapture::Running(id)),
            _ => None,
        }
    }

    /// Handles a key; the app acts on the outcome.
    pub fn key(&mut self, app: &App, k: KeyEvent) -> Outcome {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Outcome::Close;
        }
        self.sync_classes(app);
        match k.code {
            KeyCode::Esc => {
                if self.back() {
                    Outcome::Stay
                } else {
                    Outcome::Close
                }
            }
            KeyCode::Enter => {
                if self.step == Step::Plan && self.creating().is_some() {
                    // Nothing to plan before the cluster exists: creation and restore
                    // run as one job, the plan built once the cluster is ACTIVE.
                    return match app.read_only_reason(self.target_name()) {
                        Some(r) => {
                            self.error = Some(format!("cannot create the cluster: {r}"));
                            Outcome::Stay
                        }
                        None => Outcome::Confirm,
                    };
                }
                if self.step == Step::Plan {
                    return match &self.plan {
                        Some(Load::Ready(p)) if p.plan.blocking() > 0 => {
                            self.error = Some(format!(
                                "the plan has {} blocking problem(s): esc to change the mapping",
                                p.plan.blocking()
                            ));
                            Outcome::Stay
                        }
                        Some(Load::Ready(_)) => match app.read_only_reason(self.target_name()) {
                            Some(r) => {
                                self.error = Some(format!("cannot carry out the plan: {r}"));
                                Outcome::Stay
                            }
                            None => Outcome::Confirm,
                        },
                        Some(Load::Loading) => {
                            self.error = Some("the plan is still being built".into());
                            Outcome::Stay
                        }
                        _ => Outcome::Stay,
                    };
                }
                if let Some(e) = self.validate(app) {
                    self.error = Some(e);
                    let denied = self.step == Step::Target
                        && self
                            .targets
                            .get(self.target)
                            .is_some_and(|t| t.denied.is_some());
                    return if denied {
                        Outcome::Refused
                    } else {
                        Outcome::Stay
                    };
                }
                self.error = None;
                match self.next_step() {
                    Some(s) => {
                        self.step = s;
                        if s == Step::StorageClasses {
                            self.sync_classes(app);
                        }
                        if s == Step::Plan && self.creating().is_some() {
                            self.plan_scroll = 0;
                            Outcome::Stay
                        } else if s == Step::Plan {
                            self.plan_scroll = 0;
                            Outcome::BuildPlan
                        } else {
                            Outcome::Stay
                        }
                    }
                    None => Outcome::Stay,
                }
            }
            code => {
                self.edit(app, code);
                Outcome::Stay
            }
        }
    }

    fn edit(&mut self, app: &App, code: KeyCode) {
        let up = matches!(code, KeyCode::Up);
        let down = matches!(code, KeyCode::Down);
        let step = |sel: &mut usize, len: usize| {
            if up {
                *sel = sel.saturating_sub(1);
            } else if down && *sel + 1 < len {
                *sel += 1;
            }
        };
        match self.step {
            Step::Target => {
                let before = self.target;
                step(&mut self.target, self.targets.len());
                if before != self.target {
                    self.error = None;
                }
            }
            Step::Cluster => {
                if let Some(n) = self.creating_mut() {
                    n.key(code);
                }
            }
            Step::Namespaces => {
                step(&mut self.ns_sel, self.ns.len());
                if let Some((from, to)) = self.ns.get_mut(self.ns_sel) {
                    match code {
                        KeyCode::Backspace => {
                            to.pop();
                        }
                        KeyCode::Char(c) => to.push(c),
                        // Leave the namespace out, or take it again.
                        KeyCode::Delete => {
                            if !self.left_out.remove(from) {
                                self.left_out.insert(from.clone());
                            }
                            self.error = None;
                        }
                        _ => {}
                    }
                }
            }
            Step::StorageClasses => {
                step(&mut self.sc_sel, self.sc.len());
                let names: Vec<String> = self
                    .target_classes(app)
                    .map(|t| t.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default();
                if let Some((_, to)) = self.sc.get_mut(self.sc_sel)
                    && !names.is_empty()
                {
                    let cur = names.iter().position(|n| n == to);
                    let n = names.len();
                    let pick = match (code, cur) {
                        (KeyCode::Right | KeyCode::Char(' '), Some(i)) => Some((i + 1) % n),
                        (KeyCode::Left, Some(i)) => Some((i + n - 1) % n),
                        (KeyCode::Right | KeyCode::Left | KeyCode::Char(' '), None) => Some(0),
                        _ => None,
                    };
                    if let Some(i) = pick {
                        *to = names[i].clone();
                    }
                }
            }
            Step::Options => {
                step(&mut self.opt_sel, OPTION_ROWS.len());
                let toggle = matches!(code, KeyCode::Left | KeyCode::Right | KeyCode::Char(' '));
                match self.opt_sel {
                    0 if toggle => {
                        self.conflict = match (self.conflict, code) {
                            (Conflict::Skip, KeyCode::Left) => Conflict::Fail,
                            (Conflict::Skip, _) => Conflict::Update,
                            (Conflict::Update, KeyCode::Left) => Conflict::Skip,
                            (Conflict::Update, _) => Conflict::Fail,
                            (Conflict::Fail, KeyCode::Left) => Conflict::Update,
                            (Conflict::Fail, _) => Conflict::Skip,
                        }
                    }
                    1 if toggle => self.include_volumes = !self.include_volumes,
                    2 if toggle => self.scale_to_zero = !self.scale_to_zero,
                    4 if toggle => self.suspend_cronjobs = !self.suspend_cronjobs,
                    5 if toggle => self.include_completed_jobs = !self.include_completed_jobs,
                    LABELS_ROW | MODIFIERS_ROW => {
                        let typed = if self.opt_sel == LABELS_ROW {
                            &mut self.labels
                        } else {
                            &mut self.modifiers_path
                        };
                        match code {
                            KeyCode::Backspace => {
                                typed.pop();
                            }
                            KeyCode::Char(c) => typed.push(c),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Step::Plan => {
                let (rows, shown) = self.plan_rows.get();
                let last = u16::try_from(rows.saturating_sub(shown)).unwrap_or(u16::MAX);
                let page = u16::try_from(shown.saturating_sub(1).max(1)).unwrap_or(1);
                let at = self.plan_scroll;
                self.plan_scroll = match code {
                    KeyCode::Down | KeyCode::Char('j') => at.saturating_add(1),
                    KeyCode::Up | KeyCode::Char('k') => at.saturating_sub(1),
                    KeyCode::PageDown => at.saturating_add(page),
                    KeyCode::PageUp => at.saturating_sub(page),
                    KeyCode::Home | KeyCode::Char('g') => 0,
                    KeyCode::End | KeyCode::Char('G') => last,
                    _ => at,
                }
                .min(last);
            }
        }
    }
}

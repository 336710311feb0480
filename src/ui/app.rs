//! The console's state and what every action does to it.
//!
//! `App` is owned by the UI thread. It never waits for the network or the disk: every
//! load, probe, plan and job runs as a tokio task ([`crate::tasks`]) that sends a
//! [`Msg`] back, and `App::apply` folds the message into the state. Drawing
//! ([`crate::screens`]) only reads the state. Tests drive an `App` with key events
//! and [`App::settle`] without any terminal.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};
use serde_json::Value;

use crate::keymap::{Command, Keymap};
use crate::screens;
use crate::tasks;
use crate::theme::Theme;
use crate::wizard_state::{Purpose, Source, Wizard};
use ferry_k8s::JobProgress;
use ferry_k8s::apply::Report;
use ferry_k8s::capture::{CaptureMeta, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{BrokenSource, Linked, LinkedCluster, Origin};
use ferry_providers::probe::Facts;
use ferry_repo::Repository;
use ferry_repo::progress::RateMeter;
use ferry_repo::snapshot::Snapshot;
use ferry_repo::tree::{Node, NodeKind};

/// What the console was started with.
pub struct Env {
    pub linked: Linked,
    /// The repository, or why it could not be opened.
    pub repo: Result<Repository, String>,
    pub rt: tokio::runtime::Handle,
    pub theme: Theme,
    pub keymap: Keymap,
    /// Nothing that changes a cluster may run.
    pub read_only: bool,
    /// Contexts whose name contains one of these are read-only.
    pub read_only_contexts: Vec<String>,
    pub mover: MoverOptions,
    /// Where restore reports are written (`<state>/reports`, as the CLI does).
    pub reports: std::path::PathBuf,
    /// The folder a file restored from a snapshot goes to unless the user types
    /// another (`<data>/downloads`).
    pub downloads: std::path::PathBuf,
    /// The clouds and their linked accounts (`aws:`, `azure:` in the settings): their
    /// clusters are listed, and the wizard offers a new cluster in each linked one.
    pub clouds: ferry_providers::cloud::Clouds,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("clusters", &self.linked.clusters.len())
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Something that is loading, loaded, or failed (with what to do).
#[derive(Debug, Clone)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(String),
}

impl<T> Load<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// How a row is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Normal,
    Ok,
    Warn,
    Error,
    Dim,
}

/// One row of a list: a stable key (for marks and selection) and its cells.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub key: String,
    pub cells: Vec<String>,
    /// A group heading (e.g. a kubeconfig file): shown, never selected.
    pub group: bool,
    pub tone: Tone,
    search: String,
}

impl Row {
    pub fn new(key: impl Into<String>, cells: Vec<String>) -> Row {
        let search = cells.join(" ").to_lowercase();
        Row {
            key: key.into(),
            cells,
            group: false,
            tone: Tone::Normal,
            search,
        }
    }

    pub fn group(label: String) -> Row {
        Row {
            key: format!("#group:{label}"),
            cells: vec![label],
            group: true,
            tone: Tone::Normal,
            search: String::new(),
        }
    }

    pub fn tone(mut self, t: Tone) -> Row {
        self.tone = t;
        self
    }
}

/// True when every character of `pattern` occurs in `text` in order (both lower case).
pub fn fuzzy(pattern: &str, text: &str) -> bool {
    let mut chars = text.chars();
    pattern.chars().all(|p| chars.any(|c| c == p))
}

/// A screen of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Clusters,
    Namespaces {
        cluster: String,
    },
    Workloads {
        cluster: String,
        ns: String,
    },
    Pvcs {
        cluster: String,
        ns: String,
    },
    Snapshots,
    Snapshot {
        id: String,
    },
    /// A folder inside a snapshot: `path` in the snapshot's tree (`/`-separated, "" for
    /// the root), browsed from `base` (a volume's folder, or "" for a folder backup).
    Files {
        id: String,
        base: String,
        path: String,
    },
    Jobs,
    /// The repository's audit trail.
    Audit,
}

impl View {
    pub fn title(&self) -> String {
        match self {
            View::Clusters => "clusters".into(),
            View::Namespaces { cluster } => cluster.clone(),
            View::Workloads { ns, .. } => format!("{ns} (workloads)"),
            View::Pvcs { ns, .. } => format!("{ns} (pvcs)"),
            View::Snapshots => "snapshots".into(),
            View::Snapshot { id } => id.chars().take(8).collect(),
            View::Files { id, base, path } => {
                if path == base {
                    match base.strip_prefix(VOLUMES_PREFIX) {
                        Some(claim) => claim.to_string(),
                        None => format!("{}:/", id.chars().take(8).collect::<String>()),
                    }
                } else {
                    path.rsplit('/').next().unwrap_or(path).to_string()
                }
            }
            View::Jobs => "jobs".into(),
            View::Audit => "audit".into(),
        }
    }

    pub fn cluster(&self) -> Option<&str> {
        match self {
            View::Namespaces { cluster }
            | View::Workloads { cluster, .. }
            | View::Pvcs { cluster, .. } => Some(cluster),
            _ => None,
        }
    }
}

/// Where a capture keeps its volumes' files in the snapshot tree, with the slash.
pub const VOLUMES_PREFIX: &str = "volumes/";

/// Selection, scrolling, filter and marks of one screen.
#[derive(Debug, Default, Clone)]
pub struct ListState {
    pub selected: usize,
    /// The first row shown (kept by the drawing code so the selection stays visible).
    pub offset: Cell<usize>,
    pub filter: String,
    pub marks: BTreeSet<String>,
    /// Rows a page moves (the last drawn height).
    pub page: Cell<usize>,
    /// Where the last frame drew the rows (below the table's header): a click there
    /// picks the row `offset + (y - area.y)`.
    pub area: Cell<Rect>,
}

/// Where the last frame put what a click can reach (set by the drawing code).
#[derive(Debug, Default, Clone)]
pub struct Hits {
    /// Breadcrumb segments: their area on the header line and their index in the stack.
    pub crumbs: Vec<(Rect, usize)>,
    /// Wizard lines that stand for an item of the current step: (area, item index).
    pub wizard: Vec<(Rect, usize)>,
}

#[derive(Debug, Clone)]
pub struct Screen {
    pub view: View,
    pub list: ListState,
}

/// What typing goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Filter,
    Command(String),
    ConfirmQuit,
    Help,
}

/// A namespace of a cluster, summarised.
#[derive(Debug, Clone, Default)]
pub struct NsSummary {
    pub name: String,
    pub status: String,
    pub pods: usize,
    pub workloads: usize,
    pub pvcs: usize,
    pub requested: u64,
}

/// One folder of a snapshot: its entries (folders first, then by name) and their rows,
/// in the same order.
#[derive(Debug, Clone, Default)]
pub struct DirData {
    pub nodes: Vec<Node>,
    pub rows: Vec<Row>,
}

/// The prompt of a restore to this machine: what (`path` in `snapshot`), and the
/// folder typed for it.
#[derive(Debug, Clone)]
pub struct RestorePrompt {
    /// Results of an older prompt are dropped.
    pub generation: u64,
    pub snapshot: Box<Snapshot>,
    /// The path inside the snapshot's tree.
    pub path: String,
    /// The file or folder's name (what appears in the destination).
    pub name: String,
    pub is_dir: bool,
    /// What it is, in words: file, folder, link, volume.
    pub what: &'static str,
    /// The destination folder as typed.
    pub dest: String,
    /// What is wrong with `dest`, once checked.
    pub error: Option<String>,
    /// A check of `dest` is under way.
    pub checking: bool,
}

/// Everything listed in one namespace.
#[derive(Debug, Clone, Default)]
pub struct NsData {
    pub objects: Vec<Value>,
    pub workload_rows: Vec<Row>,
    pub pvc_rows: Vec<Row>,
    /// Row key to the object's index in `objects`.
    pub index: HashMap<String, usize>,
}

/// What the console knows about one linked cluster.
#[derive(Debug, Clone)]
pub struct ClusterState {
    pub linked: LinkedCluster,
    pub facts: Option<Result<Facts, String>>,
    pub namespaces: Option<Load<Vec<Row>>>,
    pub ns: HashMap<String, Load<NsData>>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobEnd {
    Captured {
        snapshot: String,
        summary: String,
        warnings: Vec<String>,
    },
    /// A restore (or the restore of a migration or clone) ended with `report`, saved
    /// at `saved` (or why not) for `ferry restore --retry`; `context` is the target's
    /// kubeconfig context.
    Restored {
        report: Report,
        saved: Result<std::path::PathBuf, String>,
        context: String,
    },
    /// Files of a snapshot restored into a folder of this machine.
    Downloaded {
        target: std::path::PathBuf,
        files: u64,
        dirs: u64,
        bytes: u64,
        warnings: Vec<String>,
    },
    Failed(String),
    Cancelled,
}

/// A background backup, restore or migration.
#[derive(Debug)]
pub struct Job {
    pub id: usize,
    pub title: String,
    pub progress: Arc<JobProgress>,
    pub started: Instant,
    pub end: Option<JobEnd>,
    pub rate: f64,
    meter: RateMeter,
}

impl Job {
    pub fn running(&self) -> bool {
        self.end.is_none()
    }
}

/// The snapshots of the repository.
#[derive(Debug, Clone, Default)]
pub struct SnapshotsData {
    pub all: Vec<Snapshot>,
    pub rows: Vec<Row>,
}

/// The repository's audit trail, as read.
pub struct AuditData {
    /// Oldest first, as stored.
    pub records: Vec<ferry_policy::audit::AuditRecord>,
    /// Records that could not be read (a damaged file, a gap in the chain).
    pub warnings: Vec<String>,
    pub rows: Vec<Row>,
}

/// Results of background work.
#[derive(Debug)]
pub enum Msg {
    Probe(String, Result<Facts, String>),
    Namespaces(String, Result<Vec<NsSummary>, String>),
    NsObjects(String, String, Result<Vec<Value>, String>),
    Snapshots(Result<Vec<Snapshot>, String>),
    SnapshotObjects(String, Result<Vec<Value>, String>),
    /// The entries of a folder of a snapshot: (snapshot ID, path, entries).
    SnapshotDir(String, String, Result<Vec<Node>, String>),
    /// The checked destination of a restore prompt (prompt generation): the engine's
    /// options, or what is wrong with the folder.
    RestoreChecked(u64, Result<ferry_repo::restore::RestoreOptions, String>),
    /// Storage classes used by a wizard's live source (wizard generation).
    WizardClasses(u64, Result<Vec<String>, String>),
    /// The cloud envelope of a wizard's live source (wizard generation): None for a
    /// cluster of no cloud, or why it could not be read.
    WizardEnvelope(u64, Result<Option<Value>, String>),
    /// Targets of a wizard and why the policy denies each (None: allowed).
    WizardVerdicts(u64, Vec<(String, Option<String>)>),
    /// A wizard's plan (wizard generation).
    Plan(u64, Result<Box<tasks::Prepared>, String>),
    JobDone(usize, JobEnd),
    /// The audit trail: records (oldest first) and warnings.
    Audit(Result<(Vec<ferry_policy::audit::AuditRecord>, Vec<String>), String>),
    /// A line for the status bar from background work.
    Status(Tone, String),
    /// A cluster the console created (a wizard's new target): linked from now on.
    ClusterCreated(Box<LinkedCluster>),
    /// The clusters of one cloud origin (an AWS account's region, an Azure
    /// subscription), or why they could not be listed.
    CloudListed(Origin, Result<Vec<LinkedCluster>, String>),
    /// A terminal event (from the input thread).
    Input(crossterm::event::Event),
}

/// The console.
pub struct App {
    pub env: Env,
    pub clusters: Vec<ClusterState>,
    pub cluster_rows: Vec<Row>,
    pub stack: Vec<Screen>,
    pub mode: Mode,
    pub wizard: Option<Wizard>,
    pub snapshots: Option<Load<SnapshotsData>>,
    pub audit: Option<Load<AuditData>>,
    pub snapshot_objects: HashMap<String, Load<Vec<Value>>>,
    /// Folders of snapshots, loaded as they are opened: (snapshot ID, path).
    pub dirs: HashMap<(String, String), Load<DirData>>,
    /// The restore-to-this-machine prompt, when open.
    pub prompt: Option<RestorePrompt>,
    prompt_gen: u64,
    pub jobs: Vec<Job>,
    pub show_yaml: bool,
    /// The selected object's YAML: (row key, text).
    pub yaml: Option<(String, String)>,
    pub yaml_scroll: u16,
    /// One line for the user: what just happened or why a key did nothing.
    pub status: Option<(Tone, String)>,
    pub quit: bool,
    /// The wizard generation counter (results of an older wizard are dropped).
    pub wizard_gen: u64,
    /// The cloud origins still being listed (their clusters join when they answer).
    pub listing: Vec<Origin>,
    /// Starts background work that answers on `rx`.
    tasks: tasks::Tasks,
    rx: mpsc::Receiver<Msg>,
    /// Something changed since the last frame.
    pub dirty: bool,
    /// Clickable areas of the last frame.
    pub hits: RefCell<Hits>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("stack", &self.stack)
            .field("mode", &self.mode)
            .finish()
    }
}

impl App {
    /// A console on `env`; starts probing every cluster at once.
    pub fn new(env: Env) -> App {
        let (tx, rx) = mpsc::channel();
        let env_rt = env.rt.clone();
        let clusters = env
            .linked
            .clusters
            .iter()
            .map(|c| ClusterState {
                linked: c.clone(),
                facts: None,
                namespaces: None,
                ns: HashMap::new(),
            })
            .collect();
        let mut app = App {
            env,
            clusters,
            cluster_rows: Vec::new(),
            stack: vec![Screen {
                view: View::Clusters,
                list: ListState::default(),
            }],
            mode: Mode::Normal,
            wizard: None,
            snapshots: None,
            audit: None,
            snapshot_objects: HashMap::new(),
            dirs: HashMap::new(),
            prompt: None,
            prompt_gen: 0,
            jobs: Vec::new(),
            show_yaml: false,
            yaml: None,
            yaml_scroll: 0,
            status: None,
            quit: false,
            wizard_gen: 0,
            listing: Vec::new(),
            tasks: tasks::Tasks::new(env_rt, tx),
            rx,
            dirty: true,
            hits: RefCell::new(Hits::default()),
        };
        for c in &app.clusters {
            app.tasks.probe(c.linked.clone());
        }
        // Cloud accounts are listed in the background: the screen is up meanwhile.
        app.listing = app.env.clouds.origins();
        if !app.listing.is_empty() {
            app.tasks.cloud_clusters(&app.env.clouds);
        }
        app.cluster_rows = screens::clusters::rows(&app);
        app.select_first_selectable();
        app
    }

    /// Links a cluster found or created while the console runs, and probes it.
    fn add_cluster(&mut self, linked: LinkedCluster) {
        if self.cluster(&linked.name).is_some() {
            return;
        }
        self.tasks.probe(linked.clone());
        self.clusters.push(ClusterState {
            linked,
            facts: None,
            namespaces: None,
            ns: HashMap::new(),
        });
    }

    /// A sender for messages into this app (the input thread uses it).
    pub fn sender(&self) -> mpsc::Sender<Msg> {
        self.tasks.sender()
    }

    pub fn screen(&self) -> &Screen {
        // The stack is never empty: `back` keeps the root.
        &self.stack[self.stack.len() - 1]
    }

    fn screen_mut(&mut self) -> &mut Screen {
        let n = self.stack.len() - 1;
        &mut self.stack[n]
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterState> {
        self.clusters.iter().find(|c| c.linked.name == name)
    }

    fn cluster_mut(&mut self, name: &str) -> Option<&mut ClusterState> {
        self.clusters.iter_mut().find(|c| c.linked.name == name)
    }

    /// The cluster the user is in, if any (for the accent and `:ns`).
    pub fn current_cluster(&self) -> Option<&str> {
        self.stack
            .iter()
            .rev()
            .find_map(|s| s.view.cluster())
            .or_else(|| self.env.linked.current().map(|c| c.name.as_str()))
    }

    /// Why changing `cluster` is not allowed, if it is not.
    pub fn read_only_reason(&self, cluster: &str) -> Option<String> {
        if self.env.read_only {
            return Some(
                "the console runs read-only (--read-only or readOnly in the settings)".into(),
            );
        }
        let ctx = self
            .cluster(cluster)
            .map(|c| c.linked.context.as_str())
            .unwrap_or(cluster);
        self.env
            .read_only_contexts
            .iter()
            .find(|p| !p.is_empty() && ctx.contains(p.as_str()))
            .map(|p| format!("{cluster} is read-only (readOnlyContexts: {p:?} in the settings)"))
    }

    /// True while anything runs in the background (the loop then ticks).
    pub fn busy(&self) -> bool {
        self.jobs.iter().any(Job::running) || self.clusters.iter().any(|c| c.facts.is_none())
    }

    pub fn running_jobs(&self) -> usize {
        self.jobs.iter().filter(|j| j.running()).count()
    }

    /// The rows of a view (borrowed where the data already holds them).
    pub fn rows(&self, view: &View) -> Result<Cow<'_, [Row]>, String> {
        let loading = || Err("loading…".to_string());
        match view {
            View::Clusters => Ok(Cow::Borrowed(&self.cluster_rows)),
            View::Namespaces { cluster } => {
                match self.cluster(cluster).and_then(|c| c.namespaces.as_ref()) {
                    Some(Load::Ready(r)) => Ok(Cow::Borrowed(r)),
                    Some(Load::Failed(e)) => Err(e.clone()),
                    _ => loading(),
                }
            }
            View::Workloads { cluster, ns } | View::Pvcs { cluster, ns } => {
                match self.cluster(cluster).and_then(|c| c.ns.get(ns)) {
                    Some(Load::Ready(d)) => {
                        Ok(Cow::Borrowed(if matches!(view, View::Pvcs { .. }) {
                            &d.pvc_rows
                        } else {
                            &d.workload_rows
                        }))
                    }
                    Some(Load::Failed(e)) => Err(e.clone()),
                    _ => loading(),
                }
            }
            View::Snapshots => match &self.snapshots {
                Some(Load::Ready(d)) => Ok(Cow::Borrowed(&d.rows)),
                Some(Load::Failed(e)) => Err(e.clone()),
                _ => loading(),
            },
            View::Snapshot { id } => Ok(Cow::Owned(screens::snapshots::detail_rows(self, id))),
            View::Files { id, path, .. } => match self.dirs.get(&(id.clone(), path.clone())) {
                Some(Load::Ready(d)) => Ok(Cow::Borrowed(&d.rows)),
                Some(Load::Failed(e)) => Err(e.clone()),
                _ => loading(),
            },
            View::Jobs => Ok(Cow::Owned(screens::jobs::rows(self))),
            View::Audit => match &self.audit {
                Some(Load::Ready(d)) => Ok(Cow::Borrowed(&d.rows)),
                Some(Load::Failed(e)) => Err(e.clone()),
                _ => loading(),
            },
        }
    }

    /// Indices of the rows the filter lets through.
    pub fn visible(rows: &[Row], filter: &str) -> Vec<usize> {
        if filter.is_empty() {
            return (0..rows.len()).collect();
        }
        let f = filter.to_lowercase();
        rows.iter()
            .enumerate()
            .filter(|(_, r)| !r.group && fuzzy(&f, &r.search))
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected row of the current screen.
    pub fn selected_row(&self) -> Option<Row> {
        let s = self.screen();
        let rows = self.rows(&s.view).ok()?;
        let vis = App::visible(&rows, &s.list.filter);
        vis.get(s.list.selected)
            .and_then(|i| rows.get(*i))
            .filter(|r| !r.group)
            .cloned()
    }

    /// Keys of the marked rows, or the selected row's when none is marked.
    fn targets(&self) -> Vec<String> {
        let s = self.screen();
        if !s.list.marks.is_empty() {
            return s.list.marks.iter().cloned().collect();
        }
        self.selected_row().map(|r| vec![r.key]).unwrap_or_default()
    }

    fn select_first_selectable(&mut self) {
        let Ok(rows) = self.rows(&self.screen().view.clone()) else {
            return;
        };
        let filter = self.screen().list.filter.clone();
        let vis = App::visible(&rows, &filter);
        let sel = self.screen().list.selected.min(vis.len().saturating_sub(1));
        let pick = (sel..vis.len())
            .chain((0..sel).rev())
            .find(|i| {
                vis.get(*i)
                    .and_then(|r| rows.get(*r))
                    .is_some_and(|r| !r.group)
            })
            .unwrap_or(0);
        self.screen_mut().list.selected = pick;
    }

    fn move_selection(&mut self, delta: isize) {
        let Ok(rows) = self.rows(&self.screen().view.clone()) else {
            return;
        };
        let rows = rows.into_owned();
        let filter = self.screen().list.filter.clone();
        let vis = App::visible(&rows, &filter);
        if vis.is_empty() {
            return;
        }
        let last = vis.len() as isize - 1;
        let mut i = (self.screen().list.selected as isize + delta).clamp(0, last);
        let step = if delta < 0 { -1 } else { 1 };
        while rows[vis[i as usize]].group {
            let next = i + step;
            if next < 0 || next > last {
                // Nothing selectable that way: stay where we were.
                i = self.screen().list.selected as isize;
                break;
            }
            i = next;
        }
        self.screen_mut().list.selected = i as usize;
    }

    fn push(&mut self, view: View) {
        self.stack.push(Screen {
            view,
            list: ListState::default(),
        });
        self.yaml = None;
        self.yaml_scroll = 0;
        self.load_current(false);
        self.select_first_selectable();
    }

    fn reset_to(&mut self, views: Vec<View>) {
        self.stack = views
            .into_iter()
            .map(|view| Screen {
                view,
                list: ListState::default(),
            })
            .collect();
        if self.stack.is_empty() {
            self.stack.push(Screen {
                view: View::Clusters,
                list: ListState::default(),
            });
        }
        self.yaml = None;
        self.load_current(false);
        self.select_first_selectable();
    }

    /// Starts loading what the current screen shows (again, with `force`).
    fn load_current(&mut self, force: bool) {
        let view = self.screen().view.clone();
        let tasks = self.tasks.clone();
        match view {
            View::Clusters => {
                if force {
                    for c in &mut self.clusters {
                        c.facts = None;
                        tasks.probe(c.linked.clone());
                    }
                    self.cluster_rows = screens::clusters::rows(self);
                }
            }
            View::Namespaces { cluster } => {
                if let Some(c) = self.cluster_mut(&cluster)
                    && (force || c.namespaces.is_none())
                {
                    c.namespaces = Some(Load::Loading);
                    tasks.namespaces(c.linked.clone());
                }
            }
            View::Workloads { cluster, ns } | View::Pvcs { cluster, ns } => {
                if let Some(c) = self.cluster_mut(&cluster)
                    && (force || !c.ns.contains_key(&ns))
                {
                    c.ns.insert(ns.clone(), Load::Loading);
                    tasks.ns_objects(c.linked.clone(), ns);
                }
            }
            View::Snapshots => {
                if force || self.snapshots.is_none() {
                    self.snapshots = Some(Load::Loading);
                    tasks.snapshots(self.env.repo.clone());
                }
            }
            View::Snapshot { id } => {
                if (force || !self.snapshot_objects.contains_key(&id))
                    && let Some(snap) = self.find_snapshot(&id).cloned()
                {
                    self.snapshot_objects.insert(id.clone(), Load::Loading);
                    tasks.snapshot_objects(self.env.repo.clone(), snap);
                }
            }
            View::Files { id, path, .. } => {
                let key = (id.clone(), path.clone());
                if (force || !self.dirs.contains_key(&key))
                    && let Some(snap) = self.find_snapshot(&id).cloned()
                {
                    self.dirs.insert(key, Load::Loading);
                    tasks.snapshot_dir(self.env.repo.clone(), snap, path);
                }
            }
            View::Jobs => {}
            View::Audit => {
                if force || self.audit.is_none() {
                    self.audit = Some(Load::Loading);
                    tasks.audit(self.env.repo.clone());
                }
            }
        }
    }

    pub fn find_snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots
            .as_ref()
            .and_then(Load::ready)
            .and_then(|d| d.all.iter().find(|s| s.id.to_hex() == id))
    }

    fn say(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some((tone, text.into()));
    }

    /// Folds a background result into the state.
    pub fn apply(&mut self, msg: Msg) {
        self.dirty = true;
        match msg {
            Msg::Input(ev) => self.input(ev),
            Msg::Probe(name, facts) => {
                if let Some(c) = self.cluster_mut(&name) {
                    c.facts = Some(facts);
                }
                self.cluster_rows = screens::clusters::rows(self);
                self.wizard_sync();
            }
            Msg::Namespaces(name, r) => {
                if let Some(c) = self.cluster_mut(&name) {
                    c.namespaces = Some(match r {
                        Ok(list) => Load::Ready(screens::namespaces::rows(&list)),
                        Err(e) => Load::Failed(e),
                    });
                }
                self.select_first_selectable();
            }
            Msg::NsObjects(name, ns, r) => {
                if let Some(c) = self.cluster_mut(&name) {
                    c.ns.insert(
                        ns,
                        match r {
                            Ok(objects) => Load::Ready(screens::workloads::ns_data(objects)),
                            Err(e) => Load::Failed(e),
                        },
                    );
                }
                self.select_first_selectable();
                self.refresh_yaml();
            }
            Msg::Snapshots(r) => {
                self.snapshots = Some(match r {
                    Ok(all) => Load::Ready(SnapshotsData {
                        rows: screens::snapshots::rows(&all),
                        all,
                    }),
                    Err(e) => Load::Failed(e),
                });
                self.select_first_selectable();
            }
            Msg::Audit(r) => {
                self.audit = Some(match r {
                    Ok((records, warnings)) => Load::Ready(AuditData {
                        rows: screens::audit::rows(&records),
                        records,
                        warnings,
                    }),
                    Err(e) => Load::Failed(e),
                });
                self.select_first_selectable();
            }
            Msg::Status(tone, text) => self.say(tone, text),
            Msg::SnapshotObjects(id, r) => {
                self.snapshot_objects.insert(
                    id,
                    match r {
                        Ok(o) => Load::Ready(o),
                        Err(e) => Load::Failed(e),
                    },
                );
                self.refresh_yaml();
            }
            Msg::SnapshotDir(id, path, r) => {
                self.dirs.insert(
                    (id, path),
                    match r {
                        Ok(nodes) => Load::Ready(screens::files::dir_data(nodes)),
                        Err(e) => Load::Failed(e),
                    },
                );
                self.select_first_selectable();
            }
            Msg::RestoreChecked(generation, r) => self.restore_checked(generation, r),
            Msg::ClusterCreated(linked) => {
                self.add_cluster(*linked);
                self.cluster_rows = screens::clusters::rows(self);
            }
            Msg::CloudListed(origin, res) => {
                let selected = self.selected_row().map(|r| r.key);
                self.listing.retain(|o| *o != origin);
                match res {
                    Ok(clusters) => {
                        for c in clusters {
                            self.add_cluster(c);
                        }
                    }
                    Err(error) => self.env.linked.broken.push(BrokenSource { origin, error }),
                }
                self.cluster_rows = screens::clusters::rows(self);
                // The selection stays on its row while rows join above it.
                if matches!(self.screen().view, View::Clusters) {
                    let vis = App::visible(&self.cluster_rows, &self.screen().list.filter);
                    if let Some(i) = vis.iter().position(|ri| {
                        self.cluster_rows.get(*ri).map(|r| &r.key) == selected.as_ref()
                    }) {
                        self.screen_mut().list.selected = i;
                    }
                    self.select_first_selectable();
                }
            }
            Msg::WizardVerdicts(generation, verdicts) => {
                if let Some(w) = &mut self.wizard
                    && w.generation == generation
                {
                    for (name, denied) in verdicts {
                        if let Some(t) = w.targets.iter_mut().find(|t| t.name == name) {
                            t.denied = denied;
                        }
                    }
                }
            }
            Msg::WizardClasses(generation, r) => {
                if let Some(w) = &mut self.wizard
                    && w.generation == generation
                {
                    w.classes_used = match r {
                        Ok(c) => Load::Ready(c),
                        Err(e) => Load::Failed(e),
                    };
                }
                self.wizard_sync();
            }
            Msg::WizardEnvelope(generation, r) => {
                if let Some(mut w) = self.wizard.take() {
                    if w.generation == generation {
                        match r {
                            Ok(envelope) => {
                                w.envelope = envelope;
                                w.prefill(self);
                            }
                            Err(e) => self.say(
                                Tone::Warn,
                                format!(
                                    "the new cluster's form starts from defaults: cannot read the cloud settings of {}: {e}",
                                    w.source_cluster()
                                ),
                            ),
                        }
                    }
                    self.wizard = Some(w);
                }
            }
            Msg::Plan(generation, r) => match &mut self.wizard {
                Some(w) if w.generation == generation => {
                    w.plan = Some(match r {
                        Ok(p) => Load::Ready(p),
                        Err(e) => Load::Failed(e),
                    });
                }
                // The wizard moved on while a live capture was being planned.
                _ => {
                    if let Ok(p) = r
                        && p.captured
                    {
                        self.abandon(p.permit);
                    }
                }
            },
            Msg::JobDone(id, end) => {
                if let Some(j) = self.jobs.iter_mut().find(|j| j.id == id) {
                    let line = match &end {
                        JobEnd::Captured { snapshot, .. } => {
                            (Tone::Ok, format!("{}: saved snapshot {snapshot}", j.title))
                        }
                        JobEnd::Restored { report: r, .. } if r.failed().is_empty() => {
                            (Tone::Ok, format!("{}: done", j.title))
                        }
                        JobEnd::Restored { report: r, .. } => (
                            Tone::Warn,
                            format!("{}: {} failed (see :jobs)", j.title, r.failed().len()),
                        ),
                        JobEnd::Downloaded { target, files, .. } => (
                            Tone::Ok,
                            format!("{}: {files} file(s) in {}", j.title, target.display()),
                        ),
                        JobEnd::Failed(e) => (Tone::Error, format!("{}: {e}", j.title)),
                        JobEnd::Cancelled => (Tone::Warn, format!("{}: cancelled", j.title)),
                    };
                    let captured = matches!(end, JobEnd::Captured { .. });
                    j.end = Some(end);
                    self.status = Some(line);
                    if captured {
                        // A new snapshot: the list is stale.
                        self.snapshots = None;
                        if self.screen().view == View::Snapshots {
                            self.load_current(true);
                        }
                    }
                }
            }
        }
    }

    /// Records a live capture whose plan was dropped unconfirmed ([`tasks::Tasks::abandoned`]).
    fn abandon(&self, permit: ferry_jobs::Permit) {
        self.tasks.abandoned(permit);
    }

    fn wizard_sync(&mut self) {
        if let Some(mut w) = self.wizard.take() {
            // A live source's version may be probed after the wizard opened.
            w.prefill(self);
            w.sync_classes(self);
            self.wizard = Some(w);
        }
    }

    /// Receives and applies every message already waiting; true if there was one.
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        while let Ok(m) = self.rx.try_recv() {
            self.apply(m);
            any = true;
        }
        any
    }

    /// Waits for one message (at most `timeout`) and applies it with any others waiting.
    pub fn wait(&mut self, timeout: Option<Duration>) -> bool {
        let first = match timeout {
            Some(t) => self.rx.recv_timeout(t).ok(),
            None => self.rx.recv().ok(),
        };
        match first {
            Some(m) => {
                self.apply(m);
                self.drain();
                true
            }
            None => false,
        }
    }

    /// Applies messages until `done` holds; false if `limit` passed first (for tests
    /// and scripted use: this blocks).
    pub fn settle(&mut self, limit: Duration, done: impl Fn(&App) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait(Some(left.min(Duration::from_millis(200))));
            self.tick();
        }
        true
    }

    /// Samples the rates of running jobs (called at the frame rate while jobs run).
    pub fn tick(&mut self) {
        for j in self.jobs.iter_mut().filter(|j| j.end.is_none()) {
            let s = j.progress.data.snapshot();
            j.rate = j.meter.update(&s);
        }
    }

    /// A terminal event.
    pub fn input(&mut self, ev: crossterm::event::Event) {
        match ev {
            crossterm::event::Event::Key(k) if k.kind == crossterm::event::KeyEventKind::Press => {
                self.key(k)
            }
            crossterm::event::Event::Mouse(m) => self.mouse(m),
            crossterm::event::Event::Resize(..) => self.dirty = true,
            _ => {}
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        self.dirty = true;
        if let MouseEventKind::Down(MouseButton::Left) = m.kind {
            self.click(Position::new(m.column, m.row));
            return;
        }
        if self.wizard.is_some() || self.prompt.is_some() {
            return;
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.move_selection(3),
            MouseEventKind::ScrollUp => self.move_selection(-3),
            _ => return,
        }
        self.refresh_yaml();
    }

    /// A left click at `at`: on a wizard item selects it; on a breadcrumb goes back to
    /// that level; on a row selects it, or opens it (as enter does) when it already is.
    fn click(&mut self, at: Position) {
        if matches!(self.mode, Mode::ConfirmQuit | Mode::Help | Mode::Command(_))
            || self.prompt.is_some()
        {
            return;
        }
        if let Some(w) = &mut self.wizard {
            let hit = self
                .hits
                .borrow()
                .wizard
                .iter()
                .find(|(r, _)| r.contains(at))
                .map(|(_, i)| *i);
            if let Some(i) = hit {
                w.select(i);
            }
            return;
        }
        let crumb = self
            .hits
            .borrow()
            .crumbs
            .iter()
            .find(|(r, _)| r.contains(at))
            .map(|(_, i)| *i);
        if let Some(level) = crumb {
            if level + 1 < self.stack.len() {
                self.stack.truncate(level + 1);
                self.show_yaml = false;
                self.yaml = None;
                self.yaml_scroll = 0;
            }
            return;
        }
        let list = &self.screen().list;
        let area = list.area.get();
        if !area.contains(at) {
            return;
        }
        let index = list.offset.get() + usize::from(at.y - area.y);
        let Ok(rows) = self.rows(&self.screen().view) else {
            return;
        };
        let vis = App::visible(&rows, &list.filter);
        let selectable = vis
            .get(index)
            .and_then(|i| rows.get(*i))
            .is_some_and(|r| !r.group);
        if !selectable {
            return;
        }
        if index == list.selected {
            self.enter();
        } else {
            self.screen_mut().list.selected = index;
        }
        self.refresh_yaml();
    }

    /// One key press.
    pub fn key(&mut self, k: KeyEvent) {
        self.dirty = true;
        if self.wizard.is_some() {
            self.wizard_key(k);
            return;
        }
        if self.prompt.is_some() {
            self.prompt_key(k);
            return;
        }
        match self.mode.clone() {
            Mode::Filter => self.filter_key(k),
            Mode::Command(text) => self.command_key(k, text),
            Mode::ConfirmQuit => {
                if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    for j in self.jobs.iter().filter(|j| j.running()) {
                        j.progress.cancel();
                    }
                    self.quit = true;
                } else {
                    self.mode = Mode::Normal;
                    self.say(Tone::Normal, "still here: the jobs go on");
                }
            }
            Mode::Help => self.mode = Mode::Normal,
            Mode::Normal => {
                if let Some(a) = self.env.keymap.action(&k) {
                    self.action(a);
                }
            }
        }
        self.refresh_yaml();
    }

    fn filter_key(&mut self, k: KeyEvent) {
        match k.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.screen_mut().list.filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Backspace => {
                self.screen_mut().list.filter.pop();
            }
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.screen_mut().list.filter.push(c);
                self.screen_mut().list.selected = 0;
                self.select_first_selectable();
            }
            _ => {}
        }
    }

    fn command_key(&mut self, k: KeyEvent, mut text: String) {
        match k.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                self.command(text.trim());
            }
            KeyCode::Backspace => {
                if text.pop().is_none() {
                    self.mode = Mode::Normal;
                } else {
                    self.mode = Mode::Command(text);
                }
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.mode = Mode::Command(text);
            }
            _ => {}
        }
    }

    /// Runs a `:` command.
    pub fn command(&mut self, cmd: &str) {
        let (word, arg) = match cmd.split_once(char::is_whitespace) {
            Some((w, a)) => (w, Some(a.trim())),
            None => (cmd, None),
        };
        match (word, arg) {
            ("clusters" | "cl", _) => self.reset_to(vec![View::Clusters]),
            ("ns" | "namespaces", None) => match self.current_cluster().map(str::to_string) {
                Some(c) => self.reset_to(vec![View::Clusters, View::Namespaces { cluster: c }]),
                None => self.say(Tone::Warn, "no current cluster: pick one on :clusters or use :ctx NAME"),
            },
            ("ns" | "namespaces", Some(ns)) => match self.current_cluster().map(str::to_string) {
                Some(c) => self.reset_to(vec![
                    View::Clusters,
                    View::Namespaces { cluster: c.clone() },
                    View::Workloads { cluster: c, ns: ns.to_string() },
                ]),
                None => self.say(Tone::Warn, "no current cluster: pick one on :clusters or use :ctx NAME"),
            },
            ("ctx" | "context", Some(name)) => {
                let found = self
                    .clusters
                    .iter()
                    .find(|c| c.linked.name == name || c.linked.context == name)
                    .map(|c| c.linked.name.clone());
                match found {
                    Some(c) => self.reset_to(vec![View::Clusters, View::Namespaces { cluster: c }]),
                    None => self.say(
                        Tone::Error,
                        format!("no linked cluster is called {name:?}: see :clusters"),
                    ),
                }
            }
            ("ctx" | "context", None) => self.say(Tone::Warn, "name the context: :ctx NAME"),
            ("snapshots" | "snap" | "ss", _) => self.reset_to(vec![View::Snapshots]),
            ("jobs" | "j", _) => self.reset_to(vec![View::Jobs]),
            ("audit" | "a", _) => self.reset_to(vec![View::Audit]),
            ("help", _) => self.mode = Mode::Help,
            ("q" | "quit", _) => self.action(Command::Quit),
            ("", _) => {}
            (other, _) => self.say(
                Tone::Error,
                format!("unknown command :{other}: use :clusters, :ns [NAME], :ctx NAME, :snapshots, :jobs, :audit, :q"),
            ),
        }
    }

    /// Carries out an action of the keymap.
    pub fn action(&mut self, a: Command) {
        let view = self.screen().view.clone();
        match a {
            Command::Down => self.move_selection(1),
            Command::Up => self.move_selection(-1),
            Command::PageDown if self.show_yaml && self.yaml.is_some() => {
                self.yaml_scroll = self.yaml_scroll.saturating_add(10)
            }
            Command::PageUp if self.show_yaml && self.yaml.is_some() => {
                self.yaml_scroll = self.yaml_scroll.saturating_sub(10)
            }
            Command::PageDown => {
                let p = self.screen().list.page.get().max(1) as isize;
                self.move_selection(p)
            }
            Command::PageUp => {
                let p = self.screen().list.page.get().max(1) as isize;
                self.move_selection(-p)
            }
            Command::Top => {
                self.screen_mut().list.selected = 0;
                self.select_first_selectable();
            }
            Command::Bottom => self.move_selection(isize::MAX / 2),
            Command::Enter => self.enter(),
            Command::Back => self.back(),
            Command::Filter => self.mode = Mode::Filter,
            Command::CommandLine => self.mode = Mode::Command(String::new()),
            Command::Mark => {
                if let Some(r) = self.selected_row() {
                    let marks = &mut self.screen_mut().list.marks;
                    if !marks.remove(&r.key) {
                        marks.insert(r.key);
                    }
                    self.move_selection(1);
                }
            }
            Command::Help => self.mode = Mode::Help,
            Command::Quit => {
                if self.running_jobs() > 0 {
                    self.mode = Mode::ConfirmQuit;
                } else {
                    self.quit = true;
                }
            }
            Command::Backup => self.backup(&view),
            Command::Migrate => self.open_live_wizard(&view, Purpose::Migrate),
            Command::Clone => self.open_live_wizard(&view, Purpose::Clone),
            Command::Restore => self.open_restore_wizard(&view),
            Command::Download => self.open_restore_prompt(&view),
            Command::Cancel => {
                if view == View::Jobs {
                    match self
                        .selected_row()
                        .and_then(|r| r.key.parse::<usize>().ok())
                    {
                        Some(id) => {
                            if let Some(j) = self.jobs.iter().find(|j| j.id == id && j.running()) {
                                j.progress.cancel();
                                let t =
                                    format!("cancelling {}: it stops at its next check", j.title);
                                self.say(Tone::Warn, t);
                            } else {
                                self.say(Tone::Normal, "that job has ended");
                            }
                        }
                        None => self.say(Tone::Normal, "no job selected"),
                    }
                } else {
                    self.say(Tone::Normal, "x cancels a job on :jobs");
                }
            }
            Command::Pause => {
                if view != View::Jobs {
                    self.say(Tone::Normal, "p pauses or resumes a job on :jobs");
                    return;
                }
                let id = self
                    .selected_row()
                    .and_then(|r| r.key.parse::<usize>().ok());
                match id.and_then(|id| self.jobs.iter().find(|j| j.id == id)) {
                    None => self.say(Tone::Normal, "no job selected"),
                    Some(j) if !j.running() => self.say(Tone::Normal, "that job has ended"),
                    Some(j) if j.progress.is_paused() => {
                        j.progress.resume();
                        let t = format!("{} resumed", j.title);
                        self.say(Tone::Ok, t);
                    }
                    Some(j) => {
                        j.progress.pause();
                        let t = format!("{} paused: p resumes it", j.title);
                        self.say(Tone::Warn, t);
                    }
                }
            }
            Command::Yaml => {
                self.show_yaml = !self.show_yaml;
                self.yaml_scroll = 0;
            }
            Command::Switch => match view {
                View::Workloads { cluster, ns } => {
                    let n = self.stack.len() - 1;
                    self.stack[n] = Screen {
                        view: View::Pvcs { cluster, ns },
                        list: ListState::default(),
                    };
                    self.select_first_selectable();
                }
                View::Pvcs { cluster, ns } => {
                    let n = self.stack.len() - 1;
                    self.stack[n] = Screen {
                        view: View::Workloads { cluster, ns },
                        list: ListState::default(),
                    };
                    self.select_first_selectable();
                }
                _ => {}
            },
            Command::Refresh => self.load_current(true),
            Command::Jobs => self.reset_to(vec![View::Jobs]),
            Command::Snapshots => self.reset_to(vec![View::Snapshots]),
            Command::Export => self.export(&view),
        }
    }

    fn enter(&mut self) {
        let Some(row) = self.selected_row() else {
            return;
        };
        match self.screen().view.clone() {
            View::Clusters => match self
                .env
                .linked
                .broken
                .iter()
                .find(|b| screens::clusters::broken_key(&b.origin) == row.key)
            {
                Some(b) => {
                    let m = format!("{}: {}", b.origin.label(), b.error);
                    self.say(Tone::Error, m);
                }
                None if row.key.starts_with(screens::clusters::LISTING) => self.say(
                    Tone::Normal,
                    "still listing this account's clusters: they appear here when it answers",
                ),
                None => self.push(View::Namespaces { cluster: row.key }),
            },
            View::Namespaces { cluster } => self.push(View::Workloads {
                cluster,
                ns: row.key,
            }),
            View::Snapshot { id } => match row.key.strip_prefix("vol:") {
                Some(claim) => {
                    let base = format!("{VOLUMES_PREFIX}{claim}");
                    self.push(View::Files {
                        id,
                        path: base.clone(),
                        base,
                    })
                }
                None if row.key == "folder" => self.push(View::Files {
                    id,
                    base: String::new(),
                    path: String::new(),
                }),
                None => {
                    self.show_yaml = !self.show_yaml;
                    self.yaml_scroll = 0;
                }
            },
            View::Workloads { .. } | View::Pvcs { .. } => {
                self.show_yaml = !self.show_yaml;
                self.yaml_scroll = 0;
            }
            View::Snapshots => {
                // A folder backup has no objects: its files are what there is to see.
                let folder = self
                    .find_snapshot(&row.key)
                    .is_some_and(|s| CaptureMeta::of(s).is_none());
                self.push(if folder {
                    View::Files {
                        id: row.key,
                        base: String::new(),
                        path: String::new(),
                    }
                } else {
                    View::Snapshot { id: row.key }
                })
            }
            View::Files { id, base, path } => match self.selected_node() {
                Some(n) if n.kind == NodeKind::Dir => match std::str::from_utf8(&n.name.0) {
                    Ok(name) => {
                        let path = if path.is_empty() {
                            name.to_string()
                        } else {
                            format!("{path}/{name}")
                        };
                        self.push(View::Files { id, base, path })
                    }
                    Err(_) => self.say(
                        Tone::Warn,
                        "this folder's name is not UTF-8: list it with `ferry ls`",
                    ),
                },
                Some(_) => {
                    let keys = self.env.keymap.keys_for(Command::Download).join("/");
                    self.say(
                        Tone::Normal,
                        format!("{keys} restores it to a folder of this machine"),
                    )
                }
                None => {}
            },
            View::Jobs | View::Audit => {}
        }
    }

    /// Writes the audit trail as JSON lines (what `ferry audit --json` prints) into the
    /// reports folder, on a task.
    fn export(&mut self, view: &View) {
        if *view != View::Audit {
            self.say(Tone::Normal, "e exports the audit trail on :audit");
            return;
        }
        let Some(Load::Ready(d)) = &self.audit else {
            self.say(Tone::Normal, "the audit trail is still loading");
            return;
        };
        let path = self.env.reports.join(format!(
            "audit-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        self.tasks.export_audit(d.records.clone(), path);
    }

    fn back(&mut self) {
        if !self.screen().list.filter.is_empty() {
            self.screen_mut().list.filter.clear();
            return;
        }
        if self.show_yaml {
            self.show_yaml = false;
            return;
        }
        if self.stack.len() > 1 {
            self.stack.pop();
            self.yaml = None;
        } else if self.screen().view != View::Clusters {
            self.reset_to(vec![View::Clusters]);
        }
    }

    /// Recomputes the YAML of the selected object when the selection moved.
    pub fn refresh_yaml(&mut self) {
        if !self.show_yaml {
            return;
        }
        let Some(row) = self.selected_row() else {
            self.yaml = None;
            return;
        };
        if self.yaml.as_ref().is_some_and(|(k, _)| *k == row.key) {
            return;
        }
        let obj: Option<&Value> = match &self.screen().view {
            View::Workloads { cluster, ns } | View::Pvcs { cluster, ns } => self
                .cluster(cluster)
                .and_then(|c| c.ns.get(ns))
                .and_then(Load::ready)
                .and_then(|d| d.index.get(&row.key).and_then(|i| d.objects.get(*i))),
            View::Snapshot { id } => self
                .snapshot_objects
                .get(id)
                .and_then(Load::ready)
                .and_then(|objs| {
                    objs.iter()
                        .find(|o| screens::workloads::object_key(o) == row.key)
                }),
            _ => None,
        };
        let text = match obj {
            Some(o) => serde_saphyr::to_string(o)
                .unwrap_or_else(|e| format!("cannot show this object: {e}")),
            None => "no object for this row (volumes show their details in the list)".into(),
        };
        self.yaml = Some((row.key, text));
        self.yaml_scroll = 0;
    }

    /// Adds a job to the jobs screen; the caller runs it and reports its end with
    /// `Msg::JobDone`.
    pub fn register_job(&mut self, title: impl Into<String>) -> (usize, Arc<JobProgress>) {
        let id = self.jobs.len() + 1;
        let progress = JobProgress::new();
        progress
            .data
            .set_phase(ferry_repo::progress::Phase::Transferring);
        if let Some(status) = self
            .env
            .repo
            .as_ref()
            .ok()
            .and_then(|r| r.backend().status())
        {
            progress.data.watch_store(status);
        }
        self.jobs.push(Job {
            id,
            title: title.into(),
            progress: progress.clone(),
            started: Instant::now(),
            end: None,
            rate: 0.0,
            meter: RateMeter::default(),
        });
        (id, progress)
    }

    /// The capture scope for the marked rows of a namespaces or workloads screen.
    fn live_scope(&self, view: &View) -> Option<(String, Scope)> {
        let targets = self.targets();
        if targets.is_empty() {
            return None;
        }
        match view {
            View::Namespaces { cluster } => Some((cluster.clone(), Scope::Namespaces(targets))),
            View::Workloads { cluster, ns } => Some((
                cluster.clone(),
                Scope::Workloads {
                    namespace: ns.clone(),
                    workloads: targets.iter().map(|k| k.to_lowercase()).collect(),
                },
            )),
            _ => None,
        }
    }

    fn backup(&mut self, view: &View) {
        let Some((cluster, scope)) = self.live_scope(view) else {
            self.say(
                Tone::Normal,
                "b backs up namespaces or workloads: select or mark some first",
            );
            return;
        };
        let repo = match &self.env.repo {
            Ok(r) => r.clone(),
            Err(e) => {
                let e = e.clone();
                self.say(Tone::Error, e);
                return;
            }
        };
        let Some(linked) = self.cluster(&cluster).map(|c| c.linked.clone()) else {
            return;
        };
        // Reading volume data starts mover pods: not in read-only mode.
        let include_volumes = self.read_only_reason(&cluster).is_none();
        let what = scope.namespaces().join(",");
        let (id, progress) = self.register_job(format!("backup {cluster}/{what}"));
        let opts = ferry_k8s::capture::CaptureOptions {
            cluster: cluster.clone(),
            scope,
            include_volumes,
            use_snapshots: true,
            mover: self.env.mover.clone(),
            tags: vec!["console".into()],
            parent: None,
            no_parent: false,
            envelope: None,
        };
        self.tasks.backup(id, linked, repo, opts, progress);
        self.screen_mut().list.marks.clear();
        self.say(
            Tone::Ok,
            if include_volumes {
                format!("backup of {what} started: see :jobs")
            } else {
                format!("backup of {what} started without volume data (read-only): see :jobs")
            },
        );
    }

    fn open_live_wizard(&mut self, view: &View, purpose: Purpose) {
        let Some((cluster, scope)) = self.live_scope(view) else {
            self.say(
                Tone::Normal,
                "m and c work on namespaces or workloads: select or mark some first",
            );
            return;
        };
        self.wizard_gen += 1;
        let source = Source::Live {
            cluster: cluster.clone(),
            scope,
        };
        let w = Wizard::new(self, self.wizard_gen, purpose, source);
        if let Some(linked) = self.cluster(&cluster).map(|c| c.linked.clone()) {
            self.check_targets(&w, Ok(linked.clone()));
            if !w.new_clusters.is_empty() && linked.cloud().is_some() {
                // The forms of new clusters, pre-filled from the source's own cloud.
                self.tasks.wizard_envelope(self.wizard_gen, linked.clone());
            }
            self.tasks
                .live_classes(self.wizard_gen, linked, w.source_namespaces());
        }
        self.wizard = Some(w);
    }

    fn open_restore_wizard(&mut self, view: &View) {
        let id = match view {
            View::Snapshots => self.selected_row().map(|r| r.key),
            View::Snapshot { id } | View::Files { id, .. } => Some(id.clone()),
            _ => None,
        };
        let Some(snap) = id.and_then(|id| self.find_snapshot(&id).cloned()) else {
            self.say(
                Tone::Normal,
                "r restores a snapshot: select one on :snapshots",
            );
            return;
        };
        let Some(meta) = CaptureMeta::of(&snap) else {
            self.say(
                Tone::Warn,
                format!(
                    "snapshot {} is a folder backup: restore it with `ferry restore {} -t DIR`",
                    snap.id.short(),
                    snap.id.short()
                ),
            );
            return;
        };
        self.wizard_gen += 1;
        let w = Wizard::new(
            self,
            self.wizard_gen,
            Purpose::Restore,
            Source::Snapshot {
                snap: Box::new(snap),
                meta: Box::new(meta),
            },
        );
        let origin = self.origin_place(w.source_cluster());
        self.check_targets(&w, Err(origin));
        self.wizard = Some(w);
    }

    /// Asks, in the background, which of the wizard's targets the policy denies.
    fn check_targets(&self, w: &Wizard, source: Result<LinkedCluster, ferry_policy::gate::Place>) {
        let Ok(repo) = &self.env.repo else { return };
        let targets: Vec<LinkedCluster> = w
            .targets
            .iter()
            .filter_map(|t| self.cluster(&t.name).map(|c| c.linked.clone()))
            .collect();
        let pairs =
            w.ns.iter()
                .map(|(from, to)| (Some(from.clone()), Some(to.clone())))
                .collect();
        self.tasks.target_verdicts(
            w.generation,
            repo.clone(),
            w.purpose.action(),
            source,
            targets,
            pairs,
        );
    }

    fn wizard_key(&mut self, k: KeyEvent) {
        let Some(mut w) = self.wizard.take() else {
            return;
        };
        // A live capture's plan the key drops unconfirmed still gets its audit record.
        let captured = match &w.plan {
            Some(Load::Ready(p)) if p.captured => Some(p.permit.clone()),
            _ => None,
        };
        let outcome = w.key(self, k);
        if let Some(permit) = captured
            && (matches!(outcome, crate::wizard_state::Outcome::Close)
                || !matches!(w.plan, Some(Load::Ready(_))))
        {
            self.abandon(permit);
        }
        match outcome {
            crate::wizard_state::Outcome::Stay => self.wizard = Some(w),
            crate::wizard_state::Outcome::Close => {
                self.say(Tone::Normal, "wizard closed: nothing was changed")
            }
            crate::wizard_state::Outcome::BuildPlan => {
                self.start_plan(&mut w);
                self.wizard = Some(w);
            }
            crate::wizard_state::Outcome::Confirm => self.confirm(w),
            crate::wizard_state::Outcome::Refused => {
                self.record_refusal(&w);
                self.wizard = Some(w);
            }
        }
    }

    /// Records, in the background, the user's attempt to go on with a target the policy
    /// denies: the same check the plan step makes, which appends the denial.
    fn record_refusal(&self, w: &Wizard) {
        let Ok(repo) = &self.env.repo else { return };
        let Some(target) = self.cluster(w.target_name()).map(|c| c.linked.clone()) else {
            return;
        };
        let source = match &w.source {
            Source::Live { cluster, .. } => match self.cluster(cluster) {
                Some(c) => Ok(c.linked.clone()),
                None => Err(ferry_policy::gate::Place::named(cluster)),
            },
            Source::Snapshot { meta, .. } => Err(self.origin_place(&meta.cluster)),
        };
        let pairs =
            w.ns.iter()
                .map(|(from, to)| (Some(from.clone()), Some(to.clone())))
                .collect();
        self.tasks
            .refused(repo.clone(), w.purpose.action(), source, target, pairs);
    }

    /// Where a capture was taken, for the policy: its cluster as linked here, or its
    /// name alone.
    fn origin_place(&self, cluster: &str) -> ferry_policy::gate::Place {
        match self.cluster(cluster) {
            Some(c) => ferry_policy::gate::Place::new(&c.linked, None),
            None => ferry_policy::gate::Place::named(cluster),
        }
    }

    fn start_plan(&mut self, w: &mut Wizard) {
        let repo = match &self.env.repo {
            Ok(r) => r.clone(),
            Err(e) => {
                w.plan = Some(Load::Failed(e.clone()));
                return;
            }
        };
        let Some(target) = self.cluster(w.target_name()).map(|c| c.linked.clone()) else {
            w.plan = Some(Load::Failed(
                "the target cluster is gone: pick another".into(),
            ));
            return;
        };
        let ropts = w.restore_options(&self.env.mover);
        w.plan = Some(Load::Loading);
        match &w.source {
            Source::Snapshot { snap, meta } => self.tasks.plan_snapshot(
                w.generation,
                repo,
                target,
                tasks::SnapshotRestore {
                    snapshot: (**snap).clone(),
                    meta: (**meta).clone(),
                    options: ropts,
                    origin: self.origin_place(&meta.cluster),
                },
            ),
            Source::Live { cluster, scope } => {
                let Some(source) = self.cluster(cluster).map(|c| c.linked.clone()) else {
                    w.plan = Some(Load::Failed("the source cluster is gone".into()));
                    return;
                };
                let copts = self.live_capture(w, cluster, scope);
                let (id, progress) =
                    self.register_job(format!("capture {cluster} for {}", w.purpose.word()));
                w.capture_job = Some(id);
                self.tasks.plan_live(
                    w.generation,
                    (id, progress),
                    repo,
                    target,
                    tasks::LiveMove {
                        source,
                        capture: copts,
                        options: ropts,
                        action: w.purpose.action(),
                    },
                );
            }
        }
    }

    /// How a wizard's live source is captured (tagged with the console and the purpose;
    /// the envelope is read by the task).
    fn live_capture(
        &self,
        w: &Wizard,
        cluster: &str,
        scope: &ferry_k8s::capture::Scope,
    ) -> ferry_k8s::capture::CaptureOptions {
        ferry_k8s::capture::CaptureOptions {
            cluster: cluster.to_string(),
            scope: scope.clone(),
            include_volumes: w.include_volumes,
            use_snapshots: true,
            mover: self.env.mover.clone(),
            tags: vec!["console".into(), w.purpose.word().into()],
            parent: None,
            no_parent: false,
            envelope: None,
        }
    }

    fn confirm(&mut self, w: Wizard) {
        if w.creating().is_some() {
            self.create_and_restore(w);
            return;
        }
        let Some(Load::Ready(prepared)) = w.plan.clone() else {
            return;
        };
        if let Some(reason) = self.read_only_reason(w.target_name()) {
            self.say(Tone::Warn, format!("nothing was changed: {reason}"));
            self.wizard = Some(w);
            return;
        }
        let Some(target) = self.cluster(w.target_name()).map(|c| c.linked.clone()) else {
            return;
        };
        let (id, progress) = self.register_job(format!(
            "{} {} → {}",
            w.purpose.word(),
            w.source_label(),
            target.name
        ));
        self.tasks.apply(
            id,
            target,
            prepared,
            self.env.mover.clone(),
            self.env.reports.clone(),
            progress,
        );
        self.say(
            Tone::Ok,
            format!("{} started: follow it on :jobs", w.purpose.word()),
        );
    }
}

impl App {
    /// The snapshot entry of the selected row of a files screen.
    pub fn selected_node(&self) -> Option<&Node> {
        let View::Files { id, path, .. } = &self.screen().view else {
            return None;
        };
        let row = self.selected_row()?;
        let d = self.dirs.get(&(id.clone(), path.clone()))?.ready()?;
        d.nodes
            .iter()
            .find(|n| screens::files::node_key(n) == row.key)
    }

    /// What the selected row of a snapshot or files screen would restore: (path in the
    /// snapshot, name, what it is in words).
    fn restorable(&self, view: &View) -> Result<(String, String, &'static str), String> {
        let none = "select a file, a folder or a volume to restore".to_string();
        match view {
            View::Files { path, .. } => {
                let n = self.selected_node().ok_or(none)?;
                let name = std::str::from_utf8(&n.name.0)
                    .map_err(|_| {
                        "this name is not UTF-8: restore it with `ferry restore SNAP --path …`"
                            .to_string()
                    })?
                    .to_string();
                let full = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                let what = match n.kind {
                    NodeKind::Dir => "folder",
                    NodeKind::File => "file",
                    NodeKind::Symlink => "link",
                    _ => "special file",
                };
                Ok((full, name, what))
            }
            View::Snapshot { .. } => {
                let row = self.selected_row().ok_or(none.clone())?;
                let claim = row.key.strip_prefix("vol:").ok_or(none)?;
                let name = claim.rsplit('/').next().unwrap_or(claim).to_string();
                Ok((format!("{VOLUMES_PREFIX}{claim}"), name, "volume"))
            }
            _ => Err("d restores files of a snapshot: open one on :snapshots".into()),
        }
    }

    fn open_restore_prompt(&mut self, view: &View) {
        let id = match view {
            View::Snapshot { id } | View::Files { id, .. } => id.clone(),
            _ => String::new(),
        };
        let what = self.restorable(view);
        let snap = self.find_snapshot(&id).cloned();
        match (what, snap) {
            (Ok((path, name, what)), Some(snap)) => {
                self.prompt_gen += 1;
                self.prompt = Some(RestorePrompt {
                    generation: self.prompt_gen,
                    snapshot: Box::new(snap),
                    path,
                    name,
                    is_dir: matches!(what, "folder" | "volume"),
                    what,
                    dest: self.env.downloads.display().to_string(),
                    error: None,
                    checking: false,
                });
            }
            (Err(e), _) => self.say(Tone::Normal, e),
            (Ok(_), None) => self.say(Tone::Warn, "the snapshot is gone: refresh :snapshots"),
        }
    }

    fn prompt_key(&mut self, k: KeyEvent) {
        let Some(p) = &mut self.prompt else { return };
        match k.code {
            KeyCode::Esc => {
                self.prompt = None;
                self.say(Tone::Normal, "nothing was restored");
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.prompt = None;
                self.say(Tone::Normal, "nothing was restored");
            }
            KeyCode::Enter if !p.checking => {
                if p.dest.trim().is_empty() {
                    p.error = Some("type the folder to restore into".into());
                    return;
                }
                // Checked on a blocking thread (the disk may be slow): the answer comes
                // back as `Msg::RestoreChecked`.
                p.checking = true;
                p.error = None;
                self.tasks.check_restore_target(
                    p.generation,
                    p.dest.clone(),
                    p.name.clone(),
                    p.path.clone(),
                    p.is_dir,
                );
            }
            KeyCode::Backspace => {
                p.dest.pop();
                p.error = None;
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                p.dest.push(c);
                p.error = None;
            }
            _ => {}
        }
    }

    /// The answer to a prompt's check: start the job, or say what is wrong in place.
    fn restore_checked(
        &mut self,
        generation: u64,
        r: Result<ferry_repo::restore::RestoreOptions, String>,
    ) {
        let Some(p) = self.prompt.as_mut().filter(|p| p.generation == generation) else {
            return;
        };
        p.checking = false;
        let opts = match r {
            Ok(o) => o,
            Err(e) => {
                p.error = Some(e);
                return;
            }
        };
        let repo = match &self.env.repo {
            Ok(r) => r.clone(),
            Err(e) => {
                p.error = Some(e.clone());
                return;
            }
        };
        let Some(p) = self.prompt.take() else { return };
        let (id, progress) = self.register_job(format!(
            "restore {} from {} → {}",
            p.name,
            p.snapshot.id.short(),
            opts.target.display()
        ));
        progress.set_phase("restoring files");
        self.tasks
            .restore_files(id, repo, *p.snapshot, opts, progress);
        self.say(
            Tone::Ok,
            format!("restoring {} to this machine: follow it on :jobs", p.name),
        );
    }
}

impl App {
    /// Creates the wizard's new cluster and restores its source into it (a snapshot, or
    /// a live selection captured once the cluster exists), as one job.
    fn create_and_restore(&mut self, mut w: Wizard) {
        let Some(new) = w.creating() else {
            return;
        };
        let repo = match &self.env.repo {
            Ok(r) => r.clone(),
            Err(e) => {
                let e = e.clone();
                self.say(Tone::Error, e);
                return;
            }
        };
        let create = new.request();
        let name = new.name().to_string();
        let payload = match &w.source {
            Source::Snapshot { snap, meta } => Ok(tasks::Payload::Snapshot {
                snapshot: snap.clone(),
                meta: meta.clone(),
                origin: Box::new(self.origin_place(&meta.cluster)),
            }),
            Source::Live { cluster, scope } => match self.cluster(cluster) {
                Some(c) => Ok(tasks::Payload::Live {
                    source: Box::new(c.linked.clone()),
                    capture: Box::new(self.live_capture(&w, cluster, scope)),
                    action: w.purpose.action(),
                }),
                None => Err(format!(
                    "{cluster} is no longer linked: close the wizard and link it again"
                )),
            },
        };
        let (create, payload) = match (create, payload) {
            (Ok(c), Ok(p)) => (c, p),
            (Err(e), _) | (_, Err(e)) => {
                w.error = Some(e);
                self.wizard = Some(w);
                return;
            }
        };
        let (id, progress) = self.register_job(format!(
            "create {name} + {} {}",
            w.purpose.word(),
            w.source_label()
        ));
        self.tasks.create_and_restore(
            id,
            create,
            repo,
            tasks::Restore {
                payload,
                options: w.restore_options(&self.env.mover),
                mover: self.env.mover.clone(),
                reports: self.env.reports.clone(),
            },
            progress,
        );
        self.say(
            Tone::Ok,
            format!(
                "creating {name}, then {} {} into it: follow it on :jobs",
                w.purpose.doing(),
                w.source_label()
            ),
        );
    }
}

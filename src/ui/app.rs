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
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::layout::Rect;
use serde_json::Value;

use crate::error::TaskError;
pub use crate::job::{Flow, Job, JobEnd};
use crate::keymap::Keymap;
pub use crate::live::{AGES_EVERY, LIVE_EVERY, PROBE_EVERY};
use crate::page;
use crate::screens;
use crate::tasks;
use crate::theme::Theme;
use crate::wizard_state::Wizard;
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{BrokenSource, Linked, LinkedCluster, Origin};
use ferry_providers::probe::{Facts, ProbeError};
use ferry_repo::Repository;
use ferry_repo::snapshot::Snapshot;
use ferry_repo::tree::Node;

/// What the console was started with.
pub struct Env {
    pub linked: Linked,
    /// The repository, or why it could not be opened.
    pub repo: Result<Repository, TaskError>,
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

pub use crate::rows::{Load, Row, Tone, fuzzy};

/// A screen of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Clusters,
    Namespaces {
        cluster: String,
    },
    /// The top-level workloads of a namespace, or those of one `kind` (`:deploy`).
    Workloads {
        cluster: String,
        ns: String,
        kind: Option<&'static str>,
    },
    /// The pods of a namespace (`:po`).
    Pods {
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
            View::Workloads { ns, kind: None, .. } => format!("{ns} (workloads)"),
            View::Workloads {
                ns, kind: Some(k), ..
            } => format!("{ns} ({}s)", k.to_lowercase()),
            View::Pods { ns, .. } => format!("{ns} (pods)"),
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
            | View::Pods { cluster, .. }
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
    /// Lines of the whole-cluster backup's pick: (area, item index).
    pub pick: Vec<(Rect, usize)>,
}

/// The index of the first area of `areas` that holds `at`.
pub(crate) fn hit(areas: &[(Rect, usize)], at: ratatui::layout::Position) -> Option<usize> {
    areas.iter().find(|(r, _)| r.contains(at)).map(|(_, i)| *i)
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
    /// A question before an action: `y` carries it out, any other key does not.
    Confirm(Ask),
    /// The namespaces a whole-cluster backup takes, ticked by the user.
    Pick(crate::whole::Pick),
    Help,
}

/// A question the console asks before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The popup's title (`cancel?`).
    pub title: &'static str,
    /// What will be done, naming what it acts on.
    pub question: String,
    /// What `y` does.
    pub then: Then,
    /// What any other key does (nothing when `None`).
    pub otherwise: Option<Then>,
}

/// What an [`Ask`] carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Cancel the job with this ID.
    Cancel(usize),
    /// Back up the marked (or selected) rows of this view.
    Backup(View),
    /// Carry out the open wizard's plan.
    CarryOutPlan,
    /// Leave the open wizard's plan, whose live capture runs or has saved a snapshot:
    /// back a step (or close the wizard), and `remove` the capture (cancel it, or
    /// remove its snapshot) or keep it.
    LeaveCapture { back: bool, remove: bool },
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
    pub pod_rows: Vec<Row>,
    pub pvc_rows: Vec<Row>,
    /// Row key to the object's index in `objects`.
    pub index: HashMap<String, usize>,
}

/// What the console knows about one linked cluster.
#[derive(Debug, Clone)]
pub struct ClusterState {
    pub linked: LinkedCluster,
    pub facts: Option<Result<Facts, ProbeError>>,
    pub namespaces: Option<Load<Vec<Row>>>,
    pub ns: HashMap<String, Load<NsData>>,
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
    Probe(String, Result<Facts, ProbeError>),
    Namespaces(String, Result<Vec<NsSummary>, TaskError>),
    /// A namespace's objects and their rows (worked out in the background).
    NsObjects(String, String, Result<NsData, TaskError>),
    Snapshots(Result<Vec<Snapshot>, TaskError>),
    SnapshotObjects(String, Result<Vec<Value>, TaskError>),
    /// The entries of a folder of a snapshot: (snapshot ID, path, entries).
    SnapshotDir(String, String, Result<Vec<Node>, TaskError>),
    /// The checked destination of a restore prompt (prompt generation): the engine's
    /// options, or what is wrong with the folder.
    RestoreChecked(u64, Result<ferry_repo::restore::RestoreOptions, TaskError>),
    /// Storage classes used by a wizard's live source (wizard generation).
    WizardClasses(u64, Result<Vec<String>, TaskError>),
    /// The cloud envelope of a wizard's live source (wizard generation): None for a
    /// cluster of no cloud, or why it could not be read.
    WizardEnvelope(u64, Result<Option<Value>, TaskError>),
    /// Targets of a wizard and why the policy denies each (None: allowed).
    WizardVerdicts(u64, Vec<(String, Option<String>)>),
    /// A wizard's plan (wizard generation).
    Plan(u64, Result<Box<tasks::Prepared>, TaskError>),
    JobDone(usize, JobEnd),
    /// The audit trail: records (oldest first) and warnings.
    Audit(Result<(Vec<ferry_policy::audit::AuditRecord>, Vec<String>), TaskError>),
    /// A line for the status bar from background work.
    Status(Tone, String),
    /// An audit record written in the background (an abandoned or discarded plan) is
    /// on disk, or failed to be (logged).
    Recorded,
    /// A cluster's namespaces, read for a whole-cluster job from the clusters screen.
    WholeCluster(
        String,
        crate::whole::Whole,
        Result<crate::whole::Listed, TaskError>,
    ),
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
    pub(crate) env: Env,
    pub(crate) clusters: Vec<ClusterState>,
    pub(crate) cluster_rows: Vec<Row>,
    pub(crate) stack: Vec<Screen>,
    pub(crate) mode: Mode,
    pub(crate) wizard: Option<Wizard>,
    pub(crate) snapshots: Option<Load<SnapshotsData>>,
    pub(crate) audit: Option<Load<AuditData>>,
    pub(crate) snapshot_objects: HashMap<String, Load<Vec<Value>>>,
    /// Folders of snapshots, loaded as they are opened: (snapshot ID, path).
    pub(crate) dirs: HashMap<(String, String), Load<DirData>>,
    /// The restore-to-this-machine prompt, when open.
    pub(crate) prompt: Option<RestorePrompt>,
    pub(crate) prompt_gen: u64,
    pub(crate) jobs: Vec<Job>,
    pub(crate) show_yaml: bool,
    /// The selected object's YAML: (row key, text).
    pub(crate) yaml: Option<(String, String)>,
    pub(crate) yaml_scroll: u16,
    /// A wizard put aside at its plan step (`J`, `:` or `S` there) while its capture
    /// runs or its plan waits: enter on the capture's job brings it back.
    pub(crate) parked: Option<Wizard>,
    /// How each kind of screen is sorted (by its page's name), once the user chose.
    pub(crate) sorts: HashMap<&'static str, crate::sort::Sort>,
    /// The full-screen YAML of an object, when open.
    pub(crate) viewer: Option<crate::yaml::YamlView>,
    /// One line for the user: what just happened or why a key did nothing.
    pub(crate) status: Option<(Tone, String)>,
    pub(crate) quit: bool,
    /// The wizard generation counter (results of an older wizard are dropped).
    pub(crate) wizard_gen: u64,
    /// The cloud origins still being listed (their clusters join when they answer).
    pub(crate) listing: Vec<Origin>,
    /// Starts background work that answers on `rx`.
    pub(crate) tasks: tasks::Tasks,
    rx: mpsc::Receiver<Msg>,
    /// Something changed since the last frame.
    pub(crate) dirty: bool,
    /// What the shown list follows (watches of its cluster), stopped when dropped.
    pub(crate) follow: Option<crate::follow::Follow>,
    /// When ages were last drawn again by themselves ([`App::poll`]).
    pub(crate) aged: Instant,
    /// When the clusters were last probed again by themselves.
    pub(crate) probed: Instant,
    /// Probes of clusters that answered before, still waiting for their answer.
    pub(crate) in_flight: crate::live::InFlight,
    /// Audit records being written in the background ([`Msg::Recorded`] when done).
    pub(crate) recording: usize,
    /// Clickable areas of the last frame.
    pub(crate) hits: RefCell<Hits>,
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
            viewer: None,
            sorts: HashMap::new(),
            parked: None,
            status: None,
            quit: false,
            wizard_gen: 0,
            listing: Vec::new(),
            tasks: tasks::Tasks::new(env_rt, tx),
            rx,
            dirty: true,
            follow: None,
            aged: Instant::now(),
            probed: Instant::now(),
            in_flight: Default::default(),
            recording: 0,
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

    /// A sender for messages into this app (the input thread uses it).
    pub fn sender(&self) -> mpsc::Sender<Msg> {
        self.tasks.sender()
    }

    pub fn screen(&self) -> &Screen {
        // The stack is never empty: `back` keeps the root.
        &self.stack[self.stack.len() - 1]
    }

    pub(crate) fn screen_mut(&mut self) -> &mut Screen {
        let n = self.stack.len() - 1;
        &mut self.stack[n]
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterState> {
        self.clusters.iter().find(|c| c.linked.name == name)
    }

    pub(crate) fn cluster_mut(&mut self, name: &str) -> Option<&mut ClusterState> {
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
    pub fn rows(&self, view: &View) -> Load<Cow<'_, [Row]>> {
        let page = page::of(view);
        match (page.rows(self, view), self.sorts.get(page.name())) {
            (Load::Ready(rows), Some(sort)) => {
                Load::Ready(Cow::Owned(crate::sort::sorted(&rows, *sort)))
            }
            (rows, _) => rows,
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
        let rows = self.rows(&s.view).into_ready()?;
        let vis = App::visible(&rows, &s.list.filter);
        vis.get(s.list.selected)
            .and_then(|i| rows.get(*i))
            .filter(|r| !r.group)
            .cloned()
    }

    /// Keys of the marked rows, or the selected row's when none is marked.
    pub(crate) fn targets(&self) -> Vec<String> {
        let s = self.screen();
        if !s.list.marks.is_empty() {
            return s.list.marks.iter().cloned().collect();
        }
        self.selected_row().map(|r| vec![r.key]).unwrap_or_default()
    }

    pub(crate) fn select_first_selectable(&mut self) {
        let Load::Ready(rows) = self.rows(&self.screen().view.clone()) else {
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

    pub(crate) fn move_selection(&mut self, delta: isize) {
        let Load::Ready(rows) = self.rows(&self.screen().view.clone()) else {
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

    pub(crate) fn push(&mut self, view: View) {
        // What the status line said was about the screen left.
        self.status = None;
        self.stack.push(Screen {
            view,
            list: ListState::default(),
        });
        self.yaml = None;
        self.yaml_scroll = 0;
        self.load_current(false);
        self.select_first_selectable();
    }

    pub(crate) fn reset_to(&mut self, views: Vec<View>) {
        self.status = None;
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
    pub(crate) fn load_current(&mut self, force: bool) {
        let view = self.screen().view.clone();
        page::of(&view).load(self, &view, force);
        self.follow_shown();
    }

    pub fn find_snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots
            .as_ref()
            .and_then(Load::ready)
            .and_then(|d| d.all.iter().find(|s| s.id.to_hex() == id))
    }

    pub(crate) fn say(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some((tone, text.into()));
    }

    /// Folds a background result into the state.
    pub fn apply(&mut self, msg: Msg) {
        self.dirty = true;
        match msg {
            Msg::Input(ev) => self.input(ev),
            Msg::Probe(name, facts) => {
                self.in_flight.finish(&name);
                self.keeping_selection(|app| {
                    if let Some(c) = app.cluster_mut(&name) {
                        c.facts = Some(facts);
                    }
                    app.cluster_rows = screens::clusters::rows(app);
                });
                self.wizard_sync();
            }
            Msg::Namespaces(name, r) => {
                self.keeping_selection(|app| {
                    if let Some(c) = app.cluster_mut(&name) {
                        let shown = c.namespaces.as_ref().is_some_and(|n| n.ready().is_some());
                        match r {
                            Ok(list) => {
                                c.namespaces = Some(Load::Ready(screens::namespaces::rows(&list)))
                            }
                            // A list that followed its cluster keeps what it showed.
                            Err(e) if shown => tracing::warn!("{e}"),
                            Err(e) => c.namespaces = Some(Load::Failed(e)),
                        }
                    }
                });
            }
            Msg::NsObjects(name, ns, r) => {
                self.keeping_selection(|app| {
                    if let Some(c) = app.cluster_mut(&name) {
                        let shown = c.ns.get(&ns).is_some_and(|l| l.ready().is_some());
                        match r {
                            Ok(data) => {
                                c.ns.insert(ns, Load::Ready(data));
                            }
                            Err(e) if shown => tracing::warn!("{e}"),
                            Err(e) => {
                                c.ns.insert(ns, Load::Failed(e));
                            }
                        }
                    }
                });
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
            Msg::Recorded => self.recording = self.recording.saturating_sub(1),
            Msg::WholeCluster(cluster, what, r) => {
                self.status = None;
                self.whole_listed(cluster, what, r);
            }
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
            Msg::Plan(generation, r) => match (&mut self.wizard, &mut self.parked) {
                (Some(w), _) if w.generation == generation => {
                    w.plan = Some(match r {
                        Ok(p) => Load::Ready(p),
                        Err(e) => Load::Failed(e),
                    });
                }
                (_, Some(w)) if w.generation == generation => {
                    let ready = r.is_ok();
                    w.plan = Some(match r {
                        Ok(p) => Load::Ready(p),
                        Err(e) => Load::Failed(e),
                    });
                    let job = w
                        .capture_job
                        .map(|id| format!(" (job {id})"))
                        .unwrap_or_default();
                    let text = format!(
                        "the {} plan {}: enter on its capture{job} on :jobs goes back to it",
                        w.purpose.word(),
                        if ready { "is ready" } else { "failed" }
                    );
                    self.say(if ready { Tone::Ok } else { Tone::Warn }, text);
                }
                // The wizard moved on while a live capture was being planned.
                _ => {
                    if let Ok(p) = r
                        && p.captured
                    {
                        self.abandon(p.staged);
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
                    // What a restore made shows in the target's lists by itself: they
                    // follow the cluster.
                    j.finish(end);
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
        self.follow_shown();
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

    /// After quitting: applies background results (input is dropped) until no job
    /// runs; false if `limit` passed first.
    pub fn wind_down(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.winding() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(Msg::Input(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(m) => self.apply(m),
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
        true
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

    /// The repository (a handle: cheap to clone), or why the console could not open it.
    pub(crate) fn repository(&self) -> Result<Repository, TaskError> {
        self.env.repo.clone()
    }
}

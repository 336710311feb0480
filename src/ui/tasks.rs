//! The console's background work: each function spawns a tokio task (disk work inside
//! it on a blocking thread) that sends its result to the app as a [`Msg`]. Nothing here
//! touches the terminal or the app's state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, ListParams};
use tokio::runtime::Handle;

use crate::app::{JobEnd, Msg};
use crate::error::{DestinationError, TaskError};
use crate::follow::{Follow, Target};
use crate::format;
use ferry_jobs::{CreateAndRestore, Endpoint, Failed, JobError, MoveJob, RestoreJob, Staged};
use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureMeta, CaptureOptions};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{Plan, PlanOptions};
use ferry_policy::Action;
use ferry_policy::gate::{self, Place};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_providers::probe;
use ferry_repo::Repository;
use ferry_repo::restore;
use ferry_repo::snapshot::{self, Snapshot};
use ferry_repo::tree;

/// A plan ready to be confirmed.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The plan, as the wizard shows it.
    pub plan: Plan,
    /// The job the policy allowed, staged with this plan: it carries the plan out and
    /// writes the audit record.
    pub staged: Staged,
    /// Whether a live capture was taken for this plan: then dropping the plan unconfirmed
    /// still leaves an audit record ([`Tasks::abandoned`]), as data was read from the source.
    pub captured: bool,
}

impl Prepared {
    fn new(staged: Staged) -> Box<Prepared> {
        Box::new(Prepared {
            plan: staged.plan().clone(),
            captured: staged.capture().is_some(),
            staged,
        })
    }
}

fn send(tx: &Sender<Msg>, m: Msg) {
    // The app has quit when the receiver is gone: nothing to tell.
    let _ = tx.send(m);
}

/// A capture in the repository to restore, and where it was taken.
#[derive(Debug, Clone)]
pub struct SnapshotRestore {
    pub snapshot: Snapshot,
    pub meta: CaptureMeta,
    pub options: PlanOptions,
    pub origin: Place,
}

/// A live selection to capture from `source` and plan into another cluster, checked
/// by the policy as `action` (migrate or clone).
#[derive(Debug, Clone)]
pub struct LiveMove {
    pub source: LinkedCluster,
    pub capture: CaptureOptions,
    pub options: PlanOptions,
    pub action: Action,
}

/// The console's way to start background work: the runtime the tasks run on and the
/// channel they answer the app on. Each method spawns one task and returns at once.
#[derive(Debug, Clone)]
pub struct Tasks {
    rt: Handle,
    tx: Sender<Msg>,
}

impl Tasks {
    pub fn new(rt: Handle, tx: Sender<Msg>) -> Tasks {
        Tasks { rt, tx }
    }

    /// A sender for messages into the app (the input thread uses it too).
    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// Appends the audit record of a live capture whose plan the user did not confirm.
    /// Answers [`Msg::Recorded`] once the record is written (or failed to be).
    pub fn abandoned(&self, staged: Staged) {
        let tx = self.tx.clone();
        self.rt.spawn(async move {
            if let Some(w) = staged.abandon().await {
                tracing::warn!("{w}");
            }
            send(&tx, Msg::Recorded);
        });
    }

    /// Records a live capture's plan dropped unconfirmed, then removes the snapshot the
    /// capture saved (the policy's `delete-snapshots` check first, as `ferry forget`
    /// does); says on the status line what was removed, or why not.
    /// Answers [`Msg::Recorded`] once both records are written (or failed to be).
    pub fn discarded(&self, staged: Staged, repo: Repository, source: Option<LinkedCluster>) {
        let tx = self.tx.clone();
        self.rt.spawn(async move {
            discard(staged, repo, source, &tx).await;
            send(&tx, Msg::Recorded);
        });
    }

    pub fn probe(&self, cluster: LinkedCluster) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let p = probe::probe(&cluster).await;
            send(&tx, Msg::Probe(cluster.name.clone(), p.facts));
        });
    }

    /// Lists the linked cloud accounts' clusters, one message per origin as each answers.
    pub fn cloud_clusters(&self, clouds: &ferry_providers::cloud::Clouds) {
        let (rt, tx) = (&self.rt, &self.tx);
        use futures::StreamExt as _;
        let tx = tx.clone();
        let mut listed = clouds.list();
        rt.spawn(async move {
            while let Some((origin, res)) = listed.next().await {
                send(&tx, Msg::CloudListed(origin, res));
            }
        });
    }

    /// Reads `cluster`'s namespaces as a whole-cluster job takes them (`-A`).
    pub fn whole_cluster(&self, cluster: LinkedCluster, what: crate::whole::Whole) {
        let tx = self.tx.clone();
        self.rt.spawn(async move {
            let r = whole_namespaces(&cluster).await;
            send(&tx, Msg::WholeCluster(cluster.name.clone(), what, r));
        });
    }

    /// Follows `target` of `cluster` until the returned handle is dropped.
    pub fn follow(&self, cluster: LinkedCluster, target: Target) -> Follow {
        crate::follow::start(&self.rt, self.tx.clone(), cluster, target)
    }

    pub fn snapshots(&self, repo: Result<Repository, TaskError>) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = match repo {
                Ok(repo) => {
                    blocking(move || {
                        snapshot::list(&repo)
                            .map(|(all, _)| {
                                let mut all = all;
                                all.reverse();
                                all
                            })
                            .map_err(|e| TaskError::Snapshots(Arc::new(e)))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            send(&tx, Msg::Snapshots(r));
        });
    }

    /// Reads the audit trail (records oldest first, and warnings for unreadable ones).
    pub fn audit(&self, repo: Result<Repository, TaskError>) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = match repo {
                Ok(repo) => {
                    blocking(move || {
                        ferry_policy::audit::read(&repo).map_err(|e| TaskError::Audit(Arc::new(e)))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            send(&tx, Msg::Audit(r));
        });
    }

    /// Writes `records` as JSON lines to `path` (a new file) and says where.
    pub fn export_audit(&self, records: Vec<ferry_policy::audit::AuditRecord>, path: PathBuf) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let n = records.len();
            let shown = path.display().to_string();
            let r = blocking(move || {
                let mut text = String::new();
                for r in &records {
                    // An audit record is plain data: it always serializes.
                    if let Ok(line) = serde_json::to_string(r) {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
                let export = |path: &std::path::Path, e| TaskError::Export {
                    path: path.to_path_buf(),
                    source: Arc::new(e),
                };
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| export(dir, e))?;
                }
                std::fs::write(&path, text).map_err(|e| export(&path, e))
            })
            .await;
            send(
                &tx,
                match r {
                    Ok(()) => Msg::Status(
                        crate::app::Tone::Ok,
                        format!("{n} audit record(s) exported to {shown}"),
                    ),
                    Err(e) => Msg::Status(
                        crate::app::Tone::Error,
                        format!("the audit trail was not exported: {e}"),
                    ),
                },
            );
        });
    }

    pub fn snapshot_objects(&self, repo: Result<Repository, TaskError>, snap: Snapshot) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let id = snap.id.to_hex();
            let r = match repo {
                Ok(repo) => {
                    blocking(move || {
                        capture::read_objects(&repo, &snap)
                            .map_err(|e| TaskError::SnapshotObjects(Arc::new(e)))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            send(&tx, Msg::SnapshotObjects(id, r));
        });
    }

    pub fn backup(
        &self,
        id: usize,
        cluster: LinkedCluster,
        repo: Repository,
        opts: CaptureOptions,
        progress: Arc<JobProgress>,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = async {
                let source = Endpoint::connect(cluster)
                    .await
                    .map_err(|e| TaskError::Job(Arc::new(e.into())))?;
                // The policy first, as `ferry backup` does: a denied backup reads nothing.
                let out = ferry_jobs::backup(&repo, &source, opts, &progress)
                    .await
                    .map_err(|f| failed(f, &progress))?;
                unrecorded(out.unrecorded, &progress);
                Ok::<_, TaskError>(captured(&out.capture))
            }
            .await;
            send(&tx, Msg::JobDone(id, ended(r, &progress)));
        });
    }

    /// The cloud envelope of a wizard's live source, for the forms of new clusters.
    pub fn wizard_envelope(&self, generation: u64, cluster: LinkedCluster) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = cluster
                .envelope()
                .await
                .map_err(|e| TaskError::Envelope(Arc::new(e)));
            send(&tx, Msg::WizardEnvelope(generation, r));
        });
    }

    /// Which storage classes the claims of a live source use.
    pub fn live_classes(&self, generation: u64, cluster: LinkedCluster, namespaces: Vec<String>) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = async {
                let client = client(&cluster).await?;
                let mut classes = Vec::new();
                for ns in &namespaces {
                    let l = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| TaskError::list(format!("the claims of {ns}"), e, ""))?;
                    classes.extend(
                        l.items
                            .into_iter()
                            .filter_map(|c| c.spec.and_then(|s| s.storage_class_name)),
                    );
                }
                classes.sort();
                classes.dedup();
                Ok(classes)
            }
            .await;
            send(&tx, Msg::WizardClasses(generation, r));
        });
    }

    /// Checks the policy, then plans the restore of a capture into `target`.
    pub fn plan_snapshot(
        &self,
        generation: u64,
        repo: Repository,
        target: LinkedCluster,
        restore: SnapshotRestore,
    ) {
        let SnapshotRestore {
            snapshot,
            meta,
            options,
            origin,
        } = restore;
        let job = RestoreJob {
            snapshot,
            meta,
            origin,
            options,
        };
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = async {
                let target = Endpoint::connect(target)
                    .await
                    .map_err(|e| TaskError::Job(Arc::new(e.into())))?;
                // The policy first: nothing is read or planned for a denied restore.
                let staged = ferry_jobs::stage_restore(&repo, &target, job)
                    .await
                    .map_err(|f| TaskError::Job(Arc::new(f)))?;
                Ok(Prepared::new(staged))
            }
            .await;
            send(&tx, Msg::Plan(generation, r));
        });
    }

    /// Which targets the repository's policy denies (read-only: nothing is recorded), for
    /// the wizard's target step. `source` is a live source cluster (asked who the user is)
    /// or a capture's origin; `namespaces` the (source, target) namespace pairs.
    pub fn target_verdicts(
        &self,
        generation: u64,
        repo: Repository,
        action: Action,
        source: Result<LinkedCluster, Place>,
        targets: Vec<LinkedCluster>,
        namespaces: Vec<(Option<String>, Option<String>)>,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let from = match source {
                Ok(cluster) => {
                    let c = client(&cluster).await.ok();
                    Place::new(&cluster, c.as_ref())
                }
                Err(origin) => origin,
            };
            let mut out = Vec::new();
            for t in targets {
                // An unreachable target is shown as such by its probe; the policy cannot ask it.
                let Ok(c) = client(&t).await else { continue };
                let to = Place::new(&t, Some(&c));
                let denied =
                    gate::preview(&repo, action, Some(&from), Some(&to), &namespaces).await;
                out.push((t.name.clone(), denied));
            }
            send(&tx, Msg::WizardVerdicts(generation, out));
        });
    }

    /// Checks the policy for a target the user tried to go on with although it was shown
    /// denied; [`ferry_jobs::authorize`] appends the denial to the audit trail.
    pub fn refused(
        &self,
        repo: Repository,
        action: Action,
        source: Result<LinkedCluster, Place>,
        target: LinkedCluster,
        pairs: Vec<(Option<String>, Option<String>)>,
    ) {
        let rt = &self.rt;
        rt.spawn(async move {
            let from = match source {
                Ok(cluster) => {
                    let c = client(&cluster).await.ok();
                    Place::new(&cluster, c.as_ref())
                }
                Err(origin) => origin,
            };
            let c = client(&target).await.ok();
            let to = Place::new(&target, c.as_ref());
            if ferry_jobs::authorize(&repo, action, Some(&from), Some(&to), &pairs)
                .await
                .is_ok()
            {
                tracing::info!(target = %target.name, "a target shown denied is allowed now");
            }
        });
    }

    /// Captures a live selection (a job of its own), then plans its restore.
    pub fn plan_live(
        &self,
        generation: u64,
        (job, progress): (usize, Arc<JobProgress>),
        repo: Repository,
        target: LinkedCluster,
        live: LiveMove,
    ) {
        let LiveMove {
            source,
            capture,
            options,
            action,
        } = live;
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = async {
                let target = Endpoint::connect(target).await.map_err(Failed::from)?;
                let source = Endpoint::connect(source).await.map_err(Failed::from)?;
                // The policy first: nothing is captured for a denied migrate or clone.
                let job = MoveJob {
                    action,
                    capture,
                    options,
                };
                ferry_jobs::stage_move(&repo, &source, &target, job, &progress).await
            }
            .await;
            let r = match r {
                Ok(staged) => {
                    if let Some(out) = staged.capture() {
                        send(&tx, Msg::JobDone(job, captured(out)));
                    }
                    Ok(Prepared::new(staged))
                }
                Err(f) => {
                    let capture = f.capture.as_deref().map(captured);
                    let e = failed(f, &progress);
                    // The capture went well when there is one; its plan did not.
                    let end = capture.unwrap_or_else(|| ended(Err(e.clone()), &progress));
                    send(&tx, Msg::JobDone(job, end));
                    Err(e)
                }
            };
            send(&tx, Msg::Plan(generation, r));
        });
    }

    /// Carries out a confirmed plan and saves its report into `reports`.
    pub fn apply(
        &self,
        id: usize,
        target: LinkedCluster,
        prepared: Box<Prepared>,
        reports: PathBuf,
        progress: Arc<JobProgress>,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = match prepared.staged.run(&progress).await {
                Ok(out) => Ok(restored(out, reports, target.context.clone(), &progress).await),
                Err(f) => Err(failed(f, &progress)),
            };
            send(&tx, Msg::JobDone(id, ended(r, &progress)));
        });
    }

    /// Loads the entries of the folder at `path` of a snapshot's tree.
    pub fn snapshot_dir(&self, repo: Result<Repository, TaskError>, snap: Snapshot, path: String) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let id = snap.id.to_hex();
            let p = path.clone();
            let r = match repo {
                Ok(repo) => {
                    blocking(move || {
                        let unreadable = |e| TaskError::SnapshotTree {
                            path: p.clone(),
                            source: Arc::new(e),
                        };
                        let node = tree::find_path(&repo, &snap.tree, &p)
                            .map_err(unreadable)?
                            .ok_or_else(|| TaskError::NoSuchPath { path: p.clone() })?;
                        let sub = node
                            .subtree
                            .ok_or_else(|| TaskError::NotAFolder { path: p.clone() })?;
                        tree::Tree::load(&repo, &sub)
                            .map(|t| t.nodes)
                            .map_err(unreadable)
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            send(&tx, Msg::SnapshotDir(id, path, r));
        });
    }

    /// Checks a restore prompt's folder on a blocking thread ([`restore_target`]).
    pub fn check_restore_target(
        &self,
        generation: u64,
        dest: String,
        name: String,
        path: String,
        is_dir: bool,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let r = blocking(move || {
                restore_target(&dest, &name, &path, is_dir).map_err(TaskError::from)
            })
            .await;
            send(&tx, Msg::RestoreChecked(generation, r));
        });
    }

    /// Restores part of a snapshot into a folder of this machine with the engine's restore
    /// (what `ferry restore SNAP --path P --target DIR` runs).
    pub fn restore_files(
        &self,
        id: usize,
        repo: Repository,
        snap: Snapshot,
        opts: restore::RestoreOptions,
        progress: Arc<JobProgress>,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let p = progress.clone();
            let r = blocking(move || {
                let out = restore::restore(&repo, &snap, &opts, &p.data).map_err(|e| {
                    TaskError::Download {
                        path: opts.path.clone(),
                        target: opts.target.clone(),
                        source: Arc::new(e),
                    }
                })?;
                p.log(format!(
                    "restored {} file(s), {} folder(s), {} into {}",
                    out.files,
                    out.dirs,
                    format::bytes(out.bytes),
                    opts.target.display()
                ));
                for w in &out.warnings {
                    p.log(format!("warning: {w}"));
                }
                Ok(JobEnd::Downloaded {
                    target: opts.target.clone(),
                    files: out.files,
                    dirs: out.dirs,
                    bytes: out.bytes,
                    warnings: out.warnings,
                })
            })
            .await;
            send(&tx, Msg::JobDone(id, ended(r, &progress)));
        });
    }

    /// Creates the cluster (its progress in the job's phase and log), tells the app it is
    /// linked, then checks the policy, captures a live source, plans the restore against
    /// the new cluster and carries it out: one job ([`ferry_jobs::create_and_restore`]).
    /// A failure after the creation says what exists and how to delete it.
    pub fn create_and_restore(
        &self,
        id: usize,
        create: Create,
        repo: Repository,
        restore: Restore,
        progress: Arc<JobProgress>,
    ) {
        let (rt, tx) = (&self.rt, &self.tx);
        let tx = tx.clone();
        rt.spawn(async move {
            let leftover = leftover(&create);
            let Restore {
                payload,
                options,
                mover,
                reports,
            } = restore;
            let job = CreateAndRestore {
                cluster: create,
                payload,
                options: PlanOptions { mover, ..options },
                again: CREATE_AGAIN.into(),
            };
            let mut context = String::new();
            let created = |c: &LinkedCluster| {
                context = c.context.clone();
                send(&tx, Msg::ClusterCreated(Box::new(c.clone())));
            };
            let r = match ferry_jobs::create_and_restore(&repo, job, &progress, created).await {
                Ok(out) => Ok(restored(out, reports, context, &progress).await),
                Err(f) => Err(match &f.error {
                    JobError::Create(_) => failed(f, &progress),
                    _ => {
                        unrecorded(f.unrecorded.clone(), &progress);
                        TaskError::AfterCreate {
                            failure: Arc::new(f),
                            leftover,
                        }
                    }
                }),
            };
            send(&tx, Msg::JobDone(id, ended(r, &progress)));
        });
    }
}

async fn client(cluster: &LinkedCluster) -> Result<kube::Client, TaskError> {
    cluster
        .client()
        .await
        .map_err(|e| TaskError::Client(Arc::new(e)))
}

/// Records a live capture's plan dropped unconfirmed, then removes its snapshot, saying
/// on the status line what was removed, or why not.
async fn discard(
    staged: Staged,
    repo: Repository,
    source: Option<LinkedCluster>,
    tx: &Sender<Msg>,
) {
    let capture = staged.capture().map(|c| (c.snapshot.id, c.meta.clone()));
    if let Some(w) = staged.abandon().await {
        tracing::warn!("{w}");
    }
    let Some((id, meta)) = capture else { return };
    let from = match &source {
        Some(c) => Place::new(c, None),
        None => Place::named(&meta.cluster),
    };
    let removal = ferry_jobs::Removal {
        from,
        namespaces: meta.namespaces.clone(),
    };
    let line = match ferry_jobs::delete_snapshots(&repo, &[removal], vec![id]).await {
        Ok(_) => (
            crate::app::Tone::Ok,
            format!(
                "the capture's snapshot {} was removed (`ferry prune` frees its space)",
                id.short()
            ),
        ),
        Err(f) => (
            crate::app::Tone::Warn,
            format!("the capture's snapshot {} is kept: {}", id.short(), f.error),
        ),
    };
    send(tx, Msg::Status(line.0, line.1));
}

/// The namespaces of `cluster` a whole-cluster job takes, and those it leaves out.
async fn whole_namespaces(cluster: &LinkedCluster) -> Result<crate::whole::Listed, TaskError> {
    let client = client(cluster).await?;
    let names = ferry_k8s::scope::list_namespaces(&client, &cluster.name)
        .await
        .map_err(|e| TaskError::Nothing(e.to_string()))?;
    let all = ferry_k8s::scope::Namespaces {
        all: true,
        ..Default::default()
    };
    let taken = all
        .pick(&names, &cluster.name)
        .map_err(|e| TaskError::Nothing(e.to_string()))?;
    let left_out = names.into_iter().filter(|n| !taken.contains(n)).collect();
    Ok(crate::whole::Listed { taken, left_out })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TaskError::Stopped(Arc::new(e)))?
}

fn ended(r: Result<JobEnd, TaskError>, progress: &JobProgress) -> JobEnd {
    match r {
        Ok(e) => e,
        Err(_) if progress.data.is_cancelled() => JobEnd::Cancelled,
        Err(e) => {
            progress.log(format!("failed: {e}"));
            JobEnd::Failed(e)
        }
    }
}

fn captured(out: &capture::CaptureOutcome) -> JobEnd {
    JobEnd::Captured {
        snapshot: out.snapshot.id.short(),
        summary: ferry_jobs::capture_summary(out),
        warnings: out.warnings.clone(),
    }
}

/// A job's failure as the console keeps it; a warning that its audit record was not
/// written goes into the job's log.
fn failed(f: Failed, progress: &JobProgress) -> TaskError {
    unrecorded(f.unrecorded.clone(), progress);
    TaskError::Job(Arc::new(f))
}

/// A warning that a job's audit record was not written, into the job's log.
fn unrecorded(warning: Option<String>, progress: &JobProgress) {
    if let Some(w) = warning {
        progress.log(w);
    }
}

/// A restore's end: its report saved into `reports` ([`save_report`]), a warning that
/// the audit record was not written logged.
async fn restored(
    out: ferry_jobs::Restored,
    reports: PathBuf,
    context: String,
    progress: &JobProgress,
) -> JobEnd {
    unrecorded(out.unrecorded, progress);
    save_report(out.report, reports, context, progress).await
}

/// Writes a restore's report into `dir` as the CLI does; the job's end with where it
/// went (or why it could not be written), and a log line saying so.
pub async fn save_report(
    report: apply::Report,
    dir: PathBuf,
    context: String,
    progress: &JobProgress,
) -> JobEnd {
    let r = report.clone();
    let saved = blocking(move || r.save(&dir).map_err(|e| TaskError::Report(Arc::new(e)))).await;
    match &saved {
        Ok(path) => progress.log(format!("report saved: {}", path.display())),
        Err(e) => progress.log(e.to_string()),
    }
    JobEnd::Restored {
        report,
        saved,
        context,
    }
}

/// `~` and `~/…` as the home folder; relative paths from the current folder.
fn expand(dest: &str) -> Result<PathBuf, DestinationError> {
    let dest = dest.trim();
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or(DestinationError::NoHome)
    };
    let p = if dest == "~" {
        home()?
    } else if let Some(rest) = dest.strip_prefix("~/") {
        home()?.join(rest)
    } else {
        PathBuf::from(dest)
    };
    if p.is_absolute() {
        Ok(p)
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .map_err(|e| DestinationError::NoCurrentFolder(Arc::new(e)))
    }
}

/// Where the restore of `name` (at `path` in the snapshot, a folder when `is_dir`) into
/// the folder `dest` writes, as the engine's options; or why it cannot go there. The
/// folder must be a folder (or creatable) and writable, and must not hold `name` yet:
/// nothing that exists is replaced.
pub fn restore_target(
    dest: &str,
    name: &str,
    path: &str,
    is_dir: bool,
) -> Result<restore::RestoreOptions, DestinationError> {
    let dest = expand(dest)?;
    // The folder itself, or the nearest parent that exists (the restore creates the rest).
    let mut existing = Some(dest.as_path());
    while let Some(p) = existing {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break,
            Ok(_) if p == dest => return Err(DestinationError::IsAFile(dest)),
            Ok(_) => {
                return Err(DestinationError::ParentIsAFile {
                    parent: p.to_path_buf(),
                    dest: dest.clone(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => existing = p.parent(),
            Err(e) => {
                return Err(DestinationError::Unusable {
                    path: p.to_path_buf(),
                    source: Arc::new(e),
                });
            }
        }
    }
    let Some(existing) = existing else {
        return Err(DestinationError::Uncreatable(dest));
    };
    if nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(DestinationError::NotWritable(existing.to_path_buf()));
    }
    let at = dest.join(name);
    if std::fs::symlink_metadata(&at).is_ok() {
        return Err(DestinationError::Exists(at));
    }
    Ok(if is_dir {
        // The folder's content goes into <dest>/<name>, which does not exist yet.
        restore::RestoreOptions {
            target: at,
            path: path.to_string(),
            overwrite: false,
            threads: None,
        }
    } else {
        // A file lands at <dest>/<name>; `overwrite` only lets the engine write into a
        // folder that holds other files (it replaces restored paths alone, and this one
        // was just seen not to exist).
        restore::RestoreOptions {
            target: dest.clone(),
            path: path.to_string(),
            overwrite: true,
            threads: None,
        }
    })
}

/// A cluster to create, of any cloud (made by `ui::newcluster::NewCluster::request`).
pub use ferry_jobs::NewCluster as Create;

/// What goes into a new cluster once it exists: a capture, or a live selection captured
/// once the cluster exists.
pub use ferry_jobs::Payload;

/// What to restore into a cluster once it exists, and how.
#[derive(Debug, Clone)]
pub struct Restore {
    pub payload: Payload,
    pub options: PlanOptions,
    pub mover: MoverOptions,
    pub reports: PathBuf,
}

/// What a failure after creation leaves behind, and what the user can do with it.
fn leftover(create: &Create) -> String {
    create.leftover(
        "it is linked in the console, so choose it as the target when you run the wizard again",
    )
}

/// How the console's user starts a creation that failed half-way again (the provider
/// reuses what exists).
const CREATE_AGAIN: &str = "run the wizard again with a new cluster of the same name";

//! What the restore / migrate / clone wizard does with the app: opening it from a
//! screen, checking targets against the policy, planning on a task, confirming, and
//! creating a new cluster before restoring into it. The wizard's own steps and
//! checks are `wizard_state.rs`; drawing it is `screens/wizard.rs`.

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{App, Ask, Flow, Load, Mode, Then, Tone, View};
use crate::error::TaskError;
use crate::keymap::Command;
use crate::tasks;
use crate::wizard_state::{LiveCapture, Purpose, Source, Step, Wizard};
use ferry_k8s::capture::{CaptureMeta, Scope};
use ferry_providers::kubeconfig::LinkedCluster;

impl App {
    pub(crate) fn open_live_wizard(&mut self, view: &View, purpose: Purpose) {
        let Some((cluster, scope)) = self.live_scope(view) else {
            self.say(
                Tone::Normal,
                "m and c work on namespaces or workloads: select or mark some first",
            );
            return;
        };
        self.open_wizard_on(cluster, scope, purpose, None);
    }

    /// Opens the migrate or clone wizard on `scope` of the live cluster `cluster`.
    /// Opens the wizard on `scope` of the live `cluster`; `whole` (the namespaces left
    /// out to begin with) when it takes the whole cluster.
    pub(crate) fn open_wizard_on(
        &mut self,
        cluster: String,
        scope: Scope,
        purpose: Purpose,
        whole: Option<BTreeSet<String>>,
    ) {
        self.drop_parked();
        self.wizard_gen += 1;
        let source = Source::Live {
            cluster: cluster.clone(),
            scope,
        };
        let mut w = Wizard::new(self, self.wizard_gen, purpose, source);
        if let Some(left_out) = whole {
            w.whole = true;
            w.left_out = left_out;
        }
        if let Some(linked) = self.cluster(&cluster).map(|c| c.linked.clone()) {
            self.check_targets(&w, Ok(linked.clone()));
            if !w.new_clusters.is_empty() && linked.cloud().is_some() {
                // The forms of new clusters, pre-filled from the source's own cloud.
                self.tasks.wizard_envelope(self.wizard_gen, linked.clone());
            }
            // Every namespace listed, as `del` may take a left-out one back.
            let listed = w.ns.iter().map(|(from, _)| from.clone()).collect();
            self.tasks.live_classes(self.wizard_gen, linked, listed);
        }
        self.wizard = Some(w);
    }

    pub(crate) fn open_restore_wizard(&mut self, view: &View) {
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
        self.drop_parked();
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
        let Ok(repo) = self.repository() else { return };
        let targets: Vec<LinkedCluster> = w
            .targets
            .iter()
            .filter_map(|t| self.cluster(&t.name).map(|c| c.linked.clone()))
            .collect();
        let pairs = w
            .taken()
            .map(|(from, to)| (Some(from.clone()), Some(to.clone())))
            .collect();
        self.tasks.target_verdicts(
            w.generation,
            repo,
            w.purpose.action(),
            source,
            targets,
            pairs,
        );
    }

    pub(crate) fn wizard_key(&mut self, k: KeyEvent) {
        let Some(mut w) = self.wizard.take() else {
            return;
        };
        if w.step == Step::Plan {
            // The plan step takes no typing: the console's own keys work there, the
            // wizard put aside until enter on its capture's job brings it back.
            let away =
                self.env.keymap.action(&k).filter(|a| {
                    matches!(a, Command::Jobs | Command::Snapshots | Command::CommandLine)
                });
            if let Some(a) = away
                && w.capture_job.is_some()
            {
                self.drop_parked();
                self.parked = Some(w);
                self.action(a);
                if self.status.is_none() {
                    self.say(
                        Tone::Normal,
                        "the wizard waits: enter on its capture's job on :jobs goes back to it",
                    );
                }
                return;
            }
            // Leaving a plan whose capture runs or saved a snapshot: keep it or not?
            let ctrl_c =
                k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
            if (k.code == KeyCode::Esc || ctrl_c)
                && let Some(capture) = w.live_capture()
            {
                let question = self.leave_question(&w, capture);
                self.wizard = Some(w);
                let back = !ctrl_c;
                self.mode = Mode::Confirm(Ask {
                    title: "remove the capture?",
                    question,
                    then: Then::LeaveCapture { back, remove: true },
                    otherwise: Some(Then::LeaveCapture {
                        back,
                        remove: false,
                    }),
                });
                return;
            }
        }
        // A live capture's plan the key drops unconfirmed still gets its audit record.
        let captured = match &w.plan {
            Some(Load::Ready(p)) if p.captured => Some(p.staged.clone()),
            _ => None,
        };
        let outcome = w.key(self, k);
        if let Some(staged) = captured
            && (matches!(outcome, crate::wizard_state::Outcome::Close)
                || !matches!(w.plan, Some(Load::Ready(_))))
        {
            self.abandon(staged);
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

    /// What leaving a plan does to its live capture, as a question: `y` removes it.
    fn leave_question(&self, w: &Wizard, capture: LiveCapture<'_>) -> String {
        let source = w.source_label();
        match capture {
            LiveCapture::Running(id) => {
                let read = self
                    .jobs
                    .iter()
                    .find(|j| j.id == id)
                    .map(|j| crate::format::bytes(j.progress.data.snapshot().bytes_done))
                    .unwrap_or_default();
                format!(
                    "The capture of {source} still runs (job {id}, {read} read so far). y cancels it and keeps nothing; any other key lets it finish and keeps its snapshot (a full copy of the source) without a plan."
                )
            }
            LiveCapture::Saved(staged) => {
                let id = staged
                    .capture()
                    .map(|c| c.snapshot.id.short())
                    .unwrap_or_default();
                format!(
                    "The plan is dropped. Its capture of {source} saved snapshot {id}, a full copy of the source. y removes that snapshot; any other key keeps it in the repository."
                )
            }
        }
    }

    /// Leaves the open wizard's plan (back a step, or closing the wizard) and removes
    /// or keeps its live capture, as the user answered.
    pub(crate) fn leave_capture(&mut self, back: bool, remove: bool) {
        let Some(mut w) = self.wizard.take() else {
            return;
        };
        let source = match &w.source {
            Source::Live { cluster, .. } => self.cluster(cluster).map(|c| c.linked.clone()),
            Source::Snapshot { .. } => None,
        };
        let text = match w.live_capture() {
            Some(LiveCapture::Running(id)) if remove => {
                if let Some(j) = self.jobs.iter().find(|j| j.id == id && j.running()) {
                    j.progress.cancel();
                }
                format!("the capture (job {id}) is cancelled: it keeps nothing")
            }
            Some(LiveCapture::Running(id)) => {
                format!("the capture (job {id}) goes on: its snapshot stays, without a plan")
            }
            Some(LiveCapture::Saved(staged)) => {
                let staged = staged.clone();
                if remove {
                    match self.repository() {
                        Ok(repo) => {
                            self.recording += 1;
                            self.tasks.discarded(staged, repo, source);
                        }
                        Err(e) => return self.say(Tone::Error, e.to_string()),
                    }
                    "removing the capture's snapshot…".to_string()
                } else {
                    self.abandon(staged);
                    "the capture's snapshot stays in the repository".to_string()
                }
            }
            None => String::new(),
        };
        // Results of the plan left behind are dropped (a kept capture's are recorded
        // as abandoned when they come).
        self.wizard_gen += 1;
        w.generation = self.wizard_gen;
        w.capture_job = None;
        if back && w.back() {
            self.wizard = Some(w);
        }
        self.say(Tone::Normal, text);
    }

    /// Drops the wizard put aside, if any: a plan on a capture it saved is recorded as
    /// abandoned (the snapshot stays); a capture still running keeps running.
    pub(crate) fn drop_parked(&mut self) {
        if let Some(w) = self.parked.take()
            && let Some(LiveCapture::Saved(staged)) = w.live_capture()
        {
            self.abandon(staged.clone());
        }
    }

    /// Brings back the wizard put aside for the capture job `id`; false if none was.
    pub(crate) fn unpark(&mut self, id: usize) -> bool {
        if self.wizard.is_some() || self.parked.as_ref().and_then(|w| w.capture_job) != Some(id) {
            return false;
        }
        self.wizard = self.parked.take();
        self.status = None;
        true
    }

    /// Records, in the background, the user's attempt to go on with a target the policy
    /// denies: the same check the plan step makes, which appends the denial.
    fn record_refusal(&self, w: &Wizard) {
        let Ok(repo) = self.repository() else { return };
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
        let pairs = w
            .taken()
            .map(|(from, to)| (Some(from.clone()), Some(to.clone())))
            .collect();
        self.tasks
            .refused(repo, w.purpose.action(), source, target, pairs);
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
        let repo = match self.repository() {
            Ok(r) => r,
            Err(e) => {
                w.plan = Some(Load::Failed(e));
                return;
            }
        };
        let Some(target) = self.cluster(w.target_name()).map(|c| c.linked.clone()) else {
            w.plan = Some(Load::Failed(TaskError::Gone {
                role: "target",
                name: w.target_name().to_string(),
            }));
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
                    w.plan = Some(Load::Failed(TaskError::Gone {
                        role: "source",
                        name: cluster.clone(),
                    }));
                    return;
                };
                let copts = self.live_capture(w, cluster, scope);
                let (id, progress) = self.register_job(
                    format!("capture {cluster} for {}", w.purpose.word()),
                    Flow::In,
                );
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
        // Namespaces left out in the wizard are not captured.
        let scope = match scope {
            ferry_k8s::capture::Scope::Namespaces(n) => ferry_k8s::capture::Scope::Namespaces(
                n.iter()
                    .filter(|n| !w.left_out.contains(*n))
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        };
        ferry_k8s::capture::CaptureOptions {
            cluster: cluster.to_string(),
            scope,
            include_volumes: w.include_volumes,
            use_snapshots: true,
            mover: self.env.mover.clone(),
            tags: vec!["console".into(), w.purpose.word().into()],
            parent: None,
            no_parent: false,
            envelope: None,
            server: None,
            resources: ferry_k8s::scope::Resources {
                cluster: w.whole,
                ..Default::default()
            },
        }
    }

    /// Carries out the wizard's plan; a plan into namespaces that exist on the target
    /// asks first, naming them and what changes there.
    fn confirm(&mut self, w: Wizard) {
        if w.creating().is_none()
            && let Some(Load::Ready(prepared)) = &w.plan
            && let Some(question) = into_existing(&prepared.plan)
        {
            self.wizard = Some(w);
            self.mode = Mode::Confirm(Ask {
                otherwise: None,
                title: "restore into existing?",
                question,
                then: Then::CarryOutPlan,
            });
            return;
        }
        self.carry_out_plan(w);
    }

    /// Carries out the wizard's plan (or creates its new cluster first), unasked.
    pub(crate) fn carry_out_plan(&mut self, w: Wizard) {
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
        // The row names where the copy goes: `clone prod/shop → prod/shop-qa`.
        let taken: Vec<(String, String)> = w.taken().cloned().collect();
        let into = match taken.as_slice() {
            [(_, to)] => format!("{}/{to}", target.name),
            many if many.iter().any(|(from, to)| from != to) => format!(
                "{}/{}",
                target.name,
                many.iter()
                    .map(|(_, to)| to.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => target.name.clone(),
        };
        let (id, progress) = self.register_job(
            format!("{} {} → {into}", w.purpose.word(), w.source_label()),
            Flow::Out,
        );
        self.tasks
            .apply(id, target, prepared, self.env.reports.clone(), progress);
        self.say(
            Tone::Ok,
            format!("{} started: follow it on :jobs", w.purpose.word()),
        );
    }

    /// Creates the wizard's new cluster and restores its source into it (a snapshot, or
    /// a live selection captured once the cluster exists), as one job.
    fn create_and_restore(&mut self, mut w: Wizard) {
        let Some(new) = w.creating() else {
            return;
        };
        let repo = match self.repository() {
            Ok(r) => r,
            Err(e) => return self.say(Tone::Error, e.to_string()),
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
        let (id, progress) = self.register_job(
            format!("create {name} + {} {}", w.purpose.word(), w.source_label()),
            Flow::Out,
        );
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

/// The question before a plan into namespaces that exist on the target: which, and
/// how many objects there it updates and leaves; `None` when every namespace is new.
fn into_existing(plan: &ferry_k8s::plan::Plan) -> Option<String> {
    use ferry_k8s::plan::Change;
    let existing: Vec<&str> = plan
        .items
        .iter()
        .filter(|i| i.target.is("", "Namespace") && i.action != Change::Create)
        .map(|i| i.target.name.as_str())
        .collect();
    if existing.is_empty() {
        return None;
    }
    let inside = |c: Change| {
        plan.items
            .iter()
            .filter(|i| {
                i.action == c
                    && i.target
                        .namespace
                        .as_deref()
                        .is_some_and(|n| existing.contains(&n))
            })
            .count()
    };
    Some(format!(
        "{} {} already on {}: the plan updates {} object(s) there and leaves {} as they are. Carry it out?",
        if existing.len() == 1 {
            "Namespace"
        } else {
            "Namespaces"
        },
        existing.join(", "),
        plan.target_cluster,
        inside(Change::Update),
        inside(Change::Skip),
    ))
}

//! What the screens' commands do to the app: marks, sorting, the YAML and describe
//! views, backups (asked first), answered questions, and registering a job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, Ask, Flow, Job, Load, Mode, Then, Tone, View};
use crate::page;
use ferry_k8s::JobProgress;
use ferry_k8s::capture::Scope;
use ferry_repo::progress::RateMeter;

impl App {
    /// How the current screen is sorted, if the user chose.
    pub fn sorting(&self) -> Option<crate::sort::Sort> {
        self.sorts
            .get(page::of(&self.screen().view).name())
            .copied()
    }

    /// Sorts the current screen by `column` (again: the other way), keeping the
    /// selection on its row.
    pub(crate) fn sort_by(&mut self, column: usize) {
        let name = page::of(&self.screen().view).name();
        let descending = self
            .sorts
            .get(name)
            .is_some_and(|s| s.column == column && !s.descending);
        self.keeping_selection(|app| {
            app.sorts
                .insert(name, crate::sort::Sort { column, descending });
        });
    }

    /// Shift + a letter: sorts by the first column whose header starts with it.
    pub(crate) fn sort_by_letter(&mut self, letter: char) {
        let (header, _) = page::of(&self.screen().view).columns();
        match header
            .iter()
            .position(|h| h.starts_with(letter.to_ascii_uppercase()))
        {
            Some(i) => self.sort_by(i),
            None => self.say(
                Tone::Normal,
                format!("no column here starts with {letter}: > sorts by the next column"),
            ),
        }
    }

    /// Marks every row shown (the filter's), or unmarks them all when all are marked.
    pub(crate) fn mark_all(&mut self) {
        let Load::Ready(rows) = self.rows(&self.screen().view.clone()) else {
            return;
        };
        let rows = rows.into_owned();
        let filter = self.screen().list.filter.clone();
        let keys: Vec<String> = App::visible(&rows, &filter)
            .into_iter()
            .filter(|i| !rows[*i].group)
            .map(|i| rows[i].key.clone())
            .collect();
        let marks = &mut self.screen_mut().list.marks;
        if keys.iter().all(|k| marks.contains(k)) {
            for k in &keys {
                marks.remove(k);
            }
        } else {
            marks.extend(keys);
        }
    }

    /// Marks or unmarks the selected row and moves on.
    pub(crate) fn toggle_mark(&mut self) {
        if let Some(r) = self.selected_row() {
            let marks = &mut self.screen_mut().list.marks;
            if !marks.remove(&r.key) {
                marks.insert(r.key);
            }
            self.move_selection(1);
        }
    }

    /// Shows or hides the YAML pane.
    pub(crate) fn toggle_yaml(&mut self) {
        self.show_yaml = !self.show_yaml;
        self.yaml_scroll = 0;
    }

    /// Opens the selected object's YAML full screen.
    pub(crate) fn open_yaml(&mut self) {
        let Some(row) = self.selected_row() else {
            return self.say(Tone::Normal, "no object selected");
        };
        let view = &self.screen().view;
        let Some(obj) = page::of(view).object(self, view, &row.key) else {
            return self.say(
                Tone::Normal,
                "no object for this row (volumes show their details in the list)",
            );
        };
        let meta = &obj["metadata"];
        let name = meta["name"].as_str().unwrap_or("?");
        let title = match meta["namespace"].as_str() {
            Some(ns) => format!("{} {ns}/{name}", obj["kind"].as_str().unwrap_or("object")),
            None => format!("{} {name}", obj["kind"].as_str().unwrap_or("object")),
        };
        self.viewer = Some(crate::yaml::YamlView::new(title, obj.clone()));
    }

    /// Describes the selected object full screen.
    pub(crate) fn open_describe(&mut self) {
        let Some(row) = self.selected_row() else {
            return self.say(Tone::Normal, "no object selected");
        };
        let view = &self.screen().view;
        let page = page::of(view);
        let Some(obj) = page.object(self, view, &row.key) else {
            return self.say(
                Tone::Normal,
                "no object for this row (volumes show their details in the list)",
            );
        };
        let r = ferry_k8s::ObjRef::of(obj);
        let title = match &r.namespace {
            Some(ns) => format!("describe {} {ns}/{}", r.kind, r.name),
            None => format!("describe {} {}", r.kind, r.name),
        };
        let lines = crate::describe::describe(obj, page.objects(self, view));
        self.viewer = Some(crate::yaml::YamlView::text(title, lines));
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
        let view = &self.screen().view;
        let obj = page::of(view).object(self, view, &row.key);
        let text = match obj {
            Some(o) => {
                // The field managers' bookkeeping is noise here (kubectl hides it too).
                let mut o = o.clone();
                if let Some(m) = o["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
                serde_saphyr::to_string(&o)
                    .unwrap_or_else(|e| format!("cannot show this object: {e}"))
            }
            None => "no object for this row (volumes show their details in the list)".into(),
        };
        self.yaml = Some((row.key, text));
        self.yaml_scroll = 0;
    }

    /// Adds a job to the jobs screen; the caller runs it and reports its end with
    /// `Msg::JobDone`.
    pub fn register_job(
        &mut self,
        title: impl Into<String>,
        flow: Flow,
    ) -> (usize, Arc<JobProgress>) {
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
            flow,
            started: Instant::now(),
            ended: None,
            paused_since: None,
            paused_for: Duration::ZERO,
            end: None,
            rate: 0.0,
            meter: RateMeter::default(),
        });
        (id, progress)
    }

    /// The capture scope for the marked rows of a namespaces or workloads screen.
    pub(crate) fn live_scope(&self, view: &View) -> Option<(String, Scope)> {
        let targets = self.targets();
        if targets.is_empty() {
            return None;
        }
        match view {
            View::Namespaces { cluster } => Some((cluster.clone(), Scope::Namespaces(targets))),
            View::Workloads { cluster, ns, .. } => Some((
                cluster.clone(),
                Scope::Workloads {
                    namespace: ns.clone(),
                    workloads: targets.iter().map(|k| k.to_lowercase()).collect(),
                },
            )),
            _ => None,
        }
    }

    /// Records a live capture whose plan was dropped unconfirmed ([`crate::tasks::Tasks::abandoned`]).
    pub(crate) fn abandon(&mut self, staged: ferry_jobs::Staged) {
        self.recording += 1;
        self.tasks.abandoned(staged);
    }

    /// Ends the console: the plans of live captures still open or waiting (unconfirmed)
    /// are recorded as abandoned; [`App::wind_down`] waits for those records and for the
    /// running jobs, which the caller cancelled.
    pub(crate) fn quit_now(&mut self) {
        for w in [self.wizard.take(), self.parked.take()]
            .into_iter()
            .flatten()
        {
            if let Some(crate::wizard_state::LiveCapture::Saved(staged)) = w.live_capture() {
                self.abandon(staged.clone());
            }
        }
        self.quit = true;
    }

    /// Running jobs and audit records still being written: what quitting waits for.
    pub fn winding(&self) -> usize {
        self.running_jobs() + self.recording
    }

    /// What an answered [`Ask`] said to do.
    pub(crate) fn carry_out(&mut self, then: Then) {
        match then {
            Then::Cancel(id) => {
                if let Some(j) = self.jobs.iter().find(|j| j.id == id && j.running()) {
                    j.progress.cancel();
                    let text = format!("cancelling {}: it stops at its next check", j.title);
                    self.say(Tone::Warn, text);
                } else {
                    self.say(Tone::Normal, "that job has ended");
                }
            }
            Then::Backup(view) => self.backup_now(&view),
            Then::CarryOutPlan => {
                if let Some(w) = self.wizard.take() {
                    self.carry_out_plan(w);
                }
            }
            Then::LeaveCapture { back, remove } => self.leave_capture(back, remove),
        }
    }

    /// Asks before backing up the marked (or selected) rows of `view`, naming them.
    pub(crate) fn backup(&mut self, view: &View) {
        let Some((cluster, scope)) = self.live_scope(view) else {
            self.say(
                Tone::Normal,
                "b backs up namespaces or workloads: select or mark some first",
            );
            return;
        };
        let what = match &scope {
            Scope::Namespaces(n) if n.len() == 1 => format!("namespace {}", n[0]),
            Scope::Namespaces(n) => format!("{} namespaces ({})", n.len(), n.join(", ")),
            Scope::Workloads {
                namespace,
                workloads,
            } => format!("{} in {namespace}", workloads.join(", ")),
            Scope::Selector {
                namespaces,
                selector,
                ..
            } => format!("objects matching {selector} in {}", namespaces.join(", ")),
        };
        let data = match self.read_only_reason(&cluster) {
            None => "with its volume data",
            Some(_) => "without volume data (read-only)",
        };
        self.mode = Mode::Confirm(Ask {
            otherwise: None,
            title: "back up?",
            question: format!("Back up {what} of {cluster}, {data}, into the repository?"),
            then: Then::Backup(view.clone()),
        });
    }

    /// Starts a backup of `scope` of `cluster`, titled `title` on `:jobs`: whether it
    /// reads volume data (not in read-only mode), or `None` when it could not start
    /// (the status line says why).
    pub(crate) fn start_backup(
        &mut self,
        cluster: &str,
        scope: Scope,
        title: String,
        resources: ferry_k8s::scope::Resources,
        tags: Vec<String>,
    ) -> Option<bool> {
        let repo = match self.repository() {
            Ok(r) => r,
            Err(e) => {
                self.say(Tone::Error, e.to_string());
                return None;
            }
        };
        let linked = self.cluster(cluster).map(|c| c.linked.clone())?;
        // Reading volume data starts mover pods: not in read-only mode.
        let include_volumes = self.read_only_reason(cluster).is_none();
        let (id, progress) = self.register_job(title, Flow::In);
        let opts = ferry_k8s::capture::CaptureOptions {
            cluster: cluster.to_string(),
            scope,
            include_volumes,
            use_snapshots: true,
            mover: self.env.mover.clone(),
            tags,
            parent: None,
            no_parent: false,
            envelope: None,
            server: None,
            resources,
        };
        self.tasks.backup(id, linked, repo, opts, progress);
        Some(include_volumes)
    }

    fn backup_now(&mut self, view: &View) {
        let Some((cluster, scope)) = self.live_scope(view) else {
            return;
        };
        let what = scope.namespaces().join(",");
        let Some(include_volumes) = self.start_backup(
            &cluster,
            scope,
            format!("backup {cluster}/{what}"),
            Default::default(),
            vec!["console".into()],
        ) else {
            return;
        };
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
}

//! What can be asked of a running console from outside (the tests, a script driving
//! it): the screen, its rows and selection, the status line, the wizard, the prompt and
//! the jobs, read-only. The state itself stays inside the crate; the only ways to
//! change it are what a user does: keys ([`App::key`]), commands ([`App::command`]),
//! clicks, and the answers of background work ([`App::apply`]). [`App::pick`] and
//! [`App::select_key`] are the two clicks tests need without drawing a frame.

use crate::app::{App, Ask, ClusterState, Job, Load, Mode, RestorePrompt, Row, Tone, View};
use crate::screens;
use crate::wizard_state::Wizard;
use ferry_repo::tree::Node;

impl App {
    /// The screen shown (the top of the breadcrumbs).
    pub fn view(&self) -> &View {
        &self.screen().view
    }

    /// How many screens deep the breadcrumbs go (1: a root screen).
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// The rows of the current screen, once loaded.
    pub fn current_rows(&self) -> Option<Vec<Row>> {
        self.rows(self.view()).into_ready().map(|r| r.into_owned())
    }

    /// The keys of the current screen's rows, once loaded (groups left out).
    pub fn row_keys(&self) -> Option<Vec<String>> {
        self.current_rows().map(|rows| {
            rows.into_iter()
                .filter(|r| !r.group)
                .map(|r| r.key)
                .collect()
        })
    }

    /// Why the current screen's rows could not be loaded, if they could not.
    pub fn rows_error(&self) -> Option<String> {
        match self.rows(self.view()) {
            Load::Failed(e) => Some(e.to_string()),
            _ => None,
        }
    }

    /// The keys of the current screen's marked rows, sorted.
    pub fn marked(&self) -> Vec<String> {
        let mut m: Vec<String> = self.screen().list.marks.iter().cloned().collect();
        m.sort();
        m
    }

    /// The key of the selected row.
    pub fn selected_key(&self) -> Option<String> {
        self.selected_row().map(|r| r.key)
    }

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

    /// What the status line says (instead of the key hints), with its tone.
    pub fn status(&self) -> Option<(Tone, &str)> {
        self.status.as_ref().map(|(t, s)| (*t, s.as_str()))
    }

    /// The whole-cluster backup's namespaces, when they are being ticked.
    pub fn picking(&self) -> Option<&crate::whole::Pick> {
        match &self.mode {
            Mode::Pick(p) => Some(p),
            _ => None,
        }
    }

    /// The question the console waits on, if it asks one (`y` answers it).
    pub fn asking(&self) -> Option<&Ask> {
        match &self.mode {
            Mode::Confirm(ask) => Some(ask),
            _ => None,
        }
    }

    /// The YAML pane's text, when it shows an object.
    pub fn yaml(&self) -> Option<&str> {
        self.yaml.as_ref().map(|(_, t)| t.as_str())
    }

    /// The open wizard.
    pub fn wizard(&self) -> Option<&Wizard> {
        self.wizard.as_ref()
    }

    /// The open wizard's generation: background answers name it, and answers for an
    /// older wizard are dropped.
    pub fn wizard_generation(&self) -> u64 {
        self.wizard_gen
    }

    /// The restore-to-this-machine prompt, when open.
    pub fn prompt(&self) -> Option<&RestorePrompt> {
        self.prompt.as_ref()
    }

    /// The full-screen YAML, when open.
    pub fn yaml_view(&self) -> Option<&crate::yaml::YamlView> {
        self.viewer.as_ref()
    }

    /// The jobs of this session, oldest first.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Whether job `id` has ended.
    pub fn job_ended(&self, id: usize) -> bool {
        self.jobs.iter().any(|j| j.id == id && !j.running())
    }

    /// The linked clusters and what the console knows of each.
    pub fn clusters(&self) -> &[ClusterState] {
        &self.clusters
    }

    /// Whether the folder `path` of snapshot `id` has been asked for (folders load as
    /// they are opened).
    pub fn folder_requested(&self, id: &str, path: &str) -> bool {
        self.dirs.contains_key(&(id.to_string(), path.to_string()))
    }

    /// Every linked cluster's probe has answered.
    pub fn probed(&self) -> bool {
        self.clusters.iter().all(|c| c.facts.is_some())
    }

    /// No cluster's probe has answered yet (all are being probed again).
    pub fn probing(&self) -> bool {
        self.clusters.iter().all(|c| c.facts.is_none())
    }

    /// Every cloud account has answered the listing.
    pub fn cloud_listed(&self) -> bool {
        self.listing.is_empty()
    }

    /// The repository's snapshots have been read.
    pub fn snapshots_loaded(&self) -> bool {
        matches!(self.snapshots, Some(Load::Ready(_)))
    }

    /// The audit trail has been read.
    pub fn audit_loaded(&self) -> bool {
        matches!(self.audit, Some(Load::Ready(_)))
    }

    /// The user asked to leave.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// Selects item `i` of the wizard's current step, as a click on it does.
    pub fn pick(&mut self, i: usize) {
        if let Some(w) = &mut self.wizard {
            w.select(i);
            self.dirty = true;
        }
    }

    /// Selects the row with `key` on the current screen, as a click on it does; false
    /// when no visible row has that key.
    pub fn select_key(&mut self, key: &str) -> bool {
        let Some(rows) = self.current_rows() else {
            return false;
        };
        let visible = App::visible(&rows, &self.screen().list.filter);
        match visible
            .iter()
            .position(|i| rows[*i].key == key && !rows[*i].group)
        {
            Some(pos) => {
                let n = self.stack.len() - 1;
                self.stack[n].list.selected = pos;
                self.dirty = true;
                self.refresh_yaml();
                true
            }
            None => false,
        }
    }
}

//! Lists that follow the clusters: the shown list read again every [`LIVE_EVERY`]
//! (probes every [`PROBE_EVERY`]) without showing "loading", the selection kept on its
//! row across reloads, and `R` on the clusters reading kubeconfigs and clouds again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferry_providers::kubeconfig::{Linked, LinkedCluster};

use crate::app::{App, ClusterState, Load, View};
use crate::screens;

/// How often the shown list is read again by itself (namespaces, workloads, claims).
pub const LIVE_EVERY: Duration = Duration::from_secs(5);

/// How often the clusters are probed again by themselves while their list shows.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);

/// The longest the shown list waits between readings, however slow they are.
pub const LIVE_AT_MOST: Duration = Duration::from_secs(60);

/// How long to wait between readings that each took `took`: [`LIVE_EVERY`], or ten
/// times a slow reading (a large cluster, a slow server), at most [`LIVE_AT_MOST`], so
/// following a cluster never costs it or the console more than a tenth of the time.
pub fn pace(took: Duration) -> Duration {
    took.saturating_mul(10).clamp(LIVE_EVERY, LIVE_AT_MOST)
}

/// The quiet reloads waiting for their answer, and when each started.
#[derive(Debug, Default)]
pub struct InFlight(std::collections::BTreeMap<Quiet, Instant>);

impl InFlight {
    /// Notes `q` as started now; false if it is already waited for.
    pub fn start(&mut self, q: Quiet) -> bool {
        if self.0.contains_key(&q) {
            return false;
        }
        self.0.insert(q, Instant::now());
        true
    }

    /// Its answer came: how long it took, if it was a quiet reload.
    pub fn finish(&mut self, q: &Quiet) -> Option<Duration> {
        self.0.remove(q).map(|at| at.elapsed())
    }

    pub fn forget_probes(&mut self) {
        self.0.retain(|q, _| !matches!(q, Quiet::Probe(_)));
    }
}

/// A reload that keeps what is shown until its answer comes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quiet {
    Namespaces(String),
    NsObjects(String, String),
    Probe(String),
}

impl App {
    /// Runs `f`, which replaces rows, keeping the selection on the row it was on
    /// (by key) when that row is still there.
    pub(crate) fn keeping_selection(&mut self, f: impl FnOnce(&mut App)) {
        let before = self.selected_row().map(|r| r.key);
        f(self);
        if let Some(key) = before {
            self.select_key(&key);
        }
        self.select_first_selectable();
    }

    /// How long until [`App::poll`] has something to do.
    pub fn next_poll(&self) -> Duration {
        self.live_every.saturating_sub(self.polled.elapsed())
    }

    /// How long the shown list waits between readings now (see `live::pace`).
    pub fn live_every(&self) -> Duration {
        self.live_every
    }

    /// Reads the shown list again when [`LIVE_EVERY`] (or what `live::pace` makes of a
    /// slow reading) has passed (the clusters' probes every [`PROBE_EVERY`]), keeping
    /// what is shown until the answer comes.
    pub fn poll(&mut self) {
        if self.polled.elapsed() >= self.live_every {
            self.read_live();
        }
    }

    /// A quiet reading answered after `took`: the next waits in proportion.
    pub(crate) fn paced(&mut self, took: Option<Duration>) {
        if let Some(took) = took {
            self.live_every = pace(took);
        }
    }

    /// Reads the shown list again now, quietly (what [`App::poll`] does when due).
    pub fn read_live(&mut self) {
        self.polled = Instant::now();
        match self.screen().view.clone() {
            View::Clusters if self.probed.elapsed() >= PROBE_EVERY => {
                self.probed = Instant::now();
                let done: Vec<LinkedCluster> = self
                    .clusters
                    .iter()
                    .filter(|c| c.facts.is_some())
                    .map(|c| c.linked.clone())
                    .collect();
                for linked in done {
                    if self.in_flight.start(Quiet::Probe(linked.name.clone())) {
                        self.tasks.probe(linked);
                    }
                }
            }
            View::Namespaces { cluster } => self.reload_quietly(&cluster),
            View::Workloads { cluster, ns, .. }
            | View::Pods { cluster, ns }
            | View::Pvcs { cluster, ns } => {
                let Some(c) = self.cluster(&cluster) else {
                    return;
                };
                if c.ns.get(&ns).and_then(Load::ready).is_none() {
                    return;
                }
                let linked = c.linked.clone();
                if self.in_flight.start(Quiet::NsObjects(cluster, ns.clone())) {
                    self.tasks.ns_objects(linked, ns);
                }
            }
            _ => {}
        }
    }

    /// Reads the namespaces of `cluster` again if they were read, keeping them shown
    /// until the answer comes.
    pub(crate) fn reload_quietly(&mut self, cluster: &str) {
        let Some(c) = self.cluster(cluster) else {
            return;
        };
        if c.namespaces.as_ref().and_then(Load::ready).is_none() {
            return;
        }
        let linked = c.linked.clone();
        if self.in_flight.start(Quiet::Namespaces(cluster.to_string())) {
            self.tasks.namespaces(linked);
        }
    }

    /// Links a cluster found or created while the console runs, and probes it.
    pub(crate) fn add_cluster(&mut self, linked: LinkedCluster) {
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

    /// Reads the kubeconfig files again and lists the cloud accounts again: clusters
    /// that changed (a new port, a new credential) start over and are probed; the
    /// others keep what was read of them.
    pub(crate) fn relink(&mut self) {
        // A console given its clusters (not files) has nothing to read again.
        let fresh = if self.env.linked.sources.paths.is_empty() {
            self.env.linked.clone()
        } else {
            Linked::load(&self.env.linked.sources)
        };
        let mut old: Vec<ClusterState> = std::mem::take(&mut self.clusters);
        for linked in &fresh.clusters {
            let kept = old.iter().position(|c| {
                let l = &c.linked;
                l.cloud().is_none()
                    && l.name == linked.name
                    && l.server == linked.server
                    && l.user == linked.user
                    && l.context == linked.context
            });
            let mut state = match kept {
                Some(i) => old.swap_remove(i),
                None => ClusterState {
                    linked: linked.clone(),
                    facts: None,
                    namespaces: None,
                    ns: HashMap::new(),
                },
            };
            state.linked = linked.clone();
            state.facts = None;
            self.tasks.probe(linked.clone());
            self.clusters.push(state);
        }
        self.env.linked = fresh;
        self.in_flight.forget_probes();
        // Cloud clusters join again as their accounts answer.
        self.listing = self.env.clouds.origins();
        if !self.listing.is_empty() {
            self.tasks.cloud_clusters(&self.env.clouds);
        }
        self.probed = Instant::now();
        self.keeping_selection(|app| app.cluster_rows = screens::clusters::rows(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_readings_are_made_less_often() {
        assert_eq!(pace(Duration::from_millis(80)), LIVE_EVERY);
        assert_eq!(pace(Duration::from_millis(1200)), Duration::from_secs(12));
        assert_eq!(pace(Duration::from_secs(30)), LIVE_AT_MOST);
    }

    #[test]
    fn a_reload_is_waited_for_once_and_timed() {
        let mut f = InFlight::default();
        let q = Quiet::Namespaces("prod".into());
        assert!(f.start(q.clone()));
        assert!(!f.start(q.clone()), "not twice at once");
        assert!(f.finish(&q).is_some());
        assert!(
            f.finish(&q).is_none(),
            "an answer nobody waited for is not quiet"
        );
        assert!(f.start(Quiet::Probe("qa".into())));
        f.forget_probes();
        assert!(f.start(Quiet::Probe("qa".into())));
    }
}

//! Lists that follow the clusters: the shown list's objects are watched
//! ([`crate::follow`]) and its rows replaced as they change, the selection kept on its
//! row; ages tick once a second; the clusters are probed again every [`PROBE_EVERY`]
//! while their list shows; `R` on the clusters reads kubeconfigs and clouds again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferry_providers::kubeconfig::{Linked, LinkedCluster};

use crate::app::{App, ClusterState, View};
use crate::follow::Target;
use crate::screens;

/// How often a list that cannot be watched is read again (see `live::pace`).
pub const LIVE_EVERY: Duration = Duration::from_secs(5);

/// How often the clusters are probed again by themselves while their list shows.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);

/// The longest a followed list waits between readings or updates, however slow they are.
pub const LIVE_AT_MOST: Duration = Duration::from_secs(60);

/// How often a list showing ages is drawn again while nothing else changes.
pub const AGES_EVERY: Duration = Duration::from_secs(1);

/// How long to wait between readings that each took `took`: [`LIVE_EVERY`], or ten
/// times a slow reading (a large cluster, a slow server), at most [`LIVE_AT_MOST`], so
/// following a cluster never costs it or the console more than a tenth of the time.
pub fn pace(took: Duration) -> Duration {
    took.saturating_mul(10).clamp(LIVE_EVERY, LIVE_AT_MOST)
}

/// The probes waiting for their answer (by cluster name): a slow cluster never has two
/// at once.
#[derive(Debug, Default)]
pub struct InFlight(std::collections::BTreeSet<String>);

impl InFlight {
    /// Notes a probe of `cluster` as started; false if one is already waited for.
    pub fn start(&mut self, cluster: &str) -> bool {
        self.0.insert(cluster.to_string())
    }

    /// Its answer came.
    pub fn finish(&mut self, cluster: &str) {
        self.0.remove(cluster);
    }

    pub fn forget(&mut self) {
        self.0.clear();
    }
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

    /// What the shown view follows, if anything.
    fn wanted(&self) -> Option<Target> {
        match &self.screen().view {
            View::Namespaces { cluster } => Some(Target::Namespaces {
                cluster: cluster.clone(),
            }),
            View::Workloads { cluster, ns, .. }
            | View::Pods { cluster, ns }
            | View::Pvcs { cluster, ns } => Some(Target::Namespace {
                cluster: cluster.clone(),
                ns: ns.clone(),
            }),
            _ => None,
        }
    }

    /// Follows what the shown view lists, stopping what the view before followed.
    pub(crate) fn follow_shown(&mut self) {
        let want = self.wanted();
        if self.follow.as_ref().map(|f| &f.target) == want.as_ref() {
            return;
        }
        self.follow = None;
        let Some(target) = want else { return };
        if let Some(c) = self.cluster(target.cluster()) {
            self.follow = Some(self.tasks.follow(c.linked.clone(), target));
        }
    }

    /// Follows the shown view anew (its first answer replaces what shows: `R`).
    pub(crate) fn refollow(&mut self) {
        self.follow = None;
        self.follow_shown();
    }

    /// What the shown view follows now (tests and benches).
    pub fn following(&self) -> Option<&Target> {
        self.follow.as_ref().map(|f| &f.target)
    }

    /// Whether the shown list has ages to keep ticking.
    fn shows_ages(&self) -> bool {
        matches!(
            self.screen().view,
            View::Workloads { .. } | View::Pods { .. }
        )
    }

    /// How long until [`App::poll`] has something to do.
    pub fn next_poll(&self) -> Duration {
        let mut next = match self.screen().view {
            View::Clusters => PROBE_EVERY.saturating_sub(self.probed.elapsed()),
            _ => PROBE_EVERY,
        };
        if self.shows_ages() {
            next = next.min(AGES_EVERY.saturating_sub(self.aged.elapsed()));
        }
        next
    }

    /// Keeps the shown list following its cluster; probes the clusters again every
    /// [`PROBE_EVERY`] while they show; draws ages again every [`AGES_EVERY`].
    pub fn poll(&mut self) {
        self.follow_shown();
        if self.shows_ages() && self.aged.elapsed() >= AGES_EVERY {
            self.aged = Instant::now();
            self.dirty = true;
        }
        if self.screen().view == View::Clusters && self.probed.elapsed() >= PROBE_EVERY {
            self.probe_again();
        }
    }

    /// Probes again the clusters that answered a probe, quietly (what [`App::poll`] does
    /// every [`PROBE_EVERY`]).
    pub fn probe_again(&mut self) {
        self.probed = Instant::now();
        let done: Vec<LinkedCluster> = self
            .clusters
            .iter()
            .filter(|c| c.facts.is_some())
            .map(|c| c.linked.clone())
            .collect();
        for linked in done {
            if self.in_flight.start(&linked.name) {
                self.tasks.probe(linked);
            }
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
        self.in_flight.forget();
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
    fn a_probe_is_waited_for_once() {
        let mut f = InFlight::default();
        assert!(f.start("prod"));
        assert!(!f.start("prod"), "not twice at once");
        f.finish("prod");
        assert!(f.start("prod"));
        f.forget();
        assert!(f.start("prod"));
    }
}

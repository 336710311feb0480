//! The whole cluster from the clusters screen: `b`, `m` and `c` on a cluster read its
//! namespaces (all but the system and add-on ones, as `-A` takes them), then ask before
//! backing them up with every cluster-scoped object, or open the migrate or clone
//! wizard on them, where namespaces can be left out (`del` on its namespaces step).

use crate::app::{App, Ask, Mode, Then, Tone};
use crate::error::TaskError;
use crate::wizard_state::Purpose;
use ferry_k8s::capture::Scope;
use ferry_k8s::scope::Resources;

/// What the whole cluster is wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    Backup,
    Move(Purpose),
}

/// A cluster's namespaces as a whole-cluster job takes them, and the system and add-on
/// ones it leaves out.
#[derive(Debug, Clone)]
pub struct Listed {
    pub taken: Vec<String>,
    pub left_out: Vec<String>,
}

impl App {
    /// `b`, `m` or `c` on the clusters screen: reads the selected cluster's namespaces,
    /// then goes on in [`App::whole_listed`].
    pub(crate) fn whole_cluster(&mut self, what: Whole) {
        let Some(row) = self.selected_row() else {
            return;
        };
        let Some(c) = self.cluster(&row.key) else {
            return self.say(Tone::Normal, "select a cluster first");
        };
        match &c.facts {
            Some(Err(e)) => {
                let m = format!("{} is {}: {e}. R probes it again", row.key, e.word());
                return self.say(Tone::Error, m);
            }
            None => return self.say(Tone::Normal, format!("{} is still being probed", row.key)),
            Some(Ok(_)) => {}
        }
        let linked = c.linked.clone();
        self.say(
            Tone::Normal,
            format!("reading the namespaces of {}…", linked.name),
        );
        self.tasks.whole_cluster(linked, what);
    }

    /// The namespaces of `cluster` came: asks before a backup, or opens the wizard.
    pub(crate) fn whole_listed(
        &mut self,
        cluster: String,
        what: Whole,
        r: Result<Listed, TaskError>,
    ) {
        let listed = match r {
            Ok(l) => l,
            Err(e) => return self.say(Tone::Error, e.to_string()),
        };
        let left = if listed.left_out.is_empty() {
            String::new()
        } else {
            format!(
                " System and add-on namespaces stay: {}.",
                listed.left_out.join(", ")
            )
        };
        match what {
            Whole::Backup => {
                let data = match self.read_only_reason(&cluster) {
                    None => "with their volume data",
                    Some(_) => "without volume data (read-only)",
                };
                self.mode = Mode::Confirm(Ask {
                    otherwise: None,
                    title: "back up the whole cluster?",
                    question: format!(
                        "Back up the whole cluster {cluster}: {} namespaces ({}) {data}, and every cluster-scoped object, into the repository?{left}",
                        listed.taken.len(),
                        listed.taken.join(", ")
                    ),
                    then: Then::BackupWhole {
                        cluster,
                        namespaces: listed.taken,
                    },
                });
            }
            Whole::Move(purpose) => {
                if self.wizard.is_some() {
                    return;
                }
                self.open_wizard_on(cluster, Scope::Namespaces(listed.taken), purpose);
                if let Some(w) = &mut self.wizard {
                    w.whole = true;
                }
                if !left.is_empty() {
                    self.say(Tone::Normal, left.trim().to_string());
                }
            }
        }
    }

    /// Backs up `namespaces` of `cluster` and every cluster-scoped object.
    pub(crate) fn backup_whole(&mut self, cluster: String, namespaces: Vec<String>) {
        let title = format!(
            "backup {cluster} (whole cluster, {} namespaces)",
            namespaces.len()
        );
        let resources = Resources {
            cluster: true,
            ..Resources::default()
        };
        let tags = vec!["console".into(), "whole-cluster".into()];
        if self
            .start_backup(
                &cluster,
                Scope::Namespaces(namespaces),
                title,
                resources,
                tags,
            )
            .is_some()
        {
            self.say(
                Tone::Ok,
                format!("backup of the whole cluster {cluster} started: see :jobs"),
            );
        }
    }
}

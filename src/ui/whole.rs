//! The whole cluster from the clusters screen: `b`, `m` and `c` on a cluster read its
//! namespaces. The system and add-on ones start left out, as `-A` leaves them.
//!
//! - `b` opens a [`Pick`]: every namespace with a tick, which `space` changes, and
//!   `enter` backs up the ticked ones with every cluster-scoped object.
//! - `m` and `c` open the migrate or clone wizard on every namespace, the system ones
//!   left out; `del` on its namespaces step leaves one out or takes it back.

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent};

use crate::app::{App, Mode, Tone};
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

/// The namespaces a whole-cluster backup takes, as the user ticks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub cluster: String,
    /// Every namespace of the cluster, by name.
    pub items: Vec<PickItem>,
    /// The item under the cursor.
    pub cursor: usize,
    /// The first item shown (kept by drawing, so that the cursor stays in view).
    pub offset: std::cell::Cell<usize>,
    /// Whether the backup takes volume data (not when the console is read-only).
    pub volumes: bool,
}

/// A namespace of a [`Pick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickItem {
    pub name: String,
    /// A system or add-on namespace (`-A` leaves it out).
    pub system: bool,
    pub ticked: bool,
}

impl Pick {
    fn new(cluster: String, listed: Listed, volumes: bool) -> Pick {
        let mut items: Vec<PickItem> = (listed.taken.into_iter().map(|name| (name, false)))
            .chain(listed.left_out.into_iter().map(|name| (name, true)))
            .map(|(name, system)| PickItem {
                name,
                system,
                ticked: !system,
            })
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Pick {
            cluster,
            items,
            cursor: 0,
            offset: std::cell::Cell::new(0),
            volumes,
        }
    }

    /// The ticked namespaces, by name.
    pub fn ticked(&self) -> Vec<String> {
        let ticked = self.items.iter().filter(|i| i.ticked);
        ticked.map(|i| i.name.clone()).collect()
    }

    /// Moves the cursor or ticks; or says the pick is done, or closed.
    fn key(&mut self, code: KeyCode) -> PickKey {
        let last = self.items.len().saturating_sub(1);
        match code {
            KeyCode::Down | KeyCode::Char('j') => self.cursor = (self.cursor + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::PageDown => self.cursor = (self.cursor + 10).min(last),
            KeyCode::PageUp => self.cursor = self.cursor.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => self.cursor = 0,
            KeyCode::End | KeyCode::Char('G') => self.cursor = last,
            KeyCode::Char(' ') => {
                if let Some(i) = self.items.get_mut(self.cursor) {
                    i.ticked = !i.ticked;
                }
            }
            // Every namespace, or none when every one is ticked already.
            KeyCode::Char('a') => {
                let all = self.items.iter().all(|i| i.ticked);
                self.items.iter_mut().for_each(|i| i.ticked = !all);
            }
            // Back to what `-A` takes.
            KeyCode::Char('s') => self.items.iter_mut().for_each(|i| i.ticked = !i.system),
            KeyCode::Enter => return PickKey::Done,
            KeyCode::Esc | KeyCode::Char('q') => return PickKey::Closed,
            _ => {}
        }
        PickKey::Open
    }
}

/// What a key did to a [`Pick`].
enum PickKey {
    Open,
    Done,
    Closed,
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
        match what {
            Whole::Backup => {
                let volumes = self.read_only_reason(&cluster).is_none();
                // "reading the namespaces…" is over.
                self.status = None;
                self.mode = Mode::Pick(Pick::new(cluster, listed, volumes));
            }
            Whole::Move(purpose) => {
                if self.wizard.is_some() {
                    return;
                }
                let left_out: BTreeSet<String> = listed.left_out.iter().cloned().collect();
                let mut all = listed.taken;
                all.extend(listed.left_out);
                all.sort();
                self.open_wizard_on(cluster, Scope::Namespaces(all), purpose, Some(left_out));
            }
        }
    }

    /// A key while the whole-cluster backup's [`Pick`] is open.
    pub(crate) fn pick_key(&mut self, k: KeyEvent) {
        let Mode::Pick(pick) = &mut self.mode else {
            return;
        };
        match pick.key(k.code) {
            PickKey::Open => {}
            PickKey::Closed => {
                self.mode = Mode::Normal;
                self.say(Tone::Normal, "not done: nothing changed");
            }
            PickKey::Done => {
                let namespaces = pick.ticked();
                if namespaces.is_empty() {
                    let m = "tick at least one namespace (space), or esc to leave";
                    return self.say(Tone::Warn, m);
                }
                let cluster = pick.cluster.clone();
                self.mode = Mode::Normal;
                self.backup_whole(cluster, namespaces);
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

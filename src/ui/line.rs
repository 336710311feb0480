//! The `:` line: typing it (with `tab` completion) and running its commands.

use crossterm::event::{KeyCode, KeyEvent};

use crate::app::{App, Load, Mode, Tone, View};
use crate::keymap::Command;
use crate::page::LineCommand;

impl App {
    /// The namespace of the screens shown (a workloads or claims screen in the
    /// breadcrumbs), if any.
    pub fn current_ns(&self) -> Option<String> {
        self.stack.iter().rev().find_map(|s| match &s.view {
            View::Workloads { ns, .. } | View::Pods { ns, .. } | View::Pvcs { ns, .. } => {
                Some(ns.clone())
            }
            _ => None,
        })
    }

    /// The linked clusters `name` picks: the one called so (or with that context),
    /// else every one whose name or context contains it (any case).
    fn contexts_matching(&self, name: &str) -> Vec<String> {
        if let Some(c) = self
            .clusters
            .iter()
            .find(|c| c.linked.name == name || c.linked.context == name)
        {
            return vec![c.linked.name.clone()];
        }
        let n = name.to_lowercase();
        self.clusters
            .iter()
            .filter(|c| {
                c.linked.name.to_lowercase().contains(&n)
                    || c.linked.context.to_lowercase().contains(&n)
            })
            .map(|c| c.linked.name.clone())
            .collect()
    }

    /// Completes the `:` line: the command word, or the cluster after `ctx` (the
    /// longest common start of what matches).
    fn complete(&self, text: &str) -> String {
        let (word, arg) = match text.split_once(' ') {
            Some((w, a)) => (w, Some(a)),
            None => (text, None),
        };
        let candidates: Vec<String> = match arg {
            None => LineCommand::words()
                .filter(|w| w.starts_with(word))
                .map(str::to_string)
                .collect(),
            Some(a) if LineCommand::named(word) == Some(LineCommand::Context) => self
                .clusters
                .iter()
                .map(|c| c.linked.name.clone())
                .filter(|n| n.starts_with(a))
                .collect(),
            Some(a)
                if matches!(
                    LineCommand::named(word),
                    Some(LineCommand::Workloads | LineCommand::Claims)
                ) =>
            {
                self.current_cluster()
                    .and_then(|c| self.cluster(c))
                    .and_then(|c| c.namespaces.as_ref())
                    .and_then(Load::ready)
                    .map(|rows| {
                        rows.iter()
                            .filter(|r| !r.group && r.key.starts_with(a))
                            .map(|r| r.key.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Some(_) => Vec::new(),
        };
        let Some(first) = candidates.first() else {
            return text.to_string();
        };
        let common = candidates.iter().fold(first.clone(), |acc, c| {
            acc.chars()
                .zip(c.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect()
        });
        let done = candidates.len() == 1;
        match arg {
            None if done => format!("{common} "),
            None => common,
            Some(_) => format!("{word} {common}"),
        }
    }

    pub(crate) fn command_key(&mut self, k: KeyEvent, mut text: String) {
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
            KeyCode::Tab => self.mode = Mode::Command(self.complete(&text)),
            _ => {}
        }
    }

    /// Runs a `:` command.
    pub fn command(&mut self, cmd: &str) {
        let (word, arg) = match cmd.split_once(char::is_whitespace) {
            Some((w, a)) => (w, Some(a.trim())),
            None => (cmd, None),
        };
        if word.is_empty() {
            return;
        }
        let Some(line) = LineCommand::named(word) else {
            let known = LineCommand::usage(":", ", ");
            self.say(Tone::Error, format!("unknown command :{word}: use {known}"));
            return;
        };
        match (line, arg) {
            (LineCommand::Clusters, _) => self.reset_to(vec![View::Clusters]),
            (LineCommand::Namespaces, None) => match self.current_cluster().map(str::to_string) {
                Some(c) => self.reset_to(vec![View::Clusters, View::Namespaces { cluster: c }]),
                None => self.say(
                    Tone::Warn,
                    "no current cluster: pick one on :clusters or use :ctx NAME",
                ),
            },
            (LineCommand::Namespaces, Some(ns)) => match self.current_cluster().map(str::to_string)
            {
                Some(c) => self.reset_to(vec![
                    View::Clusters,
                    View::Namespaces { cluster: c.clone() },
                    View::Workloads {
                        cluster: c,
                        ns: ns.to_string(),
                        kind: None,
                    },
                ]),
                None => self.say(
                    Tone::Warn,
                    "no current cluster: pick one on :clusters or use :ctx NAME",
                ),
            },
            (LineCommand::Context, Some(name)) => match self.contexts_matching(name).as_slice() {
                [c] => {
                    let cluster = c.clone();
                    self.reset_to(vec![View::Clusters, View::Namespaces { cluster }])
                }
                [] => self.say(
                    Tone::Error,
                    format!("no linked cluster is called or contains {name:?}: see :clusters"),
                ),
                many => {
                    let text = format!(
                        "{} clusters match {name:?}: {}. Pick one (enter opens it)",
                        many.len(),
                        many.join(", ")
                    );
                    self.reset_to(vec![View::Clusters]);
                    self.screen_mut().list.filter = name.to_lowercase();
                    self.select_first_selectable();
                    self.say(Tone::Normal, text);
                }
            },
            // The clusters are the picker.
            (LineCommand::Context, None) => {
                self.reset_to(vec![View::Clusters]);
                self.say(Tone::Normal, "pick a cluster: enter opens its namespaces");
            }
            (
                LineCommand::Workloads
                | LineCommand::Deployments
                | LineCommand::StatefulSets
                | LineCommand::DaemonSets
                | LineCommand::Pods
                | LineCommand::Claims,
                ns,
            ) => {
                let Some(cluster) = self.current_cluster().map(str::to_string) else {
                    return self.say(
                        Tone::Warn,
                        "no current cluster: pick one on :clusters or use :ctx NAME",
                    );
                };
                let Some(ns) = ns.map(str::to_string).or_else(|| self.current_ns()) else {
                    return self.say(
                        Tone::Warn,
                        format!("no current namespace: name one (:{word} NS) or open one on :ns"),
                    );
                };
                let cluster2 = cluster.clone();
                let workloads = |kind| View::Workloads {
                    cluster: cluster2.clone(),
                    ns: ns.clone(),
                    kind,
                };
                let last = match line {
                    LineCommand::Claims => View::Pvcs {
                        cluster: cluster.clone(),
                        ns: ns.clone(),
                    },
                    LineCommand::Pods => View::Pods {
                        cluster: cluster.clone(),
                        ns: ns.clone(),
                    },
                    LineCommand::Deployments => workloads(Some("Deployment")),
                    LineCommand::StatefulSets => workloads(Some("StatefulSet")),
                    LineCommand::DaemonSets => workloads(Some("DaemonSet")),
                    _ => workloads(None),
                };
                self.reset_to(vec![View::Clusters, View::Namespaces { cluster }, last]);
            }
            (LineCommand::Snapshots, _) => self.reset_to(vec![View::Snapshots]),
            (LineCommand::Jobs, _) => self.reset_to(vec![View::Jobs]),
            (LineCommand::Audit, _) => self.reset_to(vec![View::Audit]),
            (LineCommand::Help, _) => self.mode = Mode::Help,
            (LineCommand::Quit, _) => self.action(Command::Quit),
        }
    }
}

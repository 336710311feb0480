//! The namespaces of a cluster: pods, workloads, claims and the storage they request.

use std::borrow::Cow;

use ratatui::layout::Constraint;

use crate::app::{App, Load, NsSummary, Row, Tone, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{self, Offer, Page};
use crate::wizard_state::Purpose;

/// The namespaces of a cluster.
pub struct Namespaces;

const OFFERS: &[Offer] = &[
    Offer::new(Command::Enter, "open the namespace's workloads").hint("open"),
    Offer::new(Command::Mark, "mark namespaces").hint("mark"),
    Offer::new(Command::MarkAll, "mark every namespace shown (again: none)"),
    Offer::new(Command::Backup, "back up the marked namespaces").hint("backup"),
    Offer::new(Command::Migrate, "migrate them to another cluster")
        .hint("migrate")
        .changes(),
    Offer::new(Command::Clone, "clone them into new namespaces")
        .hint("clone")
        .changes(),
];

impl Page for Namespaces {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &[
                "NAMESPACE",
                "STATUS",
                "WORKLOADS",
                "PODS",
                "PVCS",
                "REQUESTED",
            ],
            vec![
                Fill(2),
                Length(12),
                Length(9),
                Length(6),
                Length(6),
                Length(10),
            ],
        )
    }

    /// Requested bytes, then pods.
    fn narrow(&self) -> &'static [usize] {
        &[5, 3]
    }

    fn offers(&self) -> &'static [Offer] {
        OFFERS
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        let View::Namespaces { cluster } = view else {
            return Load::Loading;
        };
        page::held(
            app.cluster(cluster).and_then(|c| c.namespaces.as_ref()),
            Vec::as_slice,
        )
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        let View::Namespaces { cluster } = view else {
            return;
        };
        if let Some(c) = app.cluster_mut(cluster)
            && (force || c.namespaces.is_none())
        {
            // The list follows the cluster: a new follow reads it all first.
            c.namespaces = Some(Load::Loading);
            app.refollow();
        }
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        match command {
            Command::Enter => {
                if let (View::Namespaces { cluster }, Some(row)) = (view, app.selected_row()) {
                    app.push(View::Workloads {
                        cluster: cluster.clone(),
                        ns: row.key,
                        kind: None,
                    })
                }
            }
            Command::Mark => app.toggle_mark(),
            Command::MarkAll => app.mark_all(),
            Command::Backup => app.backup(view),
            Command::Migrate => app.open_live_wizard(view, Purpose::Migrate),
            Command::Clone => app.open_live_wizard(view, Purpose::Clone),
            _ => {}
        }
    }
}

pub fn rows(list: &[NsSummary]) -> Vec<Row> {
    list.iter()
        .map(|n| {
            Row::new(
                n.name.clone(),
                vec![
                    n.name.clone(),
                    n.status.clone(),
                    n.workloads.to_string(),
                    n.pods.to_string(),
                    n.pvcs.to_string(),
                    if n.requested == 0 {
                        "-".into()
                    } else {
                        format::bytes(n.requested)
                    },
                ],
            )
            .tone(if n.status == "Terminating" {
                Tone::Warn
            } else {
                Tone::Normal
            })
        })
        .collect()
}

//! The clusters screen: every linked cluster grouped by where it comes from (a
//! kubeconfig file, a cloud account's region), filled in as the probes answer; a source
//! that could not be read or listed is a row of its group saying why.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ratatui::layout::Constraint;

use crate::app::{App, Load, Row, Tone, View};
use crate::keymap::Command;
use crate::page::{Offer, Page};
use crate::whole::Whole;
use crate::wizard_state::Purpose;
use ferry_providers::kubeconfig::Origin;

/// The clusters screen (the root).
pub struct Clusters;

const OFFERS: &[Offer] = &[
    Offer::new(Command::Enter, "open the cluster's namespaces").hint("open"),
    Offer::new(
        Command::Backup,
        "back up the whole cluster: its namespaces (not the system ones) and every cluster-scoped object",
    )
    .hint("backup all"),
    Offer::new(Command::Migrate, "migrate the whole cluster to another").changes(),
    Offer::new(Command::Clone, "clone the whole cluster").changes(),
];

impl Page for Clusters {
    fn name(&self) -> &'static str {
        "clusters"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length, Min};
        (
            &[
                "CLUSTER",
                "STATUS",
                "VERSION",
                "NODES",
                "DEFAULT CLASS",
                "MAY",
                "SERVER",
            ],
            vec![
                Min(18),
                Length(16),
                Min(9),
                Length(5),
                Min(14),
                Length(24),
                Fill(1),
            ],
        )
    }

    /// Server, nodes, default class, version: the name, status and what the user may do stay.
    fn narrow(&self) -> &'static [usize] {
        &[6, 3, 4, 2]
    }

    fn offers(&self) -> &'static [Offer] {
        OFFERS
    }

    fn rows<'a>(&self, app: &'a App, _: &View) -> Load<Cow<'a, [Row]>> {
        Load::Ready(Cow::Borrowed(&app.cluster_rows))
    }

    fn load(&self, app: &mut App, _: &View, force: bool) {
        if force {
            app.relink();
        }
    }

    fn run(&self, app: &mut App, _: &View, command: Command) {
        match command {
            Command::Backup => return app.whole_cluster(Whole::Backup),
            Command::Migrate => return app.whole_cluster(Whole::Move(Purpose::Migrate)),
            Command::Clone => return app.whole_cluster(Whole::Move(Purpose::Clone)),
            _ => {}
        }
        let (Command::Enter, Some(row)) = (command, app.selected_row()) else {
            return;
        };
        match app
            .env
            .linked
            .broken
            .iter()
            .find(|b| broken_key(&b.origin) == row.key)
        {
            Some(b) => {
                let m = format!("{}: {}", b.origin.label(), b.error);
                app.say(Tone::Error, m);
            }
            None if row.key.starts_with(LISTING) => app.say(
                Tone::Normal,
                "still listing this account's clusters: they appear here when it answers",
            ),
            None => match app.cluster(&row.key).and_then(|c| c.facts.as_ref()) {
                // Its namespaces would fail the same way: say why, and what to do.
                Some(Err(e)) => {
                    let m = format!("{} is {}: {e}. R probes it again", row.key, e.word());
                    app.say(Tone::Error, m);
                }
                _ => app.push(View::Namespaces { cluster: row.key }),
            },
        }
    }
}

/// The start of the key of the row of an origin still being listed.
pub const LISTING: &str = "listing ";

/// The key of the row of a broken source (never a cluster's name: those have no spaces).
pub fn broken_key(origin: &Origin) -> String {
    format!("broken {}", origin.label())
}

/// The rows: a heading per origin, then why it is broken, or its clusters.
pub fn rows(app: &App) -> Vec<Row> {
    let mut groups: BTreeMap<Origin, Vec<usize>> = BTreeMap::new();
    for (i, c) in app.clusters.iter().enumerate() {
        groups.entry(c.linked.origin()).or_default().push(i);
    }
    for o in app
        .env
        .linked
        .broken
        .iter()
        .map(|b| &b.origin)
        .chain(&app.listing)
    {
        groups.entry(o.clone()).or_default();
    }
    let mut out = Vec::with_capacity(app.clusters.len() + groups.len());
    for (origin, members) in groups {
        out.push(Row::group(origin.label()));
        for b in app.env.linked.broken.iter().filter(|b| b.origin == origin) {
            let what = match origin {
                Origin::Kubeconfig(_) => "file not read",
                Origin::Cloud { .. } => "not listed",
            };
            out.push(
                Row::new(
                    broken_key(&origin),
                    vec![
                        "—".into(),
                        what.into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "enter: why".into(),
                        b.error.clone(),
                    ],
                )
                .tone(Tone::Error),
            );
        }
        for i in members {
            let c = &app.clusters[i];
            let name = if c.linked.current {
                format!("{} *", c.linked.name)
            } else {
                c.linked.name.clone()
            };
            let (cells, tone) = match &c.facts {
                None => (
                    vec![
                        "probing…".to_string(),
                        "".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                    ],
                    Tone::Dim,
                ),
                Some(Ok(f)) => (
                    vec![
                        format!("ok {}ms", f.latency_ms),
                        f.version.clone(),
                        f.nodes.to_string(),
                        f.default_storage_class().unwrap_or("-").to_string(),
                        f.permissions.summary(),
                    ],
                    Tone::Normal,
                ),
                Some(Err(e)) => (
                    vec![
                        e.word().to_string(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        e.to_string(),
                    ],
                    Tone::Error,
                ),
            };
            let mut all = vec![name];
            all.extend(cells);
            all.push(c.linked.server.clone());
            out.push(Row::new(c.linked.name.clone(), all).tone(tone));
        }
        // More of this origin may come: its known clusters stay first.
        if app.listing.contains(&origin) {
            out.push(
                Row::new(
                    format!("{LISTING}{}", origin.label()),
                    vec!["—".into(), "listing…".into()],
                )
                .tone(Tone::Dim),
            );
        }
    }
    out
}

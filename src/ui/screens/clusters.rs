//! The clusters screen: every linked cluster grouped by where it comes from (a
//! kubeconfig file, a cloud account's region), filled in as the probes answer; a source
//! that could not be read or listed is a row of its group saying why.

use std::collections::BTreeMap;

use crate::app::{App, Row, Tone};
use ferry_providers::kubeconfig::Origin;

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
                        "unreachable".to_string(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        e.clone(),
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

//! The clusters screen: every linked cluster grouped by where it comes from, filled in
//! as the probes answer.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ui::app::{App, Row, Tone};

/// Where a linked cluster comes from: the group it is listed under. Cloud accounts
/// (provider, account, region) become further variants; the screen groups by this.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A kubeconfig file.
    Kubeconfig(PathBuf),
    /// A cloud account's region: provider (`aws`), account (profile), region.
    Cloud {
        provider: String,
        account: String,
        region: String,
    },
}

impl Origin {
    pub fn label(&self) -> String {
        match self {
            Origin::Kubeconfig(p) => format!("kubeconfig {}", p.display()),
            Origin::Cloud {
                provider,
                account,
                region,
            } => format!("{provider} {account} {region}")
                .trim_end()
                .to_string(),
        }
    }
}

/// The rows: a heading per origin, then its clusters.
pub fn rows(app: &App) -> Vec<Row> {
    let mut groups: BTreeMap<Origin, Vec<usize>> = BTreeMap::new();
    for (i, c) in app.clusters.iter().enumerate() {
        let origin = match c.linked.cloud_group() {
            Some((provider, account, region)) => Origin::Cloud {
                provider,
                account,
                region,
            },
            None => Origin::Kubeconfig(c.linked.sources.first().cloned().unwrap_or_default()),
        };
        groups.entry(origin).or_default().push(i);
    }
    let mut out = Vec::with_capacity(app.clusters.len() + groups.len());
    for (origin, members) in groups {
        out.push(Row::group(origin.label()));
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
    }
    out
}

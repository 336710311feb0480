//! `ferry audit`: the repository's audit trail, as a table or JSON lines.

use clap::Args;

use super::{Context, Exit};
use ferry_console::format;
use ferry_policy::audit;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print JSON lines (one record per line), e.g. to export the trail
    #[arg(long)]
    pub json: bool,
    /// Only the newest N records
    #[arg(long)]
    pub last: Option<usize>,
}

pub fn run(ctx: &Context, a: AuditArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let (records, warnings) = audit::read(&repo)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let skip = a.last.map_or(0, |n| records.len().saturating_sub(n));
    for r in records.iter().skip(skip) {
        if a.json {
            say!("{}", serde_json::to_string(r)?);
            continue;
        }
        let who = match r.identities.as_slice() {
            [] => format!("{}@{}", r.local_user, r.host),
            ids => ids
                .iter()
                .map(|i| format!("{}@{}", i.username, i.cluster))
                .collect::<Vec<_>>()
                .join(","),
        };
        let route = match (&r.from, &r.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (Some(f), None) => f.clone(),
            (None, Some(t)) => format!("-> {t}"),
            (None, None) => "-".into(),
        };
        say!(
            "{}  {:<8} {:<9} {}  {}  {}{}",
            r.time.format("%Y-%m-%d %H:%M:%S"),
            r.action.name(),
            r.outcome.to_string(),
            who,
            route,
            format::bytes(r.bytes),
            r.rule.map(|i| format!("  rule {i}")).unwrap_or_default()
        );
        match (&r.from_cluster, &r.to_cluster) {
            (Some(f), Some(t)) => say!("    clusters: {f} -> {t}"),
            (Some(f), None) => say!("    cluster: {f}"),
            (None, Some(t)) => say!("    cluster: -> {t}"),
            (None, None) => {}
        }
        if !r.allowed {
            say!("    {}", r.reason);
        }
        if let Some(p) = &r.plan {
            say!("    plan: {p}");
        }
        if let Some(d) = &r.data_path {
            say!("    data: {d}");
        }
        if let Some(d) = &r.detail {
            say!("    {d}");
        }
    }
    if records.is_empty() && !a.json {
        eprintln!("the audit trail is empty: jobs that move workloads are recorded here");
    }
    Ok(if warnings.is_empty() {
        Exit::SUCCESS
    } else {
        Exit::from(4)
    })
}

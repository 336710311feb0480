//! `ferry snapshots`, `ls`, `diff`, `stats`.

use clap::Args;

use super::{Context, Exit};
use ferry_console::format;
use ferry_repo::snapshot::{self, Snapshot};
use ferry_repo::tree;
use ferry_repo::{diff as ediff, stats as estats};

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot ID prefix or `latest`
    pub snapshot: String,
    /// Only below this path inside the snapshot
    #[arg(default_value = "")]
    pub path: String,
    /// Show mode, size and time
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to count [default: all]
    pub snapshots: Vec<String>,
}

/// Loads what can be read of the index; a damaged index file is a warning, not the
/// end of a listing (what it hides is reported where it is needed).
fn load_index(repo: &ferry_repo::Repository) -> anyhow::Result<()> {
    for (name, e) in repo.load_index_tolerant()? {
        eprintln!("warning: index file {name} cannot be read ({e})");
    }
    Ok(())
}

pub fn list(ctx: &Context, a: SnapshotsArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let (snaps, bad) = snapshot::list(&repo)?;
    for (name, e) in &bad {
        eprintln!("warning: snapshot file {name} is unreadable: {e}");
    }
    if a.json {
        let v: Vec<serde_json::Value> = snaps
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["id"] = serde_json::Value::String(s.id.to_hex());
                v
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::SUCCESS);
    }
    if snaps.is_empty() {
        say!("no snapshots yet: make one with `ferry backup <folder>`");
        return Ok(Exit::SUCCESS);
    }
    say!(
        "{:<8}  {:<19}  {:<12}  {:>10}  {:>10}  {:<}",
        "ID",
        "TIME (UTC)",
        "HOST",
        "SIZE",
        "ADDED",
        "PATHS"
    );
    for s in &snaps {
        say!(
            "{:<8}  {:<19}  {:<12}  {:>10}  {:>10}  {}{}",
            s.id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.host,
            format::bytes(s.summary.bytes),
            format::bytes(s.summary.bytes_stored),
            s.paths.join(","),
            if s.tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", s.tags.join(","))
            }
        );
    }
    say!("{} snapshot(s)", snaps.len());
    Ok(Exit::SUCCESS)
}

pub fn ls(ctx: &Context, a: LsArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    load_index(&repo)?;
    let snap = snapshot::find(&repo, &a.snapshot)?;
    let node = tree::find_path(&repo, &snap.tree, &a.path)?.ok_or_else(|| {
        ferry_repo::Error::PathNotInSnapshot {
            snapshot: snap.id.short(),
            path: a.path.clone(),
        }
    })?;
    let base = std::path::PathBuf::from("/").join(a.path.trim_start_matches('/'));
    let print = |p: &std::path::Path, n: &tree::Node| {
        let mut name = p.display().to_string();
        if let Some(t) = &n.target {
            name.push_str(&format!(" -> {}", t.lossy()));
        }
        if a.long {
            let t = chrono::DateTime::from_timestamp(n.mtime_ns.div_euclid(1_000_000_000), 0)
                .unwrap_or_default();
            say!(
                "{} {:>5} {:>5} {:>12} {} {}",
                format::mode(n.kind, n.mode),
                n.uid,
                n.gid,
                n.size,
                t.format("%Y-%m-%d %H:%M:%S"),
                name
            );
        } else {
            say!("{name}");
        }
    };
    match node.subtree {
        Some(sub) => tree::walk(&repo, &sub, &base, &mut |p, n| {
            print(p, n);
            Ok(true)
        })?,
        None => print(&base, &node),
    }
    Ok(Exit::SUCCESS)
}

pub fn diff(ctx: &Context, a: DiffArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    load_index(&repo)?;
    let (all, _) = snapshot::list(&repo)?;
    let from = snapshot::resolve(&all, &a.from)?;
    let to = snapshot::resolve(&all, &a.to)?;
    let changes = ediff::diff(&repo, &from.tree, &to.tree)?;
    let (mut added, mut removed, mut modified) = (0, 0, 0);
    for c in &changes {
        say!("{}  /{}", c.change.symbol(), c.path.display());
        match c.change {
            ediff::Change::Added => added += 1,
            ediff::Change::Removed => removed += 1,
            _ => modified += 1,
        }
    }
    say!(
        "{added} added, {removed} removed, {modified} changed between {} and {}",
        from.id.short(),
        to.id.short()
    );
    Ok(Exit::SUCCESS)
}

pub fn stats(ctx: &Context, a: StatsArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    load_index(&repo)?;
    let (all, _) = snapshot::list(&repo)?;
    let chosen: Vec<Snapshot> = if a.snapshots.is_empty() {
        all.clone()
    } else {
        a.snapshots
            .iter()
            .map(|s| snapshot::resolve(&all, s).cloned())
            .collect::<Result<_, _>>()?
    };
    let s = estats::stats(&repo, &chosen)?;
    say!("snapshots:            {}", s.snapshots);
    say!("files:                {}", s.files);
    say!("raw size:             {}", format::bytes(s.raw_bytes));
    say!(
        "deduplicated size:    {} ({:.2}x)",
        format::bytes(s.dedup_bytes),
        s.dedup_ratio()
    );
    say!(
        "stored size:          {} ({:.1}% of deduplicated)",
        format::bytes(s.stored_bytes),
        if s.dedup_bytes > 0 {
            100.0 * s.stored_bytes as f64 / s.dedup_bytes as f64
        } else {
            0.0
        }
    );
    say!("blobs:                {}", s.blobs);
    say!(
        "repository:           {} in {} pack(s)",
        format::bytes(s.repo_bytes),
        s.packs
    );
    Ok(Exit::SUCCESS)
}

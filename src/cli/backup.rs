//! `ferry backup`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{Context, Exit};
use ferry_console::{format, progress::run_with_progress};
use ferry_repo::backup::{self, BackupOptions, ParentChoice};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The folder to back up (or use --context/-n to back up from a cluster)
    pub source: Option<PathBuf>,
    /// Back up from this linked cluster (see `ferry clusters`) [default: current context]
    #[arg(long = "context", short = 'c')]
    pub context: Option<String>,
    #[command(flatten)]
    pub select: super::moving::SelectArgs,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Compare against this snapshot instead of the newest one of the same folder
    #[arg(long, conflicts_with = "no_parent")]
    pub parent: Option<String>,
    /// Read every file, even if unchanged since the last snapshot
    #[arg(long)]
    pub no_parent: bool,
    /// Host name to record [default: this host]
    #[arg(long)]
    pub host: Option<String>,
    /// Limit how fast files are read, e.g. 100MiB (per second)
    #[arg(long, value_parser = super::parse_rate)]
    pub limit_read: Option<u64>,
    /// Worker threads [default: twice the cores]
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(ctx: &Context, a: BackupArgs) -> anyhow::Result<Exit> {
    let source = match (a.source, !a.select.names_namespaces()) {
        (Some(_), false) => {
            anyhow::bail!("back up either a folder or namespaces (-n), not both")
        }
        (None, false) => {
            return super::moving::backup(
                ctx,
                a.context.as_deref(),
                &a.select,
                a.tags,
                a.parent,
                a.no_parent,
            );
        }
        (None, true) => anyhow::bail!(
            "say what to back up: a folder (`ferry backup DIR`) or namespaces of a cluster (`ferry backup --context C -n NS`, or -A for all)"
        ),
        (Some(s), true) => s,
    };
    let repo = ctx.open()?;
    let opts = BackupOptions {
        source: source.clone(),
        tags: a.tags,
        parent: match (a.no_parent, a.parent) {
            (true, _) => ParentChoice::None,
            (false, Some(p)) => ParentChoice::Snapshot(p),
            (false, None) => ParentChoice::Auto,
        },
        host: a.host,
        read_limit: a.limit_read,
        threads: a.threads,
    };
    let progress = ctx.progress();
    let out = run_with_progress(&progress, ctx.global.quiet, || {
        backup::backup(&repo, &opts, &progress)
    })
    .with_context(|| format!("backup of {} failed", source.display()))?;
    let s = &out.snapshot.summary;
    say!(
        "snapshot {} saved: {} files, {} dirs, {} ({} new, {} unchanged, {} changed files)",
        out.snapshot.id.short(),
        s.files,
        s.dirs,
        format::bytes(s.bytes),
        s.files_new,
        s.files_unmodified,
        s.files_changed
    );
    say!(
        "added {} of new data, {} stored, in {:.1}s ({})",
        format::bytes(s.bytes_new),
        format::bytes(s.bytes_stored),
        s.duration_secs,
        format::rate(s.bytes as f64 / s.duration_secs.max(1e-6))
    );
    if !out.warnings.is_empty() {
        eprintln!(
            "{} file(s) or folder(s) could not be read and were skipped:",
            out.warnings.len()
        );
        for w in &out.warnings {
            eprintln!("  {w}");
        }
        return Ok(Exit::from(3));
    }
    Ok(Exit::SUCCESS)
}

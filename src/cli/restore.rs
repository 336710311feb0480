//! `ferry restore`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{Context, Exit};
use ferry_console::{format, progress::run_with_progress};
use ferry_repo::restore::{self, RestoreOptions};
use ferry_repo::snapshot;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot (ID prefix or `latest`), optionally with a path inside it:
    /// `latest:/logs/app`
    pub snapshot: String,
    /// Where to restore files (a folder backup, or single files of a captured volume:
    /// `SNAP:volumes/NS/CLAIM/path`)
    #[arg(short, long)]
    pub target: Option<PathBuf>,
    /// Restore a Kubernetes capture into this linked cluster [default: current context]
    #[arg(long = "context", short = 'c', conflicts_with = "target")]
    pub context: Option<String>,
    #[command(flatten)]
    pub k8s: super::moving::K8sRestoreArgs,
    /// Image of the volume mover pods (Kubernetes restores)
    #[arg(long)]
    pub mover_image: Option<String>,
    /// A path inside the snapshot (alternative to SNAPSHOT:PATH)
    #[arg(long)]
    pub path: Option<String>,
    /// Restore into a folder that is not empty, replacing files at restored paths
    #[arg(long)]
    pub overwrite: bool,
    /// Worker threads
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(ctx: &Context, a: RestoreArgs) -> anyhow::Result<Exit> {
    let Some(target) = a.target.clone() else {
        return super::moving::restore(
            ctx,
            &a.snapshot,
            a.context.as_deref(),
            a.mover_image.as_deref(),
            a.k8s,
        );
    };
    let repo = ctx.open()?;
    let (spec, inner) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), p.to_string()),
        None => (a.snapshot.clone(), a.path.clone().unwrap_or_default()),
    };
    let snap = snapshot::find(&repo, &spec)?;
    let opts = RestoreOptions {
        target: target.clone(),
        path: inner,
        overwrite: a.overwrite,
        threads: a.threads,
    };
    let progress = ctx.progress();
    let started = std::time::Instant::now();
    let out = run_with_progress(&progress, ctx.global.quiet, || {
        restore::restore(&repo, &snap, &opts, &progress)
    })
    .with_context(|| {
        format!(
            "restore of snapshot {} into {} failed",
            snap.id.short(),
            target.display()
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    say!(
        "restored {} files, {} dirs, {} from snapshot {} into {} in {:.1}s ({})",
        out.files,
        out.dirs,
        format::bytes(out.bytes),
        snap.id.short(),
        target.display(),
        secs,
        format::rate(out.bytes as f64 / secs.max(1e-6))
    );
    if !out.warnings.is_empty() {
        eprintln!(
            "{} warning(s): some metadata or special files could not be restored (see above)",
            out.warnings.len()
        );
    }
    Ok(Exit::SUCCESS)
}

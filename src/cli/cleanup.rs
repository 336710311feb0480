//! `ferry cleanup --context C`: removes what dead jobs left in a cluster (mover pods,
//! temporary claims, CSI snapshots, leases), leaving running jobs' objects alone.

use clap::Args;

use super::kube::connect;
use super::{Context, Exit};
use ferry_k8s::lease;
use ferry_k8s::mover::MoverOptions;

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The cluster to clean up [default: the current context]
    #[arg(long)]
    pub context: Option<String>,
    /// Namespaces to look in when the cluster-wide list is not allowed (repeatable)
    #[arg(short = 'n', long = "namespace")]
    pub namespaces: Vec<String>,
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Exit status 3 when something could not be listed or removed.
pub fn run(ctx: &Context, a: CleanupArgs) -> anyhow::Result<Exit> {
    let (linked, client) = connect(ctx, a.context.as_deref())?;
    let limit = MoverOptions::default().stall_timeout;
    let swept = ctx
        .rt
        .block_on(lease::sweep(&client, &a.namespaces, a.dry_run, limit));
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for f in &swept.removed {
        say!("{verb} {f}");
    }
    for f in &swept.kept {
        say!("kept {f}: its job is still running");
    }
    say!(
        "{}: {} object(s) of dead jobs {verb}, {} of running jobs kept",
        linked.name,
        swept.removed.len(),
        swept.kept.len()
    );
    for p in &swept.problems {
        eprintln!("warning: {p}");
    }
    Ok(if swept.problems.is_empty() {
        Exit::SUCCESS
    } else {
        Exit::from(3)
    })
}

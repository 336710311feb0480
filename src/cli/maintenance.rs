//! `ferry check`, `forget`, `prune`, `unlock`.

use anyhow::{Context as _, bail};
use clap::Args;

use super::policy::{Place, job_failed, say_allowed, say_unrecorded};
use super::{Context, Exit};
use ferry_console::{format, progress::run_with_progress};
use ferry_jobs::Removal;
use ferry_k8s::capture::CaptureMeta;
use ferry_policy::Action as PolicyAction;
use ferry_repo::Repository;
use ferry_repo::check::{self, CheckOptions};
use ferry_repo::forget::{self, Retention};
use ferry_repo::lock;
use ferry_repo::prune::{self, PruneOptions};
use ferry_repo::snapshot;
use ferry_repo::snapshot::Snapshot;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read and verify every pack (slow: reads the whole repository)
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ID prefixes); or use --keep-* rules
    pub snapshots: Vec<String>,
    #[arg(long)]
    pub keep_last: Option<usize>,
    #[arg(long)]
    pub keep_hourly: Option<usize>,
    #[arg(long)]
    pub keep_daily: Option<usize>,
    #[arg(long)]
    pub keep_weekly: Option<usize>,
    #[arg(long)]
    pub keep_monthly: Option<usize>,
    #[arg(long)]
    pub keep_yearly: Option<usize>,
    /// Keep snapshots younger than this many days
    #[arg(long)]
    pub keep_within_days: Option<u32>,
    /// Keep snapshots with this tag (repeatable)
    #[arg(long)]
    pub keep_tag: Vec<String>,
    /// Show what would be removed
    #[arg(long)]
    pub dry_run: bool,
    /// Prune after forgetting
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Rewrite packs with more than this percentage unused
    #[arg(long, default_value_t = 20.0)]
    pub max_unused: f64,
    /// Show what would be done
    #[arg(long)]
    pub dry_run: bool,
    /// Remove incomplete uploads (left by failed writes) older than this, e.g. 6h, 30m
    #[arg(long, default_value = "6h", value_parser = parse_age)]
    pub incomplete_upload_age: std::time::Duration,
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    ferry_repo::backend::retry::parse_duration(s)
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones (only when no job runs anywhere)
    #[arg(long)]
    pub all: bool,
}

pub fn check(ctx: &Context, a: CheckArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let progress = ctx.progress();
    let opts = CheckOptions {
        read_data: a.read_data,
        threads: None,
    };
    let r = run_with_progress(&progress, ctx.global.quiet, || {
        check::check(&repo, &opts, &progress)
    })?;
    for n in &r.notes {
        say!("note: {n}");
    }
    for e in &r.errors {
        say!("error: {e}");
    }
    for u in &r.unreadable {
        say!("unreadable: {u}");
    }
    if !r.affected_snapshots.is_empty() {
        say!("snapshots affected by the damage (they cannot be fully restored):");
        for s in &r.affected_snapshots {
            say!("  {s}");
        }
    }
    if !r.unverified_snapshots.is_empty() {
        say!("snapshots not fully verified (something they need could not be read):");
        for s in &r.unverified_snapshots {
            say!("  {s}");
        }
    }
    say!(
        "checked {} snapshot(s), {} pack(s), {} blob(s){}",
        r.snapshots,
        r.packs,
        r.blobs,
        if a.read_data {
            format!(", read {}", format::bytes(r.bytes_read))
        } else {
            String::new()
        }
    );
    if !r.ok() {
        say!("{} error(s) found", r.errors.len());
        Ok(Exit::from(4))
    } else if !r.complete() {
        say!(
            "no damage was found, but {} item(s) could not be read from the storage even after retrying, so the check is incomplete: run it again when the store answers (a longer --retry-budget waits longer)",
            r.unreadable.len()
        );
        Ok(Exit::FAILURE)
    } else {
        say!("no errors were found");
        Ok(Exit::SUCCESS)
    }
}

pub fn forget(ctx: &Context, a: ForgetArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let policy = Retention {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a
            .keep_within_days
            .map(|d| chrono::Duration::days(i64::from(d))),
        tags: a.keep_tag.clone(),
    };
    if !a.snapshots.is_empty() {
        if !policy.is_empty() {
            bail!("give either snapshot IDs or --keep-* rules, not both");
        }
        let (all, _) = snapshot::list(&repo)?;
        let ids = a
            .snapshots
            .iter()
            .map(|s| snapshot::resolve(&all, s).map(|s| s.id))
            .collect::<Result<Vec<_>, _>>()?;
        if a.dry_run {
            for id in &ids {
                say!("would remove {}", id.short());
            }
        } else {
            let chosen: Vec<&Snapshot> = ids
                .iter()
                .filter_map(|id| all.iter().find(|s| &s.id == id))
                .collect();
            remove(ctx, &repo, &chosen, ids.clone())?;
            say!("removed {} snapshot(s)", ids.len());
        }
    } else {
        if policy.is_empty() {
            bail!(
                "no snapshots named and no --keep-* rule given: nothing to do (this protects you from removing everything)"
            );
        }
        // Which snapshots the rules remove, then whether the policy lets this user
        // remove the captures among them, then the removal.
        let decisions = forget::forget(&repo, &policy, true)?;
        if !a.dry_run {
            let chosen: Vec<&Snapshot> = decisions
                .iter()
                .filter(|d| !d.keep)
                .map(|d| &d.snapshot)
                .collect();
            let ids: Vec<_> = chosen.iter().map(|s| s.id).collect();
            remove(ctx, &repo, &chosen, ids)?;
        }
        let mut removed = 0;
        for d in &decisions {
            let s = &d.snapshot;
            if d.keep {
                say!(
                    "keep    {}  {}  {}",
                    s.id.short(),
                    s.time.format("%Y-%m-%d %H:%M"),
                    d.reasons.join(",")
                );
            } else {
                removed += 1;
                say!(
                    "{}  {}  {}",
                    if a.dry_run {
                        "would remove"
                    } else {
                        "remove  "
                    },
                    s.id.short(),
                    s.time.format("%Y-%m-%d %H:%M")
                );
            }
        }
        say!(
            "{} kept, {} {}",
            decisions.len() - removed,
            removed,
            if a.dry_run {
                "would be removed"
            } else {
                "removed"
            }
        );
    }
    if a.prune && !a.dry_run {
        // The repository stays open: the snapshots are already removed, so a failure
        // from here on must say that the forget is done and only the space is not freed.
        return prune_repo(
            ctx,
            &repo,
            PruneArgs {
                max_unused: 20.0,
                dry_run: false,
                incomplete_upload_age: ferry_repo::prune::INCOMPLETE_UPLOAD_AGE,
            },
        )
        .context(
            "the snapshots were removed, but the prune that frees their data failed; the repository is consistent (nothing is half done): run `ferry prune` to free the space",
        );
    }
    Ok(Exit::SUCCESS)
}

/// Removes the snapshots `ids` ([`ferry_jobs::delete_snapshots`]). Removing captures is
/// the policy's `delete-snapshots` action, decided with the user's identity on the
/// cluster each capture came from (one check per cluster). Folder snapshots are not
/// governed by cluster policies.
fn remove(
    ctx: &Context,
    repo: &Repository,
    snaps: &[&Snapshot],
    ids: Vec<ferry_repo::Id>,
) -> anyhow::Result<()> {
    let mut by_cluster: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in snaps {
        if let Some(m) = CaptureMeta::of(s) {
            let ns = by_cluster.entry(m.cluster).or_default();
            for n in m.namespaces {
                if !ns.contains(&n) {
                    ns.push(n);
                }
            }
        }
    }
    let removals: Vec<Removal> = by_cluster
        .into_iter()
        .map(|(cluster, namespaces)| Removal {
            from: match super::kube::connect(ctx, Some(&cluster)) {
                Ok((linked, client)) => Place::new(&linked, Some(&client)),
                Err(_) => Place::named(&cluster),
            },
            namespaces,
        })
        .collect();
    match ctx
        .rt
        .block_on(ferry_jobs::delete_snapshots(repo, &removals, ids))
    {
        Ok(done) => {
            for a in &done.allowed {
                say_allowed(Some(a));
            }
            for w in &done.unrecorded {
                say_unrecorded(Some(w));
            }
            Ok(())
        }
        Err(f) if matches!(f.error, ferry_jobs::JobError::Repository(_)) => {
            say_unrecorded(f.unrecorded.as_deref());
            Err(anyhow::Error::new(f.error).context(
                "removing the snapshots failed part way (those removed stay removed, the others are intact): run the same command again to remove the rest",
            ))
        }
        Err(f) => Err(job_failed(PolicyAction::DeleteSnapshots, repo, f)),
    }
}

pub fn prune(ctx: &Context, a: PruneArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    prune_repo(ctx, &repo, a)
}

fn prune_repo(ctx: &Context, repo: &Repository, a: PruneArgs) -> anyhow::Result<Exit> {
    let progress = ctx.progress();
    let opts = PruneOptions {
        max_unused: (a.max_unused / 100.0).clamp(0.0, 1.0),
        dry_run: a.dry_run,
        incomplete_upload_age: a.incomplete_upload_age,
    };
    let r = run_with_progress(&progress, ctx.global.quiet, || {
        prune::prune(repo, &opts, &progress)
    })?;
    say!(
        "{}{} pack(s): {} removed, {} rewritten into {}; {} unused blob(s); {} -> {}",
        if r.dry_run { "dry run: " } else { "" },
        r.packs_before,
        r.packs_removed,
        r.packs_rewritten,
        r.packs_written,
        r.blobs_removed,
        format::bytes(r.bytes_before),
        format::bytes(r.bytes_after)
    );
    if r.uploads_removed > 0 {
        say!(
            "removed {} incomplete upload(s) left by failed writes",
            r.uploads_removed
        );
    }
    Ok(Exit::SUCCESS)
}

pub fn unlock(ctx: &Context, a: UnlockArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let n = lock::unlock(&repo, a.all)?;
    say!("removed {n} lock(s)");
    Ok(Exit::SUCCESS)
}

pub fn repair_index(ctx: &Context) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let progress = ctx.progress();
    let r = run_with_progress(&progress, ctx.global.quiet, || {
        ferry_repo::repair::rebuild_index(&repo, &progress)
    })?;
    for (pack, why) in &r.unreadable {
        say!("unreadable pack {pack}: {why}");
    }
    say!(
        "index rebuilt from {} pack(s), {} blob(s); {} old index file(s) removed",
        r.packs,
        r.blobs,
        r.index_files_removed
    );
    if r.unreadable.is_empty() {
        Ok(Exit::SUCCESS)
    } else {
        say!("run `ferry check --read-data` to see which snapshots the unreadable packs affect");
        Ok(Exit::from(4))
    }
}

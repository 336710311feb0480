//! The command-line interface: every ability of Ferry as a scriptable subcommand.
//!
//! This is the binary's edge: engine errors get their context here and become the
//! message and exit status the user sees. Exit status: 0 success, 1 failure, 3 a backup
//! that completed but skipped unreadable files, 4 `check` found damage (or `audit` found
//! removed records), 5 `policy check` answered no (a job the policy denies fails with 1).

/// Prints a line to stdout; a closed pipe (`ferry ls | head`) ends the program quietly.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod audit;
mod backup;
mod cleanup;
mod cluster;
mod console;
mod init;
mod key;
mod kube;
mod maintenance;
mod moving;
mod open;
mod policy;
mod restore;
mod sandbox;
mod sandbox_cloud;
mod sandbox_seed;
mod sandbox_user;
mod snapshots;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_policy::Action as PolicyAction;

pub use open::Context;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Back up, clone and migrate Kubernetes workloads between clusters"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct Global {
    /// Repository: a folder path or s3://bucket/prefix [default: the local repository in
    /// Ferry's data folder]
    #[arg(short = 'r', long, env = "FERRY_REPO", global = true)]
    pub repo: Option<String>,
    /// Read the repository password from this file (first line)
    #[arg(long, env = "FERRY_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Open the repository with this key file instead of a password
    #[arg(long, env = "FERRY_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// S3 endpoint URL for S3-compatible stores (e.g. http://127.0.0.1:9000)
    #[arg(long, env = "FERRY_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: from the AWS configuration, else us-east-1]
    #[arg(long, env = "FERRY_S3_REGION", global = true)]
    pub s3_region: Option<String>,
    /// Address buckets as endpoint/bucket rather than bucket.endpoint
    #[arg(long, env = "FERRY_S3_PATH_STYLE", global = true)]
    pub s3_path_style: bool,
    /// AWS profile for S3 credentials [default: AWS_PROFILE or default]
    #[arg(long, global = true)]
    pub s3_profile: Option<String>,
    /// Upload bandwidth limit, e.g. 50MiB (per second)
    #[arg(long, value_parser = parse_rate, global = true)]
    pub limit_upload: Option<u64>,
    /// Download bandwidth limit, e.g. 50MiB (per second)
    #[arg(long, value_parser = parse_rate, global = true)]
    pub limit_download: Option<u64>,
    /// How long one storage operation may keep retrying when the store fails
    /// transiently (5xx, timeouts, dropped connections), e.g. 90s, 10m, 1h; 0 disables
    /// retries [default: 5m]
    #[arg(long, env = "FERRY_RETRY_BUDGET", value_parser = parse_budget, global = true)]
    pub retry_budget: Option<std::time::Duration>,
    /// Transfers to run at once against the repository's storage [default: 8 for S3,
    /// the number of cores for a folder]
    #[arg(long, env = "FERRY_CONNECTIONS", value_parser = clap::value_parser!(u16).range(1..=256), global = true)]
    pub connections: Option<u16>,
    /// How volume data travels: agent (in-cluster agents write to the repository
    /// themselves; needs an S3 repository), exec (through this machine), auto [default:
    /// settings' agent.dataPath, else auto: agents for S3, exec for a folder]
    #[arg(long, global = true, value_parser = ["auto", "agent", "exec"])]
    pub data_path: Option<String>,
    /// Image of the in-cluster agents [default: settings' agent.image, else the one
    /// built with this Ferry]
    #[arg(long, global = true)]
    pub agent_image: Option<String>,
    /// Service account the agents run as, whose identity reaches the bucket (IRSA, EKS
    /// Pod Identity, AKS workload identity); without it, this session's S3 credentials
    /// go into a Secret that lives only as long as the job
    #[arg(long, global = true)]
    pub agent_service_account: Option<String>,
    /// The object store's address as the cluster's pods reach it, where it differs from
    /// this machine's (e.g. `http://minio.minio.svc:9000`) [default: settings'
    /// agent.endpoint, else the repository's own]
    #[arg(long, global = true)]
    pub agent_endpoint: Option<String>,
    /// Volumes moved at once by one job's agents [default: 4]
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub agents_per_job: Option<u16>,
    /// Volumes moved at once on one node [default: 2]
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub agents_per_node: Option<u16>,
    /// CPU of each agent: a request, or REQUEST:LIMIT (e.g. 500m:2) [default: 250m]
    #[arg(long, global = true)]
    pub agent_cpu: Option<String>,
    /// Memory of each agent: a request, or REQUEST:LIMIT [default: 256Mi:1Gi]
    #[arg(long, global = true)]
    pub agent_memory: Option<String>,
    /// Archives per large volume extracted side by side by the mover on a restore
    /// through exec, for a mover node with cores to spare [default: settings'
    /// moverStreams, else 1]
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub mover_streams: Option<u16>,
    /// How long a mover or agent pod may wait for a node and start (a cluster
    /// autoscaler adding a node takes minutes), e.g. 10m [default: settings'
    /// startTimeout, else 3m]
    #[arg(long, global = true, value_parser = parse_budget)]
    pub start_timeout: Option<std::time::Duration>,
    /// A taint Ferry's mover and agent pods also tolerate, beyond those of the claim's
    /// workload: KEY, KEY=VALUE, KEY:EFFECT or KEY=VALUE:EFFECT (e.g.
    /// dedicated=db:NoSchedule), or * for every taint (repeatable) [default: settings'
    /// tolerations]
    #[arg(long, global = true, value_name = "TAINT", value_parser = ferry_k8s::placement::parse_toleration)]
    pub tolerate: Vec<serde_json::Value>,
    /// Print no progress
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Console: disable every action that changes a cluster
    #[arg(long, global = true)]
    pub read_only: bool,
}

pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    ferry_repo::rate::parse_rate(s)
}

fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    ferry_repo::backend::retry::parse_duration(s)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The full-screen console (also what `ferry` alone opens)
    Console,
    /// Create a repository
    Init(init::InitArgs),
    /// Every linked cluster: kubeconfig contexts and EKS clusters, with reachability and version
    Clusters(kube::ClustersArgs),
    /// Create a managed cluster (EKS) to restore into
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Namespaces of a cluster with pod and claim counts
    #[command(visible_alias = "ns")]
    Namespaces(kube::NamespacesArgs),
    /// Workloads of a namespace (and with --deps what each depends on)
    Workloads(kube::WorkloadsArgs),
    /// Persistent volume claims of a namespace
    Pvcs(kube::PvcsArgs),
    /// Back up a folder, or namespaces / workloads of a cluster, into a new snapshot
    Backup(backup::BackupArgs),
    /// Restore a snapshot into a folder, or a Kubernetes capture into a cluster
    Restore(restore::RestoreArgs),
    /// Show what restoring a capture into a cluster would do (a dry run)
    Plan(moving::PlanArgs),
    /// Capture workloads from one cluster and restore them into another, in one job
    Migrate(moving::MigrateArgs),
    /// Copy a namespace into a new namespace (of the same cluster, or --to another);
    /// several (or -A) with --namespace-prefix, --namespace-suffix or --map-namespace
    Clone {
        /// The new namespace's name (when one namespace is cloned)
        #[arg(long = "as")]
        new_name: Option<String>,
        #[command(flatten)]
        args: moving::MigrateArgs,
    },
    /// Write a capture's objects as YAML
    Export(moving::ExportArgs),
    /// What a capture holds: cluster, namespaces, objects by kind, volumes
    Inspect(moving::InspectArgs),
    /// List snapshots
    Snapshots(snapshots::SnapshotsArgs),
    /// List the files in a snapshot
    Ls(snapshots::LsArgs),
    /// Show what changed between two snapshots
    Diff(snapshots::DiffArgs),
    /// Sizes: raw, deduplicated and stored
    Stats(snapshots::StatsArgs),
    /// Verify the repository (structure; all data with --read-data)
    Check(maintenance::CheckArgs),
    /// Remove snapshots by ID or by a retention policy
    Forget(maintenance::ForgetArgs),
    /// Remove data no snapshot needs, and repack
    Prune(maintenance::PruneArgs),
    /// Remove stale locks left by crashed jobs
    Unlock(maintenance::UnlockArgs),
    /// Rebuild the index from the packs (after an index file was damaged or lost)
    RepairIndex,
    /// Remove what interrupted jobs left in a cluster (mover pods, temporary claims and snapshots)
    Cleanup(cleanup::CleanupArgs),
    /// Manage the passwords and key files that open the repository
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Who may move what where: administrator keys, the signed policy, "may I?", RBAC
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The audit trail: every job and denied attempt recorded in the repository
    Audit(audit::AuditArgs),
    /// Local Kubernetes clusters to try Ferry on (up, down, status, reset)
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
}

/// What a command reports back to `main`: its exit status.
pub type Exit = std::process::ExitCode;

/// Runs the command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let ctx = Context::new(cli.global)?;
    let Some(command) = cli.command else {
        let ro = ctx.global.read_only;
        return console::run(&ctx, ro);
    };
    match command {
        Command::Console => {
            let ro = ctx.global.read_only;
            console::run(&ctx, ro)
        }
        Command::Init(a) => init::run(&ctx, a),
        Command::Clusters(a) => kube::clusters(&ctx, a),
        Command::Cluster(c) => cluster::run(&ctx, c),
        Command::Namespaces(a) => kube::namespaces(&ctx, a),
        Command::Workloads(a) => kube::workloads(&ctx, a),
        Command::Pvcs(a) => kube::pvcs(&ctx, a),
        Command::Plan(a) => moving::plan(&ctx, a),
        Command::Migrate(a) => moving::migrate(&ctx, a, PolicyAction::Migrate, None),
        Command::Clone { new_name, args } => {
            moving::migrate(&ctx, args, PolicyAction::Clone, new_name)
        }
        Command::Export(a) => moving::export(&ctx, a),
        Command::Inspect(a) => moving::inspect(&ctx, a),
        Command::Backup(a) => backup::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Snapshots(a) => snapshots::list(&ctx, a),
        Command::Ls(a) => snapshots::ls(&ctx, a),
        Command::Diff(a) => snapshots::diff(&ctx, a),
        Command::Stats(a) => snapshots::stats(&ctx, a),
        Command::Check(a) => maintenance::check(&ctx, a),
        Command::Forget(a) => maintenance::forget(&ctx, a),
        Command::Prune(a) => maintenance::prune(&ctx, a),
        Command::Cleanup(a) => cleanup::run(&ctx, a),
        Command::Unlock(a) => maintenance::unlock(&ctx, a),
        Command::RepairIndex => maintenance::repair_index(&ctx),
        Command::Key(k) => key::run(&ctx, k),
        Command::Sandbox(c) => sandbox::run(&ctx, c),
        Command::Policy(c) => policy::run(&ctx, c),
        Command::Audit(a) => audit::run(&ctx, a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command's arguments are consistent (unique names, valid defaults, ...):
    /// what clap otherwise checks only when a command is first parsed.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

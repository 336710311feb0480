//! `ferry sandbox user add|list`: users of a sandbox, each with a bearer token and a
//! kubeconfig context `ferry-<cluster>-<user>`. What a user may do is decided by the RBAC
//! objects in the cluster (e.g. a RoleBinding to the `edit` ClusterRole).

use anyhow::bail;
use clap::{Args, Subcommand};

use super::sandbox::{all_sandboxes, root, write_kubeconfig};
use super::{Context, Exit};
use ferry_sandbox as sandbox;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user and print its bearer token
    Add(AddArgs),
    /// List the users of a sandbox and their groups
    List(ClusterArg),
}

#[derive(Debug, Args)]
pub struct ClusterArg {
    /// The sandbox (needed when there are several)
    #[arg(long)]
    pub cluster: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user name, as RBAC subjects and `kubectl auth whoami` see it
    pub name: String,
    /// A group of the user; repeat for several (`system:authenticated` is always added)
    #[arg(long = "group")]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub fn run(ctx: &Context, cmd: UserCommand) -> anyhow::Result<Exit> {
    match cmd {
        UserCommand::Add(a) => add(ctx, a),
        UserCommand::List(a) => list(ctx, a),
    }
}

/// The sandbox a command means: the one named, or the only one there is.
fn pick(ctx: &Context, cluster: &ClusterArg) -> anyhow::Result<String> {
    let names = all_sandboxes(ctx);
    match &cluster.cluster {
        Some(c) if names.contains(c) => Ok(c.clone()),
        Some(c) => bail!(
            "there is no sandbox named {c:?} (there are: {}): start it with `ferry sandbox up --name {c}`",
            names.join(", ")
        ),
        None => match names.as_slice() {
            [only] => Ok(only.clone()),
            [] => bail!("there is no sandbox yet: start one with `ferry sandbox up`"),
            many => bail!(
                "there are several sandboxes ({}): choose one with --cluster",
                many.join(", ")
            ),
        },
    }
}

fn add(ctx: &Context, a: AddArgs) -> anyhow::Result<Exit> {
    let cluster = pick(ctx, &a.cluster)?;
    let (token, user) = sandbox::add_user(&root(ctx).join(&cluster), &a.name, &a.groups)?;
    say!("{token}");
    let context = format!("ferry-{cluster}-{}", user.name);
    match write_kubeconfig(ctx)? {
        Some(path) => eprintln!(
            "user {} (groups: {}) added to sandbox {cluster}; its context is {context} in {}\n\
             It may do what RBAC grants it, e.g.:\n  \
             kubectl --context ferry-{cluster} create rolebinding {}-edit --clusterrole=edit --user={} -n default",
            user.name,
            user.groups.join(", "),
            path.display(),
            user.name,
            user.name,
        ),
        None => eprintln!(
            "user {} (groups: {}) added to sandbox {cluster}; its context {context} appears in the \
             kubeconfig once the sandbox runs (`ferry sandbox up --name {cluster}`)",
            user.name,
            user.groups.join(", "),
        ),
    }
    Ok(Exit::SUCCESS)
}

fn list(ctx: &Context, a: ClusterArg) -> anyhow::Result<Exit> {
    let cluster = pick(ctx, &a)?;
    for (user, _) in sandbox::users(&root(ctx).join(&cluster))? {
        say!("{:<24} {}", user.name, user.groups.join(","));
    }
    Ok(Exit::SUCCESS)
}

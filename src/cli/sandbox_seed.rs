//! `ferry sandbox seed`: loads the sample shop application into a running sandbox through
//! the kubeconfig `ferry sandbox up` wrote (see `ferry_sandbox::seed`).

use std::path::Path;

use anyhow::{Context as _, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::sandbox::{SeedArgs, kubeconfig_path, running};
use super::{Context, Exit};
use ferry_sandbox::{self as sandbox, SeedOptions};

pub fn run(ctx: &Context, root: &Path, a: SeedArgs) -> anyhow::Result<Exit> {
    let dir = root.join(&a.cluster);
    let Some(info) = running(&dir) else {
        bail!(
            "sandbox {} is not running: start it with `ferry sandbox up --name {}`",
            a.cluster,
            a.cluster
        );
    };
    let entry = sandbox::saved_entry(&a.cluster, &dir, &info.url)?;
    let kc_path = kubeconfig_path(ctx);
    let kc = Kubeconfig::read_from(&kc_path).with_context(|| {
        format!(
            "cannot read {}: run `ferry sandbox up` again to rewrite it",
            kc_path.display()
        )
    })?;
    let opts = SeedOptions {
        namespace: a.namespace,
        files: a.files,
        file_size: a.file_size,
        ..SeedOptions::default()
    };
    say!(
        "Seeding namespace {} in sandbox {} ({} data files of {} bytes)...",
        opts.namespace,
        a.cluster,
        opts.files,
        opts.file_size
    );
    let summary = ctx.rt.block_on(async {
        let options = KubeConfigOptions {
            context: Some(entry.context_name()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .with_context(|| {
                format!(
                    "no context {} in the sandbox kubeconfig: run `ferry sandbox up` again",
                    entry.context_name()
                )
            })?;
        let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
        sandbox::seed(&client, &dir, &opts)
            .await
            .with_context(|| format!("cannot seed sandbox {}", a.cluster))
    })?;
    say!(
        "Seeded {} objects and {} files ({:.1} MiB) in namespace {}:",
        summary.objects,
        summary.files,
        summary.bytes as f64 / (1024.0 * 1024.0),
        summary.namespace
    );
    for (claim, folder) in &summary.volumes {
        say!("  {claim:<20} {}", folder.display());
    }
    say!(
        "See it with: kubectl --context {} -n {} get all,pvc",
        entry.context_name(),
        summary.namespace
    );
    Ok(Exit::SUCCESS)
}

//! What the EKS (`cloud.rs`) and AKS (`aks.rs`) end-to-end tests share: the `ferry`
//! binary run with folders of its own, the background sandbox cloud stopped whatever
//! happens to a test, and the sample shop seeded into a cloud cluster, captured with
//! its envelope, restored into another and compared byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Conflict, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_repo::Repository;
use ferry_sandbox::seed::{SeedOptions, seed};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;

use crate::support;
use crate::support::volumes::{checksums, volume_dir};

/// `ferry` with `args` and folders of its own under `home` (HOME and the XDG folders),
/// no kubeconfig and no EC2 instance metadata.
pub fn ferry_command(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// Writes `yaml` as the config.yaml of a [`ferry_command`] with this `home`.
pub fn settings(home: &Path, yaml: &str) {
    let cfg = home.join("config/ferry");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.yaml"), yaml).unwrap();
}

/// Runs `cmd` without blocking the runtime: whether it succeeded, its output and its
/// error output.
pub async fn output(cmd: std::process::Command) -> (bool, String, String) {
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stops the background sandbox cloud of a test home, whatever happens to the test.
pub struct CloudDown<'a>(pub &'a Path);

impl Drop for CloudDown<'_> {
    fn drop(&mut self) {
        let _ = ferry_command(self.0, &["sandbox", "cloud", "down"]).output();
    }
}

/// Seeds the sample shop (8 files of 64 KiB per volume) into a cluster whose volumes
/// the sandbox keeps in `dir`.
pub async fn seed_shop(client: &kube::Client, dir: &Path) {
    seed(
        client,
        dir,
        &SeedOptions {
            files: 8,
            file_size: 64 * 1024,
            ..SeedOptions::default()
        },
    )
    .await
    .unwrap();
}

/// Captures the shop namespace of `src`, volumes included, with its cloud envelope.
pub async fn capture_shop(
    repo: &Repository,
    src: &LinkedCluster,
    client: &kube::Client,
) -> CaptureOutcome {
    let envelope = src.envelope().await.unwrap();
    capture::capture(
        client,
        repo,
        &CaptureOptions {
            cluster: src.name.clone(),
            scope: Scope::Namespaces(vec!["shop".into()]),
            include_volumes: true,
            use_snapshots: true,
            mover: MoverOptions::default(),
            tags: vec![],
            parent: None,
            no_parent: false,
            envelope,
            server: Some(src.server.clone()),
            resources: Default::default(),
        },
        &JobProgress::new(),
    )
    .await
    .unwrap()
}

/// A cluster and the folder where the sandbox keeps its volumes.
pub struct Volumes<'a> {
    pub client: &'a kube::Client,
    pub dir: &'a Path,
}

/// Restores a capture of the shop into `dst` with `mapping`: the plan has no blocking
/// problem, nothing fails, postgres's claim gets `class`, the pods run, and both
/// volumes are on `dst` as they are on `src`, byte for byte.
pub async fn restore_shop(
    repo: &Repository,
    out: &CaptureOutcome,
    dst_name: &str,
    mapping: Mapping,
    class: &str,
    src: Volumes<'_>,
    dst: Volumes<'_>,
) {
    let opts = PlanOptions {
        mapping,
        conflict: Conflict::Skip,
        include_volumes: true,
        mover: MoverOptions::default(),
        only: None,
        namespaces: vec![],
        modifiers: None,
    };
    let (repo2, snap) = (repo.clone(), out.snapshot.clone());
    let objects = tokio::task::spawn_blocking(move || capture::read_objects(&repo2, &snap))
        .await
        .unwrap()
        .unwrap();
    let p = plan::build(
        dst.client,
        dst_name,
        &out.snapshot,
        &out.meta,
        objects,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(p.blocking(), 0, "{}", p.render_text());
    let report = apply::apply(
        dst.client,
        repo,
        &p,
        &MoverOptions::default(),
        &JobProgress::new(),
    )
    .await
    .unwrap();
    assert!(report.failed().is_empty(), "{:#?}", report.failed());
    let claim = Api::<PersistentVolumeClaim>::namespaced(dst.client.clone(), "shop")
        .get("data-postgres-0")
        .await
        .unwrap();
    assert_eq!(
        claim.spec.unwrap().storage_class_name.as_deref(),
        Some(class)
    );
    support::wait_running(dst.client, "shop", "app=postgres").await;
    for claim in ["data-postgres-0", "redis-data"] {
        let a = volume_dir(src.client, src.dir, "shop", claim).await;
        let b = volume_dir(dst.client, dst.dir, "shop", claim).await;
        let (ca, cb) = (checksums(&a), checksums(&b));
        assert!(!ca.is_empty(), "{claim} is empty on the source");
        assert_eq!(ca, cb, "{claim} differs");
    }
}

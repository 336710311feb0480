//! Moving workloads, measured on two sandbox clusters (real HTTPS, real kube-rs):
//!
//! 1. a namespace of 10,000 objects (ConfigMaps, Secrets, Services): capture into the
//!    repository, plan against the target, restore;
//! 2. one claim holding the shared 1 GiB bench data set (`../shared/bench/gen_dataset.py
//!    day1`): captured through a mover pod and the exec stream, then restored into a
//!    claim of the other cluster, next to the raw engine backing up and restoring the
//!    same folder. The restored claim is compared file by file with the source.
//!
//! Prints a table; no assertions (speed is measured, not tested).
//!
//! `cargo bench --bench k8s_move [-- --objects N] [-- --mib M] [-- --data DIR] [-- --streams N]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Conflict, Plan, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_repo::Repository;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::crypto::{KdfParams, Secret};
use ferry_repo::progress::Progress;
use ferry_repo::repo::InitOptions;
use ferry_repo::restore;
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

#[path = "../tests/support/volumes.rs"]
mod claim_dirs;
#[path = "support/volumes.rs"]
mod volumes;
use claim_dirs::volume_dir;
use volumes::{du, files, same_files};

const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    objects: usize,
    mib: u64,
    data: Option<PathBuf>,
    /// Archive streams per volume on the exec path ([`MoverOptions::streams`]).
    streams: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        objects: 10_000,
        mib: 1024,
        data: None,
        streams: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        match v[i].as_str() {
            "--objects" => a.objects = v[i + 1].parse().unwrap(),
            "--mib" => a.mib = v[i + 1].parse().unwrap(),
            "--data" => a.data = Some(PathBuf::from(&v[i + 1])),
            "--streams" => a.streams = Some(v[i + 1].parse().unwrap()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn new_repo(dir: &Path) -> Repository {
    let backend = Arc::new(LocalBackend::new(dir.to_path_buf()));
    Repository::init(
        backend,
        tokio::runtime::Handle::current(),
        &Secret::Password("bench".into()),
        &InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        },
    )
    .unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn create_all(client: &kube::Client, objects: Vec<Value>) {
    futures::stream::iter(objects)
        .map(|o| {
            let client = client.clone();
            async move {
                let obj: DynamicObject = serde_json::from_value(o.clone()).unwrap();
                let ar = match o["kind"].as_str().unwrap() {
                    "ConfigMap" => {
                        kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
                    }
                    "Secret" => {
                        kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&())
                    }
                    "Service" => {
                        kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&())
                    }
                    "Namespace" => {
                        kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&())
                    }
                    "PersistentVolumeClaim" => kube::api::ApiResource::erase::<
                        k8s_openapi::api::core::v1::PersistentVolumeClaim,
                    >(&()),
                    k => panic!("{k}"),
                };
                let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
                    Some(ns) => Api::namespaced_with(client, ns, &ar),
                    None => Api::all_with(client, &ar),
                };
                api.create(&PostParams::default(), &obj).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

fn many_objects(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| match i % 10 {
            0..=6 => json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("config-{i:06}"), "namespace": "many", "labels": {"app": format!("app-{}", i % 50)}},
                "data": {"settings.yaml": format!("replicas: {}\nfeature: {}\nendpoint: http://svc-{}.many.svc:8080\n", i % 7, i % 3 == 0, i % 50)}
            }),
            7 | 8 => json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("secret-{i:06}"), "namespace": "many"},
                "type": "Opaque",
                "stringData": {"password": format!("pw-{i}-{}", i * 7919 % 10007)}
            }),
            _ => json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i:06}"), "namespace": "many"},
                "spec": {"selector": {"app": format!("app-{}", i % 50)}, "ports": [{"port": 8080, "targetPort": 8080}]}
            }),
        })
        .collect()
}

async fn capture_ns(
    client: &kube::Client,
    repo: &Repository,
    ns: &str,
    volumes: bool,
) -> CaptureOutcome {
    capture::capture(
        client,
        repo,
        &CaptureOptions {
            cluster: "ferry-prod".into(),
            scope: Scope::Namespaces(vec![ns.into()]),
            include_volumes: volumes,
            use_snapshots: false,
            mover: MoverOptions::default(),
            tags: vec![],
            parent: None,
            no_parent: true,
            envelope: None,
            server: None,
            resources: Default::default(),
        },
        &JobProgress::new(),
    )
    .await
    .unwrap()
}

async fn plan_into(
    client: &kube::Client,
    repo: &Repository,
    out: &CaptureOutcome,
    ns: &str,
    classes: &[(&str, &str)],
) -> Plan {
    let r = repo.clone();
    let snap = out.snapshot.clone();
    let objects = blocking(move || capture::read_objects(&r, &snap).unwrap()).await;
    plan::build(
        client,
        "ferry-qa",
        &out.snapshot,
        &out.meta,
        objects,
        &PlanOptions {
            mapping: Mapping {
                namespaces: [(ns.to_string(), ns.to_string())].into(),
                storage_classes: classes
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                ..Mapping::default()
            },
            conflict: Conflict::Skip,
            include_volumes: true,
            mover: MoverOptions::default(),
            only: None,
            namespaces: vec![],
            modifiers: None,
        },
    )
    .await
    .unwrap()
}

fn row(what: &str, secs: f64, amount: f64, unit: &str) {
    println!(
        "| {what} | {secs:.2} | {:.1} {unit}/s |",
        if secs > 0.0 { amount / secs } else { 0.0 }
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let prod_dir = dir.path().join("prod");
    let qa_dir = dir.path().join("qa");
    let prod = Sandbox::start(SandboxConfig::new("prod", &prod_dir).with_demo_storage())
        .await
        .unwrap();
    let qa = Sandbox::start(SandboxConfig::new("qa", &qa_dir).with_demo_storage())
        .await
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry(), qa.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let src = linked.get("ferry-prod").unwrap().client().await.unwrap();
    let dst = linked.get("ferry-qa").unwrap().client().await.unwrap();

    println!("## Moving workloads between two sandbox clusters\n");
    println!("| step | seconds | rate |");
    println!("|---|---:|---:|");

    // 1. Many objects.
    let n = a.objects;
    create_all(
        &src,
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}})],
    )
    .await;
    let t = Instant::now();
    create_all(&src, many_objects(n)).await;
    row(
        &format!("create {n} objects in the source (setup)"),
        t.elapsed().as_secs_f64(),
        n as f64,
        "objects",
    );
    let at = dir.path().to_path_buf();
    let repo = blocking(move || new_repo(&at.join("objects-repo"))).await;
    let t = Instant::now();
    let out = capture_ns(&src, &repo, "many", false).await;
    let captured = out.meta.objects;
    row(
        &format!("capture: {captured} objects into the repository"),
        t.elapsed().as_secs_f64(),
        captured as f64,
        "objects",
    );
    let t = Instant::now();
    let p = plan_into(&dst, &repo, &out, "many", &[]).await;
    row(
        &format!("plan: {} items, server-side dry run of each", p.items.len()),
        t.elapsed().as_secs_f64(),
        p.items.len() as f64,
        "objects",
    );
    let t = Instant::now();
    let report = apply::apply(
        &dst,
        &repo,
        &p,
        &MoverOptions::default(),
        &JobProgress::new(),
    )
    .await
    .unwrap();
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    row(
        &format!("restore: {} objects created", report.succeeded()),
        t.elapsed().as_secs_f64(),
        report.succeeded() as f64,
        "objects",
    );

    // 2. One claim with the bench data set.
    let data = match &a.data {
        Some(d) => d.clone(),
        None => {
            let d = dir.path().join("dataset");
            let gen_script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_dataset.py");
            let st = std::process::Command::new("python3")
                .arg(&gen_script)
                .args(["day1", d.to_str().unwrap(), "--mib", &a.mib.to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "cannot run {}", gen_script.display());
            d
        }
    };
    let bytes = du(&data) as f64;
    // The namespace first: `create_all` sends its objects at once.
    create_all(
        &src,
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}})],
    )
    .await;
    create_all(
        &src,
        vec![json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "bulk"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ebs-sc",
                         "resources": {"requests": {"storage": "4Gi"}}}})],
    )
    .await;
    // ebs-sc binds for its first consumer: a mover binds it; put the data in through
    // the host folder behind it (the sandbox's "disk").
    let lease = ferry_k8s::lease::JobLease::start(&src, Duration::from_secs(30));
    let bind = ferry_k8s::mover::Mover::start(
        &src,
        "bulk",
        "data",
        false,
        None,
        None,
        &Default::default(),
        &MoverOptions::default(),
        &lease,
    )
    .await
    .unwrap();
    bind.delete().await;
    lease.release().await;
    let vol = volume_dir(&src, &prod_dir, "bulk", "data").await;
    let st = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", data.display()),
            vol.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());

    let at = dir.path().to_path_buf();
    let raw_repo = blocking(move || new_repo(&at.join("raw-repo"))).await;
    let t = Instant::now();
    let r2 = raw_repo.clone();
    let src_dir = data.clone();
    let raw_snap = blocking(move || {
        backup::backup(
            &r2,
            &BackupOptions {
                source: src_dir,
                ..Default::default()
            },
            &Arc::new(Progress::new()),
        )
        .unwrap()
        .snapshot
    })
    .await;
    row(
        &format!("raw engine: back up the folder ({:.0} MiB)", bytes / MIB),
        t.elapsed().as_secs_f64(),
        bytes / MIB,
        "MiB",
    );

    let at = dir.path().to_path_buf();
    let vrepo = blocking(move || new_repo(&at.join("volume-repo"))).await;
    let t = Instant::now();
    let out = capture_ns(&src, &vrepo, "bulk", true).await;
    row(
        "capture: the claim through a mover and the exec stream",
        t.elapsed().as_secs_f64(),
        bytes / MIB,
        "MiB",
    );

    let target = dir.path().join("raw-restore");
    let t = Instant::now();
    let r2 = raw_repo.clone();
    let tgt = target.clone();
    blocking(move || {
        restore::restore(
            &r2,
            &raw_snap,
            &restore::RestoreOptions {
                target: tgt,
                ..Default::default()
            },
            &Arc::new(Progress::new()),
        )
        .unwrap()
    })
    .await;
    row(
        "raw engine: restore into a folder",
        t.elapsed().as_secs_f64(),
        bytes / MIB,
        "MiB",
    );

    let p = plan_into(&dst, &vrepo, &out, "bulk", &[("ebs-sc", "gp3")]).await;
    let mut mover = MoverOptions::default();
    if let Some(n) = a.streams {
        mover.streams = n;
    }
    let t = Instant::now();
    let report = apply::apply(&dst, &vrepo, &p, &mover, &JobProgress::new())
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    row(
        &format!(
            "restore: into a claim of the other cluster through a mover ({} streams)",
            mover.streams
        ),
        secs,
        bytes / MIB,
        "MiB",
    );
    let restored = volume_dir(&dst, &qa_dir, "bulk", "data").await;
    println!(
        "\nData set: {:.0} MiB in {} files; restored claim identical to the source: {}",
        bytes / MIB,
        files(&data).len(),
        same_files(&vol, &restored)
    );
    prod.shutdown().await.unwrap();
    qa.shutdown().await.unwrap();
}

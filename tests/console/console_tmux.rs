//! The console end to end, as a user runs it: the real `ferry` binary in a tmux
//! terminal, keys sent with `tmux send-keys`, the screen read with `capture-pane`.
//! A namespace of a seeded application is cloned from `prod` into `qa` through the
//! wizard (target, new name, a storage class picked over the suggested one, options,
//! plan, confirm); the clone's objects and claims are then checked with kubectl and
//! every file of its volumes on disk. A file of a
//! folder backup is browsed to and restored to this machine with `d`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_k8s::RESTORED_ANNOTATION;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use support::kubectl::kubectl;
use support::tmux::Tmux;
use support::volumes::{checksums, volume_dir};

/// The folders and terminal a user's `ferry` has, all under `home`.
fn user_env(home: &Path, kubeconfig: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", home.join("config").display().to_string()),
        ("XDG_DATA_HOME", home.join("data").display().to_string()),
        ("XDG_STATE_HOME", home.join("state").display().to_string()),
        ("XDG_CACHE_HOME", home.join("cache").display().to_string()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("TERM", "xterm-256color".to_string()),
    ]
}

#[test]
fn a_namespace_is_cloned_through_the_console_in_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prod_dir = dir.path().join("prod");
    let (prod, qa) = rt.block_on(async {
        let prod = Sandbox::start(SandboxConfig::new("prod", &prod_dir).with_demo_storage())
            .await
            .unwrap();
        let qa =
            Sandbox::start(SandboxConfig::new("qa", dir.path().join("qa")).with_demo_storage())
                .await
                .unwrap();
        (prod, qa)
    });
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry(), qa.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let prod_client = rt
        .block_on(linked.get("ferry-prod").unwrap().client())
        .unwrap();
    rt.block_on(seed(
        &prod_client,
        &prod_dir,
        &SeedOptions {
            files: 16,
            file_size: 256 * 1024,
            ..SeedOptions::default()
        },
    ))
    .unwrap();

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = user_env(&home, &kc);
    let tmux = Tmux::start(dir.path(), &env, &support::ferry_bin());

    // Clusters, probed.
    let s = tmux.wait_for("ferry-qa", 60);
    assert!(s.contains("ferry-prod"), "{s}");
    tmux.wait_for("v1.", 60);
    // Into prod's namespaces, filter to shop, mark it, clone.
    tmux.keys(&["Enter"]);
    tmux.wait_for("shop", 60);
    tmux.keys(&["/"]);
    tmux.type_text("shop");
    tmux.keys(&["Enter", "Space", "c"]);
    tmux.wait_for("1. target", 30);
    tmux.wait_for("Where should", 30);
    // Target: qa (the second row), once probed.
    tmux.keys(&["Down"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("type to edit the target name", 30);
    for _ in 0..12 {
        tmux.keys(&["BSpace"]);
    }
    tmux.type_text("shop-qa");
    tmux.keys(&["Enter"]);
    // Storage classes: prod's ebs-sc is suggested as qa's gp3 (same EBS type); the user
    // picks gp2 instead.
    let s = tmux.wait_for("Storage classes on", 60);
    let line = |s: &str| {
        s.lines()
            .find(|l| l.contains("ebs-sc") && l.contains("→"))
            .unwrap_or_else(|| panic!("no mapping line for ebs-sc:\n{s}"))
            .to_string()
    };
    assert!(line(&s).contains("gp3"), "{s}");
    tmux.keys(&["Right"]);
    let s = tmux.screen();
    assert!(line(&s).contains("gp2") && !line(&s).contains("gp3"), "{s}");
    tmux.keys(&["Enter"]);
    tmux.wait_for("4. options", 30);
    tmux.keys(&["Enter"]);
    // The plan, then confirm.
    let plan = tmux.wait_for("shop-qa", 120);
    assert!(!plan.contains("blocking"), "{plan}");
    tmux.keys(&["Enter"]);

    let qa_client = rt
        .block_on(linked.get("ferry-qa").unwrap().client())
        .unwrap();
    // The job runs: wait until both claims hold their data, through the API.
    let deadline = Instant::now() + Duration::from_secs(240);
    rt.block_on(async {
        let claims = Api::<PersistentVolumeClaim>::namespaced(qa_client.clone(), "shop-qa");
        loop {
            let list = claims.list(&Default::default()).await.unwrap();
            let done = list
                .items
                .iter()
                .filter(|c| {
                    c.metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(RESTORED_ANNOTATION))
                })
                .count();
            if list.items.len() == 2 && done == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the clone's claims never got their data ({done} of {}):\n{}",
                list.items.len(),
                tmux.screen()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    // The Jobs screen says it ended well.
    tmux.keys(&[":"]);
    tmux.type_text("jobs");
    tmux.keys(&["Enter"]);
    let jobs = tmux.wait_for("done", 120);
    assert!(!jobs.contains("failed:"), "{jobs}");

    // Checked outside the console, with kubectl: the workloads, and the claims on gp2.
    let deployments = kubectl(
        &kc,
        &[
            "--context",
            "ferry-qa",
            "-n",
            "shop-qa",
            "get",
            "deployments,statefulsets",
            "-o",
            "name",
        ],
    );
    assert!(
        deployments.contains("deployment.apps/web")
            && deployments.contains("statefulset.apps/postgres"),
        "{deployments}"
    );
    let classes = kubectl(
        &kc,
        &[
            "--context",
            "ferry-qa",
            "-n",
            "shop-qa",
            "get",
            "pvc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.storageClassName}{\"\\n\"}{end}",
        ],
    );
    let mut classes: Vec<&str> = classes.lines().collect();
    classes.sort();
    assert_eq!(classes, ["data-postgres-0=gp2", "redis-data=gp2"]);
    // Every file of both claims, byte for byte.
    let qa_dir = dir.path().join("qa");
    rt.block_on(async {
        for claim in ["data-postgres-0", "redis-data"] {
            let a = checksums(&volume_dir(&prod_client, &prod_dir, "shop", claim).await);
            let b = checksums(&volume_dir(&qa_client, &qa_dir, "shop-qa", claim).await);
            assert!(!a.is_empty(), "{claim} holds no files");
            assert_eq!(a, b, "{claim} differs in the clone");
        }
    });

    // q quits (nothing runs any more).
    tmux.quit();
    drop(tmux);
    rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

/// A folder backup opened on :snapshots shows its files; a filtered file restored with
/// `d` into the default downloads folder lands there byte for byte with its mode and
/// time, through the jobs screen.
#[test]
fn a_file_of_a_folder_backup_is_restored_from_a_real_terminal() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = dir.path().join("site");
    std::fs::create_dir_all(src.join("conf")).unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("conf/app.yaml"), &body).unwrap();
    std::fs::set_permissions(
        src.join("conf/app.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    filetime::set_file_mtime(
        src.join("conf/app.yaml"),
        filetime::FileTime::from_unix_time(1_650_000_000, 5),
    )
    .unwrap();
    std::fs::write(src.join("index.html"), b"hi").unwrap();
    let kc = dir.path().join("kubeconfig");
    // One context nobody answers: with none at all Ferry would start the sandbox
    // clusters as its embedded default, which this test does not need (nor leave behind).
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:\n- name: nowhere\n  context: {cluster: nowhere, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let env = user_env(&home, &kc);
    let backup = Command::new(support::ferry_bin())
        .arg("backup")
        .arg(&src)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");

    let tmux = Tmux::start(dir.path(), &env, &support::ferry_bin());
    tmux.wait_for("CLUSTER", 30);
    tmux.keys(&["S"]);
    tmux.wait_for("site", 30);
    tmux.keys(&["Enter"]);
    tmux.wait_for("index.html", 30);
    tmux.keys(&["Enter"]);
    tmux.wait_for("app.yaml", 30);
    tmux.keys(&["/"]);
    tmux.type_text("app");
    tmux.keys(&["Enter", "d"]);
    let s = tmux.wait_for("restore to this machine", 30);
    assert!(s.contains("/conf/app.yaml"), "{s}");
    tmux.keys(&["Enter"]);
    tmux.keys(&["J"]);
    let s = tmux.wait_for("done", 60);
    assert!(s.contains("restore app.yaml"), "{s}");
    let got = home.join("data/ferry/downloads/app.yaml");
    assert_eq!(std::fs::read(&got).unwrap(), body);
    let (a, b) = (
        std::fs::metadata(src.join("conf/app.yaml")).unwrap(),
        std::fs::metadata(&got).unwrap(),
    );
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
    tmux.quit();
}

/// Presses ↓ until the wizard's pointer is on the line holding `needle`.
fn point_at(tmux: &Tmux, needle: &str) {
    for _ in 0..12 {
        let s = tmux.screen();
        if s.lines().any(|l| l.contains(&format!("› {needle}"))) {
            return;
        }
        tmux.keys(&["Down"]);
    }
    panic!("the pointer never reached {needle:?}:\n{}", tmux.screen());
}

/// Replaces the form field the pointer is on with `text`.
fn retype(tmux: &Tmux, text: &str) {
    for _ in 0..40 {
        tmux.keys(&["BSpace"]);
    }
    tmux.type_text(text);
}

/// Opens the snapshot of `cluster` on :snapshots and starts its restore wizard.
fn restore_wizard(tmux: &Tmux, cluster: &str) {
    tmux.keys(&["S"]);
    tmux.wait_for(cluster, 30);
    tmux.keys(&["/", "Escape", "/"]);
    tmux.type_text(cluster);
    tmux.keys(&["Enter", "r"]);
    tmux.wait_for("Where should", 30);
}

/// The line of the storage-class step that maps `class`.
fn mapping_line(s: &str, class: &str) -> String {
    s.lines()
        .find(|l| l.contains(class) && l.contains("→"))
        .unwrap_or_else(|| panic!("no mapping line for {class}:\n{s}"))
        .to_string()
}

/// Confirms the plan and waits on :jobs until the job `title` is done.
fn confirm_and_watch(tmux: &Tmux, title: &str) {
    tmux.keys(&["Enter"]);
    tmux.wait_for("follow it on :jobs", 30);
    tmux.keys(&["J"]);
    tmux.wait_for(title, 30);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = tmux.screen();
        let row = s
            .lines()
            .find(|l| l.contains(title))
            .unwrap_or_default()
            .to_string();
        assert!(!row.contains("failed"), "the job failed:\n{s}");
        if row.contains("done") {
            return;
        }
        assert!(Instant::now() < deadline, "the job never ended:\n{s}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The claims of `ns` as name=class, sorted, read with kubectl.
fn claim_classes(kubeconfig: &Path, ns: &str) -> Vec<String> {
    let out = kubectl(
        kubeconfig,
        &[
            "-n",
            ns,
            "get",
            "pvc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.storageClassName}{\"\\n\"}{end}",
        ],
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// The shop as restored on a new cluster, seen by kubectl through `kubeconfig`: its
/// workloads, both claims on `class`; and every file of both claims identical to the
/// source's (each side: a client and the folder of its sandbox).
async fn shop_arrived(
    kubeconfig: &Path,
    class: &str,
    source: (&kube::Client, &Path),
    target: (&kube::Client, &Path),
) {
    let workloads = kubectl(
        kubeconfig,
        &[
            "-n",
            "shop",
            "get",
            "deployments,statefulsets",
            "-o",
            "name",
        ],
    );
    assert!(
        workloads.contains("deployment.apps/web")
            && workloads.contains("statefulset.apps/postgres"),
        "{workloads}"
    );
    assert_eq!(
        claim_classes(kubeconfig, "shop"),
        [
            format!("data-postgres-0={class}"),
            format!("redis-data={class}")
        ]
    );
    for claim in ["data-postgres-0", "redis-data"] {
        let a = checksums(&volume_dir(source.0, source.1, "shop", claim).await);
        let b = checksums(&volume_dir(target.0, target.1, "shop", claim).await);
        assert!(!a.is_empty(), "{claim} holds no files");
        assert_eq!(a, b, "{claim} differs on the new cluster");
    }
}

/// Makes a class of its own (with its cloud's disk parameter `key=value`) the
/// cluster's only default.
async fn default_class(client: &kube::Client, name: &str, provisioner: &str, param: &str) {
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Patch, PatchParams, PostParams};
    let classes = Api::<StorageClass>::all(client.clone());
    let default = "storageclass.kubernetes.io/is-default-class";
    for c in classes.list(&Default::default()).await.unwrap().items {
        let patch = serde_json::json!({"metadata": {"annotations": {default: "false"}}});
        classes
            .patch(
                &c.metadata.name.unwrap(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .unwrap();
    }
    let (k, v) = param.split_once('=').unwrap();
    let sc: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name, "annotations": {default: "true"}},
        "provisioner": provisioner,
        "parameters": {k: v},
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
    .unwrap();
    classes.create(&PostParams::default(), &sc).await.unwrap();
}

/// The issue's end to end for cloud clusters, as a user does it: the shop, seeded on
/// an EKS cluster and on an AKS cluster of the sandbox cloud, is backed up by `ferry
/// backup` (recording each cluster's envelope); then, in the console in a real terminal,
/// each capture is restored through the wizard into a *new* cluster of its cloud: the
/// form comes pre-filled from the envelope (an older version is refused in place), the
/// storage classes map to the new cluster's (`ebs-sc` → `gp3`; Azure's premium SKU →
/// `managed-csi-premium`), the plan says what will be made, and the one job creates the
/// cluster and restores into it. kubectl (through the token Ferry generates for EKS and
/// the user kubeconfig AKS hands out) then sees the workloads and the claims on their
/// new classes, and every file of every claim is byte-identical.
#[test]
fn new_eks_and_aks_clusters_are_created_and_filled_from_a_real_terminal() {
    use ferry_providers::kubeconfig::LinkedCluster;
    use ferry_providers::{aks, eks};
    use support::cloud::{self, REGION};

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cloud_dir = dir.path().join("cloud");
    let home = dir.path().join("home");
    let cloud = rt.block_on(cloud::start(&cloud_dir));
    let account = cloud::aws_account(&cloud);
    let sub = cloud::azure_subscription(&cloud);

    let seed_opts = SeedOptions {
        files: 8,
        file_size: 128 * 1024,
        ..SeedOptions::default()
    };
    // The sources: made through the clouds' APIs, the shop seeded on each.
    let (eks_src, aks_src) = rt.block_on(async {
        let e = eks::create_cluster(
            &account,
            REGION,
            &cloud::eks_spec("shop-eks", "1.31"),
            None,
            &cloud::eks_fast(),
            &|_| {},
        )
        .await
        .unwrap();
        let a = aks::create_cluster(
            &sub,
            &cloud::aks_spec("shop-aks", "rg-shop", "1.31"),
            None,
            &cloud::aks_fast(),
            &|_| {},
        )
        .await
        .unwrap();
        let e = LinkedCluster::from_eks(&account, &e)
            .client()
            .await
            .unwrap();
        let a = LinkedCluster::from_aks(&sub, &a).client().await.unwrap();
        default_class(&e, "ebs-sc", "ebs.csi.aws.com", "type=gp3").await;
        default_class(
            &a,
            "azure-disk-premium",
            "disk.csi.azure.com",
            "skuName=Premium_LRS",
        )
        .await;
        seed(&e, &cloud::eks_dir(&cloud_dir, "shop-eks"), &seed_opts)
            .await
            .unwrap();
        seed(
            &a,
            &cloud::aks_dir(&cloud_dir, "rg-shop", "shop-aks"),
            &seed_opts,
        )
        .await
        .unwrap();
        (e, a)
    });

    // Backed up by the CLI, as a scheduled job would: both clouds linked in the
    // settings, no kubeconfig at all.
    let kc = dir.path().join("no-kubeconfig");
    let mut env = user_env(&home, &kc);
    env.extend(cloud::link(&home, &cloud));
    let eks_context = format!("eks:{}/{REGION}/shop-eks", cloud::AWS_PROFILE);
    let aks_context = format!("aks:{}/rg-shop/shop-aks", cloud::SUB_NAME);
    for context in [&eks_context, &aks_context] {
        let out = Command::new(support::ferry_bin())
            .args(["backup", "--context", context, "-n", "shop"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backup of {context}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let tmux = Tmux::start(dir.path(), &env, &support::ferry_bin());
    tmux.wait_for("shop-eks", 60);
    tmux.wait_for("shop-aks", 60);

    // EKS: the capture's wizard, the new EKS cluster, its form from the envelope.
    restore_wizard(&tmux, "shop-eks");
    let s = tmux.wait_for("new EKS cluster…", 30);
    assert!(s.contains("new AKS cluster…"), "{s}");
    point_at(&tmux, "new EKS cluster…");
    tmux.keys(&["Enter"]);
    let form = tmux.wait_for("The new cluster", 30);
    for prefilled in [
        "shop-eks-restore",
        "arn:aws:iam::123456789012:role/eks",
        "subnet-a,subnet-b",
        "arn:aws:iam::123456789012:role/node",
        "m6i.large",
        REGION,
    ] {
        assert!(
            form.contains(prefilled),
            "{prefilled:?} is not pre-filled:\n{form}"
        );
    }
    tmux.keys(&["Down"]);
    retype(&tmux, "shop-eks-2");
    tmux.keys(&["Down"]);
    retype(&tmux, "1.20");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("✗", 30);
    assert!(s.contains("older than the source"), "{s}");
    assert!(s.contains("The new cluster"), "the form stays:\n{s}");
    retype(&tmux, "1.31");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Namespaces on", 30);
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("Storage classes on", 30);
    assert!(mapping_line(&s, "ebs-sc").contains("gp3"), "{s}");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Options (space", 30);
    tmux.keys(&["Enter"]);
    let plan = tmux.wait_for("Creation + restore", 30);
    assert!(plan.contains("shop-eks-2"), "{plan}");
    assert!(plan.contains("storage class ebs-sc → gp3"), "{plan}");
    confirm_and_watch(&tmux, "create shop-eks-2");

    let eks_kc = dir.path().join("eks-kubeconfig");
    rt.block_on(cloud::eks_kubeconfig(&cloud, "shop-eks-2", &eks_kc));
    let new = rt.block_on(async {
        let c = eks::describe(&account, REGION, "shop-eks-2").await.unwrap();
        LinkedCluster::from_eks(&account, &c)
            .client()
            .await
            .unwrap()
    });
    rt.block_on(shop_arrived(
        &eks_kc,
        "gp3",
        (&eks_src, &cloud::eks_dir(&cloud_dir, "shop-eks")),
        (&new, &cloud::eks_dir(&cloud_dir, "shop-eks-2")),
    ));

    // AKS: the same from the other capture, into a new AKS cluster.
    restore_wizard(&tmux, "shop-aks");
    point_at(&tmux, "new AKS cluster…");
    tmux.keys(&["Enter"]);
    let form = tmux.wait_for("The new cluster", 30);
    for prefilled in [
        "rg-shop",
        "westeurope",
        "shop-aks-restore",
        "Standard_D4s_v5",
    ] {
        assert!(
            form.contains(prefilled),
            "{prefilled:?} is not pre-filled:\n{form}"
        );
    }
    // Rows: subscription, resource group, location, name.
    tmux.keys(&["Down", "Down", "Down"]);
    retype(&tmux, "shop-aks-2");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Namespaces on", 30);
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("Storage classes on", 30);
    assert!(
        mapping_line(&s, "azure-disk-premium").contains("managed-csi-premium"),
        "the premium SKU maps to the premium class:\n{s}"
    );
    tmux.keys(&["Enter"]);
    tmux.wait_for("Options (space", 30);
    tmux.keys(&["Enter"]);
    let plan = tmux.wait_for("Creation + restore", 30);
    assert!(plan.contains("shop-aks-2"), "{plan}");
    confirm_and_watch(&tmux, "create shop-aks-2");

    // The new clusters are linked in the console.
    tmux.keys(&["Escape", "Escape", "Escape"]);
    let s = tmux.wait_for("shop-aks-2", 30);
    assert!(s.contains("shop-eks-2"), "{s}");

    let aks_kc = dir.path().join("aks-kubeconfig");
    rt.block_on(cloud::aks_kubeconfig(
        &cloud,
        "rg-shop",
        "shop-aks-2",
        &aks_kc,
    ));
    let new = rt.block_on(async {
        let c = aks::get_cluster(&sub, "rg-shop", "shop-aks-2")
            .await
            .unwrap();
        LinkedCluster::from_aks(&sub, &c).client().await.unwrap()
    });
    rt.block_on(shop_arrived(
        &aks_kc,
        "managed-csi-premium",
        (&aks_src, &cloud::aks_dir(&cloud_dir, "rg-shop", "shop-aks")),
        (&new, &cloud::aks_dir(&cloud_dir, "rg-shop", "shop-aks-2")),
    ));

    tmux.quit();
    drop(tmux);
    rt.block_on(cloud.shutdown()).unwrap();
}

/// Agents' progress reaches the console. With the repository in S3 (moto), a backup of
/// a namespace started from the console moves each claim through an in-cluster agent
/// Job (the sandbox runs the built `ferry-agent`); while it runs, `:jobs` shows each
/// volume moving through its agent with its bytes counting up, and at the end each
/// volume done and the snapshot.
#[test]
fn a_backup_through_agents_shows_each_volumes_progress_in_the_console() {
    use ferry_repo::backend::s3::S3Backend;
    use support::moto::{self, Moto};

    let dir = tempfile::tempdir().unwrap();
    let rt = crate::common::runtime();
    let moto = Moto::start();
    rt.block_on(moto.create_bucket("console-agents"));
    let backend = rt
        .block_on(S3Backend::connect(moto.s3_config("console-agents", "repo")))
        .unwrap();
    ferry_repo::Repository::init(
        std::sync::Arc::new(backend),
        rt.handle().clone(),
        &crate::common::secret(),
        &crate::common::init_opts(),
    )
    .unwrap();
    let prod_dir = dir.path().join("prod");
    let prod = rt.block_on(async {
        Sandbox::start(
            SandboxConfig::new("prod", &prod_dir)
                .with_demo_storage()
                .with_image("ferry-agent", support::agent_bin()),
        )
        .await
        .unwrap()
    });
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let client = rt
        .block_on(linked.get("ferry-prod").unwrap().client())
        .unwrap();
    rt.block_on(seed(
        &client,
        &prod_dir,
        &SeedOptions {
            files: 4,
            file_size: 64 * 1024,
            ..SeedOptions::default()
        },
    ))
    .unwrap();
    // Enough data that, at 4 MiB/s of upload, an agent is seen at work.
    let redis = rt.block_on(volume_dir(&client, &prod_dir, "shop", "redis-data"));
    std::fs::write(redis.join("big.bin"), crate::common::bytes(24 << 20, 11)).unwrap();

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = dir.path().join("ferry-console.sh");
    std::fs::write(
        &run,
        format!(
            "#!/bin/sh\nexec '{}' --limit-upload 4MiB console\n",
            support::ferry_bin()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = user_env(&home, &kc);
    env.extend([
        ("FERRY_REPO", "s3://console-agents/repo".to_string()),
        ("FERRY_PASSWORD", "test password".to_string()),
        ("FERRY_S3_ENDPOINT", moto.endpoint.clone()),
        ("FERRY_S3_PATH_STYLE", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY.to_string()),
        ("AWS_REGION", moto::REGION.to_string()),
    ]);
    let tmux = Tmux::start(dir.path(), &env, run.to_str().unwrap());

    tmux.wait_for("ferry-prod", 60);
    tmux.wait_for("v1.", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("shop", 60);
    tmux.keys(&["/"]);
    tmux.type_text("shop");
    tmux.keys(&["Enter", "Space", "b"]);
    tmux.wait_for("back up?", 30);
    tmux.keys(&["y"]);
    tmux.keys(&[":"]);
    tmux.type_text("jobs");
    tmux.keys(&["Enter"]);
    // While the agent uploads: its volume's line, its bytes counting.
    let moving = tmux.wait_for("moving (agent)", 120);
    let line = |s: &str, claim: &str| {
        s.lines()
            .find(|l| l.contains(&format!("shop/{claim} ")))
            .unwrap_or_else(|| panic!("no line for {claim}:\n{s}"))
            .to_string()
    };
    assert!(
        moving
            .lines()
            .any(|l| l.contains("shop/") && l.contains("moving (agent)")),
        "{moving}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = tmux.screen();
        let l = line(&s, "redis-data");
        // Bytes under way: neither nothing nor everything yet.
        if l.contains("moving (agent)") && !l.contains("· 0 B/") {
            break;
        }
        assert!(Instant::now() < deadline, "no bytes moving:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The end: every volume done, the snapshot written.
    let end = tmux.wait_for("snapshot ", 180);
    for claim in ["redis-data", "data-postgres-0"] {
        assert!(line(&end, claim).contains("done"), "{end}");
    }
    assert!(!end.contains("FAILED"), "{end}");
    tmux.quit();
    drop(tmux);
    rt.block_on(prod.shutdown()).unwrap();
}

//! The console end to end, as a user runs it: the real `ferry` binary in a tmux
//! terminal, keys sent with `tmux send-keys`, the screen read with `capture-pane`.
//! A namespace of a seeded application is cloned from `prod` into `qa` through the
//! wizard (target, new name, a storage class picked over the suggested one, options,
//! plan, confirm); the clone's objects and claims are then checked with kubectl and
//! every file of its volumes on disk. A file of a
//! folder backup is browsed to and restored to this machine with `d`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::engine::k8s::RESTORED_ANNOTATION;
use ferry::providers::kubeconfig::{Linked, Sources};
use ferry::providers::sandbox::seed::{SeedOptions, seed};
use ferry::providers::sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;

#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

/// kubectl v1.33 as `scripts/install-kubectl.sh` installs it: a client we did not write.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let home = std::env::var("HOME").unwrap();
    let bin = PathBuf::from(home).join(".cache/ferry-tools/kubectl");
    let out = Command::new(&bin)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run scripts/install-kubectl.sh)",
                bin.display()
            )
        });
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn volume_dir(client: &kube::Client, sandbox_dir: &Path, ns: &str, claim: &str) -> PathBuf {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get(claim)
        .await
        .unwrap();
    let pv_name = pvc.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await
        .unwrap();
    sandbox_dir
        .join("volumes")
        .join(pv.spec.unwrap().csi.unwrap().volume_handle)
}

fn checksums(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let sum = blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex();
                out.insert(rel, sum.to_string());
            }
        }
    }
    out
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
    let env = [
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", home.join("config").display().to_string()),
        ("XDG_DATA_HOME", home.join("data").display().to_string()),
        ("XDG_STATE_HOME", home.join("state").display().to_string()),
        ("XDG_CACHE_HOME", home.join("cache").display().to_string()),
        ("KUBECONFIG", kc.display().to_string()),
        ("TERM", "xterm-256color".to_string()),
    ];
    let tmux = Tmux::start(dir.path(), &env, env!("CARGO_BIN_EXE_ferry"));

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
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tmux.running() {
        let s = tmux.screen();
        if s.contains("Quit?") || s.contains("quit?") {
            tmux.keys(&["y"]);
        }
        assert!(Instant::now() < deadline, "q did not quit:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let env = [
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", home.join("config").display().to_string()),
        ("XDG_DATA_HOME", home.join("data").display().to_string()),
        ("XDG_STATE_HOME", home.join("state").display().to_string()),
        ("XDG_CACHE_HOME", home.join("cache").display().to_string()),
        ("KUBECONFIG", kc.display().to_string()),
        ("TERM", "xterm-256color".to_string()),
    ];
    let backup = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("backup")
        .arg(&src)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");

    let tmux = Tmux::start(dir.path(), &env, env!("CARGO_BIN_EXE_ferry"));
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
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tmux.running() {
        assert!(
            Instant::now() < deadline,
            "q did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

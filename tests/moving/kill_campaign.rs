//! The kill campaign: the real `ferry` binary doing folder backups, captures, folder
//! restores, migrations and forget --prune is killed with SIGKILL at random points, and
//! after every kill:
//! - `ferry check --read-data` finds the repository whole (no `unlock` needed);
//! - running the same command again succeeds;
//! - neither cluster keeps any of Ferry's temporaries once that run is done.
//!
//! At the end every folder snapshot restores identical and no capture holds Ferry's
//! own objects or claims.
//!
//! `FERRY_CAMPAIGN_TRIALS` sets the number of kills (CI runs a bounded form; the issue's
//! full form is 50 or more), `FERRY_CAMPAIGN_SEED` the random points. The figures are
//! printed at the end (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_k8s::capture::{self, CaptureMeta};
use ferry_k8s::lease;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_repo::Repository;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::crypto::Secret;
use ferry_repo::snapshot;
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::ListParams;
use support::volumes::{checksums, volume_dir};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    FolderBackup,
    Capture,
    FolderRestore,
    Migrate,
    ForgetPrune,
}

const OPS: [Op; 5] = [
    Op::FolderBackup,
    Op::Capture,
    Op::FolderRestore,
    Op::Migrate,
    Op::ForgetPrune,
];

struct Campaign {
    dir: PathBuf,
    kubeconfig: PathBuf,
    repo: PathBuf,
    data: PathBuf,
    /// The folder snapshot restores read.
    folder_snapshot: String,
}

impl Campaign {
    fn ferry(&self, args: &[&str]) -> Command {
        let home = self.dir.join("home");
        let mut c = Command::new(support::ferry_bin());
        c.args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("FERRY_REPO", &self.repo)
            .env("FERRY_PASSWORD", "campaign")
            .env_remove("FERRY_PASSWORD_FILE")
            .env_remove("FERRY_KEY_FILE")
            .stdin(Stdio::null());
        c
    }

    fn args(&self, op: Op, trial: usize) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        let restore_to = self.dir.join(format!("restored-{trial}"));
        match op {
            Op::FolderBackup => s(&["backup", self.data.to_str().unwrap(), "--quiet"]),
            Op::Capture => s(&["backup", "--context", "ferry-prod", "-n", "shop", "--quiet"]),
            Op::FolderRestore => {
                let _ = std::fs::remove_dir_all(&restore_to);
                s(&[
                    "restore",
                    &self.folder_snapshot,
                    "-t",
                    restore_to.to_str().unwrap(),
                    "--quiet",
                ])
            }
            Op::Migrate => s(&[
                "migrate",
                "--from",
                "ferry-prod",
                "--to",
                "ferry-qa",
                "-n",
                "shop",
                "--map-namespace",
                "shop=shop-qa",
                "--conflict",
                "update",
                "--yes",
                "--quiet",
            ]),
            Op::ForgetPrune => s(&["forget", "--keep-last", "3", "--prune", "--quiet"]),
        }
    }

    fn run(&self, args: &[String]) -> Output {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ferry(&a).output().unwrap()
    }
}

fn said(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn temporaries(client: &kube::Client) -> Vec<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=ferry");
    let mut v: Vec<String> = Vec::new();
    for p in Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
    {
        v.push(format!("pod {:?}", p.metadata.name));
    }
    for p in Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
    {
        v.push(format!("claim {:?}", p.metadata.name));
    }
    for p in Api::<Lease>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
    {
        v.push(format!("lease {:?}", p.metadata.name));
    }
    v
}

#[test]
fn kills_at_random_points_leave_a_whole_repository_and_clean_clusters() {
    let trials: usize = std::env::var("FERRY_CAMPAIGN_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed_value: u64 = std::env::var("FERRY_CAMPAIGN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f3779);
    let rt = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let dir = tmp.path().to_path_buf();
        let prod = Sandbox::start(SandboxConfig::new("prod", dir.join("prod")).with_demo_storage())
            .await
            .unwrap();
        let qa = Sandbox::start(SandboxConfig::new("qa", dir.join("qa")).with_demo_storage())
            .await
            .unwrap();
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &[prod.kubeconfig_entry(), qa.kubeconfig_entry()]).unwrap();
        let linked = Linked::load(&Sources {
            paths: vec![kubeconfig.clone()],
        });
        let prod_client = linked.get("ferry-prod").unwrap().client().await.unwrap();
        let qa_client = linked.get("ferry-qa").unwrap().client().await.unwrap();
        seed(
            &prod_client,
            &dir.join("prod"),
            &SeedOptions {
                files: 24,
                file_size: 512 * 1024,
                ..SeedOptions::default()
            },
        )
        .await
        .unwrap();
        // What prod's claims hold (the campaign never changes them).
        let mut claims = Vec::new();
        for claim in ["data-postgres-0", "redis-data"] {
            let at = volume_dir(&prod_client, &dir.join("prod"), "shop", claim).await;
            claims.push((claim, checksums(&at)));
        }
        let data = dir.join("data");
        for i in 0..40u64 {
            let sub = data.join(format!("d{}", i % 5));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("f{i}")), common::bytes(256 * 1024, i)).unwrap();
        }
        let want = common::describe(&data);
        let mut c = Campaign {
            dir: dir.clone(),
            kubeconfig,
            repo: dir.join("repo"),
            data: data.clone(),
            folder_snapshot: String::new(),
        };
        let o = c.ferry(&["init"]).output().unwrap();
        assert!(o.status.success(), "{}", said(&o));
        let o = c.run(&c.args(Op::FolderBackup, 0));
        assert!(o.status.success(), "{}", said(&o));
        c.folder_snapshot = newest_folder_snapshot(&c.repo).await;
        // Every command once, uncut: its duration bounds the kill points.
        let mut took = Vec::new();
        for (i, op) in OPS.iter().enumerate() {
            let start = Instant::now();
            let o = c.run(&c.args(*op, 1000 + i));
            assert!(o.status.success(), "{op:?}: {}", said(&o));
            took.push(start.elapsed());
        }

        let mut rng = Rng(seed_value | 1);
        let (mut killed, mut finished) = (0usize, 0usize);
        let mut killed_per_op = [0usize; OPS.len()];
        let campaign_start = Instant::now();
        for trial in 0..trials {
            let op = OPS[trial % OPS.len()];
            if op == Op::FolderRestore {
                // forget --keep-last 3 removes older folder snapshots as the campaign goes.
                c.folder_snapshot = newest_folder_snapshot(&c.repo).await;
            }
            let limit = took[trial % OPS.len()].as_millis() as u64;
            let delay = Duration::from_millis(rng.below(limit.max(50)));
            let args = c.args(op, trial);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut child = c
                .ferry(&a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            tokio::time::sleep(delay).await;
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed += 1;
                killed_per_op[trial % OPS.len()] += 1;
            } else {
                finished += 1;
            }
            child.wait().unwrap();
            let ctx = format!("trial {trial}: {op:?} killed after {delay:?}");

            let o = c.ferry(&["check", "--read-data"]).output().unwrap();
            assert!(o.status.success(), "{ctx}: check after the kill: {}", said(&o));
            let o = c.run(&c.args(op, trial));
            assert!(o.status.success(), "{ctx}: the next run: {}", said(&o));
            if op == Op::FolderRestore {
                let got = common::describe(&dir.join(format!("restored-{trial}")));
                assert_eq!(got, want, "{ctx}: the restore differs");
            }
            if op == Op::Migrate {
                for (claim, want) in &claims {
                    let at = volume_dir(&qa_client, &dir.join("qa"), "shop-qa", claim).await;
                    assert!(checksums(&at) == *want, "{ctx}: {claim} in qa differs");
                }
            }
            for (name, client) in [("prod", &prod_client), ("qa", &qa_client)] {
                let left = temporaries(client).await;
                assert!(left.is_empty(), "{ctx}: {name} keeps {left:?}");
            }
        }

        // Every folder snapshot restores identical; no capture holds Ferry's own objects.
        let repo_path = c.repo.clone();
        let handle = tokio::runtime::Handle::current();
        let (folders, capture_ids) = tokio::task::spawn_blocking(move || {
            let repo = open(repo_path, handle);
            let (snaps, _) = snapshot::list(&repo).unwrap();
            let mut captures = Vec::new();
            let mut folders = Vec::new();
            for s in &snaps {
                match CaptureMeta::of(s) {
                    Some(meta) => {
                        captures.push(s.id.to_string());
                        let mut claims: Vec<&str> =
                            meta.volumes.iter().map(|v| v.pvc.as_str()).collect();
                        claims.sort();
                        assert_eq!(claims, ["data-postgres-0", "redis-data"], "{}", s.id);
                        let objects = capture::read_objects(&repo, s).unwrap();
                        assert!(!objects.iter().any(lease::is_temporary), "{}", s.id);
                    }
                    None => folders.push(s.id.to_string()),
                }
            }
            (folders, captures)
        })
        .await
        .unwrap();
        for (i, id) in folders.iter().enumerate() {
            let to = dir.join(format!("final-{i}"));
            let o = c
                .ferry(&["restore", id, "-t", to.to_str().unwrap(), "--quiet"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{id}: {}", said(&o));
            let got = common::describe(&to);
            assert_eq!(got, want, "folder snapshot {id} differs");
        }
        // Every capture's volumes restore identical to prod's claims.
        for id in &capture_ids {
            for (claim, want) in &claims {
                let to = dir.join(format!("volume-{id}-{claim}"));
                let spec = format!("{id}:volumes/shop/{claim}");
                let o = c
                    .ferry(&["restore", &spec, "-t", to.to_str().unwrap(), "--quiet"])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{spec}: {}", said(&o));
                assert!(checksums(&to) == *want, "{spec} differs from prod's claim");
            }
        }
        let captures = capture_ids.len();
        println!(
            "kill campaign: {trials} trials ({killed} killed mid-run, {finished} finished first) in {:.0} s; \
             {} folder snapshots and {captures} captures verified; seed {seed_value}",
            campaign_start.elapsed().as_secs_f64(),
            folders.len()
        );
        for (op, n) in OPS.iter().zip(killed_per_op) {
            println!("  {op:?}: killed {n} times");
        }
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

/// The newest snapshot that is not a capture.
async fn newest_folder_snapshot(repo: &std::path::Path) -> String {
    let repo_path = repo.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let repo = open(repo_path, handle);
        let (snaps, _) = snapshot::list(&repo).unwrap();
        snaps
            .iter()
            .filter(|s| CaptureMeta::of(s).is_none())
            .max_by_key(|s| s.time)
            .expect("a folder snapshot")
            .id
            .to_string()
    })
    .await
    .unwrap()
}

fn open(path: PathBuf, handle: tokio::runtime::Handle) -> Repository {
    Repository::open(
        Arc::new(LocalBackend::new(path)),
        handle,
        &Secret::Password("campaign".into()),
    )
    .unwrap()
}

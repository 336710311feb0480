//! Volume data arrives whole or the job says it did not: hostile file names through the
//! mover's exec protocol (on the real busybox when installed), incremental captures that
//! notice rewritten files, and the leftovers of killed jobs removed and never captured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::lease;
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Conflict, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use support::volumes::volume_dir;

/// Names that broke the old `find | tar -T -` protocol, and more.
fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"--exclude=*".to_vec(),
        b"-C..".to_vec(),
        b"report\\2024.txt".to_vec(),
        b"tab\there".to_vec(),
        b"new\nline".to_vec(),
        b"bad\xff\xfe-bytes".to_vec(),
        b"it's \"quoted\" $HOME `id`".to_vec(),
        b"..dots".to_vec(),
        b"...".to_vec(),
        b"pipe|name".to_vec(),
        b" leading space".to_vec(),
        b"-".to_vec(),
        b"*".to_vec(),
        "ünïcödé ✓".as_bytes().to_vec(),
        b"n".repeat(180),
    ]
}

/// Every file and symlink below `dir` by raw relative path: BLAKE3 of its content (or
/// its target), so non-UTF-8 names compare exactly.
fn tree(dir: &Path) -> BTreeMap<Vec<u8>, String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<Vec<u8>, String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &p, out);
            } else if t.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", target.display()));
            } else if t.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct Env {
    dir: tempfile::TempDir,
    prod: Sandbox,
    kubeconfig: PathBuf,
    client: kube::Client,
}

impl Env {
    /// The `ferry` CLI with a home, repository and kubeconfig of this environment's own
    /// (the repository `cli-repo` in its folder).
    fn ferry_cli(&self, args: &[&str]) -> std::process::Command {
        let home = self.dir.path().join("home");
        let mut c = std::process::Command::new(support::ferry_bin());
        c.args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("FERRY_REPO", self.dir.path().join("cli-repo"))
            .env("FERRY_PASSWORD", "pw")
            .env_remove("FERRY_PASSWORD_FILE")
            .env_remove("FERRY_KEY_FILE");
        c
    }

    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let prod =
            Sandbox::start(SandboxConfig::new("prod", dir.path().join("prod")).with_demo_storage())
                .await
                .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &[prod.kubeconfig_entry()]).unwrap();
        let linked = Linked::load(&Sources {
            paths: vec![kubeconfig.clone()],
        });
        let client = linked.get("ferry-prod").unwrap().client().await.unwrap();
        seed(
            &client,
            &dir.path().join("prod"),
            &SeedOptions {
                files: 4,
                file_size: 16 * 1024,
                ..SeedOptions::default()
            },
        )
        .await
        .unwrap();
        Env {
            dir,
            prod,
            kubeconfig,
            client,
        }
    }

    async fn volume(&self, ns: &str, claim: &str) -> PathBuf {
        volume_dir(&self.client, &self.dir.path().join("prod"), ns, claim).await
    }
}

fn opts(ns: &str, use_snapshots: bool) -> CaptureOptions {
    CaptureOptions {
        cluster: "ferry-prod".into(),
        scope: Scope::Namespaces(vec![ns.into()]),
        include_volumes: true,
        use_snapshots,
        mover: MoverOptions::default(),
        tags: vec![],
        parent: None,
        no_parent: false,
        envelope: None,
        server: None,
        resources: Default::default(),
    }
}

async fn capture_ns(
    env: &Env,
    repo: &ferry_repo::Repository,
    o: &CaptureOptions,
) -> CaptureOutcome {
    capture::capture(&env.client, repo, o, &JobProgress::new())
        .await
        .unwrap()
}

/// Restores the claim `claim` of `out` into the namespace `to` of the same cluster and
/// returns its folder.
async fn restore_into(
    env: &Env,
    repo: &ferry_repo::Repository,
    out: &CaptureOutcome,
    from: &str,
    to: &str,
    claim: &str,
) -> PathBuf {
    restore_through(env, repo, out, from, to, claim, 1).await
}

/// [`restore_into`] with at most `streams` archives extracted side by side.
async fn restore_through(
    env: &Env,
    repo: &ferry_repo::Repository,
    out: &CaptureOutcome,
    from: &str,
    to: &str,
    claim: &str,
    streams: usize,
) -> PathBuf {
    let ropts = PlanOptions {
        mapping: Mapping {
            namespaces: [(from.to_string(), to.to_string())].into(),
            ..Mapping::default()
        },
        conflict: Conflict::Update,
        include_volumes: true,
        mover: MoverOptions::default(),
        only: None,
        namespaces: vec![],
        modifiers: None,
    };
    let repo2 = repo.clone();
    let snap = out.snapshot.clone();
    let objects = tokio::task::spawn_blocking(move || capture::read_objects(&repo2, &snap))
        .await
        .unwrap()
        .unwrap();
    let p = plan::build(
        &env.client,
        "ferry-prod",
        &out.snapshot,
        &out.meta,
        objects,
        &ropts,
    )
    .await
    .unwrap();
    assert_eq!(p.blocking(), 0, "{}", p.render_text());
    let mover = MoverOptions {
        streams,
        ..MoverOptions::default()
    };
    let report = apply::apply(&env.client, repo, &p, &mover, &JobProgress::new())
        .await
        .unwrap();
    assert!(report.failed().is_empty(), "{:#?}", report.failed());
    env.volume(to, claim).await
}

#[test]
fn hostile_file_names_arrive_byte_for_byte_through_busybox() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let src = env.volume("shop", "redis-data").await;
        // Hostile names at the top and in a folder that is itself named like an option.
        let deep = src.join("--files-from=x").join("-r");
        std::fs::create_dir_all(&deep).unwrap();
        for (i, n) in hostile_names().iter().enumerate() {
            let name = OsStr::from_bytes(n);
            std::fs::write(src.join(name), format!("top {i}\n").repeat(50 * (i + 1))).unwrap();
            std::fs::write(deep.join(name), format!("deep {i}")).unwrap();
        }
        std::os::unix::fs::symlink("--exclude=*", src.join("link-to-option")).unwrap();
        let want = tree(&src);
        let files = want.values().filter(|v| v.len() == 64).count() as u64;

        for use_snapshots in [true, false] {
            let out = capture_ns(&env, &t.repo, &opts("shop", use_snapshots)).await;
            assert!(out.warnings.is_empty(), "{:?}", out.warnings);
            assert!(out.meta.failed_volumes.is_empty());
            let v = out
                .meta
                .volumes
                .iter()
                .find(|v| v.pvc == "redis-data")
                .unwrap();
            assert_eq!(v.files, files, "{v:?}");
            let ns = if use_snapshots { "odd-a" } else { "odd-b" };
            let dst = restore_into(&env, &t.repo, &out, "shop", ns, "redis-data").await;
            let got = tree(&dst);
            let differ: Vec<String> = want
                .keys()
                .chain(got.keys())
                .filter(|k| want.get(*k) != got.get(*k))
                .map(|k| format!("{:?}", String::from_utf8_lossy(k)))
                .collect();
            assert!(
                differ.is_empty(),
                "snapshots={use_snapshots}: {differ:?} differ"
            );
        }
        env.prod.shutdown().await.unwrap();
    });
}

/// A FIFO and a socket in a claim (a database's socket in its data folder): nothing
/// opens them, so nothing blocks; the FIFO comes back as a FIFO, the socket (which only
/// its server can make live) is recorded and not restored, and every file arrives.
#[test]
fn special_files_in_a_volume_neither_block_nor_fail_it() {
    use std::os::unix::fs::FileTypeExt as _;
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let src = env.volume("shop", "redis-data").await;
        nix::unistd::mkfifo(
            &src.join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        let _server = std::os::unix::net::UnixListener::bind(src.join("redis.sock")).unwrap();
        std::fs::write(src.join("after-the-pipe.txt"), b"still here").unwrap();
        let want: BTreeMap<_, _> = tree(&src);

        for use_snapshots in [false, true] {
            let o = opts("shop", use_snapshots);
            let capture = capture_ns(&env, &t.repo, &o);
            let out = tokio::time::timeout(Duration::from_secs(120), capture)
                .await
                .expect("the capture never blocks on a FIFO");
            assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta);
            let ns = if use_snapshots {
                "special-a"
            } else {
                "special-b"
            };
            let dst = restore_into(&env, &t.repo, &out, "shop", ns, "redis-data").await;
            assert_eq!(tree(&dst), want, "snapshots={use_snapshots}");
            let pipe = std::fs::symlink_metadata(dst.join("pipe")).unwrap();
            assert!(pipe.file_type().is_fifo(), "{pipe:?}");
            assert!(!dst.join("redis.sock").exists());
        }
        env.prod.shutdown().await.unwrap();
    });
}

#[test]
fn a_file_rewritten_with_the_same_size_and_second_is_read_again() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let src = env.volume("shop", "redis-data").await;
        let file = src.join("same-size.bin");
        let set_time = |p: &Path, secs: i64, nanos: u32| {
            filetime::set_file_mtime(p, filetime::FileTime::from_unix_time(secs, nanos)).unwrap()
        };
        std::fs::write(&file, b"AAAAAAAAAAAAAAAA").unwrap();
        set_time(&file, 1_700_000_000, 0);
        // Live reads: the same claim each time, so inodes and change times count.
        let o = opts("shop", false);
        let first = capture_ns(&env, &t.repo, &o).await;
        // Same size, same whole-second mtime: only the change time tells.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, b"BBBBBBBBBBBBBBBB").unwrap();
        set_time(&file, 1_700_000_000, 0);
        let second = capture_ns(&env, &t.repo, &o).await;
        assert_eq!(second.snapshot.parent, Some(first.snapshot.id));
        let v = second
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "redis-data")
            .unwrap();
        assert_eq!(v.files_transferred, 1, "{v:?}");
        // Nothing changed: nothing is read.
        let third = capture_ns(&env, &t.repo, &o).await;
        let v = third
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "redis-data")
            .unwrap();
        assert_eq!(v.files_transferred, 0, "{v:?}");

        // Through copy-made CSI snapshots (new inodes each time) the nanoseconds count.
        let s = opts("shop", true);
        capture_ns(&env, &t.repo, &s).await;
        std::fs::write(&file, b"CCCCCCCCCCCCCCCC").unwrap();
        set_time(&file, 1_700_000_000, 5);
        let fourth = capture_ns(&env, &t.repo, &s).await;
        let v = fourth
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "redis-data")
            .unwrap();
        assert_eq!(v.files_transferred, 1, "{v:?}");
        let dst = restore_into(&env, &t.repo, &fourth, "shop", "again", "redis-data").await;
        assert_eq!(
            std::fs::read(dst.join("same-size.bin")).unwrap(),
            b"CCCCCCCCCCCCCCCC"
        );
        env.prod.shutdown().await.unwrap();
    });
}

/// Makes what a killed job leaves: a mover pod holding the claim, a temporary claim and
/// the job's lease, whose holder is a process of this machine that no longer runs.
async fn leave_dead_job(client: &kube::Client, ns: &str, job: &str, claim: &str) {
    let labels = json!({
        "app.kubernetes.io/managed-by": "ferry", "ferry.dev/temporary": "true",
        "ferry.dev/job": job, "ferry.dev/role": "mover",
    });
    let dead = format!("ferry@{}/{}", ferry_repo::hostname(), i32::MAX - 11);
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let l: Lease = serde_json::from_value(json!({
        "metadata": {"name": format!("ferry-job-{job}"), "namespace": ns, "labels": labels},
        "spec": {"holderIdentity": dead, "leaseDurationSeconds": 30, "renewTime": now},
    }))
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &l)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("ferry-mover-{job}"), "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "mover", "image": "busybox:1.36", "command": ["sleep", "86400"],
                 "volumeMounts": [{"name": "data", "mountPath": "/ferry/src", "readOnly": true}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": format!("ferry-read-{job}"), "namespace": ns, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
}

async fn ferry_objects(client: &kube::Client, ns: &str) -> usize {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=ferry");
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
        .items
        .len()
        + Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .unwrap()
            .items
            .len()
        + Api::<Lease>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .unwrap()
            .items
            .len()
}

#[test]
fn dead_jobs_leftovers_are_removed_first_and_never_captured_while_live_jobs_keep_theirs() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        leave_dead_job(&env.client, "shop", "deadbeef0001", "redis-data").await;
        // A job that runs (this process holds its lease) keeps its objects.
        let live = lease::JobLease::start(&env.client, Duration::from_secs(10));
        live.hold("shop").await.unwrap();
        assert_eq!(ferry_objects(&env.client, "shop").await, 4);

        // The dry run says what would go, and removes nothing.
        let dry = lease::sweep(&env.client, &[], true, Duration::from_secs(10)).await;
        assert_eq!(dry.removed.len(), 3, "{dry:?}");
        assert_eq!(ferry_objects(&env.client, "shop").await, 4);

        let out = capture_ns(&env, &t.repo, &opts("shop", true)).await;
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        // Only the shop's own claims, none of the temporaries.
        let mut claims: Vec<&str> = out.meta.volumes.iter().map(|v| v.pvc.as_str()).collect();
        claims.sort();
        assert_eq!(claims, ["data-postgres-0", "redis-data"]);
        let repo = t.repo.clone();
        let snap = out.snapshot.clone();
        let objects = tokio::task::spawn_blocking(move || capture::read_objects(&repo, &snap))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !objects.iter().any(lease::is_temporary),
            "a temporary was captured"
        );
        // The dead job's objects are gone, the live job's lease is still there.
        assert_eq!(ferry_objects(&env.client, "shop").await, 1);
        live.release().await;
        assert_eq!(ferry_objects(&env.client, "shop").await, 0);
        env.prod.shutdown().await.unwrap();
    });
}

/// The real binary killed while it reads volumes: its leftovers are found by `ferry
/// cleanup` and the next backup succeeds with exactly the shop's claims.
#[test]
fn a_backup_killed_mid_volume_leaves_nothing_the_next_run_keeps() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        // Enough data that the kill lands while a mover runs.
        let src = env.volume("shop", "data-postgres-0").await;
        for i in 0..8 {
            std::fs::write(src.join(format!("big-{i}")), common::bytes(8 << 20, i)).unwrap();
        }
        let ferry = |args: &[&str]| env.ferry_cli(args);
        let out = ferry(&["init"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = ferry(&["backup", "--context", "ferry-prod", "-n", "shop", "--quiet"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it as soon as a mover of it runs.
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), "shop");
        let lp = ListParams::default().labels("ferry.dev/role=mover");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mover = loop {
            if let Some(mover) = pods.list(&lp).await.unwrap().items.into_iter().next() {
                break Some(mover);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let mover = mover.expect("no mover appeared");
        // A node autoscaler leaves its node alone while it runs.
        let a = mover.metadata.annotations.unwrap_or_default();
        assert_eq!(a["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
        assert_eq!(a["karpenter.sh/do-not-disrupt"], "true");
        assert!(
            ferry_objects(&env.client, "shop").await > 0,
            "the kill left nothing to clean"
        );

        let out = ferry(&["cleanup", "--context", "ferry-prod"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("removed"), "{said}");
        assert_eq!(ferry_objects(&env.client, "shop").await, 0, "{said}");

        let out = ferry(&["backup", "--context", "ferry-prod", "-n", "shop", "--quiet"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ferry(&["check", "--read-data"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(ferry_objects(&env.client, "shop").await, 0);
        env.prod.shutdown().await.unwrap();
    });
}

/// Cancelling a capture while a volume streams stops the read at once: the job ends as
/// cancelled long before the volume could have been read to its end (64 GiB, sparse on
/// the host so it costs no disk, zeros through the mover's `tar`), and leaves no mover
/// pod or lease behind. (The old path drained the rest of the stream first.)
#[test]
fn a_cancelled_capture_stops_reading_the_volume_at_once() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let src = env.volume("shop", "data-postgres-0").await;
        let huge: u64 = 64 << 30;
        std::fs::File::create(src.join("huge"))
            .unwrap()
            .set_len(huge)
            .unwrap();
        let progress = JobProgress::new();
        let o = opts("shop", false);
        let job = capture::capture(&env.client, &t.repo, &o, &progress);
        let cancel = async {
            let deadline = Instant::now() + Duration::from_secs(120);
            while progress.data.snapshot().bytes_done < 64 << 20 {
                assert!(Instant::now() < deadline, "the volume never streamed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            progress.cancel();
            Instant::now()
        };
        let (r, cancelled_at) = tokio::join!(job, cancel);
        let took = cancelled_at.elapsed();
        assert!(matches!(r, Err(ferry_k8s::K8sError::Cancelled)), "{r:?}");
        // Not a speed figure: the old path took minutes here (it read the remaining
        // gigabytes before it ended); the cancel itself is checked ten times a second.
        assert!(
            took < Duration::from_secs(30),
            "the capture went on for {took:?} after the cancel"
        );
        let read = progress.data.snapshot().bytes_done;
        assert!(read < huge / 4, "{read} bytes read after the cancel");
        assert_eq!(ferry_objects(&env.client, "shop").await, 0);
        eprintln!("the capture ended {took:?} after the cancel, {read} bytes read");
        env.prod.shutdown().await.unwrap();
    });
}

/// A volume's tar stream that ends inside a file: the read fails naming the file, and
/// nothing short is recorded. Archives that follow each other (one per batch) are read
/// as one stream.
#[test]
fn a_cut_stream_is_an_error_never_a_short_file() {
    use ferry_repo::ingest::{self, TreeBuilder};
    use ferry_repo::progress::Progress;
    use ferry_repo::saver::Saver;
    use std::sync::Arc;

    let t = common::new_repo();
    t.repo.load_index().unwrap();
    let archive = |files: &[(&str, usize)]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, len) in files {
            let data = common::bytes(*len, 3);
            let mut h = tar::Header::new_gnu();
            h.set_size(*len as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    };
    let progress = Arc::new(Progress::new());
    let saver = Saver::new(&t.repo, progress.clone(), true).unwrap();

    // Two archives back to back: every member arrives.
    let mut two = archive(&[("./a", 1000)]);
    two.extend(archive(&[("./b", 70_000)]));
    let mut seen = Vec::new();
    let mut builder = TreeBuilder::new(&t.repo, &saver, &progress);
    let n = ingest::read_tar(&mut builder, &mut &two[..], b"vol", &mut |p, _| {
        seen.push(p.to_vec());
        true
    })
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);

    // Cut in the middle of the second file's data.
    let whole = archive(&[("./a", 1000), ("./big", 200_000)]);
    let cut = &whole[..whole.len() - 150_000];
    let mut builder = TreeBuilder::new(&t.repo, &saver, &progress);
    let err = ingest::read_tar(&mut builder, &mut &cut[..], b"vol", &mut |_, _| true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("big") && err.contains("of 200000 bytes"),
        "{err}"
    );
    saver.finish().unwrap();
}

/// Ferry's mover pods need no more than Pod Security `baseline` admits (root, with the
/// file capabilities only); in a `restricted` namespace a mover runs as the non-root
/// user of the workload that mounts the claim, and where there is none the volume fails
/// with what to do, and the capture goes on with the objects.
#[test]
fn mover_pods_pass_baseline_and_restricted_namespaces_say_what_to_do() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
        support::enforce_pod_security(&env.client, "shop", Some("baseline")).await;
        let out = capture_ns(&env, &t.repo, &opts("shop", false)).await;
        assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta.failed_volumes);
        assert!(out.meta.volumes.iter().any(|v| v.pvc == "redis-data" && v.files > 0));

        support::enforce_pod_security(&env.client, "shop", Some("restricted")).await;
        // A workload that runs as a non-root user, as `restricted` wants.
        notes_app(&env.kubeconfig).await;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), "shop");
        let deadline = Instant::now() + Duration::from_secs(30);
        while claims
            .get("notes-data")
            .await
            .ok()
            .and_then(|c| c.spec?.volume_name)
            .is_none()
        {
            assert!(Instant::now() < deadline, "the notes claim never bound");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let notes = env.volume("shop", "notes-data").await;
        while !notes.join("sub/deep.txt").exists() {
            assert!(Instant::now() < deadline, "the notes app never wrote its files");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let out = capture_ns(&env, &t.repo, &opts("shop", false)).await;
        let failed = &out.meta.failed_volumes;
        assert!(!failed.is_empty(), "a restricted namespace admitted a root mover");
        for f in failed {
            for want in [
                "enforces Pod Security \"restricted",
                "runAsNonRoot != true",
                "No workload mounting the claim names a non-root `runAsUser`",
                "kubectl label namespace shop pod-security.kubernetes.io/enforce=baseline --overwrite",
                "--no-volumes",
            ] {
                assert!(f.error.contains(want), "{want:?} not in {}", f.error);
            }
        }
        assert!(failed.iter().any(|f| f.pvc == "redis-data"), "{failed:?}");
        // The non-root workload's claim is read by a mover running as its user.
        assert!(!failed.iter().any(|f| f.pvc == "notes-data"), "{failed:?}");
        let v = out.meta.volumes.iter().find(|v| v.pvc == "notes-data").unwrap();
        assert_eq!(v.files, 2, "{v:?}");

        // And written back into a restricted namespace by a mover running as the
        // workload's user: the files arrive, that user's, in the pod's fsGroup.
        let only_notes = CaptureOptions {
            scope: Scope::Workloads {
                namespace: "shop".into(),
                workloads: vec!["deployment/notes".into()],
            },
            ..opts("shop", false)
        };
        let out = capture_ns(&env, &t.repo, &only_notes).await;
        assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta.failed_volumes);
        let target: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
            "metadata": {"name": "shop-r",
                         "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }))
        .unwrap();
        namespaces.create(&PostParams::default(), &target).await.unwrap();
        let restored = restore_into(&env, &t.repo, &out, "shop", "shop-r", "notes-data").await;
        assert_eq!(tree(&restored), tree(&notes));
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(restored.join("sub/deep.txt")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 2000));
        env.prod.shutdown().await.unwrap();
    });
}

/// A Deployment in `shop` that passes Pod Security `restricted`: it runs as user 1000,
/// group 3000, with fsGroup 2000, and writes two files into its claim.
async fn notes_app(kubeconfig: &Path) {
    let manifest = kubeconfig.with_file_name("notes.yaml");
    std::fs::write(
        &manifest,
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: notes-data, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: notes, namespace: shop}
spec:
  selector: {matchLabels: {app: notes}}
  template:
    metadata: {labels: {app: notes}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 3000
        fsGroup: 2000
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: notes
        image: busybox:1.36
        command: [sh, -c, 'echo hello > /notes/a.txt; mkdir -p /notes/sub; echo deep > /notes/sub/deep.txt; sleep 3600']
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: data, mountPath: /notes}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: notes-data}}]
"#,
    )
    .unwrap();
    let kc = kubeconfig.to_path_buf();
    tokio::task::spawn_blocking(move || {
        support::kubectl::kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()])
    })
    .await
    .unwrap();
}

/// What a volume's entries are, by path: kind, content (or target), mode, owner, the
/// modification time of files and symlinks (dirs' are tar's), and a file's link count.
fn shape(dir: &Path) -> BTreeMap<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = BTreeMap::new();
    for (rel, what) in tree(dir) {
        let p = dir.join(OsStr::from_bytes(&rel));
        let m = std::fs::symlink_metadata(&p).unwrap();
        let t = m.file_type();
        let line = if t.is_dir() {
            format!("dir {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
        } else if t.is_symlink() {
            format!("{what} mtime {}", m.mtime())
        } else {
            format!(
                "{what} {:o} {}:{} mtime {} links {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.nlink()
            )
        };
        out.insert(rel, line);
    }
    out
}

/// Regular files (each name of a hard-linked file counts) and their bytes, as a
/// capture counts them.
fn counts(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for rel in tree(dir).keys() {
        let m = std::fs::symlink_metadata(dir.join(OsStr::from_bytes(rel))).unwrap();
        if m.file_type().is_file() {
            files += 1;
            bytes += m.len();
        }
    }
    (files, bytes)
}

const SPARSE_SIZE: u64 = 64 << 20;

/// Fills `src` with what tar streams lose: a file with two more hard links in other
/// folders, a 64 MiB sparse file with two 4 KiB regions written, symlinks (relative,
/// absolute, dangling) whose own times differ from their targets', and owners that are
/// not root's.
fn odd_volume(src: &Path) {
    use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
    let at = |secs: i64| filetime::FileTime::from_unix_time(secs, 0);
    for d in ["data", "x", "y/z"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let orig = src.join("data/orig.bin");
    std::fs::write(&orig, common::bytes(300_000, 7)).unwrap();
    std::fs::hard_link(&orig, src.join("x/link1")).unwrap();
    std::fs::hard_link(&orig, src.join("y/z/link2")).unwrap();
    std::os::unix::fs::chown(&orig, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&orig, std::fs::Permissions::from_mode(0o640)).unwrap();
    filetime::set_file_mtime(&orig, at(1_600_000_000)).unwrap();

    let sparse = src.join("data/sparse.img");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(SPARSE_SIZE).unwrap();
    f.write_all_at(&[0xab; 4096], 0).unwrap();
    f.write_all_at(&[0xcd; 4096], 40 << 20).unwrap();
    drop(f);
    std::os::unix::fs::chown(&sparse, Some(999), Some(999)).unwrap();
    std::fs::set_permissions(&sparse, std::fs::Permissions::from_mode(0o600)).unwrap();
    filetime::set_file_mtime(&sparse, at(1_650_000_000)).unwrap();

    for (name, target, secs) in [
        ("rel-link", "../data/orig.bin", 1_500_000_000),
        ("abs-link", "/etc/hostname", 1_400_000_000),
        ("dangling", "nowhere/at/all", 1_300_000_000),
    ] {
        let p = src.join("x").join(name);
        std::os::unix::fs::symlink(target, &p).unwrap();
        filetime::set_symlink_file_times(&p, at(secs), at(secs)).unwrap();
    }
    std::os::unix::fs::chown(src.join("y"), Some(1234), Some(5678)).unwrap();
}

/// Hard links arrive as hard links, a sparse file stays sparse, symlinks keep their own
/// times, owners and modes arrive: on the live read and on the CSI snapshot path, and
/// through one archive or several extracted side by side. And
/// the volume's file and byte counts that `ferry backup`, `plan` and `inspect` print are
/// the real ones.
#[test]
fn a_volume_arrives_as_it_was_hard_links_sparse_files_and_symlink_times() {
    use std::os::unix::fs::MetadataExt as _;
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Env::start().await;
        let src = env.volume("shop", "redis-data").await;
        odd_volume(&src);
        let want = shape(&src);
        let (files, bytes) = counts(&src);
        let src_alloc = std::fs::metadata(src.join("data/sparse.img"))
            .unwrap()
            .blocks()
            * 512;
        assert!(src_alloc < 1 << 20, "the source file is not sparse here");

        for use_snapshots in [false, true] {
            let out = capture_ns(&env, &t.repo, &opts("shop", use_snapshots)).await;
            assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta);
            let v = out
                .meta
                .volumes
                .iter()
                .find(|v| v.pvc == "redis-data")
                .unwrap();
            let path = if use_snapshots { "snapshot" } else { "live" };
            assert_eq!(v.consistency, path);
            assert_eq!((v.files, v.bytes), (files, bytes), "{path}: {v:?}");
            let ns = if use_snapshots {
                "as-was-a"
            } else {
                "as-was-b"
            };
            // The snapshot's copy is restored through two archives side by side (the
            // 64 MiB sparse file makes the volume large enough for a second).
            let streams = if use_snapshots { 3 } else { 1 };
            let dst = restore_through(&env, &t.repo, &out, "shop", ns, "redis-data", streams).await;
            let got = shape(&dst);
            let names: std::collections::BTreeSet<_> = want.keys().chain(got.keys()).collect();
            let differ: Vec<String> = names
                .into_iter()
                .filter(|k| want.get(*k) != got.get(*k))
                .map(|k| {
                    format!(
                        "{:?}: {:?} became {:?}",
                        String::from_utf8_lossy(k),
                        want.get(k),
                        got.get(k)
                    )
                })
                .collect();
            assert!(differ.is_empty(), "{path}: {differ:#?}");
            let ino = |p: &str| std::fs::metadata(dst.join(p)).unwrap().ino();
            assert_eq!(ino("data/orig.bin"), ino("x/link1"), "{path}");
            assert_eq!(ino("data/orig.bin"), ino("y/z/link2"), "{path}");
            let sparse = std::fs::metadata(dst.join("data/sparse.img")).unwrap();
            assert_eq!(sparse.len(), SPARSE_SIZE);
            assert!(
                sparse.blocks() * 512 <= src_alloc * 2 + (64 << 10),
                "{path}: the sparse file takes {} bytes, the source's {src_alloc}",
                sparse.blocks() * 512
            );
        }

        // What the CLI prints of the volume.
        let ferry = |args: &[&str]| {
            let out = env.ferry_cli(args).output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{args:?}: {said} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            said
        };
        let said_counts = format!("{files} files, {}", ferry_repo::units::bytes(bytes));
        let line_of = |said: &str, what: &str| -> String {
            said.lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("no {what:?} in {said}"))
                .to_string()
        };
        ferry(&["init"]);
        for extra in [&["--no-snapshots"][..], &[]] {
            let mut args = vec!["backup", "--context", "ferry-prod", "-n", "shop", "--quiet"];
            args.extend_from_slice(extra);
            let said = ferry(&args);
            let line = line_of(&said, "volume shop/redis-data:");
            assert!(
                line.contains(&said_counts),
                "{extra:?}: {line:?}, want {said_counts:?}"
            );
        }
        let said = ferry(&["inspect", "latest"]);
        let line = line_of(&said, "shop/redis-data: class");
        assert!(
            line.contains(&said_counts),
            "inspect: {line:?}, want {said_counts:?}"
        );
        let said = ferry(&[
            "plan",
            "latest",
            "--context",
            "ferry-prod",
            "--map-namespace",
            "shop=as-was-c",
        ]);
        let line = line_of(&said, "redis-data -> ");
        assert!(
            line.contains(&said_counts),
            "plan: {line:?}, want {said_counts:?}"
        );
        env.prod.shutdown().await.unwrap();
    });
}

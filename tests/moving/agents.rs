//! Volume data moved by in-cluster agents: with the repository in S3 (moto on
//! loopback, or s3s-fs, which checks every request's signature), each claim is stored and restored by a `ferry-agent` Job that the sandbox
//! runs as a real process (its image store maps the agent image to the built binary).
//! The data arrives byte for byte, an agent killed half-way is started again by its Job
//! and the volume still arrives, a cancelled job leaves nothing behind, and nothing of
//! the agents (Jobs, pods, Secrets, snapshot claims) outlives any job.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{self, Conflict, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_repo::Repository;
use ferry_repo::backend::DynBackend;
use ferry_repo::backend::s3::S3Backend;
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::moto::Moto;
use support::s3s::{S3sFs, SECRET_ACCESS_KEY};
use support::volumes::{checksums, volume_dir};

/// The object store a test's repository is in.
enum Store {
    Moto(Moto),
    S3sFs(S3sFs),
}

impl Store {
    fn moto(rt: &tokio::runtime::Runtime, bucket: &str) -> Store {
        let moto = Moto::start();
        rt.block_on(moto.create_bucket(bucket));
        Store::Moto(moto)
    }

    fn config(&self, bucket: &str) -> ferry_repo::backend::s3::S3Config {
        match self {
            Store::Moto(m) => m.s3_config(bucket, "repo"),
            Store::S3sFs(s) => s.config(bucket, "repo", SECRET_ACCESS_KEY),
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
    _store: Store,
    prod: Sandbox,
    client: kube::Client,
    repo: Repository,
}

impl Env {
    /// A sandbox running agent pods, the shop seeded with `extra` bytes of random data
    /// in its Redis claim beside odd file names, and an S3 repository on moto.
    fn start(rt: &tokio::runtime::Runtime, bucket: &str, extra: usize) -> Env {
        Env::start_on(rt, Store::moto(rt, bucket), bucket, extra)
    }

    /// As [`Env::start`], with the repository in `store`.
    fn start_on(rt: &tokio::runtime::Runtime, store: Store, bucket: &str, extra: usize) -> Env {
        let s3 = rt
            .block_on(S3Backend::connect(store.config(bucket)))
            .unwrap();
        let backend: DynBackend = Arc::new(s3);
        let repo = Repository::init(
            backend,
            rt.handle().clone(),
            &common::secret(),
            &common::init_opts(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (prod, client) = rt.block_on(async {
            let prod = Sandbox::start(
                SandboxConfig::new("prod", dir.path().join("prod"))
                    .with_demo_storage()
                    .with_image("ferry-agent", support::agent_bin()),
            )
            .await
            .unwrap();
            let kubeconfig = dir.path().join("kubeconfig");
            write_kubeconfig(&kubeconfig, &[prod.kubeconfig_entry()]).unwrap();
            let linked = Linked::load(&Sources {
                paths: vec![kubeconfig],
            });
            let client = linked.get("ferry-prod").unwrap().client().await.unwrap();
            seed(
                &client,
                &dir.path().join("prod"),
                &SeedOptions {
                    files: 6,
                    file_size: 64 * 1024,
                    ..SeedOptions::default()
                },
            )
            .await
            .unwrap();
            (prod, client)
        });
        let env = Env {
            dir,
            _store: store,
            prod,
            client,
            repo,
        };
        let redis = rt.block_on(env.volume("shop", "redis-data"));
        for (i, name) in [
            "tab\there",
            "new\nline",
            "--exclude=*",
            "ünïcödé ✓",
            " lead",
        ]
        .iter()
        .enumerate()
        {
            std::fs::create_dir_all(redis.join("odd").join(name)).unwrap();
            std::fs::write(
                redis.join("odd").join(name).join(name),
                format!("{i}").repeat(i * 1000 + 1),
            )
            .unwrap();
        }
        if extra > 0 {
            std::fs::write(redis.join("big.bin"), common::bytes(extra, 7)).unwrap();
        }
        env
    }

    async fn volume(&self, ns: &str, claim: &str) -> PathBuf {
        volume_dir(&self.client, &self.dir.path().join("prod"), ns, claim).await
    }

    /// Every Ferry temporary left in `ns`: agent Jobs, pods, Secrets, snapshot claims.
    async fn leftovers(&self, ns: &str) -> Vec<String> {
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=ferry");
        let mut out = Vec::new();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
        for j in jobs.list(&lp).await.unwrap() {
            out.push(format!("job {}", j.metadata.name.unwrap_or_default()));
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        for s in secrets.list(&lp).await.unwrap() {
            out.push(format!("secret {}", s.metadata.name.unwrap_or_default()));
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        for c in claims.list(&lp).await.unwrap() {
            out.push(format!("claim {}", c.metadata.name.unwrap_or_default()));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for p in pods.list(&ListParams::default()).await.unwrap() {
            let name = p.metadata.name.unwrap_or_default();
            if name.starts_with("ferry-") {
                out.push(format!("pod {name}"));
            }
        }
        out
    }
}

fn capture_opts() -> CaptureOptions {
    let mut mover = MoverOptions::default();
    mover.agent.stall_timeout = Duration::from_secs(30);
    CaptureOptions {
        cluster: "ferry-prod".into(),
        scope: Scope::Namespaces(vec!["shop".into()]),
        include_volumes: true,
        use_snapshots: true,
        mover,
        tags: vec![],
        parent: None,
        no_parent: false,
        envelope: None,
        server: None,
        resources: Default::default(),
    }
}

/// Restores `out`'s shop into `to` on the same cluster through the data path the plan
/// chooses, which must be the agents'.
async fn restore_into(env: &Env, out: &CaptureOutcome, to: &str) {
    let (report, progress) = restore_report(env, out, to).await;
    assert!(report.failed().is_empty(), "{:#?}", report.failed());
    assert_eq!(
        report.volumes.len(),
        out.meta.volumes.len(),
        "{:#?}",
        report.volumes
    );
    assert!(
        progress
            .log_lines()
            .iter()
            .any(|l| l.starts_with("volume data: agent")),
        "{:?}",
        progress.log_lines()
    );
}

/// Restores `out`'s shop into `to` through the agents: what the restore reported.
async fn restore_report(
    env: &Env,
    out: &CaptureOutcome,
    to: &str,
) -> (apply::Report, Arc<JobProgress>) {
    restore_via(env, &env.repo, out, to, "agent", MoverOptions::default()).await
}

/// Restores `out`'s shop from `repo` into `to`, checking that the plan moves the data
/// through `path` (`agent` or `exec`).
async fn restore_via(
    env: &Env,
    repo: &Repository,
    out: &CaptureOutcome,
    to: &str,
    path: &str,
    mover: MoverOptions,
) -> (apply::Report, Arc<JobProgress>) {
    let mut namespaces = vec![("shop".to_string(), to.to_string())];
    // A second namespace, where a test captured one.
    if out.meta.volumes.iter().any(|v| v.namespace == "billing") {
        namespaces.push(("billing".to_string(), format!("{to}-billing")));
    }
    let ropts = PlanOptions {
        mapping: Mapping {
            namespaces: namespaces.into_iter().collect(),
            ..Mapping::default()
        },
        conflict: Conflict::Update,
        include_volumes: true,
        mover,
        only: None,
        namespaces: vec![],
        modifiers: None,
    };
    let snap = out.snapshot.clone();
    let stored = repo.clone();
    let objects = tokio::task::spawn_blocking(move || capture::read_objects(&stored, &snap))
        .await
        .unwrap()
        .unwrap();
    let mut p = plan::build(
        &env.client,
        "ferry-prod",
        &out.snapshot,
        &out.meta,
        objects,
        &ropts,
    )
    .await
    .unwrap();
    p.choose_data_path(repo, &ropts.mover.agent).await;
    assert_eq!(p.blocking(), 0, "{}", p.render_text());
    assert_eq!(p.data_path.as_ref().unwrap().path, path);
    assert!(
        p.render_text().contains(&format!("data through {path}")),
        "{}",
        p.render_text()
    );
    let progress = JobProgress::new();
    let report = apply::apply(&env.client, repo, &p, &ropts.mover, &progress)
        .await
        .unwrap();
    (report, progress)
}

async fn sums(
    env: &Env,
    ns: &str,
    out: &CaptureOutcome,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all = BTreeMap::new();
    for v in &out.meta.volumes {
        all.insert(v.pvc.clone(), checksums(&env.volume(ns, &v.pvc).await));
    }
    all
}

/// Several claims stored by agents into S3 and restored by agents, byte for byte, odd
/// names included; a second capture reads only what changed; nothing of the agents is
/// left on the cluster.
#[test]
fn agents_move_several_claims_through_s3_byte_for_byte_and_leave_nothing() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-move", 0);
    let repo = env.repo.clone();
    rt.block_on(async move {
        let progress = JobProgress::new();
        let out = capture::capture(&env.client, &env.repo, &capture_opts(), &progress)
            .await
            .unwrap();
        assert!(
            out.meta.failed_volumes.is_empty(),
            "{:?}",
            out.meta.failed_volumes
        );
        assert!(out.meta.volumes.len() >= 2, "{:?}", out.meta.volumes);
        assert_eq!(out.meta.data_path.as_ref().unwrap().path, "agent");
        for v in &out.meta.volumes {
            assert_eq!(v.consistency, "snapshot", "{v:?}");
            assert!(v.files > 0 && v.files_transferred == v.files, "{v:?}");
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        let want = sums(&env, "shop", &out).await;

        restore_into(&env, &out, "shop-copy").await;
        assert_eq!(sums(&env, "shop-copy", &out).await, want);
        assert_eq!(env.leftovers("shop-copy").await, Vec::<String>::new());

        // Incremental: one file changed, only it is read again.
        let redis = env.volume("shop", "redis-data").await;
        std::fs::write(redis.join("changed.txt"), "new data").unwrap();
        let mut o = capture_opts();
        o.parent = Some(out.snapshot.id.to_hex());
        let again = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        let r = again
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "redis-data")
            .unwrap();
        assert_eq!(r.files_transferred, 1, "{r:?}");
        restore_into(&env, &again, "shop-again").await;
        assert_eq!(
            sums(&env, "shop-again", &again).await,
            sums(&env, "shop", &again).await
        );
        // The repository the agents wrote checks clean.
        let report = tokio::task::spawn_blocking(move || {
            ferry_repo::check::check(
                &repo,
                &Default::default(),
                &Arc::new(ferry_repo::progress::Progress::new()),
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert!(report.ok(), "{report:?}");
        env.prod.shutdown().await.unwrap();
    });
}

/// The same through s3s-fs, an S3 that verifies every request's SigV4 signature (moto
/// checks none): what the agents sign with the credentials Ferry hands them is what a
/// real store accepts, and the claims arrive byte for byte.
#[test]
fn agents_sign_what_a_signature_checking_s3_accepts() {
    let rt = common::runtime();
    let store = Store::S3sFs(S3sFs::start(&rt, &["agents-signed"]));
    let env = Env::start_on(&rt, store, "agents-signed", 3 << 20);
    rt.block_on(async move {
        let out = capture::capture(&env.client, &env.repo, &capture_opts(), &JobProgress::new())
            .await
            .unwrap();
        assert!(
            out.meta.failed_volumes.is_empty(),
            "{:?}",
            out.meta.failed_volumes
        );
        assert_eq!(out.meta.data_path.as_ref().unwrap().path, "agent");
        assert!(out.meta.volumes.len() >= 2, "{:?}", out.meta.volumes);
        let want = sums(&env, "shop", &out).await;
        restore_into(&env, &out, "shop-signed").await;
        assert_eq!(sums(&env, "shop-signed", &out).await, want);
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        assert_eq!(env.leftovers("shop-signed").await, Vec::<String>::new());
        env.prod.shutdown().await.unwrap();
    });
}

/// Ferry's agent pods pass Pod Security `baseline`. Where `restricted` is enforced they
/// run as the non-root user of the workload that mounts the claim; where there is none,
/// the volume fails at once (not after the start timeout) with what to do, whether the
/// namespace's label says so or the cluster's admission configuration does (no label to
/// read: the Job controller's `FailedCreate` event tells).
#[test]
fn agents_pass_baseline_and_run_as_the_workloads_user_under_restricted() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-psa", 0);
    rt.block_on(async move {
        // Captured while the namespace names no level: restored below.
        let plain = capture::capture(&env.client, &env.repo, &capture_opts(), &JobProgress::new())
            .await
            .unwrap();
        assert!(plain.meta.failed_volumes.is_empty(), "{:?}", plain.meta.failed_volumes);

        support::enforce_pod_security(&env.client, "shop", Some("baseline")).await;
        let out = capture::capture(&env.client, &env.repo, &capture_opts(), &JobProgress::new())
            .await
            .unwrap();
        assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta.failed_volumes);
        assert_eq!(out.meta.data_path.as_ref().unwrap().path, "agent");

        // Restricted, and a workload running as user 1000 (fsGroup 2000) beside the
        // shop's root ones.
        support::enforce_pod_security(&env.client, "shop", Some("restricted")).await;
        notes_app(&env.client).await;
        let notes = env.volume("shop", "notes-data").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !notes.join("sub/deep.txt").exists() {
            assert!(Instant::now() < deadline, "the notes app never wrote its files");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let progress = JobProgress::new();
        let t = Instant::now();
        let hard = capture::capture(&env.client, &env.repo, &capture_opts(), &progress)
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        let failed = &hard.meta.failed_volumes;
        assert!(failed.iter().any(|f| f.pvc == "redis-data"), "{failed:?}");
        for f in failed {
            for want in [
                "enforces Pod Security \"restricted\"",
                "Ferry's agent pod",
                "No workload mounting the claim names a non-root `runAsUser` the agent could run as",
                "kubectl label namespace shop pod-security.kubernetes.io/enforce=baseline --overwrite",
            ] {
                assert!(f.error.contains(want), "{want:?} not in {}", f.error);
            }
        }
        let v = hard.meta.volumes.iter().find(|v| v.pvc == "notes-data");
        assert_eq!(v.map(|v| v.files), Some(2), "{:?} / {failed:?}", hard.meta.volumes);
        assert!(
            progress
                .log_lines()
                .iter()
                .any(|l| l.contains("running as the workload's user 1000")),
            "{:?}",
            progress.log_lines()
        );
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        // The notes app alone, captured while the namespace names no level.
        support::enforce_pod_security(&env.client, "shop", None).await;
        let mut o = capture_opts();
        o.scope = Scope::Workloads {
            namespace: "shop".into(),
            workloads: vec!["deployment/notes".into()],
        };
        let notes_only = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(notes_only.meta.failed_volumes.is_empty(), "{:?}", notes_only.meta.failed_volumes);
        assert_eq!(notes_only.meta.volumes.len(), 1, "{:?}", notes_only.meta.volumes);

        // A cluster whose admission configuration enforces `restricted` where a
        // namespace names no level: nothing for Ferry to read beforehand. The root
        // agent's Job cannot make its pod, and the volume fails as soon as the Job
        // controller says why.
        env.prod.set_pod_security(Some("restricted"));
        let t = Instant::now();
        let (report, _) = restore_report(&env, &plain, "shop-hard").await;
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        let refused: Vec<_> = report.volumes.iter().filter(|o| !o.ok).collect();
        assert!(!refused.is_empty(), "{:#?}", report.volumes);
        for o in refused {
            for want in [
                "enforces Pod Security \"restricted\"",
                "runAsNonRoot != true",
                "kubectl label namespace shop-hard",
            ] {
                assert!(o.message.contains(want), "{want:?} not in {}", o.message);
            }
        }
        assert_eq!(env.leftovers("shop-hard").await, Vec::<String>::new());
        // The same, for the non-root app's claim: refused as root, its agent is started
        // again as the app's user, and the data arrives.
        let (report, progress) = restore_report(&env, &notes_only, "shop-notes").await;
        assert!(
            report.volumes.iter().all(|o| o.ok) && report.volumes.len() == 1,
            "{:#?}",
            report.volumes
        );
        assert!(
            progress.log_lines().iter().any(|l| l.contains(
                "(the cluster's own Pod Security level): running as the workload's user 1000"
            )),
            "{:?}",
            progress.log_lines()
        );
        assert_eq!(
            checksums(&env.volume("shop-notes", "notes-data").await),
            checksums(&notes)
        );
        assert_eq!(env.leftovers("shop-notes").await, Vec::<String>::new());
        env.prod.set_pod_security(None);
        env.prod.shutdown().await.unwrap();
    });
}

/// A claim and a Deployment in `shop` that pass Pod Security `restricted`: user 1000,
/// group 3000, fsGroup 2000, writing two files into the claim.
async fn notes_app(client: &kube::Client) {
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "notes-data", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "notes", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "notes"}},
            "template": {
                "metadata": {"labels": {"app": "notes"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 3000,
                                        "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "notes", "image": "busybox:1.36",
                        "command": ["sh", "-c", "echo hello > /notes/a.txt; mkdir -p /notes/sub; echo deep > /notes/sub/deep.txt; sleep 3600"],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "data", "mountPath": "/notes"}],
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "notes-data"}}],
                },
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
}

/// Where no node can take an agent (here: every node cordoned, as during an upgrade or
/// when the claim's zone has no room), the volume fails after the start timeout with
/// the scheduler's own reason and what to do, and nothing is left behind.
#[test]
fn an_agent_no_node_takes_fails_its_volume_with_the_schedulers_reason() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-unschedulable", 0);
    rt.block_on(async move {
        let nodes: Api<Node> = Api::all(env.client.clone());
        let cordon = |on: bool| {
            let nodes = nodes.clone();
            async move {
                for n in nodes.list(&ListParams::default()).await.unwrap() {
                    let name = n.metadata.name.unwrap();
                    nodes
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"unschedulable": on}})),
                        )
                        .await
                        .unwrap();
                }
            }
        };
        cordon(true).await;
        let mut o = capture_opts();
        o.mover.agent.start_timeout = Duration::from_secs(3);
        o.mover.agent.retries = 0;
        let t = Instant::now();
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        assert!(out.meta.volumes.is_empty(), "{:?}", out.meta.volumes);
        assert!(!out.meta.failed_volumes.is_empty());
        for f in &out.meta.failed_volumes {
            for want in [
                "no node could take the agent within 3 s",
                "0/3 nodes are available: 3 node(s) were unschedulable.",
                "--agent-cpu",
                "--start-timeout",
            ] {
                assert!(f.error.contains(want), "{want:?} not in {}", f.error);
            }
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        cordon(false).await;
        env.prod.shutdown().await.unwrap();
    });
}

/// Where every worker is tainted (here: being drained for maintenance) and the claims'
/// workloads do not tolerate it, an agent goes nowhere and its volume fails with the
/// scheduler's reason; told to tolerate the taint (`--tolerate`), the agents run there.
#[test]
fn agents_tolerate_what_they_are_told_to() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-tolerate", 0);
    rt.block_on(async move {
        let nodes: Api<Node> = Api::all(env.client.clone());
        for n in ["prod-worker-a", "prod-worker-b"] {
            let taint = json!({"spec": {"taints": [{"key": "maintenance", "value": "kernel", "effect": "NoSchedule"}]}});
            nodes
                .patch(n, &PatchParams::default(), &Patch::Merge(taint))
                .await
                .unwrap();
        }
        let mut o = capture_opts();
        o.mover.agent.start_timeout = Duration::from_secs(3);
        o.mover.agent.retries = 0;
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(out.meta.volumes.is_empty(), "{:?}", out.meta.volumes);
        for f in &out.meta.failed_volumes {
            assert!(
                f.error.contains("2 node(s) had untolerated taint {maintenance: kernel}"),
                "{}",
                f.error
            );
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());

        o.mover.tolerations = vec![ferry_k8s::placement::parse_toleration("maintenance:NoSchedule").unwrap()];
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(out.meta.failed_volumes.is_empty(), "{:?}", out.meta.failed_volumes);
        assert!(out.meta.volumes.len() >= 2, "{:?}", out.meta.volumes);
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        env.prod.shutdown().await.unwrap();
    });
}

/// A Deployment of an image the sandbox emulates, mounting a new claim `name` of `ns`.
async fn app_with_claim(client: &kube::Client, ns: &str, name: &str) {
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": "app", "image": "registry.example.com/app:1",
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
            }},
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
}

/// `--agents-per-node` holds wherever the agents run: placed by the scheduler (from
/// snapshots), pinned to the node holding a claim (live), across namespaces. With one
/// per node on two workers, captures of six claims in two namespaces and their restore
/// never have two agents running on one node, and every claim arrives.
#[test]
fn agents_keep_to_their_per_node_limit_wherever_they_run() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-per-node", 2 << 20);
    rt.block_on(async move {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "billing"}})).unwrap(),
            )
            .await
            .unwrap();
        for (i, (ns, name)) in [
            ("shop", "orders-data"),
            ("shop", "media-data"),
            ("shop", "audit-data"),
            ("billing", "invoices-data"),
        ]
        .iter()
        .enumerate()
        {
            app_with_claim(&env.client, ns, name).await;
            running_on(&env.client, ns, name).await;
            let dir = env.volume(ns, name).await;
            std::fs::write(dir.join("blob"), common::bytes(1 << 20, i as u64)).unwrap();
        }
        // Watches every agent pod on a node, in every namespace.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watch = {
            let (client, done) = (env.client.clone(), done.clone());
            tokio::spawn(async move {
                let pods: Api<Pod> = Api::all(client);
                let (mut most_on_a_node, mut most_at_once) = (0usize, 0usize);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let lp = ListParams::default().labels("ferry.dev/role=agent");
                    let mut on: BTreeMap<String, usize> = BTreeMap::new();
                    for p in pods.list(&lp).await.unwrap() {
                        let ended = matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        );
                        let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
                        if !ended && !node.is_empty() && p.metadata.deletion_timestamp.is_none() {
                            *on.entry(node).or_default() += 1;
                        }
                    }
                    most_on_a_node = most_on_a_node.max(on.values().copied().max().unwrap_or(0));
                    most_at_once = most_at_once.max(on.values().sum());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (most_on_a_node, most_at_once)
            })
        };
        let mut o = capture_opts();
        o.scope = Scope::Namespaces(vec!["shop".into(), "billing".into()]);
        o.mover.agent.per_node = 1;
        o.mover.agent.per_job = 4;
        // Live: each agent pinned to the node of its claim's pod.
        o.use_snapshots = false;
        let live = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(
            live.meta.failed_volumes.is_empty(),
            "{:?}",
            live.meta.failed_volumes
        );
        assert!(live.meta.volumes.len() >= 6, "{:?}", live.meta.volumes);
        // From snapshots: placed by the scheduler.
        o.use_snapshots = true;
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(
            out.meta.failed_volumes.is_empty(),
            "{:?}",
            out.meta.failed_volumes
        );
        assert_eq!(out.meta.volumes.len(), live.meta.volumes.len());
        // Restored into two new namespaces at once.
        let (report, _) = restore_via(&env, &env.repo, &out, "shop-spread", "agent", o.mover).await;
        assert!(report.failed().is_empty(), "{:#?}", report.failed());
        assert_eq!(report.volumes.len(), out.meta.volumes.len());
        for v in &out.meta.volumes {
            let (from, to) = match v.namespace.as_str() {
                "billing" => ("billing", "shop-spread-billing"),
                _ => ("shop", "shop-spread"),
            };
            assert_eq!(
                checksums(&env.volume(to, &v.pvc).await),
                checksums(&env.volume(from, &v.pvc).await),
                "{}",
                v.pvc
            );
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (most_on_a_node, most_at_once) = watch.await.unwrap();
        assert_eq!(most_on_a_node, 1, "more than one agent ran on a node");
        assert!(most_at_once >= 1);
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        assert_eq!(env.leftovers("shop-spread").await, Vec::<String>::new());
        env.prod.shutdown().await.unwrap();
    });
}

/// A ledger app on a pool dedicated to it: a node of one zone that only pods tolerating
/// `dedicated=ledger` may use, which its pods select. Twenty more pods keep that node
/// the busiest, so a pod free to go anywhere does not land there by chance.
async fn ledger_on_a_dedicated_pool(client: &kube::Client, node: &str, zone: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "ledger", "effect": "NoSchedule"}]}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(taint))
        .await
        .unwrap();
    let pod_spec = |claim: Option<&str>| {
        let mut spec = json!({
            "nodeSelector": {"topology.kubernetes.io/zone": zone},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ledger", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "registry.example.com/ledger:2.1"}],
        });
        if let Some(c) = claim {
            spec["containers"][0]["volumeMounts"] =
                json!([{"name": "data", "mountPath": "/var/lib/ledger"}]);
            spec["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": c}}]);
        }
        spec
    };
    let deployment = |ns: &str, name: &str, replicas: u32, spec: serde_json::Value| -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }))
        .unwrap()
    };
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "ledger-data", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("default", "ballast", 20, pod_spec(None)),
        )
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "shop")
        .create(
            &PostParams::default(),
            &deployment("shop", "ledger", 1, pod_spec(Some("ledger-data"))),
        )
        .await
        .unwrap();
}

/// The node of the running pod of `ns` labelled `app`, waited for.
async fn running_on(client: &kube::Client, ns: &str, app: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for p in pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
        {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                return p.spec.and_then(|s| s.node_name).unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {app} pod ran in {ns} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The zone of the volume bound to `claim`, from its node affinity.
async fn claim_zone(client: &kube::Client, ns: &str, claim: &str) -> String {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get(claim)
        .await
        .unwrap();
    let pv = pvc.spec.and_then(|s| s.volume_name).unwrap();
    let pv = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(client.clone())
        .get(&pv)
        .await
        .unwrap();
    let pv = serde_json::to_value(pv).unwrap();
    pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0/values/0")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A folder repository beside the S3 one: the exec path.
fn local_repo(rt: &tokio::runtime::Runtime, env: &Env) -> Repository {
    Repository::init(
        Arc::new(ferry_repo::backend::local::LocalBackend::new(
            env.dir.path().join("local"),
        )),
        rt.handle().clone(),
        &common::secret(),
        &common::init_opts(),
    )
    .unwrap()
}

/// The ledger app on its dedicated node `node` in `zone` ([`ledger_on_a_dedicated_pool`])
/// with a journal in its claim, captured through agents into the S3 repository and
/// through the exec path into `local`; the journal's checksums.
async fn ledger_captured(
    env: &Env,
    local: &Repository,
    node: &str,
    zone: &str,
) -> (CaptureOutcome, CaptureOutcome, BTreeMap<String, String>) {
    ledger_on_a_dedicated_pool(&env.client, node, zone).await;
    assert_eq!(running_on(&env.client, "shop", "ledger").await, node);
    let ledger = env.volume("shop", "ledger-data").await;
    std::fs::create_dir_all(ledger.join("journal")).unwrap();
    for i in 0..5 {
        std::fs::write(
            ledger.join("journal").join(format!("{i:04}.log")),
            common::bytes(40_000, i),
        )
        .unwrap();
    }
    let want = checksums(&ledger);
    let agents = capture::capture(&env.client, &env.repo, &capture_opts(), &JobProgress::new())
        .await
        .unwrap();
    assert!(
        agents.meta.failed_volumes.is_empty(),
        "{:?}",
        agents.meta.failed_volumes
    );
    let exec = capture::capture(&env.client, local, &capture_opts(), &JobProgress::new())
        .await
        .unwrap();
    assert!(
        exec.meta.failed_volumes.is_empty(),
        "{:?}",
        exec.meta.failed_volumes
    );
    assert_eq!(exec.meta.data_path.as_ref().unwrap().path, "exec");
    (agents, exec, want)
}

/// A claim restored into a `WaitForFirstConsumer` class is made where its workload may
/// run: Ferry's pod that writes it (an agent, or the exec path's mover) takes the
/// workload's node selector and tolerations, so a workload pinned to a tainted pool in
/// one zone finds its volume there and runs. Where no node matches the selector any
/// more, the data still arrives and the job says why the workload will wait.
#[test]
fn a_restored_claim_is_made_where_its_workload_may_run() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-placement", 0);
    let local = local_repo(&rt, &env);
    rt.block_on(async move {
        let (pool, zone) = ("prod-worker-b", "ferry-local-prod-b");
        let (agents, exec, want) = ledger_captured(&env, &local, pool, zone).await;

        for (repo, out, to, path) in [
            (&env.repo, &agents, "shop-agent", "agent"),
            (&local, &exec, "shop-exec", "exec"),
        ] {
            let (report, _) = restore_via(&env, repo, out, to, path, MoverOptions::default()).await;
            assert!(report.failed().is_empty(), "{path}: {:#?}", report.failed());
            assert_eq!(claim_zone(&env.client, to, "ledger-data").await, zone, "{path}");
            assert_eq!(running_on(&env.client, to, "ledger").await, pool, "{path}");
            assert_eq!(checksums(&env.volume(to, "ledger-data").await), want, "{path}");
            assert_eq!(env.leftovers(to).await, Vec::<String>::new(), "{path}");
        }

        // The pool's zone is gone (another cluster's labels): the data still arrives.
        Api::<Node>::all(env.client.clone())
            .patch(
                pool,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "elsewhere"}}})),
            )
            .await
            .unwrap();
        let (report, progress) = restore_report(&env, &agents, "shop-moved").await;
        assert!(report.failed().is_empty(), "{:#?}", report.failed());
        assert_eq!(checksums(&env.volume("shop-moved", "ledger-data").await), want);
        let note = format!(
            "shop-moved/ledger-data: no schedulable node matches its workload's nodeSelector topology.kubernetes.io/zone={zone}"
        );
        assert!(
            progress.log_lines().iter().any(|l| l.starts_with(&note)),
            "{note:?} not in {:#?}",
            progress.log_lines()
        );
        env.prod.shutdown().await.unwrap();
    });
}

/// Cordons `node` (no new pod goes there; those on it stay).
async fn cordon(client: &kube::Client, node: &str) {
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
}

/// The messages of the events `reason` of the pods of `ns`.
async fn pod_events(client: &kube::Client, ns: &str, reason: &str) -> Vec<String> {
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("reason={reason}")))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Pod"))
        .filter_map(|e| e.message)
        .collect()
}

/// Where the workload's pool is scaled to zero and the cluster adds nodes on demand,
/// Ferry's pod that makes the restored claim asks for a node of that pool, as the
/// workload's own pods would, and waits for it: the volume is made in the pool's zone
/// and the workload runs there (agents and the exec path alike). Where the autoscaler
/// says it adds no such node, the rule is given up at once, with the autoscaler's
/// reason in the job's log, and the data still arrives.
#[test]
fn a_restored_claim_waits_for_the_node_an_autoscaler_adds() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-autoscaler", 0);
    let local = local_repo(&rt, &env);
    rt.block_on(async move {
        let (node, zone) = ("prod-worker-b", "ferry-local-prod-b");
        let (agents, exec, want) = ledger_captured(&env, &local, node, zone).await;

        // The ledger pool scaled to zero: its node is gone for new pods, and the
        // cluster's autoscaler may add nodes like it (at most two), which take 12 s to
        // join: longer than the start timeout, which waits while a node is coming.
        cordon(&env.client, node).await;
        let patient = MoverOptions {
            start_timeout: Duration::from_secs(8),
            agent: ferry_k8s::agent::AgentOptions {
                start_timeout: Duration::from_secs(8),
                ..Default::default()
            },
            ..Default::default()
        };
        let pools: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "sandbox-node-pools", "namespace": "kube-system"},
            "data": {"ledger": json!({
                "labels": {"topology.kubernetes.io/zone": zone},
                "taints": [{"key": "dedicated", "value": "ledger", "effect": "NoSchedule"}],
                "max": 2,
                "joinSeconds": 12,
            }).to_string()},
        }))
        .unwrap();
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(env.client.clone(), "kube-system");
        cms.create(&PostParams::default(), &pools).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while cms.get_opt("cluster-autoscaler-status").await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "no cluster-autoscaler status");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        for (repo, out, to, path, added, sizes) in [
            (&env.repo, &agents, "shop-agent", "agent", "prod-ledger-0", "0->1"),
            (&local, &exec, "shop-exec", "exec", "prod-ledger-1", "1->2"),
        ] {
            let (report, progress) = restore_via(&env, repo, out, to, path, patient.clone()).await;
            assert!(report.failed().is_empty(), "{path}: {:#?}", report.failed());
            assert_eq!(claim_zone(&env.client, to, "ledger-data").await, zone, "{path}");
            assert_eq!(running_on(&env.client, to, "ledger").await, added, "{path}");
            assert_eq!(checksums(&env.volume(to, "ledger-data").await), want, "{path}");
            let asked = format!(
                "{to}/ledger-data: no schedulable node matches its workload's nodeSelector topology.kubernetes.io/zone={zone} now: Ferry's pod asks the cluster autoscaler for one"
            );
            let log = progress.log_lines();
            assert!(log.iter().any(|l| l.starts_with(&asked)), "{path}: {asked:?} not in {log:#?}");
            assert!(!log.iter().any(|l| l.contains("the volume is made wherever")), "{path}: {log:#?}");
            // Ferry's pod asked for the node, not the workload's.
            assert_eq!(
                pod_events(&env.client, to, "TriggeredScaleUp").await,
                [format!("pod triggered scale-up: [{{ledger {sizes} (max: 2)}}]")],
                "{path}"
            );
            assert_eq!(env.leftovers(to).await, Vec::<String>::new(), "{path}");
            // The next restore finds no node of the pool free.
            cordon(&env.client, added).await;
        }

        // The pool is at its size limit: the autoscaler says so, the rule is given up
        // at once, and the data arrives all the same.
        for (repo, out, to, path) in [
            (&env.repo, &agents, "shop-full", "agent"),
            (&local, &exec, "shop-full-exec", "exec"),
        ] {
            let (report, progress) = restore_via(&env, repo, out, to, path, MoverOptions::default()).await;
            assert!(report.failed().is_empty(), "{path}: {:#?}", report.failed());
            assert_eq!(checksums(&env.volume(to, "ledger-data").await), want, "{path}");
            let note = format!(
                "{to}/ledger-data: the cluster autoscaler adds no node for its workload's nodeSelector topology.kubernetes.io/zone={zone} (pod didn't trigger scale-up: 1 max node group size reached): the volume is made wherever a node takes Ferry's pod"
            );
            let log = progress.log_lines();
            assert!(log.iter().any(|l| l.starts_with(&note)), "{path}: {note:?} not in {log:#?}");
            assert_eq!(env.leftovers(to).await, Vec::<String>::new(), "{path}");
        }
        env.prod.shutdown().await.unwrap();
    });
}

/// Waits until an agent pod of `ns` runs; its name.
async fn running_agent(client: &kube::Client, ns: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lp = ListParams::default().labels("ferry.dev/role=agent");
        for p in pods.list(&lp).await.unwrap() {
            if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                return p.metadata.name.unwrap_or_default();
            }
        }
        assert!(Instant::now() < deadline, "no agent pod ran within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An agent killed half-way (its pod deleted, as a lost node does) is started again by
/// its Job, reuses what it uploaded, and the volume arrives whole; a job cancelled
/// while its agents run leaves nothing behind.
#[test]
fn a_killed_agent_is_started_again_and_a_cancelled_job_leaves_nothing() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-faults", 48 << 20);
    rt.block_on(async {
        // Cancelled while the agents run.
        let progress = JobProgress::new();
        let job = {
            let (client, repo, progress) = (env.client.clone(), env.repo.clone(), progress.clone());
            tokio::spawn(async move {
                capture::capture(&client, &repo, &capture_opts(), &progress).await
            })
        };
        let agent = running_agent(&env.client, "shop").await;
        // A node autoscaler leaves its node alone while it runs.
        let annotations = Api::<Pod>::namespaced(env.client.clone(), "shop")
            .get(&agent)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default();
        assert_eq!(
            annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"],
            "false"
        );
        assert_eq!(annotations["karpenter.sh/do-not-disrupt"], "true");
        progress.cancel();
        let r = job.await.unwrap();
        assert!(matches!(r, Err(ref e) if e.is_cancelled()), "{r:?}");
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());

        // Killed half-way: the big claim's agent pod deleted once it has read some of
        // data no earlier run uploaded.
        let redis = env.volume("shop", "redis-data").await;
        std::fs::write(redis.join("big2.bin"), common::bytes(64 << 20, 9)).unwrap();
        let progress = JobProgress::new();
        let job = {
            let (client, repo, progress) = (env.client.clone(), env.repo.clone(), progress.clone());
            tokio::spawn(async move {
                capture::capture(&client, &repo, &capture_opts(), &progress).await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !progress
            .volumes()
            .iter()
            .any(|v| v.pvc == "redis-data" && v.bytes > (4 << 20) && v.state.starts_with("moving"))
        {
            assert!(Instant::now() < deadline, "{:?}", progress.volumes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), "shop");
        let lp = ListParams::default().labels("ferry.dev/role=agent,ferry.dev/claim");
        let victims: Vec<String> = pods
            .list(&lp)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("ferry.dev/claim"))
                    .is_some_and(|c| c.contains("redis"))
            })
            .filter_map(|p| p.metadata.name)
            .collect();
        assert!(!victims.is_empty());
        for victim in &victims {
            pods.delete(
                victim,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let out = job.await.unwrap().unwrap();
        assert!(
            out.meta.failed_volumes.is_empty(),
            "{:?}",
            out.meta.failed_volumes
        );
        assert!(
            progress
                .log_lines()
                .iter()
                .any(|l| l.contains("the Job starts it again")),
            "{:?}",
            progress.log_lines()
        );
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        let want = sums(&env, "shop", &out).await;
        restore_into(&env, &out, "shop-copy").await;
        assert_eq!(sums(&env, "shop-copy", &out).await, want);
        env.prod.shutdown().await.unwrap();
    });
}

/// A repository on this machine cannot be reached from a cluster: `auto` takes the
/// exec path and says why, `agent` is refused with what to do.
#[test]
fn a_local_repository_keeps_the_exec_path_and_refuses_agents() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let mut opts = ferry_k8s::agent::AgentOptions::default();
        let (access, choice) = ferry_k8s::agent::AgentAccess::of(&t.repo, &opts)
            .await
            .unwrap();
        assert!(access.is_none());
        assert_eq!(choice.path, "exec");
        assert!(
            choice.why.contains("folder on this machine"),
            "{}",
            choice.why
        );
        opts.data_path = ferry_k8s::agent::DataPath::Agent;
        let e = ferry_k8s::agent::AgentAccess::of(&t.repo, &opts)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--data-path exec"), "{e}");
    });
}

/// The OCI runtime to run the agent image with: runc (else crun) as root, or `None`.
fn oci_runtime() -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .flat_map(|d| [d.join("runc"), d.join("crun")])
        .find(|p| p.is_file())
}

/// Builds the agent image with `scripts/agent-image.py`; the manifest's digest.
fn build_image(out: &std::path::Path) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/agent-image.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .arg("--binary")
        .arg(support::agent_bin())
        .arg("--out")
        .arg(out)
        .args(["--epoch", "1700000000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    stdout.lines().last().unwrap().to_string()
}

/// The agent image is built without a daemon, reproducibly (two builds, one digest),
/// and, where an OCI runtime works (root with runc or crun), is unpacked and run for
/// real: the agent in its own root filesystem stores a mounted folder into S3 (moto
/// on the host's loopback), and the folder restored from what it stored is identical.
#[test]
fn the_agent_image_builds_reproducibly_and_runs_under_an_oci_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_image(&dir.path().join("a"));
    let b = build_image(&dir.path().join("b"));
    assert_eq!(a, b, "two builds of the same binary differ");
    assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");
    let layout = dir.path().join("a");
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], a.as_str());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&a)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(config_digest)).unwrap()).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"][0],
        "/usr/local/bin/ferry-agent"
    );

    let Some(runtime) = oci_runtime() else {
        eprintln!(
            "no OCI runtime usable here (needs root and runc or crun): the image was built and checked, not run"
        );
        return;
    };
    // Unpack the image as a runtime does.
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let st = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(blob(l["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
    }
    // A folder to store, and an S3 repository the container reaches on loopback.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/a.bin"), common::bytes(3 << 20, 11)).unwrap();
    std::fs::write(data.join("tab\tname"), "x").unwrap();
    let rt = common::runtime();
    let moto = Moto::start();
    rt.block_on(moto.create_bucket("agent-image"));
    let s3 = rt
        .block_on(S3Backend::connect(moto.s3_config("agent-image", "repo")))
        .unwrap();
    let repo = Repository::init(
        Arc::new(s3),
        rt.handle().clone(),
        &common::secret(),
        &common::init_opts(),
    )
    .unwrap();
    let mut env: Vec<String> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    env.push(format!(
        "{}={}",
        ferry_repo::agent::KEY_ENV,
        &*repo.key().export()
    ));
    env.push(format!(
        "AWS_ACCESS_KEY_ID={}",
        support::moto::ACCESS_KEY_ID
    ));
    env.push(format!(
        "AWS_SECRET_ACCESS_KEY={}",
        support::moto::SECRET_ACCESS_KEY
    ));
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
    ];
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/usr/local/bin/ferry-agent", "--expect-version", ferry_repo::agent::VERSION,
                     "backup", "--repo", "s3://agent-image/repo", "--endpoint", moto.endpoint,
                     "--region", support::moto::REGION, "--path-style", "--path", "/data"],
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "ferry-agent",
        // No network namespace: the host's loopback, where moto listens.
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]},
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]},
    });
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    let state = dir.path().join("runtime-state");
    let id = format!("ferry-agent-test-{}", std::process::id());
    let out = std::process::Command::new(&runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = std::process::Command::new(&runtime)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} run: {}\n{stdout}\n{}",
        runtime.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = stdout
        .lines()
        .find_map(|l| match ferry_repo::agent::AgentLine::parse(l) {
            Some(ferry_repo::agent::AgentLine::Stored { tree, files, .. }) => {
                assert_eq!(files, 2);
                Some(tree)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no report in the agent's output:\n{stdout}"));
    // What the containerised agent stored restores to the same folder.
    let back = dir.path().join("back");
    repo.load_index().unwrap();
    ferry_repo::restore::restore_tree(
        &repo,
        &tree,
        &ferry_repo::restore::RestoreOptions {
            target: back.clone(),
            ..Default::default()
        },
        &Arc::new(ferry_repo::progress::Progress::new()),
    )
    .unwrap();
    assert_eq!(checksums(&back), checksums(&data));
}

/// Agents that cannot get into the bucket fail their volumes with a message that says
/// why and what to do (here: a service account named for an identity the pods do not
/// have, so no credentials reach them; then one that does not exist), and leave nothing
/// behind.
#[test]
fn agents_without_access_to_the_bucket_fail_their_volumes_clearly() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-denied", 0);
    rt.block_on(async move {
        let mut o = capture_opts();
        o.mover.agent.service_account = Some("default".into());
        o.mover.agent.retries = 1;
        let t = Instant::now();
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        assert_eq!(
            out.meta.failed_volumes.len(),
            out.meta.volumes.len() + out.meta.failed_volumes.len()
        );
        for f in &out.meta.failed_volumes {
            assert!(
                f.error.contains("the agent failed 2 time(s)"),
                "{}",
                f.error
            );
            assert!(f.error.contains("loading credentials"), "{}", f.error);
            assert!(f.error.contains("--agent-service-account"), "{}", f.error);
            assert!(!f.error.contains("its last log lines"), "{}", f.error);
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());

        // A service account that is not there: the API server refuses the Job's pods,
        // and each volume fails as soon as the Job controller says so.
        o.mover.agent.service_account = Some("ferry-s3".into());
        let t = Instant::now();
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
        assert!(out.meta.volumes.is_empty(), "{:?}", out.meta.volumes);
        for f in &out.meta.failed_volumes {
            for want in [
                "the agents' service account ferry-s3 does not exist in shop",
                "serviceaccount \"ferry-s3\" not found",
                "--agent-service-account",
            ] {
                assert!(f.error.contains(want), "{want:?} not in {}", f.error);
            }
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        env.prod.shutdown().await.unwrap();
    });
}

/// A store the cluster cannot reach (here: agents told to use an address where nothing
/// listens, as a store port-forwarded to the operator's machine would be from a pod)
/// fails each volume within the reach timeout, saying so and what to set, and leaves
/// nothing behind.
#[test]
fn agents_that_cannot_reach_the_store_say_so_quickly() {
    let rt = common::runtime();
    let env = Env::start(&rt, "agents-unreachable", 0);
    rt.block_on(async move {
        let mut o = capture_opts();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        o.mover.agent.endpoint = Some(format!("http://127.0.0.1:{port}"));
        o.mover.agent.reach_timeout = Duration::from_secs(2);
        o.mover.agent.retries = 0;
        let t = Instant::now();
        let out = capture::capture(&env.client, &env.repo, &o, &JobProgress::new())
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        assert!(out.meta.volumes.is_empty(), "{:?}", out.meta.volumes);
        assert!(!out.meta.failed_volumes.is_empty());
        for f in &out.meta.failed_volumes {
            assert!(
                f.error
                    .contains("cannot reach the repository s3://agents-unreachable"),
                "{}",
                f.error
            );
            assert!(
                f.error.contains(&format!("127.0.0.1:{port}")),
                "{}",
                f.error
            );
            assert!(f.error.contains("--agent-endpoint"), "{}", f.error);
        }
        assert_eq!(env.leftovers("shop").await, Vec::<String>::new());
        env.prod.shutdown().await.unwrap();
    });
}

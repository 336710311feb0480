//! Moving workloads between two sandbox clusters with different storage classes:
//! capture with volume data through mover pods, plan, restore, migrate; checked with
//! kube-rs, with kubectl, and byte for byte on the volumes' folders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_k8s::JobProgress;
use ferry_k8s::apply::{self, Report};
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::objects::ObjRef;
use ferry_k8s::plan::{self, Change, Conflict, Plan, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::ListParams;
use support::kubectl::kubectl;
use support::volumes::{checksums, volume_dir};
use support::wait_running;

/// Two sandbox clusters with the demo's storage (`ferry-prod`, `ferry-qa`) and a
/// kubeconfig naming both.
pub(crate) struct Clusters {
    pub(crate) dir: tempfile::TempDir,
    prod: Sandbox,
    qa: Sandbox,
    pub(crate) kubeconfig: PathBuf,
    linked: Linked,
}

impl Clusters {
    pub(crate) async fn start() -> Clusters {
        let dir = tempfile::tempdir().unwrap();
        let prod =
            Sandbox::start(SandboxConfig::new("prod", dir.path().join("prod")).with_demo_storage())
                .await
                .unwrap();
        let qa =
            Sandbox::start(SandboxConfig::new("qa", dir.path().join("qa")).with_demo_storage())
                .await
                .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &[prod.kubeconfig_entry(), qa.kubeconfig_entry()],
        )
        .unwrap();
        let linked = Linked::load(&Sources {
            paths: vec![kubeconfig.clone()],
        });
        Clusters {
            dir,
            prod,
            qa,
            kubeconfig,
            linked,
        }
    }

    /// The API server address the kubeconfig gives for `name`.
    pub(crate) fn server(&self, name: &str) -> String {
        self.linked.get(name).unwrap().server.clone()
    }

    pub(crate) async fn client(&self, name: &str) -> kube::Client {
        self.linked.get(name).unwrap().client().await.unwrap()
    }

    pub(crate) async fn stop(self) {
        self.prod.shutdown().await.unwrap();
        self.qa.shutdown().await.unwrap();
    }
}

fn small_seed() -> SeedOptions {
    SeedOptions {
        files: 12,
        file_size: 192 * 1024,
        ..SeedOptions::default()
    }
}

async fn capture_ns(
    client: &kube::Client,
    repo: &ferry_repo::Repository,
    cluster: &str,
    ns: &str,
) -> CaptureOutcome {
    let job = JobProgress::new();
    capture::capture(
        client,
        repo,
        &CaptureOptions {
            cluster: cluster.into(),
            scope: Scope::Namespaces(vec![ns.into()]),
            include_volumes: true,
            use_snapshots: true,
            mover: MoverOptions::default(),
            tags: vec![],
            parent: None,
            no_parent: false,
            envelope: None,
            server: None,
            resources: Default::default(),
        },
        &job,
    )
    .await
    .unwrap()
}

fn restore_opts(from: &str, to: &str, conflict: Conflict) -> PlanOptions {
    PlanOptions {
        mapping: Mapping {
            namespaces: [(from.to_string(), to.to_string())].into(),
            ..Mapping::default()
        },
        conflict,
        include_volumes: true,
        mover: MoverOptions::default(),
        only: None,
        namespaces: vec![],
        modifiers: None,
    }
}

async fn plan_for(
    client: &kube::Client,
    repo: &ferry_repo::Repository,
    out: &CaptureOutcome,
    opts: &PlanOptions,
) -> Plan {
    plan_into(client, "ferry-qa", repo, out, opts).await
}

pub(crate) async fn plan_into(
    client: &kube::Client,
    target: &str,
    repo: &ferry_repo::Repository,
    out: &CaptureOutcome,
    opts: &PlanOptions,
) -> Plan {
    let repo2 = repo.clone();
    let snap = out.snapshot.clone();
    let objects = tokio::task::spawn_blocking(move || capture::read_objects(&repo2, &snap))
        .await
        .unwrap()
        .unwrap();
    plan::build(client, target, &out.snapshot, &out.meta, objects, opts)
        .await
        .unwrap()
}

fn no_failures(r: &Report) {
    let f = r.failed();
    assert!(f.is_empty(), "restore failures: {f:#?}");
}

#[test]
fn shop_migrates_from_prod_to_qa_with_its_data_and_again_incrementally() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let c = Clusters::start().await;
        let prod = c.client("ferry-prod").await;
        let qa = c.client("ferry-qa").await;
        let seeded = seed(&prod, &c.dir.path().join("prod"), &small_seed())
            .await
            .unwrap();
        assert!(seeded.files > 0);

        // Capture: every object and both volumes, read from CSI snapshots on prod.
        let out = capture_ns(&prod, &t.repo, "ferry-prod", "shop").await;
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(out.meta.volumes.len(), 2, "{:?}", out.meta.volumes);
        for v in &out.meta.volumes {
            assert_eq!(v.consistency, "snapshot", "{v:?}");
            assert_eq!(v.files_transferred, v.files);
        }
        let pg = out
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "data-postgres-0")
            .unwrap();
        assert!(pg.files >= 12 && pg.bytes >= 12 * 192 * 1024, "{pg:?}");
        // No mover or snapshot is left behind.
        let pods = Api::<Pod>::namespaced(prod.clone(), "shop")
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=ferry"))
            .await
            .unwrap();
        assert!(pods.items.is_empty());

        // Plan: renamed namespace, ebs-sc suggested onto gp3 (same EBS type), ordered.
        let opts = restore_opts("shop", "shop-qa", Conflict::Skip);
        let p = plan_for(&qa, &t.repo, &out, &opts).await;
        assert_eq!(p.blocking(), 0, "{}", p.render_text());
        assert_eq!(
            p.storage_class_mapping.get("ebs-sc").map(String::as_str),
            Some("gp3")
        );
        let wave = |kind: &str, name: &str| {
            p.items
                .iter()
                .find(|i| i.target.kind == kind && i.target.name == name)
                .unwrap_or_else(|| panic!("{kind} {name} not in the plan"))
                .wave
        };
        assert!(wave("Namespace", "shop-qa") < wave("PersistentVolumeClaim", "data-postgres-0"));
        assert!(wave("PersistentVolumeClaim", "data-postgres-0") < wave("StatefulSet", "postgres"));
        assert!(wave("Service", "web") < wave("Ingress", "shop"));
        let rs = p
            .items
            .iter()
            .find(|i| i.source.kind == "ReplicaSet")
            .unwrap();
        assert_eq!(rs.action, Change::Skip);

        // Restore.
        let job = JobProgress::new();
        let report = apply::apply(&qa, &t.repo, &p, &MoverOptions::default(), &job)
            .await
            .unwrap();
        no_failures(&report);
        assert_eq!(report.volumes.len(), 2);

        // Every planned object is there, transformed as the plan said.
        for i in p.items.iter().filter(|i| i.action != Change::Skip) {
            let got = kubectl(
                &c.kubeconfig,
                &[
                    "--context",
                    "ferry-qa",
                    "get",
                    &i.target.type_name().to_lowercase(),
                    &i.target.name,
                    "-n",
                    i.target.namespace.as_deref().unwrap_or("default"),
                    "-o",
                    "name",
                ],
            );
            assert!(!got.trim().is_empty(), "{} missing", i.target);
        }
        let claim = Api::<PersistentVolumeClaim>::namespaced(qa.clone(), "shop-qa")
            .get("data-postgres-0")
            .await
            .unwrap();
        assert_eq!(
            claim.spec.unwrap().storage_class_name.as_deref(),
            Some("gp3")
        );
        wait_running(&qa, "shop-qa", "app=postgres").await;

        // Byte-identical volumes.
        for claim in ["data-postgres-0", "redis-data"] {
            let a = volume_dir(&prod, &c.dir.path().join("prod"), "shop", claim).await;
            let b = volume_dir(&qa, &c.dir.path().join("qa"), "shop-qa", claim).await;
            let (ca, cb) = (checksums(&a), checksums(&b));
            assert!(!ca.is_empty());
            assert_eq!(ca, cb, "{claim} differs");
        }

        // Change a few files; the next capture transfers only those.
        let pgdir = volume_dir(&prod, &c.dir.path().join("prod"), "shop", "data-postgres-0").await;
        std::fs::write(pgdir.join("changed-after-first-run.txt"), b"new file\n").unwrap();
        let some = checksums(&pgdir)
            .keys()
            .find(|k| k.contains("base/"))
            .cloned()
            .unwrap();
        std::fs::write(pgdir.join(&some), common::bytes(300_000, 9)).unwrap();
        let second = capture_ns(&prod, &t.repo, "ferry-prod", "shop").await;
        assert_eq!(second.snapshot.parent, Some(out.snapshot.id));
        let pg2 = second
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "data-postgres-0")
            .unwrap();
        assert_eq!(pg2.files_transferred, 2, "{pg2:?}");
        let redis2 = second
            .meta
            .volumes
            .iter()
            .find(|v| v.pvc == "redis-data")
            .unwrap();
        assert_eq!(redis2.files_transferred, 0, "{redis2:?}");

        // Restoring the second capture with conflicts=update refreshes the data.
        let p2 = plan_for(
            &qa,
            &t.repo,
            &second,
            &restore_opts("shop", "shop-qa", Conflict::Update),
        )
        .await;
        assert_eq!(p2.blocking(), 0, "{}", p2.render_text());
        let report = apply::apply(
            &qa,
            &t.repo,
            &p2,
            &MoverOptions::default(),
            &JobProgress::new(),
        )
        .await
        .unwrap();
        no_failures(&report);
        let b = volume_dir(&qa, &c.dir.path().join("qa"), "shop-qa", "data-postgres-0").await;
        assert_eq!(checksums(&pgdir), checksums(&b));
        c.stop().await;
    });
}

#[test]
fn conflicts_follow_the_chosen_policy_and_a_rerun_skips_restored_volumes() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let c = Clusters::start().await;
        let prod = c.client("ferry-prod").await;
        let qa = c.client("ferry-qa").await;
        seed(&prod, &c.dir.path().join("prod"), &small_seed())
            .await
            .unwrap();
        // Enough ConfigMaps that the plan lists them instead of asking one by one.
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(prod.clone(), "shop");
        for i in 0..12 {
            cms.create(
                &Default::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("extra-{i}")},
                    "data": {"n": i.to_string()}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        }
        let out = capture_ns(&prod, &t.repo, "ferry-prod", "shop").await;
        let p = plan_for(
            &qa,
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Skip),
        )
        .await;
        assert!(p.count(Change::Create) > 12, "{}", p.render_text());
        no_failures(
            &apply::apply(
                &qa,
                &t.repo,
                &p,
                &MoverOptions::default(),
                &JobProgress::new(),
            )
            .await
            .unwrap(),
        );

        // skip: nothing to create, the volumes hold this snapshot's data already.
        let again = plan_for(
            &qa,
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Skip),
        )
        .await;
        assert_eq!(again.count(Change::Create), 0, "{}", again.render_text());
        assert!(again.volumes.iter().all(|v| !v.restore_data));
        assert!(
            again
                .volumes
                .iter()
                .all(|v| v.reason.as_deref() == Some("already restored from this snapshot"))
        );

        // fail: every existing object is a blocking problem, and apply refuses.
        let fail = plan_for(
            &qa,
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Fail),
        )
        .await;
        assert!(fail.blocking() > 0);
        assert!(
            fail.problems
                .iter()
                .any(|p| p.message.contains("exists on the target"))
        );
        let err = apply::apply(
            &qa,
            &t.repo,
            &fail,
            &MoverOptions::default(),
            &JobProgress::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("problem"), "{err}");

        // update: existing objects are replaced.
        let upd = plan_for(
            &qa,
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Update),
        )
        .await;
        assert!(upd.count(Change::Update) > 5 + 12, "{}", upd.render_text());
        no_failures(
            &apply::apply(
                &qa,
                &t.repo,
                &upd,
                &MoverOptions::default(),
                &JobProgress::new(),
            )
            .await
            .unwrap(),
        );
        c.stop().await;
    });
}

#[test]
fn a_target_lacking_a_storage_class_or_a_definition_gets_a_plan_that_refuses() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let c = Clusters::start().await;
        let prod = c.client("ferry-prod").await;
        seed(&prod, &c.dir.path().join("prod"), &small_seed())
            .await
            .unwrap();
        let out = capture_ns(&prod, &t.repo, "ferry-prod", "shop").await;

        // A cluster with no storage class at all.
        let bare_dir = c.dir.path().join("bare");
        let mut cfg = SandboxConfig::new("bare", &bare_dir);
        cfg.storage_classes.clear();
        let bare = Sandbox::start(cfg).await.unwrap();
        let kc = c.dir.path().join("bare-kubeconfig");
        write_kubeconfig(&kc, &[bare.kubeconfig_entry()]).unwrap();
        let linked = Linked::load(&Sources { paths: vec![kc] });
        let client = linked.get("ferry-bare").unwrap().client().await.unwrap();
        let p = plan_into(
            &client,
            "ferry-bare",
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Skip),
        )
        .await;
        assert!(p.blocking() > 0);
        let text = p.render_text();
        assert!(
            text.contains("no storage class on ferry-bare for ebs-sc"),
            "{text}"
        );
        let err = apply::apply(
            &client,
            &t.repo,
            &p,
            &MoverOptions::default(),
            &JobProgress::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("problem"));
        // Nothing was created.
        let ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .get_opt("shop")
            .await
            .unwrap();
        assert!(ns.is_none());

        // A mapping onto a class the target lacks is refused too, naming what it has.
        let qa = c.client("ferry-qa").await;
        let mut o = restore_opts("shop", "shop", Conflict::Skip);
        o.mapping
            .storage_classes
            .insert("ebs-sc".into(), "premium".into());
        let p = plan_for(&qa, &t.repo, &out, &o).await;
        let text = p.render_text();
        assert!(
            text.contains("premium") && text.contains("gp2 (default)"),
            "{text}"
        );

        // A quota in the target namespace that the claims would exceed.
        let ns_api = Api::<k8s_openapi::api::core::v1::Namespace>::all(qa.clone());
        ns_api
            .create(
                &Default::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": "shop"}})).unwrap(),
            )
            .await
            .unwrap();
        Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(qa.clone(), "shop")
            .create(
                &Default::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "small"},
                    "spec": {"hard": {"requests.storage": "1Mi", "persistentvolumeclaims": "5"}}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        let p = plan_for(
            &qa,
            &t.repo,
            &out,
            &restore_opts("shop", "shop", Conflict::Skip),
        )
        .await;
        let quota: Vec<_> = p
            .problems
            .iter()
            .filter(|p| p.message.contains("quota shop/small"))
            .collect();
        assert_eq!(quota.len(), 1, "{}", p.render_text());
        assert!(quota[0].blocking && quota[0].message.contains("requests.storage=1Mi"));

        // Custom resources whose definition is neither on the target nor in the capture.
        let repo2 = t.repo.clone();
        let snap = out.snapshot.clone();
        let mut objects = tokio::task::spawn_blocking(move || capture::read_objects(&repo2, &snap))
            .await
            .unwrap()
            .unwrap();
        objects.retain(|o| ObjRef::of(o).kind != "CustomResourceDefinition");
        let p = plan::build(
            &qa,
            "ferry-qa",
            &out.snapshot,
            &out.meta,
            objects,
            &restore_opts("shop", "shop", Conflict::Skip),
        )
        .await
        .unwrap();
        assert!(
            p.problems
                .iter()
                .any(|x| x.blocking && x.message.contains("does not serve shop.example.com/")),
            "{}",
            p.render_text()
        );
        bare.shutdown().await.unwrap();
        c.stop().await;
    });
}

/// The target goes away while a volume streams in: first the server drops every
/// connection, then (another namespace) the network stops carrying anything without
/// closing a socket. Either way the restore ends with a report, not a hang, and a
/// retry of what failed completes it with every file byte-identical.
#[test]
fn a_target_that_stops_answering_mid_transfer_ends_in_a_report_and_a_retry_resumes() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let c = Clusters::start().await;
        let prod = c.client("ferry-prod").await;
        seed(&prod, &c.dir.path().join("prod"), &SeedOptions::default())
            .await
            .unwrap();
        let out = capture_ns(&prod, &t.repo, "ferry-prod", "shop").await;
        let source_pg = checksums(
            &volume_dir(&prod, &c.dir.path().join("prod"), "shop", "data-postgres-0").await,
        );
        assert!(source_pg.len() >= 64);

        // qa reached through a proxy the test can cut.
        let upstream: std::net::SocketAddr =
            c.qa.kubeconfig_entry()
                .server
                .trim_start_matches("https://")
                .parse()
                .unwrap();
        let proxy = support::proxy::Proxy::start(upstream).await;
        let mut entry = c.qa.kubeconfig_entry();
        entry.server = format!("https://{}", proxy.addr);
        let kc = c.dir.path().join("proxied-kubeconfig");
        write_kubeconfig(&kc, &[entry]).unwrap();
        let linked = Linked::load(&Sources { paths: vec![kc] });
        let qa = linked.get("ferry-qa").unwrap().client().await.unwrap();
        let direct_qa = c.client("ferry-qa").await;
        let mover = MoverOptions {
            stall_timeout: Duration::from_secs(3),
            ..MoverOptions::default()
        };

        for (mode, ns) in [
            (support::proxy::Mode::Reset, "shop-reset"),
            (support::proxy::Mode::Blackhole, "shop-partition"),
        ] {
            proxy.set(support::proxy::Mode::Forward);
            let mut opts = restore_opts("shop", ns, Conflict::Skip);
            opts.mover = mover.clone();
            let p = plan_for(&qa, &t.repo, &out, &opts).await;
            assert_eq!(p.blocking(), 0, "{}", p.render_text());

            // Cut the connection once volume data is flowing.
            let job = JobProgress::new();
            let cut = async {
                while job.data.snapshot().bytes_done == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                proxy.set(mode);
            };
            let restore = async {
                // A guard against a hang, not a speed check: the restore must return.
                tokio::time::timeout(
                    Duration::from_secs(120),
                    apply::apply(&qa, &t.repo, &p, &mover, &job),
                )
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: the restore hung"))
            };
            let (report, ()) = tokio::join!(restore, cut);
            let report = report.unwrap();
            let failed = report.failed();
            assert!(!failed.is_empty(), "{mode:?}: nothing failed");
            assert!(
                report.volumes.iter().any(|v| !v.ok),
                "{mode:?}: the volume being streamed did not fail: {report:#?}"
            );
            assert!(
                failed
                    .iter()
                    .all(|f| f.remedy.as_deref().is_some_and(|r| !r.is_empty())),
                "{mode:?}: a failure without a remedy: {failed:#?}"
            );
            let pg = report
                .volumes
                .iter()
                .find(|v| v.object.name == "data-postgres-0")
                .unwrap();
            assert!(!pg.ok, "{mode:?}: {pg:?}");

            // The target is back: a retry of what failed completes the restore.
            proxy.set(support::proxy::Mode::Forward);
            let mut retry = opts.clone();
            retry.only = Some(failed.iter().map(|f| f.object.clone()).collect());
            let p = plan_for(&qa, &t.repo, &out, &retry).await;
            assert_eq!(p.blocking(), 0, "{}", p.render_text());
            let report = apply::apply(&qa, &t.repo, &p, &mover, &JobProgress::new())
                .await
                .unwrap();
            no_failures(&report);
            let got = checksums(
                &volume_dir(&direct_qa, &c.dir.path().join("qa"), ns, "data-postgres-0").await,
            );
            assert_eq!(got, source_pg, "{mode:?}: the data differs after the retry");
            wait_running(&direct_qa, ns, "app=postgres").await;
            // No mover is left, not even the one the cut interrupted.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let movers = Api::<Pod>::namespaced(direct_qa.clone(), ns)
                    .list(&ListParams::default().labels("ferry.dev/role=mover"))
                    .await
                    .unwrap();
                if movers.items.is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "{mode:?}: movers left behind");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        drop(proxy);
        c.stop().await;
    });
}

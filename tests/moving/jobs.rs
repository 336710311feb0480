//! The job layer (`ferry-jobs`) on two sandbox clusters: a staged job writes its audit
//! record however it ends (abandoned, carried out, refused for a blocking plan, or
//! cancelled),
//! without the front end doing anything but call it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use ferry_jobs::{Endpoint, JobError, MoveJob, RestoreJob};
use ferry_k8s::JobProgress;
use ferry_k8s::capture::{CaptureMeta, CaptureOptions, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{Conflict, PlanOptions};
use ferry_k8s::transform::Mapping;
use ferry_policy::Action;
use ferry_policy::audit::Outcome;
use ferry_policy::gate::Place;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::seed::{SeedOptions, seed};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};

fn move_job(action: Action, to: &str, conflict: Conflict) -> MoveJob {
    MoveJob {
        action,
        capture: CaptureOptions {
            cluster: "ferry-prod".into(),
            scope: Scope::Namespaces(vec!["shop".into()]),
            include_volumes: false,
            use_snapshots: true,
            mover: MoverOptions::default(),
            tags: vec![],
            parent: None,
            no_parent: false,
            envelope: None,
            server: None,
            resources: Default::default(),
        },
        options: options(to, conflict),
    }
}

fn options(to: &str, conflict: Conflict) -> PlanOptions {
    PlanOptions {
        mapping: Mapping {
            namespaces: [("shop".to_string(), to.to_string())].into(),
            ..Mapping::default()
        },
        conflict,
        include_volumes: false,
        mover: MoverOptions::default(),
        only: None,
        namespaces: vec![],
        modifiers: None,
    }
}

#[test]
fn a_staged_job_is_recorded_when_abandoned_carried_out_or_refused() {
    let t = common::new_repo();
    t.rt.block_on(async {
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
            paths: vec![kubeconfig],
        });
        let source = Endpoint::connect(linked.get("ferry-prod").unwrap().clone())
            .await
            .unwrap();
        let target = Endpoint::connect(linked.get("ferry-qa").unwrap().clone())
            .await
            .unwrap();
        let small = SeedOptions {
            files: 2,
            file_size: 4 * 1024,
            ..SeedOptions::default()
        };
        seed(&source.client, &dir.path().join("prod"), &small)
            .await
            .unwrap();

        // A clone captured and planned, then left unconfirmed: abandoned.
        let staged = ferry_jobs::stage_move(
            &t.repo,
            &source,
            &target,
            move_job(Action::Clone, "shop-a", Conflict::Skip),
            &JobProgress::new(),
        )
        .await
        .unwrap_or_else(|f| panic!("{f}"));
        assert!(staged.capture().is_some());
        assert_eq!(
            staged.plan().blocking(),
            0,
            "{}",
            staged.plan().render_text()
        );
        assert_eq!(staged.abandon().await, None);

        // A migrate carried out: succeeded.
        let staged = ferry_jobs::stage_move(
            &t.repo,
            &source,
            &target,
            move_job(Action::Migrate, "shop", Conflict::Skip),
            &JobProgress::new(),
        )
        .await
        .unwrap_or_else(|f| panic!("{f}"));
        let snap = staged.capture().unwrap().snapshot.clone();
        let done = staged
            .run(&JobProgress::new())
            .await
            .unwrap_or_else(|f| panic!("{f}"));
        assert!(done.report.failed().is_empty(), "{:#?}", done.report);
        assert_eq!(done.unrecorded, None);

        // The same capture again with conflicts failing: every object exists on qa now,
        // so the plan blocks, and carrying it out is refused and recorded as failed.
        let meta = CaptureMeta::of(&snap).unwrap();
        let staged = ferry_jobs::stage_restore(
            &t.repo,
            &target,
            RestoreJob {
                snapshot: snap.clone(),
                meta,
                origin: Place::named("ferry-prod"),
                options: options("shop", Conflict::Fail),
            },
        )
        .await
        .unwrap_or_else(|f| panic!("{f}"));
        assert!(staged.plan().blocking() > 0);
        let refused = staged.run(&JobProgress::new()).await.unwrap_err();
        assert!(
            matches!(&refused.error, JobError::Blocked { capture: None, .. }),
            "{refused}"
        );
        assert!(
            refused
                .to_string()
                .ends_with("blocking problem(s) (above): nothing was changed"),
            "{refused}"
        );

        // A backup the user cancels: recorded as cancelled, not failed.
        let progress = std::sync::Arc::new(JobProgress::new());
        progress.cancel();
        let mut opts = move_job(Action::Backup, "shop", Conflict::Skip).capture;
        opts.include_volumes = true;
        let cancelled = ferry_jobs::backup(&t.repo, &source, opts, &progress)
            .await
            .unwrap_err();
        assert!(cancelled.error.is_cancelled(), "{cancelled}");

        let repo = t.repo.clone();
        let (records, _) = tokio::task::spawn_blocking(move || ferry_policy::audit::read(&repo))
            .await
            .unwrap()
            .unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.action, r.outcome.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (Action::Clone, Outcome::Abandoned),
                (Action::Migrate, Outcome::Succeeded),
                (Action::Restore, Outcome::Failed),
                (Action::Backup, Outcome::Cancelled),
            ],
            "{records:#?}"
        );
        assert!(
            records[..3].iter().all(|r| r.plan.is_some()),
            "{records:#?}"
        );
        assert!(
            records[3]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("cancelled by the user")),
            "{records:#?}"
        );
        assert_eq!(
            records[1].snapshot.as_deref(),
            Some(snap.id.to_hex().as_str())
        );
        assert!(
            records[2]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("blocking problem")),
            "{records:#?}"
        );

        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

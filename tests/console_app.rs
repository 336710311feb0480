//! The console driven by key events against two in-process sandbox clusters, without a
//! terminal: probe, browse to a namespace's workloads, then migrate it from prod to qa
//! through the wizard (namespace renamed, objects only) and check the result on qa.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ferry::engine::k8s::mover::MoverOptions;
use ferry::providers::kubeconfig::{Linked, Sources};
use ferry::providers::sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use ferry::ui::app::{App, Env, JobEnd, Load, View};
use ferry::ui::keymap::Keymap;
use ferry::ui::theme::Theme;
use ferry::ui::wizard::Step;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn key(app: &mut App, code: KeyCode) {
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

async fn create(client: &kube::Client, doc: serde_json::Value) {
    let kind = doc["kind"].as_str().unwrap().to_string();
    let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
    let pp = PostParams::default();
    match kind.as_str() {
        "Namespace" => {
            let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            api.create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .unwrap();
        }
        "ConfigMap" => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.as_deref().unwrap());
            api.create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .unwrap();
        }
        "Deployment" => {
            let api: Api<k8s_openapi::api::apps::v1::Deployment> =
                Api::namespaced(client.clone(), ns.as_deref().unwrap());
            api.create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .unwrap();
        }
        other => panic!("no helper for {other}"),
    }
}

#[test]
fn browse_and_migrate_a_namespace_through_the_wizard() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let (prod, qa) = t.rt.block_on(async {
        let prod = Sandbox::start(SandboxConfig::new("prod", dir.path().join("prod")))
            .await
            .unwrap();
        let qa = Sandbox::start(SandboxConfig::new("qa", dir.path().join("qa")))
            .await
            .unwrap();
        (prod, qa)
    });
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry(), qa.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    assert_eq!(linked.clusters.len(), 2);
    let prod_name = linked.clusters[0].name.clone();
    let qa_name = linked.clusters[1].name.clone();
    let prod_client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    let qa_client = t.rt.block_on(linked.clusters[1].client()).unwrap();
    t.rt.block_on(async {
        create(
            &prod_client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        )
        .await;
        create(&prod_client, json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"mode": "prod"}}))
        .await;
        create(&prod_client, json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                           "envFrom": [{"configMapRef": {"name": "web-config"}}]}]}}}}))
        .await;
    });

    let env = Env {
        linked,
        repo: Ok(t.repo.clone()),
        rt: t.rt.handle().clone(),
        theme: Theme::builtin("dark"),
        keymap: Keymap::default_keys(),
        read_only: false,
        read_only_contexts: vec![],
        mover: MoverOptions::default(),
        reports: dir.path().join("reports"),
    };
    let mut app = App::new(env);
    assert!(app.settle(LIMIT, |a| a.clusters.iter().all(|c| c.facts.is_some())));
    for c in &app.clusters {
        assert!(c.facts.as_ref().unwrap().is_ok(), "{:?}", c.facts);
    }

    // Into prod's namespaces, filter to shop, into its workloads.
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Namespaces {
            cluster: prod_name.clone()
        }
    );
    assert!(app.settle(LIMIT, |a| matches!(
        a.cluster(&prod_name).unwrap().namespaces,
        Some(Load::Ready(_))
    )));
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "shop");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.selected_row().unwrap().key, "shop");
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.cluster(&prod_name).unwrap().ns.get("shop"),
        Some(Load::Ready(_))
    )));
    let Some(Load::Ready(d)) = app.cluster(&prod_name).unwrap().ns.get("shop") else {
        unreachable!()
    };
    let kinds: Vec<String> = d
        .objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
        .collect();
    let row = app
        .selected_row()
        .unwrap_or_else(|| panic!("no row; objects {kinds:?}"));
    assert_eq!(row.key, "Deployment/web");
    assert!(
        row.cells.iter().any(|c| c.contains("cm:web-config")),
        "{:?}",
        row.cells
    );

    // The migrate wizard: back to namespaces, mark shop, m.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char('m'));
    let w = app.wizard.as_ref().expect("the wizard opens");
    assert_eq!(w.target_name(), qa_name);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard.as_ref().unwrap().step, Step::Namespaces);
    for _ in 0.."shop".len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, "Shop_QA");
    key(&mut app, KeyCode::Enter);
    let w = app.wizard.as_ref().unwrap();
    assert_eq!(w.step, Step::Namespaces, "an invalid name stays");
    assert!(w.error.as_ref().unwrap().contains("DNS label"));
    for _ in 0.."Shop_QA".len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, "shop-qa");
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard.as_ref().unwrap().classes_used,
        Load::Ready(_)
    )));
    assert_eq!(app.wizard.as_ref().unwrap().step, Step::StorageClasses);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard.as_ref().unwrap().step, Step::Options);
    // Objects only: volume data needs running pods.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    chars(&mut app, "copied-by=ferry");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard.as_ref().unwrap().step, Step::Plan);
    assert!(app.settle(LIMIT, |a| !matches!(
        a.wizard.as_ref().unwrap().plan,
        Some(Load::Loading)
    )));
    let plan = match &app.wizard.as_ref().unwrap().plan {
        Some(Load::Ready(p)) => p.plan.clone(),
        other => panic!("no plan: {other:?}"),
    };
    assert!(
        plan.items
            .iter()
            .any(|i| i.target.kind == "Deployment"
                && i.target.namespace.as_deref() == Some("shop-qa")),
        "{}",
        plan.render_text()
    );
    // Nothing on qa before the confirmation.
    let cms: Api<ConfigMap> = Api::namespaced(qa_client.clone(), "shop-qa");
    assert!(t.rt.block_on(cms.get_opt("web-config")).unwrap().is_none());

    // The sandbox answers server-side dry runs: the plan has no blocking problem.
    assert_eq!(plan.blocking(), 0, "{}", plan.render_text());
    key(&mut app, KeyCode::Enter);
    assert!(app.wizard.is_none(), "confirmed: the wizard closes");
    let restore_id = app.jobs.last().unwrap().id;
    assert!(app.settle(LIMIT, |a| {
        a.jobs
            .iter()
            .find(|j| j.id == restore_id)
            .is_some_and(|j| !j.running())
    }));
    match &app.jobs.last().unwrap().end {
        Some(JobEnd::Restored { report, saved, .. }) => {
            assert!(report.failed().is_empty(), "{:?}", report.failed());
            // Saved where the CLI saves its reports, readable by `ferry restore --retry`.
            let path = saved.as_ref().unwrap();
            assert_eq!(path.parent().unwrap(), dir.path().join("reports"));
            let back: ferry::engine::k8s::apply::Report =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(back.snapshot, report.snapshot);
            assert_eq!(back.objects.len(), report.objects.len());
        }
        other => panic!("restore did not finish: {other:?}"),
    }
    let cm = t.rt.block_on(cms.get("web-config")).unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "prod");
    assert_eq!(
        cm.metadata
            .labels
            .unwrap()
            .get("copied-by")
            .map(String::as_str),
        Some("ferry")
    );

    // The capture shows on :snapshots.
    key(&mut app, KeyCode::Char(':'));
    chars(&mut app, "snapshots");
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(a.snapshots, Some(Load::Ready(_)))));
    let row = app.selected_row().unwrap();
    assert!(row.cells.iter().any(|c| c == "shop"), "{:?}", row.cells);

    t.rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

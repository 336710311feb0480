//! The console driven by key events against two in-process sandbox clusters, without a
//! terminal: probe, browse to a namespace's workloads, then migrate it from prod to qa
//! through the wizard (namespace renamed, objects only) and check the result on qa.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ferry_console::app::{App, Env, JobEnd, Load, View};
use ferry_console::error::TaskError;
use ferry_console::follow::Target;
use ferry_console::keymap::Keymap;
use ferry_console::theme::Theme;
use ferry_console::wizard_state::Step;
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
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
        downloads: dir.path().join("downloads"),
        clouds: Default::default(),
    };
    let mut app = App::new(env);
    assert!(app.settle(LIMIT, |a| a.probed()));
    for c in app.clusters() {
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
    let w = app.wizard().expect("the wizard opens");
    assert_eq!(w.target_name(), qa_name);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    for _ in 0.."shop".len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, "Shop_QA");
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Namespaces, "an invalid name stays");
    assert!(w.error.as_ref().unwrap().contains("DNS label"));
    for _ in 0.."Shop_QA".len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, "shop-qa");
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().classes_used,
        Load::Ready(_)
    )));
    assert_eq!(app.wizard().unwrap().step, Step::StorageClasses);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Options);
    // Objects only: volume data needs running pods.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    chars(&mut app, "copied-by=ferry");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
    assert!(app.settle(LIMIT, |a| !matches!(
        a.wizard().unwrap().plan,
        Some(Load::Loading)
    )));
    let plan = match &app.wizard().unwrap().plan {
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
    assert!(app.wizard().is_none(), "confirmed: the wizard closes");
    let restore_id = app.jobs().last().unwrap().id;
    assert!(app.settle(LIMIT, |a| { a.job_ended(restore_id) }));
    match &app.jobs().last().unwrap().end {
        Some(JobEnd::Restored { report, saved, .. }) => {
            assert!(report.failed().is_empty(), "{:?}", report.failed());
            // Saved where the CLI saves its reports, readable by `ferry restore --retry`.
            let path = saved.as_ref().unwrap();
            assert_eq!(path.parent().unwrap(), dir.path().join("reports"));
            let back: ferry_k8s::apply::Report =
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
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));
    let row = app.selected_row().unwrap();
    assert!(row.cells.iter().any(|c| c == "shop"), "{:?}", row.cells);

    // The same migration again: shop-qa exists on qa now, so confirming asks first,
    // naming it; `n` leaves the wizard as it was, `y` carries the plan out.
    migrate_to_plan(&mut app, &prod_name, "shop-qa");
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().plan,
        Some(Load::Ready(_))
    )));
    let jobs = app.jobs().len();
    key(&mut app, KeyCode::Enter);
    let ask = app
        .asking()
        .expect("a plan into an existing namespace asks first");
    assert!(
        ask.question
            .starts_with(&format!("Namespace shop-qa already on {qa_name}")),
        "{ask:?}"
    );
    key(&mut app, KeyCode::Char('n'));
    assert!(app.wizard().is_some() && app.jobs().len() == jobs);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('y'));
    assert!(app.wizard().is_none() && app.jobs().len() == jobs + 1);
    let again = app.jobs().last().unwrap().id;
    assert!(app.settle(LIMIT, |a| a.job_ended(again)));

    // While the capture of a third migrate runs, the wizard does not hold the console:
    // J shows the jobs, enter on the capture's job brings the wizard back. Leaving the
    // plan asks what becomes of the capture: y cancels a running one (nothing saved),
    // another key keeps a saved snapshot, y removes one.
    let snapshots =
        |repo: &ferry_repo::Repository| ferry_repo::snapshot::list(repo).unwrap().0.len();
    let before = snapshots(&t.repo);
    migrate_to_plan(&mut app, &prod_name, "shop-qa3");
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Plan);
    let capture = w.capture_job.expect("a live source is captured first");
    key(&mut app, KeyCode::Char('J'));
    assert!(app.wizard().is_none(), "J leaves the wizard waiting");
    assert_eq!(app.screen().view, View::Jobs);
    assert_eq!(app.selected_row().unwrap().key, capture.to_string());
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().capture_job, Some(capture));
    // Messages are applied only in settle: the capture still runs as far as the
    // console knows. esc asks; y cancels it.
    key(&mut app, KeyCode::Esc);
    let ask = app.asking().expect("leaving a running capture asks");
    assert!(ask.question.contains("still runs"), "{ask:?}");
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(app.wizard().unwrap().step, Step::Options);
    assert!(app.settle(LIMIT, |a| a.job_ended(capture)));
    assert!(
        matches!(app.jobs()[capture - 1].end, Some(JobEnd::Cancelled)),
        "{:?}",
        app.jobs()[capture - 1].end
    );
    assert_eq!(
        snapshots(&t.repo),
        before,
        "a cancelled capture keeps nothing"
    );
    // Again, to its plan; esc, then another key: the snapshot stays.
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().plan,
        Some(Load::Ready(_))
    )));
    key(&mut app, KeyCode::Esc);
    let ask = app.asking().expect("leaving a captured plan asks");
    assert!(ask.question.contains("saved snapshot"), "{ask:?}");
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(app.wizard().unwrap().step, Step::Options);
    assert_eq!(snapshots(&t.repo), before + 1, "kept");
    // Once more; ctrl-c, then y: the wizard closes and the snapshot goes.
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().plan,
        Some(Load::Ready(_))
    )));
    assert_eq!(snapshots(&t.repo), before + 2);
    app.key(crossterm::event::KeyEvent::new(
        KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    ));
    assert!(app.asking().is_some());
    key(&mut app, KeyCode::Char('y'));
    assert!(app.wizard().is_none());
    let repo = t.repo.clone();
    assert!(app.settle(LIMIT, move |_| snapshots(&repo) == before + 1));
    // The trail says so: the cancelled capture, both unconfirmed plans, the removal.
    use ferry_policy::audit::Outcome;
    let (records, _) = ferry_policy::audit::read(&t.repo).unwrap();
    let count = |action: ferry_policy::Action, outcome: Outcome| {
        records
            .iter()
            .filter(|r| r.action == action && r.outcome == outcome)
            .count()
    };
    assert_eq!(
        count(ferry_policy::Action::Migrate, Outcome::Cancelled),
        1,
        "{records:#?}"
    );
    assert_eq!(
        count(ferry_policy::Action::Migrate, Outcome::Abandoned),
        2,
        "{records:#?}"
    );
    assert_eq!(
        count(ferry_policy::Action::DeleteSnapshots, Outcome::Succeeded),
        1,
        "{records:#?}"
    );

    // A plan waiting unconfirmed when the console quits is recorded as abandoned, and
    // quitting waits for that record.
    migrate_to_plan(&mut app, &prod_name, "shop-qa4");
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().plan,
        Some(Load::Ready(_))
    )));
    key(&mut app, KeyCode::Char('J'));
    assert!(app.wizard().is_none(), "waiting");
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quitting() && app.winding() == 1, "{}", app.winding());
    assert!(app.wind_down(LIMIT));
    let (records, _) = ferry_policy::audit::read(&t.repo).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == ferry_policy::Action::Migrate
                && r.outcome == Outcome::Abandoned)
            .count(),
        3,
        "{records:#?}"
    );

    t.rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

/// The migrate wizard from shop on `prod` to its plan step, into namespace `to`,
/// objects only (the plan is not waited for).
fn migrate_to_plan(app: &mut App, prod: &str, to: &str) {
    app.command(&format!("ctx {prod}"));
    assert!(app.select_key("shop"));
    key(app, KeyCode::Char(' '));
    key(app, KeyCode::Char('m'));
    key(app, KeyCode::Enter);
    for _ in 0.."shop".len() {
        key(app, KeyCode::Backspace);
    }
    chars(app, to);
    key(app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().classes_used,
        Load::Ready(_)
    )));
    key(app, KeyCode::Enter);
    key(app, KeyCode::Down);
    key(app, KeyCode::Char(' '));
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
}

fn env_for(t: &common::TestRepo, dir: &std::path::Path, linked: Linked) -> Env {
    Env {
        linked,
        repo: Ok(t.repo.clone()),
        rt: t.rt.handle().clone(),
        theme: Theme::builtin("dark"),
        keymap: Keymap::default_keys(),
        read_only: false,
        read_only_contexts: vec![],
        mover: MoverOptions::default(),
        reports: dir.join("reports"),
        downloads: dir.join("downloads"),
        clouds: Default::default(),
    }
}

/// The app once its cloud accounts have answered: clusters they list join in the
/// background, and a test that creates clusters wants them listed before it starts.
fn listed(mut app: App) -> App {
    assert!(
        app.settle(LIMIT, |a| a.cloud_listed()),
        "the cloud accounts never answered"
    );
    app
}

/// Types `text` into the open restore prompt in place of what it holds.
fn type_destination(app: &mut App, text: &str) {
    let n = app
        .prompt()
        .expect("the prompt is open")
        .dest
        .chars()
        .count();
    for _ in 0..n {
        key(app, KeyCode::Backspace);
    }
    chars(app, text);
}

/// Enter on the prompt, then waits for the check: the prompt stays with an error, or
/// closes and a job starts (returned).
fn confirm_destination(app: &mut App) -> Option<usize> {
    let jobs = app.jobs().len();
    key(app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| a.prompt().is_none_or(|p| !p.checking)));
    if app.prompt().is_some() {
        return None;
    }
    assert_eq!(app.jobs().len(), jobs + 1, "{:?}", app.status());
    let id = app.jobs().last().unwrap().id;
    assert!(app.settle(LIMIT, |a| a.job_ended(id)));
    Some(id)
}

fn downloaded(app: &App, id: usize) -> (std::path::PathBuf, u64) {
    match &app.jobs().iter().find(|j| j.id == id).unwrap().end {
        Some(JobEnd::Downloaded {
            target,
            files,
            warnings,
            ..
        }) => {
            assert!(warnings.is_empty(), "{warnings:?}");
            (target.clone(), *files)
        }
        other => panic!("the restore did not finish: {other:?}"),
    }
}

/// Selects row `pos` of the current screen (no filter typed: rows and visible rows
/// are the same).
fn select(app: &mut App, pos: usize) {
    let key = app.current_rows().expect("the rows are loaded")[pos]
        .key
        .clone();
    assert!(app.select_key(&key), "no row {key}");
}

fn selected_key(app: &App) -> String {
    app.selected_row().map(|r| r.key).unwrap_or_default()
}

/// A folder backup opens on its files; folders open one level at a time; `/` filters;
/// `d` restores the selected file or folder into a folder of this machine (checked in
/// place), byte for byte with its mode and times, through the engine's restore.
#[test]
fn browse_a_folder_backup_and_restore_a_file_and_a_folder() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    common::write_file(&src.join("readme.txt"), b"hello\n", 0o644, 1_600_000_000);
    common::write_file(
        &src.join("bin/tool.sh"),
        &common::bytes(70_000, 1),
        0o750,
        1_600_000_100,
    );
    common::write_file(
        &src.join("www/index.html"),
        &common::bytes(300_000, 2),
        0o640,
        1_600_000_200,
    );
    common::write_file(
        &src.join("www/img/logo.png"),
        &common::bytes(5_000, 3),
        0o600,
        1_600_000_300,
    );
    std::fs::create_dir_all(src.join("www/empty")).unwrap();
    filetime::set_file_mtime(
        src.join("www/img"),
        filetime::FileTime::from_unix_time(1_600_000_400, 0),
    )
    .unwrap();
    filetime::set_file_mtime(
        src.join("www"),
        filetime::FileTime::from_unix_time(1_600_000_500, 0),
    )
    .unwrap();
    let snap = common::do_backup(&t.repo, &src);

    let mut app = App::new(env_for(&t, dir.path(), Linked::default()));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));
    assert_eq!(selected_key(&app), snap.id.to_hex());
    key(&mut app, KeyCode::Enter);
    let root = View::Files {
        id: snap.id.to_hex(),
        base: String::new(),
        path: String::new(),
    };
    assert_eq!(app.screen().view, root);
    assert!(app.settle(LIMIT, |a| a.rows(&a.screen().view).ready().is_some()));
    let rows = app.rows(&root).into_ready().unwrap().into_owned();
    let names: Vec<&str> = rows.iter().map(|r| r.cells[0].as_str()).collect();
    assert_eq!(names, ["bin/", "www/", "readme.txt"], "folders first");
    assert_eq!(rows[2].cells[1], "6 B");
    assert_eq!(rows[2].cells[2], "-rw-r--r--");
    assert_eq!(rows[2].cells[3], "2020-09-13 12:26:40");

    // Into www, then its img folder: loaded as it is opened.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| a.rows(&a.screen().view).ready().is_some()));
    assert_eq!(app.screen().view.title(), "www");
    let keys: Vec<String> = app
        .rows(&app.screen().view)
        .into_ready()
        .unwrap()
        .iter()
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(keys, ["empty", "img", "index.html"]);
    assert!(
        !app.folder_requested(&snap.id.to_hex(), "www/img"),
        "not loaded before it is opened"
    );

    // `/` filters as elsewhere; d on the file opens the prompt with the default folder.
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "index");
    key(&mut app, KeyCode::Enter);
    assert_eq!(selected_key(&app), "index.html");
    key(&mut app, KeyCode::Char('d'));
    let p = app.prompt().expect("d opens the prompt");
    assert_eq!(p.dest, dir.path().join("downloads").display().to_string());
    assert_eq!(p.path, "www/index.html");
    assert!(!p.is_dir);

    // Checked in place: a file is not a folder; an existing name is never replaced.
    type_destination(&mut app, &src.join("readme.txt").display().to_string());
    assert_eq!(confirm_destination(&mut app), None);
    let e = app.prompt().unwrap().error.clone().unwrap();
    assert!(e.contains("is a file, not a folder"), "{e}");
    type_destination(&mut app, &src.join("www").display().to_string());
    assert_eq!(confirm_destination(&mut app), None);
    let e = app.prompt().unwrap().error.clone().unwrap();
    assert!(e.contains("already exists"), "{e}");

    // Into a folder that holds other files: only index.html is added.
    let out = dir.path().join("out");
    common::write_file(&out.join("other.txt"), b"keep me", 0o644, 1_500_000_000);
    type_destination(&mut app, &out.display().to_string());
    let id = confirm_destination(&mut app).expect("the restore starts");
    let (target, files) = downloaded(&app, id);
    assert_eq!((target, files), (out.clone(), 1));
    let want = common::describe(&src.join("www"));
    let got = common::describe(&out);
    assert_eq!(
        got.get(std::path::Path::new("index.html")),
        want.get(std::path::Path::new("index.html"))
    );
    assert_eq!(
        std::fs::read(out.join("index.html")).unwrap(),
        common::bytes(300_000, 2)
    );
    assert_eq!(std::fs::read(out.join("other.txt")).unwrap(), b"keep me");
    assert_eq!(got.len(), 2);

    // A whole folder (img, with its own time) into the default downloads folder, which
    // does not exist yet.
    key(&mut app, KeyCode::Esc);
    let row = app
        .rows(&app.screen().view)
        .into_ready()
        .unwrap()
        .iter()
        .position(|r| r.key == "img")
        .unwrap();
    select(&mut app, row);
    key(&mut app, KeyCode::Char('d'));
    assert!(app.prompt().unwrap().is_dir);
    let id = confirm_destination(&mut app).expect("the restore starts");
    let (target, files) = downloaded(&app, id);
    assert_eq!(
        (target.clone(), files),
        (dir.path().join("downloads/img"), 1)
    );
    common::assert_same_tree(&src.join("www/img"), &target);
    let (a, b) = (
        std::fs::metadata(src.join("www/img")).unwrap(),
        std::fs::metadata(&target).unwrap(),
    );
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!((a.mode(), a.mtime()), (b.mode(), b.mtime()));

    // The jobs screen shows it; esc on the prompt restores nothing.
    key(&mut app, KeyCode::Char('d'));
    key(&mut app, KeyCode::Esc);
    assert!(app.prompt().is_none());
    key(&mut app, KeyCode::Char('J'));
    let rows = app.rows(&View::Jobs).into_ready().unwrap().into_owned();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.cells.last().is_some_and(|s| s == "done")),
        "{rows:?}"
    );
}

/// A capture's volumes open as file trees; a file restored from one is the file on the
/// claim, byte for byte, with its mode and modification time.
#[test]
fn browse_a_captured_volume_and_restore_a_file() {
    use ferry_k8s::JobProgress;
    use ferry_k8s::capture::{self, CaptureOptions, Scope};
    use ferry_sandbox::seed::{SeedOptions, seed};
    use std::os::unix::fs::MetadataExt as _;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let prod_dir = dir.path().join("prod");
    let prod =
        t.rt.block_on(Sandbox::start(SandboxConfig::new("prod", prod_dir.clone())))
            .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    let seeded =
        t.rt.block_on(seed(
            &client,
            &prod_dir,
            &SeedOptions {
                files: 6,
                file_size: 100 * 1024,
                ..SeedOptions::default()
            },
        ))
        .unwrap();
    let out =
        t.rt.block_on(capture::capture(
            &client,
            &t.repo,
            &CaptureOptions {
                cluster: linked.clusters[0].name.clone(),
                scope: Scope::Namespaces(vec!["shop".into()]),
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
            &JobProgress::new(),
        ))
        .unwrap();
    assert!(!out.meta.volumes.is_empty());
    let (claim, folder) = seeded
        .volumes
        .iter()
        .max_by_key(|(_, f)| support_files(f).len())
        .unwrap()
        .clone();

    let mut app = App::new(env_for(&t, dir.path(), linked));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Snapshot {
            id: out.snapshot.id.to_hex()
        }
    );
    let want_key = format!("vol:shop/{claim}");
    let all = app
        .rows(&app.screen().view)
        .into_ready()
        .unwrap()
        .into_owned();
    let pos = all
        .iter()
        .position(|r| r.key == want_key)
        .unwrap_or_else(|| panic!("no row {want_key} in {all:?}"));
    select(&mut app, pos);
    key(&mut app, KeyCode::Enter);
    let base = format!("volumes/shop/{claim}");
    assert_eq!(
        app.screen().view,
        View::Files {
            id: out.snapshot.id.to_hex(),
            base: base.clone(),
            path: base.clone()
        }
    );
    assert_eq!(app.screen().view.title(), format!("shop/{claim}"));

    // Walk down to the first regular file, as a user would.
    let file = support_files(&folder).into_iter().next().unwrap();
    let rel = file.strip_prefix(&folder).unwrap().to_path_buf();
    let comps: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    for (n, c) in comps.iter().enumerate() {
        assert!(
            app.settle(LIMIT, |a| a.rows(&a.screen().view).ready().is_some()),
            "{:?}",
            app.rows_error()
        );
        let rows = app
            .rows(&app.screen().view)
            .into_ready()
            .unwrap()
            .into_owned();
        let pos = rows
            .iter()
            .position(|r| &r.key == c)
            .unwrap_or_else(|| panic!("no {c} in {rows:?}"));
        select(&mut app, pos);
        if n + 1 < comps.len() {
            key(&mut app, KeyCode::Enter);
        }
    }
    let node = app.selected_node().unwrap().clone();
    let src_meta = std::fs::metadata(&file).unwrap();
    assert_eq!(node.size, src_meta.len());
    key(&mut app, KeyCode::Char('d'));
    assert_eq!(
        app.prompt().unwrap().path,
        format!("{base}/{}", rel.display())
    );
    let dest = dir.path().join("restored");
    type_destination(&mut app, &dest.display().to_string());
    let id = confirm_destination(&mut app).expect("the restore starts");
    let (target, files) = downloaded(&app, id);
    assert_eq!((target, files), (dest.clone(), 1));
    let got = dest.join(rel.file_name().unwrap());
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&file).unwrap());
    let got_meta = std::fs::metadata(&got).unwrap();
    assert_eq!(got_meta.mode() & 0o7777, src_meta.mode() & 0o7777);
    // Captures record modification times to the second.
    assert_eq!(got_meta.mtime(), src_meta.mtime());

    t.rt.block_on(prod.shutdown()).unwrap();
}

/// Regular files below `dir`, sorted.
fn support_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The restore wizard with an AWS account linked (the sandbox cloud): the target step
/// offers a new EKS cluster; its form checks in place (a version older than the
/// source's is refused); the last step creates the cluster and restores the captured
/// shop into it as one job, the claims mapped to gp3 and their files byte for byte. A
/// creation failing half-way ends the job with what exists and the delete commands.
#[test]
fn a_new_eks_cluster_from_the_wizard_receives_the_shop() {
    use ferry_console::wizard_state::TargetKind;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let CapturedShop {
        prod,
        cloud,
        seeded,
        source_version,
        mut env,
    } = captured_shop(&t, dir.path());
    env.clouds = env.clouds.clone().with(ferry_providers::eks::Aws::new(vec![
        support::cloud::aws_account(&cloud),
    ]));
    let mut app = listed(App::new(env));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));

    // The wizard from the snapshot to its confirmation, creating `name` with nodes of
    // `instance`; returns the job.
    let run = |app: &mut App, name: &str, instance: &str, check_form: bool| -> usize {
        key(app, KeyCode::Char('r'));
        let w = app.wizard().expect("the restore wizard opens");
        let names: Vec<&str> = w.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(
            w.targets[w.target].kind,
            TargetKind::New,
            "the source is not the default target"
        );
        assert_eq!(w.target_name(), "new EKS cluster…");
        key(app, KeyCode::Enter);
        assert_eq!(app.wizard().unwrap().step, Step::Cluster);
        // Pre-filled with the source's version; type the rest.
        assert_eq!(
            app.wizard().unwrap().creating().unwrap().rows()[2].1,
            source_version
        );
        form_field(app, 1, name);
        form_field(app, 3, "arn:aws:iam::123456789012:role/eks");
        if check_form {
            key(app, KeyCode::Enter);
            let e = app.wizard().unwrap().error.clone().unwrap();
            assert!(e.contains("two availability zones"), "{e}");
        }
        form_field(app, 4, "subnet-a,subnet-b");
        form_field(app, 5, "arn:aws:iam::123456789012:role/node");
        form_field(app, 6, instance);
        if check_form {
            form_field(app, 2, "1.20");
            key(app, KeyCode::Enter);
            let w = app.wizard().unwrap();
            assert_eq!(w.step, Step::Cluster);
            assert!(
                w.error.as_ref().unwrap().contains("older than the source"),
                "{:?}",
                w.error
            );
            form_field(app, 2, &source_version);
        }
        key(app, KeyCode::Enter);
        assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
        key(app, KeyCode::Enter);
        let w = app.wizard().unwrap();
        assert_eq!(w.step, Step::StorageClasses);
        assert!(!w.sc.is_empty());
        assert!(w.sc.iter().all(|(_, to)| to == "gp3"), "{:?}", w.sc);
        key(app, KeyCode::Enter);
        key(app, KeyCode::Enter);
        let w = app.wizard().unwrap();
        assert_eq!(w.step, Step::Plan);
        assert!(
            w.plan.is_none(),
            "nothing to plan before the cluster exists"
        );
        let jobs = app.jobs().len();
        key(app, KeyCode::Enter);
        assert!(app.wizard().is_none(), "confirmed: the wizard closes");
        assert_eq!(app.jobs().len(), jobs + 1);
        let id = app.jobs().last().unwrap().id;
        assert!(app.settle(Duration::from_secs(300), |a| { a.job_ended(id) }));
        id
    };

    // A node group that cannot be made: the job fails saying what exists and how to
    // delete it.
    let id = run(&mut app, "half-eks", "m6i.huge", false);
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    match &job.end {
        Some(JobEnd::Failed(e)) => {
            let e = e.to_string();
            for want in [
                "Already created: cluster half-eks, nodegroup general",
                "To continue, run the wizard again with a new cluster of the same name",
                "aws eks delete-nodegroup --region us-east-1 --cluster-name half-eks --nodegroup-name general",
                "aws eks delete-cluster --region us-east-1 --name half-eks",
            ] {
                assert!(e.contains(want), "{want:?} not in {e}");
            }
        }
        other => panic!("expected a failure: {other:?}"),
    }

    let id = run(&mut app, "shop-eks", "m6i.large", true);
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    match &job.end {
        Some(JobEnd::Restored { report, .. }) => {
            assert!(report.failed().is_empty(), "{:?}", report.failed())
        }
        other => panic!(
            "creation + restore did not finish: {other:?}\n{:#?}",
            job.progress.log_lines()
        ),
    }
    let log = job.progress.log_lines().join("\n");
    assert!(log.contains("cluster shop-eks is ready"), "{log}");
    assert!(log.contains("EKS cluster shop-eks is ACTIVE"), "{log}");

    // Linked from now on; the shop is there with its claims on gp3 and their files.
    assert_shop_moved(
        &t,
        &mut app,
        "eks:default/us-east-1/shop-eks",
        &dir.path().join("cloud/us-east-1/shop-eks"),
        ("shop", "gp3"),
        &seeded,
    );
    t.rt.block_on(prod.shutdown()).unwrap();
    drop(cloud);
}

/// The restore wizard with an Azure subscription linked (the sandbox cloud's ARM
/// side): the target step offers a new AKS cluster; its form refuses a version older
/// than the source's in place; the last step creates the cluster and restores the
/// captured shop into it as one job, the claims mapped to managed-csi and their files
/// byte for byte.
#[test]
fn a_new_aks_cluster_from_the_wizard_receives_the_shop() {
    use ferry_console::wizard_state::TargetKind;
    use kube::api::ListParams;

    use support::cloud::SUB;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let CapturedShop {
        prod,
        cloud,
        seeded,
        source_version,
        mut env,
    } = captured_shop(&t, dir.path());
    env.clouds = env
        .clouds
        .clone()
        .with(ferry_providers::aks::Azure::new(vec![
            support::cloud::azure_subscription(&cloud),
        ]));
    let mut app = listed(App::new(env));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));

    key(&mut app, KeyCode::Char('r'));
    let w = app.wizard().expect("the restore wizard opens");
    assert_eq!(w.targets.len(), 2);
    assert_eq!(w.targets[w.target].kind, TargetKind::New);
    assert_eq!(w.target_name(), "new AKS cluster…");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Cluster);
    let rows = app.wizard().unwrap().creating().unwrap().rows();
    let labels: Vec<&str> = rows.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "subscription",
            "resource group",
            "location",
            "name",
            "Kubernetes version",
            "pool system VM size",
            "pool system nodes"
        ]
    );
    assert_eq!(rows[0].1, "test");
    assert_eq!(
        rows[4].1, source_version,
        "pre-filled with the source's version"
    );
    form_field(&mut app, 1, "rg-shop");
    form_field(&mut app, 3, "shop-aks");
    form_field(&mut app, 6, "3");
    // An older version is refused in place.
    form_field(&mut app, 4, "1.20");
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Cluster);
    assert!(
        w.error.as_ref().unwrap().contains("older than the source"),
        "{:?}",
        w.error
    );
    form_field(&mut app, 4, &source_version);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::StorageClasses);
    assert!(!w.sc.is_empty());
    assert!(w.sc.iter().all(|(_, to)| to == "managed-csi"), "{:?}", w.sc);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
    let jobs = app.jobs().len();
    key(&mut app, KeyCode::Enter);
    assert!(app.wizard().is_none(), "confirmed: the wizard closes");
    assert_eq!(app.jobs().len(), jobs + 1);
    let id = app.jobs().last().unwrap().id;
    assert!(app.settle(Duration::from_secs(300), |a| { a.job_ended(id) }));
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    match &job.end {
        Some(JobEnd::Restored { report, .. }) => {
            assert!(report.failed().is_empty(), "{:?}", report.failed())
        }
        other => panic!(
            "creation + restore did not finish: {other:?}\n{:#?}",
            job.progress.log_lines()
        ),
    }
    let log = job.progress.log_lines().join("\n");
    assert!(log.contains("AKS cluster shop-aks has succeeded"), "{log}");

    // Linked from now on; the shop is there with its claims on managed-csi.
    let name = "aks:test/rg-shop/shop-aks";
    assert!(app.settle(LIMIT, |a| {
        a.cluster(name).is_some_and(|c| c.facts.is_some())
    }));
    let new = app.cluster(name).unwrap().linked.clone();
    let new_client = t.rt.block_on(new.client()).unwrap();
    let nodes =
        t.rt.block_on(
            Api::<k8s_openapi::api::core::v1::Node>::all(new_client.clone())
                .list(&ListParams::default().labels("kubernetes.azure.com/agentpool=system")),
        )
        .unwrap();
    assert_eq!(nodes.items.len(), 3, "the pool's node count as typed");
    assert_shop_moved(
        &t,
        &mut app,
        name,
        &dir.path()
            .join("cloud/azure")
            .join(SUB)
            .join("rg-shop/shop-aks"),
        ("shop", "managed-csi"),
        &seeded,
    );
    t.rt.block_on(prod.shutdown()).unwrap();
    drop(cloud);
}

/// An in-process sandbox cloud (`support::cloud`), and the AWS account the console
/// links for it.
fn eks_cloud(
    t: &common::TestRepo,
    dir: &std::path::Path,
) -> (
    ferry_sandbox::cloud::Cloud,
    ferry_providers::eks::AwsAccount,
) {
    let cloud = t.rt.block_on(support::cloud::start(&dir.join("cloud")));
    let account = support::cloud::aws_account(&cloud);
    (cloud, account)
}

/// The shop seeded with four 64 KiB files per claim: (claim, host folder) pairs.
fn seed_shop(
    t: &common::TestRepo,
    client: &kube::Client,
    dir: &std::path::Path,
) -> Vec<(String, std::path::PathBuf)> {
    use ferry_sandbox::seed::{SeedOptions, seed};
    t.rt.block_on(seed(
        client,
        dir,
        &SeedOptions {
            files: 4,
            file_size: 64 * 1024,
            ..SeedOptions::default()
        },
    ))
    .unwrap()
    .volumes
}

/// A `prod` sandbox with the shop seeded and captured into the test repository, beside
/// the sandbox cloud (`support::cloud`); the console's environment links prod. Where
/// the restore-into-a-new-cluster tests start.
struct CapturedShop {
    prod: Sandbox,
    cloud: ferry_sandbox::cloud::Cloud,
    /// Each seeded claim and its host folder.
    seeded: Vec<(String, std::path::PathBuf)>,
    /// The source's Kubernetes version, major.minor.
    source_version: String,
    env: Env,
}

fn captured_shop(t: &common::TestRepo, dir: &std::path::Path) -> CapturedShop {
    use ferry_k8s::JobProgress;
    use ferry_k8s::capture::{self, CaptureOptions, Scope};
    let prod_dir = dir.join("prod");
    let (prod, cloud) = t.rt.block_on(async {
        let prod = Sandbox::start(SandboxConfig::new("prod", prod_dir.clone()))
            .await
            .unwrap();
        (prod, support::cloud::start(&dir.join("cloud")).await)
    });
    let kc = dir.join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    let seeded = seed_shop(t, &client, &prod_dir);
    let out =
        t.rt.block_on(capture::capture(
            &client,
            &t.repo,
            &CaptureOptions {
                cluster: linked.clusters[0].name.clone(),
                scope: Scope::Namespaces(vec!["shop".into()]),
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
            &JobProgress::new(),
        ))
        .unwrap();
    let (maj, min) = ferry_providers::spec::parse_version(&out.meta.server_version).unwrap();
    CapturedShop {
        prod,
        cloud,
        seeded,
        source_version: format!("{maj}.{min}"),
        env: env_for(t, dir, linked),
    }
}

/// From the clusters screen, opens the first cluster's namespaces, marks `ns` and
/// presses `key` (m or c) on it.
fn open_live_wizard(app: &mut App, cluster: &str, ns: &str, key_char: char) {
    assert!(app.settle(LIMIT, |a| a.probed()));
    key(app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Namespaces {
            cluster: cluster.into()
        }
    );
    assert!(app.settle(LIMIT, |a| matches!(
        a.cluster(cluster).unwrap().namespaces,
        Some(Load::Ready(_))
    )));
    key(app, KeyCode::Char('/'));
    chars(app, ns);
    key(app, KeyCode::Enter);
    assert_eq!(app.selected_row().unwrap().key, ns);
    key(app, KeyCode::Char(' '));
    key(app, KeyCode::Char(key_char));
    assert!(app.wizard().is_some(), "the wizard opens");
}

/// Types into row `row` of the wizard's new-cluster form in place of what it holds.
fn form_field(app: &mut App, row: usize, text: &str) {
    app.pick(row);
    let n = app.wizard().unwrap().creating().unwrap().rows()[row]
        .1
        .chars()
        .count();
    for _ in 0..n {
        key(app, KeyCode::Backspace);
    }
    chars(app, text);
}

/// From the form of a valid new cluster to the confirmation: the storage classes all
/// mapped to gp3 and nothing captured before; returns the job once it has ended.
fn run_new_cluster_job(app: &mut App, repo: &ferry_repo::Repository) -> usize {
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Namespaces, "{:?}", w.error);
    key(app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().classes_used,
        Load::Ready(_)
    )));
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::StorageClasses);
    assert!(!w.sc.is_empty());
    assert!(w.sc.iter().all(|(_, to)| to == "gp3"), "{:?}", w.sc);
    key(app, KeyCode::Enter);
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Plan);
    assert!(w.plan.is_none() && w.capture_job.is_none());
    let snapshots = ferry_repo::snapshot::list(repo).unwrap().0.len();
    assert_eq!(snapshots, 0, "nothing is captured before the confirmation");
    let jobs = app.jobs().len();
    key(app, KeyCode::Enter);
    assert!(app.wizard().is_none(), "confirmed: the wizard closes");
    assert_eq!(app.jobs().len(), jobs + 1, "one job");
    let id = app.jobs().last().unwrap().id;
    assert!(app.settle(Duration::from_secs(300), |a| { a.job_ended(id) }));
    id
}

/// [`run_new_cluster_job`], which must end with everything restored.
fn confirm_new_cluster(app: &mut App, repo: &ferry_repo::Repository) -> usize {
    let id = run_new_cluster_job(app, repo);
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    match &job.end {
        Some(JobEnd::Restored { report, .. }) => {
            assert!(report.failed().is_empty(), "{:?}", report.failed())
        }
        other => panic!(
            "creation + {} did not finish: {other:?}\n{:#?}",
            job.title,
            job.progress.log_lines()
        ),
    }
    id
}

/// Fills the EKS form of a source without an envelope: `name`, the roles, two subnets.
fn fill_eks_form(app: &mut App, name: &str) {
    form_field(app, 1, name);
    form_field(app, 3, "arn:aws:iam::123456789012:role/eks");
    form_field(app, 4, "subnet-a,subnet-b");
    form_field(app, 5, "arn:aws:iam::123456789012:role/node");
}

/// The new cluster `name` is linked and probed, and holds the shop in `ns`: its
/// deployments, and its claims on `class` with the files of `seeded` byte for byte.
fn assert_shop_moved(
    t: &common::TestRepo,
    app: &mut App,
    name: &str,
    cluster_dir: &std::path::Path,
    (ns, class): (&str, &str),
    seeded: &[(String, std::path::PathBuf)],
) {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::ListParams;
    assert!(app.settle(LIMIT, |a| {
        a.cluster(name).is_some_and(|c| c.facts.is_some())
    }));
    let new = app.cluster(name).unwrap().linked.clone();
    let client = t.rt.block_on(new.client()).unwrap();
    let pvcs =
        t.rt.block_on(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .list(&ListParams::default()),
        )
        .unwrap();
    assert_eq!(pvcs.items.len(), seeded.len());
    for pvc in &pvcs.items {
        assert_eq!(
            pvc.spec.as_ref().unwrap().storage_class_name.as_deref(),
            Some(class)
        );
    }
    let deployments =
        t.rt.block_on(
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), ns)
                .list(&ListParams::default()),
        )
        .unwrap();
    assert!(!deployments.items.is_empty());
    for (claim, folder) in seeded {
        let restored = t.rt.block_on(support::volumes::volume_dir(
            &client,
            cluster_dir,
            ns,
            claim,
        ));
        assert_eq!(
            support::volumes::checksums(&restored),
            support::volumes::checksums(folder),
            "{claim}"
        );
    }
}

/// The audit trail's one record of `action` (allowed, succeeded), and the snapshot its
/// capture saved (tagged with the console and the action).
fn audit_of(
    repo: &ferry_repo::Repository,
    action: ferry_policy::Action,
) -> ferry_policy::audit::AuditRecord {
    let (records, gaps) = ferry_policy::audit::read(repo).unwrap();
    assert!(gaps.is_empty(), "{gaps:?}");
    let mine: Vec<_> = records.into_iter().filter(|r| r.action == action).collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let r = mine.into_iter().next().unwrap();
    assert!(r.allowed);
    assert_eq!(r.outcome, ferry_policy::audit::Outcome::Succeeded, "{r:#?}");
    assert!(r.bytes > 0, "{r:#?}");
    let (snapshots, _) = ferry_repo::snapshot::list(repo).unwrap();
    let snap = snapshots
        .iter()
        .find(|s| Some(s.id.to_hex()) == r.snapshot)
        .unwrap_or_else(|| panic!("the record's snapshot is not in the repository: {r:#?}"));
    assert!(snap.tags.iter().any(|t| t == "console"), "{:?}", snap.tags);
    assert!(
        snap.tags.iter().any(|t| *t == action.to_string()),
        "{:?}",
        snap.tags
    );
    r
}

/// The migrate wizard from a namespace of a plain kubeconfig context with an AWS
/// account linked: the target step offers a new EKS cluster (the default, as no other
/// cluster is linked), its form starts from defaults and the source's version, nothing
/// is captured before the confirmation, and one job creates the cluster, links it,
/// checks the policy, captures the shop and restores it there: claims on gp3, files
/// byte for byte, a `migrate` record in the audit trail.
#[test]
fn migrate_the_shop_into_a_new_eks_cluster_from_the_wizard() {
    use ferry_console::wizard_state::TargetKind;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let prod_dir = dir.path().join("prod");
    let prod =
        t.rt.block_on(Sandbox::start(SandboxConfig::new("prod", prod_dir.clone())))
            .unwrap();
    let (cloud, account) = eks_cloud(&t, dir.path());
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let prod_name = linked.clusters[0].name.clone();
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    let seeded = seed_shop(&t, &client, &prod_dir);
    let version = t.rt.block_on(client.apiserver_version()).unwrap();
    let source_version = format!("{}.{}", version.major, version.minor.trim_end_matches('+'));

    let mut env = env_for(&t, dir.path(), linked);
    env.clouds = env
        .clouds
        .clone()
        .with(ferry_providers::eks::Aws::new(vec![account]));
    let mut app = listed(App::new(env));
    open_live_wizard(&mut app, &prod_name, "shop", 'm');
    let w = app.wizard().unwrap();
    assert_eq!(w.targets.len(), 2);
    assert_eq!(w.targets[w.target].kind, TargetKind::New);
    assert_eq!(w.target_name(), "new EKS cluster…");
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Cluster);
    // A plain context has no envelope: defaults, with the version prod was probed at.
    let rows = w.creating().unwrap().rows();
    assert_eq!(rows[1].1, "ferry-migrate");
    assert_eq!(rows[2].1, source_version);
    assert_eq!(rows[4].1, "");
    assert_eq!(rows[6].1, "m6i.large");
    fill_eks_form(&mut app, "shop-eks");
    let id = confirm_new_cluster(&mut app, &t.repo);
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    assert_eq!(
        job.title,
        format!("create shop-eks + migrate {prod_name}/shop")
    );
    let log = job.progress.log_lines().join("\n");
    for want in [
        "EKS cluster shop-eks is ACTIVE",
        "captured snapshot",
        "report saved",
    ] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }

    let name = "eks:default/us-east-1/shop-eks";
    assert_shop_moved(
        &t,
        &mut app,
        name,
        &dir.path().join("cloud/us-east-1/shop-eks"),
        ("shop", "gp3"),
        &seeded,
    );
    let record = audit_of(&t.repo, ferry_policy::Action::Migrate);
    assert_eq!(
        record.from.as_deref(),
        Some(format!("{prod_name}/shop").as_str())
    );
    assert_eq!(record.to.as_deref(), Some(format!("{name}/shop").as_str()));
    assert!(record.plan.is_some(), "{record:#?}");
    t.rt.block_on(prod.shutdown()).unwrap();
    drop(cloud);
}

/// The clone wizard from a namespace of an EKS cluster: its default target stays the
/// source; the new EKS cluster's form is pre-filled from the source's envelope once it
/// arrives (fetched in the background when the wizard opens), so it is valid as it
/// stands; the clone lands in the new cluster under the clone's name.
#[test]
fn clone_an_eks_namespace_into_a_new_cluster_pre_filled_from_its_envelope() {
    use ferry_console::wizard_state::TargetKind;
    use ferry_providers::eks::{self, ClusterSpec, CreateOptions, NodegroupSpec};
    use ferry_providers::kubeconfig::LinkedCluster;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let (cloud, account) = eks_cloud(&t, dir.path());
    let spec = ClusterSpec {
        name: "src-eks".into(),
        version: "1.31".into(),
        role_arn: "arn:aws:iam::123456789012:role/eks".into(),
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        endpoint_public_access: true,
        nodegroups: vec![NodegroupSpec {
            name: "web".into(),
            instance_types: vec!["c7i.large".into()],
            min_size: 1,
            max_size: 4,
            desired_size: 2,
            node_role: "arn:aws:iam::123456789012:role/node".into(),
            ..NodegroupSpec::default()
        }],
        addons: vec![eks::EBS_CSI_ADDON.into()],
        storage_class: Some("gp3".into()),
        ..ClusterSpec::default()
    };
    let fast = CreateOptions {
        poll: Duration::from_millis(50),
        max_poll: Duration::from_millis(250),
        limit: Duration::from_secs(120),
    };
    let src =
        t.rt.block_on(eks::create_cluster(
            &account,
            "us-east-1",
            &spec,
            None,
            &fast,
            &|_| {},
        ))
        .unwrap();
    let src = LinkedCluster::from_eks(&account, &src);
    let client = t.rt.block_on(src.client()).unwrap();
    let seeded = seed_shop(&t, &client, &dir.path().join("cloud/us-east-1/src-eks"));

    let mut env = env_for(
        &t,
        dir.path(),
        Linked {
            clusters: vec![src.clone()],
            ..Linked::default()
        },
    );
    env.clouds = env
        .clouds
        .clone()
        .with(ferry_providers::eks::Aws::new(vec![account]));
    let mut app = listed(App::new(env));
    open_live_wizard(&mut app, &src.name, "shop", 'c');
    let w = app.wizard().unwrap();
    assert_eq!(
        w.target_name(),
        src.name,
        "a clone's default target is the source"
    );
    assert_eq!(w.targets[1].kind, TargetKind::New);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.wizard().unwrap().target_name(), "new EKS cluster…");
    let rows = |a: &App| a.wizard().unwrap().creating().unwrap().rows();
    assert!(
        app.settle(LIMIT, |a| rows(a)[4].1 == "subnet-a,subnet-b"),
        "the envelope never filled the form: {:?}",
        rows(&app)
    );
    let filled = rows(&app);
    assert_eq!(filled[0].1, "default / us-east-1");
    assert_eq!(filled[1].1, "src-eks-clone");
    assert_eq!(filled[2].1, "1.31");
    assert_eq!(filled[3].1, "arn:aws:iam::123456789012:role/eks");
    assert_eq!(filled[5].1, "arn:aws:iam::123456789012:role/node");
    assert_eq!(filled[6].1, "c7i.large");
    assert_eq!(
        (
            filled[7].1.as_str(),
            filled[8].1.as_str(),
            filled[9].1.as_str()
        ),
        ("1", "4", "2")
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Cluster);
    assert_eq!(app.wizard().unwrap().ns[0].1, "shop-clone");
    confirm_new_cluster(&mut app, &t.repo);

    let name = "eks:default/us-east-1/src-eks-clone";
    assert_shop_moved(
        &t,
        &mut app,
        name,
        &dir.path().join("cloud/us-east-1/src-eks-clone"),
        ("shop-clone", "gp3"),
        &seeded,
    );
    let record = audit_of(&t.repo, ferry_policy::Action::Clone);
    assert_eq!(
        record.to.as_deref(),
        Some(format!("{name}/shop-clone").as_str())
    );
    drop(cloud);
}

/// A migrate into a new EKS cluster whose source stops answering once the wizard is
/// confirmed: the cluster is created and linked, the capture fails, and the job says
/// what exists, how to use it and how to delete it; the audit record says it failed.
#[test]
fn a_migrate_whose_source_goes_away_says_what_was_created() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let prod =
        t.rt.block_on(Sandbox::start(SandboxConfig::new(
            "prod",
            dir.path().join("prod"),
        )))
        .unwrap();
    let (cloud, account) = eks_cloud(&t, dir.path());
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let prod_name = linked.clusters[0].name.clone();
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    t.rt.block_on(create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ));

    let mut env = env_for(&t, dir.path(), linked);
    env.clouds = env
        .clouds
        .clone()
        .with(ferry_providers::eks::Aws::new(vec![account]));
    let mut app = listed(App::new(env));
    open_live_wizard(&mut app, &prod_name, "shop", 'm');
    key(&mut app, KeyCode::Enter);
    fill_eks_form(&mut app, "orphan-eks");
    // The plan step is reached with prod up (its claims' classes read), then prod goes.
    let before_shutdown = |app: &mut App| {
        key(app, KeyCode::Enter);
        key(app, KeyCode::Enter);
        assert!(app.settle(LIMIT, |a| matches!(
            a.wizard().unwrap().classes_used,
            Load::Ready(_)
        )));
        key(app, KeyCode::Enter);
        key(app, KeyCode::Enter);
        assert_eq!(app.wizard().unwrap().step, Step::Plan);
    };
    before_shutdown(&mut app);
    t.rt.block_on(prod.shutdown()).unwrap();
    key(&mut app, KeyCode::Enter);
    assert!(app.wizard().is_none(), "confirmed: the wizard closes");
    let id = app.jobs().last().unwrap().id;
    assert!(app.settle(Duration::from_secs(300), |a| { a.job_ended(id) }));
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    let Some(JobEnd::Failed(e)) = &job.end else {
        panic!("expected a failure: {:?}", job.end)
    };
    // Failed after the cluster was created: the error says what is left behind.
    assert!(matches!(e, TaskError::AfterCreate { .. }), "{e:?}");
    let e = e.to_string();
    for want in [
        "the EKS cluster orphan-eks and its node groups (general) were created and stay",
        "choose it as the target when you run the wizard again",
        "aws eks delete-nodegroup --region us-east-1 --cluster-name orphan-eks --nodegroup-name general",
        "aws eks delete-cluster --region us-east-1 --name orphan-eks",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }
    assert!(!e.contains(":snapshots"), "{e}");
    // Linked all the same.
    assert!(app.cluster("eks:default/us-east-1/orphan-eks").is_some());
    let (records, _) = ferry_policy::audit::read(&t.repo).unwrap();
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.action == ferry_policy::Action::Migrate)
        .collect();
    assert_eq!(failed.len(), 1, "{records:#?}");
    assert_eq!(failed[0].outcome, ferry_policy::audit::Outcome::Failed);
    assert!(failed[0].snapshot.is_none(), "{:#?}", failed[0]);
    drop(cloud);
}

/// The restore wizard to a new AKS cluster that fails half-way (a VM size Azure does
/// not have: the sandbox ARM makes the managed cluster, then fails its provisioning
/// with `SkuNotAvailable`): the form words its own errors by row, the job fails saying
/// what exists and giving the `az aks delete` command, and the console goes on (the
/// wizard opens again, nothing half-made is linked).
#[test]
fn a_new_aks_cluster_failing_half_way_from_the_wizard_says_what_exists() {
    use ferry_console::wizard_state::TargetKind;

    use support::cloud::SUB;

    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let CapturedShop {
        prod,
        cloud,
        mut env,
        ..
    } = captured_shop(&t, dir.path());
    env.clouds = env
        .clouds
        .clone()
        .with(ferry_providers::aks::Azure::new(vec![
            support::cloud::azure_subscription(&cloud),
        ]));
    let mut app = listed(App::new(env));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.settle(LIMIT, |a| a.snapshots_loaded()));

    // The restore wizard from the snapshot, on its new AKS cluster's form.
    let open_form = |app: &mut App| {
        key(app, KeyCode::Char('r'));
        let w = app.wizard().expect("the restore wizard opens");
        assert_eq!(w.targets[w.target].kind, TargetKind::New);
        assert_eq!(w.target_name(), "new AKS cluster…");
        key(app, KeyCode::Enter);
        assert_eq!(app.wizard().unwrap().step, Step::Cluster);
    };
    open_form(&mut app);
    let rows = app.wizard().unwrap().creating().unwrap().rows();
    assert_eq!(rows[1].0, "resource group");
    assert_eq!(rows[5].0, "pool system VM size");

    // An empty resource group is refused in place, in the form's words.
    form_field(&mut app, 1, "");
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Cluster, "the form stays open");
    let e = w.error.clone().expect("the form says what is wrong");
    assert!(e.contains("no resource group"), "{e}");
    assert!(e.contains("set “resource group” to"), "{e}");
    assert!(!e.contains("--"), "a flag in the form's message: {e}");

    // A VM size Azure does not have: the cluster resource is made, then fails.
    form_field(&mut app, 1, "rg-half");
    form_field(&mut app, 3, "half-aks");
    form_field(&mut app, 5, "Standard_Huge");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::StorageClasses);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
    let jobs = app.jobs().len();
    key(&mut app, KeyCode::Enter);
    assert!(app.wizard().is_none(), "confirmed: the wizard closes");
    assert_eq!(app.jobs().len(), jobs + 1);
    let id = app.jobs().last().unwrap().id;
    assert!(app.settle(Duration::from_secs(300), |a| { a.job_ended(id) }));
    let job = app.jobs().iter().find(|j| j.id == id).unwrap();
    match &job.end {
        Some(JobEnd::Failed(e)) => {
            let e = e.to_string();
            for want in [
                "SkuNotAvailable",
                "Standard_Huge",
                "Already created: managed cluster half-aks",
                &format!(
                    "az aks delete --subscription {SUB} --resource-group rg-half --name half-aks --yes"
                ),
            ] {
                assert!(e.contains(want), "{want:?} not in {e}");
            }
        }
        other => panic!(
            "expected a half-way failure: {other:?}\n{:#?}",
            job.progress.log_lines()
        ),
    }

    // The console goes on: nothing half-made is linked, the wizard opens again.
    assert!(app.cluster("aks:test/rg-half/half-aks").is_none());
    open_form(&mut app);
    t.rt.block_on(prod.shutdown()).unwrap();
    drop(cloud);
}

/// Lists follow the cluster by themselves and keep the selection; `R` on the clusters
/// reads the kubeconfig again (a sandbox restarted on a new port is found); `b` asks
/// first; a job's elapsed time stops when it ends.
#[test]
fn views_follow_the_cluster_and_r_reads_the_kubeconfig_again() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let start = |sub: &str| {
        t.rt.block_on(Sandbox::start(SandboxConfig::new(
            "prod",
            dir.path().join(sub),
        )))
        .unwrap()
    };
    let first = start("first");
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[first.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let name = linked.clusters[0].name.clone();
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    let mut app = App::new(env_for(&t, dir.path(), linked));
    assert!(app.settle(LIMIT, |a| a.probed()));
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| a.row_keys().is_some()));
    assert!(app.select_key("default"));

    // The namespaces are watched while they show.
    assert_eq!(
        app.following(),
        Some(&Target::Namespaces {
            cluster: name.clone()
        })
    );
    // A namespace made elsewhere appears by itself, above the selection, which stays.
    t.rt.block_on(create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aaa-made-elsewhere"}}),
    ));
    assert!(
        app.settle(LIMIT, |a| a
            .row_keys()
            .is_some_and(|k| k.iter().any(|k| k == "aaa-made-elsewhere"))),
        "{:?}",
        app.row_keys()
    );
    assert_eq!(app.selected_key().as_deref(), Some("default"));

    // A namespace's workloads follow it too: a Deployment made and scaled elsewhere
    // shows, with its age ticking as it is drawn; leaving stops following it.
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.following(),
        Some(&Target::Namespace {
            cluster: name.clone(),
            ns: "default".into()
        })
    );
    assert!(app.settle(LIMIT, |a| a.row_keys().is_some()));
    t.rt.block_on(create(
        &client,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "made-elsewhere", "namespace": "default"},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}},
                                     "spec": {"containers": [{"name": "x", "image": "busybox"}]}}}}),
    ));
    let shown = |a: &App| {
        a.current_rows()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.key == "Deployment/made-elsewhere")
    };
    assert!(
        app.settle(LIMIT, |a| shown(a).is_some()),
        "{:?}",
        app.row_keys()
    );
    let row = shown(&app).unwrap();
    assert!(row.born.is_some(), "{row:?}");
    let young = row.cells_at(chrono::Utc::now())[4].clone();
    let older = row.cells_at(chrono::Utc::now() + chrono::Duration::seconds(90))[4].clone();
    assert!(
        young.ends_with('s') && older.starts_with("1m"),
        "{young} {older}"
    );
    t.rt.block_on(async {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), "default");
        api.delete("made-elsewhere", &Default::default())
            .await
            .unwrap();
    });
    assert!(app.settle(LIMIT, |a| shown(a).is_none()));
    key(&mut app, KeyCode::Esc);
    assert!(matches!(app.following(), Some(Target::Namespaces { .. })));
    assert_eq!(app.selected_key().as_deref(), Some("default"));

    // ctrl-a marks every namespace shown, again unmarks them.
    app.key(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::CONTROL));
    let mut all = app.row_keys().unwrap();
    all.sort();
    assert_eq!(app.marked(), all);
    app.key(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::CONTROL));
    assert!(app.marked().is_empty());

    // b asks first, naming what it backs up; anything but y leaves it.
    key(&mut app, KeyCode::Char('b'));
    let ask = app.asking().expect("b asks first").clone();
    assert!(
        ask.question
            .starts_with(&format!("Back up namespace default of {name}")),
        "{ask:?}"
    );
    key(&mut app, KeyCode::Char('n'));
    assert!(app.asking().is_none() && app.jobs().is_empty());
    key(&mut app, KeyCode::Char('b'));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(app.jobs().len(), 1);
    assert!(app.settle(LIMIT, |a| a.job_ended(1)));
    let took = app.jobs()[0].elapsed();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        app.jobs()[0].elapsed(),
        took,
        "the clock stopped at the end"
    );
    assert!(app.jobs()[0].elapsed_text().starts_with("took "));

    // The cluster restarts on another port: R on the clusters finds it there.
    drop(first);
    let second = start("second");
    write_kubeconfig(&kc, &[second.kubeconfig_entry()]).unwrap();
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen().view, View::Clusters);
    assert_eq!(app.following(), None, "nothing is watched on the clusters");
    key(&mut app, KeyCode::Char('R'));
    assert!(app.settle(LIMIT, |a| a.probed()));
    let c = app.cluster(&name).unwrap();
    assert_eq!(c.linked.server, second.kubeconfig_entry().server);
    assert!(c.facts.as_ref().unwrap().is_ok(), "{:?}", c.facts);

    // `:ct<tab> fer<tab>` completes to the cluster's name; a part of a name finds it.
    key(&mut app, KeyCode::Char(':'));
    chars(&mut app, "ct");
    key(&mut app, KeyCode::Tab);
    chars(&mut app, "fer");
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Namespaces {
            cluster: name.clone()
        }
    );
    app.command("ctx clusters");
    assert!(
        app.status()
            .is_some_and(|(_, s)| s.contains("no linked cluster"))
    );
    app.command("ctx rod");
    assert_eq!(app.screen().view, View::Namespaces { cluster: name });
}

/// A list its user may read but not watch still follows the cluster, read again every
/// few seconds; the kinds the user may not list count as none.
#[test]
fn a_list_that_may_not_be_watched_is_read_again() {
    use ferry_sandbox::{KubeconfigUser, write_kubeconfig_with_users};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let mut s =
        t.rt.block_on(Sandbox::start(SandboxConfig::new(
            "prod",
            dir.path().join("prod"),
        )))
        .unwrap();
    let admin = s.kubeconfig_entry();
    let user = KubeconfigUser {
        cluster: admin.cluster.clone(),
        user: "lister".into(),
        token: s.add_user("lister", &[]).unwrap(),
    };
    let ctx = user.context_name();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig_with_users(&kc, &[admin], &[user]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let prod = linked.clusters.iter().find(|c| c.name != ctx).unwrap();
    let client = t.rt.block_on(prod.client()).unwrap();
    t.rt.block_on(async {
        let pp = PostParams::default();
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": "lister"},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            ]
        }))
        .unwrap();
        Api::<ClusterRole>::all(client.clone())
            .create(&pp, &role)
            .await
            .unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "lister"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "lister"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lister"}
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(&pp, &binding)
            .await
            .unwrap();
    });
    let mut app = App::new(env_for(&t, dir.path(), linked.clone()));
    assert!(app.settle(LIMIT, |a| a.probed()));
    app.command(&format!("ctx {ctx}"));
    app.command("ns");
    assert!(
        app.settle(LIMIT, |a| a
            .row_keys()
            .is_some_and(|k| k.iter().any(|k| k == "default"))),
        "{:?}",
        app.rows_error()
    );
    t.rt.block_on(create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "made-later"}}),
    ));
    assert!(
        app.settle(LIMIT, |a| a
            .row_keys()
            .is_some_and(|k| k.iter().any(|k| k == "made-later"))),
        "{:?}",
        app.row_keys()
    );
    assert_eq!(
        app.following(),
        Some(&Target::Namespaces { cluster: ctx }),
        "still following"
    );
    drop(app);
    t.rt.block_on(s.shutdown()).unwrap();
}

/// The whole cluster from the clusters screen: `b` asks, naming the namespaces it takes
/// and the system ones it leaves, then backs them up with every cluster-scoped object;
/// `m` opens the wizard on them, where `del` leaves one out of the capture.
#[test]
fn the_whole_cluster_from_the_clusters_screen() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let (prod, qa) = t.rt.block_on(async {
        (
            Sandbox::start(SandboxConfig::new("prod", dir.path().join("prod")))
                .await
                .unwrap(),
            Sandbox::start(SandboxConfig::new("qa", dir.path().join("qa")))
                .await
                .unwrap(),
        )
    });
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[prod.kubeconfig_entry(), qa.kubeconfig_entry()]).unwrap();
    let linked = Linked::load(&Sources { paths: vec![kc] });
    let prod_name = linked.clusters[0].name.clone();
    let client = t.rt.block_on(linked.clusters[0].client()).unwrap();
    t.rt.block_on(async {
        for ns in ["shop", "tmp"] {
            create(
                &client,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await;
        }
        create(
            &client,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"a": "b"}}),
        )
        .await;
    });
    let mut app = App::new(env_for(&t, dir.path(), linked));
    assert!(app.settle(LIMIT, |a| a.probed()));
    assert!(app.select_key(&prod_name));

    // b: every namespace ticked but the system ones; untick tmp, tick kube-public.
    key(&mut app, KeyCode::Char('b'));
    assert!(
        app.settle(LIMIT, |a| a.picking().is_some()),
        "{:?}",
        app.status()
    );
    let pick = app.picking().unwrap();
    assert_eq!(pick.ticked(), ["default", "shop", "tmp"]);
    let names: Vec<&str> = pick.items.iter().map(|i| i.name.as_str()).collect();
    assert!(names.contains(&"kube-system"), "{names:?}");
    let at = |app: &App, name: &str| {
        let pick = app.picking().unwrap();
        pick.items.iter().position(|i| i.name == name).unwrap()
    };
    let (public, tmp) = (at(&app, "kube-public"), at(&app, "tmp"));
    for _ in 0..public {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Char(' '));
    for _ in public..tmp {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(
        app.picking().unwrap().ticked(),
        ["default", "kube-public", "shop"]
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.jobs().len(), 1);
    assert!(app.settle(LIMIT, |a| a.job_ended(1)));
    let (all, _) = ferry_repo::snapshot::list(&t.repo).unwrap();
    let meta = ferry_k8s::capture::CaptureMeta::of(all.last().unwrap()).unwrap();
    assert_eq!(meta.namespaces, ["default", "kube-public", "shop"]);
    assert!(meta.resources.cluster, "{:?}", meta.resources);

    // m: the wizard on every namespace, the system ones left out; del leaves tmp out
    // of the capture and takes kube-public back.
    key(&mut app, KeyCode::Char('m'));
    assert!(app.settle(LIMIT, |a| a.wizard().is_some()));
    let w = app.wizard().unwrap();
    assert!(w.whole);
    assert_eq!(w.source_namespaces(), ["default", "shop", "tmp"]);
    assert!(w.left_out.contains("kube-system"), "{:?}", w.left_out);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    let listed = |app: &App, name: &str| {
        let w = app.wizard().unwrap();
        w.ns.iter().position(|(from, _)| from == name).unwrap()
    };
    let (public, tmp) = (listed(&app, "kube-public"), listed(&app, "tmp"));
    for _ in 0..public {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Delete);
    for _ in public..tmp {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Delete);
    assert_eq!(
        app.wizard().unwrap().source_namespaces(),
        ["default", "kube-public", "shop"]
    );
    key(&mut app, KeyCode::Enter);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().classes_used,
        Load::Ready(_)
    )));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
    assert!(app.settle(LIMIT, |a| matches!(
        a.wizard().unwrap().plan,
        Some(Load::Ready(_)) | Some(Load::Failed(_))
    )));
    let (all, _) = ferry_repo::snapshot::list(&t.repo).unwrap();
    let meta = ferry_k8s::capture::CaptureMeta::of(all.last().unwrap()).unwrap();
    assert_eq!(
        meta.namespaces,
        ["default", "kube-public", "shop"],
        "tmp was left out, kube-public taken"
    );
    assert!(meta.resources.cluster);

    drop(app);
    t.rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

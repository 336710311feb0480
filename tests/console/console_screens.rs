//! Snapshot tests of the console's screens and wizard steps, drawn with ratatui's
//! `TestBackend` from state set directly (no network: background results are applied
//! as messages, and the probes the app starts are never drained).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ferry_console::app::{App, Env, Flow, Msg, NsSummary};
use ferry_console::keymap::Keymap;
use ferry_console::screens;
use ferry_console::screens::workloads::ns_data;
use ferry_console::theme::AccentRule;
use ferry_console::theme::{ColorDepth, Theme};
use ferry_k8s::mover::MoverOptions;
use ferry_providers::aks::Azure;
use ferry_providers::cloud::Clouds;
use ferry_providers::eks::Aws;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_providers::probe::{Facts, Permissions, ProbeError, StorageClassInfo};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster: {server: "https://127.0.0.1:1"}
- name: qa
  cluster: {server: "https://127.0.0.1:2"}
users:
- name: u
  user: {token: t}
contexts:
- name: prod
  context: {cluster: prod, user: u}
- name: qa
  context: {cluster: qa, user: u}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

fn facts(classes: &[(&str, bool)]) -> Facts {
    Facts {
        version: "v1.33.0".into(),
        platform: "linux/amd64".into(),
        nodes: 3,
        zones: vec![],
        storage_classes: classes
            .iter()
            .map(|(n, d)| StorageClassInfo {
                name: n.to_string(),
                provisioner: "ferry.dev/sandbox".into(),
                parameters: Default::default(),
                default: *d,
                binding_mode: "Immediate".into(),
                allow_expansion: true,
            })
            .collect(),
        permissions: Permissions {
            backup: Some(true),
            restore: Some(true),
            volume_data: Some(true),
        },
        latency_ms: 3,
    }
}

fn app_with(theme: &str, read_only: bool) -> (Fixture, App) {
    app_linking(theme, read_only, |_| {})
}

/// The app over the test kubeconfig, with `edit` applied to its environment.
fn app_linking(theme: &str, read_only: bool, edit: impl FnOnce(&mut Env)) -> (Fixture, App) {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(&kc, KUBECONFIG).unwrap();
    let mut linked = Linked::load(&Sources { paths: vec![kc] });
    for c in &mut linked.clusters {
        c.sources = vec![PathBuf::from("/home/sre/.kube/config")];
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let theme = Theme::load(Some(theme), dir.path(), ColorDepth::TrueColor)
        .unwrap()
        .with_accents(
            &[AccentRule {
                pattern: "prod".into(),
                color: "red".into(),
            }],
            ColorDepth::TrueColor,
        )
        .unwrap();
    let env = Env {
        linked,
        repo: Err(ferry_console::error::TaskError::NoRepository {
            reason: "no repository in this test".into(),
        }),
        rt: rt.handle().clone(),
        theme,
        keymap: Keymap::default_keys(),
        read_only,
        read_only_contexts: vec![],
        mover: MoverOptions::default(),
        reports: dir.path().join("reports"),
        downloads: dir.path().join("downloads"),
        clouds: Default::default(),
    };
    let mut env = env;
    edit(&mut env);
    let app = App::new(env);
    (Fixture { _dir: dir, rt }, app)
}

fn probed(app: &mut App) {
    app.apply(Msg::Probe(
        "prod".into(),
        Ok(facts(&[("fast-ssd", false), ("standard", true)])),
    ));
    app.apply(Msg::Probe(
        "qa".into(),
        Err(unavailable(
            "the server is currently unable to handle the request",
        )),
    ));
}

/// A probe the API server answered with 503 and `message`.
fn unavailable(message: &str) -> ProbeError {
    let status = kube::core::Status::failure(message, "ServiceUnavailable").with_code(503);
    ProbeError::Api(std::sync::Arc::new(kube::Error::Api(status.boxed())))
}

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| screens::draw(f, app)).unwrap();
    t
}

fn key(app: &mut App, code: KeyCode) {
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn namespace_objects() -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                              "envFrom": [{"configMapRef": {"name": "web-config"}}]}],
                                              "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}},
               "status": {"readyReplicas": 2}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"mode": "prod"}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data", "namespace": "shop"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                        "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-1"},
               "status": {"phase": "Bound"}}),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": "shop",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-x", "uid": "1", "controller": true}]},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
               "status": {"phase": "Running"}}),
    ]
}

fn in_namespace(app: &mut App) {
    probed(app);
    key(app, KeyCode::Enter);
    app.apply(Msg::Namespaces(
        "prod".into(),
        Ok(vec![
            NsSummary {
                name: "default".into(),
                status: "Active".into(),
                ..NsSummary::default()
            },
            NsSummary {
                name: "shop".into(),
                status: "Active".into(),
                pods: 1,
                workloads: 1,
                pvcs: 1,
                requested: 1 << 30,
            },
        ]),
    ));
    key(app, KeyCode::Char('j'));
    key(app, KeyCode::Enter);
    app.apply(Msg::NsObjects(
        "prod".into(),
        "shop".into(),
        Ok(ns_data(namespace_objects())),
    ));
}

#[test]
fn clusters_loading_then_probed() {
    let (_f, mut app) = app_with("dark", false);
    insta::assert_snapshot!("clusters_loading", render(&app, 100, 24).backend());
    probed(&mut app);
    insta::assert_snapshot!("clusters_probed", render(&app, 100, 24).backend());
}

/// A kubeconfig that does not parse and a cloud account that cannot be listed are rows
/// of their groups saying so; enter on one says why in full.
#[test]
fn broken_sources_are_listed_with_why() {
    use ferry_providers::kubeconfig::{BrokenSource, Origin};
    let why = "AWS profile expired: the security token included in the request is expired. Check `aws sts get-caller-identity --profile expired` (log in again with `aws sso login` or renew the keys)";
    let (_f, mut app) = app_linking("dark", false, |e| {
        let l = &mut e.linked;
        l.broken.push(BrokenSource {
            origin: Origin::Kubeconfig(PathBuf::from("/home/sre/.kube/old")),
            error: "invalid type: string \"x\", expected a sequence".into(),
        });
        l.broken.push(BrokenSource {
            origin: Origin::Cloud {
                provider: "aws".into(),
                account: "expired".into(),
                region: "eu-west-1".into(),
            },
            error: why.into(),
        });
    });
    probed(&mut app);
    insta::assert_snapshot!("clusters_broken_sources", render(&app, 120, 24).backend());
    let want = "broken aws expired eu-west-1";
    for _ in 0..app.current_rows().unwrap().len() {
        if app.selected_row().is_some_and(|r| r.key == want) {
            break;
        }
        key(&mut app, KeyCode::Down);
    }
    assert_eq!(app.selected_row().map(|r| r.key), Some(want.to_string()));
    key(&mut app, KeyCode::Enter);
    assert!(
        matches!(app.screen().view, ferry_console::app::View::Clusters),
        "enter on a broken source opens nothing"
    );
    let status = app.status().map(|s| s.1.to_string()).unwrap_or_default();
    assert_eq!(status, format!("aws expired eu-west-1: {why}"));
}

/// Cloud accounts are listed in the background: each origin is a "listing…" row until
/// it answers; then its clusters join (and are probed), or it says why it could not be
/// listed; the selection stays on its row meanwhile.
#[test]
fn cloud_origins_show_listing_until_they_answer() {
    use ferry_providers::eks::{AwsAccount, EksCluster};
    use ferry_providers::kubeconfig::{LinkedCluster, Origin};
    let account = AwsAccount {
        profile: Some("work".into()),
        regions: vec!["eu-west-1".into(), "us-east-1".into()],
        endpoint: Some("http://127.0.0.1:9".into()),
        static_credentials: None,
    };
    let acct = account.clone();
    // The test's runtime is not driven: the listing stays pending until told.
    let (_f, mut app) = app_linking("dark", false, move |e| {
        e.clouds = e
            .clouds
            .clone()
            .with(ferry_providers::eks::Aws::new(vec![acct]))
    });
    probed(&mut app);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.selected_row().map(|r| r.key), Some("qa".to_string()));
    insta::assert_snapshot!("clusters_cloud_listing", render(&app, 120, 24).backend());
    let origin = |region: &str| Origin::Cloud {
        provider: "aws".into(),
        account: "work".into(),
        region: region.into(),
    };
    let cluster = EksCluster {
        name: "shop".into(),
        region: "eu-west-1".into(),
        arn: "arn:aws:eks:eu-west-1:123456789012:cluster/shop".into(),
        status: "ACTIVE".into(),
        version: "1.31".into(),
        platform_version: "eks.9".into(),
        endpoint: "https://127.0.0.1:3".into(),
        certificate_authority: String::new(),
        tags: Default::default(),
    };
    app.apply(Msg::CloudListed(
        origin("eu-west-1"),
        Ok(vec![LinkedCluster::from_eks(&account, &cluster)]),
    ));
    app.apply(Msg::CloudListed(
        origin("us-east-1"),
        Err("AWS profile work: the security token included in the request is expired".into()),
    ));
    assert!(app.cluster("eks:work/eu-west-1/shop").is_some());
    assert_eq!(app.selected_row().map(|r| r.key), Some("qa".to_string()));
    insta::assert_snapshot!("clusters_cloud_listed", render(&app, 120, 24).backend());
}

#[test]
fn namespaces_workloads_pvcs_and_yaml() {
    let (_f, mut app) = app_with("dark", false);
    probed(&mut app);
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("namespaces_loading", render(&app, 100, 24).backend());
    in_namespace(&mut app);
    insta::assert_snapshot!("workloads", render(&app, 120, 24).backend());
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("workload_yaml", render(&app, 120, 30).backend());
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!("pvcs", render(&app, 120, 24).backend());
}

#[test]
fn filter_command_marks_and_help() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "sh");
    insta::assert_snapshot!("namespaces_filtered", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(':'));
    chars(&mut app, "ctx q");
    insta::assert_snapshot!("command_mode", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_namespaces", render(&app, 100, 36).backend());
}

#[test]
fn wizard_steps_validate_in_place() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('c'));
    app.apply(Msg::WizardClasses(
        app.wizard_generation(),
        Ok(vec!["fast-ssd".into()]),
    ));
    insta::assert_snapshot!("wizard_target", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Enter);
    chars(&mut app, "_X");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("wizard_namespaces_invalid", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("wizard_storage_classes", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    chars(&mut app, "team");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(
        "wizard_options_invalid_label",
        render(&app, 100, 24).backend()
    );
    chars(&mut app, "=qa");
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    // Back keeps what was entered.
    let w = app.wizard().unwrap();
    assert_eq!(w.ns[0].1, "shop-clone");
    assert_eq!(w.labels, "team=qa");
    assert!(!w.include_volumes);
    assert_eq!(w.sc[0], ("fast-ssd".to_string(), "fast-ssd".to_string()));
}

#[test]
fn migrate_to_an_unreachable_target_is_refused_in_place() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('m'));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("wizard_target_unreachable", render(&app, 100, 24).backend());
}

#[test]
fn narrow_terminal_and_80x24() {
    let (_f, mut app) = app_with("dark", false);
    probed(&mut app);
    insta::assert_snapshot!("too_small", render(&app, 60, 20).backend());
    insta::assert_snapshot!("clusters_80x24", render(&app, 80, 24).backend());
}

#[test]
fn read_only_shows_disabled_actions() {
    let (_f, mut app) = app_with("dark", true);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_read_only", render(&app, 100, 36).backend());
}

/// The colours of a few landmark cells: header, border, selected row.
fn colours(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let at = |x: u16, y: u16| {
        let c = &buf[(x, y)];
        format!("({x},{y}) {:?} on {:?}", c.fg, c.bg)
    };
    [at(1, 0), at(0, 1), at(3, 3), at(3, 4), at(2, 23)].join("\n")
}

#[test]
fn each_theme_and_the_prod_accent() {
    for theme in ferry_console::theme::BUILTIN {
        let (_f, mut app) = app_with(theme, false);
        in_namespace(&mut app);
        let t = render(&app, 100, 24);
        insta::assert_snapshot!(format!("theme_{theme}"), colours(&t));
    }
}

#[test]
fn job_screen_with_a_failed_restore_report() {
    use ferry_k8s::apply::{Outcome, Report};
    use ferry_k8s::objects::ObjRef;
    let (f, mut app) = app_with("dark", false);
    let _ = &f.rt;
    key(&mut app, KeyCode::Char('J'));
    insta::assert_snapshot!("jobs_empty", render(&app, 100, 24).backend());
    let (id, progress) = app.register_job("restore shop → qa", Flow::Out);
    progress.set_phase("restoring objects");
    progress.add_objects(3, 2);
    progress.log("created ConfigMap shop/web-config");
    let report = Report {
        snapshot: "abcd1234".into(),
        target_cluster: "qa".into(),
        objects: vec![Outcome {
            object: ObjRef::new("apps", "Deployment", Some("shop"), "web"),
            ok: false,
            message: "forbidden".into(),
            remedy: Some("ask for the rights".into()),
        }],
        volumes: vec![],
        bytes_restored: 0,
        duration_secs: 1.5,
        findings: vec![ferry_k8s::references::Finding {
            object: ObjRef::new("", "ConfigMap", Some("shop-qa"), "web-config"),
            path: "data.upstream".into(),
            message: "api.shop.svc names shop/api, which does not come along: the copy reaches the source".into(),
            fix: "include the Service api of shop in the job, or edit the value".into(),
        }],
    };
    let reports = f._dir.path().join("reports");
    let end = f.rt.block_on(ferry_console::tasks::save_report(
        report,
        reports.clone(),
        "qa-context".into(),
        &progress,
    ));
    app.apply(Msg::JobDone(id, end));
    let saved = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let back: Report = serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert_eq!(back.failed().len(), 1);
    let t = render(&app, 200, 40);
    let text = t.backend().to_string();
    let retry = format!(
        "retry what failed: ferry restore abcd1234 --context qa-context --retry {} --yes",
        saved[0].display()
    );
    assert!(text.contains(&retry), "{text}");
    assert!(
        text.contains(&format!("report {}", saved[0].display())),
        "{text}"
    );
    assert!(
        text.contains("isolation: 1 reference(s) still point at the source"),
        "{text}"
    );
    assert!(
        text.contains("ConfigMap/web-config data.upstream: api.shop.svc names shop/api"),
        "{text}"
    );
    assert!(
        text.contains("→ include the Service api of shop in the job"),
        "{text}"
    );
    assert_eq!(
        back.findings.len(),
        1,
        "the saved report keeps the findings"
    );
    let t = render(&app, 100, 24);
    let text = t.backend().to_string();
    assert!(text.contains("FAILED Deployment/web: forbidden"), "{text}");
    assert!(text.contains("→ ask for the rights"), "{text}");
    assert!(text.contains("created ConfigMap shop/web-config"), "{text}");
}

fn click(app: &mut App, x: u16, y: u16) {
    use crossterm::event::{Event, MouseButton, MouseEvent, MouseEventKind};
    app.input(Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    }));
}

/// Where `text` starts in a drawn frame: (column, line).
fn locate(t: &Terminal<TestBackend>, text: &str) -> (u16, u16) {
    let buf = t.backend().buffer();
    let want: Vec<String> = text.chars().map(String::from).collect();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let fits = want.iter().enumerate().all(|(i, c)| {
                let cx = x + i as u16;
                cx < buf.area.width && buf[(cx, y)].symbol() == c
            });
            if fits {
                return (x, y);
            }
        }
    }
    panic!("{text:?} is not on screen:\n{}", t.backend());
}

#[test]
fn mouse_selects_opens_and_goes_back() {
    use ferry_console::app::View;
    let (_f, mut app) = app_with("dark", false);
    probed(&mut app);
    let t = render(&app, 100, 24);
    assert_eq!(app.selected_row().unwrap().key, "prod");
    // A click on another row selects it without opening it.
    let (x, y) = locate(&t, "qa ");
    click(&mut app, x, y);
    assert_eq!(app.selected_row().unwrap().key, "qa");
    assert_eq!(app.screen().view, View::Clusters);
    // A group heading, the table header and the empty space below change nothing.
    let (gx, gy) = locate(&t, "▾ kubeconfig");
    click(&mut app, gx, gy);
    let (hx, hy) = locate(&t, "CLUSTER");
    click(&mut app, hx, hy);
    click(&mut app, 10, 12);
    assert_eq!(app.selected_row().unwrap().key, "qa");
    // Select prod, then a click on the selected row opens it.
    let (x, y) = locate(&t, "prod *");
    click(&mut app, x, y);
    assert_eq!(app.selected_row().unwrap().key, "prod");
    assert_eq!(app.screen().view, View::Clusters);
    click(&mut app, x, y);
    assert_eq!(
        app.screen().view,
        View::Namespaces {
            cluster: "prod".into()
        }
    );
    app.apply(Msg::Namespaces(
        "prod".into(),
        Ok(["default", "shop"]
            .iter()
            .map(|n| NsSummary {
                name: n.to_string(),
                status: "Active".into(),
                ..NsSummary::default()
            })
            .collect()),
    ));
    let t = render(&app, 100, 24);
    let (x, y) = locate(&t, "shop ");
    click(&mut app, x, y);
    click(&mut app, x, y);
    assert_eq!(
        app.screen().view,
        View::Workloads {
            cluster: "prod".into(),
            ns: "shop".into(),
            kind: None,
        }
    );
    // Breadcrumbs: prod goes back to the namespaces, clusters to the root.
    let t = render(&app, 100, 24);
    let (x, y) = locate(&t, "prod ›");
    click(&mut app, x + 1, y);
    assert_eq!(app.depth(), 2);
    assert_eq!(
        app.screen().view,
        View::Namespaces {
            cluster: "prod".into()
        }
    );
    assert_eq!(
        app.selected_row().unwrap().key,
        "shop",
        "the level keeps its selection"
    );
    let t = render(&app, 100, 24);
    let (x, y) = locate(&t, "clusters ›");
    click(&mut app, x, y);
    assert_eq!(app.depth(), 1);
    assert_eq!(app.screen().view, View::Clusters);
}

#[test]
fn mouse_selects_wizard_rows() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('c'));
    app.apply(Msg::WizardClasses(
        app.wizard_generation(),
        Ok(vec!["fast-ssd".into()]),
    ));
    let t = render(&app, 100, 24);
    assert_eq!(app.wizard().unwrap().target, 0);
    let (x, y) = locate(&t, "qa  unreachable");
    click(&mut app, x + 20, y);
    assert_eq!(app.wizard().unwrap().target, 1);
    // The heading above the targets is no target.
    let (x, y) = locate(&t, "Linked clusters");
    click(&mut app, x, y);
    assert_eq!(app.wizard().unwrap().target, 1);
    let (x, y) = locate(&t, "prod  v1.33");
    click(&mut app, x, y);
    assert_eq!(app.wizard().unwrap().target, 0);
    // On to the options: a click picks the row a key then changes.
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    let t = render(&app, 100, 24);
    assert_eq!(app.wizard().unwrap().opt_sel, 0);
    let (x, y) = locate(&t, "scale workloads to zero");
    click(&mut app, x, y);
    assert_eq!(app.wizard().unwrap().opt_sel, 2);
    key(&mut app, KeyCode::Char(' '));
    assert!(app.wizard().unwrap().scale_to_zero);
}

#[test]
fn p_pauses_and_resumes_the_selected_job() {
    let (_f, mut app) = app_with("dark", false);
    let (_, progress) = app.register_job("backup prod/shop", Flow::In);
    key(&mut app, KeyCode::Char('J'));
    key(&mut app, KeyCode::Char('p'));
    assert!(progress.is_paused());
    assert_eq!(app.selected_row().unwrap().cells.last().unwrap(), "paused");
    key(&mut app, KeyCode::Char('p'));
    assert!(!progress.is_paused());
    assert_eq!(app.selected_row().unwrap().cells.last().unwrap(), "running");
}

/// A click on a wizard line selects the item drawn there even when a line above it
/// wraps onto more rows than its width alone says (words move whole to the next row).
#[test]
fn wizard_clicks_after_a_wrapped_line_hit_the_row_drawn() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('c'));
    // prod's line: "› prod  unreachable: " then four 40-letter words, each on its own
    // row at this width (4 rows where its 185 columns alone would take 3).
    let word = |c: char| std::iter::repeat_n(c, 40).collect::<String>();
    let long = format!("{} {} {} {}", word('a'), word('b'), word('c'), word('d'));
    app.apply(Msg::Probe("prod".into(), Err(unavailable(&long))));
    let t = render(&app, 80, 24);
    assert_eq!(app.wizard().unwrap().target, 0);
    let (_, last_of_prod) = locate(&t, &word('d'));
    let (qx, qy) = locate(&t, "qa  unreachable");
    assert_eq!(qy, last_of_prod + 1, "{}", t.backend());
    click(&mut app, qx + 4, qy);
    assert_eq!(app.wizard().unwrap().target, 1, "the click on qa's row");
    // Every row of the wrapped line is prod's.
    let (_, first_of_prod) = locate(&t, "prod  unreachable");
    for y in [first_of_prod, last_of_prod] {
        click(&mut app, 10, qy);
        assert_eq!(app.wizard().unwrap().target, 1);
        click(&mut app, 10, y);
        assert_eq!(app.wizard().unwrap().target, 0, "row {y}");
    }
    insta::assert_snapshot!("wizard_target_wrapped", t.backend());
}

/// A folder backup's snapshot record (its tree is never read here).
fn folder_snapshot() -> ferry_repo::snapshot::Snapshot {
    let v = json!({
        "version": 2, "time": "2026-01-02T03:04:05Z", "host": "laptop", "username": "sre",
        "paths": ["/home/sre/site"], "tree": "00".repeat(32), "program": "ferry 0.1.0",
    });
    let mut s: ferry_repo::snapshot::Snapshot = serde_json::from_value(v).unwrap();
    s.id = "ab".repeat(32).parse().unwrap();
    s
}

fn node(name: &str, kind: &str, mode: u32, size: u64) -> ferry_repo::tree::Node {
    serde_json::from_value(json!({
        "name": name, "type": kind, "mode": mode, "uid": 1000, "gid": 1000,
        "mtime_ns": 1_767_323_045_000_000_000i64, "ctime_ns": 0, "inode": 1, "device": 1,
        "links": 1, "size": size,
    }))
    .unwrap()
}

#[test]
fn folder_backup_files_and_the_restore_prompt() {
    use ferry_console::app::View;
    let (_f, mut app) = app_with("dark", false);
    probed(&mut app);
    key(&mut app, KeyCode::Char('S'));
    let snap = folder_snapshot();
    let id = snap.id.to_hex();
    app.apply(Msg::Snapshots(Ok(vec![snap])));
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Files {
            id: id.clone(),
            base: String::new(),
            path: String::new()
        }
    );
    let mut link = node("current", "symlink", 0o777, 0);
    link.target = Some(ferry_repo::tree::Name(b"releases/v2".to_vec()));
    app.apply(Msg::SnapshotDir(
        id.clone(),
        String::new(),
        Ok(vec![
            node("index.html", "file", 0o644, 12_345),
            node("releases", "dir", 0o755, 0),
            link,
            node("deploy.sh", "file", 0o750, 2_000_000),
        ]),
    ));
    insta::assert_snapshot!("files_folder_backup", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Char('k'));
    key(&mut app, KeyCode::Char('d'));
    // Pre-filled with the downloads folder; typing edits it.
    let p = app.prompt().unwrap();
    assert_eq!(
        p.dest,
        _f._dir.path().join("downloads").display().to_string()
    );
    assert_eq!((p.path.as_str(), p.what), ("deploy.sh", "file"));
    for _ in 0..p.dest.chars().count() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, "/srv/restore");
    insta::assert_snapshot!("files_restore_prompt", render(&app, 100, 24).backend());
    key(&mut app, KeyCode::Esc);
    assert!(app.prompt().is_none());
    assert!(app.jobs().is_empty());
    // Help lists the key.
    key(&mut app, KeyCode::Char('?'));
    let text = render(&app, 100, 36).backend().to_string();
    assert!(
        text.contains("restore the file or folder to this machine"),
        "{text}"
    );
}

/// The loop the binary runs, on a test backend: it draws the first frame before any
/// probe answers and returns when the app quits.
#[test]
fn the_binary_loop_draws_then_quits() {
    use crossterm::event::Event;
    let (_f, mut app) = app_with("dark", false);
    let tx = app.sender();
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let mut frames = Vec::new();
    ferry_console::event::run_loop(&mut terminal, &mut app, &mut |t, a| {
        if frames.is_empty() {
            assert!(a.probing());
            tx.send(Msg::Input(Event::Key(KeyEvent::new(
                KeyCode::Char('q'),
                KeyModifiers::NONE,
            ))))
            .unwrap();
        }
        frames.push(t.backend().to_string());
    })
    .unwrap();
    assert!(app.quitting());
    assert!(frames[0].contains("CLUSTER"), "{}", frames[0]);
}

/// A capture's snapshot record with the given source and claims' class (its tree is
/// never read here).
fn capture_snapshot() -> ferry_repo::snapshot::Snapshot {
    let mut s = folder_snapshot();
    s.paths = vec!["k8s://prod/shop".into()];
    s.meta.insert(
        "kubernetes".into(),
        json!({
            "cluster": "prod", "serverVersion": "v1.31.4", "scope": {"namespaces": ["shop"]},
            "namespaces": ["shop"], "storageClasses": [], "objects": 12,
            "volumes": [{"namespace": "shop", "pvc": "data", "storageClass": "fast-ssd",
                         "consistency": "snapshot", "files": 3, "bytes": 4096, "filesTransferred": 3}],
        }),
    );
    s
}

#[test]
fn the_restore_wizard_offers_a_new_eks_cluster_with_its_form() {
    use ferry_console::wizard_state::Step;
    let (f, _) = app_with("dark", false);
    let mut env_app = {
        // The same console with an AWS account linked.
        let dir = f._dir.path();
        let kc = dir.join("config");
        let linked = Linked::load(&Sources { paths: vec![kc] });
        App::new(Env {
            linked,
            repo: Err(ferry_console::error::TaskError::NoRepository {
                reason: "no repository in this test".into(),
            }),
            rt: f.rt.handle().clone(),
            theme: Theme::builtin("dark"),
            keymap: Keymap::default_keys(),
            read_only: false,
            read_only_contexts: vec![],
            mover: MoverOptions::default(),
            reports: dir.join("reports"),
            downloads: dir.join("downloads"),
            clouds: Clouds::default().with(Aws::new(vec![ferry_providers::eks::AwsAccount {
                profile: Some("work".into()),
                regions: vec!["eu-west-1".into(), "us-east-1".into()],
                ..Default::default()
            }])),
        })
    };
    let app = &mut env_app;
    probed(app);
    key(app, KeyCode::Char('S'));
    app.apply(Msg::Snapshots(Ok(vec![capture_snapshot()])));
    key(app, KeyCode::Char('r'));
    // prod is the source: the first other target is qa.
    key(app, KeyCode::Down);
    insta::assert_snapshot!("wizard_new_eks_target", render(app, 100, 24).backend());
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Cluster);
    key(app, KeyCode::Right);
    key(app, KeyCode::Down);
    key(app, KeyCode::Down);
    key(app, KeyCode::Backspace);
    chars(app, "0");
    key(app, KeyCode::Enter);
    insta::assert_snapshot!(
        "wizard_new_eks_form_invalid",
        render(app, 100, 24).backend()
    );
    let w = app.wizard().unwrap();
    assert!(
        w.error.as_ref().unwrap().contains("older than the source"),
        "{:?}",
        w.error
    );
    key(app, KeyCode::Backspace);
    chars(app, "1");
    for (row, text) in [
        (3, "arn:aws:iam::123456789012:role/eks"),
        (4, "subnet-a,subnet-b"),
        (5, "arn:aws:iam::123456789012:role/node"),
    ] {
        app.pick(row);
        chars(app, text);
    }
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.sc, [("fast-ssd".to_string(), "gp3".to_string())]);
    key(app, KeyCode::Enter);
    key(app, KeyCode::Enter);
    insta::assert_snapshot!("wizard_new_eks_plan", render(app, 100, 30).backend());
}

#[test]
fn the_restore_wizard_offers_a_new_aks_cluster_with_its_form() {
    use ferry_console::wizard_state::Step;
    let (f, _) = app_with("dark", false);
    let mut env_app = {
        // The same console with an AWS account and two Azure subscriptions linked.
        let dir = f._dir.path();
        let kc = dir.join("config");
        let linked = Linked::load(&Sources { paths: vec![kc] });
        let sub = |id: &str, name: &str| ferry_providers::aks::AzureSubscription {
            id: id.into(),
            name: Some(name.into()),
            ..Default::default()
        };
        App::new(Env {
            linked,
            repo: Err(ferry_console::error::TaskError::NoRepository {
                reason: "no repository in this test".into(),
            }),
            rt: f.rt.handle().clone(),
            theme: Theme::builtin("dark"),
            keymap: Keymap::default_keys(),
            read_only: false,
            read_only_contexts: vec![],
            mover: MoverOptions::default(),
            reports: dir.join("reports"),
            downloads: dir.join("downloads"),
            clouds: Clouds::default()
                .with(Aws::new(vec![ferry_providers::eks::AwsAccount {
                    profile: Some("work".into()),
                    regions: vec!["eu-west-1".into()],
                    ..Default::default()
                }]))
                .with(Azure::new(vec![
                    sub("00000000-0000-4000-8000-000000000001", "prod"),
                    sub("00000000-0000-4000-8000-000000000002", "lab"),
                ])),
        })
    };
    let app = &mut env_app;
    probed(app);
    key(app, KeyCode::Char('S'));
    app.apply(Msg::Snapshots(Ok(vec![capture_snapshot()])));
    key(app, KeyCode::Char('r'));
    // qa, then the new EKS cluster, then the new AKS cluster.
    key(app, KeyCode::Down);
    key(app, KeyCode::Down);
    insta::assert_snapshot!("wizard_new_aks_target", render(app, 100, 24).backend());
    assert_eq!(app.wizard().unwrap().target_name(), "new AKS cluster…");
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Cluster);
    // The second subscription, then a version older than the source's.
    key(app, KeyCode::Right);
    app.pick(4);
    key(app, KeyCode::Backspace);
    chars(app, "0");
    key(app, KeyCode::Enter);
    insta::assert_snapshot!(
        "wizard_new_aks_form_invalid",
        render(app, 100, 24).backend()
    );
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Cluster);
    assert!(
        w.error.as_ref().unwrap().contains("older than the source"),
        "{:?}",
        w.error
    );
    key(app, KeyCode::Backspace);
    chars(app, "1");
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.sc, [("fast-ssd".to_string(), "managed-csi".to_string())]);
    key(app, KeyCode::Enter);
    key(app, KeyCode::Enter);
    insta::assert_snapshot!("wizard_new_aks_plan", render(app, 100, 30).backend());
}

/// The console of [`app_with`] with an AWS account and an Azure subscription linked.
fn app_with_clouds(f: &Fixture) -> App {
    let dir = f._dir.path();
    let linked = Linked::load(&Sources {
        paths: vec![dir.join("config")],
    });
    App::new(Env {
        linked,
        repo: Err(ferry_console::error::TaskError::NoRepository {
            reason: "no repository in this test".into(),
        }),
        rt: f.rt.handle().clone(),
        theme: Theme::builtin("dark"),
        keymap: Keymap::default_keys(),
        read_only: false,
        read_only_contexts: vec![],
        mover: MoverOptions::default(),
        reports: dir.join("reports"),
        downloads: dir.join("downloads"),
        clouds: Clouds::default()
            .with(Aws::new(vec![ferry_providers::eks::AwsAccount {
                profile: Some("work".into()),
                regions: vec!["eu-west-1".into(), "us-east-1".into()],
                ..Default::default()
            }]))
            .with(Azure::new(vec![ferry_providers::aks::AzureSubscription {
                id: "00000000-0000-4000-8000-000000000001".into(),
                name: Some("prod".into()),
                ..Default::default()
            }])),
    })
}

/// A form the user edits before the source's version is known still gets that version
/// as its floor when the probe answers: an older version is refused in place.
#[test]
fn an_edited_form_still_gets_the_sources_version_as_its_floor() {
    use ferry_console::wizard_state::Step;
    let (f, _) = app_with("dark", false);
    let mut app = app_with_clouds(&f);
    let app = &mut app;
    // Into prod's shop before any probe answered.
    key(app, KeyCode::Enter);
    app.apply(Msg::Namespaces(
        "prod".into(),
        Ok(vec![NsSummary {
            name: "shop".into(),
            status: "Active".into(),
            ..NsSummary::default()
        }]),
    ));
    key(app, KeyCode::Enter);
    app.apply(Msg::NsObjects(
        "prod".into(),
        "shop".into(),
        Ok(ns_data(namespace_objects())),
    ));
    key(app, KeyCode::Esc);
    key(app, KeyCode::Char('m'));
    let at = app
        .wizard()
        .expect("the migrate wizard opens")
        .targets
        .iter()
        .position(|t| t.name == "new EKS cluster…")
        .unwrap();
    app.pick(at);
    key(app, KeyCode::Enter);
    let form = |app: &App| app.wizard().unwrap().creating().unwrap().rows();
    assert_eq!(form(app)[2].1, "", "no version known yet");
    // The user types the rest before the probe answers.
    app.pick(2);
    chars(app, "1.20");
    app.apply(Msg::Probe("prod".into(), Ok(facts(&[("standard", true)]))));
    assert_eq!(form(app)[2].1, "1.20", "what the user typed stays");
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Cluster);
    let e = w.error.clone().unwrap_or_default();
    assert!(e.contains("older than the source"), "{e}");
}

/// An EKS cluster's envelope as `eks::envelope` records it.
fn eks_envelope(subnets: &[&str]) -> serde_json::Value {
    json!({
        "kind": "eks", "name": "shop-prod", "region": "us-east-1", "version": "1.32",
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "networking": {"subnetIds": subnets, "endpointPublicAccess": true},
        "tags": {"team": "shop"},
        "nodegroups": [{"name": "web", "instanceTypes": ["c7i.xlarge"],
                        "scaling": {"min": 2, "max": 6, "desired": 3},
                        "nodeRole": "arn:aws:iam::123456789012:role/node"}],
        "addons": [{"name": "vpc-cni"}],
    })
}

/// The migrate wizard of a live namespace with clouds linked: the target step offers a
/// new EKS and a new AKS cluster after the linked ones (the default stays the first
/// other linked cluster); the EKS form starts from defaults and the source's probed
/// version, takes the source's envelope when it arrives unless the user edited the
/// form, and the plan step says what will happen without capturing anything.
#[test]
fn the_migrate_wizard_offers_new_clusters_and_plans_their_creation() {
    use ferry_console::wizard_state::{Step, TargetKind};
    let (f, _) = app_with("dark", false);
    let mut app = app_with_clouds(&f);
    let app = &mut app;
    in_namespace(app);
    key(app, KeyCode::Esc);
    key(app, KeyCode::Char('m'));
    let generation = app.wizard_generation();
    app.apply(Msg::WizardClasses(generation, Ok(vec!["fast-ssd".into()])));
    let w = app.wizard().expect("the migrate wizard opens");
    let kinds: Vec<(&str, &TargetKind)> = w
        .targets
        .iter()
        .map(|t| (t.name.as_str(), &t.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("prod", &TargetKind::Linked),
            ("qa", &TargetKind::Linked),
            ("new EKS cluster…", &TargetKind::New),
            ("new AKS cluster…", &TargetKind::New),
        ]
    );
    assert_eq!(w.target_name(), "qa", "the first other linked cluster");
    key(app, KeyCode::Down);
    insta::assert_snapshot!("wizard_migrate_new_targets", render(app, 100, 24).backend());
    key(app, KeyCode::Enter);
    let rows = |app: &App| app.wizard().unwrap().creating().unwrap().rows();
    // prod is a plain context: defaults, with the version it was probed at.
    let before = rows(app);
    assert_eq!(before[1].1, "ferry-migrate");
    assert_eq!(before[2].1, "1.33");
    assert_eq!(before[4].1, "");
    assert_eq!(before[6].1, "m6i.large");

    // An envelope for another wizard is dropped; this wizard's fills the untouched form.
    app.apply(Msg::WizardEnvelope(
        generation - 1,
        Ok(Some(eks_envelope(&["subnet-old"]))),
    ));
    assert_eq!(rows(app), before);
    app.apply(Msg::WizardEnvelope(
        generation,
        Ok(Some(eks_envelope(&["subnet-a", "subnet-b"]))),
    ));
    let filled = rows(app);
    assert_eq!(filled[1].1, "shop-prod-migrate");
    assert_eq!(filled[2].1, "1.32");
    assert_eq!(filled[4].1, "subnet-a,subnet-b");
    assert_eq!(filled[5].1, "arn:aws:iam::123456789012:role/node");
    assert_eq!(filled[6].1, "c7i.xlarge");
    assert_eq!(
        (
            filled[7].1.as_str(),
            filled[8].1.as_str(),
            filled[9].1.as_str()
        ),
        ("2", "6", "3")
    );
    // Once edited, a form stays as typed.
    app.pick(1);
    chars(app, "d");
    app.apply(Msg::WizardEnvelope(
        generation,
        Ok(Some(eks_envelope(&["subnet-x", "subnet-y"]))),
    ));
    let kept = rows(app);
    assert_eq!(kept[1].1, "shop-prod-migrated");
    assert_eq!(kept[4].1, "subnet-a,subnet-b");

    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    // Past the form, an envelope changes none (the AKS form was never edited).
    let mut late = eks_envelope(&["subnet-x"]);
    late["name"] = json!("late");
    app.apply(Msg::WizardEnvelope(generation, Ok(Some(late))));
    let names: Vec<&str> = app
        .wizard()
        .unwrap()
        .new_clusters
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(names, ["shop-prod-migrated", "shop-prod-migrate"]);
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::StorageClasses);
    assert_eq!(w.sc, [("fast-ssd".to_string(), "gp3".to_string())]);
    key(app, KeyCode::Enter);
    key(app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Plan);
    assert!(w.plan.is_none() && w.capture_job.is_none());
    assert!(
        app.jobs().is_empty(),
        "nothing is captured before confirmation"
    );
    insta::assert_snapshot!(
        "wizard_migrate_new_eks_plan",
        render(app, 100, 30).backend()
    );
    // The plan scrolls within its rows: never past the last, g and G go to the ends.
    render(app, 80, 24);
    let (rows, shown) = app.wizard().unwrap().plan_rows.get();
    assert!(rows > 0 && shown > 0, "{rows} rows, {shown} shown");
    for _ in 0..rows + 10 {
        key(app, KeyCode::Down);
    }
    let last = u16::try_from(rows.saturating_sub(shown)).unwrap();
    assert_eq!(app.wizard().unwrap().plan_scroll, last);
    // A long plan, as a frame of 15 rows would have drawn it.
    app.wizard().unwrap().plan_rows.set((50, 15));
    key(app, KeyCode::Char('G'));
    assert_eq!(app.wizard().unwrap().plan_scroll, 35);
    key(app, KeyCode::PageDown);
    key(app, KeyCode::Down);
    assert_eq!(app.wizard().unwrap().plan_scroll, 35);
    key(app, KeyCode::PageUp);
    assert_eq!(app.wizard().unwrap().plan_scroll, 21);
    key(app, KeyCode::Char('g'));
    assert_eq!(app.wizard().unwrap().plan_scroll, 0);
    key(app, KeyCode::End);
    assert_eq!(app.wizard().unwrap().plan_scroll, 35);
    key(app, KeyCode::Home);
}

/// `:po`, `:deploy`, `:sts` and `:ds` list a namespace's pods and its workloads of one
/// kind, as k9s does; `y` works there too.
#[test]
fn resource_views_of_a_namespace() {
    use ferry_console::app::View;
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    let mut objects = namespace_objects();
    objects.push(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}},
        "status": {"readyReplicas": 1}}));
    objects.push(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "shop",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "2", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "db", "image": "postgres:16"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "db", "ready": false, "restartCount": 7,
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}));
    app.apply(Msg::NsObjects(
        "prod".into(),
        "shop".into(),
        Ok(ns_data(objects)),
    ));
    app.command("po");
    assert_eq!(
        app.screen().view,
        View::Pods {
            cluster: "prod".into(),
            ns: "shop".into()
        }
    );
    let rows = app
        .rows(&app.screen().view)
        .into_ready()
        .unwrap()
        .into_owned();
    let db = rows.iter().find(|r| r.key == "Pod/db-0").unwrap();
    assert_eq!(
        db.cells[..6],
        ["db-0", "0/1", "CrashLoopBackOff", "7", "node-1", "-"]
    );
    assert_eq!(db.cells[6], "StatefulSet/db");
    insta::assert_snapshot!("pods", render(&app, 100, 24).backend());
    assert!(app.select_key("Pod/db-0"));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(app.yaml_view().unwrap().title, "Pod shop/db-0");
    key(&mut app, KeyCode::Esc);
    let shown = |app: &App| -> Vec<ferry_console::app::Row> {
        app.rows(&app.screen().view)
            .into_ready()
            .unwrap()
            .into_owned()
    };
    let keys = |rows: &[ferry_console::app::Row]| -> Vec<String> {
        rows.iter().map(|r| r.key.clone()).collect()
    };
    app.command("sts");
    let rows = shown(&app);
    assert_eq!(keys(&rows), ["StatefulSet/db"]);
    assert_eq!(rows[0].cells[2], "1/3");
    app.command("deploy shop");
    assert_eq!(keys(&shown(&app)), ["Deployment/web"]);
    let text = render(&app, 100, 24).backend().to_string();
    assert!(text.contains("shop (deployments)"), "{text}");
    app.command("ds");
    assert!(shown(&app).is_empty(), "no DaemonSet here");
}

/// Shift + a column's first letter sorts by it (again: the other way), `>` by the next
/// column; the selection stays on its row; the header says which way.
#[test]
fn lists_sort_by_a_column() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Esc);
    let order = |app: &App| -> Vec<String> {
        app.rows(&app.screen().view)
            .into_ready()
            .unwrap()
            .iter()
            .map(|r| r.key.clone())
            .collect()
    };
    assert_eq!(order(&app), ["default", "shop"]);
    assert_eq!(app.selected_row().unwrap().key, "shop");
    key(&mut app, KeyCode::Char('W'));
    assert_eq!(order(&app), ["default", "shop"], "workloads, ascending");
    key(&mut app, KeyCode::Char('W'));
    assert_eq!(order(&app), ["shop", "default"], "again: descending");
    assert_eq!(
        app.selected_row().unwrap().key,
        "shop",
        "the selection follows"
    );
    let text = render(&app, 100, 24).backend().to_string();
    assert!(text.contains("WORKLOADS↓"), "{text}");
    // `>`: the next column, PODS, ascending.
    key(&mut app, KeyCode::Char('>'));
    assert_eq!(app.sorting().unwrap().column, 3);
    assert_eq!(order(&app), ["default", "shop"]);
    // A letter no column starts with says so.
    key(&mut app, KeyCode::Char('Z'));
    assert!(
        app.status()
            .unwrap()
            .1
            .contains("no column here starts with Z")
    );
}

/// `y` shows the selected object's YAML full screen: `/` searches it, `m` adds the field
/// managers, esc goes back to the list where it was.
#[test]
fn yaml_full_screen_with_search() {
    let (_f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('y'));
    let v = app.yaml_view().expect("y opens the YAML");
    assert_eq!(v.title, "Deployment shop/web");
    insta::assert_snapshot!("yaml_view", render(&app, 80, 24).backend());
    chars(&mut app, "/config");
    assert_eq!(app.yaml_view().unwrap().typing.as_deref(), Some("config"));
    key(&mut app, KeyCode::Enter);
    let v = app.yaml_view().unwrap();
    assert_eq!(v.term, "config");
    assert_eq!(v.matches.len(), 2, "{:?}", v.lines);
    insta::assert_snapshot!("yaml_view_search", render(&app, 80, 24).backend());
    key(&mut app, KeyCode::Esc);
    assert!(app.yaml_view().is_none());
    assert_eq!(app.selected_row().unwrap().key, "Deployment/web");
    // D describes it: its state, and what a backup or clone of it takes along.
    key(&mut app, KeyCode::Char('D'));
    let v = app.yaml_view().expect("D describes the object");
    assert_eq!(v.title, "describe Deployment shop/web");
    let text = v.lines.join("\n");
    assert!(text.contains("Replicas:     2 desired · 2 ready"), "{text}");
    assert!(text.contains("Moves with it (2):"), "{text}");
    assert!(text.contains("  ConfigMap/web-config ("), "{text}");
    insta::assert_snapshot!("describe_view", render(&app, 80, 24).backend());
    // m (field managers) is for YAML only.
    key(&mut app, KeyCode::Char('m'));
    assert!(!app.yaml_view().unwrap().managed);
    key(&mut app, KeyCode::Char('D'));
    assert!(app.yaml_view().is_none(), "D again closes it");
    key(&mut app, KeyCode::Char('?'));
    let text = render(&app, 100, 40).backend().to_string();
    assert!(text.contains("the object's YAML, full screen"), "{text}");
    assert!(text.contains("describe it"), "{text}");
}

/// The job clocks (`took 0.1s`, `0.0s elapsed`) depend on the machine's speed: they are
/// replaced by `[t]` before a snapshot is compared.
fn without_clocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let words: Vec<&str> = text.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let after_took = i > 0 && words[i - 1].ends_with("took");
        let before_elapsed = words.get(i + 1).is_some_and(|n| n.starts_with("elapsed"));
        let clock = w.chars().next().is_some_and(|c| c.is_ascii_digit())
            && w.trim_end_matches(',').ends_with(['s', 'm']);
        if clock && (after_took || before_elapsed) {
            out.push_str("[t]");
            out.push_str(&" ".repeat(w.chars().count().saturating_sub(3)));
        } else {
            out.push_str(w);
        }
    }
    out
}

/// An audit record at a fixed time, user and host.
fn audit_record(
    action: ferry_policy::Action,
    from: &str,
    to: Option<&str>,
    outcome: ferry_policy::audit::Outcome,
    minute: u32,
) -> ferry_policy::audit::AuditRecord {
    use chrono::TimeZone as _;
    let mut r = ferry_policy::audit::AuditRecord::new(action);
    r.id = format!("2026-12-05T10-{minute:02}-00Z-0000");
    r.time = chrono::Utc
        .with_ymd_and_hms(2026, 12, 5, 10, minute, 0)
        .unwrap();
    r.local_user = "sre".into();
    r.host = "laptop".into();
    r.from = Some(from.into());
    r.to = to.map(str::to_string);
    let denied = outcome == ferry_policy::audit::Outcome::Denied;
    r.allowed = !denied;
    r.policy_seq = Some(3);
    r.rule = Some(if denied { 3 } else { 2 });
    r.reason = if denied {
        "nothing moves from qa into prod".into()
    } else {
        "developers may clone prod into qa".into()
    };
    r.outcome = outcome;
    r.bytes = if denied { 0 } else { 3 << 20 };
    r
}

/// Every screen at 80x24 (identifying columns keep their content, the least important
/// go first), 120x40 and 200x60 (lists use the height).
#[test]
fn every_screen_at_80x24_120x40_and_200x60() {
    use ferry_console::app::View;
    use ferry_policy::Action;
    use ferry_policy::audit::Outcome;
    let (_f, mut app) = app_with("dark", false);
    let mut shots: Vec<(&str, String)> = Vec::new();
    let sizes = [(80, 24), (120, 40), (200, 60)];
    let mut shoot = |name: &'static str, app: &App| {
        for (w, h) in sizes {
            let text = without_clocks(&format!("{}", render(app, w, h).backend()));
            shots.push((name, format!("{w}x{h}")));
            insta::assert_snapshot!(format!("screen_{name}_{w}x{h}"), text);
        }
    };
    probed(&mut app);
    shoot("clusters", &app);
    in_namespace(&mut app);
    shoot("workloads", &app);
    key(&mut app, KeyCode::Tab);
    assert!(matches!(app.screen().view, View::Pvcs { .. }));
    shoot("pvcs", &app);
    for _ in 0..3 {
        if !matches!(app.screen().view, View::Namespaces { .. }) {
            key(&mut app, KeyCode::Esc);
        }
    }
    assert!(matches!(app.screen().view, View::Namespaces { .. }));
    shoot("namespaces", &app);

    // Snapshots: a folder backup and a capture; the capture's objects.
    key(&mut app, KeyCode::Char('S'));
    let folder = folder_snapshot();
    let mut capture = capture_snapshot();
    capture.id = "cd".repeat(32).parse().unwrap();
    capture.time = "2026-12-05T09:30:00Z".parse().unwrap();
    let capture_id = capture.id.to_hex();
    app.apply(Msg::Snapshots(Ok(vec![folder, capture])));
    shoot("snapshots", &app);
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.screen().view, View::Files { .. }));
    app.apply(Msg::SnapshotDir(
        "ab".repeat(32),
        String::new(),
        Ok(vec![
            node("index.html", "file", 0o644, 12_345),
            node("releases", "dir", 0o755, 0),
            node(
                "a file with a name much longer than the column gives it.tar.gz",
                "file",
                0o600,
                7 << 30,
            ),
        ]),
    ));
    shoot("files", &app);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.screen().view,
        View::Snapshot {
            id: capture_id.clone()
        }
    );
    app.apply(Msg::SnapshotObjects(capture_id, Ok(namespace_objects())));
    shoot("snapshot", &app);

    // Jobs: a backup reading its second volume, a finished restore.
    let (id, restore) = app.register_job("restore shop → qa/shop-qa", Flow::Out);
    restore.add_objects(12, 12);
    restore.data.add_total(40, 4 << 20);
    restore.data.set_totals_final();
    restore.data.add_done(40, 4 << 20);
    app.apply(Msg::JobDone(
        id,
        ferry_console::app::JobEnd::Restored {
            report: ferry_k8s::apply::Report {
                snapshot: "cdcdcdcd".into(),
                target_cluster: "qa".into(),
                bytes_restored: 4 << 20,
                duration_secs: 2.0,
                ..Default::default()
            },
            saved: Ok("/home/sre/.local/state/ferry/reports/qa-cdcdcdcd.json".into()),
            context: "qa".into(),
        },
    ));
    let (_, backup) = app.register_job("backup prod/shop,payments", Flow::In);
    backup.set_phase("reading volumes");
    backup.add_objects(30, 30);
    backup.volume("shop", "data", |v| {
        v.state = "done".into();
        (v.files, v.files_total, v.bytes, v.bytes_total) = (90, 90, 1 << 30, 1 << 30);
    });
    backup.data.add_total(120, 3 << 30);
    backup.volume("payments", "ledger", |v| {
        v.state = "reading".into();
        (v.files_total, v.bytes_total) = (30, 2 << 30);
    });
    backup.volume_streaming("payments", "ledger", 0, 0);
    backup.data.add_done(10, 512 << 20);
    key(&mut app, KeyCode::Char('J'));
    shoot("jobs", &app);

    // The audit trail.
    key(&mut app, KeyCode::Char(':'));
    chars(&mut app, "audit");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen().view, View::Audit);
    app.apply(Msg::Audit(Ok((
        vec![
            audit_record(Action::Backup, "prod/shop", None, Outcome::Succeeded, 1),
            audit_record(
                Action::Clone,
                "prod/shop",
                Some("qa/shop-qa"),
                Outcome::Cancelled,
                7,
            ),
            audit_record(
                Action::Migrate,
                "qa/shop",
                Some("prod/shop"),
                Outcome::Denied,
                9,
            ),
        ],
        vec![],
    ))));
    shoot("audit", &app);

    key(&mut app, KeyCode::Char('?'));
    shoot("help", &app);
    assert_eq!(shots.len(), 3 * 10, "{shots:?}");
}

/// Every step of the wizards at 80x24, 120x40 and 200x60: the clone wizard's target,
/// namespaces, storage classes and options; the migrate wizard's new EKS cluster form
/// and the plan of its creation.
#[test]
fn wizard_steps_at_80x24_120x40_and_200x60() {
    use ferry_console::wizard_state::Step;
    let shoot = |name: &str, app: &App| {
        for (w, h) in [(80, 24), (120, 40), (200, 60)] {
            insta::assert_snapshot!(
                format!("wizard_{name}_{w}x{h}"),
                render(app, w, h).backend()
            );
        }
    };
    let (f, _) = app_with("dark", false);
    let mut app = app_with_clouds(&f);
    let app = &mut app;
    in_namespace(app);
    key(app, KeyCode::Char('c'));
    app.apply(Msg::WizardClasses(
        app.wizard_generation(),
        Ok(vec!["fast-ssd".into(), "standard".into()]),
    ));
    shoot("clone_target", app);
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Namespaces);
    shoot("clone_namespaces", app);
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::StorageClasses);
    shoot("clone_storage_classes", app);
    key(app, KeyCode::Enter);
    assert_eq!(app.wizard().unwrap().step, Step::Options);
    shoot("clone_options", app);
    app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.wizard().is_none());

    key(app, KeyCode::Esc);
    key(app, KeyCode::Char('m'));
    app.apply(Msg::WizardClasses(
        app.wizard_generation(),
        Ok(vec!["fast-ssd".into()]),
    ));
    key(app, KeyCode::Down);
    key(app, KeyCode::Enter);
    assert!(app.wizard().unwrap().creating().is_some());
    app.apply(Msg::WizardEnvelope(
        app.wizard_generation(),
        Ok(Some(eks_envelope(&["subnet-a", "subnet-b"]))),
    ));
    shoot("new_eks_form", app);
    for _ in 0..4 {
        key(app, KeyCode::Enter);
    }
    assert_eq!(app.wizard().unwrap().step, Step::Plan);
    shoot("new_eks_plan", app);
}

/// A Velero resource modifiers file on the options step: one that cannot be read or
/// does not parse keeps the wizard there, saying why (the rule and its line); a good
/// one goes into the plan's options.
#[test]
fn the_options_step_takes_a_resource_modifiers_file() {
    use ferry_console::wizard_state::{MODIFIERS_ROW, Step};
    let (f, mut app) = app_with("dark", false);
    in_namespace(&mut app);
    key(&mut app, KeyCode::Char('c'));
    app.apply(Msg::WizardClasses(
        app.wizard_generation(),
        Ok(vec!["fast-ssd".into()]),
    ));
    for _ in 0..3 {
        key(&mut app, KeyCode::Enter);
    }
    assert_eq!(app.wizard().unwrap().step, Step::Options);
    for _ in 0..MODIFIERS_ROW {
        key(&mut app, KeyCode::Down);
    }
    let dir = f._dir.path();
    let missing = dir.join("nope.yaml");
    chars(&mut app, missing.to_str().unwrap());
    key(&mut app, KeyCode::Enter);
    let w = app.wizard().unwrap();
    assert_eq!(w.step, Step::Options);
    assert!(
        w.error
            .as_deref()
            .unwrap_or("")
            .contains("cannot read the resource modifiers file"),
        "{:?}",
        w.error
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: deployments.apps\n  patches:\n  - operation: frobnicate\n    path: /spec/replicas\n    value: \"0\"\n",
    )
    .unwrap();
    for _ in 0..missing.to_str().unwrap().len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, bad.to_str().unwrap());
    key(&mut app, KeyCode::Enter);
    let e = app.wizard().unwrap().error.clone().unwrap_or_default();
    assert!(e.contains("rule 1 (line 3)"), "{e}");
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: deployments.apps\n  patches:\n  - operation: replace\n    path: /spec/replicas\n    value: \"0\"\n",
    )
    .unwrap();
    for _ in 0..bad.to_str().unwrap().len() {
        key(&mut app, KeyCode::Backspace);
    }
    chars(&mut app, good.to_str().unwrap());
    let w = app.wizard().unwrap();
    assert!(w.modifiers().unwrap().is_some());
    let opts = w.restore_options(&Default::default());
    assert!(opts.modifiers.is_some(), "the plan gets the rules");
}

/// `b` on a cluster: every namespace with a tick (the system and add-on ones unticked),
/// moved through with the keys and the mouse, at 80x24 and 120x40; enter with nothing
/// ticked says so and stays.
#[test]
fn the_whole_cluster_backup_ticks_its_namespaces() {
    use ferry_console::whole::{Listed, Whole};
    let (_f, mut app) = app_with("dark", false);
    probed(&mut app);
    let mut taken: Vec<String> = ["default", "shop", "payments", "search"]
        .map(String::from)
        .to_vec();
    taken.extend((0..12).map(|i| format!("team-{i:02}")));
    let left_out = ["kube-system", "kube-public", "cert-manager"].map(String::from);
    app.apply(Msg::WholeCluster(
        "prod".into(),
        Whole::Backup,
        Ok(Listed {
            taken: taken.clone(),
            left_out: left_out.to_vec(),
        }),
    ));
    let pick = app.picking().expect("the pick is open");
    assert_eq!(pick.items.len(), 19);
    assert_eq!(pick.ticked().len(), 16, "system ones start unticked");
    insta::assert_snapshot!("whole_backup_pick_80x24", render(&app, 80, 24).backend());

    // Tick cert-manager (sorted first, under the cursor); untick default with the mouse.
    key(&mut app, KeyCode::Char(' '));
    let t = render(&app, 120, 40);
    let (x, y) = locate(&t, "[x] default");
    click(&mut app, x, y);
    let ticked = app.picking().unwrap().ticked();
    assert!(ticked.contains(&"cert-manager".to_string()));
    assert!(!ticked.contains(&"default".to_string()));
    insta::assert_snapshot!("whole_backup_pick_120x40", render(&app, 120, 40).backend());

    // The end of a long list scrolls into view.
    key(&mut app, KeyCode::End);
    let t = render(&app, 80, 24);
    locate(&t, "› [x] team-11");
    assert!(!format!("{}", t.backend()).contains("cert-manager"));

    // s: back to what -A takes; a: all; a again: none, and enter says why it stays.
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.picking().unwrap().ticked(), {
        let mut t = taken.clone();
        t.sort();
        t
    });
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(app.picking().unwrap().ticked().len(), 19);
    key(&mut app, KeyCode::Char('a'));
    key(&mut app, KeyCode::Enter);
    assert!(app.picking().is_some());
    assert!(app.status().unwrap().1.contains("tick at least one"));
    assert!(app.jobs().is_empty());
    key(&mut app, KeyCode::Esc);
    assert!(app.picking().is_none());
    assert_eq!(app.status().unwrap().1, "not done: nothing changed");
}

//! Console render bench: the time to draw one frame of the namespaces screen with
//! 1,000 namespaces and of the PVC screen with 10,000 claims (120x40, TestBackend),
//! and of the same screens with a fuzzy filter typed. Prints a table.
//! Run with `cargo bench --bench console`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ferry_console::app::{App, Env, Msg, NsSummary};
use ferry_console::keymap::Keymap;
use ferry_console::screens;
use ferry_console::theme::Theme;
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{Linked, Sources};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: prod\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: u}\n";

fn key(app: &mut App, c: KeyCode) {
    app.key(KeyEvent::new(c, KeyModifiers::NONE));
}

fn time_frames(app: &App, n: usize) -> Duration {
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| screens::draw(f, app)).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        t.draw(|f| screens::draw(f, app)).unwrap();
    }
    start.elapsed() / n as u32
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(&kc, KUBECONFIG).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = Env {
        linked: Linked::load(&Sources { paths: vec![kc] }),
        repo: Err(ferry_console::error::TaskError::NoRepository {
            reason: "none".into(),
        }),
        rt: rt.handle().clone(),
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
    key(&mut app, KeyCode::Enter);
    let nss: Vec<NsSummary> = (0..1000)
        .map(|i| NsSummary {
            name: format!("team-{i:04}"),
            status: "Active".into(),
            pods: i % 17,
            workloads: i % 5,
            pvcs: 10,
            requested: (i as u64) << 30,
        })
        .collect();
    app.apply(Msg::Namespaces("prod".into(), Ok(nss)));
    let mut rows = vec![("namespaces: 1,000".to_string(), time_frames(&app, 200))];
    key(&mut app, KeyCode::Char('/'));
    for c in "tm99".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    rows.push(("namespaces: 1,000, filtered".into(), time_frames(&app, 200)));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Enter);
    let objects: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": format!("data-{i:05}"), "namespace": "team-0000"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                            "resources": {"requests": {"storage": "10Gi"}}, "volumeName": format!("pv-{i}")},
                   "status": {"phase": "Bound"}})
        })
        .collect();
    let loaded = Instant::now();
    app.apply(Msg::NsObjects(
        "prod".into(),
        "team-0000".into(),
        Ok(ferry_console::screens::workloads::ns_data(objects)),
    ));
    let load_time = loaded.elapsed();
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('G'));
    rows.push(("pvcs: 10,000 (at the end)".into(), time_frames(&app, 100)));
    key(&mut app, KeyCode::Char('/'));
    for c in "d999".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    rows.push(("pvcs: 10,000, filtered".into(), time_frames(&app, 100)));
    println!("| frame (120x40) | time per frame |");
    println!("|---|---|");
    for (what, d) in rows {
        println!("| {what} | {:.3} ms |", d.as_secs_f64() * 1000.0);
    }
    println!(
        "\nrows built once when 10,000 claims arrive: {:.1} ms",
        load_time.as_secs_f64() * 1000.0
    );
}

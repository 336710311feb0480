//! The console's loop (`ui::event::run_loop`, what the binary runs) on a `TestBackend`
//! with 20 kubeconfig contexts: 10 reachable (two sandbox clusters run by
//! `ferry sandbox up` in their own processes, five contexts each), 8 on 127.0.0.1 ports
//! nobody listens on, and 2 on a blackhole that accepts connections and never answers.
//! Measures the time to the first frame (which must not wait for the probes), when the
//! probes have all answered (the blackhole's only at the probe timeout), and the CPU
//! time of the loop's thread and of the whole process while probes run (the loop
//! ticks at 15 frames a second) and once everything is idle (it sleeps on its channel).
//! Prints a table. Run with `cargo bench --bench console_loop`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ferry_console::app::{App, Env, Msg};
use ferry_console::keymap::Keymap;
use ferry_console::theme::Theme;
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{Linked, Sources};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

/// On-CPU nanoseconds of one thread of this process (`/proc/self/task/TID/schedstat`).
fn thread_cpu(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// On-CPU nanoseconds of every live thread of this process.
fn process_cpu() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|e| thread_cpu(&e.file_name().to_string_lossy()))
        .sum()
}

/// The main thread's ID is the process ID.
fn main_cpu() -> u64 {
    thread_cpu(&std::process::id().to_string())
}

fn ferry(home: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .output()
        .unwrap();
    assert!(o.status.success(), "ferry {args:?}: {o:?}");
}

/// A kubeconfig with 20 contexts (see the module doc).
fn kubeconfig(home: &Path, blackhole: u16) -> PathBuf {
    let sandboxes = home.join("data/ferry/sandbox/kubeconfig");
    // The sandbox writes its kubeconfig as JSON (which kubectl reads as YAML).
    let mut kc: Value = serde_json::from_slice(&std::fs::read(&sandboxes).unwrap()).unwrap();
    let base_contexts = kc["contexts"].as_array().unwrap().clone();
    let mut contexts = Vec::new();
    for i in 0..10 {
        let mut c = base_contexts[i % base_contexts.len()].clone();
        c["name"] = json!(format!("reachable-{i:02}"));
        contexts.push(c);
    }
    kc["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nobody", "user": {"token": "t"}}));
    let clusters = kc["clusters"].as_array_mut().unwrap();
    for i in 0..10 {
        let port = if i < 8 {
            // Bound then closed: connections are refused.
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            blackhole
        };
        let name = if i < 8 {
            format!("closed-{i}")
        } else {
            format!("blackhole-{i}")
        };
        clusters.push(json!({"name": name, "cluster": {"server": format!("https://127.0.0.1:{port}"), "insecure-skip-tls-verify": true}}));
        contexts.push(json!({"name": name, "context": {"cluster": name, "user": "nobody"}}));
    }
    kc["contexts"] = Value::Array(contexts);
    let path = home.join("kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
    path
}

fn env(linked: Linked, rt: &tokio::runtime::Runtime, dir: &Path) -> Env {
    Env {
        linked,
        repo: Err(ferry_console::error::TaskError::NoRepository {
            reason: "no repository in this bench".into(),
        }),
        rt: rt.handle().clone(),
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

fn quit_key() -> Msg {
    Msg::Input(Event::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
    )))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    ferry(&home, &["sandbox", "up", "--name", "prod", "--name", "qa"]);
    // Accepts every connection and never says a word.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().flatten() {
            held.push(s);
        }
    });
    let kc = kubeconfig(&home, hole_port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();

    // Time to the first frame, five times: start (kubeconfig read, app built, probes
    // spawned) to the first frame drawn by the loop.
    let mut first = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let linked = Linked::load(&Sources {
            paths: vec![kc.clone()],
        });
        assert_eq!(linked.clusters.len(), 20);
        let loaded = started.elapsed();
        let mut app = App::new(env(linked, &rt, &home));
        let tx = app.sender();
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let mut at = None;
        ferry_console::event::run_loop(&mut terminal, &mut app, &mut |_, a| {
            if at.is_none() {
                at = Some((
                    started.elapsed(),
                    a.clusters().iter().filter(|c| c.facts.is_some()).count(),
                ));
                let _ = tx.send(quit_key());
            }
        })
        .unwrap();
        let (t, answered) = at.unwrap();
        first.push((loaded, t, answered));
    }

    // One long run: probes, then idle.
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let started = Instant::now();
    let mut app = App::new(env(linked, &rt, &home));
    let tx = app.sender();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let settled = Arc::new(AtomicBool::new(false));
    let (cpu0, main0) = (process_cpu(), main_cpu());
    let mut frames = 0u64;
    let mut probes_done: Option<(Duration, u64, u64, u64)> = None;
    let idle = Duration::from_secs(5);
    let controller = {
        let settled = settled.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            while !settled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Let the last frame and the runtime calm down, then measure.
            std::thread::sleep(Duration::from_millis(500));
            let (p0, m0) = (process_cpu(), main_cpu());
            std::thread::sleep(idle);
            let (p1, m1) = (process_cpu(), main_cpu());
            let _ = tx.send(quit_key());
            (p1 - p0, m1 - m0)
        })
    };
    ferry_console::event::run_loop(&mut terminal, &mut app, &mut |_, a| {
        frames += 1;
        if probes_done.is_none() && a.probed() {
            probes_done = Some((started.elapsed(), process_cpu(), main_cpu(), frames));
            settled.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    let (idle_proc, idle_main) = controller.join().unwrap();
    let (probe_time, cpu1, main1, probe_frames) = probes_done.unwrap();
    let ok = app
        .clusters()
        .iter()
        .filter(|c| matches!(c.facts, Some(Ok(_))))
        .count();
    ferry(
        &home,
        &["sandbox", "down", "--name", "prod", "--name", "qa"],
    );

    println!("| start to first frame (20 contexts) | kubeconfig read | probes answered by then |");
    println!("|---|---|---|");
    for (loaded, t, answered) in &first {
        println!("| {} | {} | {answered}/20 |", ms(*t), ms(*loaded));
    }
    let pct = |cpu: u64, wall: Duration| 100.0 * cpu as f64 / wall.as_nanos() as f64;
    println!();
    println!("| phase | wall | frames | loop thread CPU | process CPU |");
    println!("|---|---|---|---|---|");
    println!(
        "| probing ({ok} reachable, {} unreachable or silent) | {} | {probe_frames} | {} ({:.2}%) | {} ({:.2}%) |",
        20 - ok,
        ms(probe_time),
        ms(Duration::from_nanos(main1 - main0)),
        pct(main1 - main0, probe_time),
        ms(Duration::from_nanos(cpu1 - cpu0)),
        pct(cpu1 - cpu0, probe_time),
    );
    println!(
        "| idle | {} | {} | {} ({:.3}%) | {} ({:.3}%) |",
        ms(idle),
        frames - probe_frames,
        ms(Duration::from_nanos(idle_main)),
        pct(idle_main, idle),
        ms(Duration::from_nanos(idle_proc)),
        pct(idle_proc, idle),
    );
}

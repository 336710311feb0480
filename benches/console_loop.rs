//! The console's loop (`ui::event::run_loop`, what the binary runs) on a `TestBackend`,
//! in two parts. Prints markdown tables. Run with `cargo bench --bench console_loop`.
//!
//! **Start-up** with 20 kubeconfig contexts: 10 reachable (two sandbox clusters run by
//! `ferry sandbox up` in their own processes, five contexts each), 8 on 127.0.0.1 ports
//! nobody listens on, and 2 on a blackhole that accepts connections and never answers.
//! Measures the time to the first frame (which must not wait for the probes), when the
//! probes have all answered (the blackhole's only at the probe timeout), and the CPU
//! time of the loop's thread and of the whole process while probes run (the loop
//! ticks at 15 frames a second) and once everything is idle (it sleeps on its channel).
//!
//! **Scale** (issue 18): one sandbox (`ferry sandbox up --name big`, its own process)
//! filled through kube-rs with [`NAMESPACES`] namespaces and [`CLAIMS`] pending claims
//! ([`BIG_CLAIMS`] of them in `ns-0000`, the rest spread evenly), a Deployment in every
//! [`DEPLOYMENT_EVERY`]th namespace and [`BIG_PODS`] pods using claims in `ns-0000`.
//! On the namespaces screen and on the claims of `ns-0000` it measures:
//! - the frame: `screens::draw` through `Terminal::draw` on 120x40 and 200x60, one frame
//!   per key (down, a page down now and then), and a key sent to the running loop until
//!   its frame is drawn;
//! - a change followed: an object made through another client (a namespace, a claim)
//!   until its row shows, wall and CPU; and the lists a follow of the namespaces
//!   screen starts with, one by one;
//! - the CPU of the idle loop following the screen (watches open) over [`IDLE_LIVE`]:
//!   the loop's thread, the whole process and the sandbox's process.
//!
//! CPU is on-CPU time from `/proc/PID/task/*/schedstat`. Sandboxes are stopped at the
//! end, also when the bench panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ferry_console::app::{App, Env, Msg};
use ferry_console::keymap::Keymap;
use ferry_console::screens;
use ferry_console::theme::Theme;
use ferry_k8s::mover::MoverOptions;
use ferry_providers::kubeconfig::{Linked, Sources};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use ratatui::Terminal;

#[path = "support/sandboxes.rs"]
mod sandboxes;
use ratatui::backend::TestBackend;
use sandboxes::{Sandboxes, create_all, sandbox_kubeconfig};
use serde_json::{Value, json};

/// Namespaces of the big cluster.
const NAMESPACES: usize = 1_000;
/// Claims of the big cluster, pending (no class, no volume): the sandbox's control
/// loop goes over every object on each pass (every 500 ms and after each change), and
/// looks through every volume for each pending claim, so with a volume bound to each
/// claim it takes minutes to fill and half a core once idle.
const CLAIMS: usize = 10_000;
/// Claims in `ns-0000`, the namespace whose claims are shown.
const BIG_CLAIMS: usize = 2_000;
/// Every so many namespaces get a Deployment (one replica).
const DEPLOYMENT_EVERY: usize = 2;
/// Pods in `ns-0000`, each mounting two of its claims.
const BIG_PODS: usize = 100;
/// Requests in flight while filling the sandbox.
const IN_FLIGHT: usize = 32;
/// Frames drawn per screen and size.
const FRAMES: usize = 300;
/// Keys sent to the running loop, one frame each.
const KEYS: usize = 100;
/// Changes followed one by one per screen.
const CHANGES: usize = 5;
/// How long the idle loop is watched while it follows the screen.
const IDLE_LIVE: Duration = Duration::from_secs(30);
/// Terminal sizes the frames are drawn at.
const SIZES: [(u16, u16); 2] = [(120, 40), (200, 60)];

/// On-CPU nanoseconds of one thread (`/proc/PID/task/TID/schedstat`).
fn thread_cpu(pid: &str, tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// On-CPU nanoseconds of every live thread of this process. Threads that ended are
/// left out: the runtime keeps its blocking threads (see `main`) so that none ends
/// while measured.
fn process_cpu() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|e| thread_cpu("self", &e.file_name().to_string_lossy()))
        .sum()
}

/// CPU nanoseconds of process `pid` (user and system, ended threads included) in clock
/// ticks of 10 ms (`/proc/PID/stat`): for the sandbox, whose threads come and go.
fn ticks_cpu(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks * 10_000_000
}

/// The main thread's ID is the process ID.
fn main_cpu() -> u64 {
    thread_cpu("self", &std::process::id().to_string())
}

/// A kubeconfig with 20 contexts (see the module doc).
fn kubeconfig(home: &Path, blackhole: u16) -> PathBuf {
    let mut kc = sandbox_kubeconfig(home);
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

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn quit_key() -> Msg {
    Msg::Input(Event::Key(key(KeyCode::Char('q'))))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Milliseconds with two decimals (frames are short).
fn ms2(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn pct(cpu: u64, wall: Duration) -> f64 {
    100.0 * cpu as f64 / wall.as_nanos() as f64
}

/// Median, 95th percentile and maximum.
fn spread(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.95), v[v.len() - 1])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    // As the binary's (`src/cli/open.rs`), except that idle blocking threads stay: one
    // that ended would take its CPU time out of `process_cpu`'s sum.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    start_up(&home, &rt);
    at_scale(&home, &rt);
}

/// The start-up part (see the module doc).
fn start_up(home: &Path, rt: &tokio::runtime::Runtime) {
    let sandboxes = Sandboxes::up(home, &["prod", "qa"]);
    // Accepts every connection and never says a word.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().flatten() {
            held.push(s);
        }
    });
    let kc = kubeconfig(home, hole_port);

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
        let mut app = App::new(env(linked, rt, home));
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
    let mut app = App::new(env(linked, rt, home));
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
            (p1.saturating_sub(p0), m1.saturating_sub(m0))
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
    drop(sandboxes);

    println!("## Start-up: 20 contexts");
    println!();
    println!("| start to first frame (20 contexts) | kubeconfig read | probes answered by then |");
    println!("|---|---|---|");
    for (loaded, t, answered) in &first {
        println!("| {} | {} | {answered}/20 |", ms(*t), ms(*loaded));
    }
    println!();
    println!("| phase | wall | frames | loop thread CPU | process CPU |");
    println!("|---|---|---|---|---|");
    println!(
        "| probing ({ok} reachable, {} unreachable or silent) | {} | {probe_frames} | {} ({:.2}%) | {} ({:.2}%) |",
        20 - ok,
        ms(probe_time),
        ms(Duration::from_nanos(main1.saturating_sub(main0))),
        pct(main1.saturating_sub(main0), probe_time),
        ms(Duration::from_nanos(cpu1.saturating_sub(cpu0))),
        pct(cpu1.saturating_sub(cpu0), probe_time),
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
    println!();
}

/// The objects of the big cluster (see the module doc), in the order they are created:
/// namespaces, claims, Deployments, pods.
fn big_cluster() -> Vec<Vec<Value>> {
    let ns = |i: usize| format!("ns-{i:04}");
    let namespaces = (0..NAMESPACES)
        .map(|i| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(i)}}))
        .collect();
    // `ns-0000` holds BIG_CLAIMS, the others share the rest evenly.
    let claim_ns = |c: usize| {
        if c < BIG_CLAIMS {
            0
        } else {
            1 + (c - BIG_CLAIMS) % (NAMESPACES - 1)
        }
    };
    let size = |c: usize| format!("{}Gi", [1, 5, 10, 20, 100][c % 5]);
    let claims = (0..CLAIMS)
        .map(|c| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": format!("data-{c:05}"), "namespace": ns(claim_ns(c)),
                    "labels": {"app": "bench"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                    "resources": {"requests": {"storage": size(c)}}}})
        })
        .collect();
    let deployments = (0..NAMESPACES)
        .step_by(DEPLOYMENT_EVERY)
        .map(|i| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": ns(i)},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "example.org/web:1"}]}}}})
        })
        .collect();
    let pods = (0..BIG_PODS)
        .map(|p| {
            let volumes: Vec<Value> = (0..2)
                .map(|v| json!({"name": format!("v{v}"), "persistentVolumeClaim": {"claimName": format!("data-{:05}", 2 * p + v)}}))
                .collect();
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("db-{p:03}"), "namespace": ns(0), "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "example.org/db:1",
                    "volumeMounts": [{"name": "v0", "mountPath": "/a"}, {"name": "v1", "mountPath": "/b"}]}],
                    "volumes": volumes}})
        })
        .collect();
    vec![namespaces, claims, deployments, pods]
}

/// Fills the big cluster; returns the time it took to create and until every pod was
/// there, and each kind's creation time.
async fn fill(client: &kube::Client) -> (Duration, Duration, Vec<(String, Duration)>) {
    let t = Instant::now();
    let mut kinds = Vec::new();
    for objects in big_cluster() {
        let (k, n) = (
            objects[0]["kind"].as_str().unwrap().to_string(),
            objects.len(),
        );
        let t = Instant::now();
        create_all(client, objects, IN_FLIGHT).await;
        kinds.push((format!("{n} {k}"), t.elapsed()));
    }
    let created = t.elapsed();
    let pods = NAMESPACES.div_ceil(DEPLOYMENT_EVERY) + BIG_PODS;
    let limit = Instant::now() + Duration::from_secs(300);
    loop {
        let lp = ListParams::default();
        let running = Api::<Pod>::all(client.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .len();
        if running >= pods {
            break;
        }
        assert!(
            Instant::now() < limit,
            "the sandbox has {running}/{pods} pods after 5 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (created, t.elapsed(), kinds)
}

/// Draws `frames` frames of the app's current screen on a `w`x`h` `TestBackend`, a key
/// before each (down, every 25th a page down; in the second half up and page up, back
/// to where it started), and times each `Terminal::draw`.
fn draw_times(app: &mut App, (w, h): (u16, u16), frames: usize) -> Vec<Duration> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    (0..frames)
        .map(|i| {
            app.key(key(match (i < frames / 2, i % 25 == 24) {
                (true, false) => KeyCode::Down,
                (true, true) => KeyCode::PageDown,
                (false, false) => KeyCode::Up,
                (false, true) => KeyCode::PageUp,
            }));
            let t = Instant::now();
            terminal.draw(|f| screens::draw(f, app)).unwrap();
            t.elapsed()
        })
        .collect()
}

/// Times [`CHANGES`] changes followed on the current screen: an object made by `make`
/// (through another client) until the row whose key ends with the name it returns
/// shows. Returns (wall, process CPU, loop thread CPU) of each.
fn changes(
    app: &mut App,
    rt: &tokio::runtime::Runtime,
    make: &dyn Fn(usize) -> (String, Value),
    client: &kube::Client,
) -> Vec<(Duration, u64, u64)> {
    (0..CHANGES)
        .map(|i| {
            let (name, doc) = make(i);
            let (p0, m0, t) = (process_cpu(), main_cpu(), Instant::now());
            rt.block_on(create(client, doc));
            assert!(
                app.settle(Duration::from_secs(120), |a| a
                    .row_keys()
                    .is_some_and(|k| k.iter().any(|k| k.ends_with(&name)))),
                "{name} never showed"
            );
            let r = (
                t.elapsed(),
                process_cpu().saturating_sub(p0),
                main_cpu().saturating_sub(m0),
            );
            // Past the follow's pace (rows at most once a second), runtime asleep.
            std::thread::sleep(Duration::from_millis(1500));
            r
        })
        .collect()
}

/// Creates `doc` (a Namespace or a PersistentVolumeClaim).
async fn create(client: &kube::Client, doc: Value) {
    let pp = PostParams::default();
    if doc["kind"] == "Namespace" {
        Api::<Namespace>::all(client.clone())
            .create(&pp, &serde_json::from_value(doc).unwrap())
            .await
            .unwrap();
    } else {
        let ns = doc["metadata"]["namespace"].as_str().unwrap().to_string();
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(doc).unwrap())
            .await
            .unwrap();
    }
}

/// What the loop did on one screen: keys to frames, idle CPU.
struct Live {
    key_to_frame: Vec<Duration>,
    frames: u64,
    main: u64,
    process: u64,
    sandbox: u64,
}

/// Runs the loop on the app's current screen: [`KEYS`] keys (down), each waited for
/// until its frame is drawn, then [`IDLE_LIVE`] of idling while it follows the screen;
/// then quits.
fn run_live(app: &mut App, sandbox_pid: &str) -> Live {
    let tx = app.sender();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let (frame_tx, frame_rx) = mpsc::channel::<(Instant, Option<String>)>();
    let start = app.selected_key();
    let sandbox_pid = sandbox_pid.to_string();
    let controller = std::thread::spawn(move || {
        let mut last = start;
        let mut key_to_frame = Vec::new();
        for _ in 0..KEYS {
            while frame_rx.try_recv().is_ok() {}
            let t = Instant::now();
            tx.send(Msg::Input(Event::Key(key(KeyCode::Down)))).unwrap();
            loop {
                let (at, selected) = frame_rx.recv().unwrap();
                if selected != last {
                    last = selected;
                    key_to_frame.push(at - t);
                    break;
                }
            }
        }
        // Let the last frame and the runtime calm down, then measure.
        std::thread::sleep(Duration::from_millis(500));
        while frame_rx.try_recv().is_ok() {}
        let (p0, m0, s0) = (process_cpu(), main_cpu(), ticks_cpu(&sandbox_pid));
        std::thread::sleep(IDLE_LIVE);
        let (p1, m1, s1) = (process_cpu(), main_cpu(), ticks_cpu(&sandbox_pid));
        let frames = frame_rx.try_iter().count() as u64;
        tx.send(quit_key()).unwrap();
        Live {
            key_to_frame,
            frames,
            main: m1.saturating_sub(m0),
            process: p1.saturating_sub(p0),
            sandbox: s1.saturating_sub(s0),
        }
    });
    ferry_console::event::run_loop(&mut terminal, app, &mut |_, a| {
        let _ = frame_tx.send((Instant::now(), a.selected_key()));
    })
    .unwrap();
    controller.join().unwrap()
}

/// An app on the big cluster showing the screen `command` opens, loaded, and how long
/// that screen took to show its rows.
fn open(
    linked: &Linked,
    rt: &tokio::runtime::Runtime,
    home: &Path,
    command: &str,
) -> (App, Duration) {
    let mut app = App::new(env(linked.clone(), rt, home));
    assert!(app.settle(Duration::from_secs(60), App::probed));
    app.command("ctx ferry-big");
    let t = Instant::now();
    app.command(command);
    assert!(
        app.settle(Duration::from_secs(120), |a| a
            .row_keys()
            .is_some_and(|k| !k.is_empty())),
        "{command}: {:?}",
        app.rows_error()
    );
    let opened = t.elapsed();
    (app, opened)
}

/// One screen at scale: frames, changes followed and the idle loop.
struct Figures {
    name: String,
    rows: usize,
    /// From the screen's command to its first rows (the follow's first listing).
    opened: Duration,
    draws: Vec<((u16, u16), Vec<Duration>)>,
    changes: Vec<(Duration, u64, u64)>,
    live: Live,
}

fn measure(
    name: &str,
    linked: &Linked,
    rt: &tokio::runtime::Runtime,
    home: &Path,
    command: &str,
    sandbox_pid: &str,
    make: &dyn Fn(usize) -> (String, Value),
) -> Figures {
    let (mut app, opened) = open(linked, rt, home, command);
    let rows = app.row_keys().unwrap().len();
    let draws = SIZES
        .iter()
        .map(|size| (*size, draw_times(&mut app, *size, FRAMES)))
        .collect();
    let client = rt.block_on(linked.clusters[0].client()).unwrap();
    let changes = changes(&mut app, rt, make, &client);
    let live = run_live(&mut app, sandbox_pid);
    Figures {
        name: name.to_string(),
        rows,
        opened,
        draws,
        changes,
        live,
    }
}

/// The lists a follow of the namespaces screen starts with (`follow.rs`), one at a
/// time: (what, objects, wall, this process's CPU).
async fn lists(linked: &Linked) -> Vec<(&'static str, usize, Duration, u64)> {
    let cluster = &linked.clusters[0];
    let mut out = Vec::new();
    let (t, c) = (Instant::now(), process_cpu());
    let client = cluster.client().await.unwrap();
    let lp = ListParams::default();
    let n = Api::<Namespace>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
        .len();
    out.push((
        "new client + namespaces",
        n,
        t.elapsed(),
        process_cpu().saturating_sub(c),
    ));
    macro_rules! timed {
        ($what:expr, $kind:ty) => {{
            let (t, c) = (Instant::now(), process_cpu());
            let n = Api::<$kind>::all(client.clone())
                .list(&lp)
                .await
                .unwrap()
                .items
                .len();
            out.push(($what, n, t.elapsed(), process_cpu().saturating_sub(c)));
        }};
    }
    timed!("claims", PersistentVolumeClaim);
    timed!("pods", Pod);
    timed!("deployments", Deployment);
    timed!("statefulsets", StatefulSet);
    timed!("daemonsets", DaemonSet);
    out
}

/// The scale part (see the module doc).
fn at_scale(home: &Path, rt: &tokio::runtime::Runtime) {
    let sandboxes = Sandboxes::up(home, &["big"]);
    let pid = sandboxes.pid("big");
    let mut kc = sandbox_kubeconfig(home);
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["name"] == "ferry-big");
    let path = home.join("kubeconfig-big");
    std::fs::write(&path, serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
    let linked = Linked::load(&Sources { paths: vec![path] });
    assert_eq!(linked.clusters.len(), 1);
    let client = rt.block_on(linked.clusters[0].client()).unwrap();
    let (created, filled, kinds) = rt.block_on(fill(&client));
    // Let the sandbox's controllers settle (a pass every 500 ms).
    std::thread::sleep(Duration::from_secs(2));
    let (s0, t0) = (ticks_cpu(&pid), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let sandbox_idle = pct(ticks_cpu(&pid).saturating_sub(s0), t0.elapsed());
    let parts = rt.block_on(lists(&linked));
    let screens = [
        measure("namespaces", &linked, rt, home, "ns", &pid, &|i| {
            let name = format!("zz-made-{i}");
            let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            (name, doc)
        }),
        measure(
            "claims of ns-0000",
            &linked,
            rt,
            home,
            "pvc ns-0000",
            &pid,
            &|i| {
                let name = format!("zz-made-{i}");
                let doc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "ns-0000"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}});
                (name, doc)
            },
        ),
    ];
    drop(sandboxes);

    let pods = NAMESPACES.div_ceil(DEPLOYMENT_EVERY) + BIG_PODS;
    println!(
        "## Scale: {NAMESPACES} namespaces, {CLAIMS} pending claims ({BIG_CLAIMS} in ns-0000), \
         {} Deployments, {pods} pods",
        NAMESPACES.div_ceil(DEPLOYMENT_EVERY)
    );
    println!();
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, d)| format!("{k} {:.1} s", d.as_secs_f64()))
        .collect();
    println!(
        "Filled in {:.1} s ({:.1} s to create, {IN_FLIGHT} requests in flight: {}); the \
         idle sandbox then uses {sandbox_idle:.1}% of a core (its own process).",
        filled.as_secs_f64(),
        created.as_secs_f64(),
        kinds.join(", ")
    );
    println!();
    println!(
        "Frames: `screens::draw` through `Terminal::draw` on a `TestBackend`, {FRAMES} per \
         size, a key (down or up, every 25th a page) before each; key to frame: {KEYS} down \
         keys sent to the running loop (120x40), each until its frame is drawn."
    );
    println!();
    println!("| screen | rows | size | frame median | p95 | max |");
    println!("|---|---|---|---|---|---|");
    for s in &screens {
        for ((w, h), d) in &s.draws {
            let (m, p, x) = spread(d.clone());
            println!(
                "| {} | {} | {w}x{h} | {} ms | {} ms | {} ms |",
                s.name,
                s.rows,
                ms2(m),
                ms2(p),
                ms2(x)
            );
        }
        let (m, p, x) = spread(s.live.key_to_frame.clone());
        println!(
            "| {} | {} | key to frame in the loop, 120x40 | {} ms | {} ms | {} ms |",
            s.name,
            s.rows,
            ms2(m),
            ms2(p),
            ms2(x)
        );
    }
    println!();
    println!(
        "Following: the screen opened (its command until its first rows: the follow's \
         discovery and first listing), then {CHANGES} objects made through another client \
         (a namespace; a claim in ns-0000), each until its row shows; CPU of this process \
         (the watch event, the rows worked out again) and of the loop's thread (applying \
         them: rows, selection)."
    );
    println!();
    println!(
        "| screen | opened | change to row, median | max | process CPU median | loop thread CPU median |"
    );
    println!("|---|---|---|---|---|---|");
    for s in &screens {
        let wall: Vec<Duration> = s.changes.iter().map(|r| r.0).collect();
        let cpu: Vec<Duration> = s
            .changes
            .iter()
            .map(|r| Duration::from_nanos(r.1))
            .collect();
        let main: Vec<Duration> = s
            .changes
            .iter()
            .map(|r| Duration::from_nanos(r.2))
            .collect();
        let (wm, _, wx) = spread(wall);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            s.name,
            ms(s.opened),
            ms(wm),
            ms(wx),
            ms(spread(cpu).0),
            ms(spread(main).0)
        );
    }
    println!();
    println!("The lists a follow of the namespaces screen starts with, one at a time (kube-rs):");
    println!();
    println!("| list | objects | wall | process CPU |");
    println!("|---|---|---|---|");
    for (what, n, wall, cpu) in &parts {
        println!(
            "| {what} | {n} | {} | {} |",
            ms(*wall),
            ms(Duration::from_nanos(*cpu))
        );
    }
    println!();
    println!(
        "Idle while following the screen ({} s, its watches open), the loop at 120x40:",
        IDLE_LIVE.as_secs()
    );
    println!();
    println!("| screen | frames | loop thread CPU | process CPU | sandbox process CPU |");
    println!("|---|---|---|---|---|");
    for s in &screens {
        let l = &s.live;
        println!(
            "| {} | {} | {} ({:.2}%) | {} ({:.2}%) | {} ({:.1}%) |",
            s.name,
            l.frames,
            ms(Duration::from_nanos(l.main)),
            pct(l.main, IDLE_LIVE),
            ms(Duration::from_nanos(l.process)),
            pct(l.process, IDLE_LIVE),
            ms(Duration::from_nanos(l.sandbox)),
            pct(l.sandbox, IDLE_LIVE),
        );
    }
}

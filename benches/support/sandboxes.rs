//! What the benches that drive sandboxes share: the `ferry` binary run with a folder of
//! its own as home, sandboxes started by `ferry sandbox up` in their own processes (and
//! stopped when dropped, also on a panic), and objects created through kube-rs a few
//! at a time.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;

/// Runs the `ferry` binary with `home` as its folders; true if it succeeded.
pub fn ferry_ok(home: &Path, args: &[&str]) -> bool {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!("ferry {args:?}: {o:?}");
    }
    o.status.success()
}

pub fn ferry(home: &Path, args: &[&str]) {
    assert!(ferry_ok(home, args), "ferry {args:?} failed");
}

/// Sandboxes started by `ferry sandbox up`, stopped when dropped (also on a panic).
pub struct Sandboxes {
    home: PathBuf,
    names: Vec<&'static str>,
}

impl Sandboxes {
    pub fn up(home: &Path, names: &[&'static str]) -> Sandboxes {
        // Whatever `up` started before failing is stopped by the guard.
        let guard = Sandboxes {
            home: home.to_path_buf(),
            names: names.to_vec(),
        };
        ferry(home, &guard.args("up"));
        guard
    }

    fn args(&self, verb: &'static str) -> Vec<&'static str> {
        let mut args = vec!["sandbox", verb];
        for n in &self.names {
            args.extend(["--name", n]);
        }
        args
    }

    /// The process ID of sandbox `name` (from its `server.json`).
    pub fn pid(&self, name: &str) -> String {
        let info = self
            .home
            .join("data/ferry/sandbox")
            .join(name)
            .join("server.json");
        let v: Value = serde_json::from_slice(&std::fs::read(info).unwrap()).unwrap();
        v["pid"].as_u64().unwrap().to_string()
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        let args = self.args("down");
        ferry_ok(&self.home, &args);
    }
}

/// The sandboxes' kubeconfig (JSON, which kubectl reads as YAML).
pub fn sandbox_kubeconfig(home: &Path) -> Value {
    let path = home.join("data/ferry/sandbox/kubeconfig");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Creates `objects` (all of one kind), `in_flight` at a time.
pub async fn create_all(client: &kube::Client, objects: Vec<Value>, in_flight: usize) {
    let Some(first) = objects.first() else {
        return;
    };
    let (group, version) = match first["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            first["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let kind = first["kind"].as_str().unwrap();
    let ar = ApiResource {
        api_version: first["apiVersion"].as_str().unwrap().to_string(),
        group,
        version,
        kind: kind.to_string(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    futures::stream::iter(objects)
        .map(|o| {
            let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                None => Api::all_with(client.clone(), &ar),
            };
            async move {
                let obj: DynamicObject = serde_json::from_value(o).unwrap();
                api.create(&PostParams::default(), &obj).await
            }
        })
        .buffer_unordered(in_flight)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap();
}

/// One run of the binary: wall time, peak resident memory (bytes) and what it printed.
pub struct Run {
    pub wall: Duration,
    pub peak: u64,
    /// CPU time the command used (user and system).
    pub cpu: Duration,
    /// CPU time the target sandbox used while it ran.
    pub server_cpu: Duration,
    pub out: String,
}

/// CPU time (user and system) process `pid` has used so far.
pub fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Runs `ferry args` with `home`'s folders and `env`, sampling its `VmHWM` until it
/// exits; `server` is the process whose CPU time is counted beside it.
pub fn run(home: &Path, server: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let server_before = cpu_of(server);
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("KUBECONFIG", home.join("data/ferry/sandbox/kubeconfig"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut cpu = Duration::ZERO;
    let pid = child.id().to_string();
    // Output is read on threads so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let code = loop {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        }) {
            peak = peak.max(hwm * 1024);
        }
        cpu = cpu.max(cpu_of(&pid));
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = t.elapsed();
    let out = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    assert!(code.success(), "ferry {args:?} failed:\n{out}");
    Run {
        wall,
        peak,
        cpu,
        server_cpu: cpu_of(server).saturating_sub(server_before),
        out,
    }
}

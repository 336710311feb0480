//! Hostile kubeconfigs (issue 14): credential plugins that never return or print without
//! end, and an API server that accepts connections and never answers. `ferry clusters`,
//! `namespaces` and `backup` stop them in bounded time and memory, name the plugin or
//! the server and the context, and a broken context holds up no other. Tokens from a
//! plugin are renewed before they expire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// A TCP server on 127.0.0.1 that accepts connections and never says a word; stopped
/// when dropped.
struct Silent {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Silent {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A plugin that hands out `token`, expiring at `expires`, and notes each run in
/// `runs`.
fn token_plugin(dir: &Path, name: &str, token: &str, expires: &str, runs: &Path) -> PathBuf {
    script(
        dir,
        name,
        &format!(
            "echo run >> '{}'\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\",\"expirationTimestamp\":\"{expires}\"}}}}'",
            runs.display()
        ),
    )
}

/// A kubeconfig with one context per (name, server, CA PEM, exec command).
fn kubeconfig(path: &Path, contexts: &[(&str, &str, &str, &Path)]) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": contexts.iter().map(|(n, server, ca, _)| {
            let mut c = json!({"server": server});
            if !ca.is_empty() {
                c["certificate-authority-data"] = b64(ca).into();
            }
            json!({"name": n, "cluster": c})
        }).collect::<Vec<Value>>(),
        "users": contexts.iter().map(|(n, _, _, cmd)| json!({"name": n, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": cmd,
            "interactiveMode": "Never",
        }}})).collect::<Vec<Value>>(),
        "contexts": contexts.iter().map(|(n, ..)| json!({"name": n, "context": {"cluster": n, "user": n}})).collect::<Vec<Value>>(),
        "current-context": contexts[0].0,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// Runs `ferry ARGS`; fails the test if it has not ended after `guard` (a hang, the bug
/// this file is about). Returns (status, output, the most memory it held in KiB).
fn ferry(
    home: &Path,
    kubeconfig: &Path,
    repo: Option<&Path>,
    args: &[&str],
    guard: Duration,
) -> (std::process::ExitStatus, String, u64) {
    let mut cmd = Command::new(support::ferry_bin());
    cmd.env("XDG_DATA_HOME", home.join("xdg/data"))
        .env("XDG_CONFIG_HOME", home.join("xdg/config"))
        .env("XDG_STATE_HOME", home.join("xdg/state"))
        .env("HOME", home.join("home"))
        .env("KUBECONFIG", kubeconfig)
        .env("FERRY_PLUGIN_TIMEOUT", "2")
        .env("FERRY_PASSWORD", "test password")
        .env_remove("FERRY_PASSWORD_FILE")
        .env_remove("FERRY_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(args);
    match repo {
        Some(r) => cmd.env("FERRY_REPO", r),
        None => cmd.env_remove("FERRY_REPO"),
    };
    let mut child = cmd.spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let started = Instant::now();
    let mut peak_kib = 0u64;
    let status = loop {
        // The kernel's high-water mark of the process's resident memory.
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > guard {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ferry {args:?} hung (killed after {guard:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = format!("{}{}", o.join().unwrap(), e.join().unwrap());
    (status, text, peak_kib)
}

#[test]
fn hanging_and_flooding_plugins_and_a_silent_server_hold_up_nothing() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let good = rt
        .block_on(Sandbox::start(SandboxConfig::new(
            "good",
            home.join("good"),
        )))
        .unwrap();
    let entry = good.kubeconfig_entry();
    let silent = Silent::start();
    let runs = home.join("runs");
    // A plugin that waits for a child of its own: both must go.
    let hang = script(home, "hang", "sleep 612.5 &\nwait");
    // 3 GB of output if nobody stops it.
    let flood = script(home, "flood", "exec head -c 3000000000 /dev/zero");
    let ok = token_plugin(home, "ok", &entry.token, "2999-01-01T00:00:00Z", &runs);
    let kc = home.join("kubeconfig");
    kubeconfig(
        &kc,
        &[
            ("hang", &entry.server, &entry.ca_pem, &hang),
            ("flood", &entry.server, &entry.ca_pem, &flood),
            ("good", &entry.server, &entry.ca_pem, &ok),
            ("silent", &silent.url(), "", &ok),
        ],
    );
    let guard = Duration::from_secs(90);

    let (status, out, peak_kib) = ferry(home, &kc, None, &["clusters"], guard);
    eprintln!("{out}\nferry clusters: at most {peak_kib} KiB resident");
    assert!(status.success(), "{out}");
    let row = |name: &str| {
        out.lines()
            .find(|l| {
                let mut w = l.split_whitespace().skip_while(|w| *w == "*");
                w.next() == Some(name)
            })
            .unwrap_or_else(|| panic!("no row for {name}: {out}"))
            .to_string()
    };
    assert!(row("good").contains("ok "), "{out}");
    assert!(
        row("hang").contains("the credential plugin")
            && row("hang").contains("of context \"hang\" did not finish within 2 s")
            && row("hang").contains("FERRY_PLUGIN_TIMEOUT"),
        "{out}"
    );
    assert!(
        row("flood").contains("printed more than 1 MiB") && row("flood").contains("\"flood\""),
        "{out}"
    );
    assert!(
        // The time waited, as measured: 5 s and a little (5.0 s, or 5 s when the
        // wait ended within the millisecond).
        row("silent").contains("timed out after 5")
            && row("silent").contains(&format!(
                " s waiting for the API server {} (context \"silent\") to accept the connection",
                silent.url()
            )),
        "{out}"
    );
    // The 3 GB were never held: a few dozen MiB for the whole process.
    assert!(
        peak_kib < 256 * 1024,
        "ferry clusters held {peak_kib} KiB at its peak"
    );

    // One context at a time: the same words.
    let (status, out, _) = ferry(home, &kc, None, &["namespaces", "--context", "hang"], guard);
    assert!(!status.success());
    assert!(
        out.contains("of context \"hang\" did not finish within 2 s"),
        "{out}"
    );
    let (status, out, _) = ferry(
        home,
        &kc,
        None,
        &["namespaces", "--context", "silent"],
        guard,
    );
    assert!(!status.success());
    assert!(
        out.contains(&format!("waiting for the API server {}", silent.url()))
            && out.contains("timed out after 5")
            && !out.contains("cannot connect"),
        "{out}"
    );
    let (status, out, _) = ferry(home, &kc, None, &["namespaces", "--context", "good"], guard);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("kube-system") || out.contains("default"),
        "{out}"
    );
    let t = common::new_repo();
    let (status, out, _) = ferry(
        home,
        &kc,
        Some(&t.path()),
        &["backup", "--context", "flood", "-n", "default"],
        guard,
    );
    assert!(!status.success());
    assert!(out.contains("printed more than 1 MiB"), "{out}");

    // No plugin is left running.
    let left = Command::new("pgrep").args(["-f", "sleep 612.5"]).output();
    if let Ok(left) = left {
        assert!(
            String::from_utf8_lossy(&left.stdout).trim().is_empty(),
            "a plugin outlived ferry"
        );
    }
    rt.block_on(good.shutdown()).unwrap();
}

#[test]
fn plugin_tokens_are_renewed_before_they_expire_and_kept_while_good() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let s = rt
        .block_on(Sandbox::start(SandboxConfig::new(
            "renew",
            home.join("renew"),
        )))
        .unwrap();
    let entry = s.kubeconfig_entry();
    let (expiring_runs, lasting_runs) = (home.join("expiring-runs"), home.join("lasting-runs"));
    // Already expired: every request needs a new token.
    let expiring = token_plugin(
        home,
        "expiring",
        &entry.token,
        "2000-01-01T00:00:00Z",
        &expiring_runs,
    );
    let lasting = token_plugin(
        home,
        "lasting",
        &entry.token,
        "2999-01-01T00:00:00Z",
        &lasting_runs,
    );
    let kc = home.join("kubeconfig");
    kubeconfig(
        &kc,
        &[
            ("expiring", &entry.server, &entry.ca_pem, &expiring),
            ("lasting", &entry.server, &entry.ca_pem, &lasting),
        ],
    );
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let count = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    rt.block_on(async {
        for name in ["expiring", "lasting"] {
            let client = linked.get(name).unwrap().client().await.unwrap();
            for _ in 0..3 {
                client.apiserver_version().await.unwrap();
            }
        }
    });
    // The first run makes the client; each of the 3 requests renews the expired token.
    assert_eq!(count(&expiring_runs), 4);
    // A good token is used for every request.
    assert_eq!(count(&lasting_runs), 1);
    rt.block_on(s.shutdown()).unwrap();
}

/// A TCP server on 127.0.0.1 that answers whatever comes with plain HTTP (no TLS),
/// then closes; stopped when dropped.
fn plain_http() -> (String, Silent) {
    use std::io::Write as _;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut buf = [0u8; 512];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (
        format!("https://{addr}"),
        Silent {
            addr,
            stop,
            thread: Some(thread),
        },
    )
}

#[test]
fn unreachable_clusters_say_what_failed_in_words() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let good = rt
        .block_on(Sandbox::start(SandboxConfig::new(
            "good",
            home.join("good"),
        )))
        .unwrap();
    let other = rt
        .block_on(Sandbox::start(SandboxConfig::new(
            "other",
            home.join("other"),
        )))
        .unwrap();
    let entry = good.kubeconfig_entry();
    let runs = home.join("runs");
    let ok = token_plugin(home, "ok", &entry.token, "2999-01-01T00:00:00Z", &runs);
    let bad = token_plugin(home, "bad", "not-a-token", "2999-01-01T00:00:00Z", &runs);
    // A port nothing listens on: bound, then let go.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    let (plain, _plain_server) = plain_http();
    let other_ca = other.kubeconfig_entry().ca_pem;
    let kc = home.join("kubeconfig");
    kubeconfig(
        &kc,
        &[
            ("refused", &closed, &entry.ca_pem, &ok),
            ("plain", &plain, &entry.ca_pem, &ok),
            ("wrongca", &entry.server, &other_ca, &ok),
            ("badtoken", &entry.server, &entry.ca_pem, &bad),
            ("good", &entry.server, &entry.ca_pem, &ok),
        ],
    );
    let linked = Linked::load(&Sources {
        paths: vec![kc.clone()],
    });
    let word = |name: &str| {
        let c = linked.get(name).unwrap();
        let p = rt.block_on(ferry_providers::probe::probe(c));
        match p.facts {
            Ok(_) => ("ok".to_string(), String::new()),
            Err(e) => (e.word().to_string(), e.to_string()),
        }
    };
    let (w, text) = word("refused");
    assert_eq!(w, "refused", "{text}");
    assert!(
        text.contains(&format!("cannot connect to the API server {closed}"))
            && text.contains("the connection was refused")
            && text.contains("Check that the cluster is running"),
        "{text}"
    );
    for name in ["plain", "wrongca"] {
        let (w, text) = word(name);
        assert_eq!(w, "TLS failed", "{name}: {text}");
        assert!(
            text.contains("the TLS handshake failed") && text.contains("certificate-authority"),
            "{name}: {text}"
        );
    }
    let (w, text) = word("badtoken");
    assert_eq!(w, "unauthorised", "{text}");
    assert!(text.contains("rejected the credentials"), "{text}");
    assert_eq!(word("good").0, "ok");
    drop((good, other));
}

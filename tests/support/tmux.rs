//! A terminal for end-to-end console tests: a tmux server of its own (its own socket),
//! keys sent with `send-keys`, the screen read with `capture-pane`, killed on drop.
//! Reached as `support::tmux`.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A tmux server of its own (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(dir: &Path, env: &[(&str, String)], program: &str) -> Tmux {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "ferry-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "140", "-y", "45", "-s", "ferry", "-c"])
            .arg(dir)
            .arg("env");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(program);
        let st = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run tmux: {e} (install it: apt-get install tmux)"));
        assert!(st.success(), "tmux did not start");
        Tmux { socket }
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    /// Named keys (`Enter`, `Space`, `Escape`, `BSpace`) or single characters.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "ferry", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    pub fn type_text(&self, s: &str) {
        self.tmux(&["send-keys", "-t", "ferry", "-l", s]);
        std::thread::sleep(Duration::from_millis(60));
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "ferry"]).stdout)
            .into_owned()
    }

    /// Waits until the screen shows `needle`; the screen is in the failure message.
    pub fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {needle:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses q (and confirms when asked) until the program has quit.
    pub fn quit(&self) {
        self.keys(&["q"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.running() {
            let s = self.screen();
            if s.contains("Quit?") || s.contains("quit?") {
                self.keys(&["y"]);
            }
            assert!(Instant::now() < deadline, "q did not quit:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn running(&self) -> bool {
        self.tmux(&["has-session", "-t", "ferry"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

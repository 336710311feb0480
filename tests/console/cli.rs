//! The `ferry` binary as a user runs it: the default repository, exit statuses, and
//! kills at arbitrary moments during backup and prune.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{assert_same_tree, bytes, write_file};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// `ferry` with its own XDG folders and no inherited Ferry settings.
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.env("XDG_DATA_HOME", self.p("xdg/data"))
            .env("XDG_CONFIG_HOME", self.p("xdg/config"))
            .env("XDG_STATE_HOME", self.p("xdg/state"))
            .env("HOME", self.p("home"))
            .env_remove("FERRY_REPO")
            .env_remove("FERRY_PASSWORD")
            .env_remove("FERRY_PASSWORD_FILE")
            .env_remove("FERRY_KEY")
            .env_remove("FERRY_KEY_FILE")
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "ferry {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn default_repository_is_created_on_first_use() {
    let e = Env::new();
    write_file(&e.p("src/hello.txt"), b"hello", 0o644, 1_700_000_000);
    let o = e.run(&["backup", e.p("src").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("created the default repository"),
        "{}",
        text(&o)
    );
    assert!(e.p("xdg/data/ferry/repository/config").exists());
    assert!(e.p("xdg/config/ferry/keys/default-repository.key").exists());
    assert!(e.p("xdg/state/ferry/ferry.log").exists());
    let list = e.ok(&["snapshots"]);
    assert!(list.contains("1 snapshot(s)"), "{list}");
    e.ok(&["restore", "latest", "-t", e.p("out").to_str().unwrap()]);
    assert_eq!(std::fs::read(e.p("out/hello.txt")).unwrap(), b"hello");
    let ls = e.ok(&["ls", "latest", "-l"]);
    assert!(
        ls.contains("/hello.txt") && ls.contains("-rw-r--r--"),
        "{ls}"
    );
}

#[test]
fn passwords_keys_and_their_errors() {
    let e = Env::new();
    let repo = e.p("repo");
    let r = repo.to_str().unwrap();
    let o = e
        .cmd()
        .args(["-r", r, "init"])
        .env("FERRY_PASSWORD", "first")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = e
        .cmd()
        .args(["-r", r, "snapshots"])
        .env("FERRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("does not open this repository"),
        "{}",
        text(&o)
    );
    let o = e.run(&["-r", r, "snapshots"]);
    assert!(text(&o).contains("no password or key"), "{}", text(&o));
    let kf = e.p("second.key");
    let o = e
        .cmd()
        .args([
            "-r",
            r,
            "key",
            "add",
            "--generate-key-file",
            kf.to_str().unwrap(),
            "--label",
            "ops",
        ])
        .env("FERRY_PASSWORD", "first")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let list = e.ok(&["-r", r, "--key-file", kf.to_str().unwrap(), "key", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("ops") && list.contains("password"));
    let o = e.run(&[
        "-r",
        e.p("nowhere").to_str().unwrap(),
        "--key-file",
        kf.to_str().unwrap(),
        "snapshots",
    ]);
    assert!(text(&o).contains("ferry init"), "{}", text(&o));
}

#[test]
fn unreadable_files_are_skipped_with_exit_status_3() {
    let e = Env::new();
    std::fs::set_permissions(
        e.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    write_file(&e.p("src/ok.txt"), b"fine", 0o644, 1);
    write_file(&e.p("src/secret.txt"), b"hidden", 0o000, 1);
    write_file(&e.p("src/locked/inner.txt"), b"hidden too", 0o644, 1);
    std::fs::set_permissions(
        e.p("src/locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    // Root reads everything: run as nobody then, from a copy of the binary that nobody
    // can reach (the build folder may sit under a private home).
    let bin = e.p("ferry-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_user = |args: &[&str]| -> Output {
        let mut c = e.cmd();
        if nix::unistd::geteuid().is_root() {
            let mut w = Command::new("setpriv");
            w.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            w.arg(&bin);
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => w.env(k, v),
                    None => w.env_remove(k),
                };
            }
            c = w;
        }
        c.args(args).env("FERRY_PASSWORD", "pw").output().unwrap()
    };
    for d in ["xdg", "home"] {
        std::fs::create_dir_all(e.p(d)).unwrap();
        std::fs::set_permissions(e.p(d), std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
    }
    let r = e.p("repo");
    let o = as_user(&["-r", r.to_str().unwrap(), "init"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = as_user(&[
        "-r",
        r.to_str().unwrap(),
        "backup",
        e.p("src").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("secret.txt") && t.contains("locked"), "{t}");
    assert!(
        t.contains("snapshot"),
        "a snapshot must still be saved: {t}"
    );
    let ls = as_user(&["-r", r.to_str().unwrap(), "ls", "latest"]);
    assert!(
        text(&ls).contains("/ok.txt") && !text(&ls).contains("secret"),
        "{}",
        text(&ls)
    );
}

fn spawn_and_kill(e: &Env, args: &[&str], after: Duration) -> bool {
    let mut child = e
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    finished
}

fn key_args(e: &Env) -> Vec<String> {
    vec![
        "-r".into(),
        e.p("repo").display().to_string(),
        "--key-file".into(),
        e.p("k").display().to_string(),
    ]
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn init_small_packs(e: &Env) -> Vec<String> {
    let o = e.run(&[
        "-r",
        e.p("repo").to_str().unwrap(),
        "init",
        "--pack-size-mib",
        "1",
        "--generate-key-file",
        e.p("k").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    key_args(e)
}

fn check_read_data(e: &Env, base: &[String]) {
    let out = e.ok(&strs(&with(base, &["check", "--read-data"])));
    assert!(out.contains("no errors were found"), "{out}");
}

#[test]
fn a_backup_killed_at_any_moment_loses_nothing_and_resumes() {
    let e = Env::new();
    let base = init_small_packs(&e);
    let src = e.p("src");
    for i in 0..8 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &bytes(4 << 20, i),
            0o644,
            1_700_000_000,
        );
    }
    let src_s = src.to_str().unwrap();
    // Throttled so the kills land mid-transfer; each attempt stores some packs.
    let slow = with(&base, &["--limit-upload", "4MiB", "backup", src_s]);
    for ms in [300u64, 1500, 2500] {
        let finished = spawn_and_kill(&e, &strs(&slow), Duration::from_millis(ms));
        assert!(!finished, "the backup finished before it could be killed");
    }
    let packs_before = walk_count(&e.p("repo/data"));
    assert!(packs_before > 0, "no pack was stored before the kills");
    // The next run completes, reusing what was stored, and clears the dead lock.
    let o = e.run(&strs(&with(&base, &["backup", src_s])));
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("re-indexed"), "{t}");
    check_read_data(&e, &base);
    e.ok(&strs(&with(
        &base,
        &["restore", "latest", "-t", e.p("out").to_str().unwrap()],
    )));
    assert_same_tree(&src, &e.p("out"));
    assert_eq!(walk_count(&e.p("repo/locks")), 0);
}

#[test]
fn a_prune_killed_midway_loses_nothing() {
    let e = Env::new();
    let base = init_small_packs(&e);
    let src = e.p("src");
    for i in 0..6 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &bytes(3 << 20, i),
            0o644,
            1_700_000_000,
        );
    }
    let src_s = src.to_str().unwrap();
    e.ok(&strs(&with(&base, &["backup", src_s])));
    for i in 0..3 {
        std::fs::remove_file(src.join(format!("f{i}.bin"))).unwrap();
    }
    write_file(
        &src.join("late.bin"),
        &bytes(2 << 20, 77),
        0o644,
        1_700_000_100,
    );
    e.ok(&strs(&with(&base, &["backup", src_s])));
    let snaps = e.ok(&strs(&with(&base, &["snapshots"])));
    let first = snaps
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    e.ok(&strs(&with(&base, &["forget", &first])));
    let slow = with(
        &base,
        &["--limit-download", "2MiB", "prune", "--max-unused", "0"],
    );
    for ms in [700u64, 1800] {
        let finished = spawn_and_kill(&e, &strs(&slow), Duration::from_millis(ms));
        assert!(
            ms > 700 || !finished,
            "the prune finished before it could be killed"
        );
        check_read_data(&e, &base);
    }
    let out = e.ok(&strs(&with(&base, &["prune", "--max-unused", "0"])));
    assert!(out.contains("pack(s)"), "{out}");
    check_read_data(&e, &base);
    e.ok(&strs(&with(
        &base,
        &["restore", "latest", "-t", e.p("out").to_str().unwrap()],
    )));
    assert_same_tree(&src, &e.p("out"));
}

#[test]
fn check_exit_status_says_damage() {
    let e = Env::new();
    let base = init_small_packs(&e);
    write_file(&e.p("src/a"), &bytes(300_000, 1), 0o644, 1);
    e.ok(&strs(&with(
        &base,
        &["backup", e.p("src").to_str().unwrap()],
    )));
    let pack = first_file(&e.p("repo/data"));
    let mut d = std::fs::read(&pack).unwrap();
    d[40] ^= 1;
    std::fs::write(&pack, d).unwrap();
    let o = e.run(&strs(&with(&base, &["check", "--read-data"])));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(text(&o).contains(name), "{}", text(&o));
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += walk_count(&p)
        } else {
            n += 1
        }
    }
    n
}

fn first_file(dir: &Path) -> PathBuf {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if walk_count(&p) > 0 {
                return first_file(&p);
            }
        } else {
            return p;
        }
    }
    panic!("no file under {}", dir.display())
}

/// `--path` (or `SNAP:PATH`) restores one file or folder of a snapshot, the engine path
/// filter the console's file restore uses: bytes, modes and times as backed up.
#[test]
fn restore_with_a_path_takes_one_file_or_folder() {
    let e = Env::new();
    write_file(
        &e.p("src/data/x/a.bin"),
        &bytes(50_000, 7),
        0o600,
        1_650_000_000,
    );
    write_file(&e.p("src/data/x/b.txt"), b"b", 0o644, 1_650_000_100);
    write_file(&e.p("src/data/y.txt"), b"not me", 0o644, 1_650_000_200);
    write_file(&e.p("src/top.txt"), b"nor me", 0o644, 1_650_000_300);
    e.ok(&["backup", e.p("src").to_str().unwrap()]);
    let out = e.p("out");
    e.ok(&[
        "restore",
        "latest",
        "--path",
        "/data/x",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&e.p("src/data/x"), &out);
    let one = e.p("one");
    e.ok(&[
        "restore",
        "latest:/data/x/a.bin",
        "-t",
        one.to_str().unwrap(),
    ]);
    let listed: Vec<_> = std::fs::read_dir(&one)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(listed, ["a.bin"]);
    let (src, got) = (common::describe(&e.p("src/data/x")), common::describe(&one));
    assert_eq!(src.get(Path::new("a.bin")), got.get(Path::new("a.bin")));
    let o = e.run(&[
        "restore",
        "latest",
        "--path",
        "/data/nope",
        "-t",
        e.p("none").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nope"), "{}", text(&o));
}

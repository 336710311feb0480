//! Faults and hostile input (issue 14): special files, lost or damaged configs and
//! index files, read-only storage, absurd key files and parameters, restores killed
//! half-way, a full disk, and a password given before the default repository exists.
//!
//! Read-only storage and a full disk are real here: a read-only bind mount and a small
//! tmpfs, made in a mount namespace of their own (`unshare -m`) that the `ferry`
//! processes join with `nsenter`, so nothing is mounted where the rest of the machine
//! sees it. These tests need root (or CAP_SYS_ADMIN), as CI has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_same_tree, bytes, check_repo, do_backup, do_restore, new_repo, write_file};
use ferry_repo::Error;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::progress::Progress;
use ferry_repo::repo::Repository;

// ------------------------------------------------------------------ helpers

/// The `ferry` binary with its own XDG folders and no inherited Ferry settings.
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

    fn setup(&self, c: &mut Command) {
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
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        self.setup(&mut c);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ferry {args:?} failed: {}", text(&o));
        text(&o)
    }

    /// A repository at `repo/` opened by a generated key file `k`: the `-r`/`--key-file`
    /// arguments.
    fn init_keyed(&self, extra: &[&str]) -> Vec<String> {
        let (repo, key) = (self.p("repo"), self.p("k"));
        let mut args = vec![
            "-r",
            repo.to_str().unwrap(),
            "init",
            "--generate-key-file",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
        vec![
            "-r".into(),
            self.p("repo").display().to_string(),
            "--key-file".into(),
            self.p("k").display().to_string(),
        ]
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn with<'a>(base: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    base.iter()
        .map(|s| s.as_str())
        .chain(more.iter().copied())
        .collect()
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!("{what} did not end within {limit:?}: {}", text(&o));
}

/// Runs `f` on its own thread; fails if it has not returned within `limit` (a thread
/// blocked forever is left behind: the test process ends anyway).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not end within {limit:?}"))
}

/// A mount namespace of its own, held by a `sleep` that `unshare` started: mounts made
/// in it are seen only by processes that join it (`cmd`), and go away with it.
struct Namespace {
    holder: Child,
}

impl Namespace {
    fn new() -> Namespace {
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) is needed for the read-only and full-disk tests");
        let ns = Namespace { holder };
        // `unshare` becomes `sleep` once the namespace exists.
        let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let theirs = format!("/proc/{}/ns/mnt", ns.holder.id());
        for _ in 0..200 {
            if std::fs::read_link(&theirs).is_ok_and(|l| l != own)
                && std::fs::read_to_string(format!("/proc/{}/comm", ns.holder.id()))
                    .is_ok_and(|c| c.trim() == "sleep")
            {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("unshare -m did not make a mount namespace (these tests need root)");
    }

    /// `program args...` run inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-m", "--"])
            .arg(program);
        c
    }

    /// Runs a shell command inside the namespace; it must succeed.
    fn sh(&self, script: &str) {
        let o = self
            .command(Path::new("sh"))
            .args(["-c", script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{script}: {}", text(&o));
    }

    /// `ferry` inside the namespace, set up like `env.cmd()`.
    fn ferry(&self, env: &Env) -> Command {
        let mut c = self.command(Path::new(env!("CARGO_BIN_EXE_ferry")));
        env.setup(&mut c);
        c
    }

    /// Where the test (outside) sees `path` as the namespace sees it.
    fn view(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(path.strip_prefix("/").unwrap())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn reopen(path: &Path, rt: &tokio::runtime::Runtime) -> ferry_repo::Result<Repository> {
    Repository::open(
        Arc::new(LocalBackend::new(path)),
        rt.handle().clone(),
        &common::secret(),
    )
}

// ------------------------------------------------------------------ 6: special files

/// A FIFO, a socket and a device node in a snapshot come back as themselves, with
/// their modes and times, and nothing blocks (restore used to open the FIFO to set its
/// times, and waited for a writer forever). Backing up a folder holding them reads none.
#[test]
fn special_files_restore_as_themselves_without_blocking() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    write_file(&src.join("plain.txt"), b"plain", 0o644, 1_700_000_000);
    let fifo = src.join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    let sock = src.join("sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let dev = src.join("null");
    let is_root = nix::unistd::geteuid().is_root();
    if is_root {
        nix::sys::stat::mknod(
            &dev,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
    for (p, secs) in [
        (&fifo, 1_600_000_000),
        (&sock, 1_600_000_100),
        (&dev, 1_600_000_200),
    ] {
        if p.exists() || std::fs::symlink_metadata(p).is_ok() {
            filetime::set_symlink_file_times(
                p,
                filetime::FileTime::from_unix_time(secs, 5),
                filetime::FileTime::from_unix_time(secs, 5),
            )
            .unwrap();
        }
    }

    let repo = t.repo.clone();
    let s = src.clone();
    let snap = within(
        Duration::from_secs(30),
        "a backup of a folder holding a FIFO",
        move || do_backup(&repo, &s),
    );
    let out = t.dir.path().join("out");
    let (repo, o, sn) = (t.repo.clone(), out.clone(), snap.clone());
    let restored = within(Duration::from_secs(30), "a restore of a FIFO", move || {
        do_restore(&repo, &sn, &o, "")
    })
    .unwrap();
    assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);

    let m = std::fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(m.file_type().is_fifo(), "{m:?}");
    assert_eq!(
        (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
        (0o640, 1_600_000_000, 5)
    );
    let m = std::fs::symlink_metadata(out.join("sock")).unwrap();
    assert!(m.file_type().is_socket(), "{m:?}");
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o600, 1_600_000_100));
    if is_root {
        let m = std::fs::symlink_metadata(out.join("null")).unwrap();
        assert!(m.file_type().is_char_device(), "{m:?}");
        assert_eq!(
            (m.rdev(), m.mtime()),
            (nix::sys::stat::makedev(1, 3), 1_600_000_200)
        );
    }
    assert_eq!(std::fs::read(out.join("plain.txt")).unwrap(), b"plain");
}

// ------------------------------------------------------------------ 9: lost or damaged config

/// The default repository whose `config` is gone is not created again over its data
/// (its snapshots used to read as damaged under a new key): commands say what is
/// missing and how to repair it, and putting `config` back is the repair.
#[test]
fn a_default_repository_without_its_config_is_not_recreated() {
    let e = Env::new();
    write_file(&e.p("src/a.txt"), b"kept", 0o644, 1_700_000_000);
    e.ok(&["backup", e.p("src").to_str().unwrap()]);
    let repo = e.p("xdg/data/ferry/repository");
    let config = std::fs::read(repo.join("config")).unwrap();
    let keys_before = files_under(&repo.join("keys"));
    std::fs::remove_file(repo.join("config")).unwrap();

    for args in [
        &["snapshots"][..],
        &["init"][..],
        &["backup", e.p("src").to_str().unwrap()][..],
    ] {
        let o = e.run(args);
        let t = text(&o);
        assert!(!o.status.success(), "ferry {args:?} succeeded: {t}");
        assert!(
            t.contains("no `config` file") && t.contains("1 snapshot file(s)"),
            "{t}"
        );
        assert!(t.contains("Put back `config`"), "{t}");
    }
    assert!(!repo.join("config").exists(), "a new config was written");
    assert_eq!(
        files_under(&repo.join("keys")),
        keys_before,
        "a new key was added"
    );

    std::fs::write(repo.join("config"), config).unwrap();
    let list = e.ok(&["snapshots"]);
    assert!(list.contains("1 snapshot(s)"), "{list}");
}

/// A config that does not decrypt under a key that opens is damage, not a wrong
/// password; a truncated or oversized one too.
#[test]
fn a_damaged_config_is_reported_as_damage() {
    let t = new_repo();
    let path = t.path().join("config");
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    for bad in [flipped, Vec::new(), vec![7u8; 2 << 20]] {
        std::fs::write(&path, &bad).unwrap();
        let err = reopen(&t.path(), &t.rt).unwrap_err();
        assert!(matches!(err, Error::ConfigDamaged { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("config") && msg.contains("damaged") && msg.contains("Put back"),
            "{msg}"
        );
        assert!(!msg.contains("does not open"), "{msg}");
    }
    // A wrong password is still a wrong password.
    std::fs::write(&path, &good).unwrap();
    let wrong = Repository::open(
        Arc::new(LocalBackend::new(t.path())),
        t.rt.handle().clone(),
        &ferry_repo::crypto::Secret::Password("nope".into()),
    )
    .unwrap_err();
    assert!(matches!(wrong, Error::WrongPassword { .. }), "{wrong}");
}

/// An init killed after its key file and before its config is finished by the next
/// init with the same secret (same key); another secret is told what happened.
#[test]
fn an_interrupted_init_is_finished_not_refused() {
    let t = new_repo();
    let key_name = t.repo.key_name().to_string();
    std::fs::remove_file(t.path().join("config")).unwrap();
    let other = Repository::init(
        Arc::new(LocalBackend::new(t.path())),
        t.rt.handle().clone(),
        &ferry_repo::crypto::Secret::Password("someone else".into()),
        &common::init_opts(),
    )
    .unwrap_err();
    assert!(
        matches!(other, Error::UnfinishedInit { keys: 1, .. }),
        "{other}"
    );
    let repo = Repository::init(
        Arc::new(LocalBackend::new(t.path())),
        t.rt.handle().clone(),
        &common::secret(),
        &common::init_opts(),
    )
    .unwrap();
    assert_eq!(repo.key_name(), key_name);
    assert_eq!(files_under(&t.path().join("keys")).len(), 1);
    reopen(&t.path(), &t.rt).unwrap();
}

// ------------------------------------------------------------------ 10: read-only storage

/// Restore, check, snapshots and ls work on a repository mounted read-only, without a
/// lock and saying so; a backup fails with the reason.
#[test]
fn reading_commands_work_on_a_read_only_repository() {
    let e = Env::new();
    let base = e.init_keyed(&[]);
    write_file(&e.p("src/a.bin"), &bytes(200_000, 3), 0o600, 1_700_000_000);
    write_file(&e.p("src/d/b.txt"), b"bee", 0o644, 1_700_000_100);
    e.ok(&with(&base, &["backup", e.p("src").to_str().unwrap()]));
    let ns = Namespace::new();
    let repo = e.p("repo");
    ns.sh(&format!("mount --bind -o ro {0} {0}", repo.display()));
    let run = |args: &[&str]| ns.ferry(&e).args(with(&base, args)).output().unwrap();

    let o = run(&["restore", "latest", "-t", e.p("out").to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("cannot be written") && t.contains("without a lock"),
        "{t}"
    );
    assert_same_tree(&e.p("src"), &e.p("out"));

    let o = run(&["check", "--read-data"]);
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("no errors were found"),
        "{t}"
    );
    assert!(t.contains("without a lock"), "{t}");

    let o = run(&["snapshots"]);
    assert!(
        o.status.success() && text(&o).contains("1 snapshot(s)"),
        "{}",
        text(&o)
    );
    let o = run(&["ls", "latest"]);
    assert!(
        o.status.success() && text(&o).contains("/d/b.txt"),
        "{}",
        text(&o)
    );

    let o = run(&["backup", e.p("src").to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "a backup wrote to a read-only repository"
    );
    assert!(text(&o).contains("Read-only file system"), "{}", text(&o));
    assert!(files_under(&repo.join("locks")).is_empty());
}

// ------------------------------------------------------------------ 11: hostile input

/// Key and password files are read up to a bound: a huge one is refused at once with
/// what is wrong, instead of being read whole (`/dev/zero` grew without end).
#[test]
fn oversized_key_and_password_files_are_refused() {
    let e = Env::new();
    let base = e.init_keyed(&[]);
    let big = e.p("big");
    std::fs::write(&big, bytes(1 << 20, 9)).unwrap();
    for flag in ["--key-file", "--password-file"] {
        let o = e.run(&["-r", &base[1], flag, big.to_str().unwrap(), "snapshots"]);
        assert!(!o.status.success());
        assert!(text(&o).contains("more than 64 KiB"), "{}", text(&o));
    }
    // An endless one too, and quickly.
    let child = e
        .cmd()
        .args(["-r", &base[1], "--key-file", "/dev/zero", "snapshots"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_within(child, Duration::from_secs(10), "ferry --key-file /dev/zero");
    assert!(text(&o).contains("more than 64 KiB"), "{}", text(&o));
}

/// A key file asking Argon2 for absurd memory no longer aborts every command: it is
/// skipped (the real key still opens), and when nothing else opens, the error names it.
#[test]
fn a_key_file_with_absurd_argon2_parameters_is_refused_not_run() {
    let e = Env::new();
    let repo = e.p("repo");
    let r = repo.to_str().unwrap();
    let o = e
        .cmd()
        .args(["-r", r, "init"])
        .env("FERRY_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let real = files_under(&repo.join("keys")).pop().unwrap();
    let mut kf: serde_json::Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    kf["kdf"]["memory_kib"] = serde_json::json!(u32::MAX);
    let hostile = repo.join("keys").join("00".repeat(32));
    std::fs::write(&hostile, serde_json::to_vec(&kf).unwrap()).unwrap();

    let o = e
        .cmd()
        .args(["-r", r, "snapshots"])
        .env("FERRY_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    std::fs::rename(&real, e.p("real-key")).unwrap();
    let o = e
        .cmd()
        .args(["-r", r, "snapshots"])
        .env("FERRY_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&"00".repeat(32)) && t.contains("Argon2id") && t.contains("4194304 KiB"),
        "{t}"
    );
}

// ------------------------------------------------------------------ 12: killed restore

/// A restore killed half-way leaves no file that looks restored but is not (files used
/// to be created at full size, zero-filled, before their data came), and running it
/// again finishes the job.
#[test]
fn a_killed_restore_leaves_no_false_file_and_the_next_run_finishes() {
    let e = Env::new();
    let base = e.init_keyed(&["--pack-size-mib", "1"]);
    let src = e.p("src");
    for i in 0..6 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &bytes(2 << 20, i),
            0o644,
            1_700_000_000,
        );
    }
    write_file(&src.join("small.txt"), b"small", 0o600, 1_700_000_100);
    e.ok(&with(&base, &["backup", src.to_str().unwrap()]));
    let out = e.p("out");
    let restore = with(
        &base,
        &[
            "--limit-download",
            "2MiB",
            "restore",
            "latest",
            "-t",
            out.to_str().unwrap(),
        ],
    );
    let mut child = e
        .cmd()
        .args(&restore)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it is writing files (the transfer takes some 6 s at 2 MiB/s).
    let writing = || {
        files_under(&out).iter().any(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".ferry-part.")
        })
    };
    let start = std::time::Instant::now();
    while !writing() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the restore ended before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let mut named = 0;
    let mut partial = 0;
    for p in files_under(&out) {
        let name = p.file_name().unwrap().to_str().unwrap();
        if name.starts_with(".ferry-") {
            partial += 1;
            continue;
        }
        named += 1;
        let rel = p.strip_prefix(&out).unwrap();
        let (got, want) = (
            std::fs::read(&p).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
        );
        assert!(
            got == want,
            "{} has its name but not its content ({} of its {} bytes are zero)",
            rel.display(),
            got.iter().filter(|b| **b == 0).count(),
            got.len()
        );
    }
    assert!(
        named < 7 && partial > 0,
        "the kill did not interrupt the restore ({named} files)"
    );

    let t = e.ok(&restore);
    assert!(t.contains("finishing the interrupted restore"), "{t}");
    assert_same_tree(&src, &out);
}

// ------------------------------------------------------------------ 13: full disk

/// A backup that runs out of disk leaves no staging behind, and once there is room the
/// retry succeeds. Staging left by a dead process is removed before a job writes
/// anything, even its lock, so it cannot keep the disk full.
#[test]
fn a_backup_on_a_full_disk_cleans_up_and_the_retry_succeeds() {
    let e = Env::new();
    let ns = Namespace::new();
    let repo = e.p("repo");
    std::fs::create_dir_all(&repo).unwrap();
    ns.sh(&format!(
        "mount -t tmpfs -o size=8m ferry-full {}",
        repo.display()
    ));
    let key = e.p("k");
    let r = repo.to_str().unwrap();
    let k = key.to_str().unwrap();
    let ferry = |args: &[&str]| -> Output {
        ns.ferry(&e)
            .args(["-r", r, "--key-file", k])
            .args(args)
            .output()
            .unwrap()
    };
    let o = ns
        .ferry(&e)
        .args([
            "-r",
            r,
            "init",
            "--pack-size-mib",
            "1",
            "--generate-key-file",
            k,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let src = e.p("src");
    for i in 0..6 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &bytes(3 << 20, 40 + i),
            0o644,
            1_700_000_000,
        );
    }
    let inside = ns.view(&repo);

    let o = ferry(&["backup", src.to_str().unwrap()]);
    assert!(!o.status.success(), "18 MiB fit in 8: {}", text(&o));
    assert!(text(&o).contains("No space left on device"), "{}", text(&o));
    let left = files_under(&inside.join("tmp"));
    assert!(left.is_empty(), "staging left behind: {left:?}");
    assert!(files_under(&inside.join("locks")).is_empty());

    ns.sh(&format!("mount -o remount,size=64m {}", repo.display()));
    let o = ferry(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    // A dead process's staging that fills the disk is no obstacle to the next job.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let name = ferry_repo::backend::local::staging_name().unwrap();
    let mut parts: Vec<&str> = name.splitn(3, '.').collect();
    let dead = dead.to_string();
    parts[1] = &dead;
    let stale = repo.join("tmp").join(parts.join("."));
    ns.sh(&format!(
        "dd if=/dev/zero of={} bs=1M count=100 2>/dev/null; true",
        stale.display()
    ));
    assert!(inside.join("tmp").join(stale.file_name().unwrap()).exists());
    write_file(
        &src.join("new.bin"),
        &bytes(1 << 20, 99),
        0o644,
        1_700_000_500,
    );
    let o = ferry(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(files_under(&inside.join("tmp")).is_empty());
    let o = ferry(&["check", "--read-data"]);
    assert!(text(&o).contains("no errors were found"), "{}", text(&o));
    let o = ferry(&["restore", "latest", "-t", e.p("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_same_tree(&src, &e.p("out"));
}

// ------------------------------------------------------------------ 14: index damage

/// Two snapshots, each with its own index file; the second's index file lost or
/// damaged. `check` and `restore` agree on which snapshot is affected (restore used to
/// refuse both when an index file was damaged), and both name `ferry repair-index`.
#[test]
fn check_and_restore_agree_on_what_index_damage_affects() {
    for damage in ["lost", "damaged"] {
        let t = new_repo();
        let a = t.dir.path().join("a");
        let b = t.dir.path().join("b");
        write_file(&a.join("one"), &bytes(300_000, 1), 0o644, 1);
        write_file(&b.join("two"), &bytes(300_000, 2), 0o644, 1);
        let sa = do_backup(&t.repo, &a);
        let first_index = files_under(&t.path().join("index"));
        let sb = do_backup(&t.repo, &b);
        let second = files_under(&t.path().join("index"))
            .into_iter()
            .find(|f| !first_index.contains(f))
            .unwrap();
        if damage == "lost" {
            std::fs::remove_file(&second).unwrap();
        } else {
            let mut d = std::fs::read(&second).unwrap();
            d[60] ^= 1;
            std::fs::write(&second, d).unwrap();
        }

        let repo = reopen(&t.path(), &t.rt).unwrap();
        let report = check_repo(&repo, false);
        assert_eq!(
            report.affected_snapshots,
            vec![sb.id],
            "{damage}: {:?}",
            report.errors
        );
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("ferry repair-index")),
            "{damage}: {:?}",
            report.notes
        );

        let repo = reopen(&t.path(), &t.rt).unwrap();
        for s in [&sa, &sb] {
            let out = t.dir.path().join(format!("out-{}", s.id.short()));
            let r = do_restore(&repo, s, &out, "");
            let affected = report.affected_snapshots.contains(&s.id);
            match r {
                Ok(_) => assert!(
                    !affected,
                    "{damage}: restore of an affected snapshot succeeded"
                ),
                Err(err) => {
                    assert!(
                        affected,
                        "{damage}: restore of an intact snapshot failed: {err}"
                    );
                    let msg = err.to_string();
                    assert!(msg.contains("ferry repair-index"), "{damage}: {msg}");
                    assert!(
                        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
                        "{damage}: a restore that cannot succeed wrote files"
                    );
                }
            }
        }
        assert_same_tree(&a, &t.dir.path().join(format!("out-{}", sa.id.short())));

        ferry_repo::repair::rebuild_index(&repo, &Arc::new(Progress::new())).unwrap();
        let repo = reopen(&t.path(), &t.rt).unwrap();
        assert!(check_repo(&repo, true).ok());
        let out = t.dir.path().join("out-b-repaired");
        do_restore(&repo, &sb, &out, "").unwrap();
        assert_same_tree(&b, &out);
    }
}

/// `ferry check` after an index file was deleted says to run `ferry repair-index`.
#[test]
fn check_names_repair_index_for_a_deleted_index() {
    let e = Env::new();
    let base = e.init_keyed(&[]);
    write_file(&e.p("src/a.bin"), &bytes(100_000, 5), 0o644, 1);
    e.ok(&with(&base, &["backup", e.p("src").to_str().unwrap()]));
    for f in files_under(&e.p("repo/index")) {
        std::fs::remove_file(f).unwrap();
    }
    let o = e.run(&with(&base, &["check"]));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("ferry repair-index"), "{}", text(&o));
    let o = e.run(&with(
        &base,
        &["restore", "latest", "-t", e.p("out").to_str().unwrap()],
    ));
    assert!(!o.status.success());
    assert!(text(&o).contains("ferry repair-index"), "{}", text(&o));
}

// ------------------------------------------------------------------ 15: password first

/// With FERRY_PASSWORD set when the default repository is first used, the repository
/// is made for that password, which then opens it.
#[test]
fn a_password_given_before_the_default_repository_exists_opens_it() {
    let e = Env::new();
    write_file(&e.p("src/a.txt"), b"a", 0o644, 1_700_000_000);
    let o = e
        .cmd()
        .args(["backup", e.p("src").to_str().unwrap()])
        .env("FERRY_PASSWORD", "chosen")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("FERRY_PASSWORD"), "{}", text(&o));
    let o = e
        .cmd()
        .args(["snapshots"])
        .env("FERRY_PASSWORD", "chosen")
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("1 snapshot(s)"),
        "{}",
        text(&o)
    );
    assert!(!e.p("xdg/config/ferry/keys/default-repository.key").exists());
    let o = e
        .cmd()
        .args(["snapshots"])
        .env("FERRY_PASSWORD", "other")
        .output()
        .unwrap();
    assert!(text(&o).contains("does not open"), "{}", text(&o));
}

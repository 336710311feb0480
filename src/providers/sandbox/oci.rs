//! Containers isolated by an OCI runtime (`runc`, or `crun`), where the machine has one
//! and the sandbox runs as root. A container of an image the sandbox holds then runs as
//! a real runtime runs it: its own root filesystem (the image's files, written into the
//! pod's folder), its own mount, PID, IPC and UTS namespaces, the pod's volumes
//! bind-mounted at their container paths (read-only where the mount or the volume type
//! says so), the user and capabilities of its `securityContext`. No command is
//! rewritten: `/data/my file` is `/data/my file`, whatever the host path is.
//!
//! The pod's `fsGroup` owns its claims and emptyDirs (`runtime.rs` gives them to it
//! before a container starts). What stays the sandbox's: the network (containers share
//! the host's loopback, so probes and ports are on 127.0.0.1), cgroups (no limits are
//! set), seccomp (no filter), and `privileged` (a few more capabilities, not all).
//!
//! The runtime is chosen once per process: `FERRY_SANDBOX_RUNTIME` names a binary (or
//! `none` to turn isolation off), else `runc` then `crun` from `PATH`; the one chosen
//! must run a container (a runtime that cannot, such as crun 1.8 under hybrid cgroups,
//! is skipped and logged). Debian's `/usr/sbin` is searched even when `PATH` lacks
//! it. Without a runtime, `runtime.rs` maps paths instead.
//!
//! Each cluster keeps its runtime state in `<cluster>/runc`, and a container's id is
//! `<pod uid>-<container>`: one run at a time, deleted when it ends.
//!
//! Owns bundles (config.json, the root filesystem) and the runtime's command lines. Must
//! not decide what a container mounts (`runtime.rs` does) nor run processes itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The OCI runtime binary the sandbox isolates containers with.
#[derive(Debug)]
pub struct Runtime {
    binary: PathBuf,
}

/// The runtime, when there is one that works here and the sandbox is root.
pub fn runtime() -> Option<&'static Runtime> {
    static FOUND: OnceLock<Option<Runtime>> = OnceLock::new();
    FOUND.get_or_init(find).as_ref()
}

fn find() -> Option<Runtime> {
    if !nix::unistd::geteuid().is_root() {
        tracing::info!("sandbox: not root, containers run without isolation");
        return None;
    }
    let busybox = super::runtime::host_busybox()?;
    let candidates: Vec<PathBuf> = match std::env::var_os("FERRY_SANDBOX_RUNTIME") {
        Some(v) if v == "none" || v.is_empty() => {
            tracing::info!("sandbox: FERRY_SANDBOX_RUNTIME=none, containers run without isolation");
            return None;
        }
        Some(v) => vec![PathBuf::from(v)],
        None => {
            // Debian puts runc in /usr/sbin, which a user's PATH may lack.
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs: Vec<PathBuf> = std::env::split_paths(&path)
                .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
                .collect();
            ["runc", "crun"]
                .iter()
                .filter_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
                .collect()
        }
    };
    for binary in candidates {
        let rt = Runtime { binary };
        match rt.works(&busybox) {
            Ok(()) => {
                tracing::info!("sandbox: containers isolated by {}", rt.binary.display());
                return Some(rt);
            }
            Err(e) => tracing::warn!(
                "sandbox: {} cannot run a container here ({e}); trying the next",
                rt.binary.display()
            ),
        }
    }
    None
}

impl Runtime {
    /// Runs `true` in a throw-away container.
    fn works(&self, busybox: &Path) -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("ferry-oci-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = (|| {
            let rootfs = dir.join("rootfs");
            populate(&rootfs, busybox, &dir.join("image")).map_err(|e| e.to_string())?;
            let config = Config {
                args: vec!["/bin/true".into()],
                env: vec![format!("PATH={PATH}")],
                cwd: "/".into(),
                hostname: "probe".into(),
                user: User::default(),
                caps: default_caps(),
                no_new_privileges: true,
                readonly_root: false,
                mounts: Vec::new(),
            };
            write_config(&dir, &rootfs, &config).map_err(|e| e.to_string())?;
            let out = std::process::Command::new(&self.binary)
                .arg("--root")
                .arg(dir.join("state"))
                .args(["run", "--bundle"])
                .arg(&dir)
                .arg(format!("ferry-probe-{}", std::process::id()))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
            }
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// `PATH` in the busybox image.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities a container gets from containerd and CRI-O when its
/// `securityContext` adds or drops none.
fn default_caps() -> Vec<String> {
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect()
}

/// What `privileged: true` adds (a real runtime grants every capability; these are the
/// ones a container would notice).
const PRIVILEGED: &[&str] = &[
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_RESOURCE",
    "DAC_READ_SEARCH",
    "SYS_TIME",
    "IPC_LOCK",
    "LINUX_IMMUTABLE",
];

/// The user a container's processes run as.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// One bind mount: the host path at the container path.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub container: String,
    pub host: PathBuf,
    pub read_only: bool,
}

/// The process and mounts of one container (config.json, less the runtime's defaults).
#[derive(Debug, Clone)]
struct Config {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    hostname: String,
    user: User,
    caps: Vec<String>,
    no_new_privileges: bool,
    readonly_root: bool,
    /// Shortest container path first (a mount inside another comes after it).
    mounts: Vec<BindMount>,
}

impl Config {
    /// The container's process and mounts, from its pod's and its own
    /// `securityContext` (the container's wins), without `args` (set at each run).
    fn of(
        pod: &Value,
        ctr: &Value,
        mut mounts: Vec<BindMount>,
        env: &[(String, String)],
    ) -> Config {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        mounts.sort_by_key(|m| m.container.len());
        let psc = &pod["spec"]["securityContext"];
        let sc = &ctr["securityContext"];
        let pick = |key: &str| sc[key].as_u64().or_else(|| psc[key].as_u64());
        let as_id = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let mut groups: Vec<u32> = psc["supplementalGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(as_id)
            .collect();
        groups.extend(psc["fsGroup"].as_u64().map(as_id));
        groups.sort_unstable();
        groups.dedup();
        let user = User {
            uid: pick("runAsUser").map(as_id).unwrap_or(0),
            gid: pick("runAsGroup").map(as_id).unwrap_or(0),
            groups,
        };
        let names = |key: &str| -> Vec<String> {
            sc["capabilities"][key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|c| {
                    let c = c.to_ascii_uppercase();
                    if c.starts_with("CAP_") {
                        c
                    } else {
                        format!("CAP_{c}")
                    }
                })
                .collect()
        };
        let mut caps = default_caps();
        if sc["privileged"].as_bool() == Some(true) {
            caps.extend(PRIVILEGED.iter().map(|c| format!("CAP_{c}")));
        }
        let drop = names("drop");
        if drop.iter().any(|c| c == "CAP_ALL") {
            caps.clear();
        } else {
            caps.retain(|c| !drop.contains(c));
        }
        for c in names("add") {
            if c != "CAP_ALL" && !caps.contains(&c) {
                caps.push(c);
            }
        }
        let mut vars = vec![format!("PATH={PATH}"), format!("HOSTNAME={pod_name}")];
        for (k, v) in env {
            vars.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
            vars.push(format!("{k}={v}"));
        }
        Config {
            args: Vec::new(),
            env: vars,
            cwd: ctr["workingDir"]
                .as_str()
                .filter(|w| w.starts_with('/'))
                .unwrap_or("/")
                .to_string(),
            hostname: pod["spec"]["hostname"]
                .as_str()
                .filter(|h| !h.is_empty())
                .unwrap_or(pod_name)
                .to_string(),
            user,
            caps,
            no_new_privileges: sc["allowPrivilegeEscalation"].as_bool() == Some(false),
            readonly_root: sc["readOnlyRootFilesystem"].as_bool() == Some(true),
            mounts,
        }
    }
}

/// A container of a pod, as the runtime runs it.
#[derive(Debug, Clone)]
pub struct Bundle {
    runtime: &'static Runtime,
    /// The cluster's runtime state folder (`--root`).
    state: PathBuf,
    id: String,
    /// The bundle folder (config.json).
    dir: PathBuf,
    rootfs: PathBuf,
    /// The cluster's copy of the image's files.
    image: PathBuf,
    config: Config,
}

impl Bundle {
    /// The bundle of container `ctr` of `pod`, in `cluster_dir`, with its volumes at
    /// `mounts` and its environment `env` (already expanded). `None` without a runtime.
    pub fn plan(
        cluster_dir: &Path,
        pod: &Value,
        ctr: &Value,
        mounts: Vec<BindMount>,
        env: &[(String, String)],
    ) -> Option<Bundle> {
        let runtime = runtime()?;
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let uid = pod["metadata"]["uid"].as_str().unwrap_or(pod_name);
        let name = ctr["name"].as_str().unwrap_or("");
        // A container's name is a DNS label; anything else shares one folder.
        let own = Some(name)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or("-");
        let pod_dir = cluster_dir.join("pods").join(uid);
        Some(Bundle {
            runtime,
            state: cluster_dir.join("runc"),
            id: format!("{uid}-{own}"),
            dir: pod_dir.join("bundles").join(own),
            rootfs: pod_dir.join("rootfs").join("containers").join(own),
            image: cluster_dir.join("images").join("busybox-rootfs"),
            config: Config::of(pod, ctr, mounts, env),
        })
    }

    /// Makes the container's root filesystem (once; blocking I/O).
    pub fn prepare(&self, busybox: &Path) -> std::io::Result<()> {
        populate(&self.rootfs, busybox, &self.image)
    }

    /// Before a run: ends what is left of an earlier run of this container (a sandbox
    /// that was killed) and writes config.json with `argv` (blocking I/O).
    pub fn reset(&self, argv: &[String]) -> std::io::Result<()> {
        self.delete();
        let mut config = self.config.clone();
        // A runtime running in the foreground copies the container's stdout and stderr
        // through two pipes of its own, so lines written to both would reach the log out
        // of order: the image's shell puts stderr on stdout, then becomes the command.
        config.args = ["/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"]
            .iter()
            .map(|a| a.to_string())
            .chain(argv.iter().cloned())
            .collect();
        write_config(&self.dir, &self.rootfs, &config)
    }

    fn base(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.runtime.binary);
        cmd.arg("--root").arg(&self.state).process_group(0);
        cmd
    }

    /// The command that runs the container (its config.json, from [`Bundle::reset`]) in
    /// the foreground: stdio are the container's, its exit status the container's.
    pub fn run(&self) -> (tokio::process::Command, Stop) {
        let mut cmd = self.base();
        cmd.args(["run", "--bundle"]).arg(&self.dir).arg(&self.id);
        (cmd, Stop::Container(self.stopper()))
    }

    /// The command that runs `argv` in the running container, as `kubectl exec` does.
    pub fn exec(&self, argv: &[String]) -> (tokio::process::Command, Stop) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Beside the runtime's state, not in it (its folder is the runtime's own).
        let pid_file = self
            .state
            .with_file_name("runc-exec")
            .join(format!("{}-{n}.pid", std::process::id()));
        if let Some(d) = pid_file.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let mut cmd = self.base();
        let u = &self.config.user;
        cmd.arg("exec")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--cwd")
            .arg(&self.config.cwd)
            .arg("--user")
            .arg(format!("{}:{}", u.uid, u.gid));
        for g in &u.groups {
            cmd.arg("--additional-gids").arg(g.to_string());
        }
        if self.config.no_new_privileges {
            cmd.arg("--no-new-privs");
        }
        for e in &self.config.env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg(&self.id).args(argv);
        (cmd, Stop::Exec(pid_file))
    }

    /// Waits until the runtime says the container runs (its process started: an exec
    /// into it works from then on) or stopped; at most `limit`. Whether it runs.
    pub async fn wait_running(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let out = self
                .base()
                .arg("state")
                .arg(&self.id)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .await;
            let status = out.ok().and_then(|o| {
                serde_json::from_slice::<Value>(&o.stdout)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
            });
            match status.as_deref() {
                Some("running") => return true,
                Some("stopped") => return false,
                _ if tokio::time::Instant::now() >= deadline => return false,
                _ => tokio::time::sleep(std::time::Duration::from_millis(15)).await,
            }
        }
    }

    fn stopper(&self) -> Container {
        Container {
            binary: self.runtime.binary.clone(),
            state: self.state.clone(),
            id: self.id.clone(),
        }
    }

    fn delete(&self) {
        self.stopper().delete();
    }
}

/// Deletes the containers a cluster's earlier process left running (a sandbox that was
/// killed leaves its containers behind; their pods may be gone). Blocking.
pub fn sweep(cluster_dir: &Path) {
    let state = cluster_dir.join("runc");
    let Ok(entries) = std::fs::read_dir(&state) else {
        return;
    };
    let Some(rt) = runtime() else { return };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let id = e.file_name().to_string_lossy().into_owned();
        tracing::info!("sandbox: deleting the container {id} an earlier run left");
        Container {
            binary: rt.binary.clone(),
            state: state.clone(),
            id,
        }
        .delete();
    }
    let _ = std::fs::remove_dir_all(cluster_dir.join("runc-exec"));
}

/// A container by its id, to delete.
#[derive(Debug, Clone)]
pub struct Container {
    binary: PathBuf,
    state: PathBuf,
    id: String,
}

impl Container {
    /// Kills the container's processes and removes it (blocking; nothing when it is
    /// gone already).
    fn delete(&self) {
        if !self.state.join(&self.id).exists() {
            return;
        }
        let _ = std::process::Command::new(&self.binary)
            .arg("--root")
            .arg(&self.state)
            .args(["delete", "--force"])
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What ends a process started through the runtime, besides killing the runtime's own
/// process: the container runs in its own session, out of reach of its process group.
#[derive(Debug)]
pub enum Stop {
    /// A container run: delete it (its PID namespace dies with its first process).
    Container(Container),
    /// An exec: kill the process group of the process the runtime started.
    Exec(PathBuf),
}

impl Stop {
    /// Ends the container or the exec'd process (blocking, briefly). While the
    /// runtime's process still runs (`runtime_alive`), an exec's pid file may not be
    /// written yet (a loaded machine starves the runtime while the process it started
    /// already runs): it is waited for, two seconds at most.
    pub fn stop(&self, runtime_alive: bool) {
        match self {
            Stop::Container(c) => c.delete(),
            Stop::Exec(pid_file) => {
                let read = || {
                    std::fs::read_to_string(pid_file)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok())
                        .filter(|p| *p > 1)
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                let mut pid = read();
                while pid.is_none() && runtime_alive && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    pid = read();
                }
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }

    /// Removes what the stop needed (the exec's pid file).
    pub fn forget(&self) {
        if let Stop::Exec(pid_file) = self {
            let _ = std::fs::remove_file(pid_file);
        }
    }
}

/// The applets of the busybox binary, as paths in the image (`bin/sh`, `usr/bin/env`).
fn applets(busybox: &Path) -> std::io::Result<&'static [String]> {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(l) = LIST.get() {
        return Ok(l);
    }
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .stdin(Stdio::null())
        .output()?;
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('/') && !l.split('/').any(|p| p == ".."))
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(std::io::Error::other(format!(
            "{} --list-full printed no applets",
            busybox.display()
        )));
    }
    Ok(LIST.get_or_init(|| list))
}

/// Writes the busybox image's files into `rootfs` (once): `/bin/busybox` (a hard link
/// to the cluster's copy `image`, never to the host's binary) and its applets as links to
/// it, `/etc/passwd` and `/etc/group` as in the image, the usual empty folders.
fn populate(rootfs: &Path, busybox: &Path, image: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if rootfs.join("bin").join("sh").exists() {
        return Ok(());
    }
    let binary = image.join("busybox");
    if !binary.exists() {
        std::fs::create_dir_all(image)?;
        let tmp = image.join(format!(".busybox-{}", std::process::id()));
        std::fs::copy(busybox, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &binary)?;
    }
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "home",
        "proc",
        "dev",
        "sys",
        "var/tmp",
        "tmp",
        "var/spool/mail",
        "var/www",
    ] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    for d in ["tmp", "var/tmp"] {
        std::fs::set_permissions(rootfs.join(d), std::fs::Permissions::from_mode(0o1777))?;
    }
    std::fs::set_permissions(rootfs.join("root"), std::fs::Permissions::from_mode(0o700))?;
    let own = rootfs.join("bin").join("busybox");
    if !own.exists() && std::fs::hard_link(&binary, &own).is_err() {
        std::fs::copy(&binary, &own)?;
    }
    let files: [(&str, &str); 4] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
             bin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\n\
             sync:x:4:100:sync:/bin:/bin/sync\nmail:x:8:8:mail:/var/spool/mail:/bin/false\n\
             www-data:x:33:33:www-data:/var/www:/bin/false\noperator:x:37:37:Operator:/var:/bin/false\n\
             nobody:x:65534:65534:nobody:/home:/bin/false\n",
        ),
        (
            "etc/group",
            "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n\
             wheel:x:10:root\nmail:x:12:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65533:\n\
             nobody:x:65534:\n",
        ),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        ("etc/resolv.conf", ""),
    ];
    for (path, text) in files {
        std::fs::write(rootfs.join(path), text)?;
    }
    // The applets last: `bin/sh` says the root filesystem is whole.
    let mut list: Vec<&String> = applets(busybox)?.iter().collect();
    list.sort_by_key(|a| a.as_str() == "bin/sh");
    for applet in list {
        let link = rootfs.join(applet);
        if link.exists() || link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)?;
    }
    Ok(())
}

/// Writes `dir/config.json` for `config`, with the runtime's usual defaults (the
/// mounts of `/proc`, `/dev` and `/sys`, the masked and read-only paths).
fn write_config(dir: &Path, rootfs: &Path, config: &Config) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for m in &config.mounts {
        mounts.push(json!({
            "destination": m.container,
            "type": "bind",
            "source": m.host,
            "options": ["rbind", if m.read_only { "ro" } else { "rw" }],
        }));
    }
    let caps = &config.caps;
    let process = json!({
        "terminal": false,
        "user": {
            "uid": config.user.uid,
            "gid": config.user.gid,
            "additionalGids": config.user.groups,
        },
        "args": config.args,
        "env": config.env,
        "cwd": config.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": config.no_new_privileges,
    });
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": config.readonly_root},
        "hostname": config.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    let bytes = serde_json::to_vec_pretty(&spec).map_err(std::io::Error::other)?;
    super::write_atomic(&dir.join("config.json"), &bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_context_sets_user_groups_and_capabilities() {
        let pod = json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000, 2000]}},
        });
        let ctr = json!({
            "name": "c",
            "workingDir": "/work",
            "securityContext": {"runAsGroup": 10, "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]}},
        });
        let mounts = vec![
            BindMount {
                container: "/data/sub".into(),
                host: "/h/b".into(),
                read_only: true,
            },
            BindMount {
                container: "/data".into(),
                host: "/h/a".into(),
                read_only: false,
            },
        ];
        let env = [
            ("PATH".to_string(), "/opt".to_string()),
            ("A".into(), "1".into()),
        ];
        let c = Config::of(&pod, &ctr, mounts, &env);
        assert_eq!(
            c.user,
            User {
                uid: 1000,
                gid: 10,
                groups: vec![2000, 3000]
            }
        );
        assert_eq!(c.caps, vec!["CAP_NET_BIND_SERVICE".to_string()]);
        assert!(c.no_new_privileges && c.readonly_root);
        assert_eq!(c.cwd, "/work");
        assert_eq!(c.hostname, "p");
        assert_eq!(c.env, vec!["HOSTNAME=p", "PATH=/opt", "A=1"]);
        // A mount inside another comes after it.
        assert_eq!(c.mounts[0].container, "/data");
    }

    #[test]
    fn without_a_security_context_root_with_the_default_capabilities() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let ctr = json!({"name": "c", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}});
        let c = Config::of(&pod, &ctr, Vec::new(), &[]);
        assert_eq!(c.user, User::default());
        assert_eq!(c.cwd, "/");
        assert!(!c.no_new_privileges);
        assert!(c.caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!c.caps.contains(&"CAP_NET_RAW".to_string()));
    }
}

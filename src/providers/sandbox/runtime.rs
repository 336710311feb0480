//! The container view, for pod exec and for the containers the kubelet runs
//! (`kubelet.rs`). Where the sandbox runs as root and the machine has an OCI runtime,
//! containers of images the sandbox holds (`busybox`) are isolated by it (`oci.rs`):
//! their own root filesystem and namespaces, the volumes below bind-mounted at their
//! container paths (read-only where `readOnly` or the volume type says so), nothing
//! rewritten. Otherwise the command runs as a process on the host, with the container's
//! view of its volumes mapped to host folders. What is real then: the process, its
//! stdin/stdout/stderr, its exit status, and the files it reads and writes in the pod's
//! volumes. What is emulated: the filesystem (only the volume mounts are mapped; every
//! other absolute path is the host's own, so `/bin/sh` and `tar` are the host's, GNU
//! tools as in a Debian image), the environment, read-only mounts (writable), and
//! isolation (there is none: the process has the sandbox's user and rights). Containers
//! of `busybox` images run the real busybox's applets when the host has busybox
//! (Debian's `busybox-static`): their PATH holds only those, so what works in the
//! sandbox works with the tools real mover pods meet (busybox's `tar` has no `-T` and no
//! `--transform`).
//!
//! Before the kubelet starts a container, the pod's `fsGroup` is given the claims and
//! emptyDirs it mounts, as a kubelet does (`fsGroupChangePolicy` honoured).
//!
//! Mapping, from a pod's `spec.volumes`:
//! - `persistentVolumeClaim` (and `ephemeral`, whose claim is `<pod>-<volume>`): the claim's
//!   bound PersistentVolume, then its `spec.csi.volumeHandle` → [`Cluster::volume_dir`], or
//!   its `spec.hostPath.path` (used as is inside the sandbox folder, else mapped below
//!   `<sandbox>/hostpath/`);
//! - `hostPath`: `<sandbox>/hostpath/<path>` (never the host's real path);
//! - `emptyDir` and any other type: `<sandbox>/pods/<pod uid>/volumes/<volume>`;
//! - `/tmp` and `/var/tmp`, unless a volume is mounted there: the container's own,
//!   `<sandbox>/pods/<pod uid>/rootfs/containers/<container>/…`;
//! - `configMap`, `secret`, `projected` (with the pod's bound service account token),
//!   `downwardAPI`: their keys written as files into
//!   such a folder at each exec (read-only by intent: changes are overwritten next time).
//!
//! Without isolation, the command is rewritten so it sees container paths: an argument
//! that is an absolute path under a `mountPath` (longest prefix; also `--opt=/path` and
//! `-C/path`) becomes the host path; in the script of `sh -c` / `bash -c`, mount paths at path boundaries are
//! rewritten in the text; `tar` creating an archive from rewritten paths gets GNU tar
//! `--transform`s so member names still read as container paths. Relative paths resolve
//! against the working directory: the container's `workingDir` mapped (a mount, else below
//! the pod's `<sandbox>/pods/<uid>/rootfs`), else that rootfs folder. Host paths with
//! spaces or quotes in a sandbox folder would break rewritten scripts: keep the data
//! directory's path plain.
//!
//! The process runs in its own process group, which is killed when the leader exits, when
//! the client leaves, or when the sandbox stops: nothing an exec starts outlives it (an
//! isolated container's processes are out of the group's reach: the runtime deletes the
//! container, or the exec'd process's own group is killed).
//!
//! Owns the container view: what it mounts, its folders and files on disk, and how a
//! command is launched in it. What the view is made of is read by `sources.rs`; the
//! processes are `process.rs`'s. Must not speak HTTP or WebSocket (`exec.rs` does) nor
//! change objects.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::oci;
pub use super::process::{Launch, Process, exit_code};
use super::sources::{
    bad, claim_dir, container_env, expand, host_path_dir, safe_relative, volume_files,
};
use super::verbs::{ApiError, ApiResult, Cluster};

/// One volume mount: the container path and the host folder (or file) behind it.
#[derive(Debug, Clone)]
pub struct Mount {
    pub container: String,
    pub host: PathBuf,
    /// `readOnly: true`, or a volume that is always read-only (configMap, secret,
    /// projected, downwardAPI). Enforced only where an OCI runtime isolates the
    /// container.
    pub read_only: bool,
}

/// Files written into a folder at each exec (configMap, secret, projected, downwardAPI).
#[derive(Debug, Clone)]
struct Materialized {
    dir: PathBuf,
    files: BTreeMap<String, (Vec<u8>, u32)>,
}

/// The container as a process sees it: built from the store under the lock
/// ([`ContainerView::plan`]), then made real on disk ([`ContainerView::prepare`]).
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Longest container path first.
    mounts: Vec<Mount>,
    folders: Vec<PathBuf>,
    materialized: Vec<Materialized>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    /// The image's own programs, when the sandbox has them (busybox images run the
    /// real busybox's applets, not the host's GNU tools).
    tools: Option<Tools>,
    /// The container as an OCI runtime runs it, isolated (`oci.rs`): then nothing is
    /// rewritten, and `mounts`, `cwd` and `env` are only what the bundle was made of.
    oci: Option<oci::Bundle>,
    /// The pod's `fsGroup`, the volumes it owns, and whether to change them all each
    /// time (`fsGroupChangePolicy: Always`) or only when their top folder differs.
    fs_group: Option<FsGroup>,
}

#[derive(Debug, Clone)]
struct FsGroup {
    gid: u32,
    always: bool,
    volumes: Vec<PathBuf>,
}

/// A folder of an image's programs, made from one binary: busybox's applets, or the
/// single program of an image the sandbox was given ([`hold_image`]).
#[derive(Debug, Clone)]
struct Tools {
    dir: PathBuf,
    binary: PathBuf,
    /// The program's name for a single-program image; `None` for busybox.
    program: Option<String>,
}

/// Images the sandbox was given, by repository name (the last part of the image
/// reference, without tag or digest), each a single static program.
static HELD: std::sync::RwLock<Vec<(String, PathBuf)>> = std::sync::RwLock::new(Vec::new());

/// Makes the sandbox run containers of the images named `name` (`ferry-agent` holds
/// `ghcr.io/x/ferry-agent:0.1.0` and `ferry-agent@sha256:…`) as the program `binary`,
/// as the image's only program: this is how the sandbox "pulls" Ferry's agent image,
/// whose image holds just that binary. Process-wide; a later call for the same name
/// replaces the binary.
pub fn hold_image(name: &str, binary: PathBuf) {
    let mut held = HELD
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    held.retain(|(n, _)| n != name);
    held.push((name.to_string(), binary));
}

/// The entrypoint of a held single-program image: its program (`None` for busybox's
/// image, which has none, and for images the sandbox does not hold).
pub fn entrypoint(image: &str) -> Option<Vec<String>> {
    held_program(image).map(|(name, _)| vec![name])
}

/// The repository name of an image reference: `reg:5000/a/b:tag@sha256:…` → `b`.
fn image_name(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split(':').next().unwrap_or(last)
}

/// The program of a held single-program image.
fn held_program(image: &str) -> Option<(String, PathBuf)> {
    let name = image_name(image);
    HELD.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(n, _)| n == name)
        .cloned()
}

/// The host's busybox, if installed (Debian's `busybox-static` is the binary of the
/// `busybox` image).
pub(crate) fn host_busybox() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|d| d.join("busybox"))
                .find(|p| p.is_file())
        })
        .clone()
}

/// Whether `image` is a busybox image (`busybox`, `busybox:1.36`,
/// `registry.example.com/library/busybox@sha256:…`).
fn is_busybox(image: &str) -> bool {
    image_name(image) == "busybox"
}

/// Folders every container writes to that must not be the host's: each container gets
/// its own below its pod's rootfs.
const SCRATCH: &[&str] = &["/tmp", "/var/tmp"];

/// Whether the sandbox holds `image` and runs it for real (a busybox image, when the
/// host has busybox).
pub fn holds(image: &str) -> bool {
    (is_busybox(image) && host_busybox().is_some()) || held_program(image).is_some()
}

impl ContainerView {
    /// The view of `container` (by name, or the only one) in the Running pod `pod`.
    /// Errors are the `Status` errors of a real API server (400 for a container that
    /// does not exist or a pod that is not running).
    pub fn plan(
        c: &Cluster,
        ns: &str,
        pod: &Value,
        container: Option<&str>,
    ) -> ApiResult<(String, ContainerView)> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let containers: Vec<&Value> = pod["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let names: Vec<&str> = containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let ctr = match container.filter(|c| !c.is_empty()) {
            Some(name) => containers
                .iter()
                .find(|c| c["name"] == name)
                .ok_or_else(|| {
                    bad(format!(
                        "container {name} is not valid for pod {pod_name}: choose one of {names:?}"
                    ))
                })?,
            None if containers.len() == 1 => &containers[0],
            None => {
                return Err(bad(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: {names:?}"
                )));
            }
        };
        let ctr_name = ctr["name"].as_str().unwrap_or("").to_string();
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        if phase != "Running" {
            return Err(bad(format!(
                "cannot exec into a container in a pod that is not running; pod {pod_name} \
                 is {phase}: wait until it is Running (kubectl wait --for=condition=Ready pod/{pod_name})"
            )));
        }
        // A container the kubelet runs must be running now (not crashed, not waiting).
        let running = pod["status"]["containerStatuses"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == ctr_name.as_str()))
            .is_some_and(|s| s["state"]["running"].is_object());
        if holds(ctr["image"].as_str().unwrap_or("")) && !running {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("container not found (\"{ctr_name}\")"),
            ));
        }
        Ok((ctr_name, ContainerView::of(c, ns, pod, ctr)?))
    }

    /// The view of the container `ctr` (an entry of the pod's `containers` or
    /// `initContainers`), whatever the pod's phase.
    pub fn of(c: &Cluster, ns: &str, pod: &Value, ctr: &Value) -> ApiResult<ContainerView> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let ctr_name = ctr["name"].as_str().unwrap_or("");
        // The container's environment first: `subPathExpr` expands its variables.
        let env = container_env(c, ns, pod, ctr)?;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or(pod_name);
        let pod_dir = c.dir.join("pods").join(uid);
        let rootfs = pod_dir.join("rootfs");
        let mut folders = vec![rootfs.clone()];
        let mut materialized = Vec::new();
        let mut volumes: HashMap<String, PathBuf> = HashMap::new();
        // Volumes a kubelet always mounts read-only (their files are the API's).
        let mut fixed: Vec<&str> = Vec::new();
        // Volumes whose files the pod's `fsGroup` owns (claims and emptyDir; not
        // hostPath).
        let mut grouped: Vec<PathBuf> = Vec::new();
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let vname = v["name"].as_str().unwrap_or("");
            let own = pod_dir.join("volumes").join(vname);
            let host = if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                let d = claim_dir(c, ns, vname, claim)?;
                grouped.push(d.clone());
                d
            } else if v.get("ephemeral").is_some() {
                let d = claim_dir(c, ns, vname, &format!("{pod_name}-{vname}"))?;
                grouped.push(d.clone());
                d
            } else if let Some(p) = v["hostPath"]["path"].as_str() {
                host_path_dir(c, p)
            } else if let Some(files) = volume_files(c, ns, pod, v)? {
                fixed.push(vname);
                materialized.push(Materialized {
                    dir: own.clone(),
                    files,
                });
                own
            } else {
                grouped.push(own.clone());
                own
            };
            folders.push(host.clone());
            volumes.insert(vname.to_string(), host);
        }
        let mut mounts = Vec::new();
        for m in ctr["volumeMounts"].as_array().into_iter().flatten() {
            let vname = m["name"].as_str().unwrap_or("");
            let path = m["mountPath"].as_str().unwrap_or("");
            let base = volumes.get(vname).ok_or_else(|| {
                bad(format!(
                    "the container {ctr_name} mounts the volume {vname:?}, which pod {pod_name} does not declare"
                ))
            })?;
            let sub = match m["subPathExpr"].as_str().filter(|s| !s.is_empty()) {
                Some(expr) => Some(expand(expr, &env)),
                None => m["subPath"].as_str().map(str::to_string),
            };
            let host = match sub.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let rel = safe_relative(sub).ok_or_else(|| {
                        bad(format!(
                            "the subPath {sub:?} of volume {vname} is not a relative path inside it"
                        ))
                    })?;
                    let h = base.join(rel);
                    // A subPath into a ConfigMap, Secret or projected volume names one
                    // of its files (`my.cnf`), which `prepare` writes: a folder must
                    // not take its place. Elsewhere the kubelet makes the folder.
                    if !materialized.iter().any(|m| m.dir == *base) {
                        folders.push(h.clone());
                    }
                    h
                }
                None => base.clone(),
            };
            let container = normalize(path);
            if container == "/" || !container.starts_with('/') {
                continue;
            }
            let read_only = m["readOnly"].as_bool() == Some(true) || fixed.contains(&vname);
            mounts.push(Mount {
                container,
                host,
                read_only,
            });
        }
        let psc = &pod["spec"]["securityContext"];
        let fs_group = psc["fsGroup"]
            .as_u64()
            .and_then(|g| u32::try_from(g).ok())
            .map(|gid| FsGroup {
                gid,
                always: psc["fsGroupChangePolicy"].as_str() != Some("OnRootMismatch"),
                volumes: grouped,
            });
        // Isolated by an OCI runtime: the mounts are bind mounts, nothing is mapped.
        if is_busybox(ctr["image"].as_str().unwrap_or(""))
            && let Some(busybox) = host_busybox()
        {
            let binds = mounts
                .iter()
                .map(|m| oci::BindMount {
                    container: m.container.clone(),
                    host: m.host.clone(),
                    read_only: m.read_only,
                })
                .collect();
            if let Some(bundle) = oci::Bundle::plan(&c.dir, pod, ctr, binds, &env) {
                mounts.sort_by_key(|m| std::cmp::Reverse(m.container.len()));
                return Ok(ContainerView {
                    mounts,
                    folders,
                    materialized,
                    cwd: rootfs,
                    env,
                    fs_group,
                    tools: Some(Tools {
                        dir: c.dir.join("images").join("busybox").join("bin"),
                        binary: busybox,
                        program: None,
                    }),
                    oci: Some(bundle),
                });
            }
        }
        // The container's own scratch folders, where the image has them: in the pod's
        // rootfs, not the host's (each container of a real runtime has its own).
        for scratch in SCRATCH {
            if !mounts.iter().any(|m| m.container == *scratch) {
                // A container's name is a DNS label; anything else shares one folder.
                let own = Some(ctr_name)
                    .filter(|n| safe_relative(n).is_some_and(|p| p.components().count() == 1))
                    .unwrap_or("-");
                let host = rootfs
                    .join("containers")
                    .join(own)
                    .join(scratch.trim_start_matches('/'));
                folders.push(host.clone());
                mounts.push(Mount {
                    container: (*scratch).to_string(),
                    host,
                    read_only: false,
                });
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.container.len()));
        let mut view = ContainerView {
            mounts,
            folders,
            materialized,
            cwd: rootfs.clone(),
            env: Vec::new(),
            tools: None,
            oci: None,
            fs_group,
        };
        if is_busybox(ctr["image"].as_str().unwrap_or(""))
            && let Some(binary) = host_busybox()
        {
            view.tools = Some(Tools {
                dir: c.dir.join("images").join("busybox").join("bin"),
                binary,
                program: None,
            });
        } else if let Some((name, binary)) = held_program(ctr["image"].as_str().unwrap_or("")) {
            view.tools = Some(Tools {
                dir: c.dir.join("images").join(&name).join("bin"),
                binary,
                program: Some(name),
            });
        }
        if let Some(wd) = ctr["workingDir"].as_str().filter(|w| w.starts_with('/')) {
            let cwd = view
                .map_path(wd)
                .map(PathBuf::from)
                .unwrap_or_else(|| rootfs.join(wd.trim_start_matches('/')));
            view.folders.push(cwd.clone());
            view.cwd = cwd;
        }
        view.env = env
            .into_iter()
            .map(|(k, v)| {
                let v = view.map_path(&v).unwrap_or(v);
                (k, v)
            })
            .collect();
        Ok(view)
    }

    /// `s` with the container's `$(VAR)` references expanded, as the kubelet expands a
    /// container's command and args (host paths mapped like the variables themselves,
    /// unless the container is isolated).
    pub fn expand(&self, s: &str) -> String {
        expand(s, &self.env)
    }

    /// Whether the container runs the image's own programs (an image the sandbox holds).
    pub fn held(&self) -> bool {
        self.tools.is_some()
    }

    /// Creates the folders and writes the files the view needs (blocking I/O).
    pub fn prepare(&self) -> std::io::Result<()> {
        // One at a time: an exec and the kubelet may prepare the same pod's folders at
        // once, and one must not take away the other's files (below) half-written.
        static PREPARING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = PREPARING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (&self.oci, &self.tools) {
            (Some(bundle), Some(t)) => bundle.prepare(&t.binary)?,
            (None, Some(t)) => install_applets(t)?,
            _ => {}
        }
        for f in &self.folders {
            std::fs::create_dir_all(f)?;
        }
        for m in &self.materialized {
            std::fs::create_dir_all(&m.dir)?;
            for (rel, (bytes, mode)) in &m.files {
                let path = m.dir.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                super::write_atomic(&path, bytes)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
            }
            // Keys removed since the last exec disappear, as on a kubelet.
            for entry in std::fs::read_dir(&m.dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let kept = m
                    .files
                    .keys()
                    .any(|k| k == &name || k.starts_with(&format!("{name}/")));
                if !kept {
                    let p = entry.path();
                    if entry.file_type()?.is_dir() {
                        std::fs::remove_dir_all(p)?;
                    } else {
                        std::fs::remove_file(p)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The host path of the absolute container path `p`, when a mount holds it.
    pub fn map_path(&self, p: &str) -> Option<String> {
        let m = self.mounts.iter().find(|m| at_boundary(p, &m.container))?;
        let rest = &p[m.container.len()..];
        Some(format!("{}{rest}", m.host.display()))
    }

    /// One argument rewritten: `/path`, `--opt=/path`, `-C/path`.
    fn rewrite_arg(&self, a: &str) -> Option<String> {
        if a.starts_with('/') {
            return self.map_path(a);
        }
        if let Some((opt, value)) = a.split_once('=')
            && opt.starts_with("--")
            && value.starts_with('/')
        {
            return self.map_path(value).map(|v| format!("{opt}={v}"));
        }
        if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") && a[2..].starts_with('/') {
            return self.map_path(&a[2..]).map(|v| format!("{}{v}", &a[..2]));
        }
        None
    }

    /// The mount paths in a shell script, rewritten where they stand at path boundaries.
    fn rewrite_script(&self, script: &str) -> String {
        let mut out = String::with_capacity(script.len());
        let mut prev: Option<char> = None;
        let mut i = 0;
        while i < script.len() {
            let rest = &script[i..];
            let boundary_before = prev.is_none_or(|c| !is_path_char(c));
            if boundary_before
                && let Some(m) = self.mounts.iter().find(|m| {
                    rest.starts_with(m.container.as_str())
                        && rest[m.container.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| c == '/' || !is_path_char(c))
                })
            {
                out.push_str(&m.host.display().to_string());
                i += m.container.len();
                prev = m.container.chars().last();
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
        out
    }

    /// The host argv for the container command `argv`.
    pub fn rewrite_command(&self, argv: &[String]) -> Vec<String> {
        let program = argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_default();
        let shell = matches!(program.as_str(), "sh" | "bash" | "dash" | "ash" | "zsh");
        let mut out = Vec::with_capacity(argv.len() + 2);
        let mut script_next = false;
        let mut script_done = false;
        let mut transforms = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            if i == 0 {
                out.push(a.clone());
                continue;
            }
            if script_next {
                out.push(self.rewrite_script(a));
                script_next = false;
                script_done = true;
                continue;
            }
            if shell
                && !script_done
                && a.len() >= 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].contains('c')
            {
                script_next = true;
                out.push(a.clone());
                continue;
            }
            match self.rewrite_arg(a) {
                Some(host) => {
                    if a.starts_with('/') {
                        transforms.push((host.clone(), a.clone()));
                    }
                    out.push(host);
                }
                None => out.push(a.clone()),
            }
        }
        if matches!(program.as_str(), "tar" | "gtar") && tar_creates(argv) && !transforms.is_empty()
        {
            transforms.sort_by_key(|(h, _)| std::cmp::Reverse(h.len()));
            let extra = transforms.into_iter().map(|(host, container)| {
                format!(
                    "--transform=s|^/*{}|{}|S",
                    bre_escape(host.trim_start_matches('/')),
                    sed_replacement_escape(container.trim_start_matches('/'))
                )
            });
            // After everything (GNU tar reads options anywhere), before a `--`: in front,
            // they would take the place of an old-style `cf -`'s archive argument.
            let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
            let mut with = out;
            for (k, t) in extra.enumerate() {
                with.insert(at + k, t);
            }
            return with;
        }
        out
    }

    /// Before the kubelet starts the container with `argv` (blocking I/O): the volumes
    /// given to the pod's `fsGroup`, an isolated container's config.json, and what is
    /// left of an earlier run removed.
    pub fn reset(&self, argv: &[String]) -> std::io::Result<()> {
        if let Some(g) = &self.fs_group {
            for v in &g.volumes {
                give_to_group(v, g.gid, g.always)?;
            }
        }
        match &self.oci {
            Some(bundle) => bundle.reset(argv),
            None => Ok(()),
        }
    }

    /// The container's own process, as the kubelet starts it (after [`Self::reset`]).
    pub fn start(&self, argv: &[String], pod_name: &str) -> Option<Launch> {
        match &self.oci {
            Some(bundle) => {
                let (cmd, stop) = bundle.run();
                Some(Launch {
                    cmd,
                    stop: Some(stop),
                })
            }
            None => self.command(argv, pod_name),
        }
    }

    /// After [`Self::start`]: waits until the container runs (an isolated container's
    /// runtime needs a moment after its process starts), at most `limit`.
    pub async fn started(&self, limit: std::time::Duration) {
        if let Some(bundle) = &self.oci {
            bundle.wait_running(limit).await;
        }
    }

    /// A command run in the container, as `kubectl exec` and exec probes run it: ready
    /// to spawn, in its own process group.
    pub fn command(&self, argv: &[String], pod_name: &str) -> Option<Launch> {
        if argv.is_empty() {
            return None;
        }
        if let Some(bundle) = &self.oci {
            let (cmd, stop) = bundle.exec(argv);
            return Some(Launch {
                cmd,
                stop: Some(stop),
            });
        }
        self.host_command(argv, pod_name)
            .map(|cmd| Launch { cmd, stop: None })
    }

    /// The command on the host: host argv, working directory, environment, own process
    /// group.
    fn host_command(&self, argv: &[String], pod_name: &str) -> Option<tokio::process::Command> {
        let argv = self.rewrite_command(argv);
        let (program, args) = argv.split_first()?;
        // Archiving absolute container paths needs GNU tar's --transform to keep member
        // names as the container sees them (a real container has them mounted there):
        // busybox's tar cannot, so the host's tar stands in for that one command.
        let translated = program.rsplit('/').next() == Some("tar")
            && args.iter().any(|a| a.starts_with("--transform="));
        let (program, path) = match self.tools.as_ref().filter(|_| !translated) {
            // The image's programs only, as in the image: `/bin/sh` and `sh` alike.
            Some(t) => {
                let base = program.rsplit('/').next().unwrap_or(program);
                let own = t.dir.join(base);
                let program = if own.exists() || !program.contains('/') {
                    own
                } else {
                    PathBuf::from(program)
                };
                (program, t.dir.clone().into_os_string())
            }
            None => (
                PathBuf::from(program),
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            ),
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", path)
            .env("HOSTNAME", pod_name)
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Some(cmd)
    }
}

/// Gives the volume at `root` to group `gid` as a kubelet does for a pod's `fsGroup`:
/// every file and folder in the group, readable and writable by it, folders setgid so
/// new files join it. With `always` false (`OnRootMismatch`), a volume whose top folder
/// is already so is left as it is.
fn give_to_group(root: &Path, gid: u32, always: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    const DIR: u32 = 0o2070;
    const FILE: u32 = 0o060;
    let top = std::fs::symlink_metadata(root)?;
    if !always && top.gid() == gid && top.mode() & DIR == DIR {
        return Ok(());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        std::os::unix::fs::lchown(&path, None, Some(gid))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() {
            mode | DIR
        } else if mode & 0o100 != 0 {
            mode | FILE | 0o010
        } else {
            mode | FILE
        };
        if want != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Links every applet of the busybox binary, or the single program of a held image,
/// into the tools folder (once).
fn install_applets(t: &Tools) -> std::io::Result<()> {
    let first = t.program.as_deref().unwrap_or("sh");
    if let Ok(target) = std::fs::read_link(t.dir.join(first)) {
        if target == t.binary {
            return Ok(());
        }
        // A held image given another binary since (a rebuilt agent).
        let _ = std::fs::remove_dir_all(&t.dir);
    }
    let listed = match &t.program {
        Some(p) => p.clone(),
        None => {
            let out = std::process::Command::new(&t.binary)
                .arg("--list")
                .output()?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    // One folder per attempt: execs starting together in one process must not fill
    // (or delete) each other's.
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = t
        .dir
        .with_extension(format!("tmp-{}-{attempt}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for applet in listed.lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink(&t.binary, tmp.join(applet))?;
    }
    if let Some(parent) = t.dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(&tmp, &t.dir) {
        Ok(()) => Ok(()),
        // Another exec made it meanwhile.
        Err(_) if t.dir.join(first).exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | '~' | '+' | '@' | '%')
}

/// `p` is `prefix` or below it.
fn at_boundary(p: &str, prefix: &str) -> bool {
    p.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn normalize(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

/// Whether the tar command line creates an archive (`c` in the first letters, `-c...`,
/// `--create`).
fn tar_creates(argv: &[String]) -> bool {
    argv.iter().skip(1).enumerate().any(|(i, a)| {
        a == "--create"
            || (a.starts_with('-') && !a.starts_with("--") && a[1..].contains('c'))
            || (i == 0 && !a.starts_with('-') && a.contains('c'))
    })
}

/// `s` as a literal in a POSIX basic regular expression with `|` as delimiter.
fn bre_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '.' | '[' | ']' | '\\' | '*' | '^' | '$' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn sed_replacement_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '&' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ContainerView {
        let mut mounts = vec![
            Mount {
                container: "/ferry/src".into(),
                host: "/h/vol/a".into(),
                read_only: false,
            },
            Mount {
                container: "/data".into(),
                host: "/h/vol/b".into(),
                read_only: false,
            },
            Mount {
                container: "/data/sub".into(),
                host: "/h/vol/c".into(),
                read_only: false,
            },
        ];
        mounts.sort_by_key(|m| std::cmp::Reverse(m.container.len()));
        ContainerView {
            mounts,
            folders: vec![],
            materialized: vec![],
            cwd: "/h/rootfs".into(),
            env: vec![],
            tools: None,
            oci: None,
            fs_group: None,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments_map_at_path_boundaries_with_the_longest_mount() {
        let v = view();
        assert_eq!(v.map_path("/data/sub/x").as_deref(), Some("/h/vol/c/x"));
        assert_eq!(v.map_path("/data/x").as_deref(), Some("/h/vol/b/x"));
        assert_eq!(v.map_path("/data").as_deref(), Some("/h/vol/b"));
        assert_eq!(v.map_path("/database"), None);
        assert_eq!(
            v.rewrite_command(&s(&["ls", "--dir=/data/x", "-C/ferry/src", "/etc", "rel"])),
            s(&["ls", "--dir=/h/vol/b/x", "-C/h/vol/a", "/etc", "rel"])
        );
    }

    #[test]
    fn shell_scripts_are_rewritten_in_place() {
        let v = view();
        let out = v.rewrite_command(&s(&[
            "sh",
            "-c",
            "cd /ferry/src && ls /data/sub '/data' /database x/data \"/data\"/y",
            "/data",
        ]));
        assert_eq!(
            out,
            s(&[
                "sh",
                "-c",
                "cd /h/vol/a && ls /h/vol/c '/h/vol/b' /database x/data \"/h/vol/b\"/y",
                "/h/vol/b"
            ])
        );
    }

    #[test]
    fn tar_creating_from_mounts_keeps_container_member_names() {
        let v = view();
        let out = v.rewrite_command(&s(&["tar", "cf", "-", "/data/x"]));
        assert_eq!(
            out,
            s(&[
                "tar",
                "cf",
                "-",
                "/h/vol/b/x",
                "--transform=s|^/*h/vol/b/x|data/x|S"
            ])
        );
        // Extraction and -C with relative members need no transform.
        let out = v.rewrite_command(&s(&["tar", "-x", "-f", "-", "-C", "/data"]));
        assert_eq!(out, s(&["tar", "-x", "-f", "-", "-C", "/h/vol/b"]));
    }

    #[test]
    fn applets_installed_by_execs_starting_together_are_all_there() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        // A multi-call binary with many applets, so that the execs overlap.
        let binary = dir.path().join("multi");
        std::fs::write(
            &binary,
            "#!/bin/sh\ni=0\nwhile [ $i -lt 1500 ]; do echo a$i; i=$((i+1)); done\necho sh\n",
        )
        .unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tools = Tools {
            program: None,
            dir: dir.path().join("images/multi/bin"),
            binary,
        };
        let barrier = std::sync::Barrier::new(8);
        let results: Vec<std::io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        install_applets(&tools)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
        let installed = std::fs::read_dir(&tools.dir).unwrap().count();
        assert_eq!(installed, 1501);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("images/multi"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["bin"]);
    }
}

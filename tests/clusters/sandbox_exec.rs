//! Pod exec on an in-process sandbox, through kube-rs (`Api::<Pod>::exec`) and the real
//! kubectl 1.33: the commands Ferry's mover pod issues, streaming through `tar`, stdin,
//! exit codes, environment, volumes, errors, and the process's end when the client leaves.
//!
//! Pods are made Running here through the status subresource, and claims bound by hand
//! (a PersistentVolume with a CSI volumeHandle, a claim with `spec.volumeName`), so these
//! tests need no controller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, AttachedProcess, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Env {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    client: Client,
    kubeconfig: PathBuf,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::start(SandboxConfig::new("exec", dir.path().join("state")))
            .await
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &[sandbox.kubeconfig_entry()]).unwrap();
        let client = client_as(&kubeconfig, None).await;
        Env {
            dir,
            sandbox,
            client,
            kubeconfig,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A PersistentVolume with a CSI handle and a claim bound to it; returns the host
    /// folder holding the volume's data.
    async fn bound_claim(&self, claim: &str) -> PathBuf {
        let handle = format!("pv-{claim}");
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = serde_json::from_value(json!({
            "metadata": {"name": handle},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "csi": {"driver": "sandbox.ferry.dev", "volumeHandle": handle},
                     "claimRef": {"namespace": "default", "name": claim}}
        }))
        .unwrap();
        pvs.create(&PostParams::default(), &pv).await.unwrap();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), "default");
        let pvc = serde_json::from_value(json!({
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": handle,
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .unwrap();
        pvcs.create(&PostParams::default(), &pvc).await.unwrap();
        pvcs.patch_status(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
        let host = self.state().join("volumes").join(&handle);
        std::fs::create_dir_all(&host).unwrap();
        host
    }

    /// Creates a pod from `spec` and waits until its containers run.
    async fn running_pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        for _ in 0..300 {
            let p = self.pods().get(name).await.unwrap();
            let status = p.status.clone().unwrap_or_default();
            let running = status.phase.as_deref() == Some("Running")
                && status.container_statuses.as_ref().is_some_and(|cs| {
                    cs.iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                });
            if running {
                return p;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the pod {name} never ran its containers");
    }

    async fn stop(self) {
        self.sandbox.shutdown().await.unwrap();
    }
}

async fn client_as(kubeconfig: &Path, token: Option<&str>) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    if let Some(t) = token {
        config.auth_info.token = Some(t.to_string().into());
    }
    Client::try_from(config).unwrap()
}

fn mover_spec(claim: &str, mount: &str) -> serde_json::Value {
    json!({
        "containers": [{"name": "mover", "image": "busybox", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "data", "mountPath": mount}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    })
}

fn params() -> AttachParams {
    AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true)
        .max_stdout_buf_size(1024 * 1024)
        .max_stdin_buf_size(1024 * 1024)
}

/// What one exec printed and how it ended.
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Status,
}

impl Output {
    fn exit_code(&self) -> i32 {
        if self.status.status.as_deref() == Some("Success") {
            return 0;
        }
        assert_eq!(
            self.status.reason.as_deref(),
            Some("NonZeroExitCode"),
            "{:?}",
            self.status
        );
        let causes = self
            .status
            .details
            .as_ref()
            .unwrap()
            .causes
            .as_ref()
            .unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
        causes[0].message.as_deref().unwrap().parse().unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `command` in `pod`, feeding `stdin` (then closing it) if given.
async fn exec(pods: &Api<Pod>, pod: &str, command: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let mut p = pods
        .exec(pod, command.to_vec(), &params().stdin(stdin.is_some()))
        .await
        .unwrap();
    finish(&mut p, stdin).await
}

async fn finish(p: &mut AttachedProcess, stdin: Option<Vec<u8>>) -> Output {
    let status = p.take_status().unwrap();
    let mut out = p.stdout().unwrap();
    let mut err = p.stderr().unwrap();
    let feed = stdin.map(|data| {
        let mut w = p.stdin().unwrap();
        tokio::spawn(async move {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        })
    });
    let read_err = tokio::spawn(async move {
        let mut v = Vec::new();
        err.read_to_end(&mut v).await.unwrap();
        v
    });
    let mut stdout = Vec::new();
    out.read_to_end(&mut stdout).await.unwrap();
    if let Some(f) = feed {
        f.await.unwrap();
    }
    let stderr = read_err.await.unwrap();
    let status = status.await.expect("a Status on channel 3");
    Output {
        stdout,
        stderr,
        status,
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Relative path → (size, blake3) of every file below `root`, and the folders.
fn digest(root: &Path) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), (0, String::new()));
                stack.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.insert(
                    rel,
                    (
                        bytes.len() as u64,
                        blake3::hash(&bytes).to_hex().to_string(),
                    ),
                );
            }
        }
    }
    out
}

/// 64 MiB: large random files, compressible text, many small files, nested folders.
fn fill(root: &Path) -> u64 {
    let mut total = 0;
    for i in 0..3 {
        let data = noise(i + 1, 16 * 1024 * 1024);
        total += data.len() as u64;
        std::fs::write(root.join(format!("random-{i}.bin")), data).unwrap();
    }
    let text: Vec<u8> = b"ferry moves volumes with tar through pod exec\n"
        .iter()
        .copied()
        .cycle()
        .take(15 * 1024 * 1024)
        .collect();
    total += text.len() as u64;
    std::fs::write(root.join("compressible.txt"), text).unwrap();
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for i in 0..256u64 {
        let data = noise(1000 + i, 4096);
        total += data.len() as u64;
        std::fs::write(root.join(format!("sub/small-{i}")), data).unwrap();
    }
    std::fs::write(root.join("sub/deeper/empty"), b"").unwrap();
    std::fs::write(root.join("name with spaces.txt"), b"spaced\n").unwrap();
    total + 7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mover_commands_stream_a_volume_out_and_back_byte_identical() {
    let env = Env::start().await;
    let src_dir = env.bound_claim("src").await;
    let dst_dir = env.bound_claim("dst").await;
    let total = fill(&src_dir);
    env.running_pod("mover-src", mover_spec("src", "/ferry/src"))
        .await;
    env.running_pod("mover-dst", mover_spec("dst", "/ferry/dst"))
        .await;
    let pods = env.pods();

    // The listing the mover asks for: mode, size, mtime, uid, gid, name.
    let listing = exec(
        &pods,
        "mover-src",
        &[
            "sh",
            "-c",
            "cd /ferry/src && find . -mindepth 1 -exec stat -c \"%f %s %Y %u %g %n\" {} +",
        ],
        None,
    )
    .await;
    assert_eq!(
        listing.exit_code(),
        0,
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let expected = digest(&src_dir);
    let mut listed = BTreeMap::new();
    for line in listing.text().lines() {
        let f: Vec<&str> = line.splitn(6, ' ').collect();
        assert_eq!(f.len(), 6, "{line}");
        let mode = u32::from_str_radix(f[0], 16).unwrap();
        let name = f[5].strip_prefix("./").unwrap();
        let name = if mode & 0o170000 == 0o040000 {
            format!("{name}/")
        } else {
            name.to_string()
        };
        listed.insert(name, f[1].parse::<u64>().unwrap());
    }
    assert_eq!(listed.len(), expected.len());
    for (name, (size, _)) in &expected {
        if !name.ends_with('/') {
            assert_eq!(listed.get(name), Some(size), "{name}");
        }
    }

    // tar out of one pod, into the other, concurrently, through kube-rs.
    let start = Instant::now();
    let mut out = pods
        .exec(
            "mover-src",
            ["tar", "-c", "-f", "-", "-C", "/ferry/src", "."],
            &params(),
        )
        .await
        .unwrap();
    let mut inp = pods
        .exec(
            "mover-dst",
            ["tar", "-x", "-f", "-", "-C", "/ferry/dst"],
            &params().stdin(true),
        )
        .await
        .unwrap();
    let out_status = out.take_status().unwrap();
    let in_status = inp.take_status().unwrap();
    let mut reader = out.stdout().unwrap();
    let mut writer = inp.stdin().unwrap();
    let mut in_stdout = inp.stdout().unwrap();
    let drain = tokio::spawn(async move {
        let mut v = Vec::new();
        in_stdout.read_to_end(&mut v).await.unwrap();
        v
    });
    let copied = tokio::io::copy(&mut reader, &mut writer).await.unwrap();
    writer.shutdown().await.unwrap();
    drop(writer); // v5: the server closes tar's stdin.
    let s = out_status.await.unwrap();
    assert_eq!(s.status.as_deref(), Some("Success"), "{s:?}");
    let s = in_status.await.unwrap();
    assert_eq!(s.status.as_deref(), Some("Success"), "{s:?}");
    drain.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(copied >= total, "{copied} < {total}");
    println!(
        "exec throughput: {:.1} MiB in {secs:.2} s = {:.1} MiB/s (tar out and tar in, kube-rs)",
        copied as f64 / 1048576.0,
        copied as f64 / 1048576.0 / secs
    );
    assert_eq!(digest(&dst_dir), expected);

    // Names on stdin, closed through the v5 close signal: the shell's loop ends there.
    // (A busybox image's tar has no `-T`, and the sandbox runs the real busybox.)
    let names = b"sub/small-7\nname with spaces.txt\nsub/deeper\n".to_vec();
    let archive = exec(
        &pods,
        "mover-src",
        &[
            "sh",
            "-c",
            "cd /ferry/src && set -- && while IFS= read -r n; do set -- \"$@\" \"$n\"; done && tar -c -f - \"$@\"",
        ],
        Some(names),
    )
    .await;
    assert_eq!(
        archive.exit_code(),
        0,
        "{}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let listed = tar_list(&archive.stdout);
    assert_eq!(
        listed,
        [
            "sub/small-7",
            "name with spaces.txt",
            "sub/deeper/",
            "sub/deeper/empty"
        ]
    );

    // `tar -c ... -C /ferry/src .` into a fresh folder of the destination.
    let archive = exec(
        &pods,
        "mover-src",
        &["tar", "-c", "-f", "-", "-C", "/ferry/src", "sub"],
        None,
    )
    .await;
    assert_eq!(archive.exit_code(), 0);
    let r = exec(
        &pods,
        "mover-dst",
        &[
            "sh",
            "-c",
            "mkdir -p /ferry/dst/again && tar -x -f - -C /ferry/dst/again",
        ],
        Some(archive.stdout),
    )
    .await;
    assert_eq!(r.exit_code(), 0, "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read(dst_dir.join("again/sub/small-9")).unwrap(),
        std::fs::read(src_dir.join("sub/small-9")).unwrap()
    );

    // Absolute operands keep their container names.
    let archive = exec(
        &pods,
        "mover-src",
        &["tar", "cf", "-", "/ferry/src/sub/deeper"],
        None,
    )
    .await;
    assert_eq!(archive.exit_code(), 0);
    assert_eq!(
        tar_list(&archive.stdout),
        ["ferry/src/sub/deeper/", "ferry/src/sub/deeper/empty"]
    );

    // A failing command gives its exit code and its stderr.
    let r = exec(
        &pods,
        "mover-src",
        &["tar", "-x", "-f", "-", "-C", "/ferry/src/missing"],
        Some(b"junk".to_vec()),
    )
    .await;
    assert_ne!(r.exit_code(), 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("tar"),
        "{:?}",
        r.stderr
    );
    env.stop().await;
}

fn tar_list(archive: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-t", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data).unwrap());
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("./").unwrap_or(l).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_commands_with_the_containers_environment_and_volumes() {
    let env = Env::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"mode": "fast", "app.conf": "port=8080\n", "my.cnf": "[mysqld]\nport=3306\n"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "default");
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "stringData": {"password": "s3cret"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let pod = env
        .running_pod(
            "app",
            json!({
                "containers": [{
                    "name": "app", "image": "busybox", "workingDir": "/work", "command": ["sleep", "3600"],
                    "env": [
                        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "GREETING", "value": "hello $(POD)"}
                    ],
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/work"},
                        {"name": "config", "mountPath": "/etc/app"},
                        {"name": "secret", "mountPath": "/etc/creds"},
                        // One file of a volume over a path, as the MySQL and MariaDB
                        // charts mount my.cnf.
                        {"name": "mysql", "mountPath": "/etc/mysql/my.cnf", "subPath": "my.cnf"},
                        {"name": "secret", "mountPath": "/opt/password", "subPath": "password"}
                    ]
                }, {"name": "sidecar", "image": "busybox", "command": ["sleep", "3600"]}],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "config", "configMap": {"name": "settings", "items": [{"key": "app.conf", "path": "conf/app.conf"}]}},
                    {"name": "secret", "secret": {"secretName": "creds"}},
                    {"name": "mysql", "configMap": {"name": "settings"}}
                ]
            }),
        )
        .await;
    let uid = pod.metadata.uid.unwrap();
    let pods = env.pods();
    let run = |cmd: &'static [&'static str], stdin: Option<Vec<u8>>| {
        let pods = pods.clone();
        async move {
            let mut p = pods
                .exec(
                    "app",
                    cmd.to_vec(),
                    &params().container("app").stdin(stdin.is_some()),
                )
                .await
                .unwrap();
            finish(&mut p, stdin).await
        }
    };

    let r = run(
        &[
            "sh",
            "-c",
            "echo $MODE $PASSWORD $POD $NS $IP $HOSTNAME; echo $GREETING",
        ],
        None,
    )
    .await;
    assert_eq!(r.exit_code(), 0);
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(
        r.text(),
        format!("fast s3cret app default {ip} app\nhello app\n")
    );

    // Files of configMap and secret volumes; the emptyDir is the working directory.
    let r = run(
        &[
            "sh",
            "-c",
            "cat /etc/app/conf/app.conf /etc/creds/password; pwd > where; echo made > /work/made",
        ],
        None,
    )
    .await;
    assert_eq!(r.text(), "port=8080\ns3cret");
    let r = run(&["cat", "/etc/mysql/my.cnf", "/opt/password"], None).await;
    assert_eq!(r.text(), "[mysqld]\nport=3306\ns3cret");
    let scratch = env.state().join("pods").join(&uid).join("volumes/scratch");
    assert_eq!(
        std::fs::read_to_string(scratch.join("made")).unwrap(),
        "made\n"
    );
    // The working directory as the container sees it, where a runtime isolates it;
    // else the host folder behind it.
    let isolated = nix::unistd::geteuid().is_root();
    assert_eq!(
        std::fs::read_to_string(scratch.join("where"))
            .unwrap()
            .trim(),
        if isolated {
            "/work".to_string()
        } else {
            scratch.display().to_string()
        }
    );
    let r = run(&["cat", "made"], None).await;
    assert_eq!(r.text(), "made\n");

    // stdin to EOF (v5 close), stdout and stderr apart, exit codes.
    let r = run(
        &["sh", "-c", "wc -c; echo oops >&2; exit 3"],
        Some(vec![b'x'; 300_000]),
    )
    .await;
    assert_eq!(r.text().trim(), "300000");
    assert_eq!(r.stderr, b"oops\n");
    assert_eq!(r.exit_code(), 3);
    assert!(
        r.status.message.as_deref().unwrap().contains("exit code 3"),
        "{:?}",
        r.status
    );

    // A program that does not exist: a Failure, not a hang.
    let r = run(&["no-such-program-here"], None).await;
    assert_eq!(r.status.status.as_deref(), Some("Failure"));
    assert!(
        r.status
            .message
            .as_deref()
            .unwrap()
            .contains("no-such-program-here"),
        "{:?}",
        r.status
    );

    // Two containers: one must be named.
    let (code, msg) = upgrade_error(&pods, "app", &params()).await;
    assert_eq!(code, 400);
    assert!(msg.contains("container name must be specified"), "{msg}");
    env.stop().await;
}

async fn upgrade_error(pods: &Api<Pod>, pod: &str, ap: &AttachParams) -> (u16, String) {
    match pods.exec(pod, ["true"], ap).await {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(e) => panic!("expected a Status error, got {e:?}"),
        Ok(_) => panic!("exec into {pod} should have failed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refuses_missing_pods_pods_not_running_and_viewers() {
    let env = Env::start().await;
    let pods = env.pods();
    let (code, msg) = upgrade_error(&pods, "nothere", &params()).await;
    assert_eq!(code, 404, "{msg}");
    assert!(msg.contains("pods \"nothere\" not found"), "{msg}");

    let pod = serde_json::from_value(json!({"metadata": {"name": "pending"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let (code, msg) = upgrade_error(&pods, "pending", &params()).await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("not running"), "{msg}");

    env.running_pod(
        "ok",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}),
    )
    .await;
    let (code, msg) = upgrade_error(&pods, "ok", &params().container("other")).await;
    assert_eq!(code, 400, "{msg}");

    let viewer = client_as(&env.kubeconfig, env.sandbox.token("viewer")).await;
    let (code, msg) = upgrade_error(&Api::namespaced(viewer, "default"), "ok", &params()).await;
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("cannot create resource \"pods/exec\""),
        "{msg}"
    );
    env.stop().await;
}

/// The state of a process in /proc, `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}

async fn wait_gone(pid: u32, zombie_ok: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match proc_state(pid) {
            None => return,
            Some('Z') if zombie_ok => return,
            s => assert!(
                Instant::now() < deadline,
                "process {pid} still there: {s:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The host's processes whose command line (NUL-separated in /proc) contains `part`,
/// less the OCI runtime's own (whose arguments hold the command): the pids a container
/// prints are its own namespace's when a runtime isolates it.
fn host_pids(part: &str) -> Vec<u32> {
    crate::support::procs::pids_where(|c| c.contains(part) && !c.contains("--pid-file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_and_its_children_die_when_the_client_leaves() {
    let env = Env::start().await;
    env.running_pod(
        "p",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}),
    )
    .await;
    let pods = env.pods();
    // Numbers of this run only: a process an earlier, failed attempt left is not ours.
    let secs = 10_000 + std::process::id() % 50_000;
    let script = format!("sleep {secs} & exec yes leaves-{secs}");
    let mut p = pods
        .exec("p", ["sh", "-c", &script], &params())
        .await
        .unwrap();
    let mut out = p.stdout().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < 200 * 1024 {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            let st = p.take_status().unwrap().await;
            panic!("the output ended after {got} bytes: {st:?}");
        }
        got += n;
    }
    // busybox runs `yes` in the shell's own process.
    let (leader, child) = (
        host_pids(&format!("exec yes leaves-{secs}")),
        host_pids(&format!("sleep\x00{secs}\x00")),
    );
    assert!(
        leader.len() == 1 && child.len() == 1,
        "{leader:?} {child:?}"
    );
    drop(out);
    drop(p); // Aborts kube-rs's task: the connection closes mid-stream.
    // The leader is reaped by the sandbox (no zombie); the orphaned child may linger as a
    // zombie of init, but must have been killed.
    wait_gone(leader[0], false).await;
    wait_gone(child[0], true).await;

    // And a sandbox that stops kills what still runs.
    let mut p = pods
        .exec(
            "p",
            ["sh", "-c", "echo started; exec sleep 1008"],
            &params(),
        )
        .await
        .unwrap();
    let mut out = p.stdout().unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let n = out.read(&mut buf).await.unwrap();
        assert!(n > 0);
        line.extend_from_slice(&buf[..n]);
    }
    let mut pids = host_pids("sleep\x001008\x00");
    for _ in 0..40 {
        if !pids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        pids = host_pids("sleep\x001008\x00");
    }
    assert_eq!(pids.len(), 1, "{pids:?}");
    env.stop().await;
    wait_gone(pids[0], false).await;
    drop(p);
}

// ---- kubectl 1.33 ----

fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_KUBECTL") {
        return PathBuf::from(p);
    }
    let dir = std::env::var_os("FERRY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ferry-tools")
        });
    dir.join("kubectl")
}

/// Runs kubectl in a blocking thread with `stdin`; returns (exit code, stdout, stderr).
async fn kubectl(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> (i32, Vec<u8>, String) {
    let bin = kubectl_path();
    assert!(
        bin.exists(),
        "kubectl not found at {}: run `bash scripts/install-kubectl.sh` (or set FERRY_KUBECTL)",
        bin.display()
    );
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(bin)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", kubeconfig.parent().unwrap())
            .args(&args)
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let writer = stdin.map(|data| {
            let mut w = child.stdin.take().unwrap();
            std::thread::spawn(move || std::io::Write::write_all(&mut w, &data).unwrap())
        });
        let out = child.wait_with_output().unwrap();
        if let Some(w) = writer {
            w.join().unwrap();
        }
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_and_cp_work_both_ways() {
    let env = Env::start().await;
    let data = env.bound_claim("data").await;
    std::fs::create_dir_all(data.join("dir")).unwrap();
    std::fs::write(data.join("dir/a.txt"), b"alpha\n").unwrap();
    std::fs::write(data.join("big.bin"), noise(7, 3 * 1024 * 1024)).unwrap();
    env.running_pod("db", mover_spec("data", "/data")).await;
    let kc = env.kubeconfig.clone();

    // `kubectl exec pod -- tar cf - -C /data .` piped to a local `tar x`.
    let (code, archive, err) = kubectl(
        &kc,
        &["exec", "db", "--", "tar", "cf", "-", "-C", "/data", "."],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let local = env.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let mut untar = Command::new("tar")
        .args(["xf", "-", "-C"])
        .arg(&local)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(untar.stdin.as_mut().unwrap(), &archive).unwrap();
    drop(untar.stdin.take());
    assert!(untar.wait().unwrap().success());
    assert_eq!(digest(&local), digest(&data));

    // `kubectl exec -i` with stdin.
    let (code, _, err) = kubectl(
        &kc,
        &["exec", "-i", "db", "--", "sh", "-c", "cat > /data/in.txt"],
        Some(b"from kubectl stdin\n".to_vec()),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(data.join("in.txt")).unwrap(),
        b"from kubectl stdin\n"
    );

    // Exit codes and stderr come through.
    let (code, _, err) = kubectl(
        &kc,
        &["exec", "db", "--", "sh", "-c", "echo bad >&2; exit 7"],
        None,
    )
    .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("bad") && err.contains("exit code 7"), "{err}");

    // kubectl cp, out of the pod and into it.
    let out_dir = env.dir.path().join("copied");
    let (code, _, err) = kubectl(
        &kc,
        &["cp", "db:/data/dir", out_dir.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out_dir.join("a.txt")).unwrap(), b"alpha\n");
    let upload = env.dir.path().join("upload.txt");
    std::fs::write(&upload, b"uploaded\n").unwrap();
    let (code, _, err) = kubectl(
        &kc,
        &["cp", upload.to_str().unwrap(), "db:/data/dir/up.txt"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(data.join("dir/up.txt")).unwrap(),
        b"uploaded\n"
    );

    // Errors reach kubectl as the API server's messages.
    let (code, _, err) = kubectl(&kc, &["exec", "nothere", "--", "true"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    env.stop().await;
}

// ---- the wire protocol, from a raw WebSocket client ----

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens an exec WebSocket offering `protocols`; the negotiated one, or the HTTP error.
async fn raw_exec(env: &Env, query: &str, protocols: &str) -> Result<(String, RawWs), u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
                env.sandbox.ca_pem().as_bytes(),
            )
            .unwrap(),
        )
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(env.sandbox.addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let url = format!(
        "wss://{}/api/v1/namespaces/default/pods/p/exec?{query}",
        env.sandbox.addr()
    );
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(
        "Authorization",
        format!("Bearer {}", env.sandbox.token("admin").unwrap())
            .parse()
            .unwrap(),
    );
    h.insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    match tokio_tungstenite::client_async(req, tls).await {
        Ok((ws, resp)) => {
            let p = resp.headers()["Sec-WebSocket-Protocol"]
                .to_str()
                .unwrap()
                .to_string();
            Ok((p, ws))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// Every message until the server closes: (channel, bytes), and the close code.
async fn collect(ws: &mut RawWs) -> (Vec<(u8, Vec<u8>)>, Option<u16>) {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut got = Vec::new();
    while let Some(m) = ws.next().await {
        match m.unwrap() {
            Message::Binary(b) => got.push((b[0], b[1..].to_vec())),
            Message::Close(f) => return (got, f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (got, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v4_protocol_and_negotiation_on_the_wire() {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let env = Env::start().await;
    env.running_pod(
        "p",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}),
    )
    .await;

    // v5 is preferred when offered.
    let (p, mut ws) = raw_exec(
        &env,
        "command=true&stdout=true",
        "v4.channel.k8s.io, v5.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(p, "v5.channel.k8s.io");
    let (got, close) = collect(&mut ws).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3);
    assert_eq!(close, Some(1000));

    // v4: output channels, the exit status as a Status, then a normal close.
    let script = "echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%205";
    let (p, mut ws) = raw_exec(
        &env,
        &format!("command=sh&command=-c&command={script}&stdout=true&stderr=true"),
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(p, "v4.channel.k8s.io");
    let (got, close) = collect(&mut ws).await;
    assert!(got.contains(&(1, b"out\n".to_vec())), "{got:?}");
    assert!(got.contains(&(2, b"err\n".to_vec())), "{got:?}");
    let (channel, status) = got.last().unwrap();
    assert_eq!(*channel, 3);
    let status: serde_json::Value = serde_json::from_slice(status).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "5");
    assert_eq!(close, Some(1000));

    // v4 stdin: channel 0.
    let (_, mut ws) = raw_exec(
        &env,
        "command=head&command=-c&command=5&stdin=true&stdout=true",
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    ws.send(Message::binary(b"\x00hello world".to_vec()))
        .await
        .unwrap();
    let (got, _) = collect(&mut ws).await;
    assert_eq!(got[0], (1, b"hello".to_vec()));
    assert_eq!(got.last().unwrap().0, 3);

    // No protocol the sandbox speaks; not a WebSocket at all (SPDY): 400 before upgrade.
    assert_eq!(
        raw_exec(&env, "command=true&stdout=true", "channel.k8s.io")
            .await
            .err(),
        Some(400)
    );
    let req = tokio_tungstenite::tungstenite::http::Request::post(
        "/api/v1/namespaces/default/pods/p/exec?command=true&stdout=true",
    )
    .header("Upgrade", "SPDY/3.1")
    .header("Connection", "Upgrade")
    .body(Vec::new())
    .unwrap();
    match env.client.request_text(req).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert!(s.message.contains("WebSockets only"), "{}", s.message);
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // Missing command.
    assert_eq!(
        raw_exec(&env, "stdout=true", "v5.channel.k8s.io")
            .await
            .err(),
        Some(400)
    );
    env.stop().await;
}

/// A client may still be sending when the process has ended (input the process never
/// read, the v5 end of stdin): the server reads on until the client leaves, so those
/// sends never meet a closed connection. Closed at once, the connection answered them
/// with a reset, kube-rs lost the Status in flight and never ended stdout, and a mover's
/// `tar` stream hung until Ferry's stall detector gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_after_the_status_is_not_cut_off() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let env = Env::start().await;
    env.running_pod(
        "p",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}),
    )
    .await;
    let (_, mut ws) = raw_exec(
        &env,
        "command=true&stdin=true&stdout=true",
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    // Up to the Status; the close frame after it stays unread, as kube-rs leaves it.
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) if b[0] == 3 => break,
            _ => {}
        }
    }
    // Time enough for a server that closes at once to have closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::binary(b"\x00late input".to_vec()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::binary(vec![255, 0]))
        .await
        .expect("the server reads what comes after the Status");
    // The close handshake completes: the server's close frame, then the end.
    let (got, close) = collect(&mut ws).await;
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(close, Some(1000));
    env.stop().await;
}

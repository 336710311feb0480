//! Containers isolated by an OCI runtime (runc from Debian, which `scripts/test.sh`
//! installs): as root, the sandbox runs busybox containers in their own mount and PID
//! namespaces with the pod's volumes bind-mounted at their container paths, read-only
//! where a real kubelet mounts them so, as the user their `securityContext` names, with
//! the pod's `fsGroup` owning its volumes. The sandbox's data folder has a space and a
//! quote in its path here: nothing is rewritten, so nothing breaks on it.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::sandbox_kubectl::{kubectl, kubectl_status, started};
use crate::support::procs::pids_where;

fn runc_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .any(|d| d.join("runc").is_file())
}

/// Files below `root` whose name is `name`.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name() == name {
                out.push(p);
            }
        }
    }
    out
}

/// Host processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    pids_where(|c| c.contains(marker))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_run_isolated_with_their_volumes_at_their_paths() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: an OCI runtime cannot isolate containers, nothing to test");
        return;
    }
    assert!(
        runc_installed(),
        "runc is not installed: `apt-get install runc` (scripts/test.sh does)"
    );
    assert!(
        Path::new("/bin/busybox").exists() || Path::new("/usr/bin/busybox").exists(),
        "busybox is not installed: `apt-get install busybox-static` (scripts/test.sh does)"
    );
    let (dir, sandbox, kc) = started("iso", "sandbox data 'x'").await;
    let state = dir.path().join("sandbox data 'x'");
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {app.conf: "greeting=hello\n"}
---
apiVersion: v1
kind: Pod
metadata: {name: iso}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
  - name: app
    image: busybox:1.36
    workingDir: /data
    command:
    - sh
    - -c
    - |
      echo "pid1=$(tr '\0' ' ' < /proc/1/cmdline)"
      echo "user=$(id -u):$(id -g) groups=$(id -G)"
      echo "host=$(hostname)"
      echo "cwd=$(pwd)"
      echo written > "odd name \"q\" 'x'.txt"
      exec sleep 3601
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: data, mountPath: /ro, readOnly: true}
    - {name: conf, mountPath: /etc/app}
    - {name: conf, mountPath: /etc/app.conf, subPath: app.conf}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: conf, configMap: {name: conf}}
"#,
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    kubectl(
        &kc,
        &["wait", "--for=condition=Ready", "pod/iso", "--timeout=30s"],
    )
    .await;
    let mut logs = String::new();
    for _ in 0..40 {
        logs = kubectl(&kc, &["logs", "iso"]).await;
        if logs.contains("cwd=") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Its own PID namespace (its command is process 1), its user and groups, the pod's
    // name as host name, its working directory at the container path.
    assert!(logs.contains("pid1=sh -c "), "{logs}");
    assert!(logs.contains("user=1000:3000 groups=3000 2000"), "{logs}");
    assert!(logs.contains("host=iso\n"), "{logs}");
    assert!(logs.contains("cwd=/data\n"), "{logs}");

    // The file it wrote, with its odd name, is in the claim's folder on the host, the
    // user's and the fsGroup's.
    let written = find(&state, "odd name \"q\" 'x'.txt");
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), "written\n");
    let meta = std::fs::metadata(&written[0]).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 2000));

    let exec = |script: &'static str| {
        let kc = kc.clone();
        async move { kubectl_status(&kc, &["exec", "iso", "--", "sh", "-c", script]).await }
    };
    // The same claim read-only at /ro, the ConfigMap read-only as a folder and as one
    // file (subPath), writable where the claim is mounted read-write.
    let (ok, out, err) = exec("cat \"/ro/odd name \\\"q\\\" 'x'.txt\"; touch /ro/new").await;
    assert!(!ok, "{out}{err}");
    assert!(out.contains("written"), "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    let (ok, _, err) = exec("echo x > /etc/app/other").await;
    assert!(!ok && err.contains("Read-only file system"), "{err}");
    let (ok, out, err) =
        exec("cat /etc/app.conf /etc/app/app.conf && touch /data/new && pwd && id -u").await;
    assert!(ok, "{err}");
    assert_eq!(out, "greeting=hello\ngreeting=hello\n/data\n1000\n");
    // Its root is the image's: busybox's applets, not the host's programs.
    let (ok, out, err) = exec("readlink /bin/sh; ls /usr/lib 2>&1 | head -1; test -e /proc/1/root/bin/busybox && echo own").await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().next(), Some("/bin/busybox"), "{out}");
    assert!(out.contains("own"), "{out}");
    assert!(
        !out.contains("x86_64-linux-gnu"),
        "the host's /usr/lib: {out}"
    );

    // Deleting the pod ends its container and everything in it.
    assert!(!processes_with("3601").is_empty());
    kubectl(
        &kc,
        &["delete", "pod", "iso", "--wait=true", "--timeout=30s"],
    )
    .await;
    let mut left = processes_with("3601");
    for _ in 0..40 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        left = processes_with("3601");
    }
    assert!(left.is_empty(), "still running: {left:?}");
    sandbox.shutdown().await.unwrap();
}

//! The real kubectl 1.33 and helm against an in-process sandbox, through the kubeconfig
//! the sandbox writes. Both come from `scripts/install-kubectl.sh` (which
//! `scripts/test.sh` runs); without them these tests fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};

fn tool_path(tool: &str) -> PathBuf {
    if tool == "kubectl"
        && let Some(p) = std::env::var_os("FERRY_KUBECTL")
    {
        return PathBuf::from(p);
    }
    let dir = std::env::var_os("FERRY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ferry-tools")
        });
    dir.join(tool)
}

/// A sandbox named `name` keeping its state in `<tempdir>/<state>`, and a kubeconfig
/// for it beside: the folder (kept while the test runs), the sandbox, the kubeconfig.
pub(crate) async fn started(name: &str, state: &str) -> (tempfile::TempDir, Sandbox, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new(name, dir.path().join(state)))
        .await
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[sandbox.kubeconfig_entry()]).unwrap();
    (dir, sandbox, kc)
}

pub(crate) async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    run_tool("kubectl", kubeconfig, args).await
}

/// Runs kubectl or helm in a blocking thread (the sandbox serves on this test's runtime)
/// and asserts that it succeeded; its stdout.
async fn run_tool(tool: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = tool_status(tool, kubeconfig, args).await;
    assert!(ok, "{tool} {args:?} failed: {stdout}\n{stderr}");
    stdout
}

/// Runs kubectl or helm in a blocking thread; whether it succeeded, its stdout and its
/// stderr.
async fn tool_status(tool: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let bin = tool_path(tool);
    assert!(
        bin.exists(),
        "{tool} not found at {}: run `bash scripts/install-kubectl.sh` (or set FERRY_KUBECTL)",
        bin.display()
    );
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", kubeconfig.parent().unwrap())
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_applies_and_lists_resources() {
    let (dir, sandbox, kc) = started("kubectl", "state").await;

    let ns = kubectl(&kc, &["get", "ns"]).await;
    assert!(ns.contains("default") && ns.contains("kube-system"), "{ns}");

    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  labels:\n    app: demo\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let out = kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    assert!(out.contains("configmap/applied created"), "{out}");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  labels:\n    app: demo\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    let out = kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    assert!(out.contains("configmap/applied configured"), "{out}");

    let yaml = kubectl(&kc, &["get", "cm", "applied", "-o", "yaml"]).await;
    assert!(yaml.contains("a: \"2\""), "{yaml}");
    assert!(yaml.contains("last-applied-configuration"), "{yaml}");

    let labelled = kubectl(&kc, &["get", "cm", "-l", "app=demo", "-o", "name"]).await;
    assert_eq!(labelled.trim(), "configmap/applied");

    // A Deployment and a Service: apply, re-apply with a new image (strategic merge),
    // scale through the scale subresource.
    let dep = dir.path().join("dep.yaml");
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  \
             selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    \
             spec:\n      containers:\n      - name: web\n        image: {image}\n      - name: side\n        \
             image: busybox\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  \
             selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
        )
    };
    std::fs::write(&dep, deployment("nginx:1")).unwrap();
    kubectl(&kc, &["apply", "-f", dep.to_str().unwrap()]).await;
    std::fs::write(&dep, deployment("nginx:2")).unwrap();
    let out = kubectl(&kc, &["apply", "-f", dep.to_str().unwrap()]).await;
    assert!(
        out.contains("deployment.apps/web configured") && out.contains("service/web unchanged"),
        "{out}"
    );
    let images = kubectl(
        &kc,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    )
    .await;
    assert_eq!(images, "nginx:2 busybox");
    kubectl(&kc, &["scale", "deploy", "web", "--replicas=4"]).await;
    let replicas = kubectl(
        &kc,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )
    .await;
    assert_eq!(replicas, "4");
    let ip = kubectl(
        &kc,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .await;
    assert!(ip.starts_with("10.96."), "{ip}");

    let resources = kubectl(&kc, &["api-resources"]).await;
    for r in [
        "deployments",
        "customresourcedefinitions",
        "volumesnapshots",
        "leases",
    ] {
        assert!(resources.contains(r), "{r} missing from:\n{resources}");
    }
    assert!(
        resources.contains("deploy "),
        "short names are listed:\n{resources}"
    );

    let out = kubectl(&kc, &["delete", "cm", "applied"]).await;
    assert!(out.contains("deleted"), "{out}");
    sandbox.shutdown().await.unwrap();
}

/// A Helm chart `name` (version 0.1.0) in `<dir>/chart` with `files` (paths relative to
/// the chart); its folder.
fn write_chart(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let chart = dir.join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n"),
    )
    .unwrap();
    for (path, text) in files {
        std::fs::write(chart.join(path), text).unwrap();
    }
    chart
}

/// Typed client-go clients send protobuf: helm's release Secrets, `kubectl create secret`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let (dir, sandbox, kc) = started("helm", "state").await;
    let chart = write_chart(
        dir.path(),
        "demo",
        &[(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-cm\ndata:\n  x: \"1\"\n",
        )],
    );
    let chart = chart.to_str().unwrap();
    let out = run_tool("helm", &kc, &["install", "demo", chart]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    kubectl(&kc, &["get", "cm", "demo-cm"]).await;
    let out = run_tool("helm", &kc, &["upgrade", "demo", chart]).await;
    assert!(out.contains("REVISION: 2"), "{out}");
    let out = run_tool("helm", &kc, &["list"]).await;
    assert!(out.contains("deployed"), "{out}");
    let out = run_tool("helm", &kc, &["uninstall", "demo"]).await;
    assert!(out.contains("uninstalled"), "{out}");

    let out = kubectl(
        &kc,
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
    )
    .await;
    assert!(out.contains("created"), "{out}");
    let a = kubectl(&kc, &["get", "secret", "s1", "-o", "jsonpath={.data.a}"]).await;
    assert_eq!(a, "Yg==");
    kubectl(&kc, &["create", "namespace", "made-by-kubectl"]).await;
    kubectl(&kc, &["delete", "namespace", "made-by-kubectl"]).await;
    sandbox.shutdown().await.unwrap();
}

/// Runs kubectl and returns whether it succeeded, its stdout and its stderr.
pub(crate) async fn kubectl_status(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    tool_status("kubectl", kubeconfig, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_dry_run_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox = Sandbox::start(SandboxConfig::new("ssa", dir.path().join("state")))
        .await
        .unwrap();
    let dev_token = sandbox
        .add_user("dev", &["developers".to_string()])
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[sandbox.kubeconfig_entry()]).unwrap();
    let dev_kc = dir.path().join("dev-kubeconfig");
    let mut dev_entry = sandbox.kubeconfig_entry();
    dev_entry.token = dev_token;
    write_kubeconfig(&dev_kc, &[dev_entry]).unwrap();

    let manifest = dir.path().join("cm.yaml");
    let write = |replicas: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  size: \"{replicas}\"\n"
            ),
        )
        .unwrap();
    };
    let file = manifest.to_str().unwrap().to_string();

    // A server-side dry run shows the object and creates nothing.
    write("1");
    let out = kubectl(&kc, &["apply", "--dry-run=server", "-f", &file]).await;
    assert!(
        out.contains("configmap/shared created (server dry run)"),
        "{out}"
    );
    let (found, _, err) = kubectl_status(&kc, &["get", "cm", "shared"]).await;
    assert!(!found && err.contains("NotFound"), "{err}");

    // Server-side apply; another manager's change to the same field conflicts.
    let out = kubectl(&kc, &["apply", "--server-side", "-f", &file]).await;
    assert!(out.contains("configmap/shared serverside-applied"), "{out}");
    let yaml = kubectl(
        &kc,
        &["get", "cm", "shared", "-o", "yaml", "--show-managed-fields"],
    )
    .await;
    assert!(
        yaml.contains("manager: kubectl") && yaml.contains("operation: Apply"),
        "{yaml}"
    );
    write("2");
    let (ok, _, err) = kubectl_status(
        &kc,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &file,
        ],
    )
    .await;
    assert!(!ok, "a conflicting apply succeeded");
    assert!(
        err.contains("conflict") && err.contains(".data.size"),
        "{err}"
    );
    let out = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &file,
        ],
    )
    .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let size = kubectl(&kc, &["get", "cm", "shared", "-o", "jsonpath={.data.size}"]).await;
    assert_eq!(size, "2");

    // Who am I, and what may I do: the developer may do nothing yet, then edit in default.
    let out = kubectl(&dev_kc, &["auth", "whoami"]).await;
    assert!(out.contains("dev") && out.contains("developers"), "{out}");
    let (allowed, out, _) =
        kubectl_status(&dev_kc, &["auth", "can-i", "create", "configmaps"]).await;
    assert!(!allowed && out.trim() == "no", "{out}");
    kubectl(
        &kc,
        &[
            "create",
            "rolebinding",
            "developers-edit",
            "--clusterrole=edit",
            "--group=developers",
            "-n",
            "default",
        ],
    )
    .await;
    let out = kubectl(&dev_kc, &["auth", "can-i", "create", "configmaps"]).await;
    assert_eq!(out.trim(), "yes");
    let (allowed, _, _) = kubectl_status(
        &dev_kc,
        &["auth", "can-i", "create", "configmaps", "-n", "kube-system"],
    )
    .await;
    assert!(!allowed);
    let (ok, _, err) = kubectl_status(&dev_kc, &["create", "cm", "x", "-n", "kube-system"]).await;
    assert!(!ok);
    assert!(
        err.contains(
            "configmaps is forbidden: User \"dev\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""
        ),
        "{err}"
    );
    kubectl(&dev_kc, &["create", "cm", "x"]).await;
    sandbox.shutdown().await.unwrap();
}

/// `helm template` of a chart written here, applied with `kubectl apply`; then
/// `kubectl wait` on the rollout the sandbox's controllers make, and `kubectl get
/// --watch` seeing objects appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_template_applies_and_kubectl_waits_and_watches() {
    let (dir, sandbox, kc) = started("tpl", "state").await;
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/charts/shop-web"
    );
    let rendered = run_tool(
        "helm",
        &kc,
        &[
            "template",
            "shop",
            chart,
            "--namespace",
            "apps",
            "--set",
            "replicas=2",
            "--set",
            "greeting=hi",
        ],
    )
    .await;
    assert!(
        rendered.contains("kind: Deployment") && rendered.contains("name: shop-shop-web"),
        "{rendered}"
    );
    let manifest = dir.path().join("rendered.yaml");
    std::fs::write(&manifest, &rendered).unwrap();
    kubectl(&kc, &["create", "namespace", "apps"]).await;
    let out = kubectl(
        &kc,
        &["apply", "-n", "apps", "-f", manifest.to_str().unwrap()],
    )
    .await;
    for kind in [
        "serviceaccount",
        "configmap",
        "secret",
        "service",
        "deployment.apps",
        "ingress.networking.k8s.io",
    ] {
        assert!(
            out.contains(&format!("{kind}/shop-shop-web created")),
            "{kind}: {out}"
        );
    }
    let greeting = kubectl(
        &kc,
        &[
            "get",
            "cm",
            "shop-shop-web",
            "-n",
            "apps",
            "-o",
            "jsonpath={.data.GREETING}",
        ],
    )
    .await;
    assert_eq!(greeting, "hi");
    kubectl(
        &kc,
        &[
            "wait",
            "-n",
            "apps",
            "--for=condition=Available",
            "deployment/shop-shop-web",
            "--timeout=60s",
        ],
    )
    .await;
    kubectl(
        &kc,
        &[
            "wait",
            "-n",
            "apps",
            "--for=jsonpath={.status.readyReplicas}=2",
            "deployment/shop-shop-web",
            "--timeout=60s",
        ],
    )
    .await;

    // `kubectl get --watch` for a moment while objects are created.
    let mut watch = Command::new(tool_path("kubectl"))
        .env("KUBECONFIG", &kc)
        .env("HOME", dir.path())
        .args(["get", "configmaps", "-n", "apps", "--watch", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    for n in ["watched-1", "watched-2"] {
        kubectl(
            &kc,
            &["create", "configmap", n, "-n", "apps", "--from-literal=a=b"],
        )
        .await;
    }
    // Give the watch a moment to print what it saw, then stop it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    watch.kill().unwrap();
    let o = tokio::task::spawn_blocking(move || watch.wait_with_output().unwrap())
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for n in [
        "configmap/shop-shop-web",
        "configmap/watched-1",
        "configmap/watched-2",
    ] {
        assert!(
            out.lines().any(|l| l.trim() == n),
            "{n} not seen by the watch: {out}"
        );
    }
    sandbox.shutdown().await.unwrap();
}

/// The header line of kubectl's output (the first line), split into its columns.
fn header(out: &str) -> Vec<String> {
    let line = out.lines().next().unwrap_or("");
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_the_servers_columns() {
    let (dir, sandbox, kc) = started("tables", "state").await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: ebs.csi.aws.com
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: beta
  annotations:
    volume.beta.kubernetes.io/storage-class: missing
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
stringData: {user: u, password: p}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: backups, singular: backup, kind: Backup}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - name: Schedule
      type: string
      jsonPath: .spec.schedule
    - name: Kept
      type: integer
      jsonPath: .spec.keep
"#,
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    let cr = dir.path().join("cr.yaml");
    std::fs::write(
        &cr,
        "apiVersion: example.com/v1\nkind: Backup\nmetadata:\n  name: nightly\nspec:\n  schedule: \"0 3 * * *\"\n  keep: 7\n",
    )
    .unwrap();
    // The CRD's resource is served once established.
    let mut applied = String::new();
    for _ in 0..50 {
        let (ok, out, _) = kubectl_status(&kc, &["apply", "-f", cr.to_str().unwrap()]).await;
        if ok {
            applied = out;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(applied.contains("backup.example.com/nightly"), "{applied}");

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["get", "pods"],
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ),
        (
            &["get", "pods", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES",
            ],
        ),
        (
            &["get", "deployments"],
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ),
        (
            &["get", "deployments", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
        ),
        (
            &["get", "replicasets"],
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ),
        (
            &["get", "services"],
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        (
            &["get", "pvc"],
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
        ),
        (
            &["get", "storageclasses"],
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
        ),
        (&["get", "configmaps"], &["NAME", "DATA", "AGE"]),
        (&["get", "secrets"], &["NAME", "TYPE", "DATA", "AGE"]),
        (&["get", "namespaces"], &["NAME", "STATUS", "AGE"]),
        (
            &["get", "nodes"],
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ),
        (&["get", "backups"], &["NAME", "SCHEDULE", "KEPT", "AGE"]),
    ];
    for (args, want) in cases {
        let out = kubectl(&kc, args).await;
        assert_eq!(header(&out), *want, "kubectl {args:?}:\n{out}");
    }

    // The cells say what a real cluster says.
    let sc = kubectl(&kc, &["get", "sc", "fast"]).await;
    assert!(
        sc.contains("fast (default)") && sc.contains("ebs.csi.aws.com"),
        "{sc}"
    );
    assert!(
        sc.contains("WaitForFirstConsumer") && sc.contains("true"),
        "{sc}"
    );
    let secret = kubectl(&kc, &["get", "secret", "creds"]).await;
    assert!(
        secret.contains("Opaque") && secret.contains(" 2 "),
        "{secret}"
    );
    let svc = kubectl(&kc, &["get", "svc", "web", "-o", "wide"]).await;
    assert!(
        svc.contains("ClusterIP") && svc.contains("80/TCP") && svc.contains("app=web"),
        "{svc}"
    );
    let backup = kubectl(&kc, &["get", "backup", "nightly"]).await;
    assert!(
        backup.contains("0 3 * * *") && backup.contains('7'),
        "{backup}"
    );
    let labels = kubectl(&kc, &["get", "deploy", "web", "--show-labels"]).await;
    assert_eq!(
        header(&labels).last().map(String::as_str),
        Some("LABELS"),
        "{labels}"
    );
    // The beta class annotation is the claim's class, as on a real cluster: the default
    // class is not put in its place, and the claim waits for the class it names.
    let beta = kubectl(&kc, &["get", "pvc", "beta"]).await;
    assert!(
        beta.contains("Pending") && beta.contains("missing"),
        "{beta}"
    );
    let spec = kubectl(
        &kc,
        &[
            "get",
            "pvc",
            "beta",
            "-o",
            "jsonpath={.spec.storageClassName}",
        ],
    )
    .await;
    assert_eq!(spec, "", "the default class was filled in");
    // Discovery is aggregated: a fresh kubectl learns every group from /api and /apis
    // alone, without asking each group-version (its fallback on older servers).
    let cache = dir.path().join("fresh-cache");
    let (ok, out, log) = kubectl_status(
        &kc,
        &[
            "get",
            "deploy,backups",
            "-v=6",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        ok && out.contains("web") && out.contains("nightly"),
        "{out}\n{log}"
    );
    assert!(
        log.contains("/apis?timeout") || log.contains("/apis 200"),
        "{log}"
    );
    assert!(
        !log.contains("/apis/apps/v1?timeout") && !log.contains("/apis/example.com/v1?timeout"),
        "kubectl fell back to per-group discovery:\n{log}"
    );
    let resources = kubectl(
        &kc,
        &["api-resources", "--cache-dir", cache.to_str().unwrap()],
    )
    .await;
    let deploy = resources
        .lines()
        .find(|l| l.starts_with("deployments"))
        .unwrap_or_default();
    assert!(
        deploy.contains("deploy") && deploy.contains("apps/v1") && deploy.contains("Deployment"),
        "{resources}"
    );
    // Other output formats still get the objects themselves.
    let name = kubectl(&kc, &["get", "deploy", "-o", "name"]).await;
    assert_eq!(name.trim(), "deployment.apps/web");

    // `kubectl get --watch` prints the same columns for what changes.
    let mut watch = Command::new(tool_path("kubectl"))
        .env("KUBECONFIG", &kc)
        .env("HOME", dir.path())
        .args(["get", "configmaps", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    kubectl(
        &kc,
        &[
            "create",
            "configmap",
            "watched",
            "--from-literal=a=b",
            "--from-literal=c=d",
        ],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    watch.kill().unwrap();
    let o = tokio::task::spawn_blocking(move || watch.wait_with_output().unwrap())
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"], "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("watched "))
        .unwrap_or_else(|| panic!("the watch did not print the new ConfigMap: {out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(1), Some(&"2"), "{out}");
    sandbox.shutdown().await.unwrap();
}

/// The token controller and TokenRequest: a service account token Secret is filled in,
/// `kubectl create token` issues a bound token, the API accepts both as the service
/// account (RBAC decides what it may do) and refuses a Secret's token once the Secret
/// is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_issued_and_accepted() {
    let (dir, sandbox, kc) = started("tokens", "state").await;
    kubectl(&kc, &["create", "serviceaccount", "robot"]).await;
    let secret = dir.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: robot-token\n  annotations:\n    kubernetes.io/service-account.name: robot\ntype: kubernetes.io/service-account-token\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", secret.to_str().unwrap()]).await;
    let mut token = String::new();
    for _ in 0..50 {
        let t = kubectl(
            &kc,
            &[
                "get",
                "secret",
                "robot-token",
                "-o",
                "jsonpath={.data.token}",
            ],
        )
        .await;
        if !t.is_empty() {
            use base64::Engine as _;
            token = String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(t.trim())
                    .unwrap(),
            )
            .unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !token.is_empty(),
        "the token controller never filled the Secret"
    );
    let filled = kubectl(&kc, &["get", "secret", "robot-token", "-o", "json"]).await;
    let filled: serde_json::Value = serde_json::from_str(&filled).unwrap();
    assert!(filled["data"]["ca.crt"].is_string(), "{filled}");
    assert!(
        filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"].is_string(),
        "{filled}"
    );
    assert_eq!(
        kubectl(
            &kc,
            &["get", "secret", "robot-token", "-o", "jsonpath={.type}"]
        )
        .await,
        "kubernetes.io/service-account-token"
    );

    let whoami = kubectl(&kc, &["--token", &token, "auth", "whoami"]).await;
    assert!(
        whoami.contains("system:serviceaccount:default:robot"),
        "{whoami}"
    );
    assert!(
        whoami.contains("system:serviceaccounts:default"),
        "{whoami}"
    );
    // RBAC decides: nothing granted yet, then a view binding.
    let (ok, _, err) = kubectl_status(&kc, &["--token", &token, "get", "pods"]).await;
    assert!(!ok && err.contains("forbidden"), "{err}");
    kubectl(
        &kc,
        &[
            "create",
            "rolebinding",
            "robot-view",
            "--clusterrole=view",
            "--serviceaccount=default:robot",
        ],
    )
    .await;
    let (ok, _, err) = kubectl_status(&kc, &["--token", &token, "get", "pods"]).await;
    assert!(ok, "{err}");

    // A TokenRequest (typed, so kubectl may send it as protobuf).
    let bound = kubectl(&kc, &["create", "token", "robot", "--duration=20m"]).await;
    let bound = bound.trim().to_string();
    assert!(bound.split('.').count() == 3, "{bound}");
    let whoami = kubectl(&kc, &["--token", &bound, "auth", "whoami"]).await;
    assert!(
        whoami.contains("system:serviceaccount:default:robot"),
        "{whoami}"
    );
    let (ok, _, err) = kubectl_status(&kc, &["create", "token", "nobody"]).await;
    assert!(!ok && err.contains("not found"), "{err}");

    // A forged token, and the Secret's token once the Secret is deleted, are refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (ok, _, err) = kubectl_status(&kc, &["--token", &forged, "auth", "whoami"]).await;
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    kubectl(&kc, &["delete", "secret", "robot-token"]).await;
    let (ok, _, err) = kubectl_status(&kc, &["--token", &token, "auth", "whoami"]).await;
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    // The TokenRequest's token is bound to the account only: it still works.
    let whoami = kubectl(&kc, &["--token", &bound, "auth", "whoami"]).await;
    assert!(whoami.contains("robot"), "{whoami}");

    // A pod's projected service account token, as the kubelet writes it, is the pod's
    // account's and works while the pod exists.
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tok\nspec:\n  serviceAccountName: robot\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"3600\"]\n    volumeMounts:\n    - {name: api, mountPath: /var/run/secrets/tokens}\n  volumes:\n  - name: api\n    projected:\n      sources:\n      - serviceAccountToken: {path: token, expirationSeconds: 3600}\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", pod.to_str().unwrap()]).await;
    kubectl(
        &kc,
        &["wait", "--for=condition=Ready", "pod/tok", "--timeout=30s"],
    )
    .await;
    let projected = kubectl(
        &kc,
        &["exec", "tok", "--", "cat", "/var/run/secrets/tokens/token"],
    )
    .await;
    let whoami = kubectl(&kc, &["--token", projected.trim(), "auth", "whoami"]).await;
    assert!(
        whoami.contains("system:serviceaccount:default:robot"),
        "{whoami}"
    );
    kubectl(&kc, &["delete", "pod", "tok", "--wait=true"]).await;
    let (ok, _, err) = kubectl_status(&kc, &["--token", projected.trim(), "auth", "whoami"]).await;
    assert!(
        !ok && err.contains("Unauthorized"),
        "a deleted pod's token still works: {err}"
    );
    sandbox.shutdown().await.unwrap();
}

/// ServiceAccount admission: a pod naming a service account that does not exist is
/// refused in the API server's words; once it exists, the same pod is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_naming_a_missing_service_account_is_refused() {
    let (dir, sandbox, kc) = started("sa-admission", "state").await;
    let pod = dir.path().join("robot.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: robot\nspec:\n  serviceAccountName: robot\n  containers:\n  - name: c\n    image: nginx\n",
    )
    .unwrap();
    let (ok, _, err) = kubectl_status(&kc, &["apply", "-f", pod.to_str().unwrap()]).await;
    assert!(
        !ok && err.contains(
            "pods \"robot\" is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
        ),
        "{err}"
    );
    kubectl(&kc, &["create", "serviceaccount", "robot"]).await;
    let out = kubectl(&kc, &["apply", "-f", pod.to_str().unwrap()]).await;
    assert!(out.contains("pod/robot created"), "{out}");
    // A Deployment applied before its service account (`kubectl apply -f dir/` goes in
    // file order) gets its pods once the account exists: its controllers try again.
    let deploy = dir.path().join("arm.yaml");
    std::fs::write(
        &deploy,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: arm\nspec:\n  selector: {matchLabels: {app: arm}}\n  template:\n    metadata: {labels: {app: arm}}\n    spec:\n      serviceAccountName: arm\n      containers:\n      - name: c\n        image: nginx\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", deploy.to_str().unwrap()]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let pods = kubectl(&kc, &["get", "pods", "-l", "app=arm", "-o", "name"]).await;
    assert!(pods.trim().is_empty(), "{pods}");
    kubectl(&kc, &["create", "serviceaccount", "arm"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kubectl(&kc, &["get", "pods", "-l", "app=arm", "-o", "name"])
        .await
        .trim()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the Deployment never got its pod"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    sandbox.shutdown().await.unwrap();
}

/// Pod Security Admission: a namespace's enforced level refuses pods that break it, in
/// the API server's words, and lets hardened pods through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_levels_are_enforced() {
    let (dir, sandbox, kc) = started("psa", "state").await;
    kubectl(&kc, &["create", "namespace", "locked"]).await;
    kubectl(
        &kc,
        &[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    )
    .await;
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: plain\n  namespace: locked\nspec:\n  containers:\n  - name: web\n    image: nginx\n",
    )
    .unwrap();
    let (ok, _, err) = kubectl_status(&kc, &["apply", "-f", plain.to_str().unwrap()]).await;
    assert!(!ok, "a plain pod was admitted into a restricted namespace");
    assert!(
        err.contains("pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\"")
            && err.contains("allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false)")
            && err.contains("runAsNonRoot != true"),
        "{err}"
    );
    let hardened = dir.path().join("hardened.yaml");
    std::fs::write(
        &hardened,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hardened\n  namespace: locked\nspec:\n  securityContext:\n    runAsNonRoot: true\n    runAsUser: 1000\n    seccompProfile: {type: RuntimeDefault}\n  containers:\n  - name: web\n    image: nginx\n    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities: {drop: [ALL]}\n",
    )
    .unwrap();
    let out = kubectl(&kc, &["apply", "-f", hardened.to_str().unwrap()]).await;
    assert!(out.contains("pod/hardened created"), "{out}");
    // Baseline lets a plain pod in but not a privileged one.
    kubectl(
        &kc,
        &[
            "label",
            "namespace",
            "locked",
            "--overwrite",
            "pod-security.kubernetes.io/enforce=baseline",
        ],
    )
    .await;
    let out = kubectl(&kc, &["apply", "-f", plain.to_str().unwrap()]).await;
    assert!(out.contains("pod/plain created"), "{out}");
    let (ok, _, err) = kubectl_status(
        &kc,
        &[
            "run",
            "priv",
            "-n",
            "locked",
            "--image=nginx",
            "--privileged",
        ],
    )
    .await;
    assert!(
        !ok && err.contains("violates PodSecurity \"baseline:latest\": privileged"),
        "{err}"
    );
    // A controller's pod is refused alike: the Job is admitted, gets no pod, and its
    // `FailedCreate` event says why (once, however often the controller retries).
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: privjob\n  namespace: locked\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: nginx\n        securityContext: {privileged: true}\n",
    )
    .unwrap();
    let out = kubectl(&kc, &["apply", "-f", job.to_str().unwrap()]).await;
    assert!(out.contains("job.batch/privjob created"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events = loop {
        let out = kubectl(
            &kc,
            &[
                "get",
                "events",
                "-n",
                "locked",
                "--field-selector",
                "involvedObject.name=privjob,reason=FailedCreate",
                "-o",
                "jsonpath={range .items[*]}{.type} {.message}{\"\\n\"}{end}",
            ],
        )
        .await;
        if !out.trim().is_empty() || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The controller keeps trying (each pass): still one event.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = kubectl(
        &kc,
        &[
            "get",
            "events",
            "-n",
            "locked",
            "--field-selector",
            "involvedObject.name=privjob,reason=FailedCreate",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(again.trim().lines().count(), 1, "{again}");
    assert_eq!(events.trim().lines().count(), 1, "{events}");
    assert!(
        events.starts_with("Warning Error creating: pods \"privjob-")
            && events.contains("violates PodSecurity \"baseline:latest\": privileged"),
        "{events}"
    );
    let job_pods = || {
        let kc = kc.clone();
        async move {
            let args = [
                "get",
                "pods",
                "-n",
                "locked",
                "-l",
                "job-name=privjob",
                "-o",
                "name",
            ];
            kubectl(&kc, &args).await
        }
    };
    let pods = job_pods().await;
    assert!(pods.trim().is_empty(), "{pods}");
    // Once the namespace lets it in, the controller's next pass makes the pod.
    let relabel = |level: &'static str| {
        let kc = kc.clone();
        async move {
            let label = format!("pod-security.kubernetes.io/enforce={level}");
            kubectl(
                &kc,
                &["label", "namespace", "locked", "--overwrite", &label],
            )
            .await;
        }
    };
    relabel("privileged").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let pods = job_pods().await;
        if !pods.trim().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Job never got its pod"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    relabel("baseline").await;
    // `warn` admits, and tells: for pods and for workloads' pod templates.
    kubectl(&kc, &["create", "namespace", "warned"]).await;
    kubectl(
        &kc,
        &[
            "label",
            "namespace",
            "warned",
            "pod-security.kubernetes.io/warn=restricted",
        ],
    )
    .await;
    let (ok, _, err) = kubectl_status(
        &kc,
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "warned",
            "--image=nginx",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        err.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{err}"
    );
    let (ok, _, err) = kubectl_status(&kc, &["run", "one", "-n", "warned", "--image=nginx"]).await;
    assert!(
        ok && err.contains("would violate PodSecurity \"restricted:latest\""),
        "{err}"
    );
    // Nothing to warn about in a namespace without the label.
    let (ok, _, err) = kubectl_status(&kc, &["run", "two", "--image=nginx"]).await;
    assert!(ok && !err.contains("Warning"), "{err}");
    sandbox.shutdown().await.unwrap();
}

/// kubectl's typed `create` commands send protobuf bodies; each makes the object a
/// cluster would, read back in JSON with the fields the command set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_kubectl_create_commands_make_their_objects() {
    let (_dir, sandbox, kc) = started("typed", "state").await;
    let get = |what: &'static str| {
        let kc = kc.clone();
        async move {
            let out = kubectl(&kc, &["get", what, "-n", "shop", "-o", "json"]).await;
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    kubectl(&kc, &["create", "namespace", "shop"]).await;
    let n = |args: &[&str]| {
        // Before the command's own `--`.
        ["-n", "shop"]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    for args in [
        n(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=8080",
        ]),
        n(&[
            "create",
            "deployment",
            "idle",
            "--image=busybox",
            "--replicas=0",
            "--",
            "sleep",
            "3600",
        ]),
        n(&["create", "service", "clusterip", "web", "--tcp=80:8080"]),
        n(&[
            "create",
            "service",
            "nodeport",
            "edge",
            "--tcp=443:8443",
            "--node-port=30443",
        ]),
        n(&[
            "create",
            "service",
            "externalname",
            "db",
            "--external-name=db.example.com",
        ]),
        n(&[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ]),
        n(&[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 3 * * *",
            "--",
            "date",
        ]),
        n(&[
            "create",
            "quota",
            "small",
            "--hard=pods=10,requests.storage=20Gi",
        ]),
        n(&[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ]),
        n(&[
            "create",
            "ingress",
            "web",
            "--class=nginx",
            "--rule=shop.example.com/*=web:80,tls=web-tls",
        ]),
        n(&[
            "autoscale",
            "deployment",
            "web",
            "--min=2",
            "--max=5",
            "--cpu-percent=70",
        ]),
        vec![
            "create".into(),
            "priorityclass".into(),
            "batch-low".into(),
            "--value=-10".into(),
            "--description=low".into(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&kc, &args).await;
    }
    let deps = get("deployments").await;
    let web = deps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web");
    let c = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    // Nothing the command left unset appears, empty or null (as in the JSON of a
    // real server: protobuf writes every non-pointer field).
    let template = &web["spec"]["template"];
    assert!(template["metadata"].get("name").is_none(), "{template:#}");
    assert!(
        template["spec"].get("initContainers").is_none(),
        "{template:#}"
    );
    assert!(
        c.get("workingDir").is_none() && c.get("stdin").is_none(),
        "{c:#}"
    );
    // Defaults a real API server fills in.
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate", "{web:#}");
    let idle = deps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metadata"]["name"] == "idle")
        .unwrap();
    assert_eq!(idle["spec"]["replicas"], 0, "an explicit zero stays zero");
    assert_eq!(
        idle["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["sleep", "3600"])
    );
    let svcs = get("services").await;
    let svc = |name: &str| {
        svcs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(svc("web")["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc("web")["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc("edge")["spec"]["type"], "NodePort");
    assert_eq!(svc("edge")["spec"]["ports"][0]["nodePort"], 30443);
    assert_eq!(svc("db")["spec"]["externalName"], "db.example.com");
    let jobs = get("jobs").await;
    let once = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["metadata"]["name"] == "once")
        .unwrap();
    assert_eq!(
        once["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let cron = get("cronjobs").await;
    assert_eq!(cron["items"][0]["spec"]["schedule"], "0 3 * * *");
    let quota = get("resourcequotas").await;
    assert_eq!(
        quota["items"][0]["spec"]["hard"]["requests.storage"],
        "20Gi"
    );
    let pdb = get("poddisruptionbudgets").await;
    assert_eq!(pdb["items"][0]["spec"]["minAvailable"], 1);
    let ing = get("ingresses").await;
    let spec = &ing["items"][0]["spec"];
    assert_eq!(spec["ingressClassName"], "nginx");
    assert_eq!(spec["rules"][0]["host"], "shop.example.com");
    assert_eq!(
        spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
    assert_eq!(spec["tls"][0]["secretName"], "web-tls");
    let hpa = get("horizontalpodautoscalers").await;
    assert_eq!(hpa["items"][0]["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["items"][0]["spec"]["scaleTargetRef"]["name"], "web");
    let pc = kubectl(&kc, &["get", "priorityclass", "batch-low", "-o", "json"]).await;
    let pc: serde_json::Value = serde_json::from_str(&pc).unwrap();
    assert_eq!(pc["value"], -10);
    assert_eq!(pc["description"], "low");
    // The columns kubectl prints for what was made.
    let table = kubectl(
        &kc,
        &[
            "get",
            "deploy,svc,job,cronjob,quota,pdb,ing,hpa",
            "-n",
            "shop",
        ],
    )
    .await;
    for want in [
        "deployment.apps/web",
        "service/edge",
        "job.batch/once",
        "cronjob.batch/nightly",
        "poddisruptionbudget.policy/web",
        "ingress.networking.k8s.io/web",
        "horizontalpodautoscaler.autoscaling/web",
    ] {
        assert!(table.contains(want), "{want} not in\n{table}");
    }
    sandbox.shutdown().await.unwrap();
}

/// Waits (up to `secs`) until `kubectl get … -o jsonpath=…` prints `want`.
async fn wait_for(kc: &Path, args: &[&str], want: &str, secs: u64) -> String {
    let mut last = String::new();
    for _ in 0..secs * 4 {
        let (_, out, _) = kubectl_status(kc, args).await;
        if out.trim() == want {
            return out;
        }
        last = out;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("kubectl {args:?} printed {last:?}, never {want:?}");
}

/// Pods of images the sandbox holds (busybox) run for real: their output is their log,
/// their exit code is in their status, they restart as their policy says, and their
/// probes decide whether they are ready. Pods of other images say they are emulated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_pods_run_log_restart_and_probe_for_real() {
    if !Path::new("/bin/busybox").exists() && !Path::new("/usr/bin/busybox").exists() {
        panic!("busybox is not installed: `apt-get install busybox-static` (scripts/test.sh does)");
    }
    let (dir, sandbox, kc) = started("kubelet", "state").await;
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  containers:
  - name: count
    image: busybox:1.36
    env: [{name: WHO, value: sandbox}]
    command: [sh, -c, 'for i in 1 2 3; do echo "$(WHO) line $i"; done; echo oops >&2; sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: crash
    image: busybox
    command: [sh, -c, 'echo "run at $(date +%s%N)"; exit 3']
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gated}
spec:
  replicas: 1
  selector: {matchLabels: {app: gated}}
  template:
    metadata: {labels: {app: gated}}
    spec:
      containers:
      - name: app
        image: busybox
        command: [sleep, "3600"]
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: batch/v1
kind: Job
metadata: {name: sums}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - {name: prepare, image: busybox, command: [sh, -c, 'echo prepared']}
      containers:
      - {name: sum, image: busybox, command: [sh, -c, 'echo $((40 + 2))']}
---
apiVersion: v1
kind: Pod
metadata: {name: waiting}
spec:
  initContainers: [{name: wait, image: busybox, command: [sleep, "3600"]}]
  containers: [{name: app, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: nginx, image: nginx:1.27}]
"#,
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/counter",
            "--timeout=30s",
        ],
    )
    .await;
    // Its output, stdout and stderr, with $(VAR) expanded from its environment.
    let mut logs = String::new();
    for _ in 0..40 {
        logs = kubectl(&kc, &["logs", "counter"]).await;
        if logs.contains("oops") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(
        logs,
        "sandbox line 1\nsandbox line 2\nsandbox line 3\noops\n"
    );
    let tail = kubectl(&kc, &["logs", "counter", "--tail=1", "--timestamps"]).await;
    assert!(
        tail.ends_with("Z oops\n") && tail.lines().count() == 1,
        "{tail:?}"
    );
    // `-f` follows the running container: it ends when the pod is deleted.
    let follow = {
        let kc = kc.clone();
        tokio::spawn(async move { kubectl_status(&kc, &["logs", "-f", "counter"]).await })
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !follow.is_finished(),
        "kubectl logs -f ended while the container runs"
    );
    kubectl(&kc, &["delete", "pod", "counter", "--wait=false"]).await;
    let (ok, out, err) = tokio::time::timeout(std::time::Duration::from_secs(20), follow)
        .await
        .expect("kubectl logs -f did not end with its container")
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.starts_with("sandbox line 1\n"), "{out:?}");

    // A container that exits 3 is restarted after a back-off; its previous run's log
    // and exit code stay readable.
    wait_for(
        &kc,
        &[
            "get",
            "pod",
            "crasher",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ],
        "1",
        40,
    )
    .await;
    let code = kubectl(
        &kc,
        &[
            "get",
            "pod",
            "crasher",
            "-o",
            "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
        ],
    )
    .await;
    assert_eq!(code, "3");
    let previous = kubectl(&kc, &["logs", "crasher", "--previous"]).await;
    assert!(previous.starts_with("run at "), "{previous:?}");
    let table = kubectl(&kc, &["get", "pod", "crasher"]).await;
    assert!(
        table.contains("CrashLoopBackOff") || table.contains("Error") || table.contains("Running"),
        "{table}"
    );
    assert!(table.contains(" ago)"), "RESTARTS says when: {table}");
    // A pod held by its init container is Pending, and says so as kubectl does.
    let table = kubectl(&kc, &["get", "pod", "waiting"]).await;
    assert!(table.contains("Init:0/1"), "{table}");
    let phase = kubectl(
        &kc,
        &["get", "pod", "waiting", "-o", "jsonpath={.status.phase}"],
    )
    .await;
    assert_eq!(phase, "Pending");

    // The readiness probe decides: unready until the file it reads exists.
    let ready = |kc: PathBuf| async move {
        kubectl(
            &kc,
            &[
                "get",
                "deploy",
                "gated",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ],
        )
        .await
    };
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        ready(kc.clone()).await,
        "",
        "ready although its probe fails"
    );
    let pod = kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app=gated",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    )
    .await;
    kubectl(&kc, &["exec", &pod, "--", "touch", "/tmp/ready"]).await;
    wait_for(
        &kc,
        &[
            "get",
            "deploy",
            "gated",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        "1",
        20,
    )
    .await;

    // A Job's pod runs its init container, then its container, to completion.
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Complete",
            "job/sums",
            "--timeout=30s",
        ],
    )
    .await;
    let out = kubectl(&kc, &["logs", "job/sums"]).await;
    assert_eq!(out, "42\n");
    let out = kubectl(&kc, &["logs", "job/sums", "-c", "prepare"]).await;
    assert_eq!(out, "prepared\n");

    // Other images are emulated, and say so.
    let emulated = kubectl(
        &kc,
        &[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"sandbox.ferry.dev/Emulated\")].status}",
        ],
    )
    .await;
    assert_eq!(emulated, "True");
    sandbox.shutdown().await.unwrap();
}

/// `helm install --wait` of a chart whose pods are really run: a ConfigMap file mounted
/// with `subPath`, a readiness probe that reads it, a Service whose endpoints follow
/// readiness. A probe that cannot pass makes `--wait` time out, as on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_waits_for_probes_of_running_pods() {
    let (dir, sandbox, kc) = started("helmwait", "state").await;
    let chart = write_chart(
        dir.path(),
        "probed",
        &[
            ("values.yaml", "expect: ready\n"),
            (
                "templates/app.yaml",
                r#"apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-conf}
data:
  app.conf: |
    state=ready
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: 2
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - name: app
        image: busybox:1.36
        command: [sh, -c, 'echo started with $(cat /etc/app/app.conf); exec sleep 3600']
        volumeMounts:
        - {name: conf, mountPath: /etc/app/app.conf, subPath: app.conf, readOnly: true}
        readinessProbe:
          exec: {command: [grep, -q, "state={{ .Values.expect }}", /etc/app/app.conf]}
          periodSeconds: 1
        livenessProbe:
          exec: {command: [test, -f, /etc/app/app.conf]}
          periodSeconds: 2
      volumes:
      - {name: conf, configMap: {name: {{ .Release.Name }}-conf}}
---
apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80}]
"#,
            ),
        ],
    );
    let chart = chart.to_str().unwrap();
    let out = run_tool(
        "helm",
        &kc,
        &["install", "good", chart, "--wait", "--timeout", "60s"],
    )
    .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let ready = kubectl(
        &kc,
        &[
            "get",
            "deploy",
            "good",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
    )
    .await;
    assert_eq!(ready, "2");
    let addresses = kubectl(
        &kc,
        &[
            "get",
            "endpoints",
            "good",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ],
    )
    .await;
    assert_eq!(addresses.split_whitespace().count(), 2, "{addresses:?}");
    let logs = kubectl(&kc, &["logs", "deploy/good"]).await;
    assert_eq!(logs, "started with state=ready\n");

    let (ok, _, err) = tool_status(
        "helm",
        &kc,
        &[
            "install",
            "bad",
            chart,
            "--set",
            "expect=never",
            "--wait",
            "--timeout",
            "8s",
        ],
    )
    .await;
    assert!(!ok, "helm --wait succeeded although no pod can be ready");
    assert!(
        err.contains("context deadline exceeded") || err.contains("timed out"),
        "{err}"
    );
    let unready = kubectl(
        &kc,
        &[
            "get",
            "endpoints",
            "bad",
            "-o",
            "jsonpath={.subsets[0].notReadyAddresses[*].ip}",
        ],
    )
    .await;
    assert_eq!(unready.split_whitespace().count(), 2, "{unready:?}");
    sandbox.shutdown().await.unwrap();
}

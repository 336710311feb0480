//! Helm releases cloned into another namespace stay Helm's: the real helm installs and
//! upgrades a chart in `shop` (one release in Secrets, one with `HELM_DRIVER=configmap`),
//! `ferry clone` copies `shop` to `shop-qa` on the same sandbox, whose objects keep their
//! source's field managers, and helm then lists, upgrades (server-side apply without
//! forcing conflicts), rolls back and shows the history of each release in `shop-qa`,
//! touching only `shop-qa`'s objects, while `shop`'s releases stay as they were.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use serde_json::Value;

/// The releases: name, HELM_DRIVER, and how helm applies their objects. `web` goes helm
/// 4's default way, server-side apply: the clone's objects keep their source's field
/// managers (helm's Apply), so an upgrade in the clone changes their fields without
/// forcing conflicts with `ferry`. `api` goes helm 3's way, a three-way merge from the
/// record's manifest.
const RELEASES: [(&str, &str, &str); 2] = [
    ("web", "secret", "--server-side=true"),
    ("api", "configmap", "--server-side=false"),
];

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
      annotations:
        greeting: {{ .Values.greeting | quote }}
    spec:
      containers:
      - name: app
        image: nginx:1.27
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
  - port: 80
";

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  port: \"80\"
";

/// Runs `tool` (helm or kubectl, as the install script puts them) with `kubeconfig` and
/// `HELM_DRIVER=driver`; its stdout, or a failure with its output.
fn tool(tool: &str, kubeconfig: &Path, driver: &str, args: &[&str]) -> String {
    let bin = support::kubectl::path().with_file_name(tool);
    let out = Command::new(&bin)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .env("HELM_DRIVER", driver)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run scripts/install-kubectl.sh)",
                bin.display()
            )
        });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm <args> -o json` parsed.
fn helm_json(kubeconfig: &Path, driver: &str, args: &[&str]) -> Value {
    let args = [args, &["-o", "json"]].concat();
    let out = tool("helm", kubeconfig, driver, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("helm {args:?}: {e}: {out}"))
}

/// A release's (revision, status) as `helm list` shows it in `ns`.
fn listed(kubeconfig: &Path, driver: &str, ns: &str, release: &str) -> (String, String) {
    let list = helm_json(kubeconfig, driver, &["list", "-n", ns]);
    let r = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == release)
        .unwrap_or_else(|| panic!("{release} not listed in {ns}: {list}"));
    assert_eq!(r["namespace"], ns, "{list}");
    (
        r["revision"].as_str().unwrap().to_string(),
        r["status"].as_str().unwrap().to_string(),
    )
}

/// The greeting a release's ConfigMap and Deployment carry in `ns`.
fn greetings(kubeconfig: &Path, ns: &str, release: &str) -> (String, String) {
    let k = |args: &[&str]| tool("kubectl", kubeconfig, "secret", args);
    (
        k(&[
            "get",
            "configmap",
            &format!("{release}-settings"),
            "-n",
            ns,
            "-o",
            "jsonpath={.data.greeting}",
        ]),
        k(&[
            "get",
            "deployment",
            release,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.greeting}",
        ]),
    )
}

/// The `metadata.managedFields` of a release's ConfigMap, Deployment and Service in `ns`.
fn owners(kubeconfig: &Path, ns: &str, release: &str) -> Vec<Value> {
    let settings = format!("{release}-settings");
    [
        ("configmap", settings.as_str()),
        ("deployment", release),
        ("service", release),
    ]
    .iter()
    .map(|(kind, name)| {
        let out = tool(
            "kubectl",
            kubeconfig,
            "secret",
            &[
                "get",
                kind,
                name,
                "-n",
                ns,
                "-o",
                "json",
                "--show-managed-fields",
            ],
        );
        let obj: Value = serde_json::from_str(&out).unwrap();
        obj["metadata"]["managedFields"].clone()
    })
    .collect()
}

/// (manager, operation) of each of `managed`'s entries.
fn managers(managed: &Value) -> Vec<(String, String)> {
    managed
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn chart(dir: &Path) -> PathBuf {
    let chart = dir.join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    for (path, text) in [
        ("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n"),
        ("values.yaml", "greeting: hello\n"),
        ("templates/deployment.yaml", DEPLOYMENT),
        ("templates/service.yaml", SERVICE),
        ("templates/configmap.yaml", CONFIG_MAP),
    ] {
        std::fs::write(chart.join(path), text).unwrap();
    }
    chart
}

#[test]
fn cloned_helm_releases_are_upgraded_and_rolled_back_in_their_new_namespace() {
    let t = common::new_repo();
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        t.rt.block_on(Sandbox::start(SandboxConfig::new(
            "helm",
            dir.path().join("state"),
        )))
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[sandbox.kubeconfig_entry()]).unwrap();
    let chart = chart(dir.path());
    let chart = chart.to_str().unwrap();

    for (release, driver, apply) in RELEASES {
        let helm = |args: &[&str]| tool("helm", &kc, driver, args);
        let out = helm(&[
            "install",
            release,
            chart,
            "-n",
            "shop",
            "--create-namespace",
            apply,
            "--set",
            "greeting=v1",
        ]);
        assert!(out.contains("STATUS: deployed"), "{out}");
        let out = helm(&[
            "upgrade",
            release,
            chart,
            "-n",
            "shop",
            "--set",
            "greeting=v2",
        ]);
        assert!(out.contains("REVISION: 2"), "{out}");
    }

    let ferry = Command::new(support::ferry_bin())
        .env("XDG_DATA_HOME", dir.path().join("xdg/data"))
        .env("XDG_CONFIG_HOME", dir.path().join("xdg/config"))
        .env("XDG_STATE_HOME", dir.path().join("xdg/state"))
        .env("HOME", dir.path())
        .env("KUBECONFIG", &kc)
        .env("FERRY_PASSWORD", "test password")
        .env("FERRY_REPO", t.path())
        .env_remove("FERRY_PASSWORD_FILE")
        .env_remove("FERRY_KEY_FILE")
        .stdin(Stdio::null())
        .args([
            "clone",
            "--from",
            "ferry-helm",
            "--to",
            "ferry-helm",
            "-n",
            "shop",
            "--as",
            "shop-qa",
            "--no-volumes",
            "--yes",
        ])
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&ferry.stdout),
        String::from_utf8_lossy(&ferry.stderr)
    );
    assert!(ferry.status.success(), "ferry clone failed:\n{out}");
    // The plan says what became of each record (both revisions of both releases): the
    // Deployment and ConfigMap name their namespace, the Service does not.
    for (release, ..) in RELEASES {
        for revision in 1..=2 {
            let line = format!(
                "helm release record {release} (revision {revision}): namespace shop -> shop-qa, 2 manifest object(s) rewritten"
            );
            assert!(out.contains(&line), "no `{line}` in:\n{out}");
        }
    }

    for (release, driver, apply) in RELEASES {
        let helm = |args: &[&str]| tool("helm", &kc, driver, args);
        // The clone's objects have the source's field managers, not `ferry`.
        let source = owners(&kc, "shop", release);
        let clone = owners(&kc, "shop-qa", release);
        assert_eq!(clone, source, "{release} ({driver})");
        for managed in &clone {
            let managers = managers(managed);
            assert!(!managers.is_empty(), "{release}: {managed}");
            assert!(
                managers.iter().all(|(m, _)| m != "ferry"),
                "{release}: {managed}"
            );
            if apply == "--server-side=true" {
                assert!(
                    managers.contains(&("helm".into(), "Apply".into())),
                    "{release}: {managed}"
                );
            }
        }
        assert_eq!(
            listed(&kc, driver, "shop-qa", release),
            ("2".into(), "deployed".into()),
            "{release} ({driver})"
        );
        let manifest = helm(&["get", "manifest", release, "-n", "shop-qa"]);
        assert!(
            manifest.contains("namespace: shop-qa") && !manifest.contains("namespace: shop\n"),
            "{release} ({driver}): {manifest}"
        );
        assert!(
            manifest.contains("# Source: shop/templates/configmap.yaml"),
            "{manifest}"
        );

        // An upgrade in shop-qa changes shop-qa's objects, and only those.
        let out = helm(&[
            "upgrade",
            release,
            chart,
            "-n",
            "shop-qa",
            "--set",
            "greeting=v3",
        ]);
        assert!(out.contains("REVISION: 3"), "{out}");
        assert_eq!(
            greetings(&kc, "shop-qa", release),
            ("v3".into(), "v3".into())
        );
        assert_eq!(greetings(&kc, "shop", release), ("v2".into(), "v2".into()));

        let out = helm(&["rollback", release, "2", "-n", "shop-qa"]);
        assert!(out.contains("Rollback was a success"), "{out}");
        assert_eq!(
            greetings(&kc, "shop-qa", release),
            ("v2".into(), "v2".into())
        );
        let history = helm_json(&kc, driver, &["history", release, "-n", "shop-qa"]);
        let revisions: Vec<(i64, &str)> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["revision"].as_i64().unwrap(),
                    h["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            revisions,
            [
                (1, "superseded"),
                (2, "superseded"),
                (3, "superseded"),
                (4, "deployed")
            ],
            "{history}"
        );

        // The source's release is as it was.
        assert_eq!(
            listed(&kc, driver, "shop", release),
            ("2".into(), "deployed".into())
        );
        assert_eq!(
            helm_json(&kc, driver, &["history", release, "-n", "shop"])
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    t.rt.block_on(sandbox.shutdown()).unwrap();
}

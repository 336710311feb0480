//! The real kubectl 1.33 against an in-process sandbox, through the kubeconfig the
//! sandbox writes. kubectl comes from `scripts/install-kubectl.sh` (which
//! `scripts/test.sh` runs); without it this test fails and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::providers::sandbox::{Sandbox, SandboxConfig, write_kubeconfig};

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

/// Runs kubectl in a blocking thread (the sandbox serves on this test's runtime).
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let bin = kubectl_path();
    assert!(
        bin.exists(),
        "kubectl not found at {}: run `bash scripts/install-kubectl.sh` (or set FERRY_KUBECTL)",
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
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_applies_and_lists_resources() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("kubectl", dir.path().join("state")))
        .await
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[sandbox.kubeconfig_entry()]).unwrap();

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

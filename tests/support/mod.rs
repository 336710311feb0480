//! Fixtures shared by the integration tests.

#![allow(dead_code)]

pub mod cloud;
pub mod faults;
pub mod kubectl;
pub mod moto;
pub mod procs;
pub mod proxy;
pub mod s3s;
pub mod tmux;
pub mod volumes;

/// The binary under test: cargo's, or `FERRY_TEST_BIN` (an installed or copied build,
/// e.g. while another build replaces cargo's).
pub fn ferry_bin() -> String {
    std::env::var("FERRY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferry").to_string())
}

/// The `ferry-agent` binary the workspace built (beside the test binaries' folder), or
/// `FERRY_AGENT_BIN`.
pub fn agent_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("FERRY_AGENT_BIN") {
        return std::path::PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-… → target/<profile>/ferry-agent
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("ferry-agent"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: build the agent first (cargo build -p ferry-agent --profile <the tests' profile>), or run the whole workspace's tests",
        bin.display()
    );
    bin
}

/// The `ferry` binary with its folders under `dirs` (`xdg/data`, `xdg/config`,
/// `xdg/state`, `home`), clusters from `kubeconfig` and the repository at `repo`
/// (password "test password"), reading nothing from the terminal.
pub fn ferry_in(
    dirs: &std::path::Path,
    kubeconfig: &std::path::Path,
    repo: &std::path::Path,
) -> std::process::Command {
    let mut c = std::process::Command::new(ferry_bin());
    c.env("XDG_DATA_HOME", dirs.join("xdg/data"))
        .env("XDG_CONFIG_HOME", dirs.join("xdg/config"))
        .env("XDG_STATE_HOME", dirs.join("xdg/state"))
        .env("HOME", dirs.join("home"))
        .env("KUBECONFIG", kubeconfig)
        .env("FERRY_PASSWORD", "test password")
        .env("FERRY_REPO", repo)
        .env_remove("FERRY_PASSWORD_FILE")
        .env_remove("FERRY_KEY_FILE")
        .stdin(std::process::Stdio::null());
    c
}

/// What a run of the binary printed, stdout then stderr.
pub fn said(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sets (or, with None, removes) the Pod Security level namespace `ns` enforces.
pub async fn enforce_pod_security(client: &kube::Client, ns: &str, level: Option<&str>) {
    use k8s_openapi::api::core::v1::Namespace;
    let label =
        serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
    kube::Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(label),
        )
        .await
        .unwrap();
}

/// Waits (a minute at most) until the pods matching `selector` in `ns` all run.
pub async fn wait_running(client: &kube::Client, ns: &str, selector: &str) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;
    let api = kube::Api::<Pod>::namespaced(client.clone(), ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        if !pods.items.is_empty()
            && pods
                .items
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pods {selector} in {ns} never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

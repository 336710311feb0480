//! A whole cluster at scale (issue 19): one sandbox (`ferry sandbox up --name big`, its
//! own process) filled through kube-rs with [`NAMESPACES`] namespaces of
//! [`PER_NAMESPACE`] objects each (ConfigMaps of 1 KiB, Secrets, Services,
//! ServiceAccounts, Roles and RoleBindings: kinds no controller adds to), and an empty
//! second sandbox (`ferry sandbox up --name empty`). The `ferry` binary then:
//!
//! - captures the whole cluster (`ferry backup --context ferry-big -A --no-volumes`),
//! - plans its restore into the empty one (`ferry plan latest --context ferry-empty -o
//!   json`),
//! - restores it there (`ferry restore latest --context ferry-empty --yes`),
//!
//! each timed from start to exit, with its peak resident memory (`VmHWM` of the child,
//! read every 10 ms until it exits). Prints a markdown table. Run with
//! `cargo bench --bench cluster_scale --profile test`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/sandboxes.rs"]
mod sandboxes;
use sandboxes::{Sandboxes, create_all, run, sandbox_kubeconfig};

/// Namespaces of the big cluster.
const NAMESPACES: usize = 200;
/// Objects in each namespace (besides its default ServiceAccount and root CA).
const PER_NAMESPACE: usize = 100;
/// Requests in flight while filling the sandbox.
const IN_FLIGHT: usize = 32;

/// The objects of namespace `ns`, by kind.
fn namespace_objects(ns: &str) -> Vec<Vec<Value>> {
    let data = "x".repeat(1024);
    let meta = |name: String| json!({"name": name, "namespace": ns, "labels": {"app": "bench"}});
    vec![
        (0..40)
            .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(format!("config-{i:02}")), "data": {"payload": data}}))
            .collect(),
        (0..30)
            .map(|i| json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(format!("secret-{i:02}")), "type": "Opaque", "stringData": {"token": format!("{ns}-{i}")}}))
            .collect(),
        (0..10)
            .map(|i| json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(format!("svc-{i:02}")),
                            "spec": {"selector": {"app": format!("a{i}")}, "ports": [{"port": 80 + i}]}}))
            .collect(),
        (0..10)
            .map(|i| json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(format!("sa-{i:02}"))}))
            .collect(),
        (0..5)
            .map(|i| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(format!("role-{i}")),
                            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}))
            .collect(),
        (0..5)
            .map(|i| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(format!("rb-{i}")),
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("role-{i}")},
                            "subjects": [{"kind": "ServiceAccount", "name": format!("sa-{i:02}"), "namespace": ns}]}))
            .collect(),
    ]
}

/// Fills the big cluster; returns how long it took.
async fn fill(client: &kube::Client) -> Duration {
    let t = Instant::now();
    let names: Vec<String> = (0..NAMESPACES).map(|i| format!("app-{i:03}")).collect();
    create_all(
        client,
        names
            .iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
            .collect(),
        IN_FLIGHT,
    )
    .await;
    for kind in 0..6 {
        let objects: Vec<Value> = names
            .iter()
            .flat_map(|n| namespace_objects(n).swap_remove(kind))
            .collect();
        create_all(client, objects, IN_FLIGHT).await;
    }
    t.elapsed()
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sandboxes = Sandboxes::up(home, &["big", "empty"]);
    let big_pid = sandboxes.pid("big");
    let empty_pid = sandboxes.pid("empty");
    let kc = sandbox_kubeconfig(home);
    let path = home.join("kubeconfig-bench");
    std::fs::write(&path, serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
    let linked = ferry_providers::kubeconfig::Linked::load(&ferry_providers::kubeconfig::Sources {
        paths: vec![path],
    });
    let big = linked.get("ferry-big").expect("the big sandbox's context");
    let client = rt.block_on(big.client()).unwrap();
    let filled = rt.block_on(fill(&client));
    let objects = NAMESPACES * (PER_NAMESPACE + 1);
    // Let the sandbox's controllers settle (a pass every 500 ms).
    std::thread::sleep(Duration::from_secs(2));

    let capture = run(
        home,
        &big_pid,
        &[],
        &["backup", "--context", "ferry-big", "-A", "--no-volumes"],
    );
    let plan = run(
        home,
        &empty_pid,
        &[],
        &["plan", "latest", "--context", "ferry-empty", "-o", "json"],
    );
    let planned: Value = serde_json::from_str(
        plan.out
            .find('{')
            .map(|i| &plan.out[i..])
            .unwrap_or(&plan.out),
    )
    .unwrap_or(Value::Null);
    let creates = planned["items"]
        .as_array()
        .map(|i| i.iter().filter(|i| i["action"] == "create").count())
        .unwrap_or(0);
    let restore = run(
        home,
        &empty_pid,
        &[],
        &["restore", "latest", "--context", "ferry-empty", "--yes"],
    );
    // The restore's phases as its log has them: it is the last job in the log, the
    // lines after the one before it ended.
    let log = std::fs::read_to_string(home.join("state/ferry/ferry.log")).unwrap_or_default();
    let phases: Vec<String> = {
        let all: Vec<&str> = log.lines().filter(|l| l.contains("job phase")).collect();
        let ends: Vec<usize> = (0..all.len())
            .filter(|&n| all[n].ends_with("phase=done"))
            .collect();
        let from = ends.len().checked_sub(2).map_or(0, |k| ends[k] + 1);
        all[from..].iter().map(|l| l.to_string()).collect()
    };
    drop(sandboxes);

    println!(
        "## Whole cluster: {NAMESPACES} namespaces, {} objects ({PER_NAMESPACE} per namespace and the namespaces)",
        objects
    );
    println!();
    println!(
        "Filled in {:.1} s ({IN_FLIGHT} requests in flight). The plan creates {creates} objects.",
        filled.as_secs_f64()
    );
    println!();
    println!("| step | wall | objects/s | peak RSS | CPU: ferry / sandbox |");
    println!("|---|---|---|---|---|");
    for (what, r, n) in [
        ("capture (`backup -A --no-volumes`)", &capture, objects),
        ("plan (`plan latest -o json`)", &plan, objects),
        ("restore (`restore latest --yes`)", &restore, creates.max(1)),
    ] {
        println!(
            "| {what} | {:.2} s | {:.0} | {} | {:.2} s / {:.2} s |",
            r.wall.as_secs_f64(),
            n as f64 / r.wall.as_secs_f64(),
            mib(r.peak),
            r.cpu.as_secs_f64(),
            r.server_cpu.as_secs_f64()
        );
    }
    println!();
    println!("Restore's own summary:");
    println!();
    for l in restore
        .out
        .lines()
        .filter(|l| l.starts_with("restore into"))
    {
        println!("    {l}");
    }
    println!();
    println!("Restore's phases (its log):");
    println!();
    for l in &phases {
        println!("    {l}");
    }
}

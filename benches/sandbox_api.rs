//! Throughput of the sandbox's API through a real client (kube-rs over HTTPS): create
//! N ConfigMaps in one namespace, list them in pages, and watch them all arrive from
//! resourceVersion 0. Prints a table; no assertions (speed is measured, not tested).
//!
//! `cargo bench --bench sandbox_api [-- N]` (default N = 10000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

const CONCURRENCY: usize = 32;
const PAGE: u32 = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("bench", dir.path().join("state")))
        .await
        .unwrap();
    let path = dir.path().join("kubeconfig");
    write_kubeconfig(&path, &[sandbox.kubeconfig_entry()]).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let client = Client::try_from(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();

    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");

    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("cm-{i:06}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
                    "data": {"key": "value", "index": i.to_string()}
                }))
                .unwrap();
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let create = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut listed = 0;
    let mut pages = 0;
    // Only ours: a namespace also holds its kube-root-ca.crt ConfigMap.
    let mut lp = ListParams::default().labels("app=bench").limit(PAGE);
    loop {
        let page = api.list(&lp).await.unwrap();
        listed += page.items.len();
        pages += 1;
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let list = t.elapsed().as_secs_f64();
    assert_eq!(listed, n, "the paginated list lost or repeated objects");

    let t = Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=bench"), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = 0;
    while added < n {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Added(_)) => added += 1,
            Some(_) => {}
            None => break,
        }
    }
    let watch = t.elapsed().as_secs_f64();
    sandbox.shutdown().await.unwrap();

    println!("## Sandbox API throughput: {n} ConfigMaps, kube-rs over HTTPS, 2 cores\n");
    println!("| operation | seconds | objects/s |");
    println!("|---|---:|---:|");
    println!(
        "| create ({CONCURRENCY} in flight) | {create:.2} | {:.0} |",
        n as f64 / create
    );
    println!(
        "| list in {pages} pages of {PAGE} | {list:.2} | {:.0} |",
        n as f64 / list
    );
    println!(
        "| watch from resourceVersion 0 ({added} ADDED) | {watch:.2} | {:.0} |",
        added as f64 / watch
    );
}

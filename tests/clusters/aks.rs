//! AKS end to end against the sandbox cloud's Azure side (`ferry_sandbox::arm`),
//! through Ferry's own ARM client: a source cluster created with `PUT` and its
//! long-running operation, reached through its user kubeconfig, seeded with the shop,
//! captured with its envelope; a target created from that envelope by the `ferry`
//! binary (`ferry cluster create aks --from-snapshot`, an older version refused first),
//! listed by `ferry clusters` under its subscription, restored with a storage-class
//! mapping to `managed-csi`, byte for byte. And the bad inputs: no credentials at all,
//! a wrong secret, an unknown client, no rights on a subscription, a subscription that
//! does not exist, an empty one, throttling (retried, then reported), a creation that
//! fails half-way and a rerun that continues, paging over `nextLink`, and clusters that
//! survive a restart of the sandbox cloud. And the Azure CLI's login (no service
//! principal): an `az` script on the PATH of the `ferry` process prints a token the way
//! `az account get-access-token` does, or fails as an `az` that is not logged in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::scaffold::{self, Volumes};
use crate::support::cloud::{self, CLIENT, CLIENT_SECRET as SECRET, SUB, TENANT};

use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry_k8s::transform::Mapping;
use ferry_providers::aks::{self, AksCluster, AksError, AksSpec, AzureSubscription, CreateEvent};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_providers::spec::Field;
use ferry_sandbox::arm::AzurePrincipal;
use ferry_sandbox::cloud::{Cloud, CloudConfig};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

const EMPTY_SUB: &str = "5ub00000-0000-4000-8000-000000000002";
const OTHER_SUB: &str = "5ub00000-0000-4000-8000-000000000003";
const READER: &str = "c1000000-0000-4000-8000-000000000002";
const READER_SECRET: &str = "reader-secret-0002";

/// The shared sandbox cloud, plus an empty subscription the service principal may use,
/// one it may not, and a principal (`reader`) with no rights at all.
fn cloud_config(dir: &Path) -> CloudConfig {
    let mut c = cloud::config(dir);
    c.azure.principals[0].subscriptions.push(EMPTY_SUB.into());
    c.azure.principals.push(AzurePrincipal {
        client_id: READER.into(),
        client_secret: READER_SECRET.into(),
        name: "reader".into(),
        subscriptions: vec![],
    });
    c.azure
        .subscriptions
        .extend([EMPTY_SUB.to_string(), OTHER_SUB.to_string()]);
    c
}

async fn create(
    s: &AzureSubscription,
    spec: &AksSpec,
    source_version: Option<&str>,
) -> (Result<AksCluster, AksError>, Vec<CreateEvent>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let events = move |e: CreateEvent| s2.lock().unwrap().push(e);
    let r = aks::create_cluster(s, spec, source_version, &cloud::aks_fast(), &events).await;
    let ev = seen.lock().unwrap().clone();
    (r, ev)
}

/// `ferry` with its own folders, the test repository, the sandbox cloud linked as
/// subscriptions `test` (the clusters), `empty`, `ghost` (does not exist) and
/// `locked` (no rights), and the service principal's variables (unless `creds` is
/// false). Its PATH is `<home>/bin` alone: no Azure CLI unless a test puts an `az`
/// there.
async fn ferry(
    home: &Path,
    repo: &Path,
    cloud: &Cloud,
    creds: bool,
    args: &[&str],
) -> (bool, String, String) {
    let e = cloud.endpoint();
    let mut yaml = String::from("azure:\n");
    for (id, name) in [
        (SUB, "test"),
        (EMPTY_SUB, "empty"),
        ("00000000-dead-4000-8000-000000000000", "ghost"),
        (OTHER_SUB, "locked"),
    ] {
        yaml.push_str(&format!(
            "  - id: {id}\n    name: {name}\n    endpoint: {e}\n    authority: {e}\n"
        ));
    }
    scaffold::settings(home, &yaml);
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut cmd = scaffold::ferry_command(home, args);
    cmd.env("FERRY_REPO", repo)
        .env("FERRY_PASSWORD", "test password")
        .env("PATH", &bin)
        .env_remove("AZURE_AUTHORITY_HOST");
    if creds {
        cmd.env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT)
            .env("AZURE_CLIENT_SECRET", SECRET);
    } else {
        cmd.env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET");
    }
    scaffold::output(cmd).await
}

#[test]
fn an_aks_cluster_made_from_an_envelope_receives_the_shop_from_another_one() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Cloud::start(cloud_config(&dir.path().join("cloud")))
            .await
            .unwrap();
        let s = cloud::azure_subscription_as(&cloud, SUB, CLIENT, SECRET);

        // The source, made through ARM: PUT, then the operation polled to the end.
        let (src, events) = create(&s, &cloud::aks_spec("src-aks", "rg-shop", "1.31"), None).await;
        let src = src.unwrap();
        assert_eq!(src.provisioning_state, "Succeeded");
        assert_eq!(src.resource_group, "rg-shop");
        for want in [
            CreateEvent::Status {
                what: "cluster src-aks".into(),
                status: "InProgress".into(),
            },
            CreateEvent::Ready("cluster src-aks".into()),
            CreateEvent::Ready("StorageClasses managed-csi, managed-csi-premium".into()),
        ] {
            assert!(events.contains(&want), "{want:?} not in {events:#?}");
        }
        let src_linked = LinkedCluster::from_aks(&s, &src);
        assert_eq!(src_linked.name, "aks:test/rg-shop/src-aks");
        let src_client = src_linked.client().await.unwrap();
        let nodes = Api::<Node>::all(src_client.clone())
            .list(&ListParams::default().labels("kubernetes.azure.com/agentpool=system"))
            .await
            .unwrap();
        assert_eq!(nodes.items.len(), 2);
        let classes = Api::<StorageClass>::all(src_client.clone());
        for c in ["managed-csi", "managed-csi-premium"] {
            assert_eq!(
                classes.get(c).await.unwrap().provisioner,
                "disk.csi.azure.com"
            );
        }
        // The shop's claims land on managed-csi-premium, made the default for it.
        let default = "storageclass.kubernetes.io/is-default-class";
        for (c, v) in [("managed-csi", "false"), ("managed-csi-premium", "true")] {
            classes
                .patch(
                    c,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"metadata": {"annotations": {default: v}}})),
                )
                .await
                .unwrap();
        }
        let src_dir = dir
            .path()
            .join("cloud/azure")
            .join(SUB)
            .join("rg-shop/src-aks");
        scaffold::seed_shop(&src_client, &src_dir).await;
        let claim = Api::<PersistentVolumeClaim>::namespaced(src_client.clone(), "shop")
            .get("data-postgres-0")
            .await
            .unwrap();
        assert_eq!(
            claim.spec.unwrap().storage_class_name.as_deref(),
            Some("managed-csi-premium")
        );

        // Capture with the envelope.
        let out = scaffold::capture_shop(&t.repo, &src_linked, &src_client).await;
        let env = out.meta.envelope.clone().expect("envelope recorded");
        assert_eq!(env["kind"], "aks");
        assert_eq!(env["version"], "1.31.0");
        assert_eq!(env["location"], "westeurope");
        assert_eq!(env["resourceGroup"], "rg-shop");
        assert_eq!(env["nodePools"][0]["vmSize"], "Standard_D4s_v5");
        assert_eq!(env["nodePools"][0]["maxCount"], 4);
        assert_eq!(env["nodePools"][0]["availabilityZones"][1], "2");
        assert_eq!(env["nodePools"][0]["mode"], "System");
        assert_eq!(env["networkProfile"]["serviceCidr"], "10.1.0.0/16");
        assert_eq!(env["identity"]["type"], "SystemAssigned");
        assert_eq!(env["tags"]["team"], "shop");
        let snap_id = out.snapshot.id.to_hex();

        // The target, by the binary from the envelope: an older version is refused
        // before anything is made, then the source's version is used.
        let home = dir.path().join("home");
        let repo_path = t.path();
        let (ok, _, stderr) = ferry(
            &home,
            &repo_path,
            &cloud,
            true,
            &[
                "cluster",
                "create",
                "aks",
                "--subscription",
                "test",
                "--name",
                "dst-aks",
                "--from-snapshot",
                &snap_id,
                "--version",
                "1.30",
            ],
        )
        .await;
        assert!(!ok);
        assert!(
            stderr.contains("older than the source cluster's 1.31")
                && stderr.contains("give 1.31 or newer with --version"),
            "{stderr}"
        );
        assert!(
            aks::list_clusters(&s)
                .await
                .unwrap()
                .iter()
                .all(|c| c.name != "dst-aks")
        );
        let (ok, stdout, stderr) = ferry(
            &home,
            &repo_path,
            &cloud,
            true,
            &[
                "cluster",
                "create",
                "aks",
                "--subscription",
                "test",
                "--name",
                "dst-aks",
                "--from-snapshot",
                &snap_id,
            ],
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("--context aks:test/rg-shop/dst-aks"),
            "{stdout}"
        );
        assert!(stderr.contains("cluster dst-aks is ready"), "{stderr}");
        let dst = aks::get_cluster(&s, "rg-shop", "dst-aks").await.unwrap();
        assert_eq!(dst.location, "westeurope");
        assert!(dst.version.starts_with("1.31"), "{dst:?}");
        let dst_env = aks::envelope(&s, "rg-shop", "dst-aks").await.unwrap();
        assert_eq!(dst_env["nodePools"], env["nodePools"]);
        assert_eq!(dst_env["tags"]["team"], "shop");
        assert_eq!(dst_env["networkProfile"]["serviceCidr"], "10.1.0.0/16");

        // Restore the shop, premium claims mapped to managed-csi.
        let dst_linked = LinkedCluster::from_aks(&s, &dst);
        let dst_client = dst_linked.client().await.unwrap();
        let premium_to_standard = Mapping {
            storage_classes: [("managed-csi-premium".to_string(), "managed-csi".to_string())]
                .into(),
            ..Mapping::default()
        };
        scaffold::restore_shop(
            &t.repo,
            &out,
            &dst_linked.name,
            premium_to_standard,
            "managed-csi",
            Volumes {
                client: &src_client,
                dir: &src_dir,
            },
            Volumes {
                client: &dst_client,
                dir: &dir
                    .path()
                    .join("cloud/azure")
                    .join(SUB)
                    .join("rg-shop/dst-aks"),
            },
        )
        .await;

        // `ferry clusters`: both under their subscription; the missing and the locked
        // subscriptions are warnings that say what to do; the empty one is no warning.
        let (ok, stdout, stderr) =
            ferry(&home, &repo_path, &cloud, true, &["clusters", "--json"]).await;
        assert!(ok, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let row = v
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "aks:test/rg-shop/dst-aks")
            .unwrap_or_else(|| panic!("dst-aks not listed: {stdout}"));
        assert!(row["probe"]["version"].is_string(), "{row}");
        assert_eq!(row["probe"]["nodes"], 2);
        assert_eq!(row["aks"]["provisioningState"], "Succeeded");
        assert!(
            stderr.contains("skipped azure ghost") && stderr.contains("could not be found"),
            "{stderr}"
        );
        assert!(
            stderr.contains("skipped azure locked")
                && stderr.contains("Azure Kubernetes Service Contributor"),
            "{stderr}"
        );
        assert!(!stderr.contains("skipped azure empty"), "{stderr}");
        assert!(!stderr.contains("skipped azure test"), "{stderr}");
        let (ok, table, stderr) = ferry(&home, &repo_path, &cloud, true, &["clusters"]).await;
        assert!(ok, "{stderr}");
        let group = table.find("# azure test").expect(&table);
        let row = table.find("aks:test/rg-shop/src-aks").expect(&table);
        assert!(group < row, "{table}");
        // An aks: name is accepted as --context.
        let (ok, stdout, stderr) = ferry(
            &home,
            &repo_path,
            &cloud,
            true,
            &["namespaces", "--context", "aks:test/rg-shop/dst-aks"],
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(stdout.lines().any(|l| l.starts_with("shop ")), "{stdout}");
        // Without credentials or an Azure CLI: the subscription is skipped with a
        // message that says what to do.
        let (ok, _, stderr) =
            ferry(&home, &repo_path, &cloud, false, &["clusters", "--offline"]).await;
        assert!(ok, "{stderr}");
        assert!(
            stderr.contains("skipped azure test")
                && stderr.contains("Azure CLI (`az`) is not installed")
                && stderr.contains("az login"),
            "{stderr}"
        );

        cloud.shutdown().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(cloud_config(&dir.path().join("cloud")))
        .await
        .unwrap();
    let s = cloud::azure_subscription_as(&cloud, SUB, CLIENT, SECRET);

    // An empty subscription is an empty list, not an error.
    let empty = cloud::azure_subscription_as(&cloud, EMPTY_SUB, CLIENT, SECRET);
    assert!(aks::list_clusters(&empty).await.unwrap().is_empty());

    // Credentials: a wrong secret, an unknown client, another tenant.
    let e = aks::list_clusters(&cloud::azure_subscription_as(
        &cloud,
        SUB,
        CLIENT,
        "not-the-secret",
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, AksError::Credentials { .. }), "{e}");
    assert!(e.to_string().contains("AADSTS7000215"), "{e}");
    let e = aks::list_clusters(&cloud::azure_subscription_as(&cloud, SUB, "nobody", "x"))
        .await
        .unwrap_err();
    assert!(matches!(e, AksError::Credentials { .. }), "{e}");
    assert!(e.to_string().contains("AADSTS700016"), "{e}");

    // No rights on the subscription; a subscription that does not exist.
    let e = aks::list_clusters(&cloud::azure_subscription_as(
        &cloud,
        SUB,
        READER,
        READER_SECRET,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, AksError::NoAccess { .. }), "{e}");
    assert!(e.to_string().contains("AuthorizationFailed"), "{e}");
    let e = aks::list_clusters(&cloud::azure_subscription_as(
        &cloud,
        "00000000-dead-4000-8000-000000000000",
        CLIENT,
        SECRET,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, AksError::SubscriptionNotFound { .. }), "{e}");
    let e = aks::get_cluster(&s, "rg", "nothing").await.unwrap_err();
    assert!(matches!(e, AksError::NotFound { .. }), "{e}");

    // Throttling: a few 429s are retried away (after Retry-After); a storm is reported.
    cloud.throttle(2);
    assert!(aks::list_clusters(&s).await.is_ok());
    cloud.throttle(1000);
    let e = aks::list_clusters(&s).await.unwrap_err();
    assert!(matches!(e, AksError::Throttled { .. }), "{e}");
    cloud.throttle(0);

    // Bad requests are refused before anything is made.
    let mut no_system = cloud::aks_spec("x", "rg", "1.31");
    no_system.node_pools[0].mode = "User".into();
    let (r, _) = create(&s, &no_system, None).await;
    assert!(
        matches!(&r, Err(AksError::Invalid(s)) if s.field == Field::NodePools),
        "{r:?}"
    );
    let (r, _) = create(&s, &cloud::aks_spec("old", "rg", "1.30"), Some("v1.31.2")).await;
    assert!(
        matches!(&r, Err(AksError::Invalid(s)) if s.field == Field::Version && s.want == "1.31 or newer"),
        "{r:?}"
    );

    // A creation that fails half-way says what exists and how to delete it; the same
    // creation fails again, and a corrected one continues with the cluster.
    let mut huge = cloud::aks_spec("half", "rg-bad", "1.32");
    huge.node_pools[0].vm_size = "Standard_Huge".into();
    let (r, _) = create(&s, &huge, None).await;
    let msg = match r {
        Err(AksError::Create(f)) => {
            assert_eq!(f.created, ["managed cluster half"]);
            assert!(f.step.contains("waiting for the cluster"), "{}", f.step);
            f.to_string()
        }
        other => panic!("expected a half-way failure, got {other:?}"),
    };
    for want in [
        "SkuNotAvailable",
        "Standard_Huge",
        "Already created: managed cluster half",
        &format!("az aks delete --subscription {SUB} --resource-group rg-bad --name half --yes"),
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
    let (r, events) = create(&s, &huge, None).await;
    assert!(matches!(r, Err(AksError::Create(_))), "{r:?}");
    assert!(
        events.contains(&CreateEvent::Step(
            "cluster half exists (Failed): updating it".into()
        )),
        "{events:#?}"
    );
    let (r, _) = create(&s, &cloud::aks_spec("half", "rg-bad", "1.32"), None).await;
    assert_eq!(r.unwrap().provisioning_state, "Succeeded");
    let (r, events) = create(&s, &cloud::aks_spec("half", "rg-bad", "1.32"), None).await;
    r.unwrap();
    assert!(
        events.contains(&CreateEvent::Step("cluster half exists: reusing it".into())),
        "{events:#?}"
    );

    // Three clusters: the sandbox pages two at a time, the list follows nextLink.
    create(&s, &cloud::aks_spec("one", "rg-a", "1.33"), None)
        .await
        .0
        .unwrap();
    create(&s, &cloud::aks_spec("two", "rg-a", "1.33"), None)
        .await
        .0
        .unwrap();
    let names = |l: Vec<AksCluster>| {
        l.into_iter()
            .map(|c| format!("{}/{}", c.resource_group, c.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(aks::list_clusters(&s).await.unwrap()),
        ["rg-a/one", "rg-a/two", "rg-bad/half"]
    );

    // DELETE answers with an operation, and the cluster is gone from the list.
    let arm = aks::Arm::new(&s).unwrap();
    let (status, headers, _) = arm
        .send(
            http::Method::DELETE,
            &aks::cluster_url(&s, "rg-a", "two", ""),
            None,
            "cannot delete two",
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    let op = headers
        .get("azure-asyncoperation")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    assert_eq!(
        arm.get_json(&op, "op").await.unwrap()["status"],
        "Succeeded"
    );
    assert_eq!(
        names(aks::list_clusters(&s).await.unwrap()),
        ["rg-a/one", "rg-bad/half"]
    );

    // The clusters survive a restart of the sandbox cloud and answer again.
    cloud.shutdown().await.unwrap();
    let cloud = Cloud::start(cloud_config(&dir.path().join("cloud")))
        .await
        .unwrap();
    let s = cloud::azure_subscription_as(&cloud, SUB, CLIENT, SECRET);
    let listed = aks::list_clusters(&s).await.unwrap();
    assert_eq!(names(listed.clone()), ["rg-a/one", "rg-bad/half"]);
    assert!(listed.iter().all(|c| c.provisioning_state == "Succeeded"));
    let client = LinkedCluster::from_aks(&s, &listed[0])
        .client()
        .await
        .unwrap();
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(nodes.items.len(), 2);

    cloud.shutdown().await.unwrap();
}

fn ferry_sync(home: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = scaffold::ferry_command(home, args);
    cmd.env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_sandbox_cloud_prints_how_to_link_its_azure_subscriptions() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let _down = scaffold::CloudDown(h);
    let out = ferry_sync(h, &["sandbox", "cloud", "up", "--port", "0"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox cloud (Azure ARM and token endpoint) at "))
        .unwrap_or_else(|| panic!("no endpoint in {stdout}"))
        .to_string();
    // The config it prints, as a user would paste it.
    let start = stdout.find("  azure:\n").expect(&stdout);
    let block: String = stdout[start..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(block.contains(&format!("endpoint: {endpoint}")), "{block}");
    let cfg = h.join("config/ferry");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.yaml"), &block).unwrap();
    // The variables it wrote, as `source` would set them.
    let env_file = std::fs::read_to_string(h.join("data/ferry/sandbox-cloud/azure-env")).unwrap();
    let env: Vec<(&str, String)> = env_file
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    assert_eq!(env.len(), 3, "{env_file}");
    let out = ferry_sync(h, &["clusters", "--json"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(!stderr.contains("skipped azure"), "{stderr}");

    // A cluster made through it is there after the cloud restarts.
    let out = ferry_sync(
        h,
        &[
            "cluster",
            "create",
            "aks",
            "--subscription",
            "ferry-sandbox",
            "--resource-group",
            "demo",
            "--location",
            "westeurope",
            "--name",
            "demo",
            "--version",
            "1.33",
            "--node-pool",
            "system:Standard_B2s:1",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ferry_sync(h, &["sandbox", "cloud", "down"], &[])
            .status
            .success()
    );
    let out = ferry_sync(h, &["sandbox", "cloud", "up", "--port", "0"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let endpoint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox cloud (Azure ARM and token endpoint) at "))
        .unwrap()
        .to_string();
    let start = stdout.find("  azure:\n").unwrap();
    let block: String = stdout[start..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(block.contains(&endpoint));
    std::fs::write(cfg.join("config.yaml"), &block).unwrap();
    let out = ferry_sync(h, &["clusters", "--json"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "aks:ferry-sandbox/demo/demo")
        .unwrap_or_else(|| panic!("demo not listed: {v}"));
    assert_eq!(row["probe"]["nodes"], 1, "{row}");
}

/// Puts an executable `az` into `<home>/bin` (the PATH of [`ferry`]'s process only)
/// that appends its arguments to `<home>/az-calls`, then runs `body` (POSIX shell
/// built-ins only: that PATH has nothing else).
fn fake_az(home: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = home.join("az-calls");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n{body}",
        calls.display()
    );
    let az = bin.join("az");
    std::fs::write(&az, script).unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The arguments of each call to the fake `az` of `home`.
fn az_calls(home: &Path) -> Vec<String> {
    std::fs::read_to_string(home.join("az-calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Without a service principal, Ferry asks the Azure CLI for an ARM token (`az account
/// get-access-token --resource https://management.azure.com/ --subscription <id>`) and
/// lists the subscription's clusters with it; an Azure CLI that is not logged in yields
/// the advice to run `az login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_cli_login_is_used_without_a_service_principal() {
    let dir = tempfile::tempdir().unwrap();
    // `ferry clusters` opens no repository.
    let repo = dir.path().join("no-repo");
    let cloud = Cloud::start(cloud_config(&dir.path().join("cloud")))
        .await
        .unwrap();
    let s = cloud::azure_subscription_as(&cloud, SUB, CLIENT, SECRET);
    // The token a logged-in `az` holds: the sandbox's token endpoint issues it to the
    // service principal, as `az login --service-principal` would get it.
    let token = aks::Arm::new(&s).unwrap().token().await.unwrap();
    let expires = chrono::Local::now() + chrono::Duration::hours(1);

    // What `az account get-access-token -o json` prints (azure-cli 2.54 and later:
    // `expiresOn` in local time, `expires_on` in seconds since the epoch). Anything
    // else it is asked is refused, as az refuses an unknown command.
    let logged_in = home_with_az(
        dir.path(),
        "logged-in",
        &format!(
            r#"if [ "$1 $2" != "account get-access-token" ]; then
  echo "ERROR: '$1 $2' is misspelled or not recognized by the system." >&2; exit 2
fi
shift 2
resource=; sub=; output=
while [ $# -gt 0 ]; do
  case "$1" in
    --resource) resource="$2"; shift ;;
    --subscription) sub="$2"; shift ;;
    -o|--output) output="$2"; shift ;;
  esac
  shift
done
if [ "$resource" != "https://management.azure.com/" ] || [ "$output" != json ]; then
  echo "ERROR: this az answers only --resource https://management.azure.com/ -o json" >&2; exit 2
fi
printf '{{\n  "accessToken": "%s",\n  "expiresOn": "%s",\n  "expires_on": %s,\n  "subscription": "%s",\n  "tenant": "%s",\n  "tokenType": "Bearer"\n}}\n' '{token}' '{}' {} "$sub" '{TENANT}'
"#,
            expires.format("%Y-%m-%d %H:%M:%S%.6f"),
            expires.timestamp()
        ),
    );
    // An Azure CLI that is installed but not logged in.
    let logged_out = home_with_az(
        dir.path(),
        "logged-out",
        "echo \"Please run 'az login' to setup account.\" >&2\nexit 1\n",
    );

    // A cluster to list, made with the service principal.
    let (made, _) = create(&s, &cloud::aks_spec("cli", "rg-cli", "1.33"), None).await;
    made.unwrap();

    let (ok, stdout, stderr) =
        ferry(&logged_in, &repo, &cloud, false, &["clusters", "--json"]).await;
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "aks:test/rg-cli/cli")
        .unwrap_or_else(|| panic!("cli not listed through az: {stdout}\n{stderr}"));
    assert_eq!(row["aks"]["provisioningState"], "Succeeded", "{row}");
    assert_eq!(
        row["probe"]["nodes"], 2,
        "reached with the user credentials: {row}"
    );
    assert!(!stderr.contains("skipped azure test"), "{stderr}");
    let calls = az_calls(&logged_in);
    assert!(
        calls.contains(&format!(
            "account get-access-token --resource https://management.azure.com/ --subscription {SUB} -o json"
        )),
        "{calls:#?}"
    );
    for c in &calls {
        assert!(
            c.starts_with(
                "account get-access-token --resource https://management.azure.com/ --subscription "
            ),
            "{calls:#?}"
        );
    }

    let (ok, _, stderr) = ferry(
        &logged_out,
        &repo,
        &cloud,
        false,
        &["clusters", "--offline"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("skipped azure test")
            && stderr.contains("Please run 'az login' to setup account")
            && stderr.contains("log in with `az login`"),
        "{stderr}"
    );
    assert!(!stderr.contains("account.."), "{stderr}");
    assert!(!az_calls(&logged_out).is_empty(), "az was not asked");

    cloud.shutdown().await.unwrap();
}

/// A home for [`ferry`] named `name` under `dir`, with a fake `az` running `body`.
fn home_with_az(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let home = dir.join(name);
    fake_az(&home, body);
    home
}

/// `ferry cluster create aks` words the providers' errors for the command line: a
/// missing field names its flag, and a creation that fails half-way says to run the
/// same command again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_words_creation_errors_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = dir.path().join("no-repo");
    let cloud = Cloud::start(cloud_config(&dir.path().join("cloud")))
        .await
        .unwrap();
    let create = |rg: &'static str, pool: &'static str| {
        [
            "cluster",
            "create",
            "aks",
            "--subscription",
            "test",
            "--resource-group",
            rg,
            "--location",
            "westeurope",
            "--name",
            "half",
            "--version",
            "1.33",
            "--node-pool",
            pool,
        ]
    };
    let (ok, _, stderr) = ferry(
        &home,
        &repo,
        &cloud,
        true,
        &create("", "system:Standard_B2s:1"),
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("no resource group is given: give the resource group to create the cluster in with --resource-group"),
        "{stderr}"
    );
    let (ok, _, stderr) = ferry(
        &home,
        &repo,
        &cloud,
        true,
        &create("rg-half", "system:Standard_Huge:1"),
    )
    .await;
    assert!(!ok);
    for want in [
        "SkuNotAvailable",
        "Already created: managed cluster half. To continue, run the same command again",
        &format!("az aks delete --subscription {SUB} --resource-group rg-half --name half --yes"),
    ] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
    assert!(!stderr.contains(".."), "Azure's '.' and Ferry's: {stderr}");
    cloud.shutdown().await.unwrap();
}

//! EKS end to end against the sandbox cloud (`ferry_sandbox::cloud`), through the
//! real AWS SDK clients and Ferry's own code: a cluster created with node groups, the
//! EBS CSI add-on and gp3, ACTIVE, listed (also by the `ferry` binary), reached with
//! the generated token, the sample shop captured from one EKS cluster with its
//! envelope and restored into a second one created from that envelope, byte for byte;
//! and the bad inputs: a profile without EKS rights, a wrong secret, throttling, an
//! empty region, a creation failing half-way, a version older than the source, a token
//! for another cluster; and clusters that survive a restart of the cloud.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::scaffold::{self, Volumes};
use crate::support::cloud::{self, AWS_KEY as KEY, AWS_SECRET as SECRET, REGION};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_k8s::capture;
use ferry_k8s::transform::Mapping;
use ferry_providers::eks::{self, AwsAccount, ClusterSpec, CreateEvent, EksError};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_providers::spec::Field;
use ferry_sandbox::cloud::{Cloud, CloudConfig};
use ferry_sandbox::iam::Principal;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::ListParams;

const NO_EKS_KEY: &str = "AKIAFERRYTEST0002";
const NO_EKS_SECRET: &str = "ferry-test-secret-0002";

fn principals() -> Vec<Principal> {
    vec![
        Principal {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            user: "ferry".into(),
            eks: true,
        },
        Principal {
            access_key_id: NO_EKS_KEY.into(),
            secret_access_key: NO_EKS_SECRET.into(),
            user: "auditor".into(),
            eks: false,
        },
    ]
}

/// Creates a cluster and returns it with the events reported on the way.
async fn create(
    acct: &AwsAccount,
    spec: &ClusterSpec,
    source_version: Option<&str>,
) -> (Result<eks::EksCluster, EksError>, Vec<CreateEvent>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let events = move |e: CreateEvent| s2.lock().unwrap().push(e);
    let r = eks::create_cluster(
        acct,
        REGION,
        spec,
        source_version,
        &cloud::eks_fast(),
        &events,
    )
    .await;
    let ev = seen.lock().unwrap().clone();
    (r, ev)
}

/// `ferry` with its own folders, the sandbox cloud linked as profile `ferry-test` and a
/// profile `missing` that has no credentials at all.
async fn ferry(home: &Path, cloud: &Cloud, args: &[&str]) -> (bool, String, String) {
    scaffold::settings(
        home,
        &format!(
            "aws:\n  - profile: ferry-test\n    regions: [{REGION}, eu-west-3]\n    endpoint: {}\n  - profile: missing\n    regions: [{REGION}]\n    endpoint: {}\n",
            cloud.endpoint(),
            cloud.endpoint()
        ),
    );
    std::fs::write(
        home.join("aws-credentials"),
        format!("[ferry-test]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        home.join("aws-config"),
        format!("[profile ferry-test]\nregion = {REGION}\n"),
    )
    .unwrap();
    let mut cmd = scaffold::ferry_command(home, args);
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"));
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(var);
    }
    scaffold::output(cmd).await
}

#[test]
fn an_eks_cluster_made_through_ferry_receives_the_shop_from_another_one() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Cloud::start(CloudConfig::new(dir.path().join("cloud"), principals()))
            .await
            .unwrap();
        let acct = cloud::aws_account_as(&cloud, KEY, SECRET);
        let who = eks::identity(&acct, REGION).await.unwrap();
        assert_eq!(who.arn, "arn:aws:iam::123456789012:user/ferry");
        assert_eq!(who.account, "123456789012");

        // The source: an EKS cluster made by Ferry, with the shop in it.
        let (src, events) = create(&acct, &cloud::eks_spec("src-eks", "1.31"), None).await;
        let src = src.unwrap();
        assert_eq!(src.status, "ACTIVE");
        assert!(src.endpoint.starts_with("https://127.0.0.1:"), "{src:?}");
        for want in [
            CreateEvent::Status {
                what: "cluster src-eks".into(),
                status: "CREATING".into(),
            },
            CreateEvent::Ready("cluster src-eks".into()),
            CreateEvent::Ready("node group general".into()),
            CreateEvent::Ready(format!("add-on {}", eks::EBS_CSI_ADDON)),
            CreateEvent::Ready("StorageClass gp3".into()),
        ] {
            assert!(events.contains(&want), "{want:?} not in {events:#?}");
        }
        let src_linked = LinkedCluster::from_eks(&acct, &src);
        assert_eq!(src_linked.name, "eks:default/us-east-1/src-eks");
        let src_client = src_linked.client().await.unwrap();
        let nodes = Api::<Node>::all(src_client.clone())
            .list(&ListParams::default().labels("eks.amazonaws.com/nodegroup=general"))
            .await
            .unwrap();
        assert_eq!(nodes.items.len(), 2);
        let gp3 = Api::<StorageClass>::all(src_client.clone())
            .get("gp3")
            .await
            .unwrap();
        assert_eq!(gp3.provisioner, "ebs.csi.aws.com");
        let src_dir = dir.path().join("cloud").join(REGION).join("src-eks");
        scaffold::seed_shop(&src_client, &src_dir).await;

        // Capture: the envelope is recorded with the cluster's facts.
        let out = scaffold::capture_shop(&t.repo, &src_linked, &src_client).await;
        let env = out.meta.envelope.clone().expect("envelope recorded");
        assert_eq!(env["kind"], "eks");
        assert_eq!(env["version"], "1.31");
        assert_eq!(env["nodegroups"][0]["name"], "general");
        assert_eq!(env["nodegroups"][0]["scaling"]["desired"], 2);
        assert_eq!(env["addons"][0]["name"], eks::EBS_CSI_ADDON);
        // It is in the snapshot as stored, not only in memory.
        let (repo2, id) = (t.repo.clone(), out.snapshot.id.to_hex());
        let stored = tokio::task::spawn_blocking(move || ferry_repo::snapshot::find(&repo2, &id))
            .await
            .unwrap()
            .unwrap();
        let meta = capture::CaptureMeta::of(&stored).unwrap();
        assert_eq!(meta.envelope, Some(env.clone()));

        // The target: pre-filled from the envelope; older than the source is refused
        // before anything is made.
        let mut old = ClusterSpec::from_envelope(&env, "dst-eks");
        old.version = "1.30".into();
        let (r, _) = create(&acct, &old, Some("1.31")).await;
        let e = r.unwrap_err();
        assert!(
            matches!(&e, EksError::Invalid(s) if s.field == Field::Version),
            "{e}"
        );
        assert!(e.to_string().contains("older than the source"), "{e}");
        assert!(
            eks::list_clusters(&acct, REGION)
                .await
                .unwrap()
                .iter()
                .all(|c| c.name != "dst-eks")
        );
        let (dst, _) = create(
            &acct,
            &ClusterSpec::from_envelope(&env, "dst-eks"),
            Some("1.31"),
        )
        .await;
        let dst = dst.unwrap();
        assert_eq!(dst.version, "1.31");

        let listed = eks::list_clusters(&acct, REGION).await.unwrap();
        let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dst-eks", "src-eks"]);
        assert!(listed.iter().all(|c| c.status == "ACTIVE"));
        let ng = eks::envelope(&acct, REGION, "dst-eks").await.unwrap();
        assert_eq!(ng["nodegroups"][0]["labels"]["role"], "web");
        assert_eq!(ng["tags"]["team"], "shop");

        // Connect with the generated token; a token for another cluster is refused.
        let dst_linked = LinkedCluster::from_eks(&acct, &dst);
        let dst_client = dst_linked.client().await.unwrap();
        let nss = Api::<Namespace>::all(dst_client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        assert!(
            nss.items
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
        );
        let wrong = other_clusters_token_client(&acct, &dst, "src-eks").await;
        let e = Api::<Namespace>::all(wrong)
            .list(&ListParams::default())
            .await
            .unwrap_err();
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 401), "{e}");

        // Long jobs: the client replaces its token once it is old. With a lifetime of
        // zero, every request carries a newly made one; with the real lifetime, one
        // token serves them all.
        let source = eks::TokenSource::with_lifetime(&acct, REGION, "dst-eks", Duration::ZERO);
        let refreshing = eks::client_with(&dst, source.clone()).await.unwrap();
        let before = source.tokens_made();
        for _ in 0..3 {
            Api::<Namespace>::all(refreshing.clone())
                .list(&ListParams::default())
                .await
                .unwrap();
        }
        assert!(
            source.tokens_made() >= before + 3,
            "{}",
            source.tokens_made()
        );
        let source = eks::TokenSource::new(&acct, REGION, "dst-eks");
        let steady = eks::client_with(&dst, source.clone()).await.unwrap();
        for _ in 0..3 {
            Api::<Namespace>::all(steady.clone())
                .list(&ListParams::default())
                .await
                .unwrap();
        }
        assert_eq!(source.tokens_made(), 1);

        // Restore the shop into the new cluster.
        scaffold::restore_shop(
            &t.repo,
            &out,
            &dst_linked.name,
            Mapping::default(),
            "gp3",
            Volumes {
                client: &src_client,
                dir: &src_dir,
            },
            Volumes {
                client: &dst_client,
                dir: &dir.path().join("cloud").join(REGION).join("dst-eks"),
            },
        )
        .await;

        // The binary: `ferry clusters` lists both in their account/region group, and
        // a command takes an eks: name as --context.
        let home = dir.path().join("home");
        let (ok, stdout, stderr) = ferry(&home, &cloud, &["clusters", "--json"]).await;
        assert!(ok, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let dst_row = v
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "eks:ferry-test/us-east-1/dst-eks")
            .unwrap_or_else(|| panic!("dst-eks not listed: {stdout}"));
        assert!(dst_row["probe"]["version"].is_string(), "{dst_row}");
        assert_eq!(dst_row["probe"]["nodes"], 2);
        assert_eq!(dst_row["eks"]["status"], "ACTIVE");
        // The profile without credentials is a warning that says what to do.
        assert!(
            stderr.contains("skipped aws missing us-east-1")
                && stderr.contains("aws sts get-caller-identity --profile missing"),
            "{stderr}"
        );
        let (ok, table, stderr) = ferry(&home, &cloud, &["clusters"]).await;
        assert!(ok, "{stderr}");
        let group = table.find("# aws ferry-test us-east-1").expect(&table);
        let row = table
            .find("eks:ferry-test/us-east-1/src-eks")
            .expect(&table);
        assert!(group < row, "{table}");
        let (ok, stdout, stderr) = ferry(
            &home,
            &cloud,
            &[
                "namespaces",
                "--context",
                "eks:ferry-test/us-east-1/dst-eks",
            ],
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(stdout.lines().any(|l| l.starts_with("shop ")), "{stdout}");

        cloud.shutdown().await.unwrap();
    });
}

/// A kube client for `target` that sends a token made for `other`.
async fn other_clusters_token_client(
    acct: &AwsAccount,
    target: &eks::EksCluster,
    other: &str,
) -> kube::Client {
    let token = eks::current_token(acct, REGION, other).await.unwrap();
    let kc: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": target.endpoint, "certificate-authority-data": target.certificate_authority}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }))
    .unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(CloudConfig::new(dir.path().join("cloud"), principals()))
        .await
        .unwrap();
    let acct = cloud::aws_account_as(&cloud, KEY, SECRET);

    // A region with no clusters is an empty list, not an error.
    assert!(
        eks::list_clusters(&acct, "eu-west-3")
            .await
            .unwrap()
            .is_empty()
    );

    // A profile without EKS permissions.
    let auditor = cloud::aws_account_as(&cloud, NO_EKS_KEY, NO_EKS_SECRET);
    assert!(eks::identity(&auditor, REGION).await.is_ok());
    let e = eks::list_clusters(&auditor, REGION).await.unwrap_err();
    assert!(matches!(e, EksError::NoAccess { .. }), "{e}");
    assert!(e.to_string().contains("eks:ListClusters"), "{e}");

    // A wrong secret: a credentials problem, for STS and EKS alike.
    let wrong = cloud::aws_account_as(&cloud, KEY, "not-the-secret");
    let e = eks::identity(&wrong, REGION).await.unwrap_err();
    assert!(matches!(e, EksError::Credentials { .. }), "{e}");
    let e = eks::list_clusters(&wrong, REGION).await.unwrap_err();
    assert!(matches!(e, EksError::Credentials { .. }), "{e}");
    let e = eks::list_clusters(&cloud::aws_account_as(&cloud, "AKIAUNKNOWN", "x"), REGION)
        .await
        .unwrap_err();
    assert!(matches!(e, EksError::Credentials { .. }), "{e}");

    // Throttling: a few throttled answers are retried away; a storm is reported.
    cloud.throttle(2);
    assert!(eks::list_clusters(&acct, REGION).await.is_ok());
    cloud.throttle(1000);
    let e = eks::list_clusters(&acct, REGION).await.unwrap_err();
    assert!(matches!(e, EksError::Throttled { .. }), "{e}");
    cloud.throttle(0);

    // Bad requests are refused before anything is made.
    let mut one_subnet = cloud::eks_spec("x", "1.31");
    one_subnet.subnet_ids.truncate(1);
    let (r, _) = create(&acct, &one_subnet, None).await;
    assert!(
        matches!(&r, Err(EksError::Invalid(s)) if s.field == Field::Subnets),
        "{r:?}"
    );

    // A rerun continues what exists: the cluster alone first, then with node groups.
    let mut bare = cloud::eks_spec("half", "1.32");
    bare.nodegroups.clear();
    bare.addons.clear();
    bare.storage_class = None;
    create(&acct, &bare, None).await.0.unwrap();
    let mut bad_ng = cloud::eks_spec("half", "1.32");
    bad_ng.nodegroups[0].name = "big".into();
    bad_ng.nodegroups[0].instance_types = vec!["m6i.huge".into()];
    let (r, events) = create(&acct, &bad_ng, None).await;
    assert!(
        events.contains(&CreateEvent::Step("cluster half exists: reusing it".into())),
        "{events:#?}"
    );
    // Creation failing half-way: the message lists what exists and how to remove it.
    match r {
        Err(EksError::Create { created, step, .. }) => {
            assert_eq!(created, ["cluster half", "nodegroup big"]);
            assert!(step.contains("node group big"), "{step}");
        }
        other => panic!("expected a half-way failure, got {other:?}"),
    }
    let (r, _) = create(&acct, &bad_ng, None).await;
    let msg = r.unwrap_err().to_string();
    for want in [
        "CREATE_FAILED",
        "m6i.huge",
        "Already created: cluster half, nodegroup big",
        "aws eks delete-nodegroup --region us-east-1 --cluster-name half --nodegroup-name big",
        "aws eks delete-cluster --region us-east-1 --name half",
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }

    // The clusters survive a restart of the cloud on the same folder: the ACTIVE one
    // answers again (new endpoint, same objects), its node group is remembered.
    cloud.shutdown().await.unwrap();
    let cloud = Cloud::start(CloudConfig::new(dir.path().join("cloud"), principals()))
        .await
        .unwrap();
    let acct = cloud::aws_account_as(&cloud, KEY, SECRET);
    let half = eks::describe(&acct, REGION, "half").await.unwrap();
    assert_eq!(half.status, "ACTIVE");
    let client = LinkedCluster::from_eks(&acct, &half)
        .client()
        .await
        .unwrap();
    let nss = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(!nss.items.is_empty());
    let env = eks::envelope(&acct, REGION, "half").await.unwrap();
    assert_eq!(env["nodegroups"][0]["name"], "big");

    cloud.shutdown().await.unwrap();
}

fn ferry_sync(home: &Path, args: &[&str]) -> std::process::Output {
    scaffold::ferry_command(home, args).output().unwrap()
}

#[test]
fn the_sandbox_cloud_runs_in_the_background_with_profiles_to_use_it() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let _down = scaffold::CloudDown(h);
    let out = ferry_sync(h, &["sandbox", "cloud", "up", "--port", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox cloud (EKS and STS APIs) at "))
        .unwrap_or_else(|| panic!("no endpoint in {stdout}"))
        .to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let dir = h.join("data/ferry/sandbox-cloud");
    let creds = std::fs::read_to_string(dir.join("aws-credentials")).unwrap();
    assert!(creds.contains("[ferry-sandbox]") && creds.contains("[ferry-sandbox-no-eks]"));

    // The profiles it wrote reach it through the SDK's own profile files: link them
    // as a user would and list (no clusters yet), and the no-EKS one is refused.
    scaffold::settings(
        h,
        &format!(
            "aws:\n  - profile: ferry-sandbox\n    regions: [us-east-1]\n    endpoint: {endpoint}\n  - profile: ferry-sandbox-no-eks\n    regions: [us-east-1]\n    endpoint: {endpoint}\n"
        ),
    );
    let out = scaffold::ferry_command(h, &["clusters", "--json"])
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(
        stderr.contains("skipped aws ferry-sandbox-no-eks us-east-1")
            && stderr.contains("may not use EKS"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("skipped aws ferry-sandbox us-east-1"),
        "{stderr}"
    );

    let out = ferry_sync(h, &["sandbox", "cloud", "status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("running"));
    let out = ferry_sync(h, &["sandbox", "cloud", "down"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
    let out = ferry_sync(h, &["sandbox", "cloud", "status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
}

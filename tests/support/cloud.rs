//! The sandbox cloud (`ferry_sandbox::cloud`) as the tests use it: its AWS side
//! with one principal allowed to use EKS, its Azure side with one service principal and
//! one subscription; the account and subscription Ferry links them as; specs of source
//! clusters; and the files and variables a `ferry` subprocess needs to find both
//! clouds the way a user's machine provides them.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ferry_providers::aks::{self, AksSpec, AzureSubscription, NodePoolSpec, ServicePrincipal};
use ferry_providers::eks::{self, AwsAccount, ClusterSpec, NodegroupSpec};
use ferry_sandbox::arm::{ArmConfig, AzurePrincipal};
use ferry_sandbox::cloud::{Cloud, CloudConfig};
use ferry_sandbox::iam::Principal;

pub const REGION: &str = "us-east-1";
pub const AWS_KEY: &str = "AKIAFERRYTEST0001";
pub const AWS_SECRET: &str = "ferry-test-secret-0001";
/// The AWS profile `link` writes for the subprocess.
pub const AWS_PROFILE: &str = "ferry-test";
pub const TENANT: &str = "7e1f0000-0000-4000-8000-00000000000a";
pub const SUB: &str = "5ub00000-0000-4000-8000-000000000001";
/// The subscription's name in Ferry's settings (`aks:<name>/…` contexts).
pub const SUB_NAME: &str = "test";
pub const CLIENT: &str = "c1000000-0000-4000-8000-000000000001";
pub const CLIENT_SECRET: &str = "ferry~test.secret_0001";

/// A cloud with the AWS principal and the Azure service principal, its clusters' folders
/// under `dir`.
pub fn config(dir: &Path) -> CloudConfig {
    let mut c = CloudConfig::new(
        dir,
        vec![Principal {
            access_key_id: AWS_KEY.into(),
            secret_access_key: AWS_SECRET.into(),
            user: "ferry".into(),
            eks: true,
        }],
    );
    c.azure = ArmConfig {
        tenant: TENANT.into(),
        principals: vec![AzurePrincipal {
            client_id: CLIENT.into(),
            client_secret: CLIENT_SECRET.into(),
            name: "ferry".into(),
            subscriptions: vec![SUB.into()],
        }],
        subscriptions: vec![SUB.into()],
    };
    c
}

pub async fn start(dir: &Path) -> Cloud {
    Cloud::start(config(dir)).await.unwrap()
}

/// The AWS account the principal is, as linked in-process (static keys).
pub fn aws_account(cloud: &Cloud) -> AwsAccount {
    aws_account_as(cloud, AWS_KEY, AWS_SECRET)
}

/// An AWS account with these keys (another principal's, or wrong ones).
pub fn aws_account_as(cloud: &Cloud, key: &str, secret: &str) -> AwsAccount {
    AwsAccount {
        profile: None,
        regions: vec![REGION.into()],
        endpoint: Some(cloud.endpoint()),
        static_credentials: Some((key.into(), secret.into())),
    }
}

/// The subscription, as linked in-process (the service principal's secret).
pub fn azure_subscription(cloud: &Cloud) -> AzureSubscription {
    azure_subscription_as(cloud, SUB, CLIENT, CLIENT_SECRET)
}

/// Subscription `id` reached as service principal `client` with `secret`.
pub fn azure_subscription_as(
    cloud: &Cloud,
    id: &str,
    client: &str,
    secret: &str,
) -> AzureSubscription {
    AzureSubscription {
        id: id.into(),
        name: Some(SUB_NAME.into()),
        endpoint: Some(cloud.endpoint()),
        authority: Some(cloud.endpoint()),
        service_principal: Some(ServicePrincipal {
            tenant_id: TENANT.into(),
            client_id: client.into(),
            client_secret: secret.into(),
        }),
    }
}

/// Creation polled quickly (the sandbox's clusters are ready in moments).
pub fn eks_fast() -> eks::CreateOptions {
    eks::CreateOptions {
        poll: Duration::from_millis(50),
        max_poll: Duration::from_millis(250),
        limit: Duration::from_secs(120),
    }
}

pub fn aks_fast() -> aks::CreateOptions {
    aks::CreateOptions {
        poll: Duration::from_millis(50),
        max_poll: Duration::from_millis(250),
        limit: Duration::from_secs(120),
    }
}

/// An EKS cluster as a team would describe it: two subnets, one node group of two
/// m6i.large nodes, the EBS CSI add-on and a gp3 class.
pub fn eks_spec(name: &str, version: &str) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        version: version.into(),
        role_arn: "arn:aws:iam::123456789012:role/eks".into(),
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        endpoint_public_access: true,
        tags: [("team".to_string(), "shop".to_string())].into(),
        nodegroups: vec![NodegroupSpec {
            name: "general".into(),
            instance_types: vec!["m6i.large".into()],
            min_size: 1,
            max_size: 4,
            desired_size: 2,
            labels: [("role".to_string(), "web".to_string())].into(),
            node_role: "arn:aws:iam::123456789012:role/node".into(),
            ..NodegroupSpec::default()
        }],
        addons: vec![eks::EBS_CSI_ADDON.into()],
        storage_class: Some("gp3".into()),
        ..ClusterSpec::default()
    }
}

/// An AKS cluster in `rg`: one autoscaling System pool of two Standard_D4s_v5 nodes in
/// two zones, Azure CNI, a tag.
pub fn aks_spec(name: &str, rg: &str, version: &str) -> AksSpec {
    let mut s = AksSpec::new(name, rg, "westeurope", version);
    s.node_pools = vec![NodePoolSpec {
        name: "system".into(),
        vm_size: "Standard_D4s_v5".into(),
        count: 2,
        enable_auto_scaling: true,
        min_count: Some(1),
        max_count: Some(4),
        availability_zones: vec!["1".into(), "2".into()],
        mode: "System".into(),
        os_type: "Linux".into(),
        ..NodePoolSpec::default()
    }];
    s.network_profile = Some(
        serde_json::json!({"networkPlugin": "azure", "serviceCidr": "10.1.0.0/16", "dnsServiceIP": "10.1.0.10"}),
    );
    s.tags = [("team".to_string(), "shop".to_string())].into();
    s
}

/// Where the cloud keeps the folder of an EKS cluster's sandbox.
pub fn eks_dir(cloud_dir: &Path, name: &str) -> std::path::PathBuf {
    cloud_dir.join(REGION).join(name)
}

/// Where the cloud keeps the folder of an AKS cluster's sandbox.
pub fn aks_dir(cloud_dir: &Path, rg: &str, name: &str) -> std::path::PathBuf {
    cloud_dir.join("azure").join(SUB).join(rg).join(name)
}

/// Links both clouds for a `ferry` subprocess whose home is `home`: Ferry's settings
/// name the AWS profile (region, endpoint) and the subscription (endpoint, authority);
/// the profile's keys go into an AWS credentials file. Returns the variables the
/// subprocess needs (the AWS files, the service principal's `AZURE_*` variables).
pub fn link(home: &Path, cloud: &Cloud) -> Vec<(&'static str, String)> {
    let cfg = home.join("config/ferry");
    std::fs::create_dir_all(&cfg).unwrap();
    let e = cloud.endpoint();
    std::fs::write(
        cfg.join("config.yaml"),
        format!(
            "aws:\n  - profile: {AWS_PROFILE}\n    regions: [{REGION}]\n    endpoint: {e}\nazure:\n  - id: {SUB}\n    name: {SUB_NAME}\n    endpoint: {e}\n    authority: {e}\n"
        ),
    )
    .unwrap();
    let aws = home.join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[{AWS_PROFILE}]\naws_access_key_id = {AWS_KEY}\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!("[profile {AWS_PROFILE}]\nregion = {REGION}\n"),
    )
    .unwrap();
    vec![
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            aws.join("credentials").display().to_string(),
        ),
        ("AWS_CONFIG_FILE", aws.join("config").display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_CLIENT_ID", CLIENT.into()),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
    ]
}

/// A kubeconfig for kubectl that reaches an EKS cluster with a token Ferry's own code
/// generates (as `aws eks get-token` would), valid for a quarter of an hour.
pub async fn eks_kubeconfig(cloud: &Cloud, name: &str, path: &Path) {
    let account = aws_account(cloud);
    let cluster = eks::describe(&account, REGION, name).await.unwrap();
    let token = eks::current_token(&account, REGION, name).await.unwrap();
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": cluster.endpoint, "certificate-authority-data": cluster.certificate_authority}}],
        "users": [{"name": "eks", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "eks"}}],
        "current-context": name,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// The user kubeconfig AKS hands out for a cluster (`listClusterUserCredential`).
pub async fn aks_kubeconfig(cloud: &Cloud, rg: &str, name: &str, path: &Path) {
    let text = aks::user_kubeconfig(&azure_subscription(cloud), rg, name)
        .await
        .unwrap();
    std::fs::write(path, text).unwrap();
}

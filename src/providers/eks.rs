//! AWS accounts and their EKS clusters: which account a profile is (STS), the clusters
//! of each linked profile and region (listed and described concurrently), a cluster's
//! "envelope" (version, networking, logging, node groups, add-ons, access) recorded in
//! captures, and a kube client built without a kubeconfig: endpoint and CA from
//! `DescribeCluster`, and a bearer token Ferry makes itself the way `aws eks get-token`
//! does (a presigned STS `GetCallerIdentity` request naming the cluster).

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_eks::types::Cluster;
use base64::Engine as _;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long a token's presigned request is valid for (what EKS expects).
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// How long Ferry uses a token before making a new one (EKS accepts them for 15 min).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

#[derive(Debug, thiserror::Error)]
pub enum EksError {
    #[error(
        "AWS profile {profile}: {detail}. Check `aws sts get-caller-identity --profile {profile}`"
    )]
    Credentials { profile: String, detail: String },
    #[error("{what} in {region}: {detail}")]
    Api {
        what: String,
        region: String,
        detail: String,
    },
    #[error("the EKS cluster {0} has no endpoint or certificate yet (is it still being created?)")]
    NotReady(String),
    #[error("cannot sign the EKS token: {0}")]
    Signing(String),
}

pub type Result<T, E = EksError> = std::result::Result<T, E>;

/// A linked AWS account: a profile (the default chain when `None`) and its regions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AwsAccount {
    #[serde(default)]
    pub profile: Option<String>,
    pub regions: Vec<String>,
    /// An endpoint for every AWS service (a local test server); none in real use.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Fixed credentials (access key ID, secret) instead of the profile's.
    #[serde(skip)]
    pub static_credentials: Option<(String, String)>,
}

impl AwsAccount {
    pub fn label(&self) -> String {
        self.profile.clone().unwrap_or_else(|| "default".into())
    }

    /// The SDK configuration for one of the account's regions.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        let mut l = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()));
        if let Some(p) = &self.profile {
            l = l.profile_name(p);
        }
        if let Some(e) = &self.endpoint {
            l = l.endpoint_url(e);
        }
        if let Some((id, secret)) = &self.static_credentials {
            l = l.credentials_provider(aws_credential_types::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "ferry-static",
            ));
        }
        l.load().await
    }
}

/// Who a profile is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// `sts get-caller-identity` for the account.
pub async fn identity(account: &AwsAccount, region: &str) -> Result<Identity> {
    let cfg = account.sdk_config(region).await;
    let sts = aws_sdk_sts::Client::new(&cfg);
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| EksError::Credentials {
            profile: account.label(),
            detail: aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
        })?;
    Ok(Identity {
        account: out.account.unwrap_or_default(),
        arn: out.arn.unwrap_or_default(),
        user_id: out.user_id.unwrap_or_default(),
    })
}

/// An EKS cluster as Ferry lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EksCluster {
    pub name: String,
    pub region: String,
    pub arn: String,
    pub status: String,
    pub version: String,
    pub platform_version: String,
    pub endpoint: String,
    /// Base64 PEM of the cluster CA, as EKS gives it.
    pub certificate_authority: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

fn api_err(what: &str, region: &str, e: impl std::error::Error) -> EksError {
    EksError::Api {
        what: what.into(),
        region: region.into(),
        detail: aws_sdk_eks::error::DisplayErrorContext(e).to_string(),
    }
}

fn cluster_of(c: Cluster, region: &str) -> EksCluster {
    EksCluster {
        name: c.name.unwrap_or_default(),
        region: region.into(),
        arn: c.arn.unwrap_or_default(),
        status: c.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        version: c.version.unwrap_or_default(),
        platform_version: c.platform_version.unwrap_or_default(),
        endpoint: c.endpoint.unwrap_or_default(),
        certificate_authority: c
            .certificate_authority
            .and_then(|a| a.data)
            .unwrap_or_default(),
        tags: c.tags.unwrap_or_default().into_iter().collect(),
    }
}

/// The clusters of one account in one region: listed (every page), then described a
/// few at a time.
pub async fn list_clusters(account: &AwsAccount, region: &str) -> Result<Vec<EksCluster>> {
    let cfg = account.sdk_config(region).await;
    let eks = aws_sdk_eks::Client::new(&cfg);
    let mut names = Vec::new();
    let mut pages = eks.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api_err("cannot list EKS clusters", region, e))?;
        names.extend(page.clusters.unwrap_or_default());
    }
    let eks = &eks;
    let described: Vec<Result<EksCluster>> =
        futures::stream::iter(names)
            .map(|n| async move {
                let out =
                    eks.describe_cluster().name(&n).send().await.map_err(|e| {
                        api_err(&format!("cannot describe EKS cluster {n}"), region, e)
                    })?;
                let c = out.cluster.ok_or_else(|| EksError::NotReady(n.clone()))?;
                Ok(cluster_of(c, region))
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let mut out: Vec<EksCluster> = described.into_iter().collect::<Result<_>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every linked account's clusters in every region, concurrently. A failing account or
/// region is reported next to the others' results, never instead of them.
pub async fn list_all(
    accounts: &[AwsAccount],
) -> Vec<(AwsAccount, String, Result<Vec<EksCluster>>)> {
    let jobs: Vec<(AwsAccount, String)> = accounts
        .iter()
        .flat_map(|a| a.regions.iter().map(move |r| (a.clone(), r.clone())))
        .collect();
    futures::stream::iter(jobs)
        .map(|(a, r)| async move {
            let res = tokio::time::timeout(Duration::from_secs(15), list_clusters(&a, &r))
                .await
                .unwrap_or_else(|_| {
                    Err(EksError::Api {
                        what: "no answer from EKS within 15 s".into(),
                        region: r.clone(),
                        detail: "check the network and the region name".into(),
                    })
                });
            (a, r, res)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// The cluster's envelope: what a capture records so the cluster can be recreated.
pub async fn envelope(account: &AwsAccount, region: &str, name: &str) -> Result<Value> {
    let cfg = account.sdk_config(region).await;
    let eks = aws_sdk_eks::Client::new(&cfg);
    let c = eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| api_err(&format!("cannot describe EKS cluster {name}"), region, e))?
        .cluster
        .ok_or_else(|| EksError::NotReady(name.to_string()))?;
    let vpc = c.resources_vpc_config.as_ref();
    let net = c.kubernetes_network_config.as_ref();
    let mut nodegroups = Vec::new();
    let mut pages = eks
        .list_nodegroups()
        .cluster_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api_err("cannot list node groups", region, e))?;
        for ng in page.nodegroups.unwrap_or_default() {
            let d = eks
                .describe_nodegroup()
                .cluster_name(name)
                .nodegroup_name(&ng)
                .send()
                .await
                .map_err(|e| api_err(&format!("cannot describe node group {ng}"), region, e))?
                .nodegroup;
            let Some(d) = d else { continue };
            let scaling = d.scaling_config.as_ref();
            nodegroups.push(json!({
                "name": d.nodegroup_name,
                "instanceTypes": d.instance_types,
                "amiType": d.ami_type.map(|a| a.as_str().to_string()),
                "capacityType": d.capacity_type.map(|a| a.as_str().to_string()),
                "scaling": {"min": scaling.and_then(|s| s.min_size), "max": scaling.and_then(|s| s.max_size), "desired": scaling.and_then(|s| s.desired_size)},
                "labels": d.labels,
                "taints": d.taints.unwrap_or_default().iter().map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect.as_ref().map(|e| e.as_str().to_string())})).collect::<Vec<_>>(),
                "subnets": d.subnets,
                "nodeRole": d.node_role,
                "diskSize": d.disk_size,
            }));
        }
    }
    // Add-ons (notably the EBS CSI driver); an account or mock without the API gives none.
    let mut addons = Vec::new();
    if let Ok(list) = eks.list_addons().cluster_name(name).send().await {
        for a in list.addons.unwrap_or_default() {
            let version = eks
                .describe_addon()
                .cluster_name(name)
                .addon_name(&a)
                .send()
                .await
                .ok()
                .and_then(|d| d.addon)
                .and_then(|d| d.addon_version);
            addons.push(json!({"name": a, "version": version}));
        }
    }
    Ok(json!({
        "kind": "eks",
        "name": c.name,
        "region": region,
        "arn": c.arn,
        "version": c.version,
        "platformVersion": c.platform_version,
        "roleArn": c.role_arn,
        "networking": {
            "vpcId": vpc.and_then(|v| v.vpc_id.clone()),
            "subnetIds": vpc.and_then(|v| v.subnet_ids.clone()),
            "securityGroupIds": vpc.and_then(|v| v.security_group_ids.clone()),
            "endpointPublicAccess": vpc.map(|v| v.endpoint_public_access),
            "endpointPrivateAccess": vpc.map(|v| v.endpoint_private_access),
            "serviceIpv4Cidr": net.and_then(|n| n.service_ipv4_cidr.clone()),
            "ipFamily": net.and_then(|n| n.ip_family.as_ref().map(|f| f.as_str().to_string())),
        },
        "logging": c.logging.as_ref().map(|l| l.cluster_logging.as_ref().map(|s| s.iter().map(|s| json!({
            "types": s.types.as_ref().map(|t| t.iter().map(|x| x.as_str().to_string()).collect::<Vec<_>>()),
            "enabled": s.enabled,
        })).collect::<Vec<_>>())),
        "accessConfig": c.access_config.as_ref().map(|a| json!({
            "authenticationMode": a.authentication_mode.as_ref().map(|m| m.as_str().to_string()),
        })),
        "tags": c.tags,
        "nodegroups": nodegroups,
        "addons": addons,
    }))
}

/// The bearer token for an EKS cluster: `k8s-aws-v1.` and the base64url (unpadded) of a
/// presigned STS `GetCallerIdentity` URL whose signed headers include
/// `x-k8s-aws-id: <cluster>`, valid for 60 seconds from `now`.
pub fn token(
    creds: &aws_credential_types::Credentials,
    region: &str,
    cluster: &str,
    sts_host: &str,
    now: SystemTime,
) -> Result<String> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    use aws_sigv4::sign::v4;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| EksError::Signing(e.to_string()))?;
    let url = format!("https://{sts_host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let headers = [("host", sts_host), ("x-k8s-aws-id", cluster)];
    let req = SignableRequest::new(
        "GET",
        url.clone(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| EksError::Signing(e.to_string()))?;
    let (instructions, _) = sign(req, &params.into())
        .map_err(|e| EksError::Signing(e.to_string()))?
        .into_parts();
    let mut signed = url;
    for (k, v) in instructions.params() {
        signed.push('&');
        signed.push_str(k);
        signed.push('=');
        signed.push_str(&percent_encode(v));
    }
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed)
    ))
}

/// Query-value encoding as SigV4 expects it (RFC 3986 unreserved kept).
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The regional STS host EKS expects the token to name.
pub fn sts_host(region: &str) -> String {
    format!("sts.{region}.amazonaws.com")
}

/// A token for `cluster` with the account's current credentials.
pub async fn current_token(account: &AwsAccount, region: &str, cluster: &str) -> Result<String> {
    let cfg = account.sdk_config(region).await;
    let provider = cfg
        .credentials_provider()
        .ok_or_else(|| EksError::Credentials {
            profile: account.label(),
            detail: "no credentials are configured".into(),
        })?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| EksError::Credentials {
            profile: account.label(),
            detail: e.to_string(),
        })?;
    token(
        &creds,
        region,
        cluster,
        &sts_host(region),
        SystemTime::now(),
    )
}

/// A kube client for an EKS cluster with a token made now (valid for
/// [`TOKEN_LIFETIME`]; make a new client for longer jobs).
pub async fn client(account: &AwsAccount, cluster: &EksCluster) -> Result<kube::Client> {
    if cluster.endpoint.is_empty() || cluster.certificate_authority.is_empty() {
        return Err(EksError::NotReady(cluster.name.clone()));
    }
    let token = current_token(account, &cluster.region, &cluster.name).await?;
    let kc = kube::config::Kubeconfig {
        clusters: vec![kube::config::NamedCluster {
            name: cluster.name.clone(),
            cluster: Some(kube::config::Cluster {
                server: Some(cluster.endpoint.clone()),
                certificate_authority_data: Some(cluster.certificate_authority.clone()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![kube::config::NamedAuthInfo {
            name: "ferry".into(),
            auth_info: Some(kube::config::AuthInfo {
                token: Some(token.into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![kube::config::NamedContext {
            name: cluster.name.clone(),
            context: Some(kube::config::Context {
                cluster: cluster.name.clone(),
                user: Some("ferry".into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(cluster.name.clone()),
        ..Default::default()
    };
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| EksError::Signing(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| EksError::Signing(e.to_string()))
}

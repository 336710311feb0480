//! AWS accounts and their EKS clusters: which account a profile is (STS), the clusters
//! of each linked profile and region (listed and described concurrently), a cluster's
//! "envelope" (version, networking, logging, node groups, add-ons, access) recorded in
//! captures, and a kube client built without a kubeconfig: endpoint and CA from
//! `DescribeCluster`, and a bearer token Ferry makes itself the way `aws eks get-token`
//! does (a presigned STS `GetCallerIdentity` request naming the cluster).
//!
//! [`Aws`] is AWS as a [`Cloud`] (listing, finding clusters by their
//! `eks:<profile>/<region>/<cluster>` names); [`EksRequest`] a cluster to create
//! (`eks/create.rs`).

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_eks::types::Cluster;
use base64::Engine as _;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cloud::{Cloud, CloudError, Found, Listed};
use crate::kubeconfig::{LinkedCluster, Origin};
use crate::spec::{AGAIN, SpecError};

/// Progress of a creation (the same events for every cloud).
pub use crate::cloud::CreateEvent;

/// How long a token's presigned request is valid for (what EKS expects).
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// How long Ferry uses a token before making a new one (EKS accepts them for 15 min).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// Attempts per AWS call (the first and the retries of throttled or transient failures).
const RETRY_ATTEMPTS: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum EksError {
    #[error(
        "AWS profile {profile}: {detail}. Check `aws sts get-caller-identity --profile {profile}` (log in again with `aws sso login` or renew the keys)"
    )]
    Credentials { profile: String, detail: String },
    #[error(
        "AWS profile {profile} may not use EKS in {region} ({detail}): give it the eks:ListClusters, eks:DescribeCluster (and, to create clusters, eks:CreateCluster, eks:CreateNodegroup, eks:CreateAddon, iam:PassRole) permissions, or link another profile"
    )]
    NoAccess {
        profile: String,
        region: String,
        detail: String,
    },
    #[error(
        "EKS in {region} kept throttling Ferry's requests ({detail}) after retrying with backoff: wait a minute and try again"
    )]
    Throttled { region: String, detail: String },
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
    #[error("cannot reach the EKS cluster {cluster}: {detail}")]
    Kube { cluster: String, detail: String },
    #[error(
        "{0:?} is not an EKS cluster name: use eks:<profile>/<region>/<cluster> (see `ferry clusters`)"
    )]
    BadName(String),
    #[error("invalid cluster request: {0}")]
    Invalid(#[from] SpecError),
    #[error("{}", create_failure(cluster, region, step, detail, created, AGAIN))]
    Create {
        cluster: String,
        region: String,
        step: String,
        detail: String,
        /// What exists now (`cluster <name>`, `nodegroup <name>`, `addon <name>`,
        /// `storageclass gp3`), in the order it was made.
        created: Vec<String>,
    },
}

impl EksError {
    /// The message, with the advice of a creation that failed half-way worded for the
    /// caller's front end: `again` is how its user starts the same creation again
    /// ("run the same command again" on the command line). Other errors read as
    /// displayed.
    pub fn explain(&self, again: &str) -> String {
        match self {
            EksError::Create {
                cluster,
                region,
                step,
                detail,
                created,
            } => create_failure(cluster, region, step, detail, created, again),
            other => other.to_string(),
        }
    }
}

fn create_failure(
    cluster: &str,
    region: &str,
    step: &str,
    detail: &str,
    created: &[String],
    again: &str,
) -> String {
    // The detail is often a sentence of its own (AWS's messages end in '.').
    let head = format!(
        "creating the EKS cluster {cluster} in {region} failed while {step}: {}",
        detail.trim_end_matches('.')
    );
    if created.is_empty() {
        return format!("{head}. Nothing was created: fix the cause and {again}");
    }
    let mut remove = Vec::new();
    for c in created.iter().rev() {
        if let Some(ng) = c.strip_prefix("nodegroup ") {
            remove.push(format!(
                "aws eks delete-nodegroup --region {region} --cluster-name {cluster} --nodegroup-name {ng}"
            ));
        } else if c.starts_with("cluster ") {
            remove.push(format!(
                "aws eks delete-cluster --region {region} --name {cluster}"
            ));
        }
    }
    format!(
        "{head}. Already created: {}. To continue, {again} (what exists is reused), or remove it with: {}",
        created.join(", "),
        remove.join("; ")
    )
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
        // Throttling and transient errors are retried with exponential backoff.
        l = l.retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(RETRY_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200)),
        );
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
    let out = sts.get_caller_identity().send().await.map_err(|e| {
        use aws_sdk_sts::error::ProvideErrorMetadata as _;
        let code = e.code().unwrap_or_default().to_string();
        let detail = aws_sdk_sts::error::DisplayErrorContext(&e).to_string();
        match classify(
            account,
            "cannot ask STS who the profile is",
            region,
            &code,
            detail,
        ) {
            EksError::Api { detail, .. } => EksError::Credentials {
                profile: account.label(),
                detail,
            },
            other => other,
        }
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

/// Words for an AWS SDK error, by what the user should do about it.
fn sdk_err<E, R>(
    account: &AwsAccount,
    what: &str,
    region: &str,
    e: aws_sdk_eks::error::SdkError<E, R>,
) -> EksError
where
    E: aws_sdk_eks::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_eks::error::ProvideErrorMetadata as _;
    let code = e.code().unwrap_or_default().to_string();
    let detail = aws_sdk_eks::error::DisplayErrorContext(&e).to_string();
    classify(account, what, region, &code, detail)
}

fn classify(
    account: &AwsAccount,
    what: &str,
    region: &str,
    code: &str,
    detail: String,
) -> EksError {
    match code {
        "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => EksError::Credentials {
            profile: account.label(),
            detail,
        },
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnauthorizedException" => EksError::NoAccess {
            profile: account.label(),
            region: region.into(),
            detail,
        },
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => EksError::Throttled {
            region: region.into(),
            detail,
        },
        "" if detail.contains("credentials") || detail.contains("credential provider") => {
            EksError::Credentials {
                profile: account.label(),
                detail,
            }
        }
        _ => EksError::Api {
            what: what.into(),
            region: region.into(),
            detail,
        },
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
        let page = page.map_err(|e| sdk_err(account, "cannot list EKS clusters", region, e))?;
        names.extend(page.clusters.unwrap_or_default());
    }
    let eks = &eks;
    let described: Vec<Result<EksCluster>> = futures::stream::iter(names)
        .map(|n| async move {
            let out = eks.describe_cluster().name(&n).send().await.map_err(|e| {
                sdk_err(
                    account,
                    &format!("cannot describe EKS cluster {n}"),
                    region,
                    e,
                )
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

/// One account's clusters in one region, as [`list_clusters`] but giving up after 15 s
/// (with a message saying what to check).
pub async fn list_region(account: &AwsAccount, region: &str) -> Result<Vec<EksCluster>> {
    tokio::time::timeout(Duration::from_secs(15), list_clusters(account, region))
        .await
        .unwrap_or_else(|_| {
            Err(EksError::Api {
                what: "no answer from EKS within 15 s".into(),
                region: region.into(),
                detail: "check the network and the region name".into(),
            })
        })
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
        .map_err(|e| {
            sdk_err(
                account,
                &format!("cannot describe EKS cluster {name}"),
                region,
                e,
            )
        })?
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
        let page = page.map_err(|e| sdk_err(account, "cannot list node groups", region, e))?;
        for ng in page.nodegroups.unwrap_or_default() {
            let d = eks
                .describe_nodegroup()
                .cluster_name(name)
                .nodegroup_name(&ng)
                .send()
                .await
                .map_err(|e| {
                    sdk_err(
                        account,
                        &format!("cannot describe node group {ng}"),
                        region,
                        e,
                    )
                })?
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

/// The name Ferry gives an EKS cluster wherever a cluster is named (`--context`,
/// `ferry clusters`, the console): `eks:<profile>/<region>/<cluster>`.
pub fn context_name(profile: &str, region: &str, cluster: &str) -> String {
    format!("eks:{profile}/{region}/{cluster}")
}

/// The (profile, region, cluster) of an `eks:<profile>/<region>/<cluster>` name; `None`
/// for names that are not EKS names at all.
pub fn parse_context_name(name: &str) -> Option<Result<(String, String, String)>> {
    let rest = name.strip_prefix("eks:")?;
    let parts: Vec<&str> = rest.split('/').collect();
    Some(match parts.as_slice() {
        [p, r, c] if !p.is_empty() && !r.is_empty() && !c.is_empty() => {
            Ok((p.to_string(), r.to_string(), c.to_string()))
        }
        _ => Err(EksError::BadName(name.to_string())),
    })
}

/// Bearer tokens for one cluster, made when first needed and again once the last one is
/// [`TOKEN_LIFETIME`] old. The kube client asks for one on every request (see
/// [`client`]), so a job of any length keeps working.
#[derive(Clone)]
pub struct TokenSource {
    inner: std::sync::Arc<TokenInner>,
}

struct TokenInner {
    account: AwsAccount,
    region: String,
    cluster: String,
    lifetime: Duration,
    cached: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
    made: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("cluster", &self.inner.cluster)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(account: &AwsAccount, region: &str, cluster: &str) -> TokenSource {
        TokenSource::with_lifetime(account, region, cluster, TOKEN_LIFETIME)
    }

    /// A source whose tokens are replaced once `lifetime` old (tests use a short one).
    pub fn with_lifetime(
        account: &AwsAccount,
        region: &str,
        cluster: &str,
        lifetime: Duration,
    ) -> TokenSource {
        TokenSource {
            inner: std::sync::Arc::new(TokenInner {
                account: account.clone(),
                region: region.into(),
                cluster: cluster.into(),
                lifetime,
                cached: tokio::sync::Mutex::new(None),
                made: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// How many tokens this source has made.
    pub fn tokens_made(&self) -> u64 {
        self.inner.made.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// A valid token: the cached one while it is young enough, else a new one.
    pub async fn bearer(&self) -> Result<String> {
        let mut cached = self.inner.cached.lock().await;
        if let Some((t, made)) = cached.as_ref()
            && made.elapsed() < self.inner.lifetime
        {
            return Ok(t.clone());
        }
        let t = current_token(&self.inner.account, &self.inner.region, &self.inner.cluster).await?;
        self.inner
            .made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(cluster = %self.inner.cluster, "made a new EKS token");
        *cached = Some((t.clone(), std::time::Instant::now()));
        Ok(t)
    }

    /// Forgets the cached token (the next request makes a new one).
    pub async fn expire(&self) {
        *self.inner.cached.lock().await = None;
    }
}

/// A tower layer for the kube client: every request carries a token from the
/// [`TokenSource`], made anew (in `poll_ready`, before the request is sent) once the
/// current one is [`TOKEN_LIFETIME`] old.
#[derive(Debug, Clone)]
pub struct EksAuthLayer(pub TokenSource);

impl<S> tower::Layer<S> for EksAuthLayer {
    type Service = EksAuth<S>;

    fn layer(&self, inner: S) -> EksAuth<S> {
        EksAuth {
            inner,
            source: self.0.clone(),
            header: None,
            refreshing: None,
        }
    }
}

/// The service [`EksAuthLayer`] makes.
pub struct EksAuth<S> {
    inner: S,
    source: TokenSource,
    header: Option<(http::HeaderValue, std::time::Instant)>,
    refreshing: Option<futures::future::BoxFuture<'static, Result<String>>>,
}

impl<S> std::fmt::Debug for EksAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksAuth")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S, B> tower::Service<http::Request<B>> for EksAuth<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::ErrInto<S::Future, tower::BoxError>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), tower::BoxError>> {
        use std::task::Poll;
        let fresh = self
            .header
            .as_ref()
            .is_some_and(|(_, made)| made.elapsed() < self.source.lifetime());
        if !fresh {
            let source = self.source.clone();
            // The first request uses the source's token; a stale one is replaced.
            let stale = self.header.is_some();
            let fut = self.refreshing.get_or_insert_with(|| {
                Box::pin(async move {
                    if stale {
                        source.expire().await;
                    }
                    source.bearer().await
                })
            });
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    self.refreshing = None;
                    let token = r?;
                    let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                        .map_err(|e| EksError::Signing(e.to_string()))?;
                    self.header = Some((value, std::time::Instant::now()));
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        use futures::TryFutureExt as _;
        if let Some((value, _)) = &self.header {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        self.inner.call(request).err_into()
    }
}

/// A kube client for an EKS cluster, without a kubeconfig: endpoint and CA from
/// `DescribeCluster`, and a bearer token from [`TokenSource`] on every request, made
/// anew before it expires.
pub async fn client(account: &AwsAccount, cluster: &EksCluster) -> Result<kube::Client> {
    let source = TokenSource::new(account, &cluster.region, &cluster.name);
    client_with(cluster, source).await
}

/// [`client`] with the given token source.
pub async fn client_with(cluster: &EksCluster, source: TokenSource) -> Result<kube::Client> {
    if cluster.endpoint.is_empty() || cluster.certificate_authority.is_empty() {
        return Err(EksError::NotReady(cluster.name.clone()));
    }
    let kerr = |detail: String| EksError::Kube {
        cluster: cluster.name.clone(),
        detail,
    };
    // Make the first token now, so missing credentials show here rather than as a
    // failed request.
    source.bearer().await?;
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
            auth_info: Some(kube::config::AuthInfo::default()),
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
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| kerr(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| kerr(e.to_string()))?;
    Ok(builder.with_layer(&EksAuthLayer(source)).build())
}

/// Describes one cluster.
pub async fn describe(account: &AwsAccount, region: &str, name: &str) -> Result<EksCluster> {
    let cfg = account.sdk_config(region).await;
    let eks = aws_sdk_eks::Client::new(&cfg);
    let c = eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| {
            sdk_err(
                account,
                &format!("cannot describe EKS cluster {name}"),
                region,
                e,
            )
        })?
        .cluster
        .ok_or_else(|| EksError::NotReady(name.to_string()))?;
    Ok(cluster_of(c, region))
}

/// AWS as a [`Cloud`]: the linked accounts (`aws:` in config.yaml), each listed in
/// each of its regions.
#[derive(Debug, Clone, Default)]
pub struct Aws {
    pub accounts: Vec<AwsAccount>,
}

impl Aws {
    pub fn new(accounts: Vec<AwsAccount>) -> Aws {
        Aws { accounts }
    }

    /// The linked account of `profile` (`default` is the default chain); one with just
    /// that profile and region when the settings do not name it.
    pub fn account(&self, profile: &str, region: &str) -> AwsAccount {
        match self.accounts.iter().find(|a| a.label() == profile) {
            Some(a) => a.clone(),
            None => AwsAccount {
                profile: (profile != "default").then(|| profile.to_string()),
                regions: vec![region.to_string()],
                ..Default::default()
            },
        }
    }
}

/// Where the clusters of the account (in `region`) are grouped.
pub(crate) fn origin(account: &AwsAccount, region: &str) -> Origin {
    Origin::Cloud {
        provider: "aws".into(),
        account: account.label(),
        region: region.into(),
    }
}

impl Cloud for Aws {
    fn provider(&self) -> &'static str {
        "aws"
    }

    fn kind(&self) -> &'static str {
        "EKS"
    }

    fn prefix(&self) -> &'static str {
        "eks"
    }

    fn is_linked(&self) -> bool {
        !self.accounts.is_empty()
    }

    fn origins(&self) -> Vec<Origin> {
        self.accounts
            .iter()
            .flat_map(|a| a.regions.iter().map(move |r| origin(a, r)))
            .collect()
    }

    fn list(&self) -> Vec<BoxFuture<'static, Listed>> {
        let mut jobs: Vec<BoxFuture<'static, Listed>> = Vec::new();
        for a in &self.accounts {
            for r in &a.regions {
                let (a, r) = (a.clone(), r.clone());
                jobs.push(Box::pin(async move {
                    let res = list_region(&a, &r)
                        .await
                        .map(|cs| cs.iter().map(|c| LinkedCluster::from_eks(&a, c)).collect())
                        .map_err(|e| e.to_string());
                    (origin(&a, &r), res)
                }));
            }
        }
        jobs
    }

    fn find(&self, name: &str) -> Option<std::result::Result<Found, CloudError>> {
        let (profile, region, cluster) = match parse_context_name(name)? {
            Ok(p) => p,
            Err(e) => return Some(Err(e.into())),
        };
        let account = self.account(&profile, &region);
        Some(Ok(Box::pin(async move {
            let c = describe(&account, &region, &cluster).await?;
            Ok(LinkedCluster::from_eks(&account, &c))
        })))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

mod create;
pub use create::{
    ClusterSpec, CreateOptions, EBS_CSI_ADDON, EBS_PROVISIONER, EksRequest, NodegroupSpec,
    TaintSpec, create_cluster, ensure_gp3,
};

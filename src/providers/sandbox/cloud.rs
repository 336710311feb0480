//! The sandbox cloud: a local endpoint that speaks a subset of the EKS REST-JSON API
//! (clusters, managed node groups, add-ons) and STS `GetCallerIdentity`, on 127.0.0.1
//! over HTTP, so that Ferry's AWS code (the real SDK clients, given only an endpoint
//! URL) creates, lists and reaches clusters that exist. Creating a cluster starts a real
//! sandbox cluster ([`Sandbox::start`], what `ferry sandbox up` runs) whose HTTPS
//! endpoint and CA `DescribeCluster` returns once it is ACTIVE; it accepts the EKS
//! tokens Ferry generates (`iam.rs`). A node group registers its nodes with the
//! cluster's API; the EBS CSI add-on deploys its controller into `kube-system`.
//!
//! Every request is authenticated as AWS does: a SigV4 `Authorization` header checked
//! against the known test credentials ([`Principal`]); a principal without EKS rights
//! gets `AccessDeniedException`. [`Cloud::throttle`] makes the next requests answer
//! `ThrottlingException`, to exercise the SDK's retries.
//!
//! Each cluster's sandbox keeps its folder under `<dir>/<region>/<name>/`; the clusters
//! are listed in `<dir>/eks.json` (and the Azure ones in `<dir>/azure/clusters.json`,
//! see `arm.rs`), and a cloud started on the same folder starts the ACTIVE ones again. Owns the cloud API; what the clusters do is the sandbox's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::iam::{AwsIam, Principal};
use super::sigv4::{self, Received, SigError};
use super::{Sandbox, SandboxConfig, SandboxError, StorageClassSpec, VolumeBindingMode};

/// The account the sandbox cloud's principals belong to.
pub const DEFAULT_ACCOUNT: &str = "123456789012";
/// Kubernetes versions the cloud accepts for new clusters.
pub const VERSIONS: &[&str] = &["1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];
/// The platform version it reports.
const PLATFORM_VERSION: &str = "eks.ferry-sandbox.1";
/// The largest request body (EKS requests are small).
const MAX_BODY: usize = 1 << 20;

/// How to start the cloud.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// Where the clusters' sandboxes keep their folders.
    pub dir: PathBuf,
    /// 127.0.0.1 on an ephemeral port by default.
    pub bind: SocketAddr,
    pub account: String,
    pub principals: Vec<Principal>,
    /// The Azure side (`arm.rs`): tenant, service principals, subscriptions.
    pub azure: super::arm::ArmConfig,
}

impl CloudConfig {
    pub fn new(dir: impl Into<PathBuf>, principals: Vec<Principal>) -> CloudConfig {
        CloudConfig {
            dir: dir.into(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            account: DEFAULT_ACCOUNT.into(),
            principals,
            azure: Default::default(),
        }
    }
}

/// An API error as EKS and STS send them.
#[derive(Debug)]
struct AwsError {
    status: u16,
    code: &'static str,
    message: String,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError {
        status,
        code,
        message: message.into(),
    }
}

/// One EKS cluster of the cloud.
struct Entry {
    cluster: Value,
    nodegroups: BTreeMap<String, Value>,
    addons: BTreeMap<String, Value>,
    sandbox: Option<Sandbox>,
    client: Option<kube::Client>,
    /// ARNs with cluster-admin access (the creator), kept for restarts.
    admins: Vec<String>,
}

/// The file in the cloud's folder that lists its EKS clusters.
const EKS_FILE: &str = "eks.json";

/// Writes the EKS clusters (API view, node groups, add-ons, admins) to `eks.json`.
fn save_eks(state: &State, clusters: &BTreeMap<(String, String), Entry>) {
    let list: Vec<Value> = clusters
        .iter()
        .map(|((region, name), e)| {
            json!({"region": region, "name": name, "cluster": e.cluster,
                   "nodegroups": e.nodegroups, "addons": e.addons, "admins": e.admins})
        })
        .collect();
    let r = serde_json::to_vec_pretty(&list)
        .map_err(|e| SandboxError::Internal(e.to_string()))
        .and_then(|b| super::write_atomic(&state.dir.join(EKS_FILE), &b));
    if let Err(e) = r {
        tracing::warn!("sandbox cloud: EKS clusters not saved: {e}");
    }
}

/// The EKS clusters saved in `eks.json`; those that were ACTIVE are started again,
/// what was still being made when the cloud stopped is marked failed.
async fn restore_eks(state: &Arc<State>) -> Result<(), SandboxError> {
    let path = state.dir.join(EKS_FILE);
    let saved: Vec<Value> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| SandboxError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(SandboxError::Io { path, source }),
    };
    let mut clusters = state.clusters.lock().await;
    for v in saved {
        let (Some(region), Some(name)) = (v["region"].as_str(), v["name"].as_str()) else {
            continue;
        };
        let key = (region.to_string(), name.to_string());
        let to_map = |x: &Value| -> BTreeMap<String, Value> {
            x.as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let mut e = Entry {
            cluster: v["cluster"].clone(),
            nodegroups: to_map(&v["nodegroups"]),
            addons: to_map(&v["addons"]),
            sandbox: None,
            client: None,
            admins: str_list(&v["admins"]),
        };
        for part in e.nodegroups.values_mut().chain(e.addons.values_mut()) {
            if part["status"] == "CREATING" {
                part["status"] = json!("CREATE_FAILED");
            }
        }
        match e.cluster["status"].as_str() {
            Some("ACTIVE") => {
                let iam = iam_of(state, name, e.admins.clone());
                match launch(state, &key, iam).await {
                    Ok((sb, client)) => mark_active(&mut e, sb, client),
                    Err(why) => mark_failed(&mut e, &why),
                }
            }
            Some("FAILED") => {}
            _ => mark_failed(
                &mut e,
                "the sandbox cloud stopped while the cluster was being created",
            ),
        }
        clusters.insert(key, e);
    }
    save_eks(state, &clusters);
    Ok(())
}

fn iam_of(state: &State, name: &str, admins: Vec<String>) -> AwsIam {
    AwsIam {
        cluster: name.to_string(),
        account: state.account.clone(),
        principals: state.principals.clone(),
        admins,
    }
}

struct State {
    dir: PathBuf,
    account: String,
    principals: Vec<Principal>,
    /// By (region, name).
    clusters: Mutex<BTreeMap<(String, String), Entry>>,
    throttle: AtomicU32,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    arm: Arc<super::arm::ArmState>,
}

/// A running sandbox cloud; stop it with [`Cloud::shutdown`], which also stops its
/// clusters.
pub struct Cloud {
    addr: SocketAddr,
    state: Arc<State>,
    stop: tokio::sync::watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Cloud {
    /// Binds and serves in the current tokio runtime; the clusters an earlier run in the
    /// same folder made (EKS and AKS) are started again first.
    pub async fn start(config: CloudConfig) -> Result<Cloud, SandboxError> {
        Cloud::serve(config).await?.restore().await
    }

    async fn serve(config: CloudConfig) -> Result<Cloud, SandboxError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| SandboxError::Io {
            path: config.dir.clone(),
            source,
        })?;
        if config.principals.is_empty() {
            return Err(SandboxError::Invalid(
                "the sandbox cloud needs at least one principal (access key)".into(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.bind,
            source,
        })?;
        let arm = super::arm::ArmState::start(config.dir.join("azure"), config.azure).await?;
        let state = Arc::new(State {
            arm,
            dir: config.dir,
            account: config.account,
            principals: config.principals,
            clusters: Mutex::new(BTreeMap::new()),
            throttle: AtomicU32::new(0),
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let accept = {
            let state = state.clone();
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                loop {
                    let tcp = tokio::select! {
                        _ = stop_rx.changed() => return,
                        r = listener.accept() => match r {
                            Ok((tcp, _)) => tcp,
                            Err(e) => {
                                tracing::warn!("sandbox cloud accept failed: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let state = state.clone();
                    let mut stop_rx = stop_rx.clone();
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(move |req| handle(state.clone(), req));
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service);
                        tokio::select! {
                            r = conn => if let Err(e) = r {
                                tracing::debug!("sandbox cloud connection ended: {e}");
                            },
                            _ = stop_rx.changed() => {}
                        }
                    });
                }
            })
        };
        tracing::info!(%addr, "sandbox cloud started");
        Ok(Cloud {
            addr,
            state,
            stop,
            accept,
        })
    }

    /// [`Cloud::start`], then the EKS clusters of an earlier run started again (those
    /// in `eks.json` that were ACTIVE), before the first request is answered.
    async fn restore(self) -> Result<Cloud, SandboxError> {
        if let Err(e) = restore_eks(&self.state).await {
            let _ = self.shutdown().await;
            return Err(e);
        }
        Ok(self)
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for the EKS and STS clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next `n` requests with `ThrottlingException` (HTTP 429).
    pub fn throttle(&self, n: u32) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    /// Stops serving, then stops every cluster (their folders stay).
    pub async fn shutdown(self) -> Result<(), SandboxError> {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.state.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        let mut first_err = self.state.arm.shutdown().await.err();
        let mut clusters = self.state.clusters.lock().await;
        for (_, e) in std::mem::take(&mut *clusters) {
            if let Some(sb) = e.sandbox
                && let Err(err) = sb.shutdown().await
            {
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn respond(status: u16, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_str(&request_id())
            .unwrap_or(hyper::header::HeaderValue::from_static("0")),
    );
    r
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

fn json_ok(v: &Value) -> Response<Full<Bytes>> {
    respond(
        200,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn eks_error(e: &AwsError) -> Response<Full<Bytes>> {
    let mut r = respond(
        e.status,
        "application/json",
        serde_json::to_vec(&json!({"message": e.message})).unwrap_or_default(),
    );
    r.headers_mut().insert(
        "x-amzn-errortype",
        hyper::header::HeaderValue::from_static(e.code),
    );
    r
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sts_error(e: &AwsError) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.code,
        xml_escape(&e.message),
        request_id()
    );
    respond(e.status, "text/xml", body.into_bytes())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(eks_error(&err(
                400,
                "InvalidRequestException",
                format!("cannot read the request body: {e}"),
            )));
        }
    };
    if super::arm::serves(&path) {
        let header =
            |k: hyper::header::HeaderName| parts.headers.get(k).and_then(|v| v.to_str().ok());
        let arm_req = super::arm::ArmRequest {
            method: &method,
            path: &path,
            query: parts.uri.query().unwrap_or(""),
            host: header(hyper::header::HOST).unwrap_or("127.0.0.1"),
            authorization: header(hyper::header::AUTHORIZATION),
            body: &body,
        };
        return Ok(super::arm::handle(&state.arm, &state.throttle, arm_req).await);
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let received = Received {
        method: method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers,
        body: &body,
    };
    let signed = sigv4::verify_header(
        &received,
        &|k| {
            state
                .principals
                .iter()
                .find(|p| p.access_key_id == k)
                .map(|p| p.secret_access_key.clone())
        },
        SystemTime::now(),
    );
    let is_sts = signed.as_ref().is_ok_and(|s| s.service == "sts")
        || (path == "/" && method == Method::POST);
    let reply = |e: AwsError| {
        if is_sts { sts_error(&e) } else { eks_error(&e) }
    };
    let signed = match signed {
        Ok(s) => s,
        Err(e) => {
            let e = match e {
                SigError::UnknownKey(k) => err(
                    403,
                    if is_sts {
                        "InvalidClientTokenId"
                    } else {
                        "UnrecognizedClientException"
                    },
                    format!(
                        "The security token included in the request is invalid (access key {k})."
                    ),
                ),
                SigError::Mismatch => err(
                    403,
                    if is_sts {
                        "SignatureDoesNotMatch"
                    } else {
                        "InvalidSignatureException"
                    },
                    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
                ),
                SigError::Expired(why) => err(
                    403,
                    if is_sts {
                        "SignatureDoesNotMatch"
                    } else {
                        "InvalidSignatureException"
                    },
                    format!("Signature expired: {why}"),
                ),
                SigError::Unsigned(why) => err(
                    403,
                    if is_sts {
                        "MissingAuthenticationToken"
                    } else {
                        "MissingAuthenticationTokenException"
                    },
                    format!("Missing Authentication Token: {why}"),
                ),
                SigError::Malformed(why) => err(403, "IncompleteSignature", why),
            };
            return Ok(reply(e));
        }
    };
    if state
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Ok(reply(err(429, "ThrottlingException", "Rate exceeded")));
    }
    let Some(principal) = state
        .principals
        .iter()
        .find(|p| p.access_key_id == signed.access_key)
        .cloned()
    else {
        return Ok(reply(err(
            403,
            "UnrecognizedClientException",
            "unknown key",
        )));
    };
    let arn = principal.arn(&state.account);
    if signed.service == "sts" {
        let form = String::from_utf8_lossy(&body).to_string();
        let params = sigv4::query_params(&form);
        let action = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.as_str());
        if action != Some("GetCallerIdentity") {
            return Ok(sts_error(&err(
                400,
                "InvalidAction",
                format!("the sandbox cloud's STS serves GetCallerIdentity only, not {action:?}"),
            )));
        }
        let body = format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            xml_escape(&arn),
            xml_escape(&principal.user_id()),
            xml_escape(&state.account),
            request_id()
        );
        return Ok(respond(200, "text/xml", body.into_bytes()));
    }
    if signed.service != "eks" {
        return Ok(eks_error(&err(
            400,
            "InvalidRequestException",
            format!(
                "the sandbox cloud serves eks and sts, not {}",
                signed.service
            ),
        )));
    }
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| super::server::percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let action = action_of(&method, &segs);
    if !principal.eks {
        return Ok(eks_error(&err(
            403,
            "AccessDeniedException",
            format!(
                "User: {arn} is not authorized to perform: eks:{action} on resource: arn:aws:eks:{}:{}:cluster/*",
                signed.region, state.account
            ),
        )));
    }
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(eks_error(&err(
                    400,
                    "InvalidParameterException",
                    format!("the request body is not JSON: {e}"),
                )));
            }
        }
    };
    let r = eks(&state, &signed.region, &arn, &method, &segs, &input).await;
    tracing::debug!(%method, %path, action, ok = r.is_ok(), "sandbox cloud request");
    Ok(match r {
        Ok(v) => json_ok(&v),
        Err(e) => eks_error(&e),
    })
}

fn action_of(method: &Method, segs: &[&str]) -> &'static str {
    match (method.as_str(), segs) {
        ("POST", ["clusters"]) => "CreateCluster",
        ("GET", ["clusters"]) => "ListClusters",
        ("GET", ["clusters", _]) => "DescribeCluster",
        ("DELETE", ["clusters", _]) => "DeleteCluster",
        ("POST", ["clusters", _, "node-groups"]) => "CreateNodegroup",
        ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
        ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
        ("POST", ["clusters", _, "addons"]) => "CreateAddon",
        ("GET", ["clusters", _, "addons"]) => "ListAddons",
        ("GET", ["clusters", _, "addons", _]) => "DescribeAddon",
        _ => "Unknown",
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn not_found(what: &str) -> AwsError {
    err(
        404,
        "ResourceNotFoundException",
        format!("No {what} found."),
    )
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 100
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether an instance type looks like one EC2 has (`m6i.large`, `t3.2xlarge`).
fn known_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else {
        return false;
    };
    let sizes = [
        "nano", "micro", "small", "medium", "large", "xlarge", "metal",
    ];
    let size_ok = sizes.contains(&size)
        || size
            .strip_suffix("xlarge")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let family_ok = family.len() >= 2
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    size_ok && family_ok
}

async fn eks(
    state: &Arc<State>,
    region: &str,
    arn: &str,
    method: &Method,
    segs: &[&str],
    input: &Value,
) -> Result<Value, AwsError> {
    match (method.as_str(), segs) {
        ("POST", ["clusters"]) => create_cluster(state, region, arn, input).await,
        ("GET", ["clusters"]) => {
            let clusters = state.clusters.lock().await;
            let names: Vec<&str> = clusters
                .keys()
                .filter(|(r, _)| r == region)
                .map(|(_, n)| n.as_str())
                .collect();
            Ok(json!({"clusters": names}))
        }
        ("GET", ["clusters", name]) => {
            let clusters = state.clusters.lock().await;
            let e = clusters
                .get(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            Ok(json!({"cluster": e.cluster}))
        }
        ("DELETE", ["clusters", name]) => {
            let key = (region.to_string(), name.to_string());
            let mut clusters = state.clusters.lock().await;
            let e = clusters
                .get(&key)
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            if !e.nodegroups.is_empty() {
                return Err(err(
                    409,
                    "ResourceInUseException",
                    format!(
                        "Cluster has nodegroups attached: delete them first ({})",
                        e.nodegroups.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let Some(mut e) = clusters.remove(&key) else {
                return Err(not_found(name));
            };
            save_eks(state, &clusters);
            e.cluster["status"] = json!("DELETING");
            let out = e.cluster.clone();
            if let Some(sb) = e.sandbox.take() {
                let dir = state.dir.join(region).join(name);
                let h = tokio::spawn(async move {
                    if let Err(err) = sb.shutdown().await {
                        tracing::warn!("sandbox cloud: cluster stopped uncleanly: {err}");
                    }
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                });
                state.tasks.lock().push(h);
            }
            Ok(json!({"cluster": out}))
        }
        ("POST", ["clusters", name, "node-groups"]) => {
            create_nodegroup(state, region, name, input).await
        }
        ("GET", ["clusters", name, "node-groups"]) => {
            let clusters = state.clusters.lock().await;
            let e = clusters
                .get(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            Ok(json!({"nodegroups": e.nodegroups.keys().collect::<Vec<_>>()}))
        }
        ("GET", ["clusters", name, "node-groups", ng]) => {
            let clusters = state.clusters.lock().await;
            let e = clusters
                .get(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            let n = e
                .nodegroups
                .get(*ng)
                .ok_or_else(|| not_found(&format!("node group found for name: {ng}")))?;
            Ok(json!({"nodegroup": n}))
        }
        ("POST", ["clusters", name, "addons"]) => create_addon(state, region, name, input).await,
        ("GET", ["clusters", name, "addons"]) => {
            let clusters = state.clusters.lock().await;
            let e = clusters
                .get(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            Ok(json!({"addons": e.addons.keys().collect::<Vec<_>>()}))
        }
        ("GET", ["clusters", name, "addons", a]) => {
            let clusters = state.clusters.lock().await;
            let e = clusters
                .get(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(&format!("cluster found for name: {name}")))?;
            let v = e
                .addons
                .get(*a)
                .ok_or_else(|| not_found(&format!("addon found for name: {a}")))?;
            Ok(json!({"addon": v}))
        }
        _ => Err(err(
            404,
            "NotFoundException",
            format!(
                "the sandbox cloud does not serve {method} /{} (it serves clusters, node groups and add-ons)",
                segs.join("/")
            ),
        )),
    }
}

async fn create_cluster(
    state: &Arc<State>,
    region: &str,
    arn: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let bad = |m: String| Err(err(400, "InvalidParameterException", m));
    let name = input["name"].as_str().unwrap_or_default().to_string();
    if !valid_name(&name) {
        return bad(format!(
            "The cluster name {name:?} is invalid: use 1 to 100 letters, digits, hyphens and underscores, starting with a letter or digit."
        ));
    }
    let version = input["version"].as_str().unwrap_or("1.33").to_string();
    if !VERSIONS.contains(&version.as_str()) {
        return bad(format!(
            "unsupported Kubernetes version {version}: supported are {}",
            VERSIONS.join(", ")
        ));
    }
    let role = input["roleArn"].as_str().unwrap_or_default();
    if !role.starts_with("arn:aws:iam::") {
        return bad(format!("roleArn {role:?} is not an IAM role ARN"));
    }
    let vpc = &input["resourcesVpcConfig"];
    let subnets = str_list(&vpc["subnetIds"]);
    if subnets.len() < 2 {
        return bad("Subnets specified must be in at least two different AZs".into());
    }
    let key = (region.to_string(), name.clone());
    let mut clusters = state.clusters.lock().await;
    if clusters.contains_key(&key) {
        return Err(err(
            409,
            "ResourceInUseException",
            format!("Cluster already exists with name: {name}"),
        ));
    }
    let cluster = json!({
        "name": name,
        "arn": format!("arn:aws:eks:{region}:{}:cluster/{name}", state.account),
        "createdAt": now_secs(),
        "version": version,
        "roleArn": role,
        "resourcesVpcConfig": {
            "subnetIds": subnets,
            "securityGroupIds": str_list(&vpc["securityGroupIds"]),
            "clusterSecurityGroupId": format!("sg-{}", &request_id()[..17]),
            "vpcId": "vpc-sandbox",
            "endpointPublicAccess": vpc["endpointPublicAccess"].as_bool().unwrap_or(true),
            "endpointPrivateAccess": vpc["endpointPrivateAccess"].as_bool().unwrap_or(false),
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {
            "serviceIpv4Cidr": input["kubernetesNetworkConfig"]["serviceIpv4Cidr"].as_str().unwrap_or("10.100.0.0/16"),
            "ipFamily": "ipv4",
        },
        "logging": input.get("logging").cloned().unwrap_or(json!({"clusterLogging": [{"types": ["api","audit","authenticator","controllerManager","scheduler"], "enabled": false}]})),
        "status": "CREATING",
        "certificateAuthority": {},
        "platformVersion": PLATFORM_VERSION,
        "tags": input.get("tags").cloned().unwrap_or(json!({})),
        "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": true},
    });
    clusters.insert(
        key.clone(),
        Entry {
            cluster: cluster.clone(),
            nodegroups: BTreeMap::new(),
            addons: BTreeMap::new(),
            sandbox: None,
            client: None,
            admins: vec![arn.to_string()],
        },
    );
    save_eks(state, &clusters);
    drop(clusters);
    let iam = iam_of(state, &name, vec![arn.to_string()]);
    let st = state.clone();
    let h = tokio::spawn(async move { start_cluster(st, key, iam).await });
    state.tasks.lock().push(h);
    Ok(json!({"cluster": cluster}))
}

/// Starts the cluster's sandbox, then marks it ACTIVE with its endpoint and CA (or
/// FAILED with the reason).
async fn start_cluster(state: Arc<State>, key: (String, String), iam: AwsIam) {
    let started = launch(&state, &key, iam).await;
    let mut clusters = state.clusters.lock().await;
    let Some(e) = clusters.get_mut(&key) else {
        // Deleted while starting.
        if let Ok((sb, _)) = started {
            let _ = sb.shutdown().await;
        }
        return;
    };
    match started {
        Ok((sb, client)) => {
            mark_active(e, sb, client);
            tracing::info!(cluster = %key.1, region = %key.0, "sandbox cloud cluster ACTIVE");
        }
        Err(why) => {
            tracing::warn!(cluster = %key.1, "sandbox cloud cluster failed: {why}");
            mark_failed(e, &why);
        }
    }
    save_eks(&state, &clusters);
}

/// The cluster's sandbox (started from its folder, so a restart keeps its objects) and
/// an admin client with the control-plane node hidden.
async fn launch(
    state: &State,
    key: &(String, String),
    iam: AwsIam,
) -> Result<(Sandbox, kube::Client), String> {
    let (region, name) = key;
    let mut gp2 = StorageClassSpec::ebs("gp2", "gp2", VolumeBindingMode::WaitForFirstConsumer);
    gp2.default = true;
    let mut config = SandboxConfig::new(name, state.dir.join(region).join(name));
    config.workers = 0;
    config.storage_classes = vec![gp2];
    config.aws_iam = Some(iam);
    let sb = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    // EKS runs the control plane out of sight: only node group nodes are listed.
    let client = async {
        let c = admin_client(&sb).await?;
        hide_control_plane(&c, name).await?;
        Ok::<_, SandboxError>(c)
    }
    .await;
    match client {
        Ok(c) => Ok((sb, c)),
        Err(e) => {
            let _ = sb.shutdown().await;
            Err(e.to_string())
        }
    }
}

fn mark_active(e: &mut Entry, sb: Sandbox, client: kube::Client) {
    e.cluster["endpoint"] = json!(sb.url());
    e.cluster["certificateAuthority"] = json!({
        "data": base64::engine::general_purpose::STANDARD.encode(sb.ca_pem()),
    });
    e.cluster["identity"] = json!({"oidc": {"issuer": format!("{}/oidc", sb.url())}});
    e.cluster["status"] = json!("ACTIVE");
    e.sandbox = Some(sb);
    e.client = Some(client);
}

fn mark_failed(e: &mut Entry, why: &str) {
    e.cluster["status"] = json!("FAILED");
    e.cluster["health"] = json!({"issues": [{"code": "ClusterUnreachable", "message": why}]});
}

/// Removes the sandbox's control-plane node, which an EKS cluster does not show.
pub(super) async fn hide_control_plane(
    client: &kube::Client,
    cluster: &str,
) -> Result<(), SandboxError> {
    use k8s_openapi::api::core::v1::Node;
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    match api
        .delete(&format!("{cluster}-control-plane"), &Default::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(SandboxError::Internal(format!(
            "cannot remove the control-plane node: {e}"
        ))),
    }
}

/// A kube client for the cluster as its admin: the cloud's way to act as the control
/// plane's own components (nodes registering, add-ons deploying).
pub(super) async fn admin_client(sb: &Sandbox) -> Result<kube::Client, SandboxError> {
    let e = sb.kubeconfig_entry();
    let doc = super::kubeconfig::document_with_users(std::slice::from_ref(&e), &[]);
    let kc: kube::config::Kubeconfig = serde_json::from_value(doc)
        .map_err(|err| SandboxError::Internal(format!("kubeconfig: {err}")))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|err| SandboxError::Internal(format!("kube config: {err}")))?;
    kube::Client::try_from(config)
        .map_err(|err| SandboxError::Internal(format!("kube client: {err}")))
}

async fn create_nodegroup(
    state: &Arc<State>,
    region: &str,
    cluster: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let bad = |m: String| Err(err(400, "InvalidParameterException", m));
    let name = input["nodegroupName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !valid_name(&name) {
        return bad(format!("The node group name {name:?} is invalid."));
    }
    let node_role = input["nodeRole"].as_str().unwrap_or_default();
    if !node_role.starts_with("arn:aws:iam::") {
        return bad(format!("nodeRole {node_role:?} is not an IAM role ARN"));
    }
    let scaling = &input["scalingConfig"];
    let (min, max, desired) = (
        scaling["minSize"].as_i64().unwrap_or(1),
        scaling["maxSize"].as_i64().unwrap_or(2),
        scaling["desiredSize"].as_i64().unwrap_or(2),
    );
    if !(0 <= min && min <= desired && desired <= max && (1..=50).contains(&max)) {
        return bad(format!(
            "scalingConfig must satisfy 0 <= minSize <= desiredSize <= maxSize <= 50 (got {min}/{desired}/{max})"
        ));
    }
    let key = (region.to_string(), cluster.to_string());
    let mut clusters = state.clusters.lock().await;
    let e = clusters
        .get_mut(&key)
        .ok_or_else(|| not_found(&format!("cluster found for name: {cluster}")))?;
    if e.cluster["status"] != "ACTIVE" {
        return Err(err(
            400,
            "ResourceNotReadyException",
            format!(
                "Cluster {cluster} is not ACTIVE (it is {})",
                e.cluster["status"]
            ),
        ));
    }
    if e.nodegroups.contains_key(&name) {
        return Err(err(
            409,
            "ResourceInUseException",
            format!("NodeGroup already exists with name {name} and cluster name {cluster}"),
        ));
    }
    let instance_types = {
        let t = str_list(&input["instanceTypes"]);
        if t.is_empty() {
            vec!["t3.medium".to_string()]
        } else {
            t
        }
    };
    let subnets = {
        let s = str_list(&input["subnets"]);
        if s.is_empty() {
            str_list(&e.cluster["resourcesVpcConfig"]["subnetIds"])
        } else {
            s
        }
    };
    let ng = json!({
        "nodegroupName": name,
        "nodegroupArn": format!("arn:aws:eks:{region}:{}:nodegroup/{cluster}/{name}/{}", state.account, &request_id()[..8]),
        "clusterName": cluster,
        "version": e.cluster["version"],
        "releaseVersion": format!("{}-sandbox", e.cluster["version"].as_str().unwrap_or_default()),
        "createdAt": now_secs(),
        "modifiedAt": now_secs(),
        "status": "CREATING",
        "capacityType": input["capacityType"].as_str().unwrap_or("ON_DEMAND"),
        "scalingConfig": {"minSize": min, "maxSize": max, "desiredSize": desired},
        "instanceTypes": instance_types,
        "subnets": subnets,
        "amiType": input["amiType"].as_str().unwrap_or("AL2023_x86_64_STANDARD"),
        "nodeRole": node_role,
        "labels": input.get("labels").cloned().unwrap_or(json!({})),
        "taints": input.get("taints").cloned().unwrap_or(json!([])),
        "diskSize": input["diskSize"].as_i64().unwrap_or(20),
        "health": {"issues": []},
        "tags": input.get("tags").cloned().unwrap_or(json!({})),
    });
    e.nodegroups.insert(name.clone(), ng.clone());
    let client = e.client.clone();
    drop(clusters);
    let st = state.clone();
    let ng_spec = ng.clone();
    let h = tokio::spawn(async move {
        let outcome = match client {
            Some(c) => register_nodes(&c, &key.1, &ng_spec).await,
            None => Err((
                "ClusterUnreachable",
                "the cluster's API is not running".to_string(),
            )),
        };
        let mut clusters = st.clusters.lock().await;
        if let Some(n) = clusters
            .get_mut(&key)
            .and_then(|e| e.nodegroups.get_mut(&name))
        {
            match outcome {
                Ok(()) => n["status"] = json!("ACTIVE"),
                Err((code, message)) => {
                    n["status"] = json!("CREATE_FAILED");
                    n["health"] =
                        json!({"issues": [{"code": code, "message": message, "resourceIds": []}]});
                }
            }
            n["modifiedAt"] = json!(now_secs());
        }
        save_eks(&st, &clusters);
    });
    state.tasks.lock().push(h);
    Ok(json!({"nodegroup": ng}))
}

/// Registers the node group's nodes with the cluster, as their kubelets would.
async fn register_nodes(
    client: &kube::Client,
    cluster: &str,
    ng: &Value,
) -> Result<(), (&'static str, String)> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, PostParams};
    let types = str_list(&ng["instanceTypes"]);
    if let Some(t) = types.iter().find(|t| !known_instance_type(t)) {
        return Err((
            "Ec2LaunchTemplateInvalidConfiguration",
            format!("The instance type {t} does not exist in this region."),
        ));
    }
    let name = ng["nodegroupName"].as_str().unwrap_or_default();
    let desired = ng["scalingConfig"]["desiredSize"].as_i64().unwrap_or(0);
    let subnets = str_list(&ng["subnets"]);
    let taints: Vec<Value> = ng["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let effect = match t["effect"].as_str() {
                Some("NO_EXECUTE") => "NoExecute",
                Some("PREFER_NO_SCHEDULE") => "PreferNoSchedule",
                _ => "NoSchedule",
            };
            json!({"key": t["key"], "value": t["value"], "effect": effect})
        })
        .collect();
    let api: Api<Node> = Api::all(client.clone());
    for i in 0..desired {
        let node_name = format!("{cluster}-{name}-{i}");
        let zone = subnets
            .get(i as usize % subnets.len().max(1))
            .map(|s| format!("sandbox-{s}"))
            .unwrap_or_else(|| "sandbox-a".into());
        let mut labels = json!({
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": types.get(i as usize % types.len().max(1)).cloned().unwrap_or_default(),
            "topology.kubernetes.io/zone": zone,
            "eks.amazonaws.com/nodegroup": name,
            "eks.amazonaws.com/capacityType": ng["capacityType"],
        });
        if let (Some(l), Some(extra)) = (labels.as_object_mut(), ng["labels"].as_object()) {
            for (k, v) in extra {
                l.insert(k.clone(), v.clone());
            }
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": node_name, "labels": labels},
            "spec": {"taints": taints, "providerID": format!("aws:///{zone}/i-{:012x}", i)},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "58", "ephemeral-storage": "20Gi"},
                "allocatable": {"cpu": "4", "memory": "15Gi", "pods": "58", "ephemeral-storage": "18Gi"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "nodeInfo": {"kubeletVersion": format!("v{}.0-eks", ng["version"].as_str().unwrap_or("1.33")),
                             "containerRuntimeVersion": "ferry://sandbox", "operatingSystem": "linux", "architecture": "amd64",
                             "osImage": "Ferry sandbox", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
            },
        }))
        .map_err(|e| ("InternalFailure", e.to_string()))?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err((
                    "NodeCreationFailure",
                    format!("node {node_name} did not join: {e}"),
                ));
            }
        }
    }
    Ok(())
}

async fn create_addon(
    state: &Arc<State>,
    region: &str,
    cluster: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let name = input["addonName"].as_str().unwrap_or_default().to_string();
    let known = [
        "aws-ebs-csi-driver",
        "vpc-cni",
        "coredns",
        "kube-proxy",
        "eks-pod-identity-agent",
    ];
    if !known.contains(&name.as_str()) {
        return Err(err(
            400,
            "InvalidParameterException",
            format!(
                "Addon {name} specified is not supported (the sandbox cloud has {})",
                known.join(", ")
            ),
        ));
    }
    let key = (region.to_string(), cluster.to_string());
    let mut clusters = state.clusters.lock().await;
    let e = clusters
        .get_mut(&key)
        .ok_or_else(|| not_found(&format!("cluster found for name: {cluster}")))?;
    if e.cluster["status"] != "ACTIVE" {
        return Err(err(
            400,
            "ResourceNotReadyException",
            format!("Cluster {cluster} is not ACTIVE"),
        ));
    }
    if e.addons.contains_key(&name) {
        return Err(err(
            409,
            "ResourceInUseException",
            format!("Addon already exists with name {name} and cluster name {cluster}"),
        ));
    }
    let addon = json!({
        "addonName": name,
        "clusterName": cluster,
        "status": "CREATING",
        "addonVersion": input["addonVersion"].as_str().map(str::to_string).unwrap_or_else(|| format!("v1.0.0-eksbuild.{}", e.cluster["version"].as_str().unwrap_or_default())),
        "health": {"issues": []},
        "addonArn": format!("arn:aws:eks:{region}:{}:addon/{cluster}/{name}/{}", state.account, &request_id()[..8]),
        "createdAt": now_secs(),
        "modifiedAt": now_secs(),
        "serviceAccountRoleArn": input["serviceAccountRoleArn"],
        "tags": input.get("tags").cloned().unwrap_or(json!({})),
    });
    e.addons.insert(name.clone(), addon.clone());
    let client = e.client.clone();
    drop(clusters);
    let st = state.clone();
    let h = tokio::spawn(async move {
        let outcome = match client {
            Some(c) => deploy_addon(&c, &name).await,
            None => Err("the cluster's API is not running".to_string()),
        };
        let mut clusters = st.clusters.lock().await;
        if let Some(a) = clusters.get_mut(&key).and_then(|e| e.addons.get_mut(&name)) {
            match outcome {
                Ok(()) => a["status"] = json!("ACTIVE"),
                Err(message) => {
                    a["status"] = json!("CREATE_FAILED");
                    a["health"] =
                        json!({"issues": [{"code": "ConfigurationConflict", "message": message}]});
                }
            }
            a["modifiedAt"] = json!(now_secs());
        }
        save_eks(&st, &clusters);
    });
    state.tasks.lock().push(h);
    Ok(json!({"addon": addon}))
}

/// What an add-on puts into the cluster: its controller Deployment in `kube-system`.
async fn deploy_addon(client: &kube::Client, name: &str) -> Result<(), String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, PostParams};
    let component = match name {
        "aws-ebs-csi-driver" => "ebs-csi-controller",
        "vpc-cni" => "aws-node",
        other => other,
    };
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": component, "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/name": component, "app.kubernetes.io/managed-by": "EKS", "eks.amazonaws.com/addon": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": component}},
            "template": {"metadata": {"labels": {"app": component}},
                         "spec": {"containers": [{"name": component, "image": format!("602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/{component}:sandbox")}]}},
        },
    }))
    .map_err(|e| e.to_string())?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    match api.create(&PostParams::default(), &d).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(format!("cannot deploy {component}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_look_like_ec2_ones() {
        for ok in [
            "m6i.large",
            "t3.2xlarge",
            "c7g.metal",
            "t3.medium",
            "u-6tb1.112xlarge",
        ] {
            assert!(known_instance_type(ok), "{ok}");
        }
        for bad in ["m6i.huge", "large", "M6I.large", "m6i.xxlarge", ".large"] {
            assert!(!known_instance_type(bad), "{bad}");
        }
    }
}

//! The sandbox cloud's Azure side: a Microsoft Entra-like OAuth2 token endpoint
//! (client-credentials grant for known service principals, bearer tokens valid an
//! hour) and the Azure Resource Manager calls Ferry makes for AKS: list managed
//! clusters (by subscription, paged with `nextLink`, or by resource group), get, `PUT`
//! (a long-running operation with an `Azure-AsyncOperation` URL), `DELETE`, and
//! `listClusterUserCredential`. Creating a cluster starts a real sandbox ([`Sandbox`])
//! with the Azure Disk classes `managed-csi` (default) and `managed-csi-premium` on
//! `disk.csi.azure.com` and nodes for its node pools; its user kubeconfig reaches it.
//!
//! Errors come in Azure's JSON shape (`{"error": {"code", "message"}}`) with its codes:
//! 401 `AuthenticationFailed`/`InvalidAuthenticationToken`, 403 `AuthorizationFailed`
//! (a principal without rights on the subscription), 404 `SubscriptionNotFound` and
//! `ResourceNotFound`, 429 `TooManyRequests` with `Retry-After` (see
//! [`super::cloud::Cloud::throttle`]). The clusters are saved in `clusters.json` in the
//! folder, and those that had succeeded are started again when the cloud starts.
//!
//! Owns the Azure API of the sandbox cloud; what the clusters do is the sandbox's.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::cloud::{VERSIONS, admin_client, hide_control_plane};
use super::{
    ReclaimPolicy, Sandbox, SandboxConfig, SandboxError, StorageClassSpec, VolumeBindingMode,
    write_atomic,
};

/// The scope ARM tokens are asked for.
pub const SCOPE: &str = "https://management.azure.com/.default";
/// The provisioner of the Azure Disk classes.
pub const AZURE_DISK: &str = "disk.csi.azure.com";
/// How long a token is valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Clusters per page of a subscription-wide list (small, so paging is exercised).
const PAGE: usize = 2;
/// The file in the folder that lists the clusters.
const CLUSTERS_FILE: &str = "clusters.json";
/// Nodes registered per node pool at most (the rest exist on paper only).
const MAX_NODES_PER_POOL: i64 = 5;

/// A service principal of the sandbox's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzurePrincipal {
    pub client_id: String,
    pub client_secret: String,
    /// A display name.
    pub name: String,
    /// The subscriptions it has the Contributor role on (every other is refused).
    pub subscriptions: Vec<String>,
}

/// The tenant, its principals and the subscriptions that exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmConfig {
    pub tenant: String,
    pub principals: Vec<AzurePrincipal>,
    pub subscriptions: Vec<String>,
}

/// (subscription, resource group lowercased, cluster name lowercased)
type Key = (String, String, String);

struct ArmEntry {
    resource: Value,
    sandbox: Option<Sandbox>,
}

enum Operation {
    Cluster(Key),
    Done,
}

/// The Azure side of a running sandbox cloud.
pub struct ArmState {
    dir: PathBuf,
    config: ArmConfig,
    tokens: parking_lot::Mutex<HashMap<String, (usize, Instant)>>,
    clusters: tokio::sync::Mutex<BTreeMap<Key, ArmEntry>>,
    operations: parking_lot::Mutex<HashMap<String, Operation>>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ArmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmState")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl ArmState {
    /// Loads the saved clusters from `dir` and starts again those that had succeeded.
    pub async fn start(dir: PathBuf, config: ArmConfig) -> Result<Arc<ArmState>, SandboxError> {
        std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Io {
            path: dir.clone(),
            source,
        })?;
        let saved: Vec<Value> = match std::fs::read(dir.join(CLUSTERS_FILE)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| SandboxError::State {
                path: dir.join(CLUSTERS_FILE),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(SandboxError::Io {
                    path: dir.join(CLUSTERS_FILE),
                    source,
                });
            }
        };
        let state = Arc::new(ArmState {
            dir,
            config,
            tokens: Default::default(),
            clusters: Default::default(),
            operations: Default::default(),
            tasks: Default::default(),
        });
        {
            let mut clusters = state.clusters.lock().await;
            for mut resource in saved {
                let Some(key) = key_of(&resource) else {
                    continue;
                };
                let mut sandbox = None;
                if resource["properties"]["provisioningState"] == "Succeeded" {
                    match start_sandbox(&state, &key, &resource).await {
                        Ok(sb) => sandbox = Some(sb),
                        Err(why) => {
                            tracing::warn!(cluster = %key.2, "sandbox cloud: cluster did not start again: {why}");
                            fail(&mut resource, "ClusterStartFailed", &why);
                        }
                    }
                } else if resource["properties"]["provisioningState"] != "Failed" {
                    fail(
                        &mut resource,
                        "OperationInterrupted",
                        "the sandbox cloud stopped while the operation ran: PUT the cluster again",
                    );
                }
                clusters.insert(key, ArmEntry { resource, sandbox });
            }
            state.save(&clusters);
        }
        Ok(state)
    }

    fn save(&self, clusters: &BTreeMap<Key, ArmEntry>) {
        let list: Vec<&Value> = clusters.values().map(|e| &e.resource).collect();
        let r = serde_json::to_vec_pretty(&list)
            .map_err(|e| SandboxError::Internal(e.to_string()))
            .and_then(|b| write_atomic(&self.dir.join(CLUSTERS_FILE), &b));
        if let Err(e) = r {
            tracing::warn!("sandbox cloud: clusters not saved: {e}");
        }
    }

    fn cluster_dir(&self, key: &Key) -> PathBuf {
        self.dir.join(&key.0).join(&key.1).join(&key.2)
    }

    /// Stops every cluster (their folders stay) and the tasks still running.
    pub async fn shutdown(&self) -> Result<(), SandboxError> {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        let mut clusters = self.clusters.lock().await;
        let mut first_err = None;
        for e in clusters.values_mut() {
            if let Some(sb) = e.sandbox.take()
                && let Err(err) = sb.shutdown().await
            {
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn key_of(resource: &Value) -> Option<Key> {
    let id = resource["id"].as_str()?;
    let parts: Vec<&str> = id.split('/').collect();
    // /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{n}
    match parts.as_slice() {
        ["", _, s, _, rg, _, _, _, n] => Some((s.to_string(), lower(rg), lower(n))),
        _ => None,
    }
}

fn fail(resource: &mut Value, code: &str, message: &str) {
    resource["properties"]["provisioningState"] = json!("Failed");
    resource["properties"]["powerState"] = json!({"code": "Stopped"});
    resource["__error"] = json!({"code": code, "message": message});
}

/// Whether the sandbox cloud routes this path here.
pub fn serves(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.starts_with("/subscriptions/") || p == "/subscriptions" || p.contains("/oauth2/")
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).unwrap_or_default(),
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&random_hex(16)) {
        h.insert("x-ms-request-id", v);
    }
    r
}

/// An ARM error: `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ArmError {
    status: u16,
    code: &'static str,
    message: String,
}

fn arm_err(status: u16, code: &'static str, message: impl Into<String>) -> ArmError {
    ArmError {
        status,
        code,
        message: message.into(),
    }
}

fn error_response(e: &ArmError) -> Response<Full<Bytes>> {
    let mut r = respond(
        e.status,
        &json!({"error": {"code": e.code, "message": e.message}}),
    );
    if e.status == 401 {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static(
                "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\"",
            ),
        );
    }
    if e.status == 429 {
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    r
}

fn oauth_error(status: u16, error: &str, description: String) -> Response<Full<Bytes>> {
    respond(
        status,
        &json!({"error": error, "error_description": description, "error_codes": [], "timestamp": chrono::Utc::now().to_rfc3339()}),
    )
}

/// What the cloud's server hands over of a request.
#[derive(Debug)]
pub struct ArmRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    /// `Host`, for the URLs the answers name.
    pub host: &'a str,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// Answers one request to the token endpoint or ARM.
pub async fn handle(
    state: &Arc<ArmState>,
    throttle: &AtomicU32,
    req: ArmRequest<'_>,
) -> Response<Full<Bytes>> {
    let segs: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| super::server::percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let [tenant, o, v, t] = segs.as_slice()
        && o.eq_ignore_ascii_case("oauth2")
        && v.eq_ignore_ascii_case("v2.0")
        && t.eq_ignore_ascii_case("token")
    {
        if req.method != Method::POST {
            return oauth_error(405, "invalid_request", "use POST".into());
        }
        return token(state, tenant, req.body);
    }
    match arm(state, throttle, &req, &segs).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn token(state: &ArmState, tenant: &str, body: &[u8]) -> Response<Full<Bytes>> {
    if tenant != state.config.tenant {
        return oauth_error(
            400,
            "invalid_request",
            format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form = super::sigv4::query_params(&String::from_utf8_lossy(body).replace('+', "%20"));
    let get = |k: &str| {
        form.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type (the sandbox serves client_credentials).".into(),
        );
    }
    let client_id = get("client_id");
    let Some(idx) = state
        .config
        .principals
        .iter()
        .position(|p| p.client_id == client_id)
    else {
        return oauth_error(
            400,
            "unauthorized_client",
            format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if state.config.principals[idx].client_secret != get("client_secret") {
        return oauth_error(
            401,
            "invalid_client",
            format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    if get("scope") != SCOPE {
        return oauth_error(
            400,
            "invalid_scope",
            format!(
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid ({:?}; the sandbox issues {SCOPE}).",
                get("scope")
            ),
        );
    }
    let t = random_hex(32);
    let mut tokens = state.tokens.lock();
    tokens.retain(|_, (_, exp)| *exp > Instant::now());
    tokens.insert(t.clone(), (idx, Instant::now() + TOKEN_LIFETIME));
    respond(
        200,
        &json!({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME.as_secs(), "ext_expires_in": TOKEN_LIFETIME.as_secs(), "access_token": t}),
    )
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

const RP: &str = "Microsoft.ContainerService";
const MC: &str = "managedClusters";

async fn arm(
    state: &Arc<ArmState>,
    throttle: &AtomicU32,
    req: &ArmRequest<'_>,
    segs: &[&str],
) -> Result<Response<Full<Bytes>>, ArmError> {
    let bearer = req
        .authorization
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            arm_err(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        })?;
    let principal = {
        let tokens = state.tokens.lock();
        match tokens.get(bearer.trim()) {
            Some((idx, exp)) if *exp > Instant::now() => state.config.principals[*idx].clone(),
            Some(_) => {
                return Err(arm_err(
                    401,
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.",
                ));
            }
            None => {
                return Err(arm_err(
                    401,
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                ));
            }
        }
    };
    let params = super::sigv4::query_params(req.query);
    let param = |k: &str| {
        params
            .iter()
            .find(|(x, _)| x.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if param("api-version").is_none() {
        return Err(arm_err(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    }
    if throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(arm_err(
            429,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. Retry after 1 second.",
        ));
    }
    let [s, sub, rest @ ..] = segs else {
        return Err(not_served(req));
    };
    if !eq(s, "subscriptions") {
        return Err(not_served(req));
    }
    let sub = sub.to_string();
    if !state.config.subscriptions.contains(&sub) {
        return Err(arm_err(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        ));
    }
    let action = match (req.method.as_str(), rest.last()) {
        ("POST", Some(l)) if eq(l, "listClusterUserCredential") => {
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
        }
        ("PUT", _) => "Microsoft.ContainerService/managedClusters/write",
        ("DELETE", _) => "Microsoft.ContainerService/managedClusters/delete",
        _ => "Microsoft.ContainerService/managedClusters/read",
    };
    if !principal.subscriptions.contains(&sub) {
        return Err(arm_err(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '/subscriptions/{sub}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                principal.client_id, principal.client_id
            ),
        ));
    }
    let base = format!("http://{}", req.host);
    match (req.method.as_str(), rest) {
        ("GET", [p, rp, mc]) if eq(p, "providers") && eq(rp, RP) && eq(mc, MC) => {
            let skip: usize = param("$skipToken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let clusters = state.clusters.lock().await;
            let all: Vec<Value> = clusters
                .iter()
                .filter(|(k, _)| k.0 == sub)
                .map(|(_, e)| public(&e.resource))
                .collect();
            let page: Vec<Value> = all.iter().skip(skip).take(PAGE).cloned().collect();
            let mut out = json!({"value": page});
            if skip + PAGE < all.len() {
                out["nextLink"] = json!(format!(
                    "{base}/subscriptions/{sub}/providers/{RP}/{MC}?api-version={}&$skipToken={}",
                    param("api-version").unwrap_or_default(),
                    skip + PAGE
                ));
            }
            Ok(respond(200, &out))
        }
        ("GET", [p, rp, l, loc, o, id])
            if eq(p, "providers") && eq(rp, RP) && eq(l, "locations") && eq(o, "operations") =>
        {
            operation(state, loc, id).await
        }
        ("GET", [g, rg, p, rp, mc])
            if eq(g, "resourceGroups") && eq(p, "providers") && eq(rp, RP) && eq(mc, MC) =>
        {
            let clusters = state.clusters.lock().await;
            let list: Vec<Value> = clusters
                .iter()
                .filter(|(k, _)| k.0 == sub && k.1 == lower(rg))
                .map(|(_, e)| public(&e.resource))
                .collect();
            Ok(respond(200, &json!({"value": list})))
        }
        (m, [g, rg, p, rp, mc, name, tail @ ..])
            if eq(g, "resourceGroups") && eq(p, "providers") && eq(rp, RP) && eq(mc, MC) =>
        {
            let key = (sub.clone(), lower(rg), lower(name));
            match (m, tail) {
                ("GET", []) => {
                    let clusters = state.clusters.lock().await;
                    let e = clusters.get(&key).ok_or_else(|| not_found(rg, name))?;
                    Ok(respond(200, &public(&e.resource)))
                }
                ("PUT", []) => put(state, &base, &key, rg, name, req.body).await,
                ("DELETE", []) => delete(state, &base, &key, rg, name).await,
                ("POST", [c]) if eq(c, "listClusterUserCredential") => {
                    credentials(state, &key, rg, name).await
                }
                _ => Err(not_served(req)),
            }
        }
        _ => Err(not_served(req)),
    }
}

fn not_served(req: &ArmRequest<'_>) -> ArmError {
    arm_err(
        400,
        "InvalidResourceType",
        format!(
            "The sandbox cloud does not serve {} {} (it serves Microsoft.ContainerService/managedClusters).",
            req.method, req.path
        ),
    )
}

fn not_found(rg: &str, name: &str) -> ArmError {
    arm_err(
        404,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// The resource as ARM shows it (private bookkeeping removed).
fn public(resource: &Value) -> Value {
    let mut v = resource.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("__error");
    }
    v
}

/// Whether a VM size looks like an Azure one (`Standard_D4s_v5`, `Standard_B2s`).
fn known_vm_size(size: &str) -> bool {
    let Some(rest) = size.strip_prefix("Standard_") else {
        return false;
    };
    let mut parts = rest.split('_');
    let head = parts.next().unwrap_or_default();
    let letters = head.chars().take_while(|c| c.is_ascii_uppercase()).count();
    let digits = head[letters..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let tail_ok = head[letters + digits..]
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '-');
    let version_ok = parts.all(|p| {
        p.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    (1..=3).contains(&letters) && digits > 0 && tail_ok && version_ok
}

fn version_ok(v: &str) -> Option<String> {
    let mut it = v.split('.');
    let mm = format!("{}.{}", it.next()?, it.next()?);
    VERSIONS.contains(&mm.as_str()).then(|| {
        if v.split('.').count() >= 3 {
            v.to_string()
        } else {
            format!("{v}.0")
        }
    })
}

fn pool_name_ok(n: &str) -> bool {
    (1..=12).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

async fn put(
    state: &Arc<ArmState>,
    base: &str,
    key: &Key,
    rg: &str,
    name: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ArmError> {
    let bad = |code: &'static str, m: String| Err(arm_err(400, code, m));
    let input: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return bad(
                "InvalidRequestContent",
                format!("The request content is not valid JSON: {e}"),
            );
        }
    };
    let name_ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return bad(
            "InvalidParameter",
            format!("The value of parameter resourceName ({name}) is invalid."),
        );
    }
    let location = input["location"].as_str().unwrap_or_default().to_string();
    if location.is_empty() {
        return bad(
            "LocationRequired",
            "The location property is required for this definition.".into(),
        );
    }
    let props = &input["properties"];
    let requested = props["kubernetesVersion"]
        .as_str()
        .unwrap_or("1.33")
        .to_string();
    let Some(current) = version_ok(&requested) else {
        return bad(
            "K8sVersionNotSupported",
            format!(
                "Version {requested} is not supported in this region. Supported versions: {}.",
                VERSIONS.join(", ")
            ),
        );
    };
    let pools = props["agentPoolProfiles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pools.is_empty() {
        return bad(
            "InvalidParameter",
            "agentPoolProfiles must have at least one node pool.".into(),
        );
    }
    if !pools.iter().any(|p| p["mode"] == "System") {
        return bad(
            "MustDefineAtLeastOneSystemPool",
            "Must define at least one system pool.".into(),
        );
    }
    for p in &pools {
        let n = p["name"].as_str().unwrap_or_default();
        if !pool_name_ok(n) {
            return bad(
                "InvalidParameter",
                format!(
                    "The agent pool name {n:?} is invalid: 1 to 12 lowercase letters and digits, starting with a letter."
                ),
            );
        }
        if p["vmSize"].as_str().unwrap_or_default().is_empty() {
            return bad(
                "InvalidParameter",
                format!("agent pool {n}: vmSize is required."),
            );
        }
    }
    let mut clusters = state.clusters.lock().await;
    let existing_state = clusters.get(key).map(|e| {
        e.resource["properties"]["provisioningState"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let op = random_hex(16);
    let op_url = format!(
        "{base}/subscriptions/{}/providers/{RP}/locations/{location}/operations/{op}?api-version=2024-05-01",
        key.0
    );
    let mut response_headers = vec![("azure-asyncoperation", op_url.clone())];
    match existing_state.as_deref() {
        Some("Creating" | "Updating" | "Deleting") => {
            return Err(arm_err(
                409,
                "OperationNotAllowed",
                format!(
                    "Operation is not allowed because there's an in progress operation on managed cluster {name} ({}).",
                    existing_state.unwrap_or_default()
                ),
            ));
        }
        Some("Succeeded") => {
            // An update in place: tags and node pool counts; the cluster keeps running.
            let Some(e) = clusters.get_mut(key) else {
                return Err(not_found(rg, name));
            };
            if let Some(t) = input.get("tags") {
                e.resource["tags"] = t.clone();
            }
            state.operations.lock().insert(op, Operation::Done);
            let out = public(&e.resource);
            state.save(&clusters);
            response_headers.clear();
            response_headers.push(("azure-asyncoperation", op_url));
            return Ok(with_headers(respond(200, &out), &response_headers));
        }
        _ => {}
    }
    let previous = clusters.get(key).map(|e| e.resource.clone());
    let id = format!(
        "/subscriptions/{}/resourcegroups/{rg}/providers/{RP}/{MC}/{name}",
        key.0
    );
    let dns_prefix = props["dnsPrefix"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}-dns"));
    let fqdn = previous
        .as_ref()
        .and_then(|p| p["properties"]["fqdn"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{dns_prefix}-{}.hcp.{location}.azmk8s.io", &random_hex(4)));
    let pools: Vec<Value> = pools
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["osType"] = json!(p["osType"].as_str().unwrap_or("Linux"));
            p["osSKU"] = json!(p["osSKU"].as_str().unwrap_or("Ubuntu"));
            p["type"] = json!(p["type"].as_str().unwrap_or("VirtualMachineScaleSets"));
            p["count"] = json!(p["count"].as_i64().unwrap_or(1));
            p["maxPods"] = json!(p["maxPods"].as_i64().unwrap_or(110));
            p["osDiskSizeGB"] = json!(p["osDiskSizeGB"].as_i64().unwrap_or(128));
            p["orchestratorVersion"] = json!(current);
            p["currentOrchestratorVersion"] = json!(current);
            p["provisioningState"] = json!("Creating");
            p["powerState"] = json!({"code": "Running"});
            p
        })
        .collect();
    let mut network = json!({
        "networkPlugin": "azure", "networkPolicy": "none", "loadBalancerSku": "standard",
        "outboundType": "loadBalancer", "serviceCidr": "10.0.0.0/16", "dnsServiceIP": "10.0.0.10",
        "ipFamilies": ["IPv4"],
    });
    if let (Some(n), Some(given)) = (network.as_object_mut(), props["networkProfile"].as_object()) {
        for (k, v) in given {
            n.insert(k.clone(), v.clone());
        }
    }
    let identity_type = input["identity"]["type"]
        .as_str()
        .unwrap_or("SystemAssigned");
    let resource = json!({
        "id": id,
        "location": location,
        "name": name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": input.get("tags").cloned().unwrap_or(json!({})),
        "sku": {"name": "Base", "tier": "Free"},
        "identity": {"type": identity_type, "principalId": random_hex(16), "tenantId": state.config.tenant},
        "properties": {
            "provisioningState": "Creating",
            "powerState": {"code": "Running"},
            "kubernetesVersion": requested,
            "currentKubernetesVersion": current,
            "dnsPrefix": dns_prefix,
            "fqdn": fqdn,
            "agentPoolProfiles": pools,
            "nodeResourceGroup": format!("MC_{rg}_{name}_{location}"),
            "enableRBAC": props["enableRBAC"].as_bool().unwrap_or(true),
            "networkProfile": network,
            "storageProfile": {"diskCSIDriver": {"enabled": true}, "fileCSIDriver": {"enabled": true}, "snapshotController": {"enabled": true}},
        },
    });
    let status = if previous.is_some() { 200 } else { 201 };
    clusters.insert(
        key.clone(),
        ArmEntry {
            resource: resource.clone(),
            sandbox: None,
        },
    );
    state.save(&clusters);
    drop(clusters);
    state
        .operations
        .lock()
        .insert(op, Operation::Cluster(key.clone()));
    let st = state.clone();
    let k = key.clone();
    let h = tokio::spawn(async move { provision(st, k).await });
    state.tasks.lock().push(h);
    Ok(with_headers(respond(status, &resource), &response_headers))
}

fn with_headers(
    mut r: Response<Full<Bytes>>,
    headers: &[(&'static str, String)],
) -> Response<Full<Bytes>> {
    for (k, v) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}

/// Starts the cluster's sandbox and registers its nodes; then `Succeeded`, or `Failed`
/// with the reason (a VM size Azure does not have, a sandbox that did not start).
async fn provision(state: Arc<ArmState>, key: Key) {
    let resource = {
        let clusters = state.clusters.lock().await;
        match clusters.get(&key) {
            Some(e) => e.resource.clone(),
            None => return,
        }
    };
    let location = resource["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bad_size = resource["properties"]["agentPoolProfiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["vmSize"].as_str())
        .find(|s| !known_vm_size(s))
        .map(str::to_string);
    let outcome = match bad_size {
        Some(size) => Err((
            "SkuNotAvailable",
            format!(
                "The requested VM size {size} is not available in location '{location}'. Choose another size (`az vm list-skus --location {location}`)."
            ),
        )),
        None => start_sandbox(&state, &key, &resource)
            .await
            .map_err(|why| ("ClusterStartFailed", why)),
    };
    let mut clusters = state.clusters.lock().await;
    let Some(e) = clusters.get_mut(&key) else {
        // Deleted while starting.
        if let Ok(sb) = outcome {
            let _ = sb.shutdown().await;
        }
        return;
    };
    match outcome {
        Ok(sb) => {
            e.resource["properties"]["provisioningState"] = json!("Succeeded");
            if let Some(pools) = e.resource["properties"]["agentPoolProfiles"].as_array_mut() {
                for p in pools {
                    p["provisioningState"] = json!("Succeeded");
                }
            }
            if let Some(o) = e.resource.as_object_mut() {
                o.remove("__error");
            }
            e.sandbox = Some(sb);
            tracing::info!(cluster = %key.2, "sandbox cloud AKS cluster Succeeded");
        }
        Err((code, why)) => {
            tracing::warn!(cluster = %key.2, "sandbox cloud AKS cluster failed: {why}");
            fail(&mut e.resource, code, &why);
        }
    }
    state.save(&clusters);
}

/// The cluster's sandbox, started (again) from its folder with the Azure Disk classes
/// and a node per pool member.
async fn start_sandbox(state: &ArmState, key: &Key, resource: &Value) -> Result<Sandbox, String> {
    let name = resource["name"].as_str().unwrap_or(&key.2).to_string();
    let disk = |n: &str, sku: &str, default: bool| StorageClassSpec {
        name: n.into(),
        provisioner: AZURE_DISK.into(),
        parameters: BTreeMap::from([("skuname".to_string(), sku.to_string())]),
        binding_mode: VolumeBindingMode::WaitForFirstConsumer,
        reclaim_policy: ReclaimPolicy::Delete,
        allow_volume_expansion: true,
        default,
    };
    let mut config = SandboxConfig::new(&name, state.cluster_dir(key));
    config.workers = 0;
    config.storage_classes = vec![
        disk("managed-csi", "StandardSSD_LRS", true),
        disk("managed-csi-premium", "Premium_LRS", false),
    ];
    let sb = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    let setup = async {
        let client = admin_client(&sb).await.map_err(|e| e.to_string())?;
        hide_control_plane(&client, &name)
            .await
            .map_err(|e| e.to_string())?;
        register_nodes(&client, resource).await
    };
    match setup.await {
        Ok(()) => Ok(sb),
        Err(why) => {
            let _ = sb.shutdown().await;
            Err(why)
        }
    }
}

/// Registers the node pools' nodes with the cluster, as their kubelets would.
async fn register_nodes(client: &kube::Client, resource: &Value) -> Result<(), String> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, PostParams};
    let api: Api<Node> = Api::all(client.clone());
    let location = resource["location"].as_str().unwrap_or_default();
    let version = resource["properties"]["currentKubernetesVersion"]
        .as_str()
        .unwrap_or("1.33.0");
    for p in resource["properties"]["agentPoolProfiles"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let pool = p["name"].as_str().unwrap_or("pool");
        let zones: Vec<&str> = p["availabilityZones"]
            .as_array()
            .map(|z| z.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let count = p["count"]
            .as_i64()
            .unwrap_or(0)
            .clamp(0, MAX_NODES_PER_POOL);
        for i in 0..count {
            let node_name = format!("aks-{pool}-12345678-vmss{i:06}");
            let zone = zones
                .get(usize::try_from(i).unwrap_or(0) % zones.len().max(1))
                .map(|z| format!("{location}-{z}"))
                .unwrap_or_else(|| "0".into());
            let mut labels = json!({
                "kubernetes.io/hostname": node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": p["vmSize"],
                "topology.kubernetes.io/region": location,
                "topology.kubernetes.io/zone": zone,
                "kubernetes.azure.com/agentpool": pool,
                "kubernetes.azure.com/mode": p["mode"].as_str().unwrap_or("User").to_ascii_lowercase(),
                "kubernetes.azure.com/cluster": resource["properties"]["nodeResourceGroup"],
            });
            if let (Some(l), Some(extra)) = (labels.as_object_mut(), p["nodeLabels"].as_object()) {
                for (k, v) in extra {
                    l.insert(k.clone(), v.clone());
                }
            }
            let taints: Vec<Value> = p["nodeTaints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|t| {
                    let (kv, effect) = t.rsplit_once(':')?;
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    Some(json!({"key": k, "value": v, "effect": effect}))
                })
                .collect();
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": node_name, "labels": labels},
                "spec": {"taints": taints, "providerID": format!("azure://{}/virtualMachineScaleSets/aks-{pool}-12345678-vmss/virtualMachines/{i}", resource["properties"]["nodeResourceGroup"].as_str().unwrap_or_default())},
                "status": {
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "128Gi"},
                    "allocatable": {"cpu": "3860m", "memory": "12Gi", "pods": "110", "ephemeral-storage": "118Gi"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "nodeInfo": {"kubeletVersion": format!("v{version}"), "containerRuntimeVersion": "ferry://sandbox",
                                 "operatingSystem": "linux", "architecture": "amd64", "osImage": "Ferry sandbox (AKS)",
                                 "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
                },
            }))
            .map_err(|e| e.to_string())?;
            match api.create(&PostParams::default(), &node).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(format!("node {node_name} did not join: {e}")),
            }
        }
    }
    Ok(())
}

async fn operation(
    state: &Arc<ArmState>,
    _location: &str,
    id: &str,
) -> Result<Response<Full<Bytes>>, ArmError> {
    let op = {
        let ops = state.operations.lock();
        match ops.get(id) {
            None => None,
            Some(Operation::Done) => Some(None),
            Some(Operation::Cluster(k)) => Some(Some(k.clone())),
        }
    };
    let Some(op) = op else {
        return Err(arm_err(
            404,
            "NotFound",
            format!("The operation {id} was not found."),
        ));
    };
    let (status, error) = match op {
        None => ("Succeeded".to_string(), None),
        Some(key) => {
            let clusters = state.clusters.lock().await;
            match clusters.get(&key) {
                None => (
                    "Canceled".to_string(),
                    Some(
                        json!({"code": "ResourceDeleted", "message": "The cluster was deleted while the operation ran."}),
                    ),
                ),
                Some(e) => match e.resource["properties"]["provisioningState"].as_str() {
                    Some("Succeeded") => ("Succeeded".into(), None),
                    Some("Failed") => ("Failed".into(), Some(e.resource["__error"].clone())),
                    _ => ("InProgress".into(), None),
                },
            }
        }
    };
    let mut out =
        json!({"name": id, "status": status, "startTime": chrono::Utc::now().to_rfc3339()});
    if let Some(e) = error {
        out["error"] = e;
    }
    Ok(respond(200, &out))
}

async fn delete(
    state: &Arc<ArmState>,
    base: &str,
    key: &Key,
    rg: &str,
    name: &str,
) -> Result<Response<Full<Bytes>>, ArmError> {
    let mut clusters = state.clusters.lock().await;
    let Some(mut e) = clusters.remove(key) else {
        // Deleting what does not exist succeeds, as in ARM.
        return Ok(respond(204, &json!(null)));
    };
    state.save(&clusters);
    drop(clusters);
    let location = e.resource["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let dir = state.cluster_dir(key);
    let sb = e.sandbox.take();
    let h = tokio::spawn(async move {
        if let Some(sb) = sb
            && let Err(err) = sb.shutdown().await
        {
            tracing::warn!("sandbox cloud: cluster stopped uncleanly: {err}");
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
    });
    state.tasks.lock().push(h);
    let op = random_hex(16);
    state.operations.lock().insert(op.clone(), Operation::Done);
    tracing::info!(cluster = %name, resource_group = %rg, "sandbox cloud AKS cluster deleted");
    Ok(with_headers(
        respond(202, &json!(null)),
        &[(
            "azure-asyncoperation",
            format!(
                "{base}/subscriptions/{}/providers/{RP}/locations/{location}/operations/{op}?api-version=2024-05-01",
                key.0
            ),
        )],
    ))
}

async fn credentials(
    state: &Arc<ArmState>,
    key: &Key,
    rg: &str,
    name: &str,
) -> Result<Response<Full<Bytes>>, ArmError> {
    let clusters = state.clusters.lock().await;
    let e = clusters.get(key).ok_or_else(|| not_found(rg, name))?;
    let Some(sb) = &e.sandbox else {
        return Err(arm_err(
            409,
            "OperationNotAllowed",
            format!(
                "The managed cluster {name} is {}: its credentials are available once it has succeeded.",
                e.resource["properties"]["provisioningState"]
                    .as_str()
                    .unwrap_or("not ready")
            ),
        ));
    };
    let entry = sb.kubeconfig_entry();
    let cluster_name = e.resource["name"].as_str().unwrap_or(name);
    let user = format!("clusterUser_{rg}_{cluster_name}");
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": {"server": entry.server, "certificate-authority-data": b64(entry.ca_pem.as_bytes())}}],
        "users": [{"name": user, "user": {"token": entry.token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    });
    let text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    Ok(respond(
        200,
        &json!({"kubeconfigs": [{"name": "clusterUser", "value": b64(&text)}]}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_sizes_look_like_azure_ones() {
        for ok in [
            "Standard_D4s_v5",
            "Standard_B2s",
            "Standard_DS2_v2",
            "Standard_E16ads_v5",
        ] {
            assert!(known_vm_size(ok), "{ok}");
        }
        for bad in [
            "Standard_Huge",
            "D4s_v5",
            "Standard_D4s_x5",
            "standard_d4s_v5",
            "Standard_",
        ] {
            assert!(!known_vm_size(bad), "{bad}");
        }
        assert_eq!(version_ok("1.31").as_deref(), Some("1.31.0"));
        assert_eq!(version_ok("1.31.4").as_deref(), Some("1.31.4"));
        assert!(version_ok("1.20").is_none());
    }
}

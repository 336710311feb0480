//! The HTTPS front of a sandbox: TLS accept loop, bearer-token authentication, authorization
//! through the RBAC in `rbac.rs`, routing of Kubernetes API paths to the verbs, request limits,
//! watch streams, and `Status` responses for every error.
//!
//! Owns HTTP. Must not implement API semantics itself: `verbs.rs` does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::rbac;
use super::resources::{self, ResourceInfo};
use super::select::{FieldSelector, LabelSelector};
use super::store::EventType;
use super::verbs::{ApiError, ApiResult, Cluster, DeleteOptions, ListQuery, Sub, present};

/// The largest request body the API accepts, as a real API server.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What every connection of one sandbox shares.
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub tokens: super::users::TokenMap,
    pub server_url: String,
    /// EKS token authentication, for clusters of the sandbox cloud (`iam.rs`).
    #[cfg(feature = "cloud")]
    pub aws_iam: Option<super::iam::AwsIam>,
    /// Running pod execs (`exec.rs`).
    pub execs: super::exec::Sessions,
    /// Running containers (`kubelet.rs`).
    pub kubelet: super::kubelet::Kubelet,
}

pub type Body = BoxBody<Bytes, std::io::Error>;

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A request's `Accept` header ("" when absent or not text).
fn accept_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Serves one request; never fails: errors become `Status` responses.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let r = match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = r.status().as_u16(), "sandbox request");
    Ok(r)
}

fn authenticate(shared: &Shared, req: &Request<Incoming>) -> ApiResult<User> {
    let token = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    #[cfg(feature = "cloud")]
    if let (Some(t), Some(iam)) = (token, &shared.aws_iam)
        && t.starts_with(super::iam::TOKEN_PREFIX)
    {
        return iam
            .authenticate(t, std::time::SystemTime::now())
            .map_err(|why| {
                tracing::info!(cluster = %iam.cluster, "EKS token refused: {why}");
                ApiError::new(401, "Unauthorized", format!("Unauthorized: {why}"))
            });
    }
    token
        .and_then(|t| {
            shared
                .tokens
                .lookup(t)
                .or_else(|| super::satokens::authenticate(&shared.cluster.lock(), t))
        })
        .ok_or_else(|| {
            ApiError::new(
                401,
                "Unauthorized",
                "Unauthorized: send a valid bearer token (see the sandbox kubeconfig)",
            )
        })
}

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space` (query strings).
pub(super) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

async fn read_body(req: Request<Incoming>) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "the request body is larger than {MAX_BODY} bytes: split the object or store large data elsewhere"
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let decoded: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let get = req.method() == Method::GET;
    // Public, as on a real cluster: version and health.
    match segs.as_slice() {
        ["version"] if get => return Ok(json_response(200, &resources::version())),
        ["healthz" | "livez" | "readyz"] if get => {
            let mut r = Response::new(full("ok"));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(r);
        }
        _ => {}
    }
    let user = authenticate(shared, &req)?;
    // Pod exec (`exec.rs`): verb `create` on the subresource `pods/exec`.
    if let Some(target) = super::exec::Target::parse(&segs) {
        let attrs = rbac::Attributes::resource(
            "create",
            Some(&target.namespace),
            "",
            "pods",
            "exec",
            &target.pod,
        );
        rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
        return super::exec::serve(shared, target, req).await;
    }
    // Container logs (`kubelet.rs`): verb `get` on the subresource `pods/log`.
    if let ["api", "v1", "namespaces", ns, "pods", pod, "log"] = segs.as_slice()
        && get
    {
        let attrs = rbac::Attributes::resource("get", Some(ns), "", "pods", "log", pod);
        rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
        let query = parse_query(req.uri().query());
        return super::logs::logs(shared, ns, pod, &query).await;
    }
    let resource_request = matches!(
        segs.as_slice(),
        ["api", "v1", _, ..] | ["apis", _, _, _, ..]
    );
    if !resource_request {
        let verb = req.method().as_str().to_ascii_lowercase();
        let attrs = rbac::Attributes::non_resource(&verb, &path);
        rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
    }
    match segs.as_slice() {
        ["openapi", "v3"] if get => {
            let c = shared.cluster.lock();
            return Ok(json_response(200, &resources::openapi_v3_root(&c.store)));
        }
        ["openapi", "v3", "api", version] if get => {
            let c = shared.cluster.lock();
            return resources::openapi_v3_group_version(&c.store, "", version)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::route_not_found);
        }
        ["openapi", "v3", "apis", group, version] if get => {
            let c = shared.cluster.lock();
            return resources::openapi_v3_group_version(&c.store, group, version)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::route_not_found);
        }
        ["api" | "apis"] if get && let Some(v) = resources::aggregated_wanted(&accept_of(&req)) => {
            let c = shared.cluster.lock();
            let list = resources::aggregated_discovery(&c.store, segs == ["api"], v);
            let mut r = json_response(200, &list);
            let media =
                format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
            if let Ok(h) = HeaderValue::from_str(&media) {
                r.headers_mut().insert(CONTENT_TYPE, h);
            }
            return Ok(r);
        }
        ["api"] if get => {
            return Ok(json_response(
                200,
                &resources::api_versions(&shared.server_url),
            ));
        }
        ["apis"] if get => {
            let c = shared.cluster.lock();
            return Ok(json_response(200, &resources::api_group_list(&c.store)));
        }
        ["api", "v1"] if get => {
            let c = shared.cluster.lock();
            return Ok(json_response(
                200,
                &resources::api_resource_list(&c.store, "", "v1"),
            ));
        }
        ["apis", group] if get => {
            let c = shared.cluster.lock();
            let list = resources::api_group_list(&c.store);
            let found = list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|g| g["name"] == *group).cloned());
            return match found {
                Some(mut g) => {
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    Ok(json_response(200, &g))
                }
                None => Err(ApiError::route_not_found()),
            };
        }
        ["apis", group, version] if get => {
            let c = shared.cluster.lock();
            if !resources::serves_group_version(&c.store, group, version) {
                return Err(ApiError::route_not_found());
            }
            return Ok(json_response(
                200,
                &resources::api_resource_list(&c.store, group, version),
            ));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::route_not_found()),
    };
    if version == "v1"
        && let [plural] = rest
        && rbac::REVIEWS
            .iter()
            .any(|(g, p, _)| *g == group && p == plural)
    {
        if req.method() != Method::POST {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{plural} can only be created"),
            ));
        }
        let attrs = rbac::Attributes::resource("create", None, group, plural, "", "");
        rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
        let protobuf = req.headers().get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/vnd.kubernetes.protobuf")
        });
        let bytes = read_body(req).await?;
        let body = if protobuf {
            super::proto::decode(&bytes)
                .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e.explain()))?
        } else {
            parse_json(&bytes)?
        };
        let c = shared.cluster.lock();
        return Ok(json_response(
            201,
            &rbac::review(&c, &user, group, plural, &body)?,
        ));
    }
    let namespaced_path = rest.len() >= 3
        && rest.first() == Some(&"namespaces")
        && !(rest.len() == 3 && matches!(rest.get(2), Some(&"status") | Some(&"finalize")));
    let (ns, rest) = if namespaced_path {
        (
            rest.get(1).map(|s| s.to_string()),
            rest.get(2..).unwrap_or(&[]),
        )
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return Err(ApiError::route_not_found());
    }
    let plural = rest.first().copied().unwrap_or("");
    let name = rest.get(1).map(|s| s.to_string());
    let info = shared
        .cluster
        .lock()
        .info(group, version, plural)
        .ok_or_else(ApiError::route_not_found)?;
    if ns.is_some() && !info.namespaced {
        return Err(ApiError::route_not_found());
    }
    // `kubectl create token`: a TokenRequest on a ServiceAccount.
    if info.group.is_empty() && info.plural == "serviceaccounts" && rest.get(2) == Some(&"token") {
        let (Some(ns), Some(name)) = (&ns, &name) else {
            return Err(ApiError::route_not_found());
        };
        if req.method() != Method::POST {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "a token is requested with POST (create)",
            ));
        }
        let attrs =
            rbac::Attributes::resource("create", Some(ns), "", "serviceaccounts", "token", name);
        rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
        let protobuf = req.headers().get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/vnd.kubernetes.protobuf")
        });
        let body = read_body(req).await?;
        let request = if protobuf {
            super::proto::decode(&body)
                .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e.explain()))?
        } else {
            parse_json(&body)?
        };
        let c = shared.cluster.lock();
        return Ok(json_response(
            201,
            &super::satokens::token_request(&c, ns, name, &request)?,
        ));
    }
    if info.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::route_not_found());
    }
    let sub = match rest.get(2).copied() {
        None => Sub::Main,
        Some("status") if info.status => Sub::Status,
        Some("scale") if info.scale => Sub::Scale,
        Some("finalize") if info.plural == "namespaces" => Sub::Main,
        Some(_) => return Err(ApiError::route_not_found()),
    };
    let query = parse_query(req.uri().query());
    let watch = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
    let verb = match (req.method().clone(), &name) {
        (Method::GET, None) if watch => "watch",
        (Method::GET, None) => "list",
        (Method::GET, Some(_)) => "get",
        (Method::POST, None) => "create",
        (Method::PUT, Some(_)) => "update",
        (Method::PATCH, Some(_)) => "patch",
        (Method::DELETE, None) => "deletecollection",
        (Method::DELETE, Some(_)) => "delete",
        (m, _) => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("the server does not allow {m} on this path"),
            ));
        }
    };
    let subresource = rest.get(2).copied().unwrap_or("");
    // A namespace's own name is the namespace of requests on it, as for a real server.
    let attr_ns = match (&ns, info.plural.as_str(), &name) {
        (None, "namespaces", Some(n)) if info.group.is_empty() => Some(n.as_str()),
        _ => ns.as_deref(),
    };
    let attrs = rbac::Attributes::resource(
        verb,
        attr_ns,
        &info.group,
        &info.plural,
        subresource,
        name.as_deref().unwrap_or(""),
    );
    rbac::authorize(&shared.cluster.lock(), &user, &attrs)?;
    let list_query = ListQuery {
        label_selector: query.get("labelSelector").cloned().unwrap_or_default(),
        field_selector: query.get("fieldSelector").cloned().unwrap_or_default(),
        limit: query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: query.get("continue").cloned(),
    };
    let ns = ns.as_deref();
    if verb == "watch" {
        let table = super::table::wanted(&accept_of(&req));
        return serve_watch(shared, &info, ns, &list_query, &query, table);
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let accept = accept_of(&req);
    let user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let protobuf = content_type.starts_with("application/vnd.kubernetes.protobuf");
    if content_type.starts_with("application/cbor") || (protobuf && verb == "patch") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the sandbox reads JSON only, not {content_type}"),
        ));
    }
    let body = if matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) {
        read_body(req).await?
    } else {
        Bytes::new()
    };
    let delete_opts = || -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions {
            propagation: query.get("propagationPolicy").cloned(),
            ..Default::default()
        };
        if query.get("orphanDependents").map(String::as_str) == Some("true") {
            o.propagation = Some("Orphan".into());
        }
        if !body.is_empty() {
            let v = if protobuf {
                super::proto::decode_delete_options(&body).ok_or_else(|| {
                    ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the protobuf DeleteOptions could not be read: send JSON",
                    )
                })?
            } else {
                parse_json(&body)?
            };
            if let Some(p) = v["propagationPolicy"].as_str() {
                o.propagation = Some(p.to_string());
            }
            if v["orphanDependents"].as_bool() == Some(true) {
                o.propagation = Some("Orphan".into());
            }
            o.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
            o.precondition_rv = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
        }
        Ok(o)
    };
    let dry_run = match verb {
        "create" | "update" | "patch" => super::dryrun::requested(&query, verb, None)?,
        "delete" | "deletecollection" => {
            let opts = match (body.is_empty(), protobuf) {
                (true, _) => None,
                (false, true) => super::proto::decode_delete_options(&body),
                (false, false) => Some(parse_json(&body)?),
            };
            super::dryrun::requested(&query, verb, opts.as_ref())?
        }
        _ => false,
    };
    let name = name.as_deref().unwrap_or("");
    let decode = |body: &[u8]| -> ApiResult<Value> {
        if !protobuf {
            return parse_json(body);
        }
        super::proto::decode(body)
            .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e.explain()))
    };
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = verb == "patch" && media == "application/apply-patch+yaml" && sub == Sub::Main;
    let field_manager = query.get("fieldManager").map(String::as_str);
    if apply && field_manager.is_none_or(str::is_empty) {
        return Err(super::ssa::manager_required());
    }
    let manager = super::ssa::manager_name(field_manager, &user_agent);
    let force = query.get("force").map(String::as_str) == Some("true");
    // A body is decoded before the cluster's lock is taken: every other request waits
    // on that lock.
    let decoded = std::cell::RefCell::new(match verb {
        "create" | "update" => Some(decode(&body)),
        _ => None,
    });
    let object = || decoded.borrow_mut().take().unwrap_or_else(|| decode(&body));
    let exec_verb = |c: &mut Cluster| -> ApiResult<(u16, Value)> {
        Ok(match verb {
            "patch" if apply => {
                let applied = super::ssa::parse_apply(&body)?;
                let existed = c.get(&info, ns, name, sub).is_ok();
                let out = super::ssa::apply(c, &info, ns, name, applied, &manager, force)?;
                (if existed { 200 } else { 201 }, out)
            }
            "get" => (200, c.get(&info, ns, name, sub)?),
            "list" => (200, c.list(&info, ns, &list_query)?),
            "create" => (201, c.create(&info, ns, object()?)?),
            "update" => (200, c.update(&info, ns, name, sub, object()?)?),
            "patch" => (200, c.patch(&info, ns, name, sub, &content_type, &body)?),
            "delete" => (200, c.delete(&info, ns, name, &delete_opts()?)?),
            _ => (
                200,
                c.delete_collection(&info, ns, &list_query, &delete_opts()?)?,
            ),
        })
    };
    let exec = |c: &mut Cluster| -> ApiResult<(u16, Value)> {
        if !apply {
            c.manager = Some(super::ssa::Manager {
                name: manager.clone(),
            });
        }
        let r = exec_verb(c);
        c.manager = None;
        r
    };
    let run = || -> ApiResult<(u16, Value, Vec<String>)> {
        let mut c = shared.cluster.lock();
        c.warnings.borrow_mut().clear();
        if !dry_run {
            let (code, out) = exec(&mut c)?;
            return Ok((code, out, c.warnings.take()));
        }
        let mut scratch = super::dryrun::scratch(&c);
        let (code, mut out) = exec(&mut scratch)?;
        super::dryrun::settle(&c.store, &info, &mut out);
        Ok((code, out, scratch.warnings.take()))
    };
    // A bug must cost one request a 500, never the server: catch panics here. Each store
    // change is a single step, so the store stays consistent.
    let (code, mut out, warnings) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .map_err(|_| {
        ApiError::new(
            500,
            "InternalError",
            "the sandbox failed on this request (a bug: please report it with the request)",
        )
    })??;
    // `kubectl get` asks for the server's printed columns.
    if matches!(verb, "get" | "list") && sub == Sub::Main && super::table::wanted(&accept) {
        let include = query
            .get("includeObject")
            .map_or("Metadata", String::as_str);
        out = super::table::convert(&shared.cluster.lock().store, &info, &out, include);
    }
    let mut r = json_response(code, &out);
    for w in warnings {
        // RFC 7234's warn-text is a quoted string.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(h) = HeaderValue::from_str(&text) {
            r.headers_mut().append(hyper::header::WARNING, h);
        }
    }
    Ok(r)
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch: newline-delimited WatchEvents from a resourceVersion, with bookmarks when
/// asked, until `timeoutSeconds` or the client leaves.
fn serve_watch(
    shared: &Arc<Shared>,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &ListQuery,
    query: &HashMap<String, String>,
    table: bool,
) -> ApiResult<Response<Body>> {
    // `kubectl get --watch` asks for Tables: each event's object is a one-row Table.
    let shape = {
        let shared = shared.clone();
        let info = info.clone();
        let include = query
            .get("includeObject")
            .map_or("Metadata", String::as_str)
            .to_string();
        move |obj: &Value| -> Value {
            if table {
                super::table::convert(&shared.cluster.lock().store, &info, obj, &include)
            } else {
                obj.clone()
            }
        }
    };
    let labels = LabelSelector::parse(&q.label_selector).map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(&q.field_selector).map_err(ApiError::bad_request)?;
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let send_initial = matches!(
        query.get("sendInitialEvents").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800);
    let (tx, rx) = futures::channel::mpsc::channel::<Bytes>(256);
    let info = info.clone();
    let ns = ns.map(str::to_string);
    let matches = {
        let info = info.clone();
        let ns = ns.clone();
        move |key: &super::store::Key, obj: &Value| {
            key.group == info.group
                && key.resource == info.plural
                && ns.as_ref().is_none_or(|n| *n == key.namespace)
                && labels.matches(obj)
                && fields.matches(obj)
        }
    };
    let mut initial = Vec::new();
    let (mut events, backlog, mut last_rv) = {
        let c = shared.cluster.lock();
        let current = c.store.resource_version();
        let start = if rv_param.is_empty() || rv_param == "0" || send_initial {
            for (k, o) in c.store.list(&info.group, &info.plural, ns.as_deref()) {
                if matches(k, o) {
                    initial.push(present(&info, o.clone()));
                }
            }
            current
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion {rv_param:?} is not valid"))
            })?;
            if rv < c.store.history_start() || rv > current {
                let gone = ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({current})"),
                );
                let line = event_line("ERROR", &gone.to_status());
                let body = futures::stream::iter([Ok::<_, std::io::Error>(Frame::data(line))]);
                return Ok(stream_response(BodyExt::boxed(StreamBody::new(body))));
            }
            rv
        };
        let (rx, backlog) = c.store.subscribe(start);
        (rx, backlog, start)
    };
    // Shaped once the store's lock is released (a Table reads the store).
    let initial: Vec<Bytes> = initial
        .iter()
        .map(|o| event_line("ADDED", &shape(o)))
        .collect();
    let bookmark = move |rv: u64, initial_end: bool| {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
        )
    };
    let bookmark_info = bookmark.clone();
    tokio::spawn(async move {
        let mut tx = tx;
        use futures::SinkExt as _;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if send_initial && tx.send(bookmark_info(last_rv, true)).await.is_err() {
            return;
        }
        // An object that starts matching a filtered watch is ADDED to it, one that stops
        // matching is DELETED from it, as on a real API server.
        let emit = |e: &super::store::Event| {
            let now = matches(&e.key, &e.object);
            let before = e.previous.as_ref().map(|p| matches(&e.key, p));
            let kind = match (e.kind, before, now) {
                (EventType::Modified, Some(false), true) => "ADDED",
                (EventType::Modified, Some(true), false) => "DELETED",
                (_, _, true) => e.kind.as_str(),
                _ => return None,
            };
            Some(event_line(kind, &shape(&e.object)))
        };
        for e in backlog {
            last_rv = e.rv;
            if let Some(line) = emit(&e)
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                r = events.recv() => match r {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if let Some(line) = emit(&e)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::new(410, "Expired", "the watch fell behind: list and watch again");
                        let _ = tx.send(event_line("ERROR", &gone.to_status())).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let body = StreamBody::new(rx.map(|b| Ok::<_, std::io::Error>(Frame::data(b))));
    Ok(stream_response(BodyExt::boxed(body)))
}

fn stream_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

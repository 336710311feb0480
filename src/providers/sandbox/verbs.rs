//! The API verbs over the store, with the server-side behaviour of a real cluster:
//! metadata (uid, resourceVersion, creationTimestamp, generation, generateName),
//! validation (422), conflicts (409), finalizers, owner-reference garbage collection,
//! namespace lifecycle, Service IP and node-port allocation, CRD establishment, and the
//! objects every cluster starts with.
//!
//! Owns API semantics; runs synchronously under the server's lock. Must not do I/O or know
//! about HTTP beyond the status codes its errors carry.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::addresses::Addresses;
use super::resources::{self, CRD_GROUP, CRDS, ResourceInfo};
use super::select::{FieldSelector, LabelSelector};
use super::store::{EventType, Key, Store};

/// An API error: becomes a `Status` object with this code and reason.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(info)),
        );
        e.details = json!({"name": name, "group": info.group, "kind": info.plural});
        e
    }

    pub fn namespace_not_found(ns: &str) -> ApiError {
        let mut e = ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        e.details = json!({"name": ns, "kind": "namespaces"});
        e
    }

    pub fn route_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(info)
            ),
        );
        e.details = json!({"name": name, "group": info.group, "kind": info.plural});
        e
    }

    pub fn invalid(
        info: &ResourceInfo,
        name: &str,
        field: &str,
        detail: impl Into<String>,
    ) -> ApiError {
        let detail = detail.into();
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {field}: {detail}", info.kind),
        );
        e.details = json!({
            "name": name, "group": info.group, "kind": info.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]
        });
        e
    }

    /// The `Status` object clients decode.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        s
    }
}

fn qualified(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.clone()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
    Scale,
}

/// What list and deletecollection accept.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// What delete accepts (query parameters and the DeleteOptions body).
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    fn orphan(&self) -> bool {
        self.propagation.as_deref() == Some("Orphan")
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // Fall back to the clock: uniqueness, not secrecy, is what uids need.
        let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
    b
}

pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Checks a name the way the API server does for this resource; the error text is
/// kubectl's.
fn check_name(info: &ResourceInfo, name: &str) -> ApiResult<()> {
    let err = |detail: String| Err(ApiError::invalid(info, name, "metadata.name", detail));
    match info.plural.as_str() {
        "namespaces" | "services" => {
            if !is_dns_label(name) {
                return err(format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case \
                     alphanumeric characters or '-', and must start and end with an alphanumeric \
                     character (e.g. 'my-name', or '123-abc')"
                ));
            }
        }
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('%')
            {
                return err(format!(
                    "Invalid value: \"{name}\": may not contain '/' or '%'"
                ));
            }
        }
        _ => {
            if !is_dns_subdomain(name) {
                return err(format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower \
                     case alphanumeric characters, '-' or '.', and must start and end with an \
                     alphanumeric character (e.g. 'example.com')"
                ));
            }
        }
    }
    Ok(())
}

fn check_labels(info: &ResourceInfo, name: &str, obj: &Value) -> ApiResult<()> {
    let Some(labels) = obj["metadata"]["labels"].as_object() else {
        if obj["metadata"]["labels"].is_null() {
            return Ok(());
        }
        return Err(ApiError::invalid(
            info,
            name,
            "metadata.labels",
            "must be a map of strings",
        ));
    };
    for (k, v) in labels {
        let value = v.as_str().ok_or_else(|| {
            ApiError::invalid(
                info,
                name,
                &format!("metadata.labels.{k}"),
                "must be a string",
            )
        })?;
        let key_name = k.rsplit_once('/').map_or(k.as_str(), |(_, n)| n);
        let ok_name = |s: &str| {
            s.len() <= 63
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
                && s.bytes().next().is_none_or(|c| c.is_ascii_alphanumeric())
                && s.bytes().last().is_none_or(|c| c.is_ascii_alphanumeric())
        };
        if key_name.is_empty() || !ok_name(key_name) {
            return Err(ApiError::invalid(
                info,
                name,
                "metadata.labels",
                format!(
                    "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                ),
            ));
        }
        if !ok_name(value) {
            return Err(ApiError::invalid(
                info,
                name,
                "metadata.labels",
                format!(
                    "Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
    }
    Ok(())
}

/// The object as served at `info`'s version.
pub fn present(info: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(info.api_version()));
        m.insert("kind".into(), Value::String(info.kind.clone()));
    }
    obj
}

/// Everything but metadata, status and type: what a generation counts.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn str_of<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// One sandbox cluster: the store and what it needs to answer like a cluster.
pub struct Cluster {
    pub store: Store,
    pub name: String,
    pub ca_pem: String,
    /// The sandbox's folder. Volume contents live in `volumes/<volumeHandle>/` below it
    /// (see [`Cluster::volume_dir`]).
    pub dir: std::path::PathBuf,
    /// True on the throw-away copy a dry-run request works on (see `dryrun.rs`): code
    /// with effects outside the store (folders on disk) must skip them.
    pub dry_run: bool,
    /// The field manager of the request being served, if it tracks field ownership
    /// (see `ssa.rs`); None for the cluster's own writes.
    pub manager: Option<super::ssa::Manager>,
    /// The key service account tokens are signed with (`satokens.rs`); all zeros until
    /// the sandbox loads its own, and no token verifies under it.
    pub sa_key: [u8; 32],
    /// Warnings for the client of the request being served (`Warning` headers: Pod
    /// Security's `warn` level); the server takes them after each request.
    pub warnings: std::cell::RefCell<Vec<String>>,
    /// The Service IPs and node ports taken (`addresses.rs`), brought up to date from the
    /// store's changes when a Service is written.
    pub addresses: std::cell::RefCell<Addresses>,
    /// The Pod Security level enforced where a namespace has no `enforce` label (see
    /// [`super::SandboxConfig::pod_security`]).
    pub pod_security: Option<String>,
}

impl Cluster {
    pub fn new(store: Store, name: &str, ca_pem: &str, dir: &std::path::Path) -> Cluster {
        Cluster {
            store,
            name: name.to_string(),
            ca_pem: ca_pem.to_string(),
            dir: dir.to_path_buf(),
            dry_run: false,
            manager: None,
            sa_key: [0; 32],
            warnings: Default::default(),
            addresses: Default::default(),
            pod_security: None,
        }
    }

    /// The ServiceAccount admission of a new pod: the service account it names must
    /// exist, as the API server requires (`default`, which a namespace gets at once on a
    /// real cluster, is not checked).
    fn admit_service_account(&self, ns: &str, pod_name: &str, pod: &Value) -> ApiResult<()> {
        let Some(sa) = pod["spec"]["serviceAccountName"]
            .as_str()
            .filter(|s| !s.is_empty() && *s != "default")
        else {
            return Ok(());
        };
        if super::controllers::get(self, "", "serviceaccounts", Some(ns), sa).is_some() {
            return Ok(());
        }
        Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods \"{pod_name}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
        ))
    }

    /// The host folder holding the contents of the volume with this CSI `volumeHandle`
    /// (the sandbox provisioner names handles after their PersistentVolume).
    pub fn volume_dir(&self, volume_handle: &str) -> std::path::PathBuf {
        self.dir.join("volumes").join(volume_handle)
    }

    fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> Key {
        Key::new(&info.group, &info.plural, ns.unwrap_or(""), name)
    }

    pub fn info(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        resources::find(&self.store, group, version, plural)
    }

    fn builtin(&self, gv: &str, plural: &str) -> ResourceInfo {
        let (group, version) = gv.split_once('/').unwrap_or(("", gv));
        self.info(group, version, plural)
            .unwrap_or_else(|| ResourceInfo {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                singular: plural.into(),
                kind: plural.into(),
                list_kind: plural.into(),
                namespaced: true,
                short_names: vec![],
                status: false,
                scale: false,
            })
    }

    /// The namespaces, node and Services a new cluster has (storage classes and worker
    /// nodes come from the sandbox's configuration: `controllers::install`).
    pub fn bootstrap(&mut self) -> ApiResult<()> {
        let ns = self.builtin("v1", "namespaces");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if self.store.get(&Self::key(&ns, None, name)).is_none() {
                self.create(&ns, None, json!({"metadata": {"name": name}}))?;
            }
        }
        let svc = self.builtin("v1", "services");
        if self
            .store
            .get(&Self::key(&svc, Some("default"), "kubernetes"))
            .is_none()
        {
            self.create(
                &svc,
                Some("default"),
                json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                       "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
            )?;
        }
        let node = self.builtin("v1", "nodes");
        let node_name = format!("{}-control-plane", self.name);
        if self
            .store
            .get(&Self::key(&node, None, &node_name))
            .is_none()
        {
            let obj = json!({
                "metadata": {"name": node_name, "labels": {
                    "kubernetes.io/hostname": node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/control-plane": "",
                    "topology.kubernetes.io/region": "ferry-local",
                    "topology.kubernetes.io/zone": format!("ferry-local-{}", self.name),
                }},
                "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "ferry sandbox node", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node_name}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "ferry://sandbox",
                                 "operatingSystem": "linux", "architecture": "amd64", "osImage": "Ferry sandbox",
                                 "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
                }
            });
            self.create(&node, None, obj)?;
        }
        Ok(())
    }

    pub fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
    ) -> ApiResult<Value> {
        let obj = self
            .store
            .get(&Self::key(info, ns, name))
            .ok_or_else(|| ApiError::not_found(info, name))?;
        Ok(match sub {
            Sub::Scale => scale_of(obj),
            _ => present(info, obj.clone()),
        })
    }

    fn matching<'a>(
        &'a self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<Vec<(&'a Key, &'a Value)>> {
        let ls = LabelSelector::parse(&q.label_selector).map_err(ApiError::bad_request)?;
        let fs = FieldSelector::parse(&q.field_selector).map_err(ApiError::bad_request)?;
        Ok(self
            .store
            .list(&info.group, &info.plural, ns)
            .filter(|(_, o)| ls.matches(o) && fs.matches(o))
            .collect())
    }

    pub fn list(&self, info: &ResourceInfo, ns: Option<&str>, q: &ListQuery) -> ApiResult<Value> {
        let all = self.matching(info, ns, q)?;
        let start = match &q.continue_token {
            Some(t) if !t.is_empty() => {
                let raw = hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "the continue token is not valid: start the list again",
                        )
                    })?;
                let (ns, name) = raw.split_once('/').unwrap_or(("", raw.as_str()));
                all.partition_point(|(k, _)| (k.namespace.as_str(), k.name.as_str()) <= (ns, name))
            }
            _ => 0,
        };
        let rest = all.get(start..).unwrap_or(&[]);
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<Value> = rest
            .iter()
            .take(limit)
            .map(|(_, o)| present(info, (*o).clone()))
            .collect();
        let mut meta = json!({"resourceVersion": self.store.resource_version().to_string()});
        if rest.len() > page.len()
            && let Some((k, _)) = rest.get(page.len().saturating_sub(1))
        {
            meta["continue"] = json!(hex::encode(format!("{}/{}", k.namespace, k.name)));
            meta["remainingItemCount"] = json!(rest.len() - page.len());
        }
        Ok(
            json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": meta, "items": page}),
        )
    }

    fn check_type(info: &ResourceInfo, body: &Value) -> ApiResult<()> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(kind) = body["kind"].as_str()
            && kind != info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the body is a {kind}, but this path serves {}",
                info.kind
            )));
        }
        if let Some(av) = body["apiVersion"].as_str() {
            let group = av.rsplit_once('/').map_or("", |(g, _)| g);
            if group != info.group {
                return Err(ApiError::bad_request(format!(
                    "the body has apiVersion {av}, but this path serves {}",
                    info.api_version()
                )));
            }
        }
        if !(body["metadata"].is_object() || body["metadata"].is_null()) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        let builtin = !resources::crd_defined(info);
        for field in ["spec", "status", "data", "stringData"] {
            let v = &body[field];
            if builtin && !(v.is_object() || v.is_null()) {
                let name = str_of(body, "/metadata/name");
                return Err(ApiError::invalid(info, name, field, "must be an object"));
            }
        }
        if let Some(ports) = body["spec"]["ports"].as_array()
            && ports.iter().any(|p| !p.is_object())
        {
            let name = str_of(body, "/metadata/name");
            return Err(ApiError::invalid(
                info,
                name,
                "spec.ports",
                "each port must be an object",
            ));
        }
        Ok(())
    }

    fn namespace_usable(&self, ns: &str, creating: bool) -> ApiResult<()> {
        let ns_obj = self
            .store
            .get(&Key::new("", "namespaces", "", ns))
            .ok_or_else(|| ApiError::namespace_not_found(ns))?;
        if creating && ns_obj["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut body: Value,
    ) -> ApiResult<Value> {
        Self::check_type(info, &body)?;
        if info.namespaced {
            let ns = ns.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{} are namespaced: create them under /namespaces/<name>/",
                    info.plural
                ))
            })?;
            let in_body = str_of(&body, "/metadata/namespace");
            if !in_body.is_empty() && in_body != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            body["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let ns = if info.namespaced { ns } else { None };
        let mut name = str_of(&body, "/metadata/name").to_string();
        if name.is_empty() {
            let prefix = str_of(&body, "/metadata/generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    info,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            loop {
                name = format!("{prefix}{}", name_suffix());
                if self.store.get(&Self::key(info, ns, &name)).is_none() {
                    break;
                }
            }
            body["metadata"]["name"] = json!(name);
        }
        check_name(info, &name)?;
        check_labels(info, &name, &body)?;
        if let Some(ns) = ns {
            self.namespace_usable(ns, true)?;
        }
        let key = Self::key(info, ns, &name);
        if self.store.get(&key).is_some() {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(info)),
            );
            e.details = json!({"name": name, "group": info.group, "kind": info.plural});
            return Err(e);
        }
        let meta = &mut body["metadata"];
        meta["uid"] = json!(new_uid());
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ] {
                m.remove(k);
            }
        }
        if info.status
            && !matches!(info.plural.as_str(), "nodes" | "namespaces")
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        self.validate_and_default(info, &key, &mut body, None)?;
        if let Some(m) = &self.manager {
            super::ssa::on_write(info, Sub::Main, None, &mut body, m);
        }
        let stored = self.store.put(key, present(info, body), EventType::Added);
        if info.group.is_empty() && info.plural == "namespaces" {
            // What the namespace gets is the cluster's doing, not the request's manager's.
            let manager = self.manager.take();
            let r = self.populate_namespace(&name);
            self.manager = manager;
            r?;
        }
        Ok(present(info, stored))
    }

    fn populate_namespace(&mut self, ns: &str) -> ApiResult<()> {
        let sa = self.builtin("v1", "serviceaccounts");
        if self
            .store
            .get(&Self::key(&sa, Some(ns), "default"))
            .is_none()
        {
            self.create(&sa, Some(ns), json!({"metadata": {"name": "default"}}))?;
        }
        let cm = self.builtin("v1", "configmaps");
        if self
            .store
            .get(&Self::key(&cm, Some(ns), "kube-root-ca.crt"))
            .is_none()
        {
            let ca = self.ca_pem.clone();
            self.create(
                &cm,
                Some(ns),
                json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                       "data": {"ca.crt": ca}}),
            )?;
        }
        Ok(())
    }

    /// Type-specific checks and server-set fields, on create (`old` None) and update.
    fn validate_and_default(
        &self,
        info: &ResourceInfo,
        key: &Key,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let name = key.name.as_str();
        if (info.group.as_str(), info.plural.as_str()) == ("batch", "jobs")
            || (info.group.as_str(), info.plural.as_str()) == ("batch", "cronjobs")
        {
            super::psa::warn(self, &key.namespace, info, obj);
        }
        match (info.group.as_str(), info.plural.as_str()) {
            ("", "namespaces") => {
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                let phase = if obj["metadata"]["deletionTimestamp"].is_string() {
                    "Terminating"
                } else {
                    "Active"
                };
                obj["status"]["phase"] = json!(phase);
                if obj["spec"]["finalizers"].is_null() {
                    obj["spec"]["finalizers"] = json!(["kubernetes"]);
                }
            }
            ("", "secrets") => {
                if let Some(Value::Object(string_data)) =
                    obj.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    for (k, v) in string_data {
                        let s = v.as_str().unwrap_or_default();
                        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                if obj["type"].is_null() {
                    obj["type"] = json!("Opaque");
                }
                if let Some(data) = obj["data"].as_object() {
                    for (k, v) in data {
                        let ok = v.as_str().is_some_and(|s| {
                            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                        });
                        if !ok {
                            return Err(ApiError::invalid(
                                info,
                                name,
                                &format!("data[{k}]"),
                                "must be base64",
                            ));
                        }
                    }
                }
            }
            // What the API server sets on every new pod, whatever the client sent.
            ("", "pods") if old.is_none() => {
                self.admit_service_account(&key.namespace, name, obj)?;
                super::psa::admit(self, &key.namespace, name, obj)?;
                super::psa::warn(self, &key.namespace, info, obj);
                let qos = qos_class(&obj["spec"]);
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
            ("", "services") => self.allocate_service(info, key, obj, old)?,
            ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
                super::psa::warn(self, &key.namespace, info, obj);
                let sel = &obj["spec"]["selector"];
                if !sel.is_object() {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        "spec.selector",
                        "Required value",
                    ));
                }
                let empty = |v: &Value| {
                    v.as_object().is_none_or(|m| m.is_empty())
                        && v.as_array().is_none_or(|a| a.is_empty())
                };
                if empty(&sel["matchLabels"]) && empty(&sel["matchExpressions"]) {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        "spec.selector",
                        format!(
                            "Invalid value: {sel}: empty selector is invalid for {}",
                            info.singular
                        ),
                    ));
                }
                if let Some(ml) = sel["matchLabels"].as_object() {
                    let labels = &obj["spec"]["template"]["metadata"]["labels"];
                    for (k, v) in ml {
                        if labels.get(k) != Some(v) {
                            return Err(ApiError::invalid(
                                info,
                                name,
                                "spec.template.metadata.labels",
                                "Invalid value: `selector` does not match template `labels`",
                            ));
                        }
                    }
                }
                if info.plural != "daemonsets" && obj["spec"]["replicas"].is_null() {
                    obj["spec"]["replicas"] = json!(1);
                }
            }
            (CRD_GROUP, CRDS) => validate_crd(info, name, obj)?,
            _ => {}
        }
        super::workloads::default_fields(&info.group, &info.plural, obj);
        Ok(())
    }

    pub fn update(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        body: Value,
    ) -> ApiResult<Value> {
        let key = Self::key(info, ns, name);
        let old = self
            .store
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if sub != Sub::Scale {
            Self::check_type(info, &body)?;
        } else if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let body_name = str_of(&body, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = str_of(&body, "/metadata/namespace");
        if info.namespaced && !body_ns.is_empty() && Some(body_ns) != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let rv = str_of(&body, "/metadata/resourceVersion");
        if !rv.is_empty() && rv != str_of(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(info, name));
        }
        let mut new = match sub {
            Sub::Status => {
                let mut n = old.clone();
                n["status"] = body["status"].clone();
                n
            }
            Sub::Scale => {
                let replicas = body["spec"]["replicas"]
                    .as_i64()
                    .filter(|r| *r >= 0 && *r <= i64::from(i32::MAX))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            info,
                            name,
                            "spec.replicas",
                            "must be a non-negative integer",
                        )
                    })?;
                let mut n = old.clone();
                n["spec"]["replicas"] = json!(replicas);
                n
            }
            Sub::Main => {
                let mut n = body;
                if info.status
                    && let Some(m) = n.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                let m = &mut n["metadata"];
                m["name"] = json!(name);
                if let Some(ns) = ns {
                    m["namespace"] = json!(ns);
                }
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match old["metadata"].get(k) {
                        Some(v) => m[k] = v.clone(),
                        None => {
                            if let Some(o) = m.as_object_mut() {
                                o.remove(k);
                            }
                        }
                    }
                }
                n
            }
        };
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        check_labels(info, name, &new)?;
        self.validate_and_default(info, &key, &mut new, Some(&old))?;
        if spec_part(&new) != spec_part(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if let Some(m) = &self.manager {
            super::ssa::on_write(info, sub, Some(&old), &mut new, m);
        }
        let new = present(info, new);
        if new == present(info, old.clone()) {
            return Ok(match sub {
                Sub::Scale => scale_of(&new),
                _ => new,
            });
        }
        let deleting = new["metadata"]["deletionTimestamp"].is_string();
        let no_finalizers = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        let is_namespace = info.group.is_empty() && info.plural == "namespaces";
        let stored = if deleting && no_finalizers && !is_namespace {
            self.store.put(key.clone(), new, EventType::Modified);
            self.remove_now(&key, false).unwrap_or_default()
        } else if deleting && no_finalizers {
            // A terminating namespace whose last finalizer went: gone once it is empty.
            let stored = self.store.put(key, new, EventType::Modified);
            self.finish_namespace(name).unwrap_or(stored)
        } else {
            self.store.put(key, new, EventType::Modified)
        };
        Ok(match sub {
            Sub::Scale => scale_of(&stored),
            _ => present(info, stored),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        content_type: &str,
        body: &[u8],
    ) -> ApiResult<Value> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let patch: Value = serde_json::from_slice(body).map_err(|e| {
            if media == "application/apply-patch+yaml" {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the sandbox reads apply patches as JSON only (send the YAML as JSON): {e}"
                    ),
                )
            } else {
                ApiError::bad_request(format!("the patch is not valid JSON: {e}"))
            }
        })?;
        let current = match self.store.get(&Self::key(info, ns, name)) {
            Some(o) => o.clone(),
            None if media == "application/apply-patch+yaml" && sub == Sub::Main => {
                return self.create(info, ns, patch);
            }
            None => return Err(ApiError::not_found(info, name)),
        };
        let mut doc = match sub {
            Sub::Scale => scale_of(&current),
            _ => present(info, current),
        };
        match media {
            "application/merge-patch+json" | "application/apply-patch+yaml" => {
                ferry_patch::merge(&mut doc, &patch)
            }
            "application/strategic-merge-patch+json" => {
                ferry_patch::strategic_merge(&mut doc, &patch)
                    .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?
            }
            "application/json-patch+json" => ferry_patch::json_patch(&mut doc, &patch)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the patch content type {other:?} is not supported: use application/merge-patch+json, application/json-patch+json or application/strategic-merge-patch+json"
                    ),
                ));
            }
        }
        self.update(info, ns, name, sub, doc)
    }

    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let key = Self::key(info, ns, name);
        let obj = self
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid != str_of(obj, "/metadata/uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    str_of(obj, "/metadata/uid")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != str_of(obj, "/metadata/resourceVersion")
        {
            return Err(ApiError::conflict(info, name));
        }
        let result = self.delete_key(&key, opts.orphan());
        Ok(present(info, result.unwrap_or_default()))
    }

    pub fn delete_collection(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let keys: Vec<Key> = self
            .matching(info, ns, q)?
            .into_iter()
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = Vec::new();
        for k in keys {
            if let Some(o) = self.delete_key(&k, opts.orphan()) {
                items.push(present(info, o));
            }
        }
        Ok(
            json!({"kind": info.list_kind, "apiVersion": info.api_version(),
                  "metadata": {"resourceVersion": self.store.resource_version().to_string()}, "items": items}),
        )
    }

    /// Deletes an object as the API does: marks it when finalizers remain, otherwise
    /// removes it and collects its dependents. Returns the object as last seen.
    fn delete_key(&mut self, key: &Key, orphan: bool) -> Option<Value> {
        let mut obj = self.store.get(key)?.clone();
        let is_namespace = key.group.is_empty() && key.resource == "namespaces";
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if is_namespace || has_finalizers {
            if !obj["metadata"]["deletionTimestamp"].is_string() {
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                if is_namespace {
                    obj["status"]["phase"] = json!("Terminating");
                }
                obj = self.store.put(key.clone(), obj, EventType::Modified);
            }
            if !is_namespace {
                return Some(obj);
            }
            let contents: Vec<Key> = self
                .store
                .all()
                .filter(|(k, _)| k.namespace == key.name)
                .map(|(k, _)| k.clone())
                .collect();
            for k in contents {
                self.delete_key(&k, false);
            }
            return self.finish_namespace(&key.name).or(Some(obj));
        }
        self.remove_now(key, orphan)
    }

    /// Removes an object now, then its dependents (or orphans them) and what its removal
    /// completes (a terminating namespace, a CRD's custom resources).
    fn remove_now(&mut self, key: &Key, orphan: bool) -> Option<Value> {
        let removed = self.store.remove(key)?;
        let uid = str_of(&removed, "/metadata/uid").to_string();
        let dependents: Vec<Key> = self
            .store
            .all()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter().any(|r| r["uid"].as_str() == Some(uid.as_str()))
                    })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for dk in dependents {
            let Some(mut dep) = self.store.get(&dk).cloned() else {
                continue;
            };
            if let Some(refs) = dep
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
            }
            let no_owners = dep["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|r| r.is_empty());
            if let Some(m) = dep["metadata"].as_object_mut()
                && no_owners
            {
                m.remove("ownerReferences");
            }
            if no_owners && !orphan {
                self.delete_key(&dk, false);
            } else {
                self.store.put(dk, dep, EventType::Modified);
            }
        }
        if key.group == CRD_GROUP && key.resource == CRDS {
            let group = str_of(&removed, "/spec/group").to_string();
            let plural = str_of(&removed, "/spec/names/plural").to_string();
            let crs: Vec<Key> = self
                .store
                .list(&group, &plural, None)
                .map(|(k, _)| k.clone())
                .collect();
            for k in crs {
                self.store.remove(&k);
            }
        }
        if !key.namespace.is_empty() {
            self.finish_namespace(&key.namespace);
        }
        Some(removed)
    }

    /// Removes a terminating namespace once it is empty.
    fn finish_namespace(&mut self, ns: &str) -> Option<Value> {
        let key = Key::new("", "namespaces", "", ns);
        let obj = self.store.get(&key)?;
        if !obj["metadata"]["deletionTimestamp"].is_string()
            || obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        {
            return None;
        }
        if self.store.all().any(|(k, _)| k.namespace == ns) {
            return None;
        }
        self.store.remove(&key)
    }
}

/// An autoscaling/v1 Scale for an object with `spec.replicas`.
/// A pod's quality-of-service class, as the API server computes it: `BestEffort` with
/// no requests or limits, `Guaranteed` when every container limits CPU and memory and
/// requests what it limits (requests default to limits), else `Burstable`.
fn qos_class(spec: &Value) -> &'static str {
    let same = |a: &str, b: &str| match (
        super::storage::parse_quantity(a),
        super::storage::parse_quantity(b),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    let mut any = false;
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten();
    for c in containers {
        let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        any |= requests.as_object().is_some_and(|m| !m.is_empty())
            || limits.as_object().is_some_and(|m| !m.is_empty());
        for r in ["cpu", "memory"] {
            let limit = limits[r].as_str();
            let request = requests[r].as_str().or(limit);
            guaranteed &= matches!((request, limit), (Some(q), Some(l)) if same(q, l));
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn validate_crd(info: &ResourceInfo, name: &str, obj: &mut Value) -> ApiResult<()> {
    let group = str_of(obj, "/spec/group").to_string();
    let plural = str_of(obj, "/spec/names/plural").to_string();
    let kind = str_of(obj, "/spec/names/kind").to_string();
    let invalid =
        |field: &str, detail: &str| Err(ApiError::invalid(info, name, field, detail.to_string()));
    if group.is_empty() || !group.contains('.') {
        return invalid(
            "spec.group",
            "Invalid value: should be a domain with at least one dot",
        );
    }
    if plural.is_empty() || !is_dns_label(&plural) {
        return invalid("spec.names.plural", "Required value: a lowercase DNS label");
    }
    if kind.is_empty() {
        return invalid("spec.names.kind", "Required value");
    }
    if name != format!("{plural}.{group}") {
        return invalid(
            "metadata.name",
            "Invalid value: must be spec.names.plural+\".\"+spec.group",
        );
    }
    let scope = str_of(obj, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        return invalid(
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        );
    }
    let versions = obj["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return invalid(
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        );
    }
    let storage: Vec<&Value> = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .collect();
    if storage.len() != 1 {
        return invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        );
    }
    let stored = storage
        .first()
        .map(|v| v["name"].clone())
        .unwrap_or(Value::Null);
    let now = now();
    obj["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "acceptedNames": obj["spec"]["names"].clone(),
        "storedVersions": [stored],
    });
    Ok(())
}

#[cfg(test)]
impl Cluster {
    /// An empty cluster with its built-in objects and no state folder, for unit tests.
    pub(crate) fn for_tests() -> Cluster {
        let mut c = Cluster::new(
            super::store::Store::new(),
            "t",
            "CA",
            std::path::Path::new("/nonexistent"),
        );
        c.bootstrap().unwrap();
        c
    }
}

#[cfg(test)]
#[path = "verbs_tests.rs"]
mod tests;

//! Names by which one object reaches another through cluster DNS, and what becomes of
//! them when namespaces are mapped.
//!
//! A workload finds a Service by a DNS name that spells the namespace: `db.shop`,
//! `db.shop.svc`, `db.shop.svc.cluster.local`, a pod's `db-0.db.shop.svc.cluster.local`
//! or an SRV `_pg._tcp.db.shop.svc`. When `shop` becomes `shop-qa` and `db` moves in
//! the same job, such a name in an env value, a command, a ConfigMap, a Secret or an
//! annotation must follow, or the copy keeps talking to the source. [`Rewriter`]
//! rewrites those it may and says where; [`scan`] finds what still points at the
//! source in any object, whatever the field, for the plan's isolation findings.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph;
use super::objects::ObjRef;
use super::transform::Mapping;

/// The annotation `kubectl apply` keeps the applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One DNS name found in a string: the service it names, the namespace it spells, and
/// where the namespace label sits in the string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mention {
    /// The whole host name as written.
    host: String,
    /// Byte offset of the host name in the scanned string.
    host_at: usize,
    service: String,
    namespace: String,
    /// Byte range of the namespace label in the scanned string.
    at: std::ops::Range<usize>,
}

/// Whether a byte may be part of a host name as written in configuration (SRV
/// labels start with `_`).
fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

/// The DNS names in `s` that name a Service of one of `namespaces`. A name with the
/// `svc` label (`db.shop.svc…`) is one for sure; the short `db.shop` counts only when
/// `known(namespace, service)` says such a Service exists, so `www.shop.com` or a Java
/// package is never taken for one.
fn mentions(
    s: &str,
    namespaces: &BTreeSet<&str>,
    known: &dyn Fn(&str, &str) -> bool,
) -> Vec<Mention> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !host_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && host_byte(bytes[i]) {
            i += 1;
        }
        let token = &s[start..i];
        // Labels with their byte offsets in `s`.
        let mut labels: Vec<(usize, &str)> = Vec::new();
        let mut off = start;
        for l in token.split('.') {
            labels.push((off, l));
            off += l.len() + 1;
        }
        // A trailing dot (an absolute name) leaves an empty last label.
        let last = labels.iter().rposition(|(_, l)| !l.is_empty()).unwrap_or(0);
        for k in 1..=last {
            let (at, ns) = labels[k];
            let service = labels[k - 1].1;
            if service.is_empty() || !namespaces.contains(ns) {
                continue;
            }
            let with_svc = labels.get(k + 1).is_some_and(|(_, l)| *l == "svc");
            let short = k == last && known(ns, service);
            if with_svc || short {
                out.push(Mention {
                    host: token.trim_end_matches('.').to_string(),
                    host_at: start,
                    service: service.to_ascii_lowercase(),
                    namespace: ns.to_string(),
                    at: at..at + ns.len(),
                });
                break;
            }
        }
    }
    out
}

/// Services that come along in a job, by source namespace: their DNS names may follow
/// the namespace mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Services(BTreeMap<String, BTreeSet<String>>);

impl Services {
    /// The Services among `objects` (captured documents, source namespaces).
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Services {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for o in objects {
            let r = ObjRef::of(o);
            if r.is("", "Service")
                && let Some(ns) = r.namespace
            {
                m.entry(ns).or_default().insert(r.name);
            }
        }
        Services(m)
    }

    /// Whether Service `name` of source namespace `ns` comes along.
    pub fn has(&self, ns: &str, name: &str) -> bool {
        self.0.get(ns).is_some_and(|s| s.contains(name))
    }
}

/// A DNS name that was rewritten, or that still points at the source, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// The field, as `spec.template.spec.containers[app].env[DB_HOST].value`.
    pub path: String,
    /// The host name as found.
    pub found: String,
    /// What it became, when it was rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<String>,
}

/// Rewrites the DNS names of mapped namespaces in one object's fields that carry
/// configuration: container `env` values, `command` and `args` (init and ephemeral
/// containers too), ConfigMap and Secret data, annotations (the pod template's too),
/// an ExternalName Service's target, and the object `kubectl apply` recorded.
pub struct Rewriter<'a> {
    map: &'a Mapping,
    /// Source namespaces that are renamed.
    from: BTreeSet<&'a str>,
}

impl<'a> Rewriter<'a> {
    pub fn new(map: &'a Mapping) -> Rewriter<'a> {
        let from = map
            .namespaces
            .iter()
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.as_str())
            .collect();
        Rewriter { map, from }
    }

    fn known(&self) -> impl Fn(&str, &str) -> bool + '_ {
        |ns, svc| self.map.services.has(ns, &svc.to_ascii_lowercase())
    }

    /// `s` with every name of a Service that comes along rewritten, and the names
    /// found (rewritten or not).
    fn string(&self, s: &str) -> (Option<String>, Vec<(String, Option<String>)>) {
        let found = mentions(s, &self.from, &self.known());
        if found.is_empty() {
            return (None, Vec::new());
        }
        let mut out = String::with_capacity(s.len() + 16);
        let mut last = 0;
        let mut seen = Vec::new();
        for m in found {
            let follows =
                !self.map.keep_references && self.map.services.has(&m.namespace, &m.service);
            if follows {
                let to = self.map.namespace(&m.namespace);
                out.push_str(&s[last..m.at.start]);
                out.push_str(to);
                last = m.at.end;
                let rel = m.at.start - m.host_at;
                let mut new = m.host.clone();
                new.replace_range(rel..rel + m.namespace.len(), to);
                seen.push((m.host, Some(new)));
            } else {
                seen.push((m.host, None));
            }
        }
        out.push_str(&s[last..]);
        let changed = seen.iter().any(|(_, n)| n.is_some());
        (changed.then_some(out), seen)
    }

    /// Rewrites the string at `v` (if it is one), recording each name under `path`.
    fn field(&self, v: &mut Value, path: &str, refs: &mut Vec<Reference>) {
        let Some(s) = v.as_str() else { return };
        let (new, seen) = self.string(s);
        for (found, rewritten) in seen {
            refs.push(Reference {
                path: path.to_string(),
                found,
                rewritten,
            });
        }
        if let Some(n) = new {
            *v = Value::String(n);
        }
    }

    fn annotations(&self, a: Option<&mut Value>, at: &str, refs: &mut Vec<Reference>) {
        let Some(a) = a.and_then(Value::as_object_mut) else {
            return;
        };
        // The object `kubectl apply` recorded is transformed as a whole by
        // `transform`, which comes here for it.
        for (k, v) in a.iter_mut().filter(|(k, _)| *k != LAST_APPLIED) {
            self.field(v, &format!("{at}[{k}]"), refs);
        }
    }

    fn containers(&self, spec: &mut Value, at: &str, refs: &mut Vec<Reference>) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
                continue;
            };
            for (n, c) in cs.iter_mut().enumerate() {
                let name = c["name"].as_str().map_or(n.to_string(), str::to_string);
                let cat = format!("{at}.{list}[{name}]");
                for key in ["command", "args"] {
                    if let Some(a) = c.get_mut(key).and_then(Value::as_array_mut) {
                        for (i, v) in a.iter_mut().enumerate() {
                            self.field(v, &format!("{cat}.{key}[{i}]"), refs);
                        }
                    }
                }
                if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                    for e in env.iter_mut() {
                        let var = e["name"].as_str().unwrap_or("").to_string();
                        if let Some(v) = e.get_mut("value") {
                            self.field(v, &format!("{cat}.env[{var}].value"), refs);
                        }
                    }
                }
            }
        }
    }

    /// Rewrites `obj` in place; returns every name found, rewritten or not.
    pub fn object(&self, obj: &mut Value, refs: &mut Vec<Reference>) {
        if self.from.is_empty() {
            return;
        }
        let r = ObjRef::of(obj);
        self.annotations(
            obj["metadata"].get_mut("annotations"),
            "metadata.annotations",
            refs,
        );
        let spec_path = match (r.group.as_str(), r.kind.as_str()) {
            ("", "Pod") => Some("/spec"),
            ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
            _ if graph::pod_spec(obj).is_some() => Some("/spec/template/spec"),
            _ => None,
        };
        if let Some(p) = spec_path {
            let dotted = p.trim_start_matches('/').replace('/', ".");
            if let Some(tpl) = p.strip_suffix("/spec")
                && !tpl.is_empty()
                && let Some(meta) = obj.pointer_mut(&format!("{tpl}/metadata"))
            {
                let at = format!(
                    "{}.metadata.annotations",
                    tpl.trim_start_matches('/').replace('/', ".")
                );
                self.annotations(meta.get_mut("annotations"), &at, refs);
            }
            if let Some(spec) = obj.pointer_mut(p) {
                self.containers(spec, &dotted, refs);
            }
        }
        match (r.group.as_str(), r.kind.as_str()) {
            ("", "ConfigMap") => {
                if let Some(d) = obj.get_mut("data").and_then(Value::as_object_mut) {
                    for (k, v) in d.iter_mut() {
                        self.field(v, &format!("data[{k}]"), refs);
                    }
                }
            }
            ("", "Secret") => {
                if let Some(d) = obj.get_mut("stringData").and_then(Value::as_object_mut) {
                    for (k, v) in d.iter_mut() {
                        self.field(v, &format!("stringData[{k}]"), refs);
                    }
                }
                if let Some(d) = obj.get_mut("data").and_then(Value::as_object_mut) {
                    for (k, v) in d.iter_mut() {
                        self.secret_value(v, &format!("data[{k}]"), refs);
                    }
                }
            }
            ("", "Service") => {
                if let Some(v) = obj.pointer_mut("/spec/externalName") {
                    self.field(v, "spec.externalName", refs);
                }
            }
            _ => {}
        }
    }

    /// A Secret's value is base64: text values are read and written back encoded.
    fn secret_value(&self, v: &mut Value, path: &str, refs: &mut Vec<Reference>) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let Some(text) = v
            .as_str()
            .and_then(|s| b64.decode(s).ok())
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return;
        };
        let mut plain = Value::String(text);
        let before = refs.len();
        self.field(&mut plain, path, refs);
        // Secret values are not shown in the plan: only that a name was found.
        for r in &mut refs[before..] {
            r.path = format!("{path} (secret value)");
        }
        if refs[before..].iter().any(|r| r.rewritten.is_some())
            && let Some(s) = plain.as_str()
        {
            *v = Value::String(b64.encode(s));
        }
    }
}

/// The strings of an object that carry configuration a workload reads, with their
/// paths: container `env` values, `command` and `args`, and ConfigMap data.
fn config_strings(obj: &Value) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(spec) = graph::pod_spec(obj) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                for key in ["command", "args"] {
                    for (i, v) in c[key].as_array().into_iter().flatten().enumerate() {
                        if let Some(s) = v.as_str() {
                            out.push((format!("{list}[{name}].{key}[{i}]"), s));
                        }
                    }
                }
                for e in c["env"].as_array().into_iter().flatten() {
                    if let Some(s) = e["value"].as_str() {
                        let var = e["name"].as_str().unwrap_or("");
                        out.push((format!("{list}[{name}].env[{var}]"), s));
                    }
                }
            }
        }
    }
    if ObjRef::of(obj).is("", "ConfigMap") {
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            if let Some(s) = v.as_str() {
                out.push((format!("data[{k}]"), s));
            }
        }
    }
    out
}

/// The host of a value that is only a host, a `host:port` or a URL (`redis`,
/// `redis:6379`, `redis://:pw@redis:6379/0`).
fn bare_host(value: &str) -> &str {
    let v = value.trim();
    let v = v.split_once("://").map_or(v, |(_, rest)| rest);
    let v = v.rsplit_once('@').map_or(v, |(_, rest)| rest);
    v.split([':', '/', '?']).next().unwrap_or("")
}

/// The Services `obj` reaches by name in its configuration (env values, commands and
/// arguments, ConfigMap data): DNS
/// names of Services of `namespaces` (`db.shop.svc…`, or `db.shop` when it exists),
/// and, in env values, a Service of its own namespace named alone (`DB_HOST=db`,
/// `redis://redis:6379`). `exists(namespace, name)` says which Services exist; each
/// comes with the field that names it.
pub fn services_named(
    obj: &Value,
    namespaces: &BTreeSet<&str>,
    exists: &dyn Fn(&str, &str) -> bool,
) -> Vec<(ObjRef, String)> {
    let own = ObjRef::of(obj).namespace;
    let mut out = Vec::new();
    for (path, s) in config_strings(obj) {
        for m in mentions(s, namespaces, exists) {
            if exists(&m.namespace, &m.service) {
                out.push((
                    ObjRef::new("", "Service", Some(&m.namespace), &m.service),
                    path.clone(),
                ));
            }
        }
        let host = bare_host(s);
        if path.contains(".env[")
            && let Some(ns) = own.as_deref()
            && !host.is_empty()
            && !host.contains('.')
            && exists(ns, host)
        {
            out.push((ObjRef::new("", "Service", Some(ns), host), path));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Something in an object of the target that still points at the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The object as it is (or will be) on the target.
    pub object: ObjRef,
    /// The field, as a JSON path (`spec.template.spec.containers[0].env[1].value`).
    pub path: String,
    /// What points at the source, in words.
    pub message: String,
    /// The command or mapping that fixes it.
    pub fix: String,
}

/// What in `obj` (an object as the target receives it) still points at the source:
/// a DNS name or a `namespace` field of a renamed source namespace, a service account
/// of one in an RBAC subject, or the source cluster's API server address. Every
/// string of the object is read, whatever its kind.
pub fn scan(obj: &Value, map: &Mapping) -> Vec<Finding> {
    let from: BTreeSet<&str> = map
        .namespaces
        .iter()
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.as_str())
        .collect();
    let target = ObjRef::of(obj);
    let mut out = Vec::new();
    let server = map
        .source_server
        .as_deref()
        .map(|s| s.trim_end_matches('/'))
        .filter(|s| !s.is_empty());
    let known = |ns: &str, svc: &str| map.services.has(ns, &svc.to_ascii_lowercase());
    let mut walk = Walk {
        from: &from,
        map,
        server,
        known: &known,
        target: &target,
        out: &mut out,
    };
    if target.is("", "Secret") && obj["data"].is_object() {
        // Secret values are base64: their text is what a workload reads.
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut plain = obj.clone();
        if let Some(d) = plain["data"].as_object_mut() {
            for v in d.values_mut() {
                if let Some(text) = v
                    .as_str()
                    .and_then(|s| b64.decode(s).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    *v = Value::String(text);
                }
            }
        }
        walk.value(&plain, &mut String::new(), None);
    } else {
        walk.value(obj, &mut String::new(), None);
    }
    out
}

/// What [`scan`] can find anything by, computed once for many objects: the names of
/// the renamed source namespaces and the source's API server. Every finding spells one
/// of them, so an object whose text holds none has none, and need not be decoded.
pub struct Needles<'a> {
    words: Vec<&'a str>,
}

impl<'a> Needles<'a> {
    pub fn of(map: &'a Mapping) -> Needles<'a> {
        let mut words: Vec<&str> = map
            .namespaces
            .iter()
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.as_str())
            .collect();
        words.extend(
            map.source_server
                .as_deref()
                .map(|s| s.trim_end_matches('/'))
                .filter(|s| !s.is_empty()),
        );
        Needles { words }
    }

    /// Whether [`scan`] may find something in an object whose JSON text is `text`. A
    /// Secret's values are base64, whose text hides what they say: it may always.
    pub fn may_find(&self, text: &str, secret: bool) -> bool {
        !self.words.is_empty() && (secret || self.words.iter().any(|w| text.contains(w)))
    }
}

struct Walk<'a> {
    from: &'a BTreeSet<&'a str>,
    map: &'a Mapping,
    server: Option<&'a str>,
    known: &'a dyn Fn(&str, &str) -> bool,
    target: &'a ObjRef,
    out: &'a mut Vec<Finding>,
}

impl Walk<'_> {
    fn push(&mut self, path: &str, message: String, fix: String) {
        self.out.push(Finding {
            object: self.target.clone(),
            path: path.to_string(),
            message,
            fix,
        });
    }

    fn value(&mut self, v: &Value, path: &mut String, key: Option<&str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    // Fields the server owns say nothing about where the copy points.
                    if path.is_empty() && k == "status" {
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    self.value(v, path, Some(k));
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.value(v, path, key);
                    path.truncate(len);
                }
            }
            Value::String(s) => self.string(s, path, key),
            _ => {}
        }
    }

    fn string(&mut self, s: &str, path: &str, key: Option<&str>) {
        let to = |ns: &str| self.map.namespace(ns).to_string();
        if key == Some("namespace") && self.from.contains(s) {
            let msg = format!("names the source namespace {s} (the copy is in {})", to(s));
            self.push(
                path,
                msg,
                format!(
                    "edit the field to {} after the restore, or leave the object out",
                    to(s)
                ),
            );
            return;
        }
        if let Some(sa) = s.strip_prefix("system:serviceaccounts:")
            && self.from.contains(sa)
        {
            let msg = format!("grants the service accounts of the source namespace {sa}");
            self.push(
                path,
                msg,
                format!("make the subject system:serviceaccounts:{}", to(sa)),
            );
            return;
        }
        if let Some(rest) = s.strip_prefix("system:serviceaccount:")
            && let Some((ns, _)) = rest.split_once(':')
            && self.from.contains(ns)
        {
            let msg = format!("grants a service account of the source namespace {ns}");
            self.push(path, msg, format!("name the account in {}", to(ns)));
            return;
        }
        if let Some(server) = self.server
            && s.contains(server)
        {
            let msg = format!("names the source cluster's API server {server}");
            self.push(
                path,
                msg,
                "point it at the target's API server (kubernetes.default.svc from inside a pod)"
                    .into(),
            );
        }
        for m in mentions(s, self.from, self.known) {
            let to = to(&m.namespace);
            let (message, fix) = if self.map.services.has(&m.namespace, &m.service) {
                (
                    format!(
                        "{} still names the source's {}/{}",
                        m.host, m.namespace, m.service
                    ),
                    format!("restore without --keep-references to point it at {to}"),
                )
            } else {
                (
                    format!(
                        "{} names {}/{}, which does not come along: the copy reaches the source",
                        m.host, m.namespace, m.service
                    ),
                    format!(
                        "include the Service {} of {} in the job, or edit the value",
                        m.service, m.namespace
                    ),
                )
            };
            self.push(path, message, fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(keep: bool) -> Mapping {
        let objs = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis-master", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cassandra", "namespace": "shop"}}),
        ];
        Mapping {
            namespaces: [("shop".to_string(), "shop-qa".to_string())].into(),
            keep_references: keep,
            services: Services::of(&objs),
            ..Mapping::default()
        }
    }

    #[test]
    fn every_form_of_a_service_name_is_found_and_nothing_else() {
        let m = map(false);
        let from: BTreeSet<&str> = ["shop"].into();
        let known = |ns: &str, s: &str| m.services.has(ns, s);
        let hosts = |s: &str| {
            mentions(s, &from, &known)
                .into_iter()
                .map(|m| m.host)
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts("redis-master.shop"), ["redis-master.shop"]);
        assert_eq!(
            hosts("redis://redis-master.shop:6379/0"),
            ["redis-master.shop"]
        );
        assert_eq!(hosts("redis-master.shop.svc"), ["redis-master.shop.svc"]);
        assert_eq!(
            hosts(
                "cassandra-0.cassandra.shop.svc.cluster.local,cassandra-1.cassandra.shop.svc.cluster.local."
            ),
            [
                "cassandra-0.cassandra.shop.svc.cluster.local",
                "cassandra-1.cassandra.shop.svc.cluster.local"
            ]
        );
        assert_eq!(
            hosts("_redis._tcp.redis-master.shop.svc.cluster.local"),
            ["_redis._tcp.redis-master.shop.svc.cluster.local"]
        );
        // A service that is not captured, but spelled with `svc`: found.
        assert_eq!(
            hosts("api.shop.svc.cluster.local"),
            ["api.shop.svc.cluster.local"]
        );
        // Not service names: another domain, an unknown short name, another namespace.
        assert!(hosts("www.shop.com shop.example.org api.shop x.shopping.svc").is_empty());
        assert!(hosts("redis-master.other.svc shop").is_empty());
    }

    #[test]
    fn env_commands_configmaps_secrets_and_annotations_follow() {
        let m = map(false);
        let mut sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "cassandra", "namespace": "shop",
                "annotations": {"note": "seeds at cassandra-0.cassandra.shop.svc.cluster.local"}},
            "spec": {"template": {"metadata": {"annotations": {"x": "redis-master.shop"}},
                "spec": {"initContainers": [{"name": "wait", "command": ["sh", "-c", "until nc -z redis-master.shop.svc 6379; do sleep 1; done"]}],
                "containers": [{"name": "c", "env": [
                    {"name": "SEEDS", "value": "cassandra-0.cassandra.shop.svc.cluster.local"},
                    {"name": "API", "value": "http://api.shop.svc:8080"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "args": ["--master=redis-master.shop.svc.cluster.local:6379"]}]}}}});
        let mut refs = Vec::new();
        Rewriter::new(&m).object(&mut sts, &mut refs);
        let spec = &sts["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["env"][0]["value"],
            "cassandra-0.cassandra.shop-qa.svc.cluster.local"
        );
        assert_eq!(
            spec["containers"][0]["env"][1]["value"], "http://api.shop.svc:8080",
            "api does not come along"
        );
        assert_eq!(
            spec["containers"][0]["args"][0],
            "--master=redis-master.shop-qa.svc.cluster.local:6379"
        );
        assert_eq!(
            spec["initContainers"][0]["command"][2],
            "until nc -z redis-master.shop-qa.svc 6379; do sleep 1; done"
        );
        assert_eq!(
            sts["spec"]["template"]["metadata"]["annotations"]["x"],
            "redis-master.shop-qa"
        );
        assert_eq!(
            sts["metadata"]["annotations"]["note"],
            "seeds at cassandra-0.cassandra.shop-qa.svc.cluster.local"
        );
        let paths: Vec<_> = refs
            .iter()
            .map(|r| (r.path.as_str(), r.rewritten.is_some()))
            .collect();
        assert!(
            paths.contains(&("spec.template.spec.containers[c].env[SEEDS].value", true)),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("spec.template.spec.containers[c].env[API].value", false)),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("spec.template.spec.initContainers[wait].command[2]", true)),
            "{paths:?}"
        );

        let b64 = base64::engine::general_purpose::STANDARD;
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"},
            "data": {"url": b64.encode("redis://:pw@redis-master.shop.svc.cluster.local:6379"), "bin": b64.encode([0xff, 0xfe])}});
        let mut refs = Vec::new();
        Rewriter::new(&m).object(&mut secret, &mut refs);
        let url = b64.decode(secret["data"]["url"].as_str().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(url).unwrap(),
            "redis://:pw@redis-master.shop-qa.svc.cluster.local:6379"
        );
        assert_eq!(refs.len(), 1);

        // With --keep-references nothing changes, and everything is reported.
        let keep = map(true);
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop-qa"},
            "data": {"redis.conf": "replicaof redis-master.shop.svc.cluster.local 6379\n"}});
        let before = cm.clone();
        let mut refs = Vec::new();
        Rewriter::new(&keep).object(&mut cm, &mut refs);
        assert_eq!(cm, before);
        assert_eq!(refs.len(), 1);
        let found = scan(&cm, &keep);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].fix.contains("--keep-references"), "{found:?}");
        // Rewritten: nothing found.
        let mut refs = Vec::new();
        Rewriter::new(&m).object(&mut cm, &mut refs);
        assert!(scan(&cm, &m).is_empty());
    }

    #[test]
    fn services_named_in_configuration_are_found() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [
                {"name": "REDIS_URL", "value": "redis://:pw@redis-master:6379/0"},
                {"name": "DB", "value": "postgres.shop.svc.cluster.local"},
                {"name": "MODE", "value": "redis-master-mode"},
                {"name": "OTHER", "value": "api"}]}]}}}});
        let exists =
            |ns: &str, name: &str| ns == "shop" && ["redis-master", "postgres"].contains(&name);
        let found = services_named(&d, &["shop"].into(), &exists);
        let names: Vec<_> = found
            .iter()
            .map(|(r, p)| (r.name.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("postgres", "containers[c].env[DB]"),
                ("redis-master", "containers[c].env[REDIS_URL]")
            ]
        );
    }

    #[test]
    fn the_scan_finds_namespaces_subjects_and_the_source_server() {
        let mut m = map(false);
        m.source_server = Some("https://api.prod.example.com:6443/".into());
        let cr = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "m", "namespace": "shop-qa"},
            "spec": {"namespaceSelector": {"matchNames": ["shop"]}, "endpoints": [{"port": "web"}],
                "jobLabel": "https://api.prod.example.com:6443/x"},
            "status": {"namespace": "shop"}});
        let f = scan(&cr, &m);
        assert_eq!(
            f.len(),
            1,
            "matchNames is a list, not a namespace field: {f:?}"
        );
        assert!(f[0].message.contains("API server"));
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "shop-qa"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:shop"},
                         {"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]});
        let f = scan(&rb, &m);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].path, "subjects[0].name");
        assert_eq!(f[1].path, "subjects[1].namespace");
    }
}

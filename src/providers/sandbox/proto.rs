//! The Kubernetes protobuf encoding of request bodies, read into the JSON the rest of
//! the sandbox works on: what typed client-go clients send (`kubectl create
//! deployment|service|job|cronjob|ingress|quota|pdb|priorityclass|secret|configmap|…`,
//! `kubectl autoscale`, `kubectl auth`, `kubectl create token`, helm's release
//! storage). The field numbers come from the generated [`schema`] (the Go types of
//! k8s.io/api); the JSON is what the API server's decoding into Go structs and encoding
//! with their `json` tags gives.
//!
//! Owns protobuf decoding. Anything the schema does not fully describe is refused (the
//! caller answers 415), never half-read.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::proto_schema as schema;

const MAGIC: &[u8] = b"k8s\0";

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos = pos.checked_add(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                let b = buf.get(pos..end)?;
                pos = end;
                Wire::Bytes(b)
            }
            5 => {
                pos = pos.checked_add(4)?;
                Wire::Fixed
            }
            _ => return None,
        };
        if pos > buf.len() {
            return None;
        }
        out.push((key >> 3, wire));
    }
    Some(out)
}

fn string(w: &Wire<'_>) -> Option<String> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

fn bytes<'a>(w: &Wire<'a>) -> Option<&'a [u8]> {
    match w {
        Wire::Bytes(b) => Some(b),
        _ => None,
    }
}

/// One entry of a `map<string, string>` (or `map<string, bytes>` when `binary`, as base64).
fn map_entry(w: &Wire<'_>, binary: bool, into: &mut Map<String, Value>) -> Option<()> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => key = string(&f)?,
            2 if binary => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(bytes(&f)?))
            }
            2 => value = json!(string(&f)?),
            _ => return None,
        }
    }
    into.insert(key, value);
    Some(())
}

fn owner_reference(w: &Wire<'_>) -> Option<Value> {
    let mut o = Map::new();
    for (n, f) in fields(bytes(w)?)? {
        let (k, v) = match (n, &f) {
            (1, _) => ("kind", json!(string(&f)?)),
            (3, _) => ("name", json!(string(&f)?)),
            (4, _) => ("uid", json!(string(&f)?)),
            (5, _) => ("apiVersion", json!(string(&f)?)),
            (6, Wire::Varint(b)) => ("controller", json!(*b != 0)),
            (7, Wire::Varint(b)) => ("blockOwnerDeletion", json!(*b != 0)),
            _ => return None,
        };
        o.insert(k.into(), v);
    }
    Some(Value::Object(o))
}

fn object_meta(w: &Wire<'_>) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(bytes(w)?)? {
        match (n, &f) {
            (1, _) => drop(m.insert("name".into(), json!(string(&f)?))),
            (2, _) => drop(m.insert("generateName".into(), json!(string(&f)?))),
            (3, _) => drop(m.insert("namespace".into(), json!(string(&f)?))),
            (5, _) => drop(m.insert("uid".into(), json!(string(&f)?))),
            (6, _) => drop(m.insert("resourceVersion".into(), json!(string(&f)?))),
            // selfLink, generation, timestamps, grace period, managed fields: server-set.
            (4 | 7 | 8 | 9 | 10 | 17, _) => {}
            (11, _) => map_entry(&f, false, &mut labels)?,
            (12, _) => map_entry(&f, false, &mut annotations)?,
            (13, _) => owners.push(owner_reference(&f)?),
            (14, _) => finalizers.push(json!(string(&f)?)),
            _ => return None,
        }
    }
    // Every string of ObjectMeta is `omitempty`; protobuf writes them all.
    m.retain(|_, v| v.as_str() != Some(""));
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// How a field's protobuf value becomes JSON (the generated schema names one per field).
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    /// int32 or int64 (negative values arrive sign-extended to 64 bits).
    Int,
    /// `resource.Quantity`: a message holding the string form.
    Quantity,
    /// `intstr.IntOrString`: a message of type, int and string.
    IntOrString,
    /// `metav1.ObjectMeta`, read by [`object_meta`].
    Meta,
    MapStr,
    MapBytes,
    MapQuantity,
    /// `map[string][]string` (the `extra` of user infos).
    MapStrings,
    /// Another message of the schema, by name.
    Msg(&'static str),
    /// Set by the server (a root's status): not read.
    Skip,
    /// A type the schema's generator did not know: a body that sets it is refused.
    Unknown,
}

/// One field of a message: protobuf number, JSON name, type, flags ([`REP`], [`PTR`],
/// [`OMIT`], [`INLINE`]).
#[derive(Debug, Clone, Copy)]
pub struct Field(pub u64, pub &'static str, pub Ty, pub u8);

/// A repeated field (a JSON array).
pub const REP: u8 = 1;
/// A pointer in Go: present means present, even when zero.
pub const PTR: u8 = 2;
/// `omitempty` in Go: a zero value is left out of the JSON.
pub const OMIT: u8 = 4;
/// An embedded struct whose fields JSON holds in the parent.
pub const INLINE: u8 = 8;

/// How deep messages may nest (the schema has no cycles; this bounds a hostile body).
const MAX_DEPTH: usize = 32;

/// Why a protobuf body was not read; the server answers 415 with it.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("the body is not a Kubernetes protobuf envelope")]
    NotAnEnvelope,
    #[error("the protobuf body is malformed in {0}")]
    Malformed(&'static str),
    #[error("the sandbox does not read {kind} ({api_version}) as protobuf")]
    Kind { api_version: String, kind: String },
    #[error("the sandbox does not know field {number} of {message}")]
    Field { message: &'static str, number: u64 },
    #[error("the sandbox does not read {message}.{field} as protobuf")]
    Type {
        message: &'static str,
        field: &'static str,
    },
    #[error("the protobuf body nests deeper than {MAX_DEPTH} messages")]
    TooDeep,
}

impl Unreadable {
    /// The message for the client: what could not be read, and what to do.
    pub fn explain(&self) -> String {
        format!(
            "{self}: send JSON (kubectl: --output-version is not needed; use -f with a JSON or YAML manifest)"
        )
    }
}

fn varint_of(w: &Wire<'_>) -> Option<u64> {
    match w {
        Wire::Varint(v) => Some(*v),
        _ => None,
    }
}

/// A `resource.Quantity` (`{1: string}`).
fn quantity(w: &Wire<'_>) -> Option<Value> {
    let mut q = String::new();
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => q = string(&f)?,
            _ => return None,
        }
    }
    Some(json!(q))
}

/// An `intstr.IntOrString` (`{1: type, 2: intVal, 3: strVal}`).
fn int_or_string(w: &Wire<'_>) -> Option<Value> {
    let (mut kind, mut int, mut text) = (0, 0i64, String::new());
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => kind = varint_of(&f)?,
            2 => int = varint_of(&f)? as i64,
            3 => text = string(&f)?,
            _ => return None,
        }
    }
    Some(if kind == 1 { json!(text) } else { json!(int) })
}

/// A map entry's value of a `map[string][]string` (an `ExtraValue`: `{1: items}`).
fn strings(w: &Wire<'_>) -> Option<Value> {
    let mut items = Vec::new();
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => items.push(json!(string(&f)?)),
            _ => return None,
        }
    }
    Some(Value::Array(items))
}

/// One entry of a map field into `into`, its value read by `value`.
fn entry(
    w: &Wire<'_>,
    into: &mut Map<String, Value>,
    value: fn(&Wire<'_>) -> Option<Value>,
) -> Option<()> {
    let mut key = String::new();
    let mut v = None;
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => key = string(&f)?,
            2 => v = Some(value(&f)?),
            _ => return None,
        }
    }
    into.insert(key, v.unwrap_or(Value::Null));
    Some(())
}

/// Whether Go's `omitempty` leaves `v` out.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        Value::Object(_) => false,
    }
}

/// Reads the message `name` of the schema into its JSON form, as the API server's
/// decoding into Go structs and encoding to JSON would.
fn message(name: &'static str, raw: &[u8], depth: usize) -> Result<Map<String, Value>, Unreadable> {
    if depth > MAX_DEPTH {
        return Err(Unreadable::TooDeep);
    }
    let bad = || Unreadable::Malformed(name);
    let schema = schema::message(name).ok_or(Unreadable::Type {
        message: name,
        field: "",
    })?;
    let mut out = Map::new();
    for (n, w) in fields(raw).ok_or_else(bad)? {
        let &Field(_, key, ty, flags) =
            schema.iter().find(|f| f.0 == n).ok_or(Unreadable::Field {
                message: name,
                number: n,
            })?;
        let map = |value: fn(&Wire<'_>) -> Option<Value>, out: &mut Map<String, Value>| {
            let m = out.entry(key).or_insert_with(|| json!({}));
            match m.as_object_mut() {
                Some(m) => entry(&w, m, value),
                None => None,
            }
        };
        let v = match ty {
            Ty::Skip => continue,
            Ty::Unknown => {
                return Err(Unreadable::Type {
                    message: name,
                    field: key,
                });
            }
            Ty::MapStr => {
                map(|f| string(f).map(Value::String), &mut out).ok_or_else(bad)?;
                continue;
            }
            Ty::MapBytes => {
                map(|f| bytes(f).map(base64_value), &mut out).ok_or_else(bad)?;
                continue;
            }
            Ty::MapQuantity => {
                map(quantity, &mut out).ok_or_else(bad)?;
                continue;
            }
            Ty::MapStrings => {
                map(strings, &mut out).ok_or_else(bad)?;
                continue;
            }
            // Packed repeated numbers (proto2 writes them unpacked; both are read).
            Ty::Int | Ty::Bool if flags & REP != 0 && matches!(w, Wire::Bytes(_)) => {
                let b = bytes(&w).ok_or_else(bad)?;
                let mut pos = 0;
                while pos < b.len() {
                    let v = varint(b, &mut pos).ok_or_else(bad)?;
                    let v = if matches!(ty, Ty::Bool) {
                        json!(v != 0)
                    } else {
                        json!(v as i64)
                    };
                    push(&mut out, key, v);
                }
                continue;
            }
            Ty::Str => string(&w).map(Value::String),
            Ty::Bool => varint_of(&w).map(|v| json!(v != 0)),
            Ty::Int => varint_of(&w).map(|v| json!(v as i64)),
            Ty::Quantity => quantity(&w),
            Ty::IntOrString => int_or_string(&w),
            Ty::Meta => object_meta(&w),
            Ty::Msg(m) => Some(Value::Object(message(
                m,
                bytes(&w).ok_or_else(bad)?,
                depth + 1,
            )?)),
        }
        .ok_or_else(bad)?;
        if flags & INLINE != 0 {
            if let Value::Object(fields) = v {
                out.extend(fields);
            }
        } else if flags & REP != 0 {
            push(&mut out, key, v);
        } else {
            out.insert(key.to_string(), v);
        }
    }
    for &Field(_, key, _, flags) in schema {
        if flags & OMIT != 0 && flags & PTR == 0 && out.get(key).is_some_and(is_empty) {
            out.remove(key);
        }
    }
    Ok(out)
}

fn base64_value(b: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(b))
}

fn push(obj: &mut Map<String, Value>, key: &str, item: Value) {
    match obj.get_mut(key).and_then(Value::as_array_mut) {
        Some(a) => a.push(item),
        None => drop(obj.insert(key.to_string(), json!([item]))),
    }
}

/// Decodes a protobuf request body (a `k8s\0` envelope) into the object's JSON, for the
/// kinds of [`schema::root`]; anything the schema does not fully describe is refused,
/// never half-read.
pub fn decode(body: &[u8]) -> Result<Value, Unreadable> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Unreadable::NotAnEnvelope)?;
    let bad = || Unreadable::Malformed("the envelope");
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(envelope).ok_or_else(bad)? {
        match n {
            1 => {
                for (m, t) in fields(bytes(&f).ok_or_else(bad)?).ok_or_else(bad)? {
                    match m {
                        1 => api_version = string(&t).ok_or_else(bad)?,
                        2 => kind = string(&t).ok_or_else(bad)?,
                        _ => return Err(bad()),
                    }
                }
            }
            2 => raw = bytes(&f).ok_or_else(bad)?,
            // Content encoding and type: only plain (empty) is sent by clients.
            3 | 4 => {
                if !string(&f).ok_or_else(bad)?.is_empty() {
                    return Err(bad());
                }
            }
            _ => return Err(bad()),
        }
    }
    let Some(root) = schema::root(&api_version, &kind) else {
        return Err(Unreadable::Kind { api_version, kind });
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    obj.extend(message(root, raw, 0)?);
    Ok(Value::Object(obj))
}

/// Decodes a protobuf DeleteOptions into its JSON form (propagation, orphaning,
/// preconditions and dryRun; the grace period is ignored as the sandbox has no use
/// for it).
pub fn decode_delete_options(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(MAGIC)?;
    let mut raw: &[u8] = &[];
    let mut kind = String::new();
    for (n, f) in fields(envelope)? {
        match n {
            1 => {
                for (m, t) in fields(bytes(&f)?)? {
                    if m == 2 {
                        kind = string(&t)?;
                    }
                }
            }
            2 => raw = bytes(&f)?,
            _ => {}
        }
    }
    if kind != "DeleteOptions" {
        return None;
    }
    let mut out = Map::new();
    let mut preconditions = Map::new();
    for (n, f) in fields(raw)? {
        match (n, &f) {
            (2, _) => {
                for (m, p) in fields(bytes(&f)?)? {
                    match m {
                        1 => preconditions.insert("uid".into(), json!(string(&p)?)),
                        2 => preconditions.insert("resourceVersion".into(), json!(string(&p)?)),
                        _ => return None,
                    };
                }
            }
            (3, Wire::Varint(b)) => drop(out.insert("orphanDependents".into(), json!(*b != 0))),
            (4, _) => drop(out.insert("propagationPolicy".into(), json!(string(&f)?))),
            (5, _) => push(&mut out, "dryRun", json!(string(&f)?)),
            (1 | 6 | 7, _) => {}
            _ => return None,
        }
    }
    if !preconditions.is_empty() {
        out.insert("preconditions".into(), Value::Object(preconditions));
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        [
            varint_bytes((n << 3) | 2),
            varint_bytes(payload.len() as u64),
            payload.to_vec(),
        ]
        .concat()
    }

    fn number(n: u64, v: u64) -> Vec<u8> {
        [varint_bytes(n << 3), varint_bytes(v)].concat()
    }

    fn body(api_version: &str, kind: &str, object: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, object)].concat()
    }

    #[test]
    fn decodes_a_secret_and_a_binding() {
        let label = [field(1, b"owner"), field(2, b"helm")].concat();
        let meta = [field(1, b"rel"), field(11, &label)].concat();
        let entry = [field(1, b"release"), field(2, b"\x01\x02")].concat();
        let secret = [
            field(1, &meta),
            field(2, &entry),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        assert_eq!(
            decode(&body("v1", "Secret", &secret)).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                   "metadata": {"name": "rel", "labels": {"owner": "helm"}},
                   "data": {"release": "AQI="}})
        );
        let subject = [
            field(1, b"User"),
            field(2, b""),
            field(3, b"dev"),
            field(4, b""),
        ]
        .concat();
        let role_ref = [field(1, b""), field(2, b"ClusterRole"), field(3, b"edit")].concat();
        let binding = [
            field(1, &field(1, b"b")),
            field(2, &subject),
            field(3, &role_ref),
        ]
        .concat();
        assert_eq!(
            decode(&body(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                &binding
            ))
            .unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "b"}, "subjects": [{"kind": "User", "name": "dev"}],
                   "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "edit"}})
        );
    }

    /// A Deployment as `kubectl create deployment web --image=nginx --replicas=0 --port=80`
    /// writes it: every non-pointer field present, empty or not.
    #[test]
    fn decodes_a_deployment_as_the_json_form_would_read() {
        let labels = field(11, &[field(1, b"app"), field(2, b"web")].concat());
        let port = [
            field(1, b""),
            number(2, 0),
            number(3, 80),
            field(4, b"TCP"),
            field(5, b""),
        ]
        .concat();
        let container = [
            field(1, b"nginx"),
            field(2, b"nginx"),
            field(5, b""),
            field(6, &port),
            field(8, b""),
            field(13, b""),
            field(14, b""),
            number(16, 0),
            number(17, 0),
            number(18, 0),
            field(20, b""),
        ]
        .concat();
        let pod_spec = [
            field(2, &container),
            field(3, b""),
            field(6, b""),
            number(11, 0),
        ]
        .concat();
        let template = [field(1, &labels), field(2, &pod_spec)].concat();
        let selector = field(1, &[field(1, b"app"), field(2, b"web")].concat());
        let strategy = field(1, b"");
        let spec = [
            number(1, 0),
            field(2, &selector),
            field(3, &template),
            field(4, &strategy),
            number(5, 0),
            number(7, 0),
        ]
        .concat();
        let deployment = [
            field(1, &[field(1, b"web"), labels.clone()].concat()),
            field(2, &spec),
            field(3, b""),
        ]
        .concat();
        assert_eq!(
            decode(&body("apps/v1", "Deployment", &deployment)).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            }})
        );
    }

    #[test]
    fn services_quotas_and_volumes_read_their_special_types() {
        let target = [number(1, 1), number(2, 0), field(3, b"http")].concat();
        let port = [field(1, b"web"), number(3, 443), field(4, &target)].concat();
        // A negative int32 arrives sign-extended to ten bytes.
        let spec = [
            field(1, &port),
            field(4, b"ClusterIP"),
            number(12, (-1i64) as u64),
        ]
        .concat();
        let v = decode(&body(
            "v1",
            "Service",
            &[field(1, &field(1, b"s")), field(2, &spec)].concat(),
        ))
        .unwrap();
        assert_eq!(
            v["spec"],
            json!({"ports": [{"name": "web", "port": 443, "targetPort": "http"}],
                   "type": "ClusterIP", "healthCheckNodePort": -1})
        );
        let hard = field(1, &[field(1, b"pods"), field(2, &field(1, b"10"))].concat());
        let v = decode(&body(
            "v1",
            "ResourceQuota",
            &[field(1, &field(1, b"q")), field(2, &hard)].concat(),
        ))
        .unwrap();
        assert_eq!(v["spec"], json!({"hard": {"pods": "10"}}));
        // A volume's source is inlined into the volume, as its JSON form has it.
        let volume = [field(1, b"data"), field(2, &field(10, &field(1, b"claim")))].concat();
        let pod = [field(1, &field(1, b"p")), field(2, &field(1, &volume))].concat();
        let v = decode(&body("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}])
        );
    }

    #[test]
    fn what_the_schema_does_not_describe_is_refused() {
        assert!(matches!(
            decode(&body("v1", "Event", b"")),
            Err(Unreadable::Kind { .. })
        ));
        // Field 99 of a ConfigMap.
        let unknown = [field(1, &field(1, b"c")), field(99, b"x")].concat();
        assert!(matches!(
            decode(&body("v1", "ConfigMap", &unknown)),
            Err(Unreadable::Field { number: 99, .. })
        ));
        // A scalar where a message belongs.
        let bad = [field(1, &field(1, b"c")), number(2, 5)].concat();
        assert!(decode(&body("apps/v1", "Deployment", &bad)).is_err());
        assert!(decode(b"k8s\0\xff\xff").is_err());
        assert!(matches!(decode(b"{}"), Err(Unreadable::NotAnEnvelope)));
        // Messages nested past the limit (a Pod's containers' … are bounded by the schema,
        // but a hostile body may nest a message in itself as often as it likes).
        let mut deep = field(1, b"x");
        for _ in 0..40 {
            deep = field(2, &field(1, &deep));
        }
        assert!(decode(&body("v1", "Pod", &deep)).is_err());
        let options = [
            MAGIC.to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"DeleteOptions")].concat()),
            field(
                2,
                &[field(2, &field(1, b"u1")), field(4, b"Foreground")].concat(),
            ),
        ]
        .concat();
        assert_eq!(
            decode_delete_options(&options).unwrap(),
            json!({"preconditions": {"uid": "u1"}, "propagationPolicy": "Foreground"})
        );
    }
}

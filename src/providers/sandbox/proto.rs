//! Just enough of the Kubernetes protobuf encoding to accept the bodies that typed
//! client-go clients (helm's release storage, `kubectl create
//! secret|configmap|namespace|serviceaccount`) send: Secrets, ConfigMaps, Namespaces,
//! ServiceAccounts, RBAC roles and bindings (`kubectl create
//! rolebinding`), the SelfSubject reviews (`kubectl auth whoami|can-i`) and
//! TokenRequests (`kubectl create token`), turned into
//! the JSON the rest of the sandbox works on.
//!
//! Owns protobuf decoding. Anything it does not fully understand is refused (the caller
//! answers 415), never half-read.

use base64::Engine as _;
use serde_json::{Map, Value, json};

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

fn push(obj: &mut Value, key: &str, item: Value) {
    match obj[key].as_array_mut() {
        Some(a) => a.push(item),
        None => obj[key] = json!([item]),
    }
}

/// A message whose fields are all strings, named by `names`; any other field refuses it.
fn strings_message(w: &Wire<'_>, names: &[(u64, &str)]) -> Option<Value> {
    let mut o = Map::new();
    for (n, f) in fields(bytes(w)?)? {
        let (_, key) = names.iter().find(|(m, _)| *m == n)?;
        o.insert((*key).to_string(), json!(string(&f)?));
    }
    Some(Value::Object(o))
}

/// Like [`strings_message`], skipping the fields it does not name (selectors of a
/// review's attributes, which the sandbox's authorizer does not evaluate).
fn strings_message_lenient(w: &Wire<'_>, names: &[(u64, &str)]) -> Option<Value> {
    let mut o = Map::new();
    for (n, f) in fields(bytes(w)?)? {
        if let Some((_, key)) = names.iter().find(|(m, _)| *m == n) {
            o.insert((*key).to_string(), json!(string(&f)?));
        }
    }
    Some(Value::Object(o))
}

/// An rbac/v1 PolicyRule: five lists of strings.
fn policy_rule(w: &Wire<'_>) -> Option<Value> {
    let mut o = json!({});
    for (n, f) in fields(bytes(w)?)? {
        let key = match n {
            1 => "verbs",
            2 => "apiGroups",
            3 => "resources",
            4 => "resourceNames",
            5 => "nonResourceURLs",
            _ => return None,
        };
        push(&mut o, key, json!(string(&f)?));
    }
    Some(o)
}

/// A LabelSelector with matchLabels only (matchExpressions refuse the body).
fn label_selector(w: &Wire<'_>) -> Option<Value> {
    let mut labels = Map::new();
    for (n, f) in fields(bytes(w)?)? {
        match n {
            1 => map_entry(&f, false, &mut labels)?,
            _ => return None,
        }
    }
    Some(json!({"matchLabels": labels}))
}

fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut data = Map::new();
    let mut string_data = Map::new();
    let mut binary_data = Map::new();
    for (n, f) in fields(raw)? {
        match (kind, n, &f) {
            (_, 1, _) => obj["metadata"] = object_meta(&f)?,
            ("Secret", 2, _) => map_entry(&f, true, &mut data)?,
            ("Secret", 3, _) => obj["type"] = json!(string(&f)?),
            ("Secret", 4, _) => map_entry(&f, false, &mut string_data)?,
            ("Secret", 5, Wire::Varint(b)) | ("ConfigMap", 4, Wire::Varint(b)) => {
                obj["immutable"] = json!(*b != 0)
            }
            ("ConfigMap", 2, _) => map_entry(&f, false, &mut data)?,
            ("Role" | "ClusterRole", 2, _) => push(&mut obj, "rules", policy_rule(&f)?),
            ("ClusterRole", 3, _) => {
                let mut selectors = Vec::new();
                for (m, sel) in fields(bytes(&f)?)? {
                    if m != 1 {
                        return None;
                    }
                    selectors.push(label_selector(&sel)?);
                }
                obj["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
            }
            ("RoleBinding" | "ClusterRoleBinding", 2, _) => push(
                &mut obj,
                "subjects",
                strings_message(
                    &f,
                    &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
                )?,
            ),
            ("RoleBinding" | "ClusterRoleBinding", 3, _) => {
                obj["roleRef"] = strings_message(&f, &[(1, "apiGroup"), (2, "kind"), (3, "name")])?
            }
            // What a review asks (its status is the server's answer).
            ("SelfSubjectReview", 2, _) => {}
            ("SelfSubjectAccessReview", 2, _) => {
                let mut spec = Map::new();
                for (m, a) in fields(bytes(&f)?)? {
                    let (key, names): (&str, &[(u64, &str)]) = match m {
                        1 => (
                            "resourceAttributes",
                            &[
                                (1, "namespace"),
                                (2, "verb"),
                                (3, "group"),
                                (4, "version"),
                                (5, "resource"),
                                (6, "subresource"),
                                (7, "name"),
                            ],
                        ),
                        2 => ("nonResourceAttributes", &[(1, "path"), (2, "verb")]),
                        _ => return None,
                    };
                    spec.insert(key.into(), strings_message_lenient(&a, names)?);
                }
                obj["spec"] = Value::Object(spec);
            }
            ("SelfSubjectRulesReview", 2, _) => {
                obj["spec"] = strings_message(&f, &[(1, "namespace")])?
            }
            ("SelfSubjectAccessReview" | "SelfSubjectRulesReview", 3, _) => {}
            // `kubectl create token`: audiences, the object it is bound to, its lifetime.
            ("TokenRequest", 2, _) => {
                let mut spec = json!({});
                for (m, s) in fields(bytes(&f)?)? {
                    match (m, &s) {
                        (1, _) => push(&mut spec, "audiences", json!(string(&s)?)),
                        (3, _) => {
                            spec["boundObjectRef"] = strings_message(
                                &s,
                                &[(1, "kind"), (2, "apiVersion"), (3, "name"), (4, "uid")],
                            )?
                        }
                        (4, Wire::Varint(n)) => spec["expirationSeconds"] = json!(*n as i64),
                        _ => return None,
                    }
                }
                obj["spec"] = spec;
            }
            ("TokenRequest", 3, _) => {}
            ("ConfigMap", 3, _) => map_entry(&f, true, &mut binary_data)?,
            // `kubectl create serviceaccount`.
            ("ServiceAccount", 2, _) => push(
                &mut obj,
                "secrets",
                strings_message(
                    &f,
                    &[
                        (1, "kind"),
                        (2, "namespace"),
                        (3, "name"),
                        (4, "uid"),
                        (5, "apiVersion"),
                        (6, "resourceVersion"),
                        (7, "fieldPath"),
                    ],
                )?,
            ),
            ("ServiceAccount", 3, _) => push(
                &mut obj,
                "imagePullSecrets",
                strings_message(&f, &[(1, "name")])?,
            ),
            ("ServiceAccount", 4, Wire::Varint(b)) => {
                obj["automountServiceAccountToken"] = json!(*b != 0)
            }
            // A namespace's spec (finalizers) and status are set by the server.
            ("Namespace", 2 | 3, _) => {}
            _ => return None,
        }
    }
    for (k, m) in [
        ("data", data),
        ("stringData", string_data),
        ("binaryData", binary_data),
    ] {
        if !m.is_empty() {
            obj[k] = Value::Object(m);
        }
    }
    Some(obj)
}

/// Decodes a protobuf request body into JSON, or None when it holds anything but a
/// Secret, ConfigMap, Namespace, ServiceAccount, RBAC object, review or TokenRequest
/// this decoder fully understands.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(MAGIC)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(envelope)? {
        match n {
            1 => {
                for (m, t) in fields(bytes(&f)?)? {
                    match m {
                        1 => api_version = string(&t)?,
                        2 => kind = string(&t)?,
                        _ => return None,
                    }
                }
            }
            2 => raw = bytes(&f)?,
            3 | 4 => {
                if !string(&f)?.is_empty() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let known = match api_version.as_str() {
        "v1" => matches!(
            kind.as_str(),
            "Secret" | "ConfigMap" | "Namespace" | "ServiceAccount"
        ),
        "rbac.authorization.k8s.io/v1" => matches!(
            kind.as_str(),
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        ),
        "authentication.k8s.io/v1" => matches!(kind.as_str(), "SelfSubjectReview" | "TokenRequest"),
        "authorization.k8s.io/v1" => {
            matches!(
                kind.as_str(),
                "SelfSubjectAccessReview" | "SelfSubjectRulesReview"
            )
        }
        _ => false,
    };
    if !known {
        return None;
    }
    decode_object(&api_version, &kind, raw)
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
    let mut out = json!({});
    for (n, f) in fields(raw)? {
        match (n, &f) {
            (2, _) => {
                for (m, p) in fields(bytes(&f)?)? {
                    match m {
                        1 => out["preconditions"]["uid"] = json!(string(&p)?),
                        2 => out["preconditions"]["resourceVersion"] = json!(string(&p)?),
                        _ => return None,
                    }
                }
            }
            (3, Wire::Varint(b)) => out["orphanDependents"] = json!(*b != 0),
            (4, _) => out["propagationPolicy"] = json!(string(&f)?),
            (5, _) => push(&mut out, "dryRun", json!(string(&f)?)),
            (1 | 6 | 7, _) => {}
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let label = [field(1, b"owner"), field(2, b"helm")].concat();
        let meta = [field(1, b"rel"), field(11, &label)].concat();
        let entry = [field(1, b"release"), field(2, b"\x01\x02")].concat();
        let secret = [
            field(1, &meta),
            field(2, &entry),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                   "metadata": {"name": "rel", "labels": {"owner": "helm"}},
                   "data": {"release": "AQI="}})
        );
        let pod = [
            MAGIC.to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"Pod")].concat()),
        ]
        .concat();
        assert!(decode(&pod).is_none());
        let subject = [field(1, b"User"), field(3, b"dev")].concat();
        let role_ref = [field(2, b"ClusterRole"), field(3, b"edit")].concat();
        let binding = [
            field(1, &field(1, b"b")),
            field(2, &subject),
            field(3, &role_ref),
        ]
        .concat();
        let type_meta = [
            field(1, b"rbac.authorization.k8s.io/v1"),
            field(2, b"RoleBinding"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &binding)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "b"}, "subjects": [{"kind": "User", "name": "dev"}],
                   "roleRef": {"kind": "ClusterRole", "name": "edit"}})
        );
        assert!(decode(b"k8s\0\xff\xff").is_none());
        assert!(decode(b"{}").is_none());
    }
}

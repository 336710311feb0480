//! Patches as the Kubernetes API applies them: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), and strategic merge patch approximated as a merge patch that merges the
//! well-known lists (containers, volumes, env, ports, ...) by their key.
//!
//! Owns patch application on `serde_json::Value`s; knows nothing of the store.

use serde_json::Value;

/// Why a patch could not be applied; becomes a 422 or 400.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the patch is not valid: {0}")]
    Invalid(String),
    #[error("the JSON patch test operation failed at {0}")]
    TestFailed(String),
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    merge_with(target, patch, false, "");
}

/// Strategic merge patch, approximated: like [`merge`] but lists with a known merge key
/// are merged item by item, and `$patch: delete` items remove the matching item.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    merge_with(target, patch, true, "");
}

fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases" => {
            if field == "hostAliases" {
                "ip"
            } else {
                "name"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "tolerations" | "conditions" => "type",
        _ => return None,
    })
}

fn merge_with(target: &mut Value, patch: &Value, strategic: bool, field: &str) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            for (k, v) in p {
                if strategic && k.starts_with("$") {
                    continue;
                }
                if let Value::Object(t) = target {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        let entry = t.entry(k.clone()).or_insert(Value::Null);
                        merge_with(entry, v, strategic, k);
                    }
                }
            }
        }
        Value::Array(items) if strategic => {
            let key = if field == "ports" {
                // Container ports merge on containerPort, service ports on port.
                if items.iter().any(|i| i.get("containerPort").is_some()) {
                    Some("containerPort")
                } else {
                    Some("port")
                }
            } else {
                merge_key(field)
            };
            match (key, target.as_array_mut()) {
                (Some(key), Some(existing)) => {
                    for item in items {
                        let id = item.get(key);
                        let pos =
                            id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
                        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                        match (pos, delete) {
                            (Some(i), true) => {
                                existing.remove(i);
                            }
                            (None, true) => {}
                            (Some(i), false) => merge_with(&mut existing[i], item, true, ""),
                            (None, false) => {
                                let mut fresh = Value::Null;
                                merge_with(&mut fresh, item, true, "");
                                existing.push(fresh);
                            }
                        }
                    }
                }
                _ => *target = strip_directives(patch),
            }
        }
        _ => {
            *target = if strategic {
                strip_directives(patch)
            } else {
                patch.clone()
            }
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), PatchError> {
    if path.is_empty() {
        return Err(PatchError::Invalid("the root cannot be the target".into()));
    }
    if !path.starts_with('/') {
        return Err(PatchError::Invalid(format!(
            "{path:?} is not a JSON pointer"
        )));
    }
    let i = path.rfind('/').unwrap_or(0);
    Ok((path[..i].to_string(), unescape(&path[i + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || PatchError::Invalid(format!("the path {path} does not exist"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if i > a.len() {
                    return Err(missing());
                }
                a.insert(i, value);
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || PatchError::Invalid(format!("the path {path} does not exist"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902: add, remove, replace, move, copy, test.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Invalid("a JSON patch must be an array of operations".into()))?;
    for op in ops {
        let name = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| PatchError::Invalid("an operation has no path".into()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Invalid(format!("{name} at {path} has no value")))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| PatchError::Invalid(format!("{name} at {path} has no from")))
        };
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                let v = value()?;
                let slot = doc.pointer_mut(path).ok_or_else(|| {
                    PatchError::Invalid(format!("the path {path} does not exist"))
                })?;
                *slot = v;
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = from()?;
                let v = doc.pointer(from).cloned().ok_or_else(|| {
                    PatchError::Invalid(format!("the path {from} does not exist"))
                })?;
                add(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError::TestFailed(path.to_string()));
                }
            }
            other => return Err(PatchError::Invalid(format!("unknown operation {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut d = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge(&mut d, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(d, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut d = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge(
            &mut d,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}, {"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(
            d,
            json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": "x"});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/e"},
                {"op": "remove", "path": "/a/b/0"},
                {"op": "test", "path": "/e", "value": "y"},
                {"op": "add", "path": "/m~1n", "value": 1}
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": [2, 3]}, "c": "y", "e": "y", "m/n": 1}));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/c", "value": "z"}])).is_err());
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/zz"}])).is_err());
        assert!(json_patch(&mut d, &json!({"op": "x"})).is_err());
    }
}

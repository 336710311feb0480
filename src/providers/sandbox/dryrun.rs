//! Server-side dry-run (`dryRun=All`): a mutating request runs in full (validation,
//! defaulting, conflicts, allocation checks) on a throw-away copy of the cluster, and the
//! answer is what the real request would have returned; nothing is stored, no watch sees
//! an event, no IP or node port is taken, and the resourceVersion does not move.
//!
//! Owns the `dryRun` option (query parameter, or the DeleteOptions body) and how a
//! dry-run answer is settled against the real store. Must not implement verbs itself.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::resources::ResourceInfo;
use super::store::{Key, Store};
use super::verbs::{ApiError, ApiResult, Cluster};

/// The options kind a verb's parameters are validated as, for error messages.
fn options_kind(verb: &str) -> &'static str {
    match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" => "PatchOptions",
        _ => "DeleteOptions",
    }
}

/// Whether a mutating request asks for a dry run. `dryRun` may come as a query parameter
/// or, for deletes, in the DeleteOptions body. `All` is the only value Kubernetes accepts;
/// anything else is a 422 worded as the API server words it.
pub fn requested(
    query: &HashMap<String, String>,
    verb: &str,
    delete_body: Option<&Value>,
) -> ApiResult<bool> {
    let mut values: Vec<String> = query
        .get("dryRun")
        .filter(|v| !v.is_empty())
        .map(|v| vec![v.clone()])
        .unwrap_or_default();
    if let Some(body) = delete_body {
        match &body["dryRun"] {
            Value::Array(items) => {
                values.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Value::String(s) if !s.is_empty() => values.push(s.clone()),
            _ => {}
        }
    }
    if values.is_empty() {
        return Ok(false);
    }
    if values.iter().all(|v| v == "All") {
        return Ok(true);
    }
    let kind = options_kind(verb);
    let shown = values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let detail = format!("Unsupported value: []string{{{shown}}}: supported values: \"All\"");
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{kind}.meta.k8s.io \"\" is invalid: dryRun: {detail}"),
    );
    e.details = json!({
        "group": "meta.k8s.io", "kind": kind,
        "causes": [{"reason": "FieldValueNotSupported", "message": detail, "field": "dryRun"}]
    });
    Err(e)
}

/// A throw-away copy of `cluster` for one dry-run request.
pub fn scratch(cluster: &Cluster) -> Cluster {
    let mut c = Cluster::new(
        cluster.store.scratch(),
        &cluster.name,
        &cluster.ca_pem,
        &cluster.dir,
    );
    c.dry_run = true;
    c.sa_key = cluster.sa_key;
    c.pod_security = cluster.pod_security.clone();
    c
}

/// Makes a dry-run answer look like the real one: an object that exists keeps its stored
/// resourceVersion (a dry-run update does not bump it), one that would be created has
/// none, and a list (deletecollection) carries the store's current version.
pub fn settle(real: &Store, info: &ResourceInfo, out: &mut Value) {
    if let Some(items) = out.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            settle_object(real, info, item);
        }
        out["metadata"]["resourceVersion"] = json!(real.resource_version().to_string());
        return;
    }
    settle_object(real, info, out);
}

fn settle_object(real: &Store, info: &ResourceInfo, obj: &mut Value) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let ns = if info.namespaced {
        meta["namespace"].as_str().unwrap_or("")
    } else {
        ""
    };
    let key = Key::new(&info.group, &info.plural, ns, name);
    let stored_rv = real
        .get(&key)
        .and_then(|o| o["metadata"]["resourceVersion"].as_str())
        .map(str::to_string);
    if let Some(m) = obj["metadata"].as_object_mut() {
        match stored_rv {
            Some(rv) => {
                m.insert("resourceVersion".into(), Value::String(rv));
            }
            None => {
                m.remove("resourceVersion");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(v: &str) -> HashMap<String, String> {
        HashMap::from([("dryRun".to_string(), v.to_string())])
    }

    #[test]
    fn only_all_is_accepted() {
        assert!(requested(&query("All"), "create", None).unwrap());
        assert!(!requested(&HashMap::new(), "create", None).unwrap());
        let e = requested(&query("Some"), "patch", None).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with("PatchOptions.meta.k8s.io"),
            "{}",
            e.message
        );
        let body = json!({"dryRun": ["All"]});
        assert!(requested(&HashMap::new(), "delete", Some(&body)).unwrap());
        let body = json!({"dryRun": ["Nope"]});
        assert_eq!(
            requested(&HashMap::new(), "delete", Some(&body))
                .unwrap_err()
                .code,
            422
        );
    }
}

//! Scrubbing: what an allow rule says must not reach the target as is. A pure function
//! over the captured objects (JSON documents), applied before the restore plan is built.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::document::{ScrubMode, ScrubRule, glob};
use ferry_k8s::objects::ObjRef;

/// The annotation a placeholder object carries: the data keys to fill in.
pub const FILL_IN_ANNOTATION: &str = "ferry.io/fill-in";

/// What scrubbing did to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scrubbed {
    pub object: String,
    pub mode: ScrubMode,
    /// For placeholders: the data keys whose values were emptied.
    pub keys: Vec<String>,
}

fn matches(rule: &ScrubRule, r: &ObjRef) -> bool {
    r.kind == rule.kind
        && rule
            .name
            .as_ref()
            .is_none_or(|pattern| glob(pattern, &r.name))
}

/// Empties every value of the data maps; returns the keys, sorted.
fn blank(obj: &mut Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        for field in ["data", "stringData", "binaryData"] {
            if let Some(Value::Object(m)) = map.get_mut(field) {
                for (k, v) in m.iter_mut() {
                    keys.push(k.clone());
                    *v = Value::String(String::new());
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return keys;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            FILL_IN_ANNOTATION.to_string(),
            Value::String(keys.join(",")),
        );
    }
    keys
}

/// Applies `rules` to `objects`: the first rule matching an object decides (drop wins
/// over placeholder when both match, whatever their order). Returns the objects to
/// restore and what was done.
pub fn apply(rules: &[ScrubRule], objects: Vec<Value>) -> (Vec<Value>, Vec<Scrubbed>) {
    if rules.is_empty() {
        return (objects, Vec::new());
    }
    let mut kept = Vec::with_capacity(objects.len());
    let mut done = Vec::new();
    for mut obj in objects {
        let r = ObjRef::of(&obj);
        let matching: Vec<&ScrubRule> = rules.iter().filter(|s| matches(s, &r)).collect();
        if matching.iter().any(|s| s.mode == ScrubMode::Drop) {
            done.push(Scrubbed {
                object: r.to_string(),
                mode: ScrubMode::Drop,
                keys: Vec::new(),
            });
            continue;
        }
        if !matching.is_empty() {
            let keys = blank(&mut obj);
            done.push(Scrubbed {
                object: r.to_string(),
                mode: ScrubMode::Placeholder,
                keys,
            });
        }
        kept.push(obj);
    }
    (kept, done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(kind: &str, name: Option<&str>, mode: ScrubMode) -> ScrubRule {
        ScrubRule {
            kind: kind.into(),
            name: name.map(str::to_string),
            mode,
        }
    }

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                   "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}, "type": "Opaque"}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls-cert", "namespace": "shop",
                   "annotations": {"keep": "me"}}, "data": {"tls.key": "eA=="}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
                   "data": {"mode": "prod"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}),
        ]
    }

    #[test]
    fn placeholders_empty_values_and_name_the_keys() {
        let (out, done) = apply(&[rule("Secret", None, ScrubMode::Placeholder)], objects());
        assert_eq!(out.len(), 4);
        assert_eq!(out[0]["data"], json!({"password": "", "user": ""}));
        assert_eq!(
            out[0]["metadata"]["annotations"][FILL_IN_ANNOTATION],
            "password,user"
        );
        assert_eq!(out[1]["metadata"]["annotations"]["keep"], "me");
        assert_eq!(out[2]["data"]["mode"], "prod");
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].keys, ["password", "user"]);
        assert_eq!(done[0].object, "Secret shop/db");
    }

    #[test]
    fn drop_beats_placeholder_and_names_are_globs() {
        let rules = [
            rule("Secret", None, ScrubMode::Placeholder),
            rule("Secret", Some("tls-*"), ScrubMode::Drop),
        ];
        let (out, done) = apply(&rules, objects());
        let names: Vec<String> = out.iter().map(|o| ObjRef::of(o).to_string()).collect();
        assert_eq!(
            names,
            [
                "Secret shop/db",
                "ConfigMap shop/settings",
                "Deployment.apps shop/web"
            ]
        );
        assert_eq!(done[1].mode, ScrubMode::Drop);
        assert_eq!(done[1].object, "Secret shop/tls-cert");
        // No rules: nothing changes.
        let (same, none) = apply(&[], objects());
        assert_eq!(same, objects());
        assert!(none.is_empty());
    }
}

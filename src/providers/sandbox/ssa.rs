//! Field ownership as server-side apply keeps it: `metadata.managedFields` with one entry
//! per manager and operation (`Apply` or `Update`), each holding the set of fields that
//! manager set (`FieldsV1`). An apply by one manager that would change a field another
//! manager owns is a 409 with `FieldManagerConflict` causes unless forced; a field a
//! manager applied before and now omits is removed, unless another manager owns it too.
//! Creates, updates and other patches make their manager (`fieldManager`, or the client's
//! program name from its user agent) the owner of the fields they changed. Such a write
//! may also set `metadata.managedFields` itself, as on a real API server: entries that
//! read replace the stored ones (a write that changes nothing else adds no entry, which
//! is how a restore gives objects their owners back), an empty list clears them.
//!
//! Lists of objects are keyed as Kubernetes keys them (`name`, `containerPort`, `port`,
//! `mountPath`, ...); other lists are atomic. Owns the managedFields bookkeeping and apply
//! merging; the verbs store the result.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::resources::{self, ResourceInfo};
use super::verbs::{ApiError, ApiResult, Cluster, Sub, now};

/// Who writes, for the managedFields of a create, update or non-apply patch.
#[derive(Debug, Clone)]
pub struct Manager {
    pub name: String,
}

/// One path element: `f:<field>` or `k:<key as JSON>`.
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// Fields no manager owns.
fn untracked(path: &[String], with_status: bool) -> bool {
    match path {
        [f] => matches!(f.as_str(), "f:apiVersion" | "f:kind") || (!with_status && f == "f:status"),
        [m, f] if m == "f:metadata" => matches!(
            f.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:managedFields"
                | "f:selfLink"
        ),
        _ => false,
    }
}

/// The key fields of list `field`'s items, when the list is keyed.
fn list_key(field: &str, items: &[Value]) -> Option<Vec<&'static str>> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    let all_have = |k: &str| items.iter().all(|i| i.get(k).is_some());
    let keys: Vec<&'static str> = match field {
        "ports" if all_have("containerPort") => vec!["containerPort", "protocol"],
        "ports" if all_have("port") => vec!["port", "protocol"],
        "volumeMounts" if all_have("mountPath") => vec!["mountPath"],
        "volumeDevices" if all_have("devicePath") => vec!["devicePath"],
        "tolerations" | "ownerReferences" if all_have("uid") => vec!["uid"],
        "conditions" if all_have("type") => vec!["type"],
        "hostAliases" if all_have("ip") => vec!["ip"],
        _ if all_have("name") => vec!["name"],
        _ => return None,
    };
    Some(keys)
}

fn item_key(keys: &[&str], item: &Value) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

fn collect(v: &Value, field: &str, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(format!("f:{k}"));
                collect(c, k, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => match list_key(field, items) {
            Some(keys) => {
                for item in items {
                    prefix.push(item_key(&keys, item));
                    out.insert(prefix.clone());
                    collect(item, "", prefix, out);
                    prefix.pop();
                }
            }
            None => {
                out.insert(prefix.clone());
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The fields `obj` sets, leaves and keyed list items.
fn fields_of(obj: &Value, with_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    collect(obj, "", &mut Vec::new(), &mut out);
    out.retain(|p| !p.is_empty() && !(1..=p.len()).any(|n| untracked(&p[..n], with_status)));
    out
}

/// The value at `path` in `obj`.
fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get(f)?
        } else {
            let key: Map<String, Value> = serde_json::from_str(el.strip_prefix("k:")?).ok()?;
            cur.as_array()?
                .iter()
                .find(|i| key.iter().all(|(k, v)| i.get(k) == Some(v)))?
        };
    }
    Some(cur)
}

/// Removes the field or list item at `path` from `obj`.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let key: Option<Map<String, Value>> = el
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str(k).ok());
            match (key, cur.as_array_mut()) {
                (Some(key), Some(items)) => items
                    .iter_mut()
                    .find(|i| key.iter().all(|(k, v)| i.get(k) == Some(v))),
                _ => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(key) = last
        .strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        && let Some(items) = cur.as_array_mut()
    {
        items.retain(|i| !key.iter().all(|(k, v)| i.get(k) == Some(v)));
    }
}

/// A field set as FieldsV1 JSON.
fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        insert_path(&mut root, path);
    }
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let child = node.entry(first.clone()).or_insert_with(|| json!({}));
    if !child.is_object() {
        *child = json!({});
    }
    if let Value::Object(m) = child {
        if rest.is_empty() {
            // A keyed item is owned as itself as well as by its fields.
            if first.starts_with("k:") {
                m.insert(".".into(), json!({}));
            }
        } else {
            insert_path(m, rest);
        }
    }
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else {
        return;
    };
    if (m.is_empty() || m.contains_key(".")) && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, c) in m {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        from_fields_v1(c, prefix, out);
        prefix.pop();
    }
}

/// One managedFields entry, read.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

fn entries_of(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            let mut fields = FieldSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            }
        })
        .collect()
}

/// The entries a request sets, when every one reads as a real API server reads them
/// (operation `Apply` or `Update`, an apiVersion, fieldsType `FieldsV1`, fieldsV1 an
/// object or absent); `None` otherwise.
fn requested_entries(list: &[Value]) -> Option<Vec<Entry>> {
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let operation = s("operation");
            let readable = matches!(operation.as_str(), "Apply" | "Update")
                && !s("apiVersion").is_empty()
                && s("fieldsType") == "FieldsV1"
                && e.get("fieldsV1")
                    .is_none_or(|f| f.is_object() || f.is_null());
            if !readable {
                return None;
            }
            let mut fields = FieldSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Some(Entry {
                manager: s("manager"),
                operation,
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            })
        })
        .collect()
}

/// The entries a write starts from, as a real API server decides (its field manager's
/// `decodeLiveOrNew`): a write to a subresource keeps the stored ones; a request that
/// sets an empty list, or a single blank entry, clears them; a request whose entries
/// all read sets them (managed fields can be set directly); anything else, a request
/// without them included, keeps the stored ones.
fn starting_entries(old: Option<&Value>, new: &Value, sub: Sub) -> Vec<Entry> {
    let stored = || old.map(entries_of).unwrap_or_default();
    if sub != Sub::Main {
        return stored();
    }
    let blank = |e: &Value| {
        e.as_object()
            .is_some_and(|m| m.values().all(|v| v.is_null() || v == ""))
    };
    match new["metadata"]
        .get("managedFields")
        .and_then(Value::as_array)
    {
        Some(list) if list.is_empty() || (list.len() == 1 && blank(&list[0])) => Vec::new(),
        Some(list) => requested_entries(list).unwrap_or_else(stored),
        None => stored(),
    }
}

fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj["metadata"].as_object_mut() {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records a create (`old` None) or an update of `new` by `manager`: it owns what it
/// changed, others lose it, fields that went are owned by nobody. No change, no new
/// entry. The entries it starts from are the request's own when it sets readable ones
/// ([`starting_entries`]).
pub fn on_write(
    info: &ResourceInfo,
    sub: Sub,
    old: Option<&Value>,
    new: &mut Value,
    manager: &Manager,
) {
    let with_status = sub == Sub::Status;
    let subresource = if with_status { "status" } else { "" };
    let mut entries = starting_entries(old, new, sub);
    let new_fields = fields_of(new, with_status);
    let old_fields = old.map(|o| fields_of(o, with_status)).unwrap_or_default();
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .cloned()
        .collect();
    let removed: FieldSet = old_fields.difference(&new_fields).cloned().collect();
    if old.is_some() && changed.is_empty() && removed.is_empty() {
        set_entries(new, &entries);
        return;
    }
    for e in &mut entries {
        e.fields.retain(|p| !removed.contains(p));
        if !(e.manager == manager.name && e.operation == "Update" && e.subresource == subresource) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let time = now();
    match entries.iter_mut().find(|e| {
        e.manager == manager.name && e.operation == "Update" && e.subresource == subresource
    }) {
        Some(e) => {
            e.fields.extend(changed);
            e.time = time;
            e.api_version = info.api_version();
        }
        None => entries.push(Entry {
            manager: manager.name.clone(),
            operation: "Update".into(),
            api_version: info.api_version(),
            time,
            subresource: subresource.into(),
            fields: changed,
        }),
    }
    set_entries(new, &entries);
}

fn display_path(path: &[String]) -> String {
    path.iter()
        .map(|e| match e.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => format!("[{}]", e.strip_prefix("k:").unwrap_or(e)),
        })
        .collect()
}

/// A server-side apply of `applied` by `manager` (`force` takes over conflicting
/// fields) to the object `name`; creates it when missing.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    c: &mut Cluster,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    applied: Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    if !applied.is_object() {
        return Err(ApiError::bad_request("an apply patch must be an object"));
    }
    let applied_fields = fields_of(&applied, false);
    let current = match c.get(info, ns, name, Sub::Main) {
        Ok(o) => o,
        Err(e) if e.code == 404 => {
            let mut obj = applied;
            set_entries(
                &mut obj,
                &[Entry {
                    manager: manager.into(),
                    operation: "Apply".into(),
                    api_version: info.api_version(),
                    time: now(),
                    subresource: String::new(),
                    fields: applied_fields,
                }],
            );
            if obj["metadata"]["name"].is_null() {
                obj["metadata"]["name"] = json!(name);
            }
            return c.create(info, ns, obj);
        }
        Err(e) => return Err(e),
    };
    let mut entries = entries_of(&current);
    // Conflicts: fields another manager owns whose value this apply would change.
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for e in &entries {
        if e.manager == manager && e.operation == "Apply" || !e.subresource.is_empty() {
            continue;
        }
        for p in e.fields.intersection(&applied_fields) {
            let leaf = !p.last().is_some_and(|l| l.starts_with("k:"));
            if leaf && value_at(&current, p) != value_at(&applied, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(info, name, &conflicts));
    }
    if force {
        for e in &mut entries {
            if e.manager == manager && e.operation == "Apply" {
                continue;
            }
            e.fields
                .retain(|p| !conflicts.iter().any(|(_, _, q)| q == p));
        }
    }
    let previous_entry = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply");
    let had_entry = previous_entry.is_some();
    let previous = previous_entry.map(|e| e.fields.clone()).unwrap_or_default();
    let mut merged = current.clone();
    // What this manager applied before and leaves out now goes, unless someone else
    // owns it (deepest first, so an item goes after its fields).
    let mut dropped: Vec<&Path> = previous.difference(&applied_fields).collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        let shared = entries.iter().any(|e| {
            !(e.manager == manager && e.operation == "Apply")
                && e.fields.iter().any(|q| q.starts_with(p))
        });
        if !shared {
            remove_at(&mut merged, p);
        }
    }
    if resources::crd_defined(info) {
        ferry_patch::merge(&mut merged, &applied);
    } else {
        ferry_patch::strategic_merge(&mut merged, &applied)
            .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    }
    let time = now();
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Apply")
    {
        Some(e) => {
            e.fields = applied_fields.clone();
            e.api_version = info.api_version();
            e.time = time;
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: info.api_version(),
            time,
            subresource: String::new(),
            fields: applied_fields.clone(),
        }),
    }
    let without_managed = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        o
    };
    let unchanged = had_entry
        && conflicts.is_empty()
        && previous == applied_fields
        && without_managed(&merged) == without_managed(&current);
    if unchanged {
        return Ok(current);
    }
    set_entries(&mut merged, &entries);
    c.update(info, ns, name, Sub::Main, merged)
}

fn conflict_error(
    info: &ResourceInfo,
    name: &str,
    conflicts: &[(String, String, Path)],
) -> ApiError {
    let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
    for (m, v, p) in conflicts {
        match by_manager.iter_mut().find(|(x, _, _)| x == m) {
            Some((_, _, ps)) => ps.push(display_path(p)),
            None => by_manager.push((m.clone(), v.clone(), vec![display_path(p)])),
        }
    }
    let n = conflicts.len();
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, v, ps)| {
            if ps.len() == 1 {
                format!("conflict with \"{m}\" using {v}: {}", ps.join(""))
            } else {
                format!("conflicts with \"{m}\" using {v}:\n- {}", ps.join("\n- "))
            }
        })
        .collect();
    message.push_str(&parts.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with \"{m}\" using {v}"),
                   "field": display_path(p)})
        })
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = json!({"name": name, "group": info.group, "kind": info.plural, "causes": causes});
    e
}

/// The manager of a request: `fieldManager`, else the program name of the user agent
/// (`kubectl` of `kubectl/v1.33.0 (linux/amd64) ...`), as a real API server names it.
pub fn manager_name(field_manager: Option<&str>, user_agent: &str) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let program = user_agent.split('/').next().unwrap_or("").trim();
    if program.is_empty() {
        "unknown".into()
    } else {
        program.chars().take(128).collect()
    }
}

/// An apply patch body: JSON, or YAML (`application/apply-patch+yaml` allows both).
pub fn parse_apply(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the apply patch is neither JSON nor UTF-8 YAML"))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!(
            "the apply patch is neither JSON nor valid YAML: {e}"
        ))
    })
}

/// The 422 of an apply without `fieldManager`.
pub fn manager_required() -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    );
    e.details = json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]});
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> ResourceInfo {
        ResourceInfo {
            group: String::new(),
            version: "v1".into(),
            plural: "configmaps".into(),
            singular: "configmap".into(),
            kind: "ConfigMap".into(),
            list_kind: "ConfigMapList".into(),
            namespaced: true,
            short_names: Vec::new(),
            status: false,
            scale: false,
        }
    }

    /// (manager, operation) of each entry.
    fn owners(obj: &Value) -> Vec<(String, String)> {
        entries_of(obj)
            .into_iter()
            .map(|e| (e.manager, e.operation))
            .collect()
    }

    fn owner(m: &str, op: &str) -> (String, String) {
        (m.to_string(), op.to_string())
    }

    #[test]
    fn a_write_that_sets_managed_fields_sets_the_owners_as_an_api_server_does() {
        let info = configmaps();
        let by = |name: &str| Manager { name: name.into() };
        let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-settings", "namespace": "shop-qa"},
            "data": {"greeting": "v2"}});
        on_write(&info, Sub::Main, None, &mut created, &by("ferry"));
        assert_eq!(owners(&created), [owner("ferry", "Update")]);

        // A patch that changes only managedFields: they are the owners, as they were
        // (time included), and the patcher is not added.
        let source = json!([{"manager": "helm", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:greeting": {}}}}]);
        let mut restored = created.clone();
        restored["metadata"]["managedFields"] = source.clone();
        on_write(
            &info,
            Sub::Main,
            Some(&created),
            &mut restored,
            &by("ferry"),
        );
        assert_eq!(restored["metadata"]["managedFields"], source);

        // Entries that do not read, a write to a subresource and a request without
        // them keep the stored ones; the last adds its manager for what it changed.
        let mut bad = restored.clone();
        bad["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Bogus",
            "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
        on_write(&info, Sub::Main, Some(&restored), &mut bad, &by("x"));
        assert_eq!(bad["metadata"]["managedFields"], source);
        let mut status = restored.clone();
        status["metadata"]["managedFields"] = json!([]);
        on_write(&info, Sub::Status, Some(&restored), &mut status, &by("x"));
        assert_eq!(status["metadata"]["managedFields"], source);
        let mut without = restored.clone();
        if let Some(m) = without["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        without["data"]["port"] = json!("80");
        on_write(
            &info,
            Sub::Main,
            Some(&restored),
            &mut without,
            &by("kubectl"),
        );
        assert_eq!(
            owners(&without),
            [owner("helm", "Apply"), owner("kubectl", "Update")]
        );

        // An empty list clears them.
        let mut reset = restored.clone();
        reset["metadata"]["managedFields"] = json!([]);
        on_write(&info, Sub::Main, Some(&restored), &mut reset, &by("x"));
        assert!(reset["metadata"].get("managedFields").is_none(), "{reset}");

        // A create that brings entries starts from them, and its manager takes every
        // field it sets from them.
        let mut brought = created.clone();
        brought["metadata"]["managedFields"] = json!([{"manager": "helm",
            "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:greeting": {}, "f:gone": {}}}}]);
        on_write(&info, Sub::Main, None, &mut brought, &by("ferry"));
        assert_eq!(
            owners(&brought),
            [owner("helm", "Apply"), owner("ferry", "Update")]
        );
        assert_eq!(
            brought["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:gone": {}}})
        );
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let set = fields_of(&obj, false);
        assert!(set.contains(&vec!["f:spec".to_string(), "f:replicas".to_string()]));
        assert!(
            !set.iter()
                .any(|p| p == &vec!["f:metadata".to_string(), "f:name".to_string()])
        );
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["."],
            json!({})
        );
        let mut back = FieldSet::new();
        from_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
        let image = vec![
            "f:spec".to_string(),
            "f:template".to_string(),
            "f:spec".to_string(),
            "f:containers".to_string(),
            "k:{\"name\":\"web\"}".to_string(),
            "f:image".to_string(),
        ];
        assert_eq!(value_at(&obj, &image), Some(&json!("nginx")));
        let mut o = obj.clone();
        remove_at(&mut o, &image);
        assert_eq!(value_at(&o, &image), None);
    }
}

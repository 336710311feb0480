//! What a plan checks against the target besides its dry run: what exists already,
//! what the copy would share there (Ingress hosts, node ports), what the mapping names
//! that the restore does not hold, and the quotas the new claims ask of.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt as _;
use serde_json::Value;

use super::capture::CaptureMeta;
use super::objects::{self, Catalog, ObjRef};
use super::plan::{Change, PlanItem, Problem, parse_quantity};
use super::references::Finding;
use super::transform::Mapping;

/// What the copy would share with objects already on the target: an Ingress host
/// another Ingress serves (a same-cluster clone's Ingress splits the source's
/// traffic) is a finding; a node port another Service holds is left to the target
/// (the create would be refused), said in the plan.
pub(crate) async fn shared_on_target(
    client: &kube::Client,
    catalog: &Catalog,
    items: &mut [PlanItem],
) -> Vec<Finding> {
    let creates = |kind: &str| {
        items
            .iter()
            .any(|i| i.action == Change::Create && i.target.kind == kind)
    };
    let list = |group: &'static str, kind: &'static str| async move {
        match catalog.find(group, kind) {
            Some(res) => objects::list_all(client, res, None, None)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let mut out = Vec::new();
    if creates("Ingress") {
        let ingresses = list("networking.k8s.io", "Ingress").await;
        for i in items
            .iter()
            .filter(|i| i.action == Change::Create && i.target.is("networking.k8s.io", "Ingress"))
        {
            for (n, rule) in i.object["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) else {
                    continue;
                };
                let other = ingresses.iter().map(|o| (ObjRef::of(o), o)).find(|(r, o)| {
                    *r != i.target
                        && o["spec"]["rules"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["host"].as_str() == Some(host))
                });
                if let Some((r, _)) = other {
                    out.push(Finding {
                        object: i.target.clone(),
                        path: format!("spec.rules[{n}].host"),
                        message: format!(
                            "host {host} is already served by {r} on the target: two Ingresses for one host split its traffic between the source and the copy"
                        ),
                        fix: "give the copy a host of its own (edit its Ingress after the restore), or leave the Ingress out".into(),
                    });
                }
            }
        }
    }
    if creates("Service") {
        let taken: BTreeMap<i64, ObjRef> = list("", "Service")
            .await
            .iter()
            .flat_map(|s| {
                let r = ObjRef::of(s);
                s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["nodePort"].as_i64())
                    .map(move |p| (p, r.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for i in items
            .iter_mut()
            .filter(|i| i.action == Change::Create && i.target.is("", "Service"))
        {
            let mut freed = Vec::new();
            if let Some(ports) = i.object["spec"]["ports"].as_array_mut() {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(n) = p.get("nodePort").and_then(Value::as_i64)
                        && let Some(by) = taken.get(&n)
                    {
                        p.remove("nodePort");
                        freed.push(format!(
                            "node port {n} is held by {by} on the target: left to the target"
                        ));
                    }
                }
            }
            i.changes.extend(freed);
        }
    }
    out
}

/// Mappings that name nothing the restore holds: a namespace the capture does not
/// hold is an error (the restore would write into the original name), a storage
/// class no claim uses a warning.
pub(crate) fn mapping_mistakes(
    meta: &CaptureMeta,
    objs: &[Value],
    asked: &Mapping,
    used: &[String],
) -> Vec<Problem> {
    let mut held: BTreeSet<&str> = meta.namespaces.iter().map(String::as_str).collect();
    for o in objs {
        if let Some(ns) = o["metadata"]["namespace"].as_str() {
            held.insert(ns);
        }
    }
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for from in asked
        .namespaces
        .keys()
        .filter(|f| !held.contains(f.as_str()))
    {
        out.push(Problem {
            blocking: true,
            object: None,
            message: format!(
                "--map-namespace {from}=…: the snapshot holds no namespace {from}; it holds: {}. Map one of those",
                list(&held)
            ),
        });
    }
    for from in asked.storage_classes.keys().filter(|f| !used.contains(f)) {
        out.push(Problem {
            blocking: false,
            object: None,
            message: format!(
                "--map-storage-class {from}=…: no claim of the restore uses {from} (they use: {}); the mapping does nothing",
                if used.is_empty() { "no class".to_string() } else { used.join(", ") }
            ),
        });
    }
    out
}

/// What the claims to create ask of one namespace's quotas.
#[derive(Default)]
struct ClaimDemand {
    count: u64,
    bytes: u64,
    by_class: BTreeMap<String, (u64, u64)>,
}

/// A quota's name, hard limits and what is in use, by resource name.
type Quota = (String, BTreeMap<String, String>, BTreeMap<String, String>);

/// Claims the plan creates against the quotas of their namespaces: those on the target
/// now (with what they have used) and those the plan itself creates (nothing used).
pub(crate) async fn quota_problems(client: &kube::Client, items: &[PlanItem]) -> Vec<Problem> {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let mut demand: BTreeMap<String, ClaimDemand> = BTreeMap::new();
    for i in items
        .iter()
        .filter(|i| i.action == Change::Create && i.target.kind == "PersistentVolumeClaim")
    {
        let d = demand
            .entry(i.target.namespace.clone().unwrap_or_default())
            .or_default();
        let bytes = i.object["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .and_then(parse_quantity)
            .unwrap_or(0);
        d.count += 1;
        d.bytes += bytes;
        if let Some(class) = i.object["spec"]["storageClassName"].as_str() {
            let c = d.by_class.entry(class.to_string()).or_default();
            c.0 += 1;
            c.1 += bytes;
        }
    }
    let mut out = Vec::new();
    for (ns, d) in &demand {
        let mut quotas: Vec<Quota> = items
            .iter()
            .filter(|i| {
                i.action == Change::Create
                    && i.target.kind == "ResourceQuota"
                    && i.target.namespace.as_deref() == Some(ns.as_str())
            })
            .filter_map(|i| {
                let hard = serde_json::from_value(i.object["spec"]["hard"].clone()).ok()?;
                Some((i.target.name.clone(), hard, BTreeMap::new()))
            })
            .collect();
        let api: kube::Api<ResourceQuota> = kube::Api::namespaced(client.clone(), ns);
        match api.list(&Default::default()).await {
            Ok(list) => {
                for q in list.items {
                    let name = q.metadata.name.unwrap_or_default();
                    let hard = q
                        .spec
                        .and_then(|s| s.hard)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    let used = q
                        .status
                        .and_then(|s| s.used)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    quotas.retain(|(n, _, _)| n != &name);
                    quotas.push((name, hard, used));
                }
            }
            Err(e) => tracing::debug!(%ns, error = %e, "quotas not readable"),
        }
        for (name, hard, used) in &quotas {
            let mut check = |key: String, want: u64, what: &str| {
                let Some(limit) = hard.get(&key).and_then(|v| parse_quantity(v)) else {
                    return;
                };
                let spent = used.get(&key).and_then(|v| parse_quantity(v)).unwrap_or(0);
                if spent.saturating_add(want) > limit {
                    out.push(Problem {
                        blocking: true,
                        object: None,
                        message: format!(
                            "quota {ns}/{name} allows {key}={} ({} in use) but the restore adds {want} {what}: raise the quota or restore fewer claims",
                            hard[&key],
                            used.get(&key).map(String::as_str).unwrap_or("none"),
                        ),
                    });
                }
            };
            check("persistentvolumeclaims".into(), d.count, "claim(s)");
            check("requests.storage".into(), d.bytes, "bytes of requests");
            for (class, (n, b)) in &d.by_class {
                check(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    *n,
                    "claim(s)",
                );
                check(
                    format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                    *b,
                    "bytes of requests",
                );
            }
        }
    }
    out
}

/// From how many objects of one type in one namespace the target is asked with a list
/// (paged) rather than one GET per object.
const LIST_FROM: usize = 8;

/// The objects of `wanted` that exist on the target, as documents. The target's
/// namespaces are listed first: nothing is asked of a namespace it does not have (a
/// restore into an empty cluster asks nothing more). Then per type and namespace: few
/// objects are asked for by name, many with one paged list (10,000 ConfigMaps are 20
/// requests, not 10,000); a list the user may not make falls back to asking by name.
/// Lookups that fail count as absent: the dry run and the restore report what is wrong.
pub(crate) async fn existing_on_target(
    client: &kube::Client,
    catalog: &Catalog,
    wanted: Vec<ObjRef>,
) -> HashMap<ObjRef, Value> {
    let mut found: HashMap<ObjRef, Value> = HashMap::new();
    let wanted = match target_namespaces(client, catalog).await {
        Some(namespaces) => {
            let (namespaces, rest) = in_namespaces(wanted, &namespaces);
            found.extend(namespaces);
            rest
        }
        None => wanted,
    };
    let mut groups: BTreeMap<(String, String, Option<String>), Vec<ObjRef>> = BTreeMap::new();
    for r in wanted {
        groups
            .entry((r.group.clone(), r.kind.clone(), r.namespace.clone()))
            .or_default()
            .push(r);
    }
    let (listed, single): (Vec<_>, Vec<_>) = groups
        .into_values()
        .partition(|refs| refs.len() >= LIST_FROM);
    let mut by_name: Vec<ObjRef> = single.into_iter().flatten().collect();
    /// The objects asked for, and the list of their type and namespace (or why not).
    type Listed = (Vec<ObjRef>, std::result::Result<Vec<Value>, String>);
    let lists: Vec<Listed> = futures::stream::iter(listed)
        .map(|refs| async move {
            let Some(first) = refs.first() else {
                return (refs, Ok(Vec::new()));
            };
            let Some(res) = catalog.find(&first.group, &first.kind) else {
                return (refs, Ok(Vec::new()));
            };
            let r = objects::list_all(client, res, first.namespace.as_deref(), None)
                .await
                .map_err(|e| e.to_string());
            (refs, r)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (refs, listed) in lists {
        match listed {
            Ok(docs) => {
                let mut docs: HashMap<String, Value> = docs
                    .into_iter()
                    .filter_map(|d| Some((d["metadata"]["name"].as_str()?.to_string(), d)))
                    .collect();
                for r in refs {
                    if let Some(d) = docs.remove(&r.name) {
                        found.insert(r, d);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "list refused: asking by name");
                by_name.extend(refs);
            }
        }
    }
    let got: Vec<(ObjRef, Value)> = futures::stream::iter(by_name)
        .map(|r| async move {
            let res = catalog.find(&r.group, &r.kind)?;
            let api = objects::api(client, res, r.namespace.as_deref());
            match api.get_opt(&r.name).await {
                Ok(Some(o)) => Some((r, objects::to_document(&res.ar, &o))),
                _ => None,
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    found.extend(got);
    found
}

/// The target's namespaces by name, as documents; `None` when they cannot be listed
/// (the user may not), and every namespace is then taken to exist.
async fn target_namespaces(
    client: &kube::Client,
    catalog: &Catalog,
) -> Option<HashMap<String, Value>> {
    let res = catalog.find("", "Namespace")?;
    match objects::list_all(client, res, None, None).await {
        Ok(docs) => Some(
            docs.into_iter()
                .filter_map(|d| Some((d["metadata"]["name"].as_str()?.to_string(), d)))
                .collect(),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "namespaces not listed: asking in each");
            None
        }
    }
}

/// Splits `wanted` by what the target's `namespaces` say: the Namespaces it has (found,
/// as documents), and what is still to be asked for: cluster-scoped objects and objects
/// of namespaces it has. An object of a namespace it does not have cannot exist there.
fn in_namespaces(
    wanted: Vec<ObjRef>,
    namespaces: &HashMap<String, Value>,
) -> (Vec<(ObjRef, Value)>, Vec<ObjRef>) {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for r in wanted {
        if r.is("", "Namespace") {
            if let Some(doc) = namespaces.get(&r.name) {
                present.push((r, doc.clone()));
            }
        } else if r
            .namespace
            .as_deref()
            .is_none_or(|ns| ns.is_empty() || namespaces.contains_key(ns))
        {
            rest.push(r);
        }
    }
    (present, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nothing_is_asked_of_a_namespace_the_target_does_not_have() {
        let namespaces: HashMap<String, Value> = ["shop", "default"]
            .iter()
            .map(|n| (n.to_string(), json!({"metadata": {"name": n}})))
            .collect();
        let wanted = vec![
            ObjRef::new("", "Namespace", None, "shop"),
            ObjRef::new("", "Namespace", None, "shop-qa"),
            ObjRef::new("", "ConfigMap", Some("shop"), "web"),
            ObjRef::new("", "ConfigMap", Some("shop-qa"), "web"),
            ObjRef::new("rbac.authorization.k8s.io", "ClusterRole", None, "reader"),
        ];
        let (present, rest) = in_namespaces(wanted, &namespaces);
        assert_eq!(
            present,
            vec![(
                ObjRef::new("", "Namespace", None, "shop"),
                json!({"metadata": {"name": "shop"}})
            )]
        );
        assert_eq!(
            rest,
            vec![
                ObjRef::new("", "ConfigMap", Some("shop"), "web"),
                ObjRef::new("rbac.authorization.k8s.io", "ClusterRole", None, "reader"),
            ]
        );
    }
}

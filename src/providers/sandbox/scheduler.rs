//! The scheduler: where pods go, as kube-scheduler decides.
//!
//! - A pod without `spec.nodeName` goes to the least busy schedulable node
//!   (workers before the control plane) that its `nodeSelector`, required node affinity
//!   (labels such as `kubernetes.io/hostname`, and `metadata.name` fields), its
//!   tolerations (of the node's `NoSchedule` and `NoExecute` taints), its required pod
//!   anti-affinity (the running pods it selects, by `topologyKey`) and its bound
//!   volumes' node affinity admit; where none does, the `FailedScheduling` event counts
//!   the nodes by reason, in the scheduler's words. A pod given its node (`nodeName`)
//!   runs there whatever the node's taints (a kubelet would refuse one that does not
//!   tolerate a `NoExecute` taint; the sandbox does not). A claim that is
//!   missing, or unbound with an `Immediate` class, keeps it Pending with a
//!   `PodScheduled=False` condition and a `FailedScheduling` event; an unbound
//!   `WaitForFirstConsumer` claim gets the `volume.kubernetes.io/selected-node`
//!   annotation and the pod waits for the binding.
//!
//! Owns `spec.nodeName`, the `PodScheduled` condition and claims' selected node. Must not
//! create or delete pods, or set their status beyond scheduling.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::changes::Scope;
use super::controllers::{
    condition, deleting, event, expression_matches, get, in_scope, log_err, name_of, ns_of,
    set_status, uid_of, update,
};
use super::pods::claim_names;
use super::verbs::{ApiResult, Cluster};
use super::workloads::schedulable_nodes;

fn node_selector_term_matches(term: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let label = |k: &str| -> Option<&str> { labels.get(k).and_then(Value::as_str) };
    let name = name_of(node);
    let field = |k: &str| -> Option<&str> { (k == "metadata.name").then_some(name) };
    let exprs = term["matchExpressions"].as_array();
    let fields = term["matchFields"].as_array();
    if exprs.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
        return false;
    }
    exprs.is_none_or(|e| e.iter().all(|x| expression_matches(x, label)))
        && fields.is_none_or(|f| f.iter().all(|x| expression_matches(x, field)))
}

/// Whether a `nodeSelectorTerms` list (any term) admits `node`; a missing list admits all.
fn node_selector_matches(terms: &Value, node: &Value) -> bool {
    match terms.as_array() {
        Some(t) if !t.is_empty() => t.iter().any(|term| node_selector_term_matches(term, node)),
        _ => true,
    }
}

/// Whether the pod's own constraints admit `node`: its node selector and required
/// node affinity (taints are [`untolerated_taint`]'s).
fn pod_fits(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let affinity = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    selector_ok && node_selector_matches(affinity, node)
}

/// Whether `toleration` tolerates `taint`, by the scheduler's rule: an empty key with
/// `Exists` tolerates every taint, an empty effect every effect; `Equal` (the default
/// operator) also wants the value.
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let effect = text(&toleration["effect"]);
    if !effect.is_empty() && effect != text(&taint["effect"]) {
        return false;
    }
    let key = text(&toleration["key"]);
    // An empty operator is `Equal`, as the API server reads it.
    let operator = toleration["operator"]
        .as_str()
        .filter(|o| !o.is_empty())
        .unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    key == text(&taint["key"])
        && match operator {
            "Exists" => true,
            "Equal" => text(&toleration["value"]) == text(&taint["value"]),
            _ => false,
        }
}

/// The first of `node`'s taints that keeps new pods off (`NoSchedule`, `NoExecute`) and
/// that the pod `spec` does not tolerate.
pub fn untolerated_taint<'a>(spec: &Value, node: &'a Value) -> Option<&'a Value> {
    let tolerations = spec["tolerations"].as_array();
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
        .find(|t| {
            !tolerations
                .into_iter()
                .flatten()
                .any(|tol| tolerates(tol, t))
        })
}

/// The topology domains a pod's required anti-affinity keeps it out of: for each term,
/// its `topologyKey` and the values of that label on the nodes of the running pods it
/// selects (in its `namespaces`, all of them with an empty `namespaceSelector`, else the
/// pod's own).
fn anti_affinity(c: &Cluster, pod: &Value) -> Vec<(String, HashSet<String>)> {
    let terms = pod["spec"]["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array();
    let Some(terms) = terms.filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    let own_ns = ns_of(pod).unwrap_or("default");
    let me = uid_of(pod);
    // Pods on a node, or assumed on the one the scheduler chose for them while their
    // claims are bound there (kube-scheduler's assumed pods), this one aside.
    let pods: Vec<(&Value, String)> = c
        .store
        .list("", "pods", None)
        .map(|(_, p)| p)
        .filter(|p| {
            !deleting(p)
                && uid_of(p) != me
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .filter_map(|p| {
            let node = match p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                Some(n) => n.to_string(),
                None => assumed_node(c, p)?,
            };
            Some((p, node))
        })
        .collect();
    let mut out = Vec::new();
    for term in terms {
        let Some(key) = term["topologyKey"].as_str() else {
            continue;
        };
        let names: Vec<&str> = term["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let all = term["namespaceSelector"]
            .as_object()
            .is_some_and(|m| m.is_empty());
        let mut values = HashSet::new();
        for (p, node) in &pods {
            let ns = ns_of(p).unwrap_or("default");
            let in_scope = all || names.contains(&ns) || (names.is_empty() && ns == own_ns);
            if !in_scope
                || !super::controllers::selector_matches(
                    &term["labelSelector"],
                    &p["metadata"]["labels"],
                )
            {
                continue;
            }
            if let Some(n) = get(c, "", "nodes", None, node)
                && let Some(v) = n["metadata"]["labels"][key].as_str()
            {
                values.insert(v.to_string());
            }
        }
        out.push((key.to_string(), values));
    }
    out
}

/// The node chosen for a pod not bound yet: the one its claims wait to be bound on.
fn assumed_node(c: &Cluster, pod: &Value) -> Option<String> {
    let ns = ns_of(pod).unwrap_or("default");
    claim_names(pod).iter().find_map(|claim| {
        let pvc = get(c, "", "persistentvolumeclaims", Some(ns), claim)?;
        if is_bound(&pvc) {
            return None;
        }
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
            .as_str()
            .map(str::to_string)
    })
}

/// Why `node` cannot take `pod`, as the scheduler counts it (the first of its filters
/// to fail, in its order), or `None` where it can; `kept_out` is its anti-affinity's
/// (see [`anti_affinity`]).
fn misfit(
    pod: &Value,
    node: &Value,
    volume_terms: &[Value],
    kept_out: &[(String, HashSet<String>)],
) -> Option<String> {
    if let Some(t) = untolerated_taint(&pod["spec"], node) {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        return Some(format!(
            "had untolerated taint {{{}: {}}}",
            text(&t["key"]),
            text(&t["value"])
        ));
    }
    if !pod_fits(pod, node) {
        return Some("didn't match Pod's node affinity/selector".into());
    }
    if !volume_terms.iter().all(|t| node_selector_matches(t, node)) {
        return Some("had volume node affinity conflict".into());
    }
    let labels = &node["metadata"]["labels"];
    if kept_out.iter().any(|(key, values)| {
        labels[key.as_str()]
            .as_str()
            .is_some_and(|v| values.contains(v))
    }) {
        return Some("didn't match pod anti-affinity rules".into());
    }
    None
}

/// The scheduler's message for a pod no node takes: `0/3 nodes are available: 1 node(s)
/// had untolerated taint {dedicated: db}, 2 node(s) were unschedulable. preemption: …`.
fn none_available(reasons: &BTreeMap<String, usize>) -> String {
    let total: usize = reasons.values().sum();
    let mut counted: Vec<String> = reasons
        .iter()
        .map(|(why, n)| format!("{n} node(s) {why}"))
        .collect();
    counted.sort();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        counted.join(", ")
    )
}

/// The claim's class, or the default class for a claim that names none (yet).
pub fn storage_class(c: &Cluster, pvc: &Value) -> Option<Value> {
    match super::storage::claim_class(pvc) {
        Some(name) => get(c, "storage.k8s.io", "storageclasses", None, name),
        None => super::storage::default_class(c),
    }
}

pub fn is_bound(pvc: &Value) -> bool {
    pvc["status"]["phase"] == "Bound" && pvc["spec"]["volumeName"].is_string()
}

/// The node affinity terms of a bound claim's volume, where it has any.
fn pv_terms(c: &Cluster, pvc: &Value) -> Option<Value> {
    let pv = get(
        c,
        "",
        "persistentvolumes",
        None,
        pvc["spec"]["volumeName"].as_str()?,
    )?;
    let terms = &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"];
    terms.is_array().then(|| terms.clone())
}

/// Why `node` (one that may not exist yet: an autoscaler's template) cannot take `pod`,
/// as the scheduler counts it; `None` where it can.
pub fn misfit_on(c: &Cluster, pod: &Value, node: &Value) -> Option<String> {
    let ns = ns_of(pod).unwrap_or("default");
    let terms: Vec<Value> = claim_names(pod)
        .iter()
        .filter_map(|claim| get(c, "", "persistentvolumeclaims", Some(ns), claim))
        .filter(is_bound)
        .filter_map(|pvc| pv_terms(c, &pvc))
        .collect();
    misfit(pod, node, &terms, &anti_affinity(c, pod))
}

/// Marks a pod unschedulable, with a condition and an event.
fn unschedulable(c: &mut Cluster, pod: &Value, message: &str) -> ApiResult<()> {
    let old = &pod["status"]["conditions"];
    let status = json!({
        "phase": "Pending",
        "qosClass": pod["status"]["qosClass"].as_str().unwrap_or("BestEffort"),
        "conditions": [condition(old, "PodScheduled", "False", "Unschedulable", message, false)
            .as_object().map(|m| { let mut m = m.clone(); m.insert("lastProbeTime".into(), Value::Null); Value::Object(m) })
            .unwrap_or_default()],
    });
    event(c, pod, "Warning", "FailedScheduling", message);
    set_status(c, "", "pods", pod, status).map(|_| ())
}

/// The scheduler: nodes for the pods within `scope` that have none (whether a pod can
/// be placed depends on its namespace's claims and on cluster-scoped objects only),
/// and for pending pods anywhere whose anti-affinity reaches other namespaces (a pod
/// ending there may free a node for them). Returns whether it failed on one.
pub fn schedule(c: &mut Cluster, scope: &Scope) -> bool {
    let unplaced = |p: &Value| {
        !deleting(p)
            && p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
            && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    };
    let mut pending = in_scope(c, scope, "", "pods", unplaced);
    if !matches!(scope, Scope::All) {
        let seen: HashSet<String> = pending.iter().map(|p| uid_of(p).to_string()).collect();
        let across = super::controllers::list(c, "", "pods", None, |p| {
            unplaced(p)
                && p["spec"]["affinity"]["podAntiAffinity"]
                    ["requiredDuringSchedulingIgnoredDuringExecution"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty())
                && !seen.contains(uid_of(p))
        });
        pending.extend(across);
    }
    if pending.is_empty() {
        return false;
    }
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for (_, p) in c.store.list("", "pods", None) {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    let mut failed = false;
    for pod in pending {
        failed |= log_err(
            &format!("scheduling pod {}", name_of(&pod)),
            schedule_one(c, &pod, &mut load),
        );
    }
    failed
}

fn schedule_one(c: &mut Cluster, pod: &Value, load: &mut BTreeMap<String, usize>) -> ApiResult<()> {
    let ns = ns_of(pod).unwrap_or("default").to_string();
    let mut volume_terms: Vec<Value> = Vec::new();
    let mut waiting: Vec<Value> = Vec::new();
    for claim in claim_names(pod) {
        let Some(pvc) = get(c, "", "persistentvolumeclaims", Some(&ns), &claim) else {
            return unschedulable(
                c,
                pod,
                &format!("persistentvolumeclaim \"{claim}\" not found"),
            );
        };
        if deleting(&pvc) {
            return unschedulable(
                c,
                pod,
                &format!("persistentvolumeclaim \"{claim}\" is being deleted"),
            );
        }
        if is_bound(&pvc) {
            volume_terms.extend(pv_terms(c, &pvc));
            continue;
        }
        let wffc = storage_class(c, &pvc)
            .is_some_and(|sc| sc["volumeBindingMode"] == "WaitForFirstConsumer");
        if !wffc {
            return unschedulable(
                c,
                pod,
                "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
            );
        }
        waiting.push(pvc);
    }
    let nodes = schedulable_nodes(c);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut fits: Vec<Value> = Vec::new();
    let kept_out = anti_affinity(c, pod);
    for n in nodes.iter() {
        match misfit(pod, n, &volume_terms, &kept_out) {
            Some(why) => *reasons.entry(why).or_default() += 1,
            None => fits.push(n.clone()),
        }
    }
    // The nodes the sandbox's scheduler passes over, counted as a real one would.
    let considered: HashSet<&str> = nodes.iter().map(name_of).collect();
    for n in super::controllers::list(c, "", "nodes", None, |n| !deleting(n)) {
        if considered.contains(name_of(&n)) {
            continue;
        }
        let why = if n["spec"]["unschedulable"].as_bool() == Some(true) {
            "were unschedulable".to_string()
        } else {
            format!(
                "had untolerated taint {{{}: }}",
                super::controllers::CONTROL_PLANE_LABEL
            )
        };
        *reasons.entry(why).or_default() += 1;
    }
    // A claim already waiting on a node decides for the pod.
    let selected: Option<&str> = waiting.iter().find_map(|pvc| {
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
    });
    let node = match selected {
        Some(s) => fits.iter().find(|n| name_of(n) == s),
        None => fits.iter().min_by_key(|n| {
            (
                load.get(name_of(n)).copied().unwrap_or(0),
                name_of(n).to_string(),
            )
        }),
    };
    let Some(node) = node else {
        // A claim waits on a node the pod cannot go to: the others conflict with it.
        if !fits.is_empty() {
            *reasons
                .entry("had volume node affinity conflict".into())
                .or_default() += fits.len();
        }
        return unschedulable(c, pod, &none_available(&reasons));
    };
    let node_name = name_of(node).to_string();
    if !waiting.is_empty() {
        for mut pvc in waiting {
            if pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].is_null() {
                pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] =
                    json!(node_name);
                update(c, "", "persistentvolumeclaims", pvc)?;
            }
        }
        return Ok(());
    }
    let Some(mut current) = get(c, "", "pods", Some(&ns), name_of(pod)) else {
        return Ok(());
    };
    current["spec"]["nodeName"] = json!(node_name);
    let bound = update(c, "", "pods", current)?;
    *load.entry(node_name.clone()).or_default() += 1;
    event(
        c,
        &bound,
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{} to {node_name}", name_of(pod)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::create;

    #[test]
    fn taints_keep_off_the_pods_that_do_not_tolerate_them() {
        let node = json!({"metadata": {"name": "db-1", "labels": {}}, "spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
            {"key": "spot", "value": "", "effect": "PreferNoSchedule"},
        ]}});
        let spec = |tolerations: Value| json!({"tolerations": tolerations});
        // None, or the wrong value or effect: kept off.
        assert!(untolerated_taint(&json!({}), &node).is_some());
        for t in [
            json!({"key": "dedicated", "operator": "Equal", "value": "web"}),
            json!({"key": "dedicated", "value": "db", "effect": "NoExecute"}),
            json!({"key": "", "operator": "Equal"}),
        ] {
            assert!(untolerated_taint(&spec(json!([t])), &node).is_some(), "{t}");
        }
        // The key and value (operator Equal by default), the key alone, or everything.
        // A PreferNoSchedule taint keeps nothing off.
        for t in [
            json!({"key": "dedicated", "value": "db"}),
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
            json!({"operator": "Exists"}),
        ] {
            assert!(untolerated_taint(&spec(json!([t])), &node).is_none(), "{t}");
        }
        // The scheduler's message counts nodes by reason.
        let pod = json!({"spec": {}});
        let why = misfit(&pod, &node, &[], &[]).unwrap();
        assert_eq!(why, "had untolerated taint {dedicated: db}");
        let mut reasons = BTreeMap::new();
        reasons.insert(why, 1);
        reasons.insert("were unschedulable".to_string(), 2);
        assert_eq!(
            none_available(&reasons),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    /// Two pods kept apart by anti-affinity whose claims wait for their first consumer,
    /// scheduled in one pass: the first is assumed on the node its claim waits on, so
    /// the second goes elsewhere.
    #[test]
    fn a_pod_whose_claim_waits_on_a_node_keeps_its_peers_off_it() {
        #![allow(clippy::unwrap_used)]
        let mut c = Cluster::for_tests();
        for n in ["w1", "w2"] {
            let node = json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}, "spec": {}});
            create(&mut c, "", "nodes", None, node).unwrap();
        }
        let class = json!({"metadata": {"name": "wffc"}, "provisioner": "sandbox.ferry.dev",
                           "volumeBindingMode": "WaitForFirstConsumer"});
        create(&mut c, "storage.k8s.io", "storageclasses", None, class).unwrap();
        for i in 0..2 {
            let pvc = json!({"metadata": {"name": format!("data-{i}"), "namespace": "default"},
                             "spec": {"storageClassName": "wffc", "accessModes": ["ReadWriteOnce"],
                                      "resources": {"requests": {"storage": "1Gi"}}}});
            create(&mut c, "", "persistentvolumeclaims", Some("default"), pvc).unwrap();
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("agent-{i}"), "namespace": "default", "labels": {"slot": "0"}},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": format!("data-{i}")}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"slot": "0"}}, "topologyKey": "kubernetes.io/hostname"}
                ]}},
            }});
            create(&mut c, "", "pods", Some("default"), pod).unwrap();
        }
        schedule(&mut c, &Scope::All);
        let chosen: HashSet<String> = (0..2)
            .map(|i| {
                let pvc = get(
                    &c,
                    "",
                    "persistentvolumeclaims",
                    Some("default"),
                    &format!("data-{i}"),
                )
                .unwrap();
                pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(chosen, HashSet::from(["w1".to_string(), "w2".to_string()]));
    }

    #[test]
    fn anti_affinity_keeps_a_pod_out_of_a_domain_its_peers_hold() {
        let node = |name: &str| json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
        let held = vec![(
            "kubernetes.io/hostname".to_string(),
            HashSet::from(["n1".to_string()]),
        )];
        let pod = json!({"spec": {}});
        assert_eq!(
            misfit(&pod, &node("n1"), &[], &held).as_deref(),
            Some("didn't match pod anti-affinity rules")
        );
        assert_eq!(misfit(&pod, &node("n2"), &[], &held), None);
    }

    #[test]
    fn node_affinity_on_hostname_and_fields() {
        let node = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "zone": "a"}}});
        let pod = |aff: Value| json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": aff}}}}});
        assert!(pod_fits(
            &pod(
                json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}])
            ),
            &node
        ));
        assert!(!pod_fits(
            &pod(
                json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}])
            ),
            &node
        ));
        assert!(pod_fits(
            &pod(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])
            ),
            &node
        ));
        assert!(!pod_fits(
            &json!({"spec": {"nodeSelector": {"zone": "b"}}}),
            &node
        ));
    }
}

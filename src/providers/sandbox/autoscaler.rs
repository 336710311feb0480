//! A cluster autoscaler: node pools the sandbox adds nodes from when a pod no node takes
//! fits one, as cluster-autoscaler does with node groups scaled to zero.
//!
//! - Pools are declared in the ConfigMap `kube-system/sandbox-node-pools` (the sandbox's
//!   stand-in for a cloud's node groups): each key names a pool, each value is JSON,
//!   `{"labels": {…}, "taints": [{"key", "value", "effect"}], "max": 3,
//!   "joinSeconds": 5}`. A node joins NotReady, tainted `node.kubernetes.io/not-ready`,
//!   and is Ready after `joinSeconds` (0 by default); pods that fit a pool whose node is
//!   joining wait for it, with no word, as cluster-autoscaler's upcoming nodes.
//! - Once pools are declared, `kube-system/cluster-autoscaler-status` exists, as
//!   cluster-autoscaler writes it.
//! - A pod the scheduler left `Unschedulable` (for want of a node, not of a claim) that
//!   no node takes now but a pool's template node would (its taints, node selector and
//!   affinity, bound volumes' node affinity, anti-affinity), with the pool below its
//!   max: a node of that pool joins (`{cluster}-{pool}-{n}`), and the pod gets a
//!   `TriggeredScaleUp` event. Where no pool takes it: `NotTriggerScaleUp`, the pools
//!   counted by reason in cluster-autoscaler's words (not in a pass that scaled up, as
//!   cluster-autoscaler does). Unlike some cluster-autoscaler versions, it scales up for
//!   a pod whose claim waits for its first consumer.
//! - No scale-down: nodes stay until deleted.
//!
//! Owns the nodes it adds and the status ConfigMap; reads pods, never writes them.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::changes::Scope;
use super::controllers::{
    create, deleting, event, get, in_scope, list, log_err, name_of, set_status,
};
use super::verbs::{ApiResult, Cluster, now};

/// The ConfigMap that declares the pools.
pub const POOLS: &str = "sandbox-node-pools";
/// Label of a node the autoscaler added: its pool.
const POOL_LABEL: &str = "sandbox.ferry.dev/node-pool";

#[derive(Debug)]
struct Pool {
    name: String,
    labels: serde_json::Map<String, Value>,
    taints: Vec<Value>,
    max: usize,
    /// How long a node takes to join: NotReady (tainted `not-ready`) until then.
    delay: std::time::Duration,
}

/// Annotation of a node still joining: when it is Ready (Unix seconds).
const READY_AT: &str = "sandbox.ferry.dev/ready-at";
/// The taint of a node not ready yet.
const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The pools `kube-system/sandbox-node-pools` declares; a value that is not a pool is
/// logged and left out.
fn pools(c: &Cluster) -> Vec<Pool> {
    let Some(cm) = get(c, "", "configmaps", Some("kube-system"), POOLS) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, text) in cm["data"].as_object().into_iter().flatten() {
        let v: Value = match serde_json::from_str(text.as_str().unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("sandbox node pool {name}: not JSON ({e}); left out");
                continue;
            }
        };
        out.push(Pool {
            name: name.clone(),
            labels: v["labels"].as_object().cloned().unwrap_or_default(),
            taints: v["taints"].as_array().cloned().unwrap_or_default(),
            max: v["max"].as_u64().unwrap_or(1) as usize,
            delay: std::time::Duration::from_secs_f64(
                v["joinSeconds"].as_f64().unwrap_or(0.0).clamp(0.0, 3600.0),
            ),
        });
    }
    out
}

/// A node of `pool` named `name`: its template when it does not exist yet.
fn node_of(c: &Cluster, pool: &Pool, name: &str, index: usize) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "ferry.sandbox",
        "topology.kubernetes.io/region": "ferry-local",
        "topology.kubernetes.io/zone": format!("ferry-local-{}-{}", c.name, pool.name),
        POOL_LABEL: pool.name,
    });
    for (k, v) in &pool.labels {
        labels[k] = v.clone();
    }
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "taints": pool.taints,
            "podCIDR": format!("10.245.{index}.0/24"), "podCIDRs": [format!("10.245.{index}.0/24")],
        },
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "ferry sandbox node", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": format!("172.19.0.{}", index % 250 + 2)},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "ferry://sandbox",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "Ferry sandbox",
                         "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
        }
    })
}

/// Whether the scheduler gave up on `pod` for want of a node (its message counts nodes).
fn wants_a_node(pod: &Value) -> bool {
    !deleting(pod)
        && pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "PodScheduled"
                    && c["reason"] == "Unschedulable"
                    && c["message"].as_str().is_some_and(|m| {
                        m.starts_with("0/")
                            && !m.contains("unbound immediate PersistentVolumeClaims")
                    })
            })
}

/// The autoscaler's pass over the pods within `scope` that want a node. Returns whether
/// it failed on one.
pub fn scale_up(c: &mut Cluster, scope: &Scope) -> bool {
    // Nodes join whether pools are still declared or not.
    let mut failed = log_err("nodes joining", joined(c));
    let pools = pools(c);
    if pools.is_empty() {
        return failed;
    }
    failed |= log_err("cluster-autoscaler status", status(c, &pools));
    let mut refused = Vec::new();
    let mut scaled = false;
    for pod in in_scope(c, scope, "", "pods", wants_a_node) {
        match scale_up_for(c, &pools, &pod) {
            Ok(Done::Refused(why)) => refused.push((pod, why)),
            Ok(Done::Added) => scaled = true,
            Ok(Done::Waits) => {}
            Err(e) => failed |= log_err(&format!("scaling up for pod {}", name_of(&pod)), Err(e)),
        }
    }
    // As cluster-autoscaler: a pass that scaled up says nothing of the pods it left.
    if !scaled {
        for (pod, why) in refused {
            event(c, &pod, "Normal", "NotTriggerScaleUp", &why);
        }
    }
    failed
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whether `node` is still joining.
fn joining(node: &Value) -> bool {
    node["metadata"]["annotations"][READY_AT].is_string()
}

/// Makes the joining nodes whose time has come (or whose time cannot be read) Ready.
fn joined(c: &mut Cluster) -> ApiResult<()> {
    let at = unix_now();
    let due = list(c, "", "nodes", None, |n| {
        joining(n)
            && n["metadata"]["annotations"][READY_AT]
                .as_str()
                .and_then(|t| t.parse::<f64>().ok())
                .is_none_or(|t| t <= at)
    });
    for mut n in due {
        if let Some(a) = n["metadata"]["annotations"].as_object_mut() {
            a.remove(READY_AT);
        }
        if let Some(t) = n["spec"]["taints"].as_array_mut() {
            t.retain(|t| t["key"] != NOT_READY);
        }
        let n = super::controllers::update(c, "", "nodes", n)?;
        let mut status = n["status"].clone();
        let ready = json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "ferry sandbox node", "lastHeartbeatTime": now(), "lastTransitionTime": now()});
        match status["conditions"].as_array_mut() {
            Some(cs) => {
                cs.retain(|c| c["type"] != "Ready");
                cs.push(ready);
            }
            None => status["conditions"] = json!([ready]),
        }
        set_status(c, "", "nodes", &n, status)?;
    }
    Ok(())
}

/// What the autoscaler did for a pod.
enum Done {
    /// Added a node for it.
    Added,
    /// Nothing: a node takes it now, or one is joining for it.
    Waits,
    /// No pool takes it: the `NotTriggerScaleUp` message.
    Refused(String),
}

/// Adds a node for `pod` where a pool takes it and none does now.
fn scale_up_for(c: &mut Cluster, pools: &[Pool], pod: &Value) -> ApiResult<Done> {
    // A node that takes it now (the autoscaler added it): the scheduler's turn.
    let nodes = list(c, "", "nodes", None, |n| !deleting(n));
    if super::workloads::schedulable_nodes(c)
        .iter()
        .any(|n| super::scheduler::misfit_on(c, pod, n).is_none())
    {
        return Ok(Done::Waits);
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for pool in pools {
        let members = nodes
            .iter()
            .filter(|n| n["metadata"]["labels"][POOL_LABEL] == pool.name.as_str())
            .count();
        let template = node_of(c, pool, &format!("template-node-for-{}", pool.name), 0);
        if let Some(why) = super::scheduler::misfit_on(c, pod, &template) {
            *reasons.entry(format!("node(s) {why}")).or_default() += 1;
            continue;
        }
        // A node of the pool is joining: the pod waits for it.
        if nodes
            .iter()
            .any(|n| n["metadata"]["labels"][POOL_LABEL] == pool.name.as_str() && joining(n))
        {
            return Ok(Done::Waits);
        }
        if members >= pool.max {
            *reasons
                .entry("max node group size reached".into())
                .or_default() += 1;
            continue;
        }
        let taken: HashSet<&str> = nodes.iter().map(name_of).collect();
        let Some(name) = (0..)
            .map(|i| format!("{}-{}-{i}", c.name, pool.name))
            .find(|n| !taken.contains(n.as_str()))
        else {
            return Ok(Done::Waits);
        };
        let cidrs: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n["spec"]["podCIDR"].as_str())
            .collect();
        let index = (0..250)
            .find(|i| !cidrs.contains(format!("10.245.{i}.0/24").as_str()))
            .unwrap_or(0);
        let mut node = node_of(c, pool, &name, index);
        if !pool.delay.is_zero() {
            node["metadata"]["annotations"] =
                json!({READY_AT: (unix_now() + pool.delay.as_secs_f64()).to_string()});
            if let Some(t) = node["spec"]["taints"].as_array_mut() {
                t.push(json!({"key": NOT_READY, "effect": "NoSchedule"}));
            }
            node["status"]["conditions"][0]["status"] = json!("False");
            node["status"]["conditions"][0]["reason"] = json!("KubeletNotReady");
        }
        create(c, "", "nodes", None, node)?;
        event(
            c,
            pod,
            "Normal",
            "TriggeredScaleUp",
            &format!(
                "pod triggered scale-up: [{{{} {members}->{} (max: {})}}]",
                pool.name,
                members + 1,
                pool.max
            ),
        );
        return Ok(Done::Added);
    }
    let mut counted: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
    counted.sort();
    Ok(Done::Refused(format!(
        "pod didn't trigger scale-up: {}",
        counted.join(", ")
    )))
}

/// cluster-autoscaler's status ConfigMap, written once pools are declared.
fn status(c: &mut Cluster, pools: &[Pool]) -> ApiResult<()> {
    const STATUS: &str = "cluster-autoscaler-status";
    if get(c, "", "configmaps", Some("kube-system"), STATUS).is_some() {
        return Ok(());
    }
    let groups: Vec<String> = pools
        .iter()
        .map(|p| {
            format!(
                "  Name: {}\n  Health: Healthy (minSize=0, maxSize={})",
                p.name, p.max
            )
        })
        .collect();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": STATUS, "namespace": "kube-system"},
        "data": {"status": format!(
            "Cluster-autoscaler status at {}:\nCluster-wide:\n  Health: Healthy\nNodeGroups:\n{}\n",
            now(),
            groups.join("\n")
        )},
    });
    create(c, "", "configmaps", Some("kube-system"), cm).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::scheduler;

    fn events(c: &Cluster, pod: &str) -> Vec<(String, String)> {
        list(c, "", "events", Some("default"), |e| {
            e["involvedObject"]["name"] == pod
        })
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("reason"), s("message"))
        })
        .collect()
    }

    #[test]
    fn a_pod_no_node_takes_brings_a_node_of_the_pool_that_takes_it() {
        let mut c = Cluster::for_tests();
        let worker = json!({"metadata": {"name": "w1", "labels": {"kubernetes.io/hostname": "w1", "topology.kubernetes.io/zone": "a"}}, "spec": {}});
        create(&mut c, "", "nodes", None, worker).unwrap();
        let pools = json!({"metadata": {"name": POOLS, "namespace": "kube-system"}, "data": {
            "ledger": r#"{"labels": {"topology.kubernetes.io/zone": "b", "pool": "ledger"}, "taints": [{"key": "dedicated", "value": "ledger", "effect": "NoSchedule"}], "max": 1}"#,
            "broken": "{not json",
        }});
        create(&mut c, "", "configmaps", Some("kube-system"), pools).unwrap();
        let pod = |name: &str, zone: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                   "spec": {"nodeSelector": {"topology.kubernetes.io/zone": zone},
                            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                            "containers": [{"name": "c", "image": "busybox"}]}})
        };
        create(&mut c, "", "pods", Some("default"), pod("ledger", "b")).unwrap();
        create(&mut c, "", "pods", Some("default"), pod("nowhere", "z")).unwrap();
        let node_of = |c: &Cluster, name: &str| {
            get(c, "", "pods", Some("default"), name).unwrap()["spec"]["nodeName"].clone()
        };

        scheduler::schedule(&mut c, &Scope::All);
        assert!(node_of(&c, "ledger").is_null());
        assert!(!scale_up(&mut c, &Scope::All));
        scheduler::schedule(&mut c, &Scope::All);
        // A node of the pool joined, with its labels and taints, and took the pod.
        let added = get(&c, "", "nodes", None, "t-ledger-0").unwrap();
        assert_eq!(
            added["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "b"
        );
        assert_eq!(added["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(node_of(&c, "ledger"), "t-ledger-0");
        assert!(events(&c, "ledger").contains(&(
            "TriggeredScaleUp".into(),
            "pod triggered scale-up: [{ledger 0->1 (max: 1)}]".into()
        )));
        // No pool takes the other: said on the next pass (one that scaled up says
        // nothing of the pods it left), and no node added.
        assert!(
            events(&c, "nowhere")
                .iter()
                .all(|(r, _)| r != "NotTriggerScaleUp")
        );
        scale_up(&mut c, &Scope::All);
        assert_eq!(
            events(&c, "nowhere")
                .into_iter()
                .filter(|(r, _)| r == "NotTriggerScaleUp")
                .collect::<Vec<_>>(),
            [(
                "NotTriggerScaleUp".to_string(),
                "pod didn't trigger scale-up: 1 node(s) didn't match Pod's node affinity/selector"
                    .to_string()
            )]
        );
        assert!(node_of(&c, "nowhere").is_null());
        // The pool is at its max: a second ledger pod waits, and says why.
        create(&mut c, "", "pods", Some("default"), pod("ledger-2", "b")).unwrap();
        let mut full = get(&c, "", "nodes", None, "t-ledger-0").unwrap();
        full["spec"]["unschedulable"] = json!(true);
        crate::controllers::update(&mut c, "", "nodes", full).unwrap();
        scheduler::schedule(&mut c, &Scope::All);
        scale_up(&mut c, &Scope::All);
        assert!(
            events(&c, "ledger-2")
                .iter()
                .any(|(r, m)| r == "NotTriggerScaleUp"
                    && m == "pod didn't trigger scale-up: 1 max node group size reached")
        );
        let pooled = list(&c, "", "nodes", None, |n| {
            n["metadata"]["labels"][POOL_LABEL].is_string()
        });
        assert_eq!(pooled.len(), 1);
        // A node still joining is Ready once its time has come, or cannot be read.
        let late = json!({"metadata": {"name": "late", "annotations": {READY_AT: "soon"}},
                          "spec": {"taints": [{"key": NOT_READY, "effect": "NoSchedule"}]}});
        create(&mut c, "", "nodes", None, late).unwrap();
        scale_up(&mut c, &Scope::All);
        let late = get(&c, "", "nodes", None, "late").unwrap();
        assert!(!joining(&late));
        assert_eq!(late["spec"]["taints"], json!([]));
        assert_eq!(late["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(late["status"]["conditions"][0]["status"], "True");
        // cluster-autoscaler's status, as it writes it.
        assert!(
            get(
                &c,
                "",
                "configmaps",
                Some("kube-system"),
                "cluster-autoscaler-status"
            )
            .is_some()
        );
    }
}
